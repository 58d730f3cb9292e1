; dfpgen 0.1.0 -- generated kernel, do not edit
; layer tails: N=2 C=6 K=40 3x3 -> 3x3 kernel 3x3 stride 1 pad 1
; pass fprop, isa avx512_vnni (vpdpwssd, 16 lanes), cpu sapphirerapids
; blocking kv2 w2 h2 cpb3 u3 nk
; register block 2x2 pixels x 2 vectors: 11 of 32 vector registers
; layouts: input [2, 1, 5, 5, 6] weights [3, 1, 3, 3, 3, 16, 2] output [2, 3, 3, 3, 16]
; reduction: 9 steps of 3 channel elements
; numerics: bits x14/w14, overflow exact, chain 15 pair-instructions (safe 16), flush INT32->FP32 every 5 steps, 2 flushes per tile
; work items: 8 = N 2 x groups 2 x row blocks 2, order nk
@in_steps = private unnamed_addr constant [9 x i32] [i32 0, i32 6, i32 12, i32 30, i32 36, i32 42, i32 60, i32 66, i32 72]
@w_steps = private unnamed_addr constant [9 x i32] [i32 0, i32 96, i32 192, i32 288, i32 384, i32 480, i32 576, i32 672, i32 768]

declare <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32>, <32 x i16>, <32 x i16>)
declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)
declare <16 x float> @llvm.fabs.v16f32(<16 x float>)
declare <16 x float> @llvm.maxnum.v16f32(<16 x float>, <16 x float>)
declare float @llvm.vector.reduce.fmax.v16f32(<16 x float>)
; register block 2x2 pixels x 2 vectors = 8 accumulators
define internal void @tile_h2_w2_v2(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.1.1 = alloca <16 x i32>, align 64
  %acc.2.0 = alloca <16 x i32>, align 64
  %acc.2.1 = alloca <16 x i32>, align 64
  %acc.3.0 = alloca <16 x i32>, align 64
  %acc.3.1 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.0.1, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.1, align 64
  store <16 x i32> zeroinitializer, ptr %acc.2.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.2.1, align 64
  store <16 x i32> zeroinitializer, ptr %acc.3.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.3.1, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %wp.0.1 = getelementptr inbounds i16, ptr %wb, i64 864
  %w.0.1 = load <32 x i16>, ptr %wp.0.1, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %x.0.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.0.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.1, <32 x i16> %b.0.0, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.0.1, ptr %acc.0.1, align 64
  %bp.0.1 = getelementptr inbounds i16, ptr %ib, i64 6
  %bs.0.1 = load i32, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <16 x i32> poison, i32 %bs.0.1, i64 0
  %bv.0.1 = shufflevector <16 x i32> %bi.0.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.1 = bitcast <16 x i32> %bv.0.1 to <32 x i16>
  %x.0.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.0.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.0, <32 x i16> %b.0.1, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.1.0, ptr %acc.1.0, align 64
  %x.0.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.0.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.1, <32 x i16> %b.0.1, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.1.1, ptr %acc.1.1, align 64
  %bp.0.2 = getelementptr inbounds i16, ptr %ib, i64 30
  %bs.0.2 = load i32, ptr %bp.0.2, align 4
  %bi.0.2 = insertelement <16 x i32> poison, i32 %bs.0.2, i64 0
  %bv.0.2 = shufflevector <16 x i32> %bi.0.2, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.2 = bitcast <16 x i32> %bv.0.2 to <32 x i16>
  %x.0.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
%y.0.2.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.2.0, <32 x i16> %b.0.2, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.2.0, ptr %acc.2.0, align 64
  %x.0.2.1 = load <16 x i32>, ptr %acc.2.1, align 64
%y.0.2.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.2.1, <32 x i16> %b.0.2, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.2.1, ptr %acc.2.1, align 64
  %bp.0.3 = getelementptr inbounds i16, ptr %ib, i64 36
  %bs.0.3 = load i32, ptr %bp.0.3, align 4
  %bi.0.3 = insertelement <16 x i32> poison, i32 %bs.0.3, i64 0
  %bv.0.3 = shufflevector <16 x i32> %bi.0.3, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.3 = bitcast <16 x i32> %bv.0.3 to <32 x i16>
  %x.0.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
%y.0.3.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.3.0, <32 x i16> %b.0.3, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.3.0, ptr %acc.3.0, align 64
  %x.0.3.1 = load <16 x i32>, ptr %acc.3.1, align 64
%y.0.3.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.3.1, <32 x i16> %b.0.3, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.3.1, ptr %acc.3.1, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %wp.1.1 = getelementptr inbounds i16, ptr %wb, i64 896
  %w.1.1 = load <32 x i16>, ptr %wp.1.1, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %x.1.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.1.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.1, <32 x i16> %b.1.0, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.0.1, ptr %acc.0.1, align 64
  %bp.1.1 = getelementptr inbounds i16, ptr %ib, i64 8
  %bs.1.1 = load i32, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <16 x i32> poison, i32 %bs.1.1, i64 0
  %bv.1.1 = shufflevector <16 x i32> %bi.1.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.1 = bitcast <16 x i32> %bv.1.1 to <32 x i16>
  %x.1.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.1.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.0, <32 x i16> %b.1.1, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.1.0, ptr %acc.1.0, align 64
  %x.1.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.1.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.1, <32 x i16> %b.1.1, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.1.1, ptr %acc.1.1, align 64
  %bp.1.2 = getelementptr inbounds i16, ptr %ib, i64 32
  %bs.1.2 = load i32, ptr %bp.1.2, align 4
  %bi.1.2 = insertelement <16 x i32> poison, i32 %bs.1.2, i64 0
  %bv.1.2 = shufflevector <16 x i32> %bi.1.2, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.2 = bitcast <16 x i32> %bv.1.2 to <32 x i16>
  %x.1.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
%y.1.2.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.2.0, <32 x i16> %b.1.2, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.2.0, ptr %acc.2.0, align 64
  %x.1.2.1 = load <16 x i32>, ptr %acc.2.1, align 64
%y.1.2.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.2.1, <32 x i16> %b.1.2, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.2.1, ptr %acc.2.1, align 64
  %bp.1.3 = getelementptr inbounds i16, ptr %ib, i64 38
  %bs.1.3 = load i32, ptr %bp.1.3, align 4
  %bi.1.3 = insertelement <16 x i32> poison, i32 %bs.1.3, i64 0
  %bv.1.3 = shufflevector <16 x i32> %bi.1.3, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.3 = bitcast <16 x i32> %bv.1.3 to <32 x i16>
  %x.1.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
%y.1.3.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.3.0, <32 x i16> %b.1.3, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.3.0, ptr %acc.3.0, align 64
  %x.1.3.1 = load <16 x i32>, ptr %acc.3.1, align 64
%y.1.3.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.3.1, <32 x i16> %b.1.3, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.3.1, ptr %acc.3.1, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %wp.2.1 = getelementptr inbounds i16, ptr %wb, i64 928
  %w.2.1 = load <32 x i16>, ptr %wp.2.1, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %x.2.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.2.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.1, <32 x i16> %b.2.0, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.0.1, ptr %acc.0.1, align 64
  %bp.2.1 = getelementptr inbounds i16, ptr %ib, i64 10
  %bs.2.1 = load i32, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <16 x i32> poison, i32 %bs.2.1, i64 0
  %bv.2.1 = shufflevector <16 x i32> %bi.2.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.1 = bitcast <16 x i32> %bv.2.1 to <32 x i16>
  %x.2.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.2.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.0, <32 x i16> %b.2.1, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.1.0, ptr %acc.1.0, align 64
  %x.2.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.2.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.1, <32 x i16> %b.2.1, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.1.1, ptr %acc.1.1, align 64
  %bp.2.2 = getelementptr inbounds i16, ptr %ib, i64 34
  %bs.2.2 = load i32, ptr %bp.2.2, align 4
  %bi.2.2 = insertelement <16 x i32> poison, i32 %bs.2.2, i64 0
  %bv.2.2 = shufflevector <16 x i32> %bi.2.2, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.2 = bitcast <16 x i32> %bv.2.2 to <32 x i16>
  %x.2.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
%y.2.2.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.2.0, <32 x i16> %b.2.2, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.2.0, ptr %acc.2.0, align 64
  %x.2.2.1 = load <16 x i32>, ptr %acc.2.1, align 64
%y.2.2.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.2.1, <32 x i16> %b.2.2, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.2.1, ptr %acc.2.1, align 64
  %bp.2.3 = getelementptr inbounds i16, ptr %ib, i64 40
  %bs.2.3 = load i32, ptr %bp.2.3, align 4
  %bi.2.3 = insertelement <16 x i32> poison, i32 %bs.2.3, i64 0
  %bv.2.3 = shufflevector <16 x i32> %bi.2.3, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.3 = bitcast <16 x i32> %bv.2.3 to <32 x i16>
  %x.2.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
%y.2.3.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.3.0, <32 x i16> %b.2.3, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.3.0, ptr %acc.3.0, align 64
  %x.2.3.1 = load <16 x i32>, ptr %acc.3.1, align 64
%y.2.3.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.3.1, <32 x i16> %b.2.3, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.3.1, ptr %acc.3.1, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %out, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %ff.1.1 = sitofp <16 x i32> %fa.1.1 to <16 x float>
  %op.1.1 = getelementptr inbounds float, ptr %out, i64 160
  %old.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.1
  %new.1.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.1, <16 x float> %scale, <16 x float> %base.1.1)
  store <16 x float> %new.1.1, ptr %op.1.1, align 4
  %fa.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %ff.2.0 = sitofp <16 x i32> %fa.2.0 to <16 x float>
  %op.2.0 = getelementptr inbounds float, ptr %out, i64 48
  %old.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.2.0
  %new.2.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.0, <16 x float> %scale, <16 x float> %base.2.0)
  store <16 x float> %new.2.0, ptr %op.2.0, align 4
  %fa.2.1 = load <16 x i32>, ptr %acc.2.1, align 64
  %ff.2.1 = sitofp <16 x i32> %fa.2.1 to <16 x float>
  %op.2.1 = getelementptr inbounds float, ptr %out, i64 192
  %old.2.1 = load <16 x float>, ptr %op.2.1, align 4
  %base.2.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.2.1
  %new.2.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.1, <16 x float> %scale, <16 x float> %base.2.1)
  store <16 x float> %new.2.1, ptr %op.2.1, align 4
  %fa.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
  %ff.3.0 = sitofp <16 x i32> %fa.3.0 to <16 x float>
  %op.3.0 = getelementptr inbounds float, ptr %out, i64 64
  %old.3.0 = load <16 x float>, ptr %op.3.0, align 4
  %base.3.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.3.0
  %new.3.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.3.0, <16 x float> %scale, <16 x float> %base.3.0)
  store <16 x float> %new.3.0, ptr %op.3.0, align 4
  %fa.3.1 = load <16 x i32>, ptr %acc.3.1, align 64
  %ff.3.1 = sitofp <16 x i32> %fa.3.1 to <16 x float>
  %op.3.1 = getelementptr inbounds float, ptr %out, i64 208
  %old.3.1 = load <16 x float>, ptr %op.3.1, align 4
  %base.3.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.3.1
  %new.3.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.3.1, <16 x float> %scale, <16 x float> %base.3.1)
  store <16 x float> %new.3.1, ptr %op.3.1, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %ya.0.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.1)
  %m.0.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.0.1)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.1, <16 x float> %ya.1.0)
  %yo.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %ya.1.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.1)
  %m.1.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.1.0, <16 x float> %ya.1.1)
  %yo.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %ya.2.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.2.0)
  %m.2.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.1.1, <16 x float> %ya.2.0)
  %yo.2.1 = load <16 x float>, ptr %op.2.1, align 4
  %ya.2.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.2.1)
  %m.2.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.2.0, <16 x float> %ya.2.1)
  %yo.3.0 = load <16 x float>, ptr %op.3.0, align 4
  %ya.3.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.3.0)
  %m.3.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.2.1, <16 x float> %ya.3.0)
  %yo.3.1 = load <16 x float>, ptr %op.3.1, align 4
  %ya.3.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.3.1)
  %m.3.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.3.0, <16 x float> %ya.3.1)
  store <16 x float> %m.3.1, ptr %mx, align 64
  ret void
}
; register block 2x2 pixels x 1 vectors = 4 accumulators
define internal void @tile_h2_w2_v1(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.2.0 = alloca <16 x i32>, align 64
  %acc.3.0 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.2.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.3.0, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %bp.0.1 = getelementptr inbounds i16, ptr %ib, i64 6
  %bs.0.1 = load i32, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <16 x i32> poison, i32 %bs.0.1, i64 0
  %bv.0.1 = shufflevector <16 x i32> %bi.0.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.1 = bitcast <16 x i32> %bv.0.1 to <32 x i16>
  %x.0.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.0.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.0, <32 x i16> %b.0.1, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.1.0, ptr %acc.1.0, align 64
  %bp.0.2 = getelementptr inbounds i16, ptr %ib, i64 30
  %bs.0.2 = load i32, ptr %bp.0.2, align 4
  %bi.0.2 = insertelement <16 x i32> poison, i32 %bs.0.2, i64 0
  %bv.0.2 = shufflevector <16 x i32> %bi.0.2, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.2 = bitcast <16 x i32> %bv.0.2 to <32 x i16>
  %x.0.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
%y.0.2.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.2.0, <32 x i16> %b.0.2, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.2.0, ptr %acc.2.0, align 64
  %bp.0.3 = getelementptr inbounds i16, ptr %ib, i64 36
  %bs.0.3 = load i32, ptr %bp.0.3, align 4
  %bi.0.3 = insertelement <16 x i32> poison, i32 %bs.0.3, i64 0
  %bv.0.3 = shufflevector <16 x i32> %bi.0.3, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.3 = bitcast <16 x i32> %bv.0.3 to <32 x i16>
  %x.0.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
%y.0.3.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.3.0, <32 x i16> %b.0.3, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.3.0, ptr %acc.3.0, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %bp.1.1 = getelementptr inbounds i16, ptr %ib, i64 8
  %bs.1.1 = load i32, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <16 x i32> poison, i32 %bs.1.1, i64 0
  %bv.1.1 = shufflevector <16 x i32> %bi.1.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.1 = bitcast <16 x i32> %bv.1.1 to <32 x i16>
  %x.1.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.1.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.0, <32 x i16> %b.1.1, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.1.0, ptr %acc.1.0, align 64
  %bp.1.2 = getelementptr inbounds i16, ptr %ib, i64 32
  %bs.1.2 = load i32, ptr %bp.1.2, align 4
  %bi.1.2 = insertelement <16 x i32> poison, i32 %bs.1.2, i64 0
  %bv.1.2 = shufflevector <16 x i32> %bi.1.2, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.2 = bitcast <16 x i32> %bv.1.2 to <32 x i16>
  %x.1.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
%y.1.2.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.2.0, <32 x i16> %b.1.2, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.2.0, ptr %acc.2.0, align 64
  %bp.1.3 = getelementptr inbounds i16, ptr %ib, i64 38
  %bs.1.3 = load i32, ptr %bp.1.3, align 4
  %bi.1.3 = insertelement <16 x i32> poison, i32 %bs.1.3, i64 0
  %bv.1.3 = shufflevector <16 x i32> %bi.1.3, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.3 = bitcast <16 x i32> %bv.1.3 to <32 x i16>
  %x.1.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
%y.1.3.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.3.0, <32 x i16> %b.1.3, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.3.0, ptr %acc.3.0, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %bp.2.1 = getelementptr inbounds i16, ptr %ib, i64 10
  %bs.2.1 = load i32, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <16 x i32> poison, i32 %bs.2.1, i64 0
  %bv.2.1 = shufflevector <16 x i32> %bi.2.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.1 = bitcast <16 x i32> %bv.2.1 to <32 x i16>
  %x.2.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.2.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.0, <32 x i16> %b.2.1, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.1.0, ptr %acc.1.0, align 64
  %bp.2.2 = getelementptr inbounds i16, ptr %ib, i64 34
  %bs.2.2 = load i32, ptr %bp.2.2, align 4
  %bi.2.2 = insertelement <16 x i32> poison, i32 %bs.2.2, i64 0
  %bv.2.2 = shufflevector <16 x i32> %bi.2.2, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.2 = bitcast <16 x i32> %bv.2.2 to <32 x i16>
  %x.2.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
%y.2.2.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.2.0, <32 x i16> %b.2.2, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.2.0, ptr %acc.2.0, align 64
  %bp.2.3 = getelementptr inbounds i16, ptr %ib, i64 40
  %bs.2.3 = load i32, ptr %bp.2.3, align 4
  %bi.2.3 = insertelement <16 x i32> poison, i32 %bs.2.3, i64 0
  %bv.2.3 = shufflevector <16 x i32> %bi.2.3, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.3 = bitcast <16 x i32> %bv.2.3 to <32 x i16>
  %x.2.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
%y.2.3.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.3.0, <32 x i16> %b.2.3, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.3.0, ptr %acc.3.0, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %ff.2.0 = sitofp <16 x i32> %fa.2.0 to <16 x float>
  %op.2.0 = getelementptr inbounds float, ptr %out, i64 48
  %old.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.2.0
  %new.2.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.0, <16 x float> %scale, <16 x float> %base.2.0)
  store <16 x float> %new.2.0, ptr %op.2.0, align 4
  %fa.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
  %ff.3.0 = sitofp <16 x i32> %fa.3.0 to <16 x float>
  %op.3.0 = getelementptr inbounds float, ptr %out, i64 64
  %old.3.0 = load <16 x float>, ptr %op.3.0, align 4
  %base.3.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.3.0
  %new.3.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.3.0, <16 x float> %scale, <16 x float> %base.3.0)
  store <16 x float> %new.3.0, ptr %op.3.0, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.1.0)
  %yo.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %ya.2.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.2.0)
  %m.2.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.1.0, <16 x float> %ya.2.0)
  %yo.3.0 = load <16 x float>, ptr %op.3.0, align 4
  %ya.3.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.3.0)
  %m.3.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.2.0, <16 x float> %ya.3.0)
  store <16 x float> %m.3.0, ptr %mx, align 64
  ret void
}
; register block 2x1 pixels x 2 vectors = 4 accumulators
define internal void @tile_h2_w1_v2(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.1.1 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.0.1, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.1, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %wp.0.1 = getelementptr inbounds i16, ptr %wb, i64 864
  %w.0.1 = load <32 x i16>, ptr %wp.0.1, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %x.0.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.0.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.1, <32 x i16> %b.0.0, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.0.1, ptr %acc.0.1, align 64
  %bp.0.1 = getelementptr inbounds i16, ptr %ib, i64 30
  %bs.0.1 = load i32, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <16 x i32> poison, i32 %bs.0.1, i64 0
  %bv.0.1 = shufflevector <16 x i32> %bi.0.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.1 = bitcast <16 x i32> %bv.0.1 to <32 x i16>
  %x.0.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.0.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.0, <32 x i16> %b.0.1, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.1.0, ptr %acc.1.0, align 64
  %x.0.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.0.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.1, <32 x i16> %b.0.1, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.1.1, ptr %acc.1.1, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %wp.1.1 = getelementptr inbounds i16, ptr %wb, i64 896
  %w.1.1 = load <32 x i16>, ptr %wp.1.1, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %x.1.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.1.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.1, <32 x i16> %b.1.0, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.0.1, ptr %acc.0.1, align 64
  %bp.1.1 = getelementptr inbounds i16, ptr %ib, i64 32
  %bs.1.1 = load i32, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <16 x i32> poison, i32 %bs.1.1, i64 0
  %bv.1.1 = shufflevector <16 x i32> %bi.1.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.1 = bitcast <16 x i32> %bv.1.1 to <32 x i16>
  %x.1.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.1.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.0, <32 x i16> %b.1.1, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.1.0, ptr %acc.1.0, align 64
  %x.1.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.1.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.1, <32 x i16> %b.1.1, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.1.1, ptr %acc.1.1, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %wp.2.1 = getelementptr inbounds i16, ptr %wb, i64 928
  %w.2.1 = load <32 x i16>, ptr %wp.2.1, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %x.2.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.2.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.1, <32 x i16> %b.2.0, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.0.1, ptr %acc.0.1, align 64
  %bp.2.1 = getelementptr inbounds i16, ptr %ib, i64 34
  %bs.2.1 = load i32, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <16 x i32> poison, i32 %bs.2.1, i64 0
  %bv.2.1 = shufflevector <16 x i32> %bi.2.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.1 = bitcast <16 x i32> %bv.2.1 to <32 x i16>
  %x.2.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.2.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.0, <32 x i16> %b.2.1, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.1.0, ptr %acc.1.0, align 64
  %x.2.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.2.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.1, <32 x i16> %b.2.1, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.1.1, ptr %acc.1.1, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %out, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 48
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %ff.1.1 = sitofp <16 x i32> %fa.1.1 to <16 x float>
  %op.1.1 = getelementptr inbounds float, ptr %out, i64 192
  %old.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.1
  %new.1.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.1, <16 x float> %scale, <16 x float> %base.1.1)
  store <16 x float> %new.1.1, ptr %op.1.1, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %ya.0.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.1)
  %m.0.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.0.1)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.1, <16 x float> %ya.1.0)
  %yo.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %ya.1.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.1)
  %m.1.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.1.0, <16 x float> %ya.1.1)
  store <16 x float> %m.1.1, ptr %mx, align 64
  ret void
}
; register block 2x1 pixels x 1 vectors = 2 accumulators
define internal void @tile_h2_w1_v1(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.0, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %bp.0.1 = getelementptr inbounds i16, ptr %ib, i64 30
  %bs.0.1 = load i32, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <16 x i32> poison, i32 %bs.0.1, i64 0
  %bv.0.1 = shufflevector <16 x i32> %bi.0.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.1 = bitcast <16 x i32> %bv.0.1 to <32 x i16>
  %x.0.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.0.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.0, <32 x i16> %b.0.1, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.1.0, ptr %acc.1.0, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %bp.1.1 = getelementptr inbounds i16, ptr %ib, i64 32
  %bs.1.1 = load i32, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <16 x i32> poison, i32 %bs.1.1, i64 0
  %bv.1.1 = shufflevector <16 x i32> %bi.1.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.1 = bitcast <16 x i32> %bv.1.1 to <32 x i16>
  %x.1.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.1.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.0, <32 x i16> %b.1.1, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.1.0, ptr %acc.1.0, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %bp.2.1 = getelementptr inbounds i16, ptr %ib, i64 34
  %bs.2.1 = load i32, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <16 x i32> poison, i32 %bs.2.1, i64 0
  %bv.2.1 = shufflevector <16 x i32> %bi.2.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.1 = bitcast <16 x i32> %bv.2.1 to <32 x i16>
  %x.2.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.2.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.0, <32 x i16> %b.2.1, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.1.0, ptr %acc.1.0, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 48
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.1.0)
  store <16 x float> %m.1.0, ptr %mx, align 64
  ret void
}
; register block 1x2 pixels x 2 vectors = 4 accumulators
define internal void @tile_h1_w2_v2(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.1.1 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.0.1, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.1, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %wp.0.1 = getelementptr inbounds i16, ptr %wb, i64 864
  %w.0.1 = load <32 x i16>, ptr %wp.0.1, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %x.0.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.0.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.1, <32 x i16> %b.0.0, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.0.1, ptr %acc.0.1, align 64
  %bp.0.1 = getelementptr inbounds i16, ptr %ib, i64 6
  %bs.0.1 = load i32, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <16 x i32> poison, i32 %bs.0.1, i64 0
  %bv.0.1 = shufflevector <16 x i32> %bi.0.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.1 = bitcast <16 x i32> %bv.0.1 to <32 x i16>
  %x.0.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.0.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.0, <32 x i16> %b.0.1, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.1.0, ptr %acc.1.0, align 64
  %x.0.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.0.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.1, <32 x i16> %b.0.1, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.1.1, ptr %acc.1.1, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %wp.1.1 = getelementptr inbounds i16, ptr %wb, i64 896
  %w.1.1 = load <32 x i16>, ptr %wp.1.1, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %x.1.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.1.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.1, <32 x i16> %b.1.0, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.0.1, ptr %acc.0.1, align 64
  %bp.1.1 = getelementptr inbounds i16, ptr %ib, i64 8
  %bs.1.1 = load i32, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <16 x i32> poison, i32 %bs.1.1, i64 0
  %bv.1.1 = shufflevector <16 x i32> %bi.1.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.1 = bitcast <16 x i32> %bv.1.1 to <32 x i16>
  %x.1.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.1.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.0, <32 x i16> %b.1.1, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.1.0, ptr %acc.1.0, align 64
  %x.1.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.1.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.1, <32 x i16> %b.1.1, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.1.1, ptr %acc.1.1, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %wp.2.1 = getelementptr inbounds i16, ptr %wb, i64 928
  %w.2.1 = load <32 x i16>, ptr %wp.2.1, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %x.2.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.2.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.1, <32 x i16> %b.2.0, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.0.1, ptr %acc.0.1, align 64
  %bp.2.1 = getelementptr inbounds i16, ptr %ib, i64 10
  %bs.2.1 = load i32, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <16 x i32> poison, i32 %bs.2.1, i64 0
  %bv.2.1 = shufflevector <16 x i32> %bi.2.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.1 = bitcast <16 x i32> %bv.2.1 to <32 x i16>
  %x.2.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.2.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.0, <32 x i16> %b.2.1, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.1.0, ptr %acc.1.0, align 64
  %x.2.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
%y.2.1.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.1, <32 x i16> %b.2.1, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.1.1, ptr %acc.1.1, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %out, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %ff.1.1 = sitofp <16 x i32> %fa.1.1 to <16 x float>
  %op.1.1 = getelementptr inbounds float, ptr %out, i64 160
  %old.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.1
  %new.1.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.1, <16 x float> %scale, <16 x float> %base.1.1)
  store <16 x float> %new.1.1, ptr %op.1.1, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %ya.0.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.1)
  %m.0.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.0.1)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.1, <16 x float> %ya.1.0)
  %yo.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %ya.1.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.1)
  %m.1.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.1.0, <16 x float> %ya.1.1)
  store <16 x float> %m.1.1, ptr %mx, align 64
  ret void
}
; register block 1x2 pixels x 1 vectors = 2 accumulators
define internal void @tile_h1_w2_v1(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.1.0, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %bp.0.1 = getelementptr inbounds i16, ptr %ib, i64 6
  %bs.0.1 = load i32, ptr %bp.0.1, align 4
  %bi.0.1 = insertelement <16 x i32> poison, i32 %bs.0.1, i64 0
  %bv.0.1 = shufflevector <16 x i32> %bi.0.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.1 = bitcast <16 x i32> %bv.0.1 to <32 x i16>
  %x.0.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.0.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.1.0, <32 x i16> %b.0.1, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.1.0, ptr %acc.1.0, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %bp.1.1 = getelementptr inbounds i16, ptr %ib, i64 8
  %bs.1.1 = load i32, ptr %bp.1.1, align 4
  %bi.1.1 = insertelement <16 x i32> poison, i32 %bs.1.1, i64 0
  %bv.1.1 = shufflevector <16 x i32> %bi.1.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.1 = bitcast <16 x i32> %bv.1.1 to <32 x i16>
  %x.1.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.1.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.1.0, <32 x i16> %b.1.1, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.1.0, ptr %acc.1.0, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %bp.2.1 = getelementptr inbounds i16, ptr %ib, i64 10
  %bs.2.1 = load i32, ptr %bp.2.1, align 4
  %bi.2.1 = insertelement <16 x i32> poison, i32 %bs.2.1, i64 0
  %bv.2.1 = shufflevector <16 x i32> %bi.2.1, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.1 = bitcast <16 x i32> %bv.2.1 to <32 x i16>
  %x.2.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
%y.2.1.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.1.0, <32 x i16> %b.2.1, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.1.0, ptr %acc.1.0, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %out, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.1.0)
  store <16 x float> %m.1.0, ptr %mx, align 64
  ret void
}
; register block 1x1 pixels x 2 vectors = 2 accumulators
define internal void @tile_h1_w1_v2(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  store <16 x i32> zeroinitializer, ptr %acc.0.1, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %wp.0.1 = getelementptr inbounds i16, ptr %wb, i64 864
  %w.0.1 = load <32 x i16>, ptr %wp.0.1, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %x.0.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.0.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.1, <32 x i16> %b.0.0, <32 x i16> %w.0.1)
  store <16 x i32> %y.0.0.1, ptr %acc.0.1, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %wp.1.1 = getelementptr inbounds i16, ptr %wb, i64 896
  %w.1.1 = load <32 x i16>, ptr %wp.1.1, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %x.1.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.1.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.1, <32 x i16> %b.1.0, <32 x i16> %w.1.1)
  store <16 x i32> %y.1.0.1, ptr %acc.0.1, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %wp.2.1 = getelementptr inbounds i16, ptr %wb, i64 928
  %w.2.1 = load <32 x i16>, ptr %wp.2.1, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %x.2.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
%y.2.0.1 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.1, <32 x i16> %b.2.0, <32 x i16> %w.2.1)
  store <16 x i32> %y.2.0.1, ptr %acc.0.1, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %out, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %ya.0.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.1)
  %m.0.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.0.1)
  store <16 x float> %m.0.1, ptr %mx, align 64
  ret void
}
; register block 1x1 pixels x 1 vectors = 1 accumulators
define internal void @tile_h1_w1_v1(ptr noalias %in, ptr noalias %wt, ptr noalias %out, <16 x float> %scale, ptr noalias %mx) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  br label %chunk

chunk:
  %c = phi i64 [ 0, %entry ], [ %c.next, %flush ]
  %t0 = mul i64 %c, 5
  %t1.raw = add i64 %t0, 5
  %t1.in = icmp ult i64 %t1.raw, 9
  %t1 = select i1 %t1.in, i64 %t1.raw, i64 9
  store <16 x i32> zeroinitializer, ptr %acc.0.0, align 64
  br label %step

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %ioff.p = getelementptr inbounds [9 x i32], ptr @in_steps, i64 0, i64 %t
  %ioff.32 = load i32, ptr %ioff.p, align 4
  %ioff = sext i32 %ioff.32 to i64
  %woff.p = getelementptr inbounds [9 x i32], ptr @w_steps, i64 0, i64 %t
  %woff.32 = load i32, ptr %woff.p, align 4
  %woff = sext i32 %woff.32 to i64
  %ib = getelementptr inbounds i16, ptr %in, i64 %ioff
  %wb = getelementptr inbounds i16, ptr %wt, i64 %woff
  %wp.0.0 = getelementptr inbounds i16, ptr %wb, i64 0
  %w.0.0 = load <32 x i16>, ptr %wp.0.0, align 4
  %bp.0.0 = getelementptr inbounds i16, ptr %ib, i64 0
  %bs.0.0 = load i32, ptr %bp.0.0, align 4
  %bi.0.0 = insertelement <16 x i32> poison, i32 %bs.0.0, i64 0
  %bv.0.0 = shufflevector <16 x i32> %bi.0.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.0.0 = bitcast <16 x i32> %bv.0.0 to <32 x i16>
  %x.0.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.0.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.0.0.0, <32 x i16> %b.0.0, <32 x i16> %w.0.0)
  store <16 x i32> %y.0.0.0, ptr %acc.0.0, align 64
  %wp.1.0 = getelementptr inbounds i16, ptr %wb, i64 32
  %w.1.0 = load <32 x i16>, ptr %wp.1.0, align 4
  %bp.1.0 = getelementptr inbounds i16, ptr %ib, i64 2
  %bs.1.0 = load i32, ptr %bp.1.0, align 4
  %bi.1.0 = insertelement <16 x i32> poison, i32 %bs.1.0, i64 0
  %bv.1.0 = shufflevector <16 x i32> %bi.1.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.1.0 = bitcast <16 x i32> %bv.1.0 to <32 x i16>
  %x.1.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.1.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.1.0.0, <32 x i16> %b.1.0, <32 x i16> %w.1.0)
  store <16 x i32> %y.1.0.0, ptr %acc.0.0, align 64
  %wp.2.0 = getelementptr inbounds i16, ptr %wb, i64 64
  %w.2.0 = load <32 x i16>, ptr %wp.2.0, align 4
  %bp.2.0 = getelementptr inbounds i16, ptr %ib, i64 4
  %bs.2.0 = load i32, ptr %bp.2.0, align 4
  %bi.2.0 = insertelement <16 x i32> poison, i32 %bs.2.0, i64 0
  %bv.2.0 = shufflevector <16 x i32> %bi.2.0, <16 x i32> poison, <16 x i32> zeroinitializer
  %b.2.0 = bitcast <16 x i32> %bv.2.0 to <32 x i16>
  %x.2.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
%y.2.0.0 = call <16 x i32> @llvm.x86.avx512.vpdpwssd.512(<16 x i32> %x.2.0.0, <32 x i16> %b.2.0, <32 x i16> %w.2.0)
  store <16 x i32> %y.2.0.0, ptr %acc.0.0, align 64
  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: out = fma(float(acc), scale, first chunk ? 0 : out)
  %first = icmp eq i64 %c, 0
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %out, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, 2
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|y| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  store <16 x float> %m.0.0, ptr %mx, align 64
  ret void
}

; Runs work items [begin, end): item = (image, channel group, row block) in order nk.
define void @dfpgen_fprop(ptr noalias %in, ptr noalias %wt, ptr noalias %out, float %scale, ptr noalias %maxabs, i64 %begin, i64 %end) nounwind {
entry:
  %mx = alloca <16 x float>, align 64
  store <16 x float> zeroinitializer, ptr %mx, align 64
  %scale.i = insertelement <16 x float> poison, float %scale, i64 0
  %scale.v = shufflevector <16 x float> %scale.i, <16 x float> poison, <16 x i32> zeroinitializer
  %none = icmp sge i64 %begin, %end
  br i1 %none, label %done, label %item

item:
  %it = phi i64 [ %begin, %entry ], [ %it.next, %item.end ]
  %n = udiv i64 %it, 4
  %rest = urem i64 %it, 4
  %kg = udiv i64 %rest, 2
  %rb = urem i64 %rest, 2
  %in.n = mul i64 %n, 150
  %in.r = mul i64 %rb, 60
  %in.off = add i64 %in.n, %in.r
  %in.row = getelementptr inbounds i16, ptr %in, i64 %in.off
  %w.off = mul i64 %kg, 1728
  %wt.grp = getelementptr inbounds i16, ptr %wt, i64 %w.off
  %out.n = mul i64 %n, 432
  %out.k = mul i64 %kg, 288
  %out.r = mul i64 %rb, 96
  %out.nk = add i64 %out.n, %out.k
  %out.off = add i64 %out.nk, %out.r
  %out.row = getelementptr inbounds float, ptr %out, i64 %out.off
  %row.tail = icmp eq i64 %rb, 1
  %grp.tail = icmp eq i64 %kg, 1
  %code.r = select i1 %row.tail, i32 2, i32 0
  %code.g = select i1 %grp.tail, i32 1, i32 0
  %code = or i32 %code.r, %code.g
  switch i32 %code, label %c0.pre [ i32 1, label %c1.pre i32 2, label %c2.pre i32 3, label %c3.pre ]

c0.pre:
  br label %c0s0.head
c0s0.head:
  %c0s0.q = phi i64 [ 0, %c0.pre ], [ %c0s0.q.next, %c0s0.head ]
  %c0s0.qi0 = mul i64 %c0s0.q, 12
  %c0s0.qi = add i64 %c0s0.qi0, 0
  %c0s0.qo0 = mul i64 %c0s0.q, 32
  %c0s0.qo = add i64 %c0s0.qo0, 0
  %c0s0.ip = getelementptr inbounds i16, ptr %in.row, i64 %c0s0.qi
  %c0s0.op = getelementptr inbounds float, ptr %out.row, i64 %c0s0.qo
  call void @tile_h2_w2_v2(ptr %c0s0.ip, ptr %wt.grp, ptr %c0s0.op, <16 x float> %scale.v, ptr %mx)
  %c0s0.q.next = add nuw i64 %c0s0.q, 1
  %c0s0.q.more = icmp ult i64 %c0s0.q.next, 1
  br i1 %c0s0.q.more, label %c0s0.head, label %c0s0.post
c0s0.post:  br label %c0s1.head
c0s1.head:
  %c0s1.q = phi i64 [ 0, %c0s0.post ], [ %c0s1.q.next, %c0s1.head ]
  %c0s1.qi0 = mul i64 %c0s1.q, 6
  %c0s1.qi = add i64 %c0s1.qi0, 12
  %c0s1.qo0 = mul i64 %c0s1.q, 16
  %c0s1.qo = add i64 %c0s1.qo0, 32
  %c0s1.ip = getelementptr inbounds i16, ptr %in.row, i64 %c0s1.qi
  %c0s1.op = getelementptr inbounds float, ptr %out.row, i64 %c0s1.qo
  call void @tile_h2_w1_v2(ptr %c0s1.ip, ptr %wt.grp, ptr %c0s1.op, <16 x float> %scale.v, ptr %mx)
  %c0s1.q.next = add nuw i64 %c0s1.q, 1
  %c0s1.q.more = icmp ult i64 %c0s1.q.next, 1
  br i1 %c0s1.q.more, label %c0s1.head, label %c0s1.post
c0s1.post:
  br label %item.end

c1.pre:
  br label %c1s0.head
c1s0.head:
  %c1s0.q = phi i64 [ 0, %c1.pre ], [ %c1s0.q.next, %c1s0.head ]
  %c1s0.qi0 = mul i64 %c1s0.q, 12
  %c1s0.qi = add i64 %c1s0.qi0, 0
  %c1s0.qo0 = mul i64 %c1s0.q, 32
  %c1s0.qo = add i64 %c1s0.qo0, 0
  %c1s0.ip = getelementptr inbounds i16, ptr %in.row, i64 %c1s0.qi
  %c1s0.op = getelementptr inbounds float, ptr %out.row, i64 %c1s0.qo
  call void @tile_h2_w2_v1(ptr %c1s0.ip, ptr %wt.grp, ptr %c1s0.op, <16 x float> %scale.v, ptr %mx)
  %c1s0.q.next = add nuw i64 %c1s0.q, 1
  %c1s0.q.more = icmp ult i64 %c1s0.q.next, 1
  br i1 %c1s0.q.more, label %c1s0.head, label %c1s0.post
c1s0.post:  br label %c1s1.head
c1s1.head:
  %c1s1.q = phi i64 [ 0, %c1s0.post ], [ %c1s1.q.next, %c1s1.head ]
  %c1s1.qi0 = mul i64 %c1s1.q, 6
  %c1s1.qi = add i64 %c1s1.qi0, 12
  %c1s1.qo0 = mul i64 %c1s1.q, 16
  %c1s1.qo = add i64 %c1s1.qo0, 32
  %c1s1.ip = getelementptr inbounds i16, ptr %in.row, i64 %c1s1.qi
  %c1s1.op = getelementptr inbounds float, ptr %out.row, i64 %c1s1.qo
  call void @tile_h2_w1_v1(ptr %c1s1.ip, ptr %wt.grp, ptr %c1s1.op, <16 x float> %scale.v, ptr %mx)
  %c1s1.q.next = add nuw i64 %c1s1.q, 1
  %c1s1.q.more = icmp ult i64 %c1s1.q.next, 1
  br i1 %c1s1.q.more, label %c1s1.head, label %c1s1.post
c1s1.post:
  br label %item.end

c2.pre:
  br label %c2s0.head
c2s0.head:
  %c2s0.q = phi i64 [ 0, %c2.pre ], [ %c2s0.q.next, %c2s0.head ]
  %c2s0.qi0 = mul i64 %c2s0.q, 12
  %c2s0.qi = add i64 %c2s0.qi0, 0
  %c2s0.qo0 = mul i64 %c2s0.q, 32
  %c2s0.qo = add i64 %c2s0.qo0, 0
  %c2s0.ip = getelementptr inbounds i16, ptr %in.row, i64 %c2s0.qi
  %c2s0.op = getelementptr inbounds float, ptr %out.row, i64 %c2s0.qo
  call void @tile_h1_w2_v2(ptr %c2s0.ip, ptr %wt.grp, ptr %c2s0.op, <16 x float> %scale.v, ptr %mx)
  %c2s0.q.next = add nuw i64 %c2s0.q, 1
  %c2s0.q.more = icmp ult i64 %c2s0.q.next, 1
  br i1 %c2s0.q.more, label %c2s0.head, label %c2s0.post
c2s0.post:  br label %c2s1.head
c2s1.head:
  %c2s1.q = phi i64 [ 0, %c2s0.post ], [ %c2s1.q.next, %c2s1.head ]
  %c2s1.qi0 = mul i64 %c2s1.q, 6
  %c2s1.qi = add i64 %c2s1.qi0, 12
  %c2s1.qo0 = mul i64 %c2s1.q, 16
  %c2s1.qo = add i64 %c2s1.qo0, 32
  %c2s1.ip = getelementptr inbounds i16, ptr %in.row, i64 %c2s1.qi
  %c2s1.op = getelementptr inbounds float, ptr %out.row, i64 %c2s1.qo
  call void @tile_h1_w1_v2(ptr %c2s1.ip, ptr %wt.grp, ptr %c2s1.op, <16 x float> %scale.v, ptr %mx)
  %c2s1.q.next = add nuw i64 %c2s1.q, 1
  %c2s1.q.more = icmp ult i64 %c2s1.q.next, 1
  br i1 %c2s1.q.more, label %c2s1.head, label %c2s1.post
c2s1.post:
  br label %item.end

c3.pre:
  br label %c3s0.head
c3s0.head:
  %c3s0.q = phi i64 [ 0, %c3.pre ], [ %c3s0.q.next, %c3s0.head ]
  %c3s0.qi0 = mul i64 %c3s0.q, 12
  %c3s0.qi = add i64 %c3s0.qi0, 0
  %c3s0.qo0 = mul i64 %c3s0.q, 32
  %c3s0.qo = add i64 %c3s0.qo0, 0
  %c3s0.ip = getelementptr inbounds i16, ptr %in.row, i64 %c3s0.qi
  %c3s0.op = getelementptr inbounds float, ptr %out.row, i64 %c3s0.qo
  call void @tile_h1_w2_v1(ptr %c3s0.ip, ptr %wt.grp, ptr %c3s0.op, <16 x float> %scale.v, ptr %mx)
  %c3s0.q.next = add nuw i64 %c3s0.q, 1
  %c3s0.q.more = icmp ult i64 %c3s0.q.next, 1
  br i1 %c3s0.q.more, label %c3s0.head, label %c3s0.post
c3s0.post:  br label %c3s1.head
c3s1.head:
  %c3s1.q = phi i64 [ 0, %c3s0.post ], [ %c3s1.q.next, %c3s1.head ]
  %c3s1.qi0 = mul i64 %c3s1.q, 6
  %c3s1.qi = add i64 %c3s1.qi0, 12
  %c3s1.qo0 = mul i64 %c3s1.q, 16
  %c3s1.qo = add i64 %c3s1.qo0, 32
  %c3s1.ip = getelementptr inbounds i16, ptr %in.row, i64 %c3s1.qi
  %c3s1.op = getelementptr inbounds float, ptr %out.row, i64 %c3s1.qo
  call void @tile_h1_w1_v1(ptr %c3s1.ip, ptr %wt.grp, ptr %c3s1.op, <16 x float> %scale.v, ptr %mx)
  %c3s1.q.next = add nuw i64 %c3s1.q, 1
  %c3s1.q.more = icmp ult i64 %c3s1.q.next, 1
  br i1 %c3s1.q.more, label %c3s1.head, label %c3s1.post
c3s1.post:
  br label %item.end

item.end:
  %it.next = add nsw i64 %it, 1
  %it.more = icmp slt i64 %it.next, %end
  br i1 %it.more, label %item, label %done

done:
  %mv = load <16 x float>, ptr %mx, align 64
  %m = call float @llvm.vector.reduce.fmax.v16f32(<16 x float> %mv)
  store float %m, ptr %maxabs, align 4
  ret void
}
