"""FPROP, the forward pass: its definition and planner.

y[n,k,p,q] = sum_{c,r,s} x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] * w[k,c,r,s].

src = x blocked [N][CB][pt+H+pb][pl+W+pr][cpb*elem] (zero-padded), vec = w blocked
[KB][CB][R][S][cpb][lanes][elem], dst = y [N][KB][P][Q][lanes]. A tile is hb output rows x wb output
columns x kv vectors of output channels; one work item is (channel group, row block) of one image.

On the INT8 ISAs (vpdpbusd: unsigned src bytes x signed vec bytes) x is stored as x + 128, padding
included (so a padded pixel still means 0), and vec has one more channel block per filter block whose
first vector holds -128 x sum_{c,r,s} w[k] as INT32: every call's first chain starts from it, so the
inner loop stays pure vpdpbusd and the correction costs one load per accumulator and call.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from dfpgen.codegen import views
from dfpgen.codegen.calls import CallsBuilder
from dfpgen.codegen.footprint import Geometry
from dfpgen.codegen.layout import block_input, block_weights, unblock_output, weight_corrections
from dfpgen.codegen.plan import (Blocking, PassTables, ResultLayout, channel_blocks, check_correction, clip_block,
                                 common, split)
from dfpgen.codegen.split import batched
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target
from dfpgen.passes.base import Pass, Reduction, W, X, Y
from dfpgen.verification import reference


@dataclass(frozen=True)
class FpropLayout:
    """Facts dfpgen.codegen.layout needs: physical top/left padding and channel blocking of x and w."""

    top: int
    left: int
    cpb: int
    elem: int


def _blocks(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str):
    """What plan() and geometry() both start from: the validated register block clipped to the layer,
    the channel block, unroll and block counts (input channels CB, output vectors KB)."""
    c = common(numerics, blocking, target, isa_name, spec)
    check_correction(c, numerics, spec.C * spec.R * spec.S, "C*R*S")
    cpb, unroll, CB = channel_blocks(c, blocking, spec.C, numerics)
    KB = ceil(spec.K / c.lanes)
    return clip_block(c, KB, spec.P, spec.Q), cpb, unroll, CB, KB


def _vec_blocks(c, CB: int) -> int:
    """Channel blocks of the blocked weights: one more for the correction on unsigned-src ISAs."""
    return CB + (1 if c.isa.src_offset else 0)


def plan(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str,
         result_layout: ResultLayout = ResultLayout.BLOCKED) -> PassTables:
    """Plan an FPROP kernel."""
    c, cpb, unroll, CB, KB = _blocks(spec, numerics, blocking, target, isa_name)
    s, elem, lanes = spec, c.elem, c.lanes
    kv, hb, wb = c.kv, c.hb, c.wb
    Hp, Wp, ce = s.pt + s.H + s.pb, s.pl + s.W + s.pr, cpb * elem
    in_w, in_h = ce, Wp * ce
    in_cb = Hp * in_h
    in_n = CB * in_cb
    w_s = cpb * lanes * elem
    w_r, w_cb = s.S * w_s, s.R * s.S * w_s
    w_kb = _vec_blocks(c, CB) * w_cb
    dst_shape, out_kb, out_p, out_q, out_n = result_layout.dst(s.N, s.K, s.P, s.Q, lanes)

    src_steps, vec_steps = [], []
    for cb in range(CB):
        for r in range(s.R):
            for t in range(s.S):
                for g in range(cpb // unroll):
                    src_steps.append(cb * in_cb + r * s.dh * in_h + t * s.dw * in_w + g * unroll * elem)
                    vec_steps.append(cb * w_cb + r * w_r + t * w_s + g * unroll * lanes * elem)
    all_steps = (0, len(src_steps))

    builder = CallsBuilder()
    builder.grid(split(KB, kv), split(s.P, hb), split(s.Q, wb), src=(0, s.sh * in_h, s.sw * in_w, 0),
                 vec=(w_kb, 0, 0, 0), dst=(out_kb, out_p, out_q, 0), steps=all_steps,
                 rows_outer=blocking.order == "np")

    def tile_offsets(h: int, w: int, v: int):
        pixels = [(i, j) for i in range(h) for j in range(w)]
        bcast = tuple(tuple(i * s.sh * in_h + j * s.sw * in_w + p * elem for i, j in pixels)
                      for p in range(unroll))
        weights = tuple(tuple(vv * w_kb + p * lanes * elem for vv in range(v)) for p in range(unroll))
        out = tuple(tuple(vv * out_kb + i * out_p + j * out_q for vv in range(v)) for i, j in pixels)
        return bcast, weights, out

    # Threads own boxes of image rows x filter blocks: a row block's input rows, a block's weights.
    groups, rows, size = ceil(KB / kv), ceil(s.P / hb), c.isa.storage_bytes
    dims, levels = batched(blocking.order, s.N, rows, groups, in_n * size / rows, w_kb * KB * size / groups)
    notes = []
    if blocking.kv > KB or blocking.wb > s.Q or blocking.hb > s.P:
        notes.append(f"note: blocking clipped to the layer (kv {kv}, wb {wb}, hb {hb})")
    if c.isa.src_offset:
        notes.append(f"correction: x stored + {c.isa.src_offset} (unsigned bytes); each call's first chain starts "
                     f"from -{c.isa.src_offset} x sum(w) of its output channels, in an extra channel block of w")
    return PassTables(
        common=c, cpb=cpb, unroll=unroll,
        src_shape=(s.N, CB, Hp, Wp, ce), vec_shape=(KB, _vec_blocks(c, CB), s.R, s.S, cpb, lanes, elem),
        dst_shape=dst_shape, layout=FpropLayout(s.pt, s.pl, cpb, elem), result_layout=result_layout,
        src_steps=src_steps, vec_steps=vec_steps, tile_offsets=tile_offsets, calls=builder,
        batch=s.N, src_batch_stride=in_n, dst_batch_stride=out_n, notes=notes, split_dims=dims,
        split_levels=levels, **_correction(c, CB * w_cb, w_kb, len(src_steps)))


def _correction(c, at: int, w_kb: int, steps: int) -> dict:
    """The correction tables of unsigned-src ISAs: every call starts at step 0 of its filter block, whose
    correction vector is the first of the extra channel block, `at` past the block's weights."""
    if not c.isa.src_offset:
        return {}
    return {"correction_steps": [at] * steps, "correction_vectors": lambda v: tuple(vv * w_kb for vv in range(v))}


def geometry(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str) -> Geometry:
    """What plan() would build, counted: the same shapes, steps and calls, without a table."""
    c, cpb, unroll, CB, KB = _blocks(spec, numerics, blocking, target, isa_name)
    s, elem, lanes = spec, c.elem, c.lanes
    Hp, Wp, ce = s.pt + s.H + s.pb, s.pl + s.W + s.pr, cpb * elem
    return Geometry(src_shape=(s.N, CB, Hp, Wp, ce), vec_shape=(KB, _vec_blocks(c, CB), s.R, s.S, cpb, lanes, elem),
                    dst_shape=(s.N, KB, s.P, s.Q, lanes), storage_bytes=c.isa.storage_bytes,
                    steps=CB * s.R * s.S * (cpb // unroll),
                    calls=ceil(KB / c.kv) * ceil(s.P / c.hb) * ceil(s.Q / c.wb), blocks=1, batch=s.N, batched=True)


DEFINITION = Pass(
    name="fprop", summary="forward: y = x (*) w", order=0,
    src=X, vec=W, result=Y, reduction=Reduction.CHANNELS,
    reduced=("C", "R", "S"), block_axes=("K", "Q", "P"),
    planner=plan, to_src=block_input, to_vec=block_weights, from_dst=unblock_output,
    reference=reference.fprop, geometry=geometry,
    src_views=views.fprop_src, vec_views=views.fprop_vec, vec_finish=weight_corrections, result_views=True,
)
