"""Layout conversions as pairs of strided views, for the generated data-movement kernels (codegen/move.py).

A conversion is a list of (source view, destination view) pairs of equal extents; moving each pair
(copying FP32 or quantizing to INT16 mantissas) fills a destination whose other elements (margins,
channel padding) stay zero. The same layouts as dfpgen/codegen/layout.py builds with numpy, for two
kinds of source:

* plain arrays: NCHW activations and gradients, KCRS weights;
* blocked activations and gradients, FP32 [N][C/L][H][W][L] (`L` lanes, channels zero-padded to a
  multiple of L): the conv kernels' FP32 output layout, in which the numpy runtime keeps tensors
  between layers (dfpgen/runtime/blocked.py).

Channels are where layouts differ: each side splits them into (groups, lanes) or (blocks, width),
and `regroup` pairs whole groups with whole blocks when one width divides the other. A conversion
that cannot be written as a few views returns None, and the caller converts with numpy instead.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from numpy.lib.stride_tricks import as_strided

from dfpgen.codegen.layout import transposed_weight_blocks
from dfpgen.codegen.plan import Plan


def split(a: np.ndarray, axis: int, outer: int, inner: int) -> np.ndarray:
    """View axis `axis` (extent outer*inner) as two axes (outer, inner), never copying."""
    if a.shape[axis] != outer * inner:
        raise ValueError(f"split: axis {axis} has extent {a.shape[axis]}, not {outer} x {inner}")
    step = a.strides[axis]
    return as_strided(a, a.shape[:axis] + (outer, inner) + a.shape[axis + 1:],
                      a.strides[:axis] + (step * inner, step) + a.strides[axis + 1:], writeable=a.flags.writeable)


def take(a: np.ndarray, axis: int, begin: int, end: int) -> np.ndarray:
    """Elements begin..end of one axis (a view)."""
    return a[(slice(None),) * axis + (slice(begin, end),)]


def regroup(src: np.ndarray, dst: np.ndarray, axis: int) -> list | None:
    """Pairs moving src's channels, axes (axis, axis+1) = (groups G, lanes Ls), into dst's, the same axes
    = (blocks B, width E); every other axis agrees. Channel c is g*Ls + l in src and b*E + e in dst.
    Groups beyond dst's blocks are dropped (they can only hold padding); None when neither width
    divides the other."""
    G, Ls = src.shape[axis:axis + 2]
    B, E = dst.shape[axis:axis + 2]
    if E % Ls == 0:   # a dst block takes m whole src groups
        m = E // Ls
        blocks = split(dst, axis + 1, m, Ls)
        full = min(G // m, B)
        pairs = [(split(take(src, axis, 0, full * m), axis, full, m), take(blocks, axis, 0, full))] if full else []
        rest = min(G - full * m, m) if full < B else 0
        if rest:
            pairs.append((np.expand_dims(take(src, axis, full * m, full * m + rest), axis),
                          take(take(blocks, axis, full, full + 1), axis + 1, 0, rest)))
        return pairs
    if Ls % E == 0:   # a src group fills m whole dst blocks
        m = Ls // E
        groups = split(src, axis + 1, m, E)
        full = min(G, B // m)
        pairs = [(take(groups, axis, 0, full), split(take(dst, axis, 0, full * m), axis, full, m))] if full else []
        rest = min(B - full * m, m) if full < G else 0
        if rest:
            pairs.append((take(take(groups, axis, full, full + 1), axis + 1, 0, rest),
                          np.expand_dims(take(dst, axis, full * m, full * m + rest), axis)))
        return pairs
    return None


def grouped(source: np.ndarray, blocked: bool, width: int, channels: int | None = None) -> np.ndarray:
    """A source's channels as axes 1, 2 = (groups, lanes), then its spatial axes: a blocked
    (N, G, H, W, L) tensor as (N, G, L, H, W) (of one block, only its `channels` real lanes); a plain
    (N, C, H, W) one split into groups that divide `width` (the destination's channels per block),
    so `regroup` pairs them."""
    if blocked and (source.shape[1] > 1 or channels is None):
        return source.transpose(0, 1, 4, 2, 3)
    if blocked:   # one block: its real channels, as a plain tensor's
        source = source[:, 0, :, :, :channels].transpose(0, 3, 1, 2)
    lanes = gcd(source.shape[1], width) or 1
    return split(source, 1, source.shape[1] // lanes, lanes)


def _channels(tensor, plan: Plan) -> int:
    """The channels of a pass's operand tensor (its axis 1)."""
    return tensor.shape(plan.spec.per_group())[1]


def fitted(extent: int, low: int, room: int) -> int:
    """How many of `extent` pixels placed after `low` zero pixels fit in a buffer of `room`."""
    return max(0, min(extent, room - low))


def _channels_last_pairs(source: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """Source (N, C, H, W) into dst [N][CB][top+H+..][left+W+..][width]: fprop's x, bprop's dy."""
    N, CB, Hp, Wp, width = dst.shape
    top, left = plan.layout.top, plan.layout.left
    src = grouped(source, blocked, width, _channels(plan.conv_pass.src, plan))
    rows, cols = fitted(src.shape[3], top, Hp), fitted(src.shape[4], left, Wp)
    inside = dst[:, :, top:top + rows, left:left + cols, :].transpose(0, 1, 4, 2, 3)
    return regroup(src[:, :, :, :rows, :cols], inside, 1)


def fprop_src(source: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """FPROP's x: [N][CB][pt+H+pb][pl+W+pr][cpb*elem]."""
    return _channels_last_pairs(source, blocked, dst, plan)


def bprop_src(source: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """BPROP's dy: [N][KB][top+P+..][left+Q+..][cpb*elem]."""
    return _channels_last_pairs(source, blocked, dst, plan)


def _with_axis(a: np.ndarray, extent: int, stride: int) -> np.ndarray:
    """a with a new last axis of `extent` whose index e moves e * `stride` bytes."""
    return as_strided(a, a.shape + (extent,), a.strides + (stride,), writeable=a.flags.writeable)


def _within(progression: tuple, low: int, high: int) -> tuple | None:
    """The part of a (start, stop, step) progression inside [low, high), or None."""
    start, stop, step = progression
    if start < low:
        start += -(-(low - start) // step) * step
    stop = min(stop, high)
    return (start, stop, step) if start < stop else None


def wtgrad_src(source: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """WTGRAD's x: [N][pt+H+pb][Wx][C][elem], element e at column w holding padded x at w + e*sw, filled only
    where the kernel reads (plan.layout's rows_read and columns_read; the rest keeps the buffer's zeros).
    Columns where every element reads x move as one view with an element axis (whole destination vectors);
    the edge columns, element by element."""
    N, Hp, Wx, C, elem = dst.shape
    src = grouped(source, blocked, C, _channels(plan.conv_pass.src, plan))
    H, W, st, lay = src.shape[3], src.shape[4], plan.spec.sw, plan.layout
    rows, cols = fitted(H, lay.top, Hp), fitted(W, lay.left, Wx + st * (elem - 1))
    inner_first, inner_last = lay.left, min(Wx, lay.left + cols - (elem - 1) * st)   # x column w - left + e*st
    inner_last = max(inner_first, inner_last)
    row_runs = [run for run in (_within(p, lay.top, lay.top + rows) for p in lay.rows_read) if run]
    column_runs = [run for run in (_within(p, inner_first, inner_last) for p in lay.columns_read) if run]
    read = {w for first, last, step in lay.columns_read for w in range(first, last, step)}
    # Edge columns: those whose elements read x only in part, the rest padding. Neighbouring columns reading
    # the same elements move together, each group of elements at once ("partial" moves).
    edges: list = []   # (first column, columns, first element, elements)
    for w in [*range(0, inner_first), *range(inner_last, Wx)]:
        valid = [e for e in range(elem) if 0 <= w + e * st - lay.left < cols]
        if not valid or w not in read:
            continue
        e0, n = valid[0], len(valid)   # contiguous: x's columns are a range
        if edges and edges[-1][0] + edges[-1][1] == w and edges[-1][2:] == (e0, n):
            edges[-1] = (edges[-1][0], edges[-1][1] + 1, e0, n)
        else:
            edges.append((w, 1, e0, n))
    pieces = []
    for top, bottom, row_step in row_runs:
        x_rows = src[:, :, :, top - lay.top:bottom - lay.top:row_step]
        element = st * x_rows.strides[-1]   # element e of a column reads x e*sw columns on
        dst_rows = dst[:, top:bottom:row_step]
        for first, last, step in column_runs:
            # Along a column phase modulo the stride, element e+1 of a column is element e of the next one, so
            # the move quantizes each x element once (MovePlan.slide); columns read at a larger step, alone.
            stride = st if step == 1 else step
            for phase in range(first, min(first + st, last)) if step == 1 else (first,):
                x_cols = x_rows[..., phase - lay.left:last - lay.left:stride]
                inside = dst_rows[:, :, phase:last:stride].transpose(0, 3, 1, 2, 4)
                pieces.append((_with_axis(x_cols, elem, element), split(inside, 1, 1, C)))
        for a, count, e0, n in edges:
            x_first = a + e0 * st - lay.left
            inside = dst_rows[:, :, a:a + count, :, e0:e0 + n].transpose(0, 3, 1, 2, 4)
            pieces.append((_with_axis(x_rows[..., x_first:x_first + count], n, element), split(inside, 1, 1, C)))
    return _regrouped(pieces)


def _regrouped(pieces: list) -> list | None:
    """regroup() every (source, destination) piece along axis 1; None if any cannot be."""
    pairs = []
    for source, destination in pieces:
        one = regroup(source, destination, 1)
        if one is None:
            return None
        pairs += one
    return pairs


def wtgrad_vec(source: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """WTGRAD's dy: [N][KB][P][Qe][lanes][elem], pairs of consecutive q innermost. Whole pairs move as
    one view with an element axis; a last odd q on its own."""
    dst = dst[:plan.spec.N]   # the INT8 ISAs' corrections follow in extra images (vec_finish writes them)
    N, KB, P, Qe, lanes, elem = dst.shape
    src = grouped(source, blocked, lanes, _channels(plan.conv_pass.vec, plan))
    Q = src.shape[4]
    whole = min(Qe, Q // elem)
    pieces = []
    if whole:
        inside = dst[:, :, :, :whole].transpose(0, 1, 4, 2, 3, 5)
        pieces.append((split(src[..., :whole * elem], 4, whole, elem), inside))
    tail = min(elem, Q - whole * elem) if whole < Qe else 0
    if tail:   # the last q's: the first elements of the last pair or quad, one move
        pieces.append((src[..., whole * elem:whole * elem + tail],
                       dst[:, :, :, whole, :, :tail].transpose(0, 1, 3, 2, 4)))
    return _regrouped(pieces)


def _radix_boxes(extent: int, radices: tuple) -> list[tuple[int, tuple, tuple]]:
    """Indices 0..extent of an axis written mixed-radix over `radices` (outermost first) as boxes of whole
    sub-blocks: (first index, the box's extent per digit, the slice per digit). A block that is only partly
    used (channels that are not a whole number of blocks) becomes one box per digit."""
    boxes, start, prefix = [], 0, ()
    for level, radix in enumerate(radices):
        inner = int(np.prod(radices[level + 1:], dtype=np.int64))
        whole = (extent - start) // inner
        if whole:
            spans = [(d, 1) for d in prefix] + [(0, whole)] + [(0, r) for r in radices[level + 1:]]
            boxes.append((start, tuple(n for _, n in spans), tuple(slice(b, b + n) for b, n in spans)))
            start += whole * inner
        if start == extent:
            break
        prefix += (whole,)
    return boxes


def _split_all(a: np.ndarray, axis: int, extents: tuple) -> np.ndarray:
    """View axis `axis` as consecutive axes of `extents` (their product is its extent), never copying."""
    for i in range(len(extents) - 1):
        a = split(a, axis + i, extents[i], int(np.prod(extents[i + 1:], dtype=np.int64)))
    return a


def radix_pairs(plain: np.ndarray, blocked: np.ndarray, digits: tuple, plain_first: bool = True) -> list:
    """Pairs between a plain array and a blocked view whose axes are plain's axes written mixed-radix: plain's
    axis i becomes digits[i] consecutive axes of `blocked`, whose extents are the radices (the blocked side may
    hold more than plain: channel padding, left alone). Partial blocks become extra pairs, so any channel
    count moves. Each pair is (plain piece, blocked piece), or the other way round without `plain_first`."""
    per_axis, at = [], 0
    for axis, count in enumerate(digits):
        radices = blocked.shape[at:at + count]
        per_axis.append(_radix_boxes(plain.shape[axis], radices))
        at += count
    pairs = []
    for combo in np.ndindex(*(len(boxes) for boxes in per_axis)):
        piece, slices = plain, ()
        for axis in reversed(range(len(digits))):    # splitting later axes first keeps earlier axis numbers
            start, extents, digit_slices = per_axis[axis][combo[axis]]
            piece = _split_all(take(piece, axis, start, start + int(np.prod(extents, dtype=np.int64))), axis,
                               extents)
            slices = digit_slices + slices
        pairs.append((piece, blocked[slices]) if plain_first else (blocked[slices], piece))
    return pairs


def fprop_vec(w: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """FPROP's w (KCRS, any strides): [KB][CB][R][S][cpb][lanes][elem], K = (KB, lanes), C = (CB, cpb, elem)."""
    if blocked:
        return None
    if plan.corrected:   # the INT8 ISAs' corrections fill one more channel block (vec_finish writes them)
        dst = dst[:, :-1]
    return radix_pairs(w, dst.transpose(0, 5, 1, 4, 6, 2, 3), (2, 3, 1, 1))


def bprop_vec(w: np.ndarray, blocked: bool, dst: np.ndarray, plan: Plan) -> list | None:
    """BPROP's w^T: [CB][KB][R][S][cpb][lanes][elem], lanes over C, pairs over K: K = (KB, cpb, elem),
    C = (CB, lanes)."""
    if blocked:
        return None
    dst = dst[:, :transposed_weight_blocks(plan)]   # past them, the INT8 ISAs' corrections (vec_finish)
    return radix_pairs(w, dst.transpose(1, 4, 6, 0, 5, 2, 3), (3, 2, 1, 1))


def unblock_rows(blocked_out: np.ndarray, nchw: np.ndarray) -> list | None:
    """A blocked [N][CB][H][W][L] result (fprop's y, bprop's dx) into an NCHW array."""
    src = blocked_out.transpose(0, 1, 4, 2, 3)
    return regroup(src, grouped(nchw, False, src.shape[2]), 1)


def unblock_weight_grad(dw: np.ndarray, kcrs: np.ndarray) -> list | None:
    """WTGRAD's [KB][R][S][C][lanes] result into a KCRS array (any strides), K = (KB, lanes)."""
    return radix_pairs(kcrs, dw.transpose(0, 4, 3, 1, 2), (2, 1, 1, 1), plain_first=False)
