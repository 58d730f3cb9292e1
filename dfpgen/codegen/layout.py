"""Blocked layouts: NCHW / KCRS to and from the kernels' layouts (docs/architecture.md, Layouts), per pass.

fprop   src x  [N][CB][pt+H+pb][pl+W+pr][cpb*elem]   vec w   [KB][CB][R][S][cpb][lanes][elem]   dst y  [N][KB][P][Q][lanes]
bprop   src dy [N][KB][top+P+..][left+Q+..][cpb*elem]  vec w^T [CB][KB][R][S][cpb][lanes][elem]  dst dx [N][CB][H][W][lanes]
wtgrad  src x  [N][pt+H+pb][Wx][C][elem] (q-pairs)  vec dy [N][KB][P][Qe][lanes][elem]   dst dw [KB][R][S][C][lanes]
INT16 pairs are innermost so one 32-bit broadcast feeds a lane pair. Channel counts that are not
block multiples are padded with zeros, never rejected. Shapes and margins come from the Plan.
A negative bottom/right pad (rows or columns no window reads) crops the copy instead.

On the INT8 ISAs (`elem` 4: vpdpbusd) the src is stored as unsigned bytes x + offset, so its padding
holds the offset (a zero), and the vec's extra channel block holds each output channel's INT32
correction -offset x sum(vec over the reduction) in its first vector (dfpgen/passes/fprop.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dfpgen.codegen.lanesum import CorrectionTable, write_corrections
from dfpgen.codegen.plan import Plan
from dfpgen.errors import NumericsError

ALIGNMENT = 64  # bytes: one cache line, one zmm register


def _aligned(shape: tuple, dtype, allocate) -> np.ndarray:
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = allocate(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple, dtype) -> np.ndarray:
    """A zero-filled C-contiguous array whose data starts on a 64-byte boundary."""
    return _aligned(shape, dtype, np.zeros)


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary."""
    return _aligned(shape, dtype, np.empty)


def _src_buffer(plan: Plan) -> np.ndarray:
    """An aligned src layout holding zeros as the ISA stores them (its src offset)."""
    dst = aligned_zeros(plan.src_shape, plan.src_storage)
    if plan.isa.src_offset:
        dst.fill(plan.isa.src_offset)
    return dst


def _narrowed(a, dtype: str, offset: int = 0) -> np.ndarray:
    """Mantissas as a layout of `dtype` stores them (plus `offset`); NumericsError when one does not fit."""
    dtype = np.dtype(dtype)
    if dtype.itemsize >= 2:
        return np.asarray(a, dtype=dtype)
    a = np.asarray(a)
    info = np.iinfo(dtype)
    low, high = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if low + offset < info.min or high + offset > info.max:
        raise NumericsError(f"mantissas in {low}..{high}: the {dtype} layout holds "
                            f"{info.min - offset}..{info.max - offset} (quantize with bits <= 8)")
    return (a.astype(np.int16) + offset).astype(dtype)


def _src_values(x, plan: Plan) -> np.ndarray:
    """src mantissas (or FP32 values) as the src layout stores them."""
    return _narrowed(x, plan.src_storage, plan.isa.src_offset)


def _write_corrections(dst: np.ndarray, table: CorrectionTable, plan: Plan) -> None:
    """Each output lane's INT32 correction -offset x sum(vec) into dst, as `table` places and sums them."""
    write_corrections(dst, table, -plan.isa.src_offset, plan.target, plan.isa)


def _pad_axis(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    if a.shape[axis] == size:
        return a
    shape = list(a.shape)
    shape[axis] = size
    padded = np.zeros(shape, dtype=a.dtype)
    padded[(slice(None),) * axis + (slice(0, a.shape[axis]),)] = a
    return padded


def _fitted(extent: int, low: int, room: int) -> int:
    """How many of `extent` pixels placed after `low` zero pixels fit in a buffer of `room`."""
    return max(0, min(extent, room - low))


def block_input(x: np.ndarray, plan: Plan) -> np.ndarray:
    """NCHW input (INT16 mantissas or FP32) -> the plan's blocked, zero-padded input layout."""
    N, CB, Hp, Wp, ce = plan.src_shape
    s, lay = plan.spec, plan.layout
    dst = _src_buffer(plan)
    x = _src_values(_pad_axis(np.asarray(x), 1, CB * ce), plan)   # padded channels hold a stored zero too
    rows, cols = _fitted(s.H, lay.top, Hp), _fitted(s.W, lay.left, Wp)
    dst[:, :, lay.top:lay.top + rows, lay.left:lay.left + cols, :] = \
        x[:, :, :rows, :cols].reshape(N, CB, ce, rows, cols).transpose(0, 1, 3, 4, 2)
    return dst


def block_weights(w: np.ndarray, plan: Plan) -> np.ndarray:
    """KCRS weights -> the plan's blocked layout [KB][CB][R][S][cpb][lanes][elem] (and the corrections'
    channel block [KB][CB] on unsigned-src ISAs)."""
    KB, CBv, R, S, cpb, lanes, elem = plan.vec_shape
    CB = CBv - int(plan.corrected)
    w = _narrowed(w, plan.vec_storage)
    w = _pad_axis(_pad_axis(w, 0, KB * lanes), 1, CB * cpb * elem)
    dst = (aligned_zeros if plan.corrected else aligned_empty)(plan.vec_shape, plan.vec_storage)
    dst[:, :CB] = w.reshape(KB, lanes, CB, cpb, elem, R, S).transpose(0, 2, 5, 6, 3, 1, 4)
    weight_corrections(dst, plan)
    return dst


def weight_corrections(dst: np.ndarray, plan: Plan) -> None:
    """FPROP's vec on unsigned-src ISAs: each output channel's correction, from the blocked weights in dst."""
    if plan.corrected:
        _write_corrections(dst, _weight_table(dst.shape), plan)


@lru_cache(maxsize=256)
def _weight_table(shape: tuple) -> CorrectionTable:
    """FPROP: filter block kb's correction, the first vector of its last channel block, sums the blocks before."""
    KB, CBv, R, S, cpb, lanes, _ = shape
    block = R * S * cpb
    return CorrectionTable.of(lanes, [((kb * CBv + CBv - 1) * block, [(kb * CBv * block, (CBv - 1) * block)])
                                      for kb in range(KB)])


def unblock_output(y: np.ndarray, plan: Plan) -> np.ndarray:
    """Blocked FP32 output [N][KB][P][Q][lanes] (fprop y, bprop dx) -> NCHW float32 without channel padding."""
    N, KB, P, Q, lanes = plan.dst_shape
    channels = plan.conv_pass.result.shape(plan.spec)[1]
    nchw = y.transpose(0, 1, 4, 2, 3).reshape(N, KB * lanes, P, Q)
    return np.ascontiguousarray(nchw[:, :channels])


def block_grad_output(dy: np.ndarray, plan: Plan) -> np.ndarray:
    """bprop src: NCHW dy -> [N][KB][Pp][Qp][cpb*elem], zero margins where phases read outside dy."""
    N, KB, Pp, Qp, ce = plan.src_shape
    s, lay = plan.spec, plan.layout
    dst = _src_buffer(plan)
    dy = _src_values(_pad_axis(np.asarray(dy), 1, KB * ce), plan)
    dst[:, :, lay.top:lay.top + s.P, lay.left:lay.left + s.Q, :] = \
        dy.reshape(N, KB, ce, s.P, s.Q).transpose(0, 1, 3, 4, 2)
    return dst


def block_weights_transposed(w: np.ndarray, plan: Plan) -> np.ndarray:
    """bprop vec: KCRS w -> [CB][KB][R][S][cpb][lanes][elem], lanes over C and pairs over K (and on
    unsigned-src ISAs, past the KB blocks, one correction vector per phase)."""
    CB, KBv, R, S, cpb, lanes, elem = plan.vec_shape
    phases = plan.layout.phases
    KB = transposed_weight_blocks(plan)                  # the extra blocks hold one vector per phase
    w = _narrowed(w, plan.vec_storage)
    w = _pad_axis(_pad_axis(w, 0, KB * cpb * elem), 1, CB * lanes)
    dst = (aligned_zeros if phases else aligned_empty)(plan.vec_shape, plan.vec_storage)
    dst[:, :KB] = w.reshape(KB, cpb, elem, CB, lanes, R, S).transpose(3, 0, 5, 6, 1, 4, 2)
    transposed_weight_corrections(dst, plan)
    return dst


def transposed_weight_blocks(plan: Plan) -> int:
    """BPROP's KB: the vec layout's K blocks that hold weights (past them, the phases' correction vectors)."""
    _, KBv, R, S, cpb, _, _ = plan.vec_shape
    return KBv - -(-len(plan.layout.phases) // (R * S * cpb))


def transposed_weight_corrections(dst: np.ndarray, plan: Plan) -> None:
    """BPROP's vec on unsigned-src ISAs: one correction vector per phase, summing the blocked weights in dst
    over K and the phase's taps."""
    if plan.layout.phases:
        _write_corrections(dst, _transposed_table(dst.shape, transposed_weight_blocks(plan), plan.layout.phases),
                           plan)


@lru_cache(maxsize=256)
def _transposed_table(shape: tuple, KB: int, phases: tuple) -> CorrectionTable:
    """BPROP: per channel block and phase i, the vector i past the KB weight blocks sums the phase's taps (cpb
    vectors each, consecutive taps of a row as one run) of every weight block."""
    CB, KBv, R, S, cpb, lanes, _ = shape
    outputs = []
    for cb in range(CB):
        for i, (rows, cols) in enumerate(phases):
            parts: list = []
            for kb in range(KB):
                for r in rows:
                    for s in cols:
                        start = (((cb * KBv + kb) * R + r) * S + s) * cpb
                        if parts and parts[-1][0] + parts[-1][1] == start:
                            parts[-1] = (parts[-1][0], parts[-1][1] + cpb)
                        else:
                            parts.append((start, cpb))
            outputs.append(((cb * KBv + KB) * R * S * cpb + i, parts))
    return CorrectionTable.of(lanes, outputs)


def expand_input_pairs(x: np.ndarray, plan: Plan) -> np.ndarray:
    """wtgrad src: NCHW x -> [N][pt+H+pb][Wx][C][elem]; element e at column w is padded x at w + e*sw."""
    N, Hp, Wx, C, elem = plan.src_shape
    s, st, lay = plan.spec, plan.spec.sw, plan.layout
    width = Wx + st * (elem - 1)
    padded = np.zeros((N, C, Hp, width), dtype=plan.storage if plan.src_storage == plan.storage else np.int16)
    rows, cols = _fitted(s.H, lay.top, Hp), _fitted(s.W, lay.left, width)
    padded[:, :, lay.top:lay.top + rows, lay.left:lay.left + cols] = \
        np.asarray(x, dtype=padded.dtype)[:, :, :rows, :cols]
    padded = _src_values(padded, plan)             # every zero, padding included, as the ISA stores it
    dst = aligned_empty(plan.src_shape, plan.src_storage)
    for e in range(elem):
        dst[..., e] = padded[:, :, :, e * st:e * st + Wx].transpose(0, 2, 3, 1)
    return dst


def block_grad_output_pairs(dy: np.ndarray, plan: Plan) -> np.ndarray:
    """wtgrad vec: NCHW dy -> [N][KB][P][Qe][lanes][elem], pairs along q, zero-padded in K and q (and on
    unsigned-src ISAs, in extra images past N, one correction vector per reduction block)."""
    _, KB, P, Qe, lanes, elem = plan.vec_shape
    N = plan.spec.N
    dy = _pad_axis(_pad_axis(_narrowed(dy, plan.vec_storage), 1, KB * lanes), 3, Qe * elem)
    dst = (aligned_zeros if plan.corrected else aligned_empty)(plan.vec_shape, plan.vec_storage)
    dst[:N] = dy.reshape(N, KB, lanes, P, Qe, elem).transpose(0, 1, 3, 4, 2, 5)
    grad_output_corrections(dst, plan)
    return dst


def grad_output_corrections(dst: np.ndarray, plan: Plan) -> None:
    """WTGRAD's vec on unsigned-src ISAs: in the images past N, one correction vector per reduction block
    (a range of the N*P rows), summing the blocked dy in dst over the block's rows and q."""
    if plan.corrected:
        _write_corrections(dst, _grad_output_table(plan.spec.N, dst.shape, plan.layout.block_rows), plan)


@lru_cache(maxsize=256)
def _grad_output_table(N: int, shape: tuple, block_rows: tuple) -> CorrectionTable:
    """WTGRAD: block b's correction for filter block kb sits in image N + b // (P*Qe) at row, column
    divmod(b % (P*Qe), Qe) and sums the block's rows of dy (Qe vectors each), one run per image it spans."""
    _, KB, P, Qe, lanes, _ = shape
    outputs = []
    for b, (first, rows) in enumerate(block_rows):
        for kb in range(KB):
            parts, row = [], first
            while row < first + rows:
                n, p = divmod(row, P)
                span = min(P - p, first + rows - row)
                parts.append((((n * KB + kb) * P + p) * Qe, span * Qe))
                row += span
            outputs.append((((N + b // (P * Qe)) * KB + kb) * P * Qe + b % (P * Qe), parts))
    return CorrectionTable.of(lanes, outputs)


def unblock_weight_grad(dw: np.ndarray, plan: Plan) -> np.ndarray:
    """wtgrad dst: [KB][R][S][C][lanes] -> KCRS float32 without channel padding."""
    KB, R, S, C, lanes = plan.dst_shape
    kcrs = dw.transpose(0, 4, 3, 1, 2).reshape(KB * lanes, C, R, S)
    return np.ascontiguousarray(kcrs[:plan.spec.K])
