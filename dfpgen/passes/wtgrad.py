"""WTGRAD, the weight-gradient pass: its definition and planner.

dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl].

The reduction runs over N x P x Q, the longest of the three passes, so the INT16 pairs are taken
along q: each broadcast element is the pair (x at q, x at q+1) of one input channel, and each vector
element is (dy at q, dy at q+1) for `lanes` output channels.

src = x as pairs [N][pt+H+pb][Wx][C][elem] (element e holds the padded x at column w + e*sw),
vec = dy as pairs [N][KB][P][Qe][lanes][elem], dst = dw [KB][R][S][C][lanes].
A tile is hb filter columns (s) x wb input channels x kv vectors of output channels. One work item
is one (vector block, filter row r, s-block, input-channel chunk) with the chunk's input-channel tiles
(every item owns its outputs: threads never race and need no reduction; the thread split gives each
thread a box of vector blocks x taps x channel chunks, dfpgen.codegen.split). The reduction is cut
into blocks of `rb` output rows, and all items of a thread take one block before the next, adding to
their outputs after the first: a block's rows of x and dy come from memory once per thread, then
from cache.

On the INT8 ISAs the groups along q are quads, x is stored as x + 128 (padding included), and dy has
extra images after the N real ones holding, per reduction block and output channel, the INT32
correction -128 x sum of dy over the block's rows: each call's first chain in a block starts from it,
so every block's partial sum is exact before the FP32 add, as with INT16.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np

from dfpgen.codegen import views
from dfpgen.codegen.calls import CallsBuilder
from dfpgen.codegen.footprint import Geometry
from dfpgen.codegen.layout import (block_grad_output_pairs, expand_input_pairs, grad_output_corrections,
                                   unblock_weight_grad)
from dfpgen.codegen.plan import (Blocking, PassTables, ResultLayout, check_correction, clip_block, common,
                                 largest_divisor_at_most, split)
from dfpgen.codegen.split import Dim, Level
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target
from dfpgen.errors import PlanError
from dfpgen.passes.base import DW, DY, Pass, Reduction, X
from dfpgen.verification import reference


@dataclass(frozen=True)
class WtgradLayout:
    """Facts dfpgen.codegen.layout needs: top/left padding, the pair-expanded width of x, dy's padded element count."""

    top: int
    left: int
    x_width: int
    q_elems: int
    elem: int
    block_rows: tuple = ()    # unsigned-src ISAs: (first, count) output rows of N x P per reduction block
    rows_read: tuple = ()     # the padded rows of x the kernel reads, as (start, stop, step) progressions
    columns_read: tuple = ()  # the columns of the pair-expanded x it reads, likewise


def read_progressions(count: int, step: int, taps: int, dilation: int) -> tuple:
    """Indices j*step + t*dilation (0 <= j < count, 0 <= t < taps), i.e. the rows or columns of x a kernel reads,
    as (start, stop, step) progressions: one range when they fill it, else one progression of stride `step` per
    residue. A 1x1 layer at stride 2 reads every other row and, its columns in pairs, every fourth column: the
    conversion skips the rest (docs/architecture.md, Data movement)."""
    read = sorted({j * step + t * dilation for j in range(count) for t in range(taps)})
    if read[-1] - read[0] + 1 == len(read):
        return ((read[0], read[-1] + 1, 1),)
    progressions = []
    for residue in sorted({i % step for i in read}):
        members = [i for i in read if i % step == residue]
        if members[-1] - members[0] != step * (len(members) - 1):   # gaps within a residue: move the whole range
            return ((read[0], read[-1] + 1, 1),)
        progressions.append((members[0], members[-1] + 1, step))
    return tuple(progressions)


def _blocks(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str):
    """What plan() and geometry() both start from: the validated register block clipped to the layer,
    the unroll, dy's q-elements padded to whole steps (Qe), output vectors KB, x's padded height and
    its pair-expanded width."""
    c = common(numerics, blocking, target, isa_name, spec)
    s, elem = spec, c.elem
    unroll = _unroll(c, blocking, ceil(s.Q / elem), numerics)
    Qe = ceil(ceil(s.Q / elem) / unroll) * unroll          # dy is zero-padded to whole steps
    KB = ceil(s.K / c.lanes)
    Hp, Wx = s.pt + s.H + s.pb, (Qe - 1) * elem * s.sw + s.S_extent
    return clip_block(c, KB, s.S, s.C), unroll, Qe, KB, Hp, Wx


def plan(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str,
         result_layout: ResultLayout = ResultLayout.BLOCKED) -> PassTables:
    """Plan a WTGRAD kernel (its result, dw, has one layout: `result_layout` must be BLOCKED)."""
    if result_layout is not ResultLayout.BLOCKED:
        raise PlanError(f"result_layout={result_layout.value!r}: WTGRAD writes dw as [KB][R][S][C][lanes] only "
                        f"({ResultLayout.BLOCKED.value!r})")
    c, unroll, Qe, KB, Hp, Wx = _blocks(spec, numerics, blocking, target, isa_name)
    s, elem, lanes, st = spec, c.elem, c.lanes, spec.sw
    kv, hb, wb = c.kv, c.hb, c.wb
    x_c, x_w = elem, s.C * elem
    x_h = Wx * x_w
    x_n = Hp * x_h
    dy_q = lanes * elem
    dy_p = Qe * dy_q
    dy_kb = s.P * dy_p
    dy_n = KB * dy_kb
    out_s = s.C * lanes
    out_r = s.S * out_s
    out_kb = s.R * out_r

    image, row, group = np.ix_(range(s.N), range(s.P), range(Qe // unroll))   # steps in (n, p, g) order
    src_steps = (image * x_n + row * s.sh * x_h + group * unroll * elem * st * x_w).ravel().tolist()
    vec_steps = (image * dy_n + row * dy_p + group * unroll * dy_q).ravel().tolist()
    rb = _rows(s, blocking, elem, Qe, x_h)
    row_steps = Qe // unroll
    block_rows = split(s.N * s.P, rb)
    blocks = [(first * row_steps, rows * row_steps) for first, rows in block_rows]
    check_correction(c, numerics, rb * Qe * elem, "rb*Q")
    builder = CallsBuilder()
    # Rows are the (r, s-block) pairs; an item is one (vector block, row, input-channel chunk) with the chunk's
    # input-channel tiles. Items of whole vector blocks ran no faster at one thread and would leave most cores
    # idle on layers with few output channels (docs/experiments.md §3); chunks make at least WTGRAD_ITEMS items
    # where the layer has the tiles, so the thread split can give every thread a box of dw of its own.
    rows = [(r, s0, h) for r in range(s.R) for s0, h in split(s.S, hb)]
    vectors, tiles = split(KB, kv), split(s.C, wb)
    chunks = split(len(tiles), ceil(len(tiles) / min(len(tiles), ceil(WTGRAD_ITEMS / (len(vectors) * len(rows))))))
    builder.grid(vectors, [(0, h) for _, _, h in rows], tiles,
                 src=(0, [r * s.dh * x_h + s0 * s.dw * x_w for r, s0, _ in rows], x_c, 0),
                 vec=(dy_kb, 0, 0, 0), dst=(out_kb, [r * out_r + s0 * out_s for r, s0, _ in rows], lanes, 0),
                 steps=(0, len(src_steps)), item_cols=chunks)
    size = c.isa.storage_bytes
    dims = (Dim("filters", len(vectors), s.N * dy_n * size / len(vectors)), Dim("taps", len(rows), 0.0),
            Dim("channels", len(chunks), s.N * Hp * x_h * size / len(chunks)))

    def tile_offsets(h: int, w: int, v: int):
        pixels = [(i, j) for i in range(h) for j in range(w)]
        bcast = tuple(tuple(i * s.dw * x_w + j * x_c + p * elem * st * x_w for i, j in pixels) for p in range(unroll))
        weights = tuple(tuple(vv * dy_kb + p * dy_q for vv in range(v)) for p in range(unroll))
        out = tuple(tuple(vv * out_kb + i * out_s + j * lanes for vv in range(v)) for i, j in pixels)
        return bcast, weights, out

    group_name = "q-pairs" if elem == 2 else f"q-groups of {elem}" if elem > 1 else "columns"
    notes = [f"reduction over N x P x Q = {s.N} x {s.P} x {s.Q} as {len(src_steps)} steps of {unroll} "
             f"{group_name}, in {len(blocks)} blocks of {rb} rows"]
    correction = {}
    if c.isa.src_offset:
        # Block b's correction vectors sit at vector b of the extra images, at every vector block's offset.
        at = [s.N * dy_n + (b // (s.P * Qe)) * dy_n + (b % (s.P * Qe)) * dy_q for b in range(len(blocks))]
        correction = {"correction_steps": [at[b] for b, (_, count) in enumerate(blocks) for _ in range(count)],
                      "correction_vectors": lambda v: tuple(vv * dy_kb for vv in range(v))}
        notes.append(f"correction: x stored + {c.isa.src_offset} (unsigned bytes); each call's first chain in a "
                     f"block starts from -{c.isa.src_offset} x sum(dy) over the block's rows, in "
                     f"{_extra_images(c, s, Qe, len(blocks))} extra images of dy")
    return PassTables(
        common=c, cpb=1, unroll=unroll,
        src_shape=(s.N, Hp, Wx, s.C, elem),
        vec_shape=(s.N + _extra_images(c, s, Qe, len(blocks)), KB, s.P, Qe, lanes, elem),
        dst_shape=(KB, s.R, s.S, s.C, lanes),
        layout=WtgradLayout(s.pt, s.pl, Wx, Qe, elem, tuple(block_rows) if c.isa.src_offset else (),
                            read_progressions(s.P, s.sh, s.R, s.dh), read_progressions(Qe, elem * st, s.S, s.dw)),
        src_steps=src_steps, vec_steps=vec_steps, tile_offsets=tile_offsets, calls=builder,
        batch=1, src_batch_stride=0, dst_batch_stride=0, notes=notes, rb=rb, reduction_blocks=blocks,
        split_dims=dims, split_levels=(Level(0, len(vectors)), Level(1, len(rows)), Level(2, len(chunks))),
        **correction)


def _extra_images(c, s: ConvSpec, Qe: int, blocks: int) -> int:
    """Images of dy past the N real ones holding one correction vector per reduction block (unsigned-src ISAs)."""
    return ceil(blocks / (s.P * Qe)) if c.isa.src_offset else 0


def _unroll(c, blocking: Blocking, q_elems: int, numerics: Numerics) -> int:
    """Pairs (or columns) per step: the blocking's, else default_unroll within the accumulate chain."""
    # By default a step takes q-pairs that divide a row's, so rows need no zero padding.
    unroll = blocking.unroll if blocking.unroll is not None else default_unroll(q_elems)
    if c.chain:
        unroll = min(unroll, c.chain) if blocking.unroll is None else unroll
        if unroll > c.chain:
            raise PlanError(f"unroll={unroll}: a step of {unroll} pair-instructions exceeds the accumulate chain "
                            f"{c.chain} (bits x{numerics.bits_x}/w{numerics.bits_w}, {numerics.overflow})")
    if not 1 <= unroll <= 64:
        raise PlanError(f"unroll={unroll}: must be in 1..64")
    return unroll


def _rows(s: ConvSpec, blocking: Blocking, elem: int, Qe: int, x_h: int) -> int:
    """Output rows per reduction block: the blocking's rb, else the default, at most N x P."""
    rb = blocking.rb
    if rb is None:
        rb = default_rows(s.N * s.P, Qe, s.K * s.C * s.R * s.S * 4) if elem > 1 else \
            fp32_default_rows(s.N * s.P, x_h * 4, s.R_extent, s.sh, Qe)
    if not isinstance(rb, int) or rb < 1:
        raise PlanError(f"rb={rb!r}: must be an integer >= 1 (output rows per reduction block)")
    return min(rb, s.N * s.P)


def geometry(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str) -> Geometry:
    """What plan() would build, counted: the same shapes, steps, calls and reduction blocks, without a table."""
    c, unroll, Qe, KB, Hp, Wx = _blocks(spec, numerics, blocking, target, isa_name)
    s, elem, lanes = spec, c.elem, c.lanes
    rb = _rows(s, blocking, elem, Qe, Wx * s.C * elem)
    vec_images = s.N + _extra_images(c, s, Qe, ceil(s.N * s.P / rb))
    return Geometry(src_shape=(s.N, Hp, Wx, s.C, elem), vec_shape=(vec_images, KB, s.P, Qe, lanes, elem),
                    dst_shape=(KB, s.R, s.S, s.C, lanes), storage_bytes=c.isa.storage_bytes,
                    steps=s.N * s.P * (Qe // unroll),
                    calls=ceil(KB / c.kv) * s.R * ceil(s.S / c.hb) * ceil(s.C / c.wb),
                    blocks=ceil(s.N * s.P / rb), batch=1, batched=False)


# Work items the planner makes at least (where the layer has that many input-channel tiles): enough for the
# thread split to give every core of a large machine its own box of dw.
WTGRAD_ITEMS = 64


def default_unroll(q_elems: int) -> int:
    """Pairs per step: the largest divisor of a row's q_elems up to 8 when that is at least 4, else up to 8."""
    divisor = largest_divisor_at_most(q_elems, 8)
    return divisor if divisor >= 4 else min(8, q_elems)


# DFP kernels: pair-instructions per accumulator that each call takes in each reduction block. Each block is one
# more pass over dw, and each row more keeps more x and dy in cache; past OUTPUT_CACHED_BYTES every pass reaches
# memory, so larger blocks win and FC layers take whole batches in one block (docs/experiments.md §3).
BLOCK_PAIRS = 32
BLOCK_PAIRS_LARGE_OUTPUT = 64
OUTPUT_CACHED_BYTES = 4 * 1024 * 1024


def default_rows(rows: int, row_pairs: int, out_bytes: int) -> int:
    """Output rows per reduction block: enough that each call reduces BLOCK_PAIRS pair-instructions
    (BLOCK_PAIRS_LARGE_OUTPUT when dw is larger than OUTPUT_CACHED_BYTES) per block."""
    pairs = BLOCK_PAIRS if out_bytes <= OUTPUT_CACHED_BYTES else BLOCK_PAIRS_LARGE_OUTPUT
    return max(1, min(rows, -(-pairs // max(1, row_pairs))))


# The FP32 baseline keeps larger blocks: bytes of x rows a block keeps in cache, and at least
# FP32_BLOCK_INSTRUCTIONS FMAs per accumulator and call (docs/experiments.md §3).
FP32_BLOCK_BYTES = 160 * 1024
FP32_BLOCK_INSTRUCTIONS = 64


def fp32_default_rows(rows: int, row_bytes: int, filter_rows: int, stride: int, row_columns: int) -> int:
    """FP32 output rows per reduction block: as many as keep the block's x rows within FP32_BLOCK_BYTES,
    and at least FP32_BLOCK_INSTRUCTIONS FMAs per accumulator and call."""
    cached = (FP32_BLOCK_BYTES // max(1, row_bytes) - filter_rows) // stride + 1    # x rows = (rb-1)*stride + extent
    return max(1, min(rows, max(cached, -(-FP32_BLOCK_INSTRUCTIONS // max(1, row_columns)))))


DEFINITION = Pass(
    name="wtgrad", summary="weight gradient: dw = x (*) dy over images and pixels", order=2,
    src=X, vec=DY, result=DW, reduction=Reduction.PIXELS,
    reduced=("N", "P", "Q"), block_axes=("K", "C", "S"),
    planner=plan, to_src=expand_input_pairs, to_vec=block_grad_output_pairs, from_dst=unblock_weight_grad,
    reference=reference.wtgrad, geometry=geometry,
    src_views=views.wtgrad_src, vec_views=views.wtgrad_vec, vec_finish=grad_output_corrections, result_views=views.unblock_weight_grad,
)
