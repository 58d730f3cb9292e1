"""Blocked layouts: NCHW / KCRS to and from the kernels' channel-blocked layouts (DESIGN.md, Layouts).

Input  [N][CB][H+2p][W+2p][cpb*elem]    physically zero-padded, channel elements innermost
Weight [KB][CB][R][S][cpb][lanes][elem] INT16 pairs innermost, so one 32-bit broadcast feeds a lane pair
Output [N][KB][P][Q][lanes]             FP32
Channel counts that are not block multiples are padded with zeros, never rejected.
"""

from __future__ import annotations

import numpy as np

from .plan import Plan

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


def _pad_axis(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    if a.shape[axis] == size:
        return a
    shape = list(a.shape)
    shape[axis] = size
    padded = np.zeros(shape, dtype=a.dtype)
    padded[(slice(None),) * axis + (slice(0, a.shape[axis]),)] = a
    return padded


def block_input(x: np.ndarray, plan: Plan) -> np.ndarray:
    """NCHW input (INT16 mantissas or FP32) -> the plan's blocked, zero-padded input layout."""
    N, CB, Hp, Wp, ce = plan.in_shape
    s = plan.spec
    dst = aligned_zeros(plan.in_shape, plan.storage)
    x = _pad_axis(np.asarray(x, dtype=plan.storage), 1, CB * ce)
    p = s.pad
    dst[:, :, p:p + s.H, p:p + s.W, :] = x.reshape(N, CB, ce, s.H, s.W).transpose(0, 1, 3, 4, 2)
    return dst


def block_weights(w: np.ndarray, plan: Plan) -> np.ndarray:
    """KCRS weights -> the plan's blocked layout [KB][CB][R][S][cpb][lanes][elem]."""
    KB, CB, R, S, cpb, lanes, elem = plan.w_shape
    w = np.asarray(w, dtype=plan.storage)
    w = _pad_axis(_pad_axis(w, 0, KB * lanes), 1, CB * cpb * elem)
    dst = aligned_empty(plan.w_shape, plan.storage)
    dst[...] = w.reshape(KB, lanes, CB, cpb, elem, R, S).transpose(0, 2, 5, 6, 3, 1, 4)
    return dst


def unblock_output(y: np.ndarray, plan: Plan) -> np.ndarray:
    """Blocked FP32 output [N][KB][P][Q][lanes] -> NCHW float32 with the padding channels dropped."""
    N, KB, P, Q, lanes = plan.out_shape
    nchw = y.transpose(0, 1, 4, 2, 3).reshape(N, KB * lanes, P, Q)
    return np.ascontiguousarray(nchw[:, :plan.spec.K])
