"""BPROP, the backward-data pass: its definition and planner.

dx[n,c,h,w] = sum_{k,r,s} dy[n,k,p,q] * w[k,c,r,s] over h = p*sh + r*dh - pt,
w = q*sw + s*dw - pl.

With strides > 1 the input pixels split into sh x sw phases (h mod sh, w mod sw); within a phase
the contributing taps are fixed, and the phase is a stride-1 correlation of dy with those taps, so
each phase gets its own slice of the step tables and no zero-inserted dy is ever built.

src = dy blocked [N][KB][T+P+B][L+Q+R'][kpb*elem] (zero-padded by the planner's margins),
vec = w transposed [CB][KB][R][S][kpb][lanes][elem] (output channels are now C, reduction is K),
dst = dx [N][CB][H][W][lanes]. A tile is hb x wb input pixels of one phase x kv vectors of channels.

On the INT8 ISAs dy is stored as dy + 128, margins included, and w^T has extra reduction blocks per
channel block holding one INT32 correction vector per phase, -128 x sum_{k, taps of the phase} w[k, c]:
every pixel of a phase reads all of the phase's taps, so the correction depends on the phase only.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from dfpgen.codegen import views
from dfpgen.codegen.calls import CallsBuilder
from dfpgen.codegen.footprint import Geometry
from dfpgen.codegen.layout import (block_grad_output, block_weights_transposed, transposed_weight_corrections,
                                   unblock_output)
from dfpgen.codegen.plan import (Blocking, PassTables, ResultLayout, channel_blocks, check_correction, clip_block,
                                 common, split)
from dfpgen.codegen.split import batched
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target
from dfpgen.passes.base import DX, DY, Pass, Reduction, W
from dfpgen.verification import reference


@dataclass(frozen=True)
class BpropLayout:
    """Facts dfpgen.codegen.layout needs: dy's zero margins (top, left; the rest pads to the blocked shape)."""

    top: int
    left: int
    cpb: int
    elem: int
    phases: tuple = ()    # unsigned-src ISAs: per phase (row taps r, column taps s), for the corrections


def _phase_taps(extent: int, phase: int, taps: int, pad: int, stride: int, dilation: int, outputs: int):
    """Taps of one phase with their dy offsets, the phase's pixel count, and the dy margins it needs."""
    pixels = len(range(phase, extent, stride))
    chosen = [(r, (phase + pad - r * dilation) // stride) for r in range(taps)
              if (phase + pad - r * dilation) % stride == 0]
    low = max([0] + [-d for _, d in chosen])
    high = max([0] + [pixels - 1 + d - (outputs - 1) for _, d in chosen])
    return chosen, pixels, low, high


def _blocks(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str):
    """What plan() and geometry() both start from: the validated register block clipped to the layer,
    the channel block, unroll, block counts (output-gradient channels KB, input vectors CB) and the
    taps of each row and column phase."""
    c = common(numerics, blocking, target, isa_name, spec)
    check_correction(c, numerics, spec.K * spec.R * spec.S, "K*R*S")
    cpb, unroll, KB = channel_blocks(c, blocking, spec.K, numerics)
    CB = ceil(spec.C / c.lanes)
    s = spec
    rows = [_phase_taps(s.H, ph, s.R, s.pt, s.sh, s.dh, s.P) for ph in range(min(s.sh, s.H))]
    cols = [_phase_taps(s.W, pw, s.S, s.pl, s.sw, s.dw, s.Q) for pw in range(min(s.sw, s.W))]
    return clip_block(c, CB, s.H, s.W), cpb, unroll, KB, CB, rows, cols


def plan(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str,
         result_layout: ResultLayout = ResultLayout.BLOCKED) -> PassTables:
    """Plan a BPROP kernel."""
    c, cpb, unroll, KB, CB, rows, cols = _blocks(spec, numerics, blocking, target, isa_name)
    s, elem, lanes = spec, c.elem, c.lanes
    kv, hb, wb = c.kv, c.hb, c.wb
    top, bottom = max(r[2] for r in rows), max(r[3] for r in rows)
    left, right = max(q[2] for q in cols), max(q[3] for q in cols)
    Pp, Qp, ce = top + s.P + bottom, left + s.Q + right, cpb * elem
    src_w, src_h = ce, Qp * ce
    src_kb = Pp * src_h
    w_s = cpb * lanes * elem
    w_r, w_kb = s.S * w_s, s.R * s.S * w_s
    w_cb = (KB + _extra_blocks(c, cpb, s, rows, cols)) * w_kb
    dst_shape, out_cb, out_h, out_w, out_n = result_layout.dst(s.N, s.C, s.H, s.W, lanes)

    src_steps, vec_steps, builder = [], [], CallsBuilder()
    phases = []
    for ph, (rtaps, hcount, _, _) in enumerate(rows):
        for pw, (staps, wcount, _, _) in enumerate(cols):
            first = len(src_steps)
            for kb in range(KB):
                for r, dr in rtaps:
                    for t, dt in staps:
                        for g in range(cpb // unroll):
                            src_steps.append(kb * src_kb + (dr + top) * src_h + (dt + left) * src_w + g * unroll * elem)
                            vec_steps.append(kb * w_kb + r * w_r + t * w_s + g * unroll * lanes * elem)
            phases.append((ph, pw, hcount, wcount, (first, len(src_steps) - first)))
    # Order "np" walks each phase's rows outermost; the others take each filter block's phases in turn.
    rows_outer = blocking.order == "np"
    for blocks in [split(CB, kv)] if rows_outer else [[block] for block in split(CB, kv)]:
        for ph, pw, hcount, wcount, steps in phases:
            builder.grid(blocks, split(hcount, hb), split(wcount, wb), src=(0, src_h, src_w, 0),
                         vec=(w_cb, 0, 0, 0), dst=(out_cb, s.sh * out_h, s.sw * out_w, ph * out_h + pw * out_w),
                         steps=steps, rows_outer=rows_outer)

    def tile_offsets(h: int, w: int, v: int):
        pixels = [(i, j) for i in range(h) for j in range(w)]
        bcast = tuple(tuple(i * src_h + j * src_w + p * elem for i, j in pixels) for p in range(unroll))
        weights = tuple(tuple(vv * w_cb + p * lanes * elem for vv in range(v)) for p in range(unroll))
        out = tuple(tuple(vv * out_cb + i * s.sh * out_h + j * s.sw * out_w for vv in range(v)) for i, j in pixels)
        return bcast, weights, out

    # Threads own boxes of image rows (every phase's row blocks, in walk order) x filter blocks.
    groups, size = ceil(CB / kv), c.isa.storage_bytes
    row_blocks = sum(len(split(hcount, hb)) for _, _, hcount, _, _ in phases)
    dims, levels = batched(blocking.order, s.N, row_blocks, groups, KB * src_kb * size / max(1, row_blocks),
                           w_cb * CB * size / groups)
    strides = str(s.sh) if s.sh == s.sw else f"{s.sh}x{s.sw}"
    notes = [f"phases: {len(rows)} x {len(cols)} (stride {strides}); dy margins top {top} left {left} "
             f"bottom {bottom} right {right}"]
    correction, taps = {}, ()
    if c.isa.src_offset:
        # Phase i's correction vector is the i-th vector past the KB blocks of weights of a channel block.
        correction = {"correction_steps": [KB * w_kb + i * lanes * elem for i, (*_, (_, count)) in enumerate(phases)
                                           for _ in range(count)],
                      "correction_vectors": lambda v: tuple(vv * w_cb for vv in range(v))}
        taps = tuple((tuple(r for r, _ in rows[ph][0]), tuple(t for t, _ in cols[pw][0])) for ph, pw, *_ in phases)
        notes.append(f"correction: dy stored + {c.isa.src_offset} (unsigned bytes); each call's first chain starts "
                     f"from -{c.isa.src_offset} x sum(w) over K and its phase's taps, one vector per phase after "
                     f"the weights of each channel block")
    return PassTables(
        common=c, cpb=cpb, unroll=unroll,
        src_shape=(s.N, KB, Pp, Qp, ce),
        vec_shape=(CB, KB + _extra_blocks(c, cpb, s, rows, cols), s.R, s.S, cpb, lanes, elem),
        dst_shape=dst_shape, layout=BpropLayout(top, left, cpb, elem, taps), result_layout=result_layout,
        src_steps=src_steps, vec_steps=vec_steps, tile_offsets=tile_offsets, calls=builder,
        batch=s.N, src_batch_stride=KB * src_kb, dst_batch_stride=out_n, notes=notes, split_dims=dims,
        split_levels=levels, **correction)


def _extra_blocks(c, cpb: int, s: ConvSpec, rows: list, cols: list) -> int:
    """Reduction blocks of w^T past the weights that hold one correction vector per phase (unsigned-src ISAs)."""
    return ceil(len(rows) * len(cols) / (s.R * s.S * cpb)) if c.isa.src_offset else 0


def geometry(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str) -> Geometry:
    """What plan() would build, counted: the same shapes, steps and calls (per phase), without a table."""
    c, cpb, unroll, KB, CB, rows, cols = _blocks(spec, numerics, blocking, target, isa_name)
    s, elem, lanes = spec, c.elem, c.lanes
    Pp = max(r[2] for r in rows) + s.P + max(r[3] for r in rows)
    Qp = max(q[2] for q in cols) + s.Q + max(q[3] for q in cols)
    steps = sum(KB * len(rtaps) * len(staps) * (cpb // unroll) for rtaps, *_ in rows for staps, *_ in cols)
    calls = sum(ceil(CB / c.kv) * ceil(hcount / c.hb) * ceil(wcount / c.wb)
                for _, hcount, *_ in rows for _, wcount, *_ in cols)
    return Geometry(src_shape=(s.N, KB, Pp, Qp, cpb * elem),
                    vec_shape=(CB, KB + _extra_blocks(c, cpb, s, rows, cols), s.R, s.S, cpb, lanes, elem),
                    dst_shape=(s.N, CB, s.H, s.W, lanes), storage_bytes=c.isa.storage_bytes,
                    steps=steps, calls=calls, blocks=1, batch=s.N, batched=True)


DEFINITION = Pass(
    name="bprop", summary="backward data: dx = dy (*) w^T", order=1,
    src=DY, vec=W, result=DX, reduction=Reduction.CHANNELS,
    reduced=("K", "R", "S"), block_axes=("C", "W", "H"),
    planner=plan, to_src=block_grad_output, to_vec=block_weights_transposed, from_dst=unblock_output,
    reference=reference.bprop, geometry=geometry,
    src_views=views.bprop_src, vec_views=views.bprop_vec, vec_finish=transposed_weight_corrections, result_views=True,
)
