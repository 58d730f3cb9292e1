"""Exact convolution passes rounded once: the quire of a pass whose result kind is a posit.

A posit quire adds the products of a dot product without rounding and rounds the finished sum once. A
pass here gives exactly that result for operand values exact in float64 (posits up to 16 bits, and the
FP8, MX, bf16/fp16, DFP and FP32 values a mixed pass may pair with them). Each operand is split,
Ozaki-style, into slices: the bits of its values in consecutive bands of `width` bits below a per-tensor
power of two. A product of slices of widths wa and wb is a multiple of the pair's grid (the product of
the bands' lowest bits) below 2**(wa + wb) grid units, so a reduction of L products with
wa + wb + ceil(log2 L) <= 53 has every partial sum a multiple of the grid below 2**53 of it: exact in
float64, in whatever order and with whatever FMAs BLAS adds. Each slice pair is one im2col float64 GEMM
(numpy's BLAS, on one thread: dfpgen.runtime.blas); the pairs' results are exact float64 terms whose sum
Posit.round_sum rounds once (dfpgen.core.expansion).
The widths follow the values present, so most tensors need one slice (in our LeNet runs every posit(8, 1)
and posit(16, 1) pass was one GEMM). docs/formats.md, The quire, has the whole argument.
"""

from __future__ import annotations

import math

import numpy as np

from dfpgen import passes
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import NumericsError
from dfpgen.passes import Pass
from dfpgen.runtime import blas

MANTISSA = 53   # float64's significand bits
RANGE = 400     # operand magnitudes within 2**+-RANGE: slices, their products and sums stay normal float64


def extent(values: np.ndarray) -> tuple[int, int] | None:
    """(top, low): every nonzero |value| is below 2**top and a multiple of 2**low; None when all are zero."""
    nonzero = values[values != 0]
    if not nonzero.size:
        return None
    mant, exp = np.frexp(nonzero)                                  # |mant| in [0.5, 1): |v| < 2**exp
    digits = np.ldexp(np.abs(mant), MANTISSA).astype(np.int64)     # the significand as an exact integer
    lowest = np.frexp((digits & -digits).astype(np.float64))[1] - 1   # log2 of its lowest set bit
    return int(exp.max()), int((exp - MANTISSA + lowest).min())


def widths(a_bits: int, b_bits: int, length: int) -> tuple[int, int]:
    """Slice widths (wa, wb) for operands spanning a_bits and b_bits bits, reduced over `length` products: the
    fewest slice pairs with wa + wb + ceil(log2 length) <= 53, every product sum then exact in float64."""
    budget = MANTISSA - (max(length, 1) - 1).bit_length()
    if budget < 2:
        raise NumericsError(f"a reduction of {length} products leaves no float64 bits for an exact sum")
    if a_bits + b_bits <= budget:
        return a_bits, b_bits
    cost = {wa: (math.ceil(a_bits / wa) * math.ceil(b_bits / (budget - wa)),
                 math.ceil(a_bits / wa) + math.ceil(b_bits / (budget - wa))) for wa in range(1, budget)}
    wa = min(cost, key=cost.get)
    return wa, budget - wa


def slices(values: np.ndarray, top: int, low: int, width: int) -> list[np.ndarray]:
    """`values` (float64, |v| < 2**top, multiples of 2**low) as exact slices of `width` bits that sum to them:
    slice i holds the bits in [2**(top - (i+1) width), 2**(top - i width)), with the values' signs."""
    if top - width <= low:   # one slice holds every bit
        return [values]
    out, rest, high = [], values, top
    while high > low:
        unit = high - width
        # Scaling by powers of two is exact here (no float64 under- or overflow), and so is trunc.
        part = np.trunc(rest * 2.0**-unit) * 2.0**unit
        if part.any():
            out.append(part)
        rest, high = rest - part, unit
    return out


def _padded(x: np.ndarray, s: ConvSpec) -> np.ndarray:
    """x with the spec's zero padding (a negative bottom or right pad crops)."""
    xp = np.pad(x, ((0, 0), (0, 0), (s.pt, max(0, s.pb)), (s.pl, max(0, s.pr))))
    return xp[:, :, :s.pt + s.H + s.pb, :s.pl + s.W + s.pr]


def _columns(x: np.ndarray, s: ConvSpec) -> np.ndarray:
    """im2col of one group's x: row (n, p, q) holds the input window [c][r][s] output (p, q) reads."""
    win = np.lib.stride_tricks.sliding_window_view(_padded(x, s), (s.R_extent, s.S_extent), axis=(2, 3))
    win = win[:, :, ::s.sh, ::s.sw, ::s.dh, ::s.dw][:, :, :s.P, :s.Q]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(s.N * s.P * s.Q, -1)


def _fprop(x: np.ndarray, w: np.ndarray, s: ConvSpec) -> np.ndarray:
    """y = im2col(x) w^T, as NCHW."""
    y = _columns(x, s) @ w.reshape(s.K, -1).T
    return y.reshape(s.N, s.P, s.Q, s.K).transpose(0, 3, 1, 2)


def _wtgrad(x: np.ndarray, dy: np.ndarray, s: ConvSpec) -> np.ndarray:
    """dw = dy^T im2col(x), as KCRS."""
    return (dy.transpose(1, 0, 2, 3).reshape(s.K, -1) @ _columns(x, s)).reshape(s.K, s.C, s.R, s.S)


def _bprop(dy: np.ndarray, w: np.ndarray, s: ConvSpec) -> np.ndarray:
    """dx = col2im(dy w), as NCHW: each dx element sums at most the reduction's products, so it stays exact."""
    cols = (dy.transpose(0, 2, 3, 1).reshape(-1, s.K) @ w.reshape(s.K, -1)).reshape(s.N, s.P, s.Q, s.C, s.R, s.S)
    dx = np.zeros((s.N, s.C, s.pt + s.H + max(0, s.pb) + s.R_extent, s.pl + s.W + max(0, s.pr) + s.S_extent))
    for r in range(s.R):          # col2im: each tap's products land on its strided input positions
        for t in range(s.S):
            h0, w0 = r * s.dh, t * s.dw
            dx[:, :, h0:h0 + s.sh * s.P:s.sh, w0:w0 + s.sw * s.Q:s.sw] += cols[..., r, t].transpose(0, 3, 1, 2)
    return dx[:, :, s.pt:s.pt + s.H, s.pl:s.pl + s.W]


# Each pass as one float64 GEMM (im2col, BLAS): exact on slices whatever order BLAS adds in, as said above.
_GEMMS = {passes.FPROP: _fprop, passes.BPROP: _bprop, passes.WTGRAD: _wtgrad}


def convolve(conv_pass: Pass, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pass on float64 a, b, summed in float64 by BLAS, group by group; a pass not built in here runs its
    numpy reference."""
    if conv_pass not in _GEMMS:
        return conv_pass.reference(a, b, spec)
    gemm, g = _GEMMS[conv_pass], spec.groups
    if g == 1:
        return gemm(a, b, spec)
    one = spec.per_group()
    parts = zip(np.split(a, g, axis=conv_pass.src.group_axis), np.split(b, g, axis=conv_pass.vec.group_axis))
    return np.concatenate([gemm(ai, bi, one) for ai, bi in parts], axis=conv_pass.result.group_axis)


def exact_terms(conv_pass: Pass, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """float64 arrays of the pass's result shape whose elementwise sum is exactly the pass on finite a, b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ea, eb = extent(a), extent(b)
    if ea is None or eb is None:
        return [np.zeros(conv_pass.result.shape(spec))]
    for name, (top, low) in (("a", ea), ("b", eb)):
        if not -RANGE <= low < top <= RANGE:   # keeps every slice, product and sum a normal float64
            raise NumericsError(f"{conv_pass.name}: operand {name} has values beyond 2**+-{RANGE} (2**{low} to "
                                f"2**{top}); the exact passes take float32 values")
    wa, wb = widths(ea[0] - ea[1], eb[0] - eb[1], conv_pass.reduction_length(spec))
    with blas.one_thread():   # BLAS's own threads would fight the runtime's for the cores
        return [convolve(conv_pass, spec, sa, sb) for sa in slices(a, *ea, wa) for sb in slices(b, *eb, wb)]


def run(conv_pass: Pass, spec: ConvSpec, a: np.ndarray, b: np.ndarray, fmt) -> np.ndarray:
    """The pass on operand values a, b (NCHW or KCRS), its exact result rounded once to the posit `fmt`, as
    float32 (posits to 16 bits are exact in it). NaN or Inf operands give NaR (NaN) where IEEE products would
    give NaN or Inf."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    if finite_a.all() and finite_b.all():
        return fmt.round_sum(exact_terms(conv_pass, spec, a, b)).astype(np.float32)
    plain = conv_pass.reference(a, b, spec)   # where the IEEE result is not finite, the posit result is NaR
    terms = exact_terms(conv_pass, spec, np.where(finite_a, a, 0.0), np.where(finite_b, b, 0.0))
    return fmt.round_sum(terms + [np.where(np.isfinite(plain), 0.0, np.nan)]).astype(np.float32)
