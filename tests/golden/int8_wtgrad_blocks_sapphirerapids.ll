; dfpgen 0.1.0 -- generated kernel, do not edit
; layer g8: N=2 C=3 K=8 5x9 -> 5x9 kernel 3x3 stride 1 pad 1
; pass wtgrad, isa avx512_vnni_int8 (vpdpbusd, 16 lanes), cpu sapphirerapids
; blocking kv1 w3 h1 cpb1 u2 nk rb2
; register block 1x3 x 1 vectors: 5 of 32 vector registers
; layouts: src [2, 7, 15, 3, 4] vec [3, 1, 5, 4, 16, 4] dst [1, 3, 3, 3, 16]
; reduction: step tables of 20 steps, 2 elements a step, each step one inline-assembly block
; numerics: bits x8/w8, overflow exact, chain 8 4-product instructions (safe 16577), flush INT32->FP32 every 4 steps, at most 5 flushes per output, FP32 partial sums in the output tile
; work: 9 items (1 x 9), 9 tile calls per batch entry, order nk
; reduction over N x P x Q = 2 x 5 x 9 as 20 steps of 2 q-groups of 4, in 5 blocks of 2 rows
; correction: x stored + 128 (unsigned bytes); each call's first chain in a block starts from -128 x sum(dy) over the block's rows, in 1 extra images of dy
@src_steps = private unnamed_addr constant [20 x i32] [i32 0, i32 96, i32 180, i32 276, i32 360, i32 456, i32 540, i32 636, i32 720, i32 816, i32 1260, i32 1356, i32 1440, i32 1536, i32 1620, i32 1716, i32 1800, i32 1896, i32 1980, i32 2076]
@vec_steps = private unnamed_addr constant [20 x i32] [i32 0, i32 128, i32 256, i32 384, i32 512, i32 640, i32 768, i32 896, i32 1024, i32 1152, i32 1280, i32 1408, i32 1536, i32 1664, i32 1792, i32 1920, i32 2048, i32 2176, i32 2304, i32 2432]
@item_starts = private unnamed_addr constant [10 x i32] [i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7, i32 8, i32 9]
@block_begin = private unnamed_addr constant [5 x i32] [i32 0, i32 4, i32 8, i32 12, i32 16]
@block_count = private unnamed_addr constant [5 x i32] [i32 4, i32 4, i32 4, i32 4, i32 4]
@corr_steps = private unnamed_addr constant [20 x i32] [i32 2560, i32 2560, i32 2560, i32 2560, i32 2624, i32 2624, i32 2624, i32 2624, i32 2688, i32 2688, i32 2688, i32 2688, i32 2752, i32 2752, i32 2752, i32 2752, i32 2816, i32 2816, i32 2816, i32 2816]

declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)
declare <16 x float> @llvm.fabs.v16f32(<16 x float>)
declare <16 x float> @llvm.maxnum.v16f32(<16 x float>, <16 x float>)
declare float @llvm.vector.reduce.fmax.v16f32(<16 x float>)
declare i64 @llvm.umin.i64(i64, i64)
declare i64 @llvm.umax.i64(i64, i64)
; register block 1x3 x 1 vectors = 3 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 4 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h1_w3_v1(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <16 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <16 x i32>, align 64
  %acc.1.0 = alloca <16 x i32>, align 64
  %acc.2.0 = alloca <16 x i32>, align 64
  ; the src is stored offset: the first chain of this call starts from the INT32 correction of its slice
  ; (-offset x the sum of the vec operand over it), read at vec + corr_steps[first] + tile offset
  %cs.i = call i64 @llvm.umin.i64(i64 %first, i64 19)
  %cs.p = getelementptr inbounds [20 x i32], ptr @corr_steps, i64 0, i64 %cs.i
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
  %t1.raw = add i64 %t0, 4
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  %init.0.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.0.0, ptr %acc.0.0, align 64
  %init.1.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.1.0, ptr %acc.1.0, align 64
  %init.2.0 = select i1 %corr.chunk, <16 x i32> %corr.0, <16 x i32> zeroinitializer
  store <16 x i32> %init.2.0, ptr %acc.2.0, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [20 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [20 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds i8, ptr %src, i64 %soff
  %vb = getelementptr inbounds i8, ptr %vec, i64 %voff
    %x.0.0 = load <16 x i32>, ptr %acc.0.0, align 64
  %x.1.0 = load <16 x i32>, ptr %acc.1.0, align 64
  %x.2.0 = load <16 x i32>, ptr %acc.2.0, align 64
  %block = call { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } asm "vmovups\090($6), $3\0Avpbroadcastd\090($5), $4\0Avpdpbusd\09$3, $4, $0\0Avpbroadcastd\094($5), $4\0Avpdpbusd\09$3, $4, $1\0Avpbroadcastd\098($5), $4\0Avpdpbusd\09$3, $4, $2\0Avmovups\0964($6), $3\0Avpbroadcastd\0948($5), $4\0Avpdpbusd\09$3, $4, $0\0Avpbroadcastd\0952($5), $4\0Avpdpbusd\09$3, $4, $1\0Avpbroadcastd\0956($5), $4\0Avpdpbusd\09$3, $4, $2\0A", "=v,=v,=v,=&v,=&v,r,r,0,1,2"(ptr %sb, ptr %vb, <16 x i32> %x.0.0, <16 x i32> %x.1.0, <16 x i32> %x.2.0) #0
  %y.0.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 0
  store <16 x i32> %y.0.0, ptr %acc.0.0, align 64
  %y.1.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 1
  store <16 x i32> %y.1.0, ptr %acc.1.0, align 64
  %y.2.0 = extractvalue { <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32>, <16 x i32> } %block, 2
  store <16 x i32> %y.2.0, ptr %acc.2.0, align 64

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
  %op.2.0 = getelementptr inbounds float, ptr %dst, i64 32
  %old.2.0 = load <16 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first.chunk, <16 x float> zeroinitializer, <16 x float> %old.2.0
  %new.2.0 = call <16 x float> @llvm.fma.v16f32(<16 x float> %ff.2.0, <16 x float> %scale, <16 x float> %base.2.0)
  store <16 x float> %new.2.0, ptr %op.2.0, align 4
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
  %m.out = select i1 %final, <16 x float> %m.2.0, <16 x float> %m.in
  store <16 x float> %m.out, ptr %mx, align 64
  ret void
}


; Runs work items [begin, end): 1 batch entries x 9 items, the batch outer.
; %calls: the plan's call table, 9 calls x 6 i32 (tile, src, vec, dst, step_begin, step_count),
; passed at run time, so the IR stays small however many calls a layer has.
define void @dfpgen_wtgrad(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, ptr noalias readonly %calls, float %scale, ptr noalias %maxabs, i64 %begin, i64 %end) nounwind {
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
  %final = icmp eq i64 %bk.next, 5
  %bb.p = getelementptr inbounds [5 x i32], ptr @block_begin, i64 0, i64 %bk
  %bb.32 = load i32, ptr %bb.p, align 4
  %bb = sext i32 %bb.32 to i64
  %bn.p = getelementptr inbounds [5 x i32], ptr @block_count, i64 0, i64 %bk
  %bn.32 = load i32, ptr %bn.p, align 4
  %bn = sext i32 %bn.32 to i64
  %be = add nsw i64 %bb, %bn
  br label %item

item:
  %it = phi i64 [ %begin, %block ], [ %it.next, %item.end ]
  %n = udiv i64 %it, 9
  %j = urem i64 %it, 9
  %src.n.off = mul i64 %n, 0
  %src.n = getelementptr inbounds i8, ptr %src, i64 %src.n.off
  %dst.n.off = mul i64 %n, 0
  %dst.n = getelementptr inbounds float, ptr %dst, i64 %dst.n.off
  %cb.p = getelementptr inbounds [10 x i32], ptr @item_starts, i64 0, i64 %j
  %cb.32 = load i32, ptr %cb.p, align 4
  %cb = sext i32 %cb.32 to i64
  %j1 = add nuw i64 %j, 1
  %ce.p = getelementptr inbounds [10 x i32], ptr @item_starts, i64 0, i64 %j1
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
  switch i32 %call_tile.32, label %call.end [ i32 0, label %run.0 ]
run.0:
  call void @tile_h1_w3_v1(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <16 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
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
