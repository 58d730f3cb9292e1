"""float64 reference convolutions for every pass: the tuner's answer check and a user's cross-check.

Exact on integer mantissas while every partial sum stays below 2**53 (16-bit operands and reductions
shorter than 2**23 terms). Written with numpy's BLAS-backed tensordot over strided windows; no dfpgen
kernel code is involved.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .spec import ConvSpec


def _windows(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Zero-padded input windows [N][C][P][Q][R][S] (a view)."""
    p = spec.pad
    xp = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (spec.R, spec.S), axis=(2, 3))
    return win[:, :, ::spec.stride, ::spec.stride][:, :, :spec.P, :spec.Q]


def fprop(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """y[n,k,p,q] = sum_{c,r,s} x[n,c,p*st+r-pad,q*st+s-pad] w[k,c,r,s], float64."""
    return np.einsum("ncpqrs,kcrs->nkpq", _windows(x, spec), np.asarray(w, np.float64), optimize=True)


def bprop(dy: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dx = the input gradient of fprop for output gradient dy, float64."""
    s = spec
    cols = np.einsum("nkpq,kcrs->ncpqrs", np.asarray(dy, np.float64), np.asarray(w, np.float64), optimize=True)
    dx = np.zeros((s.N, s.C, s.H + 2 * s.pad + s.R, s.W + 2 * s.pad + s.S))
    for r in range(s.R):
        for t in range(s.S):
            dx[:, :, r:r + s.stride * s.P:s.stride, t:t + s.stride * s.Q:s.stride] += cols[..., r, t]
    return dx[:, :, s.pad:s.pad + s.H, s.pad:s.pad + s.W]


def wtgrad(x: np.ndarray, dy: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dw = the weight gradient of fprop for input x and output gradient dy, float64."""
    return np.einsum("ncpqrs,nkpq->kcrs", _windows(x, spec), np.asarray(dy, np.float64), optimize=True)


PASSES = {"fprop": fprop, "bprop": bprop, "wtgrad": wtgrad}


def run(pass_name: str, a: np.ndarray, b: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The reference result of one pass on its two operands (the same order as Conv2d.run)."""
    return PASSES[pass_name](a, b, spec)


def flush_bound(pass_name: str, a: np.ndarray, b: np.ndarray, spec: ConvSpec, flushes: int) -> np.ndarray:
    """Elementwise bound on |kernel - exact| for integer operands: (flushes + 1) * 2**-24 * |a| (*) |b|.

    Each flush rounds one INT32 chunk to FP32 (relative error <= 2**-24) and one FMA adds it to the
    running FP32 sum (another <= 2**-24 of that sum); both are at most the sum of |products|."""
    return (flushes + 1) * 2.0**-24 * PASSES[pass_name](np.abs(a), np.abs(b), spec)
