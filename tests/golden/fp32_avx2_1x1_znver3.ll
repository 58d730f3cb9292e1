; dfpgen 0.1.0 -- generated kernel, do not edit
; layer pw: N=1 C=8 K=16 4x4 -> 4x4 kernel 1x1 stride 1 pad 0
; pass fprop, isa fp32_avx2 (vfmadd231ps, 8 lanes), cpu znver3
; blocking kv2 w4 h1 cpb8 u8 nk
; register block 1x4 pixels x 2 vectors: 11 of 16 vector registers
; layouts: input [1, 1, 4, 4, 8] weights [2, 1, 1, 1, 8, 8, 1] output [1, 2, 4, 4, 8]
; reduction: 1 steps of 8 channel elements
; work items: 4 = N 1 x groups 1 x row blocks 4, order nk
@in_steps = private unnamed_addr constant [1 x i32] [i32 0]
@w_steps = private unnamed_addr constant [1 x i32] [i32 0]

declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)
declare <8 x float> @llvm.fabs.v8f32(<8 x float>)
declare <8 x float> @llvm.maxnum.v8f32(<8 x float>, <8 x float>)
declare float @llvm.vector.reduce.fmax.v8f32(<8 x float>)
; register block 1x4 pixels x 2 vectors = 8 accumulators
define internal void @tile_h1_w4_v2(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <8 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <8 x float>, align 64
  %acc.0.1 = alloca <8 x float>, align 64
  %acc.1.0 = alloca <8 x float>, align 64
  %acc.1.1 = alloca <8 x float>, align 64
  %acc.2.0 = alloca <8 x float>, align 64
  %acc.2.1 = alloca <8 x float>, align 64
  %acc.3.0 = alloca <8 x float>, align 64
  %acc.3.1 = alloca <8 x float>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 1
  %t1.raw = add i64 %t0, 1
  %t1.in = icmp ult i64 %t1.raw, 1
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 1
  store <8 x float> zeroinitializer, ptr %acc.0.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.0.1, align 64
  store <8 x float> zeroinitializer, ptr %acc.1.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.1.1, align 64
  store <8 x float> zeroinitializer, ptr %acc.2.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.2.1, align 64
  store <8 x float> zeroinitializer, ptr %acc.3.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.3.1, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [1 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [1 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds float, ptr %in, i64 %ioff
  %wb = getelementptr inbounds float, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds float, ptr %wb, i64 0
  %w.0.0 = load <8 x float>, ptr %wp.0.0, align 4
  %wp.0.1 = getelementptr inbounds float, ptr %wb, i64 64
  %w.0.1 = load <8 x float>, ptr %wp.0.1, align 4
  %bp.0.0 = getelementptr inbounds float, ptr %ib, i64 0
  %bs.0.0 = load float, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <8 x float> poison, float %bs.0.0, i64 0
  %bv.0.0 = shufflevector <8 x float> %bi.0.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.0.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.0.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.0, <8 x float> %w.0.0, <8 x float> %x.0.0.0)
  store <8 x float> %y.0.0.0, ptr %acc.0.0, align 64
  %x.0.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.0.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.0, <8 x float> %w.0.1, <8 x float> %x.0.0.1)
  store <8 x float> %y.0.0.1, ptr %acc.0.1, align 64
  %bp.0.1 = getelementptr inbounds float, ptr %ib, i64 8
  %bs.0.1 = load float, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <8 x float> poison, float %bs.0.1, i64 0
  %bv.0.1 = shufflevector <8 x float> %bi.0.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.0.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.0.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.1, <8 x float> %w.0.0, <8 x float> %x.0.1.0)
  store <8 x float> %y.0.1.0, ptr %acc.1.0, align 64
  %x.0.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.0.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.1, <8 x float> %w.0.1, <8 x float> %x.0.1.1)
  store <8 x float> %y.0.1.1, ptr %acc.1.1, align 64
  %bp.0.2 = getelementptr inbounds float, ptr %ib, i64 16
  %bs.0.2 = load float, ptr %bp.0.2, align 4
  %bi.0.2 = insertelement <8 x float> poison, float %bs.0.2, i64 0
  %bv.0.2 = shufflevector <8 x float> %bi.0.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.0.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.0.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.2, <8 x float> %w.0.0, <8 x float> %x.0.2.0)
  store <8 x float> %y.0.2.0, ptr %acc.2.0, align 64
  %x.0.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.0.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.2, <8 x float> %w.0.1, <8 x float> %x.0.2.1)
  store <8 x float> %y.0.2.1, ptr %acc.2.1, align 64
  %bp.0.3 = getelementptr inbounds float, ptr %ib, i64 24
  %bs.0.3 = load float, ptr %bp.0.3, align 4
  %bi.0.3 = insertelement <8 x float> poison, float %bs.0.3, i64 0
  %bv.0.3 = shufflevector <8 x float> %bi.0.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.0.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.0.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.3, <8 x float> %w.0.0, <8 x float> %x.0.3.0)
  store <8 x float> %y.0.3.0, ptr %acc.3.0, align 64
  %x.0.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.0.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.0.3, <8 x float> %w.0.1, <8 x float> %x.0.3.1)
  store <8 x float> %y.0.3.1, ptr %acc.3.1, align 64
  %wp.1.0 = getelementptr inbounds float, ptr %wb, i64 8
  %w.1.0 = load <8 x float>, ptr %wp.1.0, align 4
  %wp.1.1 = getelementptr inbounds float, ptr %wb, i64 72
  %w.1.1 = load <8 x float>, ptr %wp.1.1, align 4
  %bp.1.0 = getelementptr inbounds float, ptr %ib, i64 1
  %bs.1.0 = load float, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <8 x float> poison, float %bs.1.0, i64 0
  %bv.1.0 = shufflevector <8 x float> %bi.1.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.1.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.1.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.0, <8 x float> %w.1.0, <8 x float> %x.1.0.0)
  store <8 x float> %y.1.0.0, ptr %acc.0.0, align 64
  %x.1.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.1.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.0, <8 x float> %w.1.1, <8 x float> %x.1.0.1)
  store <8 x float> %y.1.0.1, ptr %acc.0.1, align 64
  %bp.1.1 = getelementptr inbounds float, ptr %ib, i64 9
  %bs.1.1 = load float, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <8 x float> poison, float %bs.1.1, i64 0
  %bv.1.1 = shufflevector <8 x float> %bi.1.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.1.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.1.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.1, <8 x float> %w.1.0, <8 x float> %x.1.1.0)
  store <8 x float> %y.1.1.0, ptr %acc.1.0, align 64
  %x.1.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.1.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.1, <8 x float> %w.1.1, <8 x float> %x.1.1.1)
  store <8 x float> %y.1.1.1, ptr %acc.1.1, align 64
  %bp.1.2 = getelementptr inbounds float, ptr %ib, i64 17
  %bs.1.2 = load float, ptr %bp.1.2, align 4
  %bi.1.2 = insertelement <8 x float> poison, float %bs.1.2, i64 0
  %bv.1.2 = shufflevector <8 x float> %bi.1.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.1.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.1.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.2, <8 x float> %w.1.0, <8 x float> %x.1.2.0)
  store <8 x float> %y.1.2.0, ptr %acc.2.0, align 64
  %x.1.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.1.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.2, <8 x float> %w.1.1, <8 x float> %x.1.2.1)
  store <8 x float> %y.1.2.1, ptr %acc.2.1, align 64
  %bp.1.3 = getelementptr inbounds float, ptr %ib, i64 25
  %bs.1.3 = load float, ptr %bp.1.3, align 4
  %bi.1.3 = insertelement <8 x float> poison, float %bs.1.3, i64 0
  %bv.1.3 = shufflevector <8 x float> %bi.1.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.1.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.1.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.3, <8 x float> %w.1.0, <8 x float> %x.1.3.0)
  store <8 x float> %y.1.3.0, ptr %acc.3.0, align 64
  %x.1.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.1.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.1.3, <8 x float> %w.1.1, <8 x float> %x.1.3.1)
  store <8 x float> %y.1.3.1, ptr %acc.3.1, align 64
  %wp.2.0 = getelementptr inbounds float, ptr %wb, i64 16
  %w.2.0 = load <8 x float>, ptr %wp.2.0, align 4
  %wp.2.1 = getelementptr inbounds float, ptr %wb, i64 80
  %w.2.1 = load <8 x float>, ptr %wp.2.1, align 4
  %bp.2.0 = getelementptr inbounds float, ptr %ib, i64 2
  %bs.2.0 = load float, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <8 x float> poison, float %bs.2.0, i64 0
  %bv.2.0 = shufflevector <8 x float> %bi.2.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.2.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.2.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.0, <8 x float> %w.2.0, <8 x float> %x.2.0.0)
  store <8 x float> %y.2.0.0, ptr %acc.0.0, align 64
  %x.2.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.2.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.0, <8 x float> %w.2.1, <8 x float> %x.2.0.1)
  store <8 x float> %y.2.0.1, ptr %acc.0.1, align 64
  %bp.2.1 = getelementptr inbounds float, ptr %ib, i64 10
  %bs.2.1 = load float, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <8 x float> poison, float %bs.2.1, i64 0
  %bv.2.1 = shufflevector <8 x float> %bi.2.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.2.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.2.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.1, <8 x float> %w.2.0, <8 x float> %x.2.1.0)
  store <8 x float> %y.2.1.0, ptr %acc.1.0, align 64
  %x.2.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.2.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.1, <8 x float> %w.2.1, <8 x float> %x.2.1.1)
  store <8 x float> %y.2.1.1, ptr %acc.1.1, align 64
  %bp.2.2 = getelementptr inbounds float, ptr %ib, i64 18
  %bs.2.2 = load float, ptr %bp.2.2, align 4
  %bi.2.2 = insertelement <8 x float> poison, float %bs.2.2, i64 0
  %bv.2.2 = shufflevector <8 x float> %bi.2.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.2.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.2.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.2, <8 x float> %w.2.0, <8 x float> %x.2.2.0)
  store <8 x float> %y.2.2.0, ptr %acc.2.0, align 64
  %x.2.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.2.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.2, <8 x float> %w.2.1, <8 x float> %x.2.2.1)
  store <8 x float> %y.2.2.1, ptr %acc.2.1, align 64
  %bp.2.3 = getelementptr inbounds float, ptr %ib, i64 26
  %bs.2.3 = load float, ptr %bp.2.3, align 4
  %bi.2.3 = insertelement <8 x float> poison, float %bs.2.3, i64 0
  %bv.2.3 = shufflevector <8 x float> %bi.2.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.2.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.2.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.3, <8 x float> %w.2.0, <8 x float> %x.2.3.0)
  store <8 x float> %y.2.3.0, ptr %acc.3.0, align 64
  %x.2.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.2.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.2.3, <8 x float> %w.2.1, <8 x float> %x.2.3.1)
  store <8 x float> %y.2.3.1, ptr %acc.3.1, align 64
  %wp.3.0 = getelementptr inbounds float, ptr %wb, i64 24
  %w.3.0 = load <8 x float>, ptr %wp.3.0, align 4
  %wp.3.1 = getelementptr inbounds float, ptr %wb, i64 88
  %w.3.1 = load <8 x float>, ptr %wp.3.1, align 4
  %bp.3.0 = getelementptr inbounds float, ptr %ib, i64 3
  %bs.3.0 = load float, ptr %bp.3.0, align 4
  %bi.3.0 = insertelement <8 x float> poison, float %bs.3.0, i64 0
  %bv.3.0 = shufflevector <8 x float> %bi.3.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.3.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.3.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.0, <8 x float> %w.3.0, <8 x float> %x.3.0.0)
  store <8 x float> %y.3.0.0, ptr %acc.0.0, align 64
  %x.3.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.3.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.0, <8 x float> %w.3.1, <8 x float> %x.3.0.1)
  store <8 x float> %y.3.0.1, ptr %acc.0.1, align 64
  %bp.3.1 = getelementptr inbounds float, ptr %ib, i64 11
  %bs.3.1 = load float, ptr %bp.3.1, align 4
  %bi.3.1 = insertelement <8 x float> poison, float %bs.3.1, i64 0
  %bv.3.1 = shufflevector <8 x float> %bi.3.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.3.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.3.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.1, <8 x float> %w.3.0, <8 x float> %x.3.1.0)
  store <8 x float> %y.3.1.0, ptr %acc.1.0, align 64
  %x.3.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.3.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.1, <8 x float> %w.3.1, <8 x float> %x.3.1.1)
  store <8 x float> %y.3.1.1, ptr %acc.1.1, align 64
  %bp.3.2 = getelementptr inbounds float, ptr %ib, i64 19
  %bs.3.2 = load float, ptr %bp.3.2, align 4
  %bi.3.2 = insertelement <8 x float> poison, float %bs.3.2, i64 0
  %bv.3.2 = shufflevector <8 x float> %bi.3.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.3.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.3.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.2, <8 x float> %w.3.0, <8 x float> %x.3.2.0)
  store <8 x float> %y.3.2.0, ptr %acc.2.0, align 64
  %x.3.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.3.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.2, <8 x float> %w.3.1, <8 x float> %x.3.2.1)
  store <8 x float> %y.3.2.1, ptr %acc.2.1, align 64
  %bp.3.3 = getelementptr inbounds float, ptr %ib, i64 27
  %bs.3.3 = load float, ptr %bp.3.3, align 4
  %bi.3.3 = insertelement <8 x float> poison, float %bs.3.3, i64 0
  %bv.3.3 = shufflevector <8 x float> %bi.3.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.3.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.3.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.3, <8 x float> %w.3.0, <8 x float> %x.3.3.0)
  store <8 x float> %y.3.3.0, ptr %acc.3.0, align 64
  %x.3.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.3.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.3.3, <8 x float> %w.3.1, <8 x float> %x.3.3.1)
  store <8 x float> %y.3.3.1, ptr %acc.3.1, align 64
  %wp.4.0 = getelementptr inbounds float, ptr %wb, i64 32
  %w.4.0 = load <8 x float>, ptr %wp.4.0, align 4
  %wp.4.1 = getelementptr inbounds float, ptr %wb, i64 96
  %w.4.1 = load <8 x float>, ptr %wp.4.1, align 4
  %bp.4.0 = getelementptr inbounds float, ptr %ib, i64 4
  %bs.4.0 = load float, ptr %bp.4.0, align 4
  %bi.4.0 = insertelement <8 x float> poison, float %bs.4.0, i64 0
  %bv.4.0 = shufflevector <8 x float> %bi.4.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.4.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.4.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.0, <8 x float> %w.4.0, <8 x float> %x.4.0.0)
  store <8 x float> %y.4.0.0, ptr %acc.0.0, align 64
  %x.4.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.4.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.0, <8 x float> %w.4.1, <8 x float> %x.4.0.1)
  store <8 x float> %y.4.0.1, ptr %acc.0.1, align 64
  %bp.4.1 = getelementptr inbounds float, ptr %ib, i64 12
  %bs.4.1 = load float, ptr %bp.4.1, align 4
  %bi.4.1 = insertelement <8 x float> poison, float %bs.4.1, i64 0
  %bv.4.1 = shufflevector <8 x float> %bi.4.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.4.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.4.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.1, <8 x float> %w.4.0, <8 x float> %x.4.1.0)
  store <8 x float> %y.4.1.0, ptr %acc.1.0, align 64
  %x.4.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.4.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.1, <8 x float> %w.4.1, <8 x float> %x.4.1.1)
  store <8 x float> %y.4.1.1, ptr %acc.1.1, align 64
  %bp.4.2 = getelementptr inbounds float, ptr %ib, i64 20
  %bs.4.2 = load float, ptr %bp.4.2, align 4
  %bi.4.2 = insertelement <8 x float> poison, float %bs.4.2, i64 0
  %bv.4.2 = shufflevector <8 x float> %bi.4.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.4.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.4.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.2, <8 x float> %w.4.0, <8 x float> %x.4.2.0)
  store <8 x float> %y.4.2.0, ptr %acc.2.0, align 64
  %x.4.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.4.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.2, <8 x float> %w.4.1, <8 x float> %x.4.2.1)
  store <8 x float> %y.4.2.1, ptr %acc.2.1, align 64
  %bp.4.3 = getelementptr inbounds float, ptr %ib, i64 28
  %bs.4.3 = load float, ptr %bp.4.3, align 4
  %bi.4.3 = insertelement <8 x float> poison, float %bs.4.3, i64 0
  %bv.4.3 = shufflevector <8 x float> %bi.4.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.4.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.4.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.3, <8 x float> %w.4.0, <8 x float> %x.4.3.0)
  store <8 x float> %y.4.3.0, ptr %acc.3.0, align 64
  %x.4.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.4.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.4.3, <8 x float> %w.4.1, <8 x float> %x.4.3.1)
  store <8 x float> %y.4.3.1, ptr %acc.3.1, align 64
  %wp.5.0 = getelementptr inbounds float, ptr %wb, i64 40
  %w.5.0 = load <8 x float>, ptr %wp.5.0, align 4
  %wp.5.1 = getelementptr inbounds float, ptr %wb, i64 104
  %w.5.1 = load <8 x float>, ptr %wp.5.1, align 4
  %bp.5.0 = getelementptr inbounds float, ptr %ib, i64 5
  %bs.5.0 = load float, ptr %bp.5.0, align 4
  %bi.5.0 = insertelement <8 x float> poison, float %bs.5.0, i64 0
  %bv.5.0 = shufflevector <8 x float> %bi.5.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.5.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.5.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.0, <8 x float> %w.5.0, <8 x float> %x.5.0.0)
  store <8 x float> %y.5.0.0, ptr %acc.0.0, align 64
  %x.5.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.5.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.0, <8 x float> %w.5.1, <8 x float> %x.5.0.1)
  store <8 x float> %y.5.0.1, ptr %acc.0.1, align 64
  %bp.5.1 = getelementptr inbounds float, ptr %ib, i64 13
  %bs.5.1 = load float, ptr %bp.5.1, align 4
  %bi.5.1 = insertelement <8 x float> poison, float %bs.5.1, i64 0
  %bv.5.1 = shufflevector <8 x float> %bi.5.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.5.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.5.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.1, <8 x float> %w.5.0, <8 x float> %x.5.1.0)
  store <8 x float> %y.5.1.0, ptr %acc.1.0, align 64
  %x.5.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.5.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.1, <8 x float> %w.5.1, <8 x float> %x.5.1.1)
  store <8 x float> %y.5.1.1, ptr %acc.1.1, align 64
  %bp.5.2 = getelementptr inbounds float, ptr %ib, i64 21
  %bs.5.2 = load float, ptr %bp.5.2, align 4
  %bi.5.2 = insertelement <8 x float> poison, float %bs.5.2, i64 0
  %bv.5.2 = shufflevector <8 x float> %bi.5.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.5.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.5.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.2, <8 x float> %w.5.0, <8 x float> %x.5.2.0)
  store <8 x float> %y.5.2.0, ptr %acc.2.0, align 64
  %x.5.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.5.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.2, <8 x float> %w.5.1, <8 x float> %x.5.2.1)
  store <8 x float> %y.5.2.1, ptr %acc.2.1, align 64
  %bp.5.3 = getelementptr inbounds float, ptr %ib, i64 29
  %bs.5.3 = load float, ptr %bp.5.3, align 4
  %bi.5.3 = insertelement <8 x float> poison, float %bs.5.3, i64 0
  %bv.5.3 = shufflevector <8 x float> %bi.5.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.5.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.5.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.3, <8 x float> %w.5.0, <8 x float> %x.5.3.0)
  store <8 x float> %y.5.3.0, ptr %acc.3.0, align 64
  %x.5.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.5.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.5.3, <8 x float> %w.5.1, <8 x float> %x.5.3.1)
  store <8 x float> %y.5.3.1, ptr %acc.3.1, align 64
  %wp.6.0 = getelementptr inbounds float, ptr %wb, i64 48
  %w.6.0 = load <8 x float>, ptr %wp.6.0, align 4
  %wp.6.1 = getelementptr inbounds float, ptr %wb, i64 112
  %w.6.1 = load <8 x float>, ptr %wp.6.1, align 4
  %bp.6.0 = getelementptr inbounds float, ptr %ib, i64 6
  %bs.6.0 = load float, ptr %bp.6.0, align 4
  %bi.6.0 = insertelement <8 x float> poison, float %bs.6.0, i64 0
  %bv.6.0 = shufflevector <8 x float> %bi.6.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.6.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.6.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.0, <8 x float> %w.6.0, <8 x float> %x.6.0.0)
  store <8 x float> %y.6.0.0, ptr %acc.0.0, align 64
  %x.6.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.6.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.0, <8 x float> %w.6.1, <8 x float> %x.6.0.1)
  store <8 x float> %y.6.0.1, ptr %acc.0.1, align 64
  %bp.6.1 = getelementptr inbounds float, ptr %ib, i64 14
  %bs.6.1 = load float, ptr %bp.6.1, align 4
  %bi.6.1 = insertelement <8 x float> poison, float %bs.6.1, i64 0
  %bv.6.1 = shufflevector <8 x float> %bi.6.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.6.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.6.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.1, <8 x float> %w.6.0, <8 x float> %x.6.1.0)
  store <8 x float> %y.6.1.0, ptr %acc.1.0, align 64
  %x.6.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.6.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.1, <8 x float> %w.6.1, <8 x float> %x.6.1.1)
  store <8 x float> %y.6.1.1, ptr %acc.1.1, align 64
  %bp.6.2 = getelementptr inbounds float, ptr %ib, i64 22
  %bs.6.2 = load float, ptr %bp.6.2, align 4
  %bi.6.2 = insertelement <8 x float> poison, float %bs.6.2, i64 0
  %bv.6.2 = shufflevector <8 x float> %bi.6.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.6.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.6.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.2, <8 x float> %w.6.0, <8 x float> %x.6.2.0)
  store <8 x float> %y.6.2.0, ptr %acc.2.0, align 64
  %x.6.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.6.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.2, <8 x float> %w.6.1, <8 x float> %x.6.2.1)
  store <8 x float> %y.6.2.1, ptr %acc.2.1, align 64
  %bp.6.3 = getelementptr inbounds float, ptr %ib, i64 30
  %bs.6.3 = load float, ptr %bp.6.3, align 4
  %bi.6.3 = insertelement <8 x float> poison, float %bs.6.3, i64 0
  %bv.6.3 = shufflevector <8 x float> %bi.6.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.6.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.6.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.3, <8 x float> %w.6.0, <8 x float> %x.6.3.0)
  store <8 x float> %y.6.3.0, ptr %acc.3.0, align 64
  %x.6.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.6.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.6.3, <8 x float> %w.6.1, <8 x float> %x.6.3.1)
  store <8 x float> %y.6.3.1, ptr %acc.3.1, align 64
  %wp.7.0 = getelementptr inbounds float, ptr %wb, i64 56
  %w.7.0 = load <8 x float>, ptr %wp.7.0, align 4
  %wp.7.1 = getelementptr inbounds float, ptr %wb, i64 120
  %w.7.1 = load <8 x float>, ptr %wp.7.1, align 4
  %bp.7.0 = getelementptr inbounds float, ptr %ib, i64 7
  %bs.7.0 = load float, ptr %bp.7.0, align 4
  %bi.7.0 = insertelement <8 x float> poison, float %bs.7.0, i64 0
  %bv.7.0 = shufflevector <8 x float> %bi.7.0, <8 x float> poison, <8 x i32> zeroinitializer
  %x.7.0.0 = load <8 x float>, ptr %acc.0.0, align 64
%y.7.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.0, <8 x float> %w.7.0, <8 x float> %x.7.0.0)
  store <8 x float> %y.7.0.0, ptr %acc.0.0, align 64
  %x.7.0.1 = load <8 x float>, ptr %acc.0.1, align 64
%y.7.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.0, <8 x float> %w.7.1, <8 x float> %x.7.0.1)
  store <8 x float> %y.7.0.1, ptr %acc.0.1, align 64
  %bp.7.1 = getelementptr inbounds float, ptr %ib, i64 15
  %bs.7.1 = load float, ptr %bp.7.1, align 4
  %bi.7.1 = insertelement <8 x float> poison, float %bs.7.1, i64 0
  %bv.7.1 = shufflevector <8 x float> %bi.7.1, <8 x float> poison, <8 x i32> zeroinitializer
  %x.7.1.0 = load <8 x float>, ptr %acc.1.0, align 64
%y.7.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.1, <8 x float> %w.7.0, <8 x float> %x.7.1.0)
  store <8 x float> %y.7.1.0, ptr %acc.1.0, align 64
  %x.7.1.1 = load <8 x float>, ptr %acc.1.1, align 64
%y.7.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.1, <8 x float> %w.7.1, <8 x float> %x.7.1.1)
  store <8 x float> %y.7.1.1, ptr %acc.1.1, align 64
  %bp.7.2 = getelementptr inbounds float, ptr %ib, i64 23
  %bs.7.2 = load float, ptr %bp.7.2, align 4
  %bi.7.2 = insertelement <8 x float> poison, float %bs.7.2, i64 0
  %bv.7.2 = shufflevector <8 x float> %bi.7.2, <8 x float> poison, <8 x i32> zeroinitializer
  %x.7.2.0 = load <8 x float>, ptr %acc.2.0, align 64
%y.7.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.2, <8 x float> %w.7.0, <8 x float> %x.7.2.0)
  store <8 x float> %y.7.2.0, ptr %acc.2.0, align 64
  %x.7.2.1 = load <8 x float>, ptr %acc.2.1, align 64
%y.7.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.2, <8 x float> %w.7.1, <8 x float> %x.7.2.1)
  store <8 x float> %y.7.2.1, ptr %acc.2.1, align 64
  %bp.7.3 = getelementptr inbounds float, ptr %ib, i64 31
  %bs.7.3 = load float, ptr %bp.7.3, align 4
  %bi.7.3 = insertelement <8 x float> poison, float %bs.7.3, i64 0
  %bv.7.3 = shufflevector <8 x float> %bi.7.3, <8 x float> poison, <8 x i32> zeroinitializer
  %x.7.3.0 = load <8 x float>, ptr %acc.3.0, align 64
%y.7.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.3, <8 x float> %w.7.0, <8 x float> %x.7.3.0)
  store <8 x float> %y.7.3.0, ptr %acc.3.0, align 64
  %x.7.3.1 = load <8 x float>, ptr %acc.3.1, align 64
%y.7.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %bv.7.3, <8 x float> %w.7.1, <8 x float> %x.7.3.1)
  store <8 x float> %y.7.3.1, ptr %acc.3.1, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; out = acc * scale
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <8 x float>, ptr %acc.0.0, align 64
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <8 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.0.0
  %new.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.0.0, <8 x float> %scale, <8 x float> %base.0.0)
  store <8 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <8 x float>, ptr %acc.0.1, align 64
  %op.0.1 = getelementptr inbounds float, ptr %out, i64 128
  %old.0.1 = load <8 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.0.1
  %new.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.0.1, <8 x float> %scale, <8 x float> %base.0.1)
  store <8 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <8 x float>, ptr %acc.1.0, align 64
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 8
  %old.1.0 = load <8 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.1.0
  %new.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.1.0, <8 x float> %scale, <8 x float> %base.1.0)
  store <8 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <8 x float>, ptr %acc.1.1, align 64
  %op.1.1 = getelementptr inbounds float, ptr %out, i64 136
  %old.1.1 = load <8 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.1.1
  %new.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.1.1, <8 x float> %scale, <8 x float> %base.1.1)
  store <8 x float> %new.1.1, ptr %op.1.1, align 4
  %fa.2.0 = load <8 x float>, ptr %acc.2.0, align 64
  %op.2.0 = getelementptr inbounds float, ptr %out, i64 16
  %old.2.0 = load <8 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.2.0
  %new.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.2.0, <8 x float> %scale, <8 x float> %base.2.0)
  store <8 x float> %new.2.0, ptr %op.2.0, align 4
  %fa.2.1 = load <8 x float>, ptr %acc.2.1, align 64
  %op.2.1 = getelementptr inbounds float, ptr %out, i64 144
  %old.2.1 = load <8 x float>, ptr %op.2.1, align 4
  %base.2.1 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.2.1
  %new.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.2.1, <8 x float> %scale, <8 x float> %base.2.1)
  store <8 x float> %new.2.1, ptr %op.2.1, align 4
  %fa.3.0 = load <8 x float>, ptr %acc.3.0, align 64
  %op.3.0 = getelementptr inbounds float, ptr %out, i64 24
  %old.3.0 = load <8 x float>, ptr %op.3.0, align 4
  %base.3.0 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.3.0
  %new.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.3.0, <8 x float> %scale, <8 x float> %base.3.0)
  store <8 x float> %new.3.0, ptr %op.3.0, align 4
  %fa.3.1 = load <8 x float>, ptr %acc.3.1, align 64
  %op.3.1 = getelementptr inbounds float, ptr %out, i64 152
  %old.3.1 = load <8 x float>, ptr %op.3.1, align 4
  %base.3.1 = select i1 %first, <8 x float> zeroinitializer, <8 x float> %old.3.1
  %new.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.3.1, <8 x float> %scale, <8 x float> %base.3.1)
  store <8 x float> %new.3.1, ptr %op.3.1, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 1
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <8 x float>, ptr %mx, align 64
  %yo.0.0 = load <8 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.0.0)
  %m.0.0 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.in, <8 x float> %ya.0.0)
  %yo.0.1 = load <8 x float>, ptr %op.0.1, align 4
  %ya.0.1 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.0.1)
  %m.0.1 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.0.0, <8 x float> %ya.0.1)
  %yo.1.0 = load <8 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.1.0)
  %m.1.0 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.0.1, <8 x float> %ya.1.0)
  %yo.1.1 = load <8 x float>, ptr %op.1.1, align 4
  %ya.1.1 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.1.1)
  %m.1.1 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.1.0, <8 x float> %ya.1.1)
  %yo.2.0 = load <8 x float>, ptr %op.2.0, align 4
  %ya.2.0 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.2.0)
  %m.2.0 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.1.1, <8 x float> %ya.2.0)
  %yo.2.1 = load <8 x float>, ptr %op.2.1, align 4
  %ya.2.1 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.2.1)
  %m.2.1 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.2.0, <8 x float> %ya.2.1)
  %yo.3.0 = load <8 x float>, ptr %op.3.0, align 4
  %ya.3.0 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.3.0)
  %m.3.0 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.2.1, <8 x float> %ya.3.0)
  %yo.3.1 = load <8 x float>, ptr %op.3.1, align 4
  %ya.3.1 = call <8 x float> @llvm.fabs.v8f32(<8 x float> %yo.3.1)
  %m.3.1 = call <8 x float> @llvm.maxnum.v8f32(<8 x float> %m.3.0, <8 x float> %ya.3.1)
  store <8 x float> %m.3.1, ptr %mx, align 64
  ret void
}

; Runs work items [begin, end): item = (image, channel group, row block) in order nk.
define void @dfpgen_fprop(ptr noalias %in, ptr noalias %wt, ptr noalias %out, float %scale, ptr noalias %maxabs, i64 %begin, i64 %end) nounwind {
entry:
  %mx = alloca <8 x float>, align 64
  store <8 x float> zeroinitializer, ptr %mx, align 64
  %scale.i = insertelement <8 x float> poison, float %scale, i64 0
  %scale.v = shufflevector <8 x float> %scale.i, <8 x float> poison, <8 x i32> zeroinitializer
  %none = icmp sge i64 %begin, %end
  br i1 %none, label %done, label %item

item:
  %it = phi i64 [ %begin, %entry ], [ %it.next, %item.end ]
  %n = udiv i64 %it, 4
  %rest = urem i64 %it, 4
  %kg = udiv i64 %rest, 4
  %rb = urem i64 %rest, 4
  %in.n = mul i64 %n, 128
  %in.r = mul i64 %rb, 32
  %in.off = add i64 %in.n, %in.r
  %in.row = getelementptr inbounds float, ptr %in, i64 %in.off
  %w.off = mul i64 %kg, 128
  %wt.grp = getelementptr inbounds float, ptr %wt, i64 %w.off
  %out.n = mul i64 %n, 256
  %out.k = mul i64 %kg, 256
  %out.r = mul i64 %rb, 32
  %out.nk = add i64 %out.n, %out.k
  %out.off = add i64 %out.nk, %out.r
  %out.row = getelementptr inbounds float, ptr %out, i64 %out.off
  %row.tail = icmp eq i64 %rb, 3
  %grp.tail = icmp eq i64 %kg, 0
  %code.r = select i1 %row.tail, i32 0, i32 0
  %code.g = select i1 %grp.tail, i32 0, i32 0
  %code = or i32 %code.r, %code.g
  switch i32 %code, label %c0.pre [ ]

c0.pre:
  br label %c0s0.head
c0s0.head:
  %c0s0.q = phi i64 [ 0, %c0.pre ], [ %c0s0.q.next, %c0s0.head ]
  %c0s0.qi0 = mul i64 %c0s0.q, 32
  %c0s0.qi = add i64 %c0s0.qi0, 0
  %c0s0.qo0 = mul i64 %c0s0.q, 32
  %c0s0.qo = add i64 %c0s0.qo0, 0
  %c0s0.ip = getelementptr inbounds float, ptr %in.row, i64 %c0s0.qi
  %c0s0.op = getelementptr inbounds float, ptr %out.row, i64 %c0s0.qo
  call void @tile_h1_w4_v2(ptr %c0s0.ip, ptr %wt.grp, ptr %c0s0.op, <8 x float> %scale.v, ptr %mx)
  %c0s0.q.next = add nuw i64 %c0s0.q, 1
  %c0s0.q.more = icmp ult i64 %c0s0.q.next, 1
  br i1 %c0s0.q.more, label %c0s0.head, label %c0s0.post
c0s0.post:
  br label %item.end

item.end:
  %it.next = add nsw i64 %it, 1
  %it.more = icmp slt i64 %it.next, %end
  br i1 %it.more, label %item, label %done

done:
  %mv = load <8 x float>, ptr %mx, align 64
  %m = call float @llvm.vector.reduce.fmax.v8f32(<8 x float> %mv)
  store float %m, ptr %maxabs, align 4
  ret void
}
