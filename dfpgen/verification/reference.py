"""float64 reference convolutions for every pass: the tuner's answer check and a user's cross-check.

Exact on integer mantissas while every partial sum stays below 2**53 (16-bit operands and reductions
shorter than 2**23 terms). Written with numpy's BLAS-backed tensordot over strided windows; no dfpgen
kernel code is involved.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dfpgen.core.spec import ConvSpec


def _padded(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """x in float64 with the spec's zero padding (a negative bottom/right pad crops)."""
    s = spec
    xp = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (s.pt, max(0, s.pb)), (s.pl, max(0, s.pr))))
    return xp[:, :, :s.pt + s.H + s.pb, :s.pl + s.W + s.pr]


def _windows(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Zero-padded input windows [N][C][P][Q][R][S] (a view)."""
    s = spec
    win = sliding_window_view(_padded(x, s), (s.R_extent, s.S_extent), axis=(2, 3))
    return win[:, :, ::s.sh, ::s.sw, ::s.dh, ::s.dw][:, :, :s.P, :s.Q]


def _by_group(spec: ConvSpec, a: np.ndarray, a_axis: int, b: np.ndarray, b_axis: int, per_group, out_axis: int):
    """Run `per_group(a_g, b_g)` on each group's channel slices and join the results along out_axis."""
    g = spec.groups
    if g == 1:
        return per_group(a, b)
    a_parts = np.split(np.asarray(a), g, axis=a_axis)
    b_parts = np.split(np.asarray(b), g, axis=b_axis)
    return np.concatenate([per_group(ai, bi) for ai, bi in zip(a_parts, b_parts)], axis=out_axis)


def fprop(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """y[n,k,p,q] = sum_{c,r,s} x[n,c,p*sh+r*dh-pt,q*sw+s*dw-pl] w[k,c,r,s] (within k's group), float64."""
    def one(xg, wg):
        return np.einsum("ncpqrs,kcrs->nkpq", _windows(xg, spec), np.asarray(wg, np.float64), optimize=True)
    return _by_group(spec, x, 1, w, 0, one, 1)


def bprop(dy: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dx = the input gradient of fprop for output gradient dy, float64."""
    s = spec

    def one(dyg, wg):
        cols = np.einsum("nkpq,kcrs->ncpqrs", np.asarray(dyg, np.float64), np.asarray(wg, np.float64), optimize=True)
        dx = np.zeros((s.N, cols.shape[1], s.pt + s.H + max(0, s.pb) + s.R_extent,
                       s.pl + s.W + max(0, s.pr) + s.S_extent))
        for r in range(s.R):
            for t in range(s.S):
                h0, w0 = r * s.dh, t * s.dw
                dx[:, :, h0:h0 + s.sh * s.P:s.sh, w0:w0 + s.sw * s.Q:s.sw] += cols[..., r, t]
        return dx[:, :, s.pt:s.pt + s.H, s.pl:s.pl + s.W]
    return _by_group(s, dy, 1, w, 0, one, 1)


def wtgrad(x: np.ndarray, dy: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """dw = the weight gradient of fprop for input x and output gradient dy, float64."""
    def one(xg, dyg):
        return np.einsum("ncpqrs,nkpq->kcrs", _windows(xg, spec), np.asarray(dyg, np.float64), optimize=True)
    return _by_group(spec, x, 1, dy, 1, one, 0)


# Below this every partial sum of integer products is exact in FP32, so a kernel must match bit for bit.
EXACT_LIMIT = 2.0**24


def flush_bound(magnitude: np.ndarray, flushes: int) -> np.ndarray:
    """Elementwise bound on |kernel - exact| of an integer kernel, from `magnitude` = the reference of
    |src| and |vec| (the sum of |products|) and the kernel's flushes per output: 0 where the magnitude
    is below EXACT_LIMIT, else (flushes + 1) * 2**-24 * magnitude.

    Each flush rounds one INT32 chunk to FP32 (relative error <= 2**-24) and one FMA adds it to the
    running FP32 sum (another <= 2**-24 of that sum); both are at most the sum of |products|
    (docs/numerics.md derives it)."""
    return np.where(magnitude < EXACT_LIMIT, 0.0, (flushes + 1) * 2.0**-24 * magnitude)


def fp32_bound(magnitude: np.ndarray, length: int) -> np.ndarray:
    """Elementwise bound on |kernel - exact| of an FP32 kernel: a sequential dot product of `length`
    terms, 1.01 * length * 2**-24 * the sum of |products|."""
    return 1.01 * length * 2.0**-24 * magnitude
