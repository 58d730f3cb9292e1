; dfpgen 0.1.0 -- generated kernel, do not edit
; layer i8: N=2 C=10 K=40 3x3 -> 3x3 kernel 3x3 stride 1 pad 1
; pass fprop, isa avx512_vnni_int8 (vpdpbusd, 16 lanes), cpu znver4
; blocking kv2 w2 h2 cpb3 u3 nk
; register block 2x2 x 2 vectors: 11 of 32 vector registers
; layouts: src [2, 1, 5, 5, 12] vec [3, 2, 3, 3, 3, 16, 4] dst [2, 3, 3, 3, 16]
; reduction: step tables of 9 steps, 3 elements a step, each step one inline-assembly block
; numerics: bits x8/w8, overflow exact, chain 6 4-product instructions (safe 16577), flush INT32->FP32 every 2 steps, at most 5 flushes per output, FP32 partial sums in the output tile
; work: 8 items (2 x 4), 8 tile calls per batch entry, order nk
; correction: x stored + 128 (unsigned bytes); each call's first chain starts from -128 x sum(w) of its output channels, in an extra channel block of w
@src_steps = private unnamed_addr constant [9 x i32] [i32 0, i32 12, i32 24, i32 60, i32 72, i32 84, i32 120, i32 132, i32 144]
@vec_steps = private unnamed_addr constant [9 x i32] [i32 0, i32 192, i32 384, i32 576, i32 768, i32 960, i32 1152, i32 1344, i32 1536]
@item_starts = private unnamed_addr constant [5 x i32] [i32 0, i32 2, i32 4, i32 6, i32 8]
@block_begin = private unnamed_addr constant [1 x i32] [i32 0]
@block_count = private unnamed_addr constant [1 x i32] [i32 9]
@corr_steps = private unnamed_addr constant [9 x i32] [i32 1728, i32 1728, i32 1728, i32 1728, i32 1728, i32 1728, i32 1728, i32 1728, i32 1728]

declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)
declare <16 x float> @llvm.fabs.v16f32(<16 x float>)
declare <16 x float> @llvm.maxnum.v16f32(<16 x float>, <16 x float>)
declare float @llvm.vector.reduce.fmax.v16f32(<16 x float>)
declare i64 @llvm.umin.i64(i64, i64)
declare i64 @llvm.umax.i64(i64, i64)
; register block 2x2 x 2 vectors = 8 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h2_w2_v2(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.1.1 = alloca <16 x i32>, align 64
  %acc.2.0 = alloca <16 x i32>, align 64
  %acc.2.1 = alloca <16 x i32>, align 64
  %acc.3.0 = alloca <16 x i32>, align 64
  %acc.3.1 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %corr.p.1 = getelementptr inbounds i8, ptr %corr.base, i64 3456
  %corr.1 = load <16 x i32>, ptr %corr.p.1, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.0.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.1, ptr %acc.0.1, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %init.1.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.1, ptr %acc.1.1, align 64
  %init.2.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.2.0, ptr %acc.2.0, align 64
  %init.2.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.2.1, ptr %acc.2.1, align 64
  %init.3.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.3.0, ptr %acc.3.0, align 64
  %init.3.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.3.1, ptr %acc.3.1, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %x.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %x.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %x.2.1 = load <16 x i32>, ptr %acc.2.1, align 64
  %x.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
  %x.3.1 = load <16 x i32>, ptr %acc.3.1, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($12), $8\0Avmovups\093456($12), $9\0Avpbroadcastd\090($11), $10\0Avpdpbusd\09$8, $10, $0\0Avpdpbusd\09$9, $10, $1\0Avpbroadcastd\0912($11), $10\0Avpdpbusd\09$8, $10, $2\0Avpdpbusd\09$9, $10, $3\0Avpbroadcastd\0960($11), $10\0Avpdpbusd\09$8, $10, $4\0Avpdpbusd\09$9, $10, $5\0Avpbroadcastd\0972($11), $10\0Avpdpbusd\09$8, $10, $6\0Avpdpbusd\09$9, $10, $7\0Avmovups\0964($12), $8\0Avmovups\093520($12), $9\0Avpbroadcastd\094($11), $10\0Avpdpbusd\09$8, $10, $0\0Avpdpbusd\09$9, $10, $1\0Avpbroadcastd\0916($11), $10\0Avpdpbusd\09$8, $10, $2\0Avpdpbusd\09$9, $10, $3\0Avpbroadcastd\0964($11), $10\0Avpdpbusd\09$8, $10, $4\0Avpdpbusd\09$9, $10, $5\0Avpbroadcastd\0976($11), $10\0Avpdpbusd\09$8, $10, $6\0Avpdpbusd\09$9, $10, $7\0Avmovups\09128($12), $8\0Avmovups\093584($12), $9\0Avpbroadcastd\098($11), $10\0Avpdpbusd\09$8, $10, $0\0Avpdpbusd\09$9, $10, $1\0Avpbroadcastd\0920($11), $10\0Avpdpbusd\09$8, $10, $2\0Avpdpbusd\09$9, $10, $3\0Avpbroadcastd\0968($11), $10\0Avpdpbusd\09$8, $10, $4\0Avpdpbusd\09$9, $10, $5\0Avpbroadcastd\0980($11), $10\0Avpdpbusd\09$8, $10, $6\0Avpdpbusd\09$9, $10, $7\0A", "=v,=v,=v,=v,=v,=v,=v,=v,=&v,=&v,=&v,r,r,0,1,2,3,4,5,6,7"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.0.1, <16 x i32> %x.1.0, <16 x i32> %x.1.1, <16 x i32> %x.2.0, <16 x i32> %x.2.1, <16 x i32> %x.3.0, <16 x i32> %x.3.1) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.0.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.0.1, ptr %acc.0.1, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 2
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64
  %y.1.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 3
  store <16 x i32> %y.1.1, ptr %acc.1.1, align 64
  %y.2.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 4
  store <16 x i32> %y.2.0, ptr %acc.2.0, align 64
  %y.2.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 5
  store <16 x i32> %y.2.1, ptr %acc.2.1, align 64
  %y.3.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 6
  store <16 x i32> %y.3.0, ptr %acc.3.0, align 64
  %y.3.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 7
  store <16 x i32> %y.3.1, ptr %acc.3.1, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %dst, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %ff.1.1 = sitofp <16 x i32> %fa.1.1 to <16 x float>
  %op.1.1 = getelementptr inbounds float, ptr %dst, i64 160
  %old.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.1
  %new.1.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.1, <16 x float> %scale, <16 x float> %base.1.1)
  store <16 x float> %new.1.1, ptr %op.1.1, align 4
  %fa.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %ff.2.0 = sitofp <16 x i32> %fa.2.0 to <16 x float>
  %op.2.0 = getelementptr inbounds float, ptr %dst, i64 48
  %old.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.2.0
  %new.2.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.0, <16 x float> %scale, <16 x float> %base.2.0)
  store <16 x float> %new.2.0, ptr %op.2.0, align 4
  %fa.2.1 = load <16 x i32>, ptr %acc.2.1, align 64
  %ff.2.1 = sitofp <16 x i32> %fa.2.1 to <16 x float>
  %op.2.1 = getelementptr inbounds float, ptr %dst, i64 192
  %old.2.1 = load <16 x float>, ptr %op.2.1, align 4
  %base.2.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.2.1
  %new.2.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.1, <16 x float> %scale, <16 x float> %base.2.1)
  store <16 x float> %new.2.1, ptr %op.2.1, align 4
  %fa.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
  %ff.3.0 = sitofp <16 x i32> %fa.3.0 to <16 x float>
  %op.3.0 = getelementptr inbounds float, ptr %dst, i64 64
  %old.3.0 = load <16 x float>, ptr %op.3.0, align 4
  %base.3.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.3.0
  %new.3.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.3.0, <16 x float> %scale, <16 x float> %base.3.0)
  store <16 x float> %new.3.0, ptr %op.3.0, align 4
  %fa.3.1 = load <16 x i32>, ptr %acc.3.1, align 64
  %ff.3.1 = sitofp <16 x i32> %fa.3.1 to <16 x float>
  %op.3.1 = getelementptr inbounds float, ptr %dst, i64 208
  %old.3.1 = load <16 x float>, ptr %op.3.1, align 4
  %base.3.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.3.1
  %new.3.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.3.1, <16 x float> %scale, <16 x float> %base.3.1)
  store <16 x float> %new.3.1, ptr %op.3.1, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
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
  %m.out = select i1 %final, <16 x float> %m.3.1, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 2x1 x 2 vectors = 4 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h2_w1_v2(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.1.1 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %corr.p.1 = getelementptr inbounds i8, ptr %corr.base, i64 3456
  %corr.1 = load <16 x i32>, ptr %corr.p.1, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.0.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.1, ptr %acc.0.1, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %init.1.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.1, ptr %acc.1.1, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %x.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($8), $4\0Avmovups\093456($8), $5\0Avpbroadcastd\090($7), $6\0Avpdpbusd\09$4, $6, $0\0Avpdpbusd\09$5, $6, $1\0Avpbroadcastd\0960($7), $6\0Avpdpbusd\09$4, $6, $2\0Avpdpbusd\09$5, $6, $3\0Avmovups\0964($8), $4\0Avmovups\093520($8), $5\0Avpbroadcastd\094($7), $6\0Avpdpbusd\09$4, $6, $0\0Avpdpbusd\09$5, $6, $1\0Avpbroadcastd\0964($7), $6\0Avpdpbusd\09$4, $6, $2\0Avpdpbusd\09$5, $6, $3\0Avmovups\09128($8), $4\0Avmovups\093584($8), $5\0Avpbroadcastd\098($7), $6\0Avpdpbusd\09$4, $6, $0\0Avpdpbusd\09$5, $6, $1\0Avpbroadcastd\0968($7), $6\0Avpdpbusd\09$4, $6, $2\0Avpdpbusd\09$5, $6, $3\0A", "=v,=v,=v,=v,=&v,=&v,=&v,r,r,0,1,2,3"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.0.1, <16 x i32> %x.1.0, <16 x i32> %x.1.1) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.0.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.0.1, ptr %acc.0.1, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 2
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64
  %y.1.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 3
  store <16 x i32> %y.1.1, ptr %acc.1.1, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %dst, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 48
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %ff.1.1 = sitofp <16 x i32> %fa.1.1 to <16 x float>
  %op.1.1 = getelementptr inbounds float, ptr %dst, i64 192
  %old.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.1
  %new.1.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.1, <16 x float> %scale, <16 x float> %base.1.1)
  store <16 x float> %new.1.1, ptr %op.1.1, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
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
  %m.out = select i1 %final, <16 x float> %m.1.1, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 1x2 x 2 vectors = 4 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h1_w2_v2(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.1.1 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %corr.p.1 = getelementptr inbounds i8, ptr %corr.base, i64 3456
  %corr.1 = load <16 x i32>, ptr %corr.p.1, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.0.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.1, ptr %acc.0.1, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %init.1.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.1, ptr %acc.1.1, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %x.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($8), $4\0Avmovups\093456($8), $5\0Avpbroadcastd\090($7), $6\0Avpdpbusd\09$4, $6, $0\0Avpdpbusd\09$5, $6, $1\0Avpbroadcastd\0912($7), $6\0Avpdpbusd\09$4, $6, $2\0Avpdpbusd\09$5, $6, $3\0Avmovups\0964($8), $4\0Avmovups\093520($8), $5\0Avpbroadcastd\094($7), $6\0Avpdpbusd\09$4, $6, $0\0Avpdpbusd\09$5, $6, $1\0Avpbroadcastd\0916($7), $6\0Avpdpbusd\09$4, $6, $2\0Avpdpbusd\09$5, $6, $3\0Avmovups\09128($8), $4\0Avmovups\093584($8), $5\0Avpbroadcastd\098($7), $6\0Avpdpbusd\09$4, $6, $0\0Avpdpbusd\09$5, $6, $1\0Avpbroadcastd\0920($7), $6\0Avpdpbusd\09$4, $6, $2\0Avpdpbusd\09$5, $6, $3\0A", "=v,=v,=v,=v,=&v,=&v,=&v,r,r,0,1,2,3"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.0.1, <16 x i32> %x.1.0, <16 x i32> %x.1.1) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.0.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.0.1, ptr %acc.0.1, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 2
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64
  %y.1.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 3
  store <16 x i32> %y.1.1, ptr %acc.1.1, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %dst, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <16 x i32>, ptr %acc.1.1, align 64
  %ff.1.1 = sitofp <16 x i32> %fa.1.1 to <16 x float>
  %op.1.1 = getelementptr inbounds float, ptr %dst, i64 160
  %old.1.1 = load <16 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.1
  %new.1.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.1, <16 x float> %scale, <16 x float> %base.1.1)
  store <16 x float> %new.1.1, ptr %op.1.1, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
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
  %m.out = select i1 %final, <16 x float> %m.1.1, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 1x1 x 2 vectors = 2 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h1_w1_v2(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.0.1 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %corr.p.1 = getelementptr inbounds i8, ptr %corr.base, i64 3456
  %corr.1 = load <16 x i32>, ptr %corr.p.1, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.0.1 = select i1 %corr.chunk, <16 x i32> %corr.1, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.1, ptr %acc.0.1, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($6), $2\0Avmovups\093456($6), $3\0Avpbroadcastd\090($5), $4\0Avpdpbusd\09$2, $4, $0\0Avpdpbusd\09$3, $4, $1\0Avmovups\0964($6), $2\0Avmovups\093520($6), $3\0Avpbroadcastd\094($5), $4\0Avpdpbusd\09$2, $4, $0\0Avpdpbusd\09$3, $4, $1\0Avmovups\09128($6), $2\0Avmovups\093584($6), $3\0Avpbroadcastd\098($5), $4\0Avpdpbusd\09$2, $4, $0\0Avpdpbusd\09$3, $4, $1\0A", "=v,=v,=&v,=&v,=&v,r,r,0,1"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.0.1) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.0.1 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.0.1, ptr %acc.0.1, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <16 x i32>, ptr %acc.0.1, align 64
  %ff.0.1 = sitofp <16 x i32> %fa.0.1 to <16 x float>
  %op.0.1 = getelementptr inbounds float, ptr %dst, i64 144
  %old.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.1
  %new.0.1 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.1, <16 x float> %scale, <16 x float> %base.0.1)
  store <16 x float> %new.0.1, ptr %op.0.1, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.0.1 = load <16 x float>, ptr %op.0.1, align 4
  %ya.0.1 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.1)
  %m.0.1 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.0.1)
  %m.out = select i1 %final, <16 x float> %m.0.1, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 2x2 x 1 vectors = 4 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h2_w2_v1(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.2.0 = alloca <16 x i32>, align 64
  %acc.3.0 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %init.2.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.2.0, ptr %acc.2.0, align 64
  %init.3.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.3.0, ptr %acc.3.0, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %x.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %x.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($7), $4\0Avpbroadcastd\090($6), $5\0Avpdpbusd\09$4, $5, $0\0Avpbroadcastd\0912($6), $5\0Avpdpbusd\09$4, $5, $1\0Avpbroadcastd\0960($6), $5\0Avpdpbusd\09$4, $5, $2\0Avpbroadcastd\0972($6), $5\0Avpdpbusd\09$4, $5, $3\0Avmovups\0964($7), $4\0Avpbroadcastd\094($6), $5\0Avpdpbusd\09$4, $5, $0\0Avpbroadcastd\0916($6), $5\0Avpdpbusd\09$4, $5, $1\0Avpbroadcastd\0964($6), $5\0Avpdpbusd\09$4, $5, $2\0Avpbroadcastd\0976($6), $5\0Avpdpbusd\09$4, $5, $3\0Avmovups\09128($7), $4\0Avpbroadcastd\098($6), $5\0Avpdpbusd\09$4, $5, $0\0Avpbroadcastd\0920($6), $5\0Avpdpbusd\09$4, $5, $1\0Avpbroadcastd\0968($6), $5\0Avpdpbusd\09$4, $5, $2\0Avpbroadcastd\0980($6), $5\0Avpdpbusd\09$4, $5, $3\0A", "=v,=v,=v,=v,=&v,=&v,r,r,0,1,2,3"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.1.0, <16 x i32> %x.2.0, <16 x i32> %x.3.0) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64
  %y.2.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 2
  store <16 x i32> %y.2.0, ptr %acc.2.0, align 64
  %y.3.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 3
  store <16 x i32> %y.3.0, ptr %acc.3.0, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %ff.2.0 = sitofp <16 x i32> %fa.2.0 to <16 x float>
  %op.2.0 = getelementptr inbounds float, ptr %dst, i64 48
  %old.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.2.0
  %new.2.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.0, <16 x float> %scale, <16 x float> %base.2.0)
  store <16 x float> %new.2.0, ptr %op.2.0, align 4
  %fa.3.0 = load <16 x i32>, ptr %acc.3.0, align 64
  %ff.3.0 = sitofp <16 x i32> %fa.3.0 to <16 x float>
  %op.3.0 = getelementptr inbounds float, ptr %dst, i64 64
  %old.3.0 = load <16 x float>, ptr %op.3.0, align 4
  %base.3.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.3.0
  %new.3.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.3.0, <16 x float> %scale, <16 x float> %base.3.0)
  store <16 x float> %new.3.0, ptr %op.3.0, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
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
  %m.out = select i1 %final, <16 x float> %m.3.0, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 2x1 x 1 vectors = 2 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h2_w1_v1(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($5), $2\0Avpbroadcastd\090($4), $3\0Avpdpbusd\09$2, $3, $0\0Avpbroadcastd\0960($4), $3\0Avpdpbusd\09$2, $3, $1\0Avmovups\0964($5), $2\0Avpbroadcastd\094($4), $3\0Avpdpbusd\09$2, $3, $0\0Avpbroadcastd\0964($4), $3\0Avpdpbusd\09$2, $3, $1\0Avmovups\09128($5), $2\0Avpbroadcastd\098($4), $3\0Avpdpbusd\09$2, $3, $0\0Avpbroadcastd\0968($4), $3\0Avpdpbusd\09$2, $3, $1\0A", "=v,=v,=&v,=&v,r,r,0,1"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.1.0) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 48
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.1.0)
  %m.out = select i1 %final, <16 x float> %m.1.0, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 1x2 x 1 vectors = 2 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h1_w2_v1(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($5), $2\0Avpbroadcastd\090($4), $3\0Avpdpbusd\09$2, $3, $0\0Avpbroadcastd\0912($4), $3\0Avpdpbusd\09$2, $3, $1\0Avmovups\0964($5), $2\0Avpbroadcastd\094($4), $3\0Avpdpbusd\09$2, $3, $0\0Avpbroadcastd\0916($4), $3\0Avpdpbusd\09$2, $3, $1\0Avmovups\09128($5), $2\0Avpbroadcastd\098($4), $3\0Avpdpbusd\09$2, $3, $0\0Avpbroadcastd\0920($4), $3\0Avpdpbusd\09$2, $3, $1\0A", "=v,=v,=&v,=&v,r,r,0,1"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.1.0) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %ff.1.0 = sitofp <16 x i32> %fa.1.0 to <16 x float>
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 16
  %old.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.1.0
  %new.1.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.1.0, <16 x float> %scale, <16 x float> %base.1.0)
  store <16 x float> %new.1.0, ptr %op.1.0, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %yo.1.0 = load <16 x float>, ptr %op.1.0, align 4
  %ya.1.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.1.0)
  %m.1.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.0.0, <16 x float> %ya.1.0)
  %m.out = select i1 %final, <16 x float> %m.1.0, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}
; register block 1x1 x 1 vectors = 1 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 2 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h1_w1_v1(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 8)
  %cs.p = getelementptr inbounds [9 x i32], ptr @corr_steps, i64 0, i64 %cs.i
  %cs.32 = load i32, ptr %cs.p, align 4
  %cs = sext i32 %cs.32 to i64
  %corr.base = getelementptr inbounds i8, ptr %vec, i64 %cs
  %corr.any = icmp ne i64 %count, 0
  %corr.p.0 = getelementptr inbounds i8, ptr %corr.base, i64 0
  %corr.0 = load <16 x i32>, ptr %corr.p.0, align 4
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %corr.chunk = phi i1 [ %corr.any, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 2
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [9 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [9 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($4), $1\0Avpbroadcastd\090($3), $2\0Avpdpbusd\09$1, $2, $0\0Avmovups\0964($4), $1\0Avpbroadcastd\094($3), $2\0Avpdpbusd\09$1, $2, $0\0Avmovups\09128($4), $1\0Avpbroadcastd\098($3), $2\0Avpdpbusd\09$1, $2, $0\0A", "=v,=&v,=&v,r,r,0"(ptr %sb, ptr %vb, <16 x i32> %x.0.0) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; INT32 -> FP32: dst = fma(float(acc), scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %ff.0.0 = sitofp <16 x i32> %fa.0.0 to <16 x float>
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.0.0
  %new.0.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.0.0, <16 x float> %scale, <16 x float> %base.0.0)
  store <16 x float> %new.0.0, ptr %op.0.0, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
  %m.in = load <16 x float>, ptr %mx, align 64
  %yo.0.0 = load <16 x float>, ptr %op.0.0, align 4
  %ya.0.0 = call <16 x float> @llvm.fabs.v16f32(<16 x float> %yo.0.0)
  %m.0.0 = call <16 x float> @llvm.maxnum.v16f32(<16 x float> %m.in, <16 x float> %ya.0.0)
  %m.out = select i1 %final, <16 x float> %m.0.0, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}


; Runs work items [begin, end): 2 batch entries x 4 items, the batch outer.
; %calls: the plan's call table, 8 calls x 6 i32 (tile, src, vec, dst, step_begin, step_count),
; passed at run time, so the IR stays small however many calls a layer has.
define void @dfpgen_fprop(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, ptr noalias readonly %calls, float %scale, ptr noalias %maxabs, i64 %begin, i64 %end) nounwind {
entry:
  %mx = alloca <16 x float>, align 64
  store <16 x float> zeroinitializer, ptr %mx, align 64
  %scale.i = insertelement <16 x float> poison, float %scale, i64 0
  %scale.v = shufflevector <16 x float> %scale.i, <16 x float> poison, <16 x i32> zeroinitializer
  %none = icmp sge i64 %begin, %end
  br i1 %none, label %done, label %block

block:
  ; the items once per reduction block, so a block's operands stay in cache across all of them;
  ; the first block writes the outputs, the others add
  %bk = phi i64 [ 0, %entry ], [ %bk.next, %block.end ]
  %fresh = icmp eq i64 %bk, 0
  %bk.next = add nuw i64 %bk, 1
  %final = icmp eq i64 %bk.next, 1
  %bb.p = getelementptr inbounds [1 x i32], ptr @block_begin, i64 0, i64 %bk
  %bb.32 = load i32, ptr %bb.p, align 4
  %bb = sext i32 %bb.32 to i64
  %bn.p = getelementptr inbounds [1 x i32], ptr @block_count, i64 0, i64 %bk
  %bn.32 = load i32, ptr %bn.p, align 4
  %bn = sext i32 %bn.32 to i64
  %be = add nsw i64 %bb, %bn
  br label %item

item:
  %it = phi i64 [ %begin, %block ], [ %it.next, %item.end ]
  %n = udiv i64 %it, 4
  %j = urem i64 %it, 4
  %src.n.off = mul i64 %n, 300
  %src.n = getelementptr inbounds i8, ptr %src, i64 %src.n.off
  %dst.n.off = mul i64 %n, 432
  %dst.n = getelementptr inbounds float, ptr %dst, i64 %dst.n.off
  %cb.p = getelementptr inbounds [5 x i32], ptr @item_starts, i64 0, i64 %j
  %cb.32 = load i32, ptr %cb.p, align 4
  %cb = sext i32 %cb.32 to i64
  %j1 = add nuw i64 %j, 1
  %ce.p = getelementptr inbounds [5 x i32], ptr @item_starts, i64 0, i64 %j1
  %ce.32 = load i32, ptr %ce.p, align 4
  %ce = sext i32 %ce.32 to i64
  %has = icmp ult i64 %cb, %ce
  br i1 %has, label %call, label %item.end

call:
  %c = phi i64 [ %cb, %item ], [ %c.next, %call.end ]
  %call_tile.p = getelementptr inbounds [6 x i32], ptr %calls, i64 %c, i64 0
  %call_tile.32 = load i32, ptr %call_tile.p, align 4
  %call_tile.v = sext i32 %call_tile.32 to i64
  %call_src.p = getelementptr inbounds [6 x i32], ptr %calls, i64 %c, i64 1
  %call_src.32 = load i32, ptr %call_src.p, align 4
  %call_src.v = sext i32 %call_src.32 to i64
  %call_vec.p = getelementptr inbounds [6 x i32], ptr %calls, i64 %c, i64 2
  %call_vec.32 = load i32, ptr %call_vec.p, align 4
  %call_vec.v = sext i32 %call_vec.32 to i64
  %call_dst.p = getelementptr inbounds [6 x i32], ptr %calls, i64 %c, i64 3
  %call_dst.32 = load i32, ptr %call_dst.p, align 4
  %call_dst.v = sext i32 %call_dst.32 to i64
  %call_step_begin.p = getelementptr inbounds [6 x i32], ptr %calls, i64 %c, i64 4
  %call_step_begin.32 = load i32, ptr %call_step_begin.p, align 4
  %call_step_begin.v = sext i32 %call_step_begin.32 to i64
  %call_step_count.p = getelementptr inbounds [6 x i32], ptr %calls, i64 %c, i64 5
  %call_step_count.32 = load i32, ptr %call_step_count.p, align 4
  %call_step_count.v = sext i32 %call_step_count.32 to i64
  %src.c = getelementptr inbounds i8, ptr %src.n, i64 %call_src.v
  %vec.c = getelementptr inbounds i8, ptr %vec, i64 %call_vec.v
  %dst.c = getelementptr inbounds float, ptr %dst.n, i64 %call_dst.v
  ; the call's step slice within this block
  %call_end = add nsw i64 %call_step_begin.v, %call_step_count.v
  %slice.b = call i64 @llvm.umax.i64(i64 %call_step_begin.v, i64 %bb)
  %slice.e = call i64 @llvm.umin.i64(i64 %call_end, i64 %be)
  %slice.e1 = call i64 @llvm.umax.i64(i64 %slice.e, i64 %slice.b)
  %slice.n = sub nuw i64 %slice.e1, %slice.b
  switch i32 %call_tile.32, label %call.end [ i32 0, label %run.0 i32 1, label %run.1 i32 2, label %run.2 i32 3, label %run.3 i32 4, label %run.4 i32 5, label %run.5 i32 6, label %run.6 i32 7, label %run.7 ]
run.0:
  call void @tile_h2_w2_v2(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.1:
  call void @tile_h2_w1_v2(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.2:
  call void @tile_h1_w2_v2(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.3:
  call void @tile_h1_w1_v2(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.4:
  call void @tile_h2_w2_v1(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.5:
  call void @tile_h2_w1_v1(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.6:
  call void @tile_h1_w2_v1(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end
run.7:
  call void @tile_h1_w1_v1(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
  br label %call.end

call.end:
  %c.next = add nuw i64 %c, 1
  %c.more = icmp ult i64 %c.next, %ce
  br i1 %c.more, label %call, label %item.end

item.end:
  %it.next = add nsw i64 %it, 1
  %it.more = icmp slt i64 %it.next, %end
  br i1 %it.more, label %item, label %block.end

block.end:
  br i1 %final, label %done, label %block

done:
  %mv = load <16 x float>, ptr %mx, align 64
  %m = call float @llvm.vector.reduce.fmax.v16f32(<16 x float> %mv)
  store float %m, ptr %maxabs, align 4
  ret void
}

attributes #0 = { nounwind memory(read) }
