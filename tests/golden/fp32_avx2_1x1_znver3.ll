; dfpgen 0.1.0 -- generated kernel, do not edit
; layer pw: N=1 C=8 K=16 4x4 -> 4x4 kernel 1x1 stride 1 pad 0
; pass fprop, isa fp32_avx2 (vfmadd231ps, 8 lanes), cpu znver3
; blocking kv2 w4 h1 cpb8 u8 nk
; register block 1x4 x 2 vectors: 11 of 16 vector registers
; layouts: src [1, 1, 4, 4, 8] vec [2, 1, 1, 1, 8, 8, 1] dst [1, 2, 4, 4, 8]
; reduction: step tables of 1 steps, 8 elements a step, each step one inline-assembly block
; work: 4 items (1 x 4), 4 tile calls per batch entry, order nk
@src_steps = private unnamed_addr constant [1 x i32] [i32 0]
@vec_steps = private unnamed_addr constant [1 x i32] [i32 0]
@item_starts = private unnamed_addr constant [5 x i32] [i32 0, i32 1, i32 2, i32 3, i32 4]
@block_begin = private unnamed_addr constant [1 x i32] [i32 0]
@block_count = private unnamed_addr constant [1 x i32] [i32 1]

declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)
declare <8 x float> @llvm.fabs.v8f32(<8 x float>)
declare <8 x float> @llvm.maxnum.v8f32(<8 x float>, <8 x float>)
declare float @llvm.vector.reduce.fmax.v8f32(<8 x float>)
declare i64 @llvm.umin.i64(i64, i64)
declare i64 @llvm.umax.i64(i64, i64)
; register block 1x4 x 2 vectors = 8 accumulators.
; Reduces steps [first, first+count) of the step tables, flushing every 1 steps,
; into dst when %fresh (a call with no steps still writes zeros), else adding to what dst holds; and
; when %final (dst now holds the result) takes max|dst| into *%mx.
define internal void @tile_h1_w4_v2(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, i64 %first, i64 %count, <8 x float> %scale, ptr noalias %mx, i1 %fresh, i1 %final) alwaysinline nounwind {
entry:
  %acc.0.0 = alloca <8 x float>, align 64
  %acc.0.1 = alloca <8 x float>, align 64
  %acc.1.0 = alloca <8 x float>, align 64
  %acc.1.1 = alloca <8 x float>, align 64
  %acc.2.0 = alloca <8 x float>, align 64
  %acc.2.1 = alloca <8 x float>, align 64
  %acc.3.0 = alloca <8 x float>, align 64
  %acc.3.1 = alloca <8 x float>, align 64
  %end = add i64 %first, %count
  br label %chunk

chunk:
  %t0 = phi i64 [ %first, %entry ], [ %t1, %flush ]
  %first.chunk = phi i1 [ %fresh, %entry ], [ false, %flush ]
  %t1.raw = add i64 %t0, 1
  %t1 = call i64 @llvm.umin.i64(i64 %t1.raw, i64 %end)
  store <8 x float> zeroinitializer, ptr %acc.0.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.0.1, align 64
  store <8 x float> zeroinitializer, ptr %acc.1.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.1.1, align 64
  store <8 x float> zeroinitializer, ptr %acc.2.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.2.1, align 64
  store <8 x float> zeroinitializer, ptr %acc.3.0, align 64
  store <8 x float> zeroinitializer, ptr %acc.3.1, align 64
  %any = icmp ult i64 %t0, %t1
  br i1 %any, label %step, label %flush

step:
  %t = phi i64 [ %t0, %chunk ], [ %t.next, %step ]
  %soff.p = getelementptr inbounds [1 x i32], ptr @src_steps, i64 0, i64 %t
  %soff.32 = load i32, ptr %soff.p, align 4
  %soff = sext i32 %soff.32 to i64
  %voff.p = getelementptr inbounds [1 x i32], ptr @vec_steps, i64 0, i64 %t
  %voff.32 = load i32, ptr %voff.p, align 4
  %voff = sext i32 %voff.32 to i64
  %sb = getelementptr inbounds float, ptr %src, i64 %soff
  %vb = getelementptr inbounds float, ptr %vec, i64 %voff
    %x.0.0 = load <8 x float>, ptr %acc.0.0, align 64
  %x.0.1 = load <8 x float>, ptr %acc.0.1, align 64
  %x.1.0 = load <8 x float>, ptr %acc.1.0, align 64
  %x.1.1 = load <8 x float>, ptr %acc.1.1, align 64
  %x.2.0 = load <8 x float>, ptr %acc.2.0, align 64
  %x.2.1 = load <8 x float>, ptr %acc.2.1, align 64
  %x.3.0 = load <8 x float>, ptr %acc.3.0, align 64
  %x.3.1 = load <8 x float>, ptr %acc.3.1, align 64
  %block = call { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } asm "vmovups\090($12), $8\0Avmovups\09256($12), $9\0Avbroadcastss\090($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0932($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0964($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\0996($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\0932($12), $8\0Avmovups\09288($12), $9\0Avbroadcastss\094($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0936($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0968($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09100($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\0964($12), $8\0Avmovups\09320($12), $9\0Avbroadcastss\098($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0940($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0972($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09104($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\0996($12), $8\0Avmovups\09352($12), $9\0Avbroadcastss\0912($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0944($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0976($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09108($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\09128($12), $8\0Avmovups\09384($12), $9\0Avbroadcastss\0916($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0948($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0980($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09112($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\09160($12), $8\0Avmovups\09416($12), $9\0Avbroadcastss\0920($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0952($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0984($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09116($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\09192($12), $8\0Avmovups\09448($12), $9\0Avbroadcastss\0924($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0956($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0988($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09120($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0Avmovups\09224($12), $8\0Avmovups\09480($12), $9\0Avbroadcastss\0928($11), $10\0Avfmadd231ps\09$8, $10, $0\0Avfmadd231ps\09$9, $10, $1\0Avbroadcastss\0960($11), $10\0Avfmadd231ps\09$8, $10, $2\0Avfmadd231ps\09$9, $10, $3\0Avbroadcastss\0992($11), $10\0Avfmadd231ps\09$8, $10, $4\0Avfmadd231ps\09$9, $10, $5\0Avbroadcastss\09124($11), $10\0Avfmadd231ps\09$8, $10, $6\0Avfmadd231ps\09$9, $10, $7\0A", "=v,=v,=v,=v,=v,=v,=v,=v,=&v,=&v,=&v,r,r,0,1,2,3,4,5,6,7"(ptr %sb, ptr %vb, <8 x float> %x.0.0, <8 x float> %x.0.1, <8 x float> %x.1.0, <8 x float> %x.1.1, <8 x float> %x.2.0, <8 x float> %x.2.1, <8 x float> %x.3.0, <8 x float> %x.3.1) #0
  %y.0.0 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 0
  store <8 x float> %y.0.0, ptr %acc.0.0, align 64
  %y.0.1 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 1
  store <8 x float> %y.0.1, ptr %acc.0.1, align 64
  %y.1.0 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 2
  store <8 x float> %y.1.0, ptr %acc.1.0, align 64
  %y.1.1 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 3
  store <8 x float> %y.1.1, ptr %acc.1.1, align 64
  %y.2.0 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 4
  store <8 x float> %y.2.0, ptr %acc.2.0, align 64
  %y.2.1 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 5
  store <8 x float> %y.2.1, ptr %acc.2.1, align 64
  %y.3.0 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 6
  store <8 x float> %y.3.0, ptr %acc.3.0, align 64
  %y.3.1 = extractvalue { <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float>, <8 x float> } %block, 7
  store <8 x float> %y.3.1, ptr %acc.3.1, align 64

  %t.next = add nuw i64 %t, 1
  %t.more = icmp ult i64 %t.next, %t1
  br i1 %t.more, label %step, label %flush

flush:
  ; dst = fma(acc, scale, first flush of a fresh call ? 0 : dst)
  %fa.0.0 = load <8 x float>, ptr %acc.0.0, align 64
  %op.0.0 = getelementptr inbounds float, ptr %dst, i64 0
  %old.0.0 = load <8 x float>, ptr %op.0.0, align 4
  %base.0.0 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.0.0
  %new.0.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.0.0, <8 x float> %scale, <8 x float> %base.0.0)
  store <8 x float> %new.0.0, ptr %op.0.0, align 4
  %fa.0.1 = load <8 x float>, ptr %acc.0.1, align 64
  %op.0.1 = getelementptr inbounds float, ptr %dst, i64 128
  %old.0.1 = load <8 x float>, ptr %op.0.1, align 4
  %base.0.1 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.0.1
  %new.0.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.0.1, <8 x float> %scale, <8 x float> %base.0.1)
  store <8 x float> %new.0.1, ptr %op.0.1, align 4
  %fa.1.0 = load <8 x float>, ptr %acc.1.0, align 64
  %op.1.0 = getelementptr inbounds float, ptr %dst, i64 8
  %old.1.0 = load <8 x float>, ptr %op.1.0, align 4
  %base.1.0 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.1.0
  %new.1.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.1.0, <8 x float> %scale, <8 x float> %base.1.0)
  store <8 x float> %new.1.0, ptr %op.1.0, align 4
  %fa.1.1 = load <8 x float>, ptr %acc.1.1, align 64
  %op.1.1 = getelementptr inbounds float, ptr %dst, i64 136
  %old.1.1 = load <8 x float>, ptr %op.1.1, align 4
  %base.1.1 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.1.1
  %new.1.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.1.1, <8 x float> %scale, <8 x float> %base.1.1)
  store <8 x float> %new.1.1, ptr %op.1.1, align 4
  %fa.2.0 = load <8 x float>, ptr %acc.2.0, align 64
  %op.2.0 = getelementptr inbounds float, ptr %dst, i64 16
  %old.2.0 = load <8 x float>, ptr %op.2.0, align 4
  %base.2.0 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.2.0
  %new.2.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.2.0, <8 x float> %scale, <8 x float> %base.2.0)
  store <8 x float> %new.2.0, ptr %op.2.0, align 4
  %fa.2.1 = load <8 x float>, ptr %acc.2.1, align 64
  %op.2.1 = getelementptr inbounds float, ptr %dst, i64 144
  %old.2.1 = load <8 x float>, ptr %op.2.1, align 4
  %base.2.1 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.2.1
  %new.2.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.2.1, <8 x float> %scale, <8 x float> %base.2.1)
  store <8 x float> %new.2.1, ptr %op.2.1, align 4
  %fa.3.0 = load <8 x float>, ptr %acc.3.0, align 64
  %op.3.0 = getelementptr inbounds float, ptr %dst, i64 24
  %old.3.0 = load <8 x float>, ptr %op.3.0, align 4
  %base.3.0 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.3.0
  %new.3.0 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.3.0, <8 x float> %scale, <8 x float> %base.3.0)
  store <8 x float> %new.3.0, ptr %op.3.0, align 4
  %fa.3.1 = load <8 x float>, ptr %acc.3.1, align 64
  %op.3.1 = getelementptr inbounds float, ptr %dst, i64 152
  %old.3.1 = load <8 x float>, ptr %op.3.1, align 4
  %base.3.1 = select i1 %first.chunk, <8 x float> zeroinitializer, <8 x float> %old.3.1
  %new.3.1 = call <8 x float> @llvm.fma.v8f32(<8 x float> %fa.3.1, <8 x float> %scale, <8 x float> %base.3.1)
  store <8 x float> %new.3.1, ptr %op.3.1, align 4
  %c.more = icmp ult i64 %t1, %end
  br i1 %c.more, label %chunk, label %epilogue

epilogue:
  ; fused max|dst| for the next quantization's exponent
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
  %m.out = select i1 %final, <8 x float> %m.3.1, <8 x float> %m.in
  store <8 x float> %m.out, ptr %mx, align 64
  ret void
}


; Runs work items [begin, end): 1 batch entries x 4 items, the batch outer.
; %calls: the plan's call table, 4 calls x 6 i32 (tile, src, vec, dst, step_begin, step_count),
; passed at run time, so the IR stays small however many calls a layer has.
define void @dfpgen_fprop(ptr noalias %src, ptr noalias %vec, ptr noalias %dst, ptr noalias readonly %calls, float %scale, ptr noalias %maxabs, i64 %begin, i64 %end) nounwind {
entry:
  %mx = alloca <8 x float>, align 64
  store <8 x float> zeroinitializer, ptr %mx, align 64
  %scale.i = insertelement <8 x float> poison, float %scale, i64 0
  %scale.v = shufflevector <8 x float> %scale.i, <8 x float> poison, <8 x i32> zeroinitializer
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
  %src.n.off = mul i64 %n, 128
  %src.n = getelementptr inbounds float, ptr %src, i64 %src.n.off
  %dst.n.off = mul i64 %n, 256
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
  %src.c = getelementptr inbounds float, ptr %src.n, i64 %call_src.v
  %vec.c = getelementptr inbounds float, ptr %vec, i64 %call_vec.v
  %dst.c = getelementptr inbounds float, ptr %dst.n, i64 %call_dst.v
  ; the call's step slice within this block
  %call_end = add nsw i64 %call_step_begin.v, %call_step_count.v
  %slice.b = call i64 @llvm.umax.i64(i64 %call_step_begin.v, i64 %bb)
  %slice.e = call i64 @llvm.umin.i64(i64 %call_end, i64 %be)
  %slice.e1 = call i64 @llvm.umax.i64(i64 %slice.e, i64 %slice.b)
  %slice.n = sub nuw i64 %slice.e1, %slice.b
  switch i32 %call_tile.32, label %call.end [ i32 0, label %run.0 ]
run.0:
  call void @tile_h1_w4_v2(ptr %src.c, ptr %vec.c, ptr %dst.c, i64 %slice.b, i64 %slice.n, <8 x float> %scale.v, ptr %mx, i1 %fresh, i1 %final)
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
  %mv = load <8 x float>, ptr %mx, align 64
  %m = call float @llvm.vector.reduce.fmax.v8f32(<8 x float> %mv)
  store float %m, ptr %maxabs, align 4
  ret void
}

attributes #0 = { nounwind memory(read) }
