"""Exact convolution passes rounded once: the quire of a pass whose result kind is a posit.

A posit quire adds the products of a dot product without rounding and rounds the finished sum once. A
pass here gives exactly that result for operand values exact in float64 (posits up to 16 bits, and the
FP8, MX, bf16/fp16, DFP and FP32 values a mixed pass may pair with them). Each operand is split,
Ozaki-style, into slices: the bits of its values in consecutive bands of `width` bits below a
per-tensor power of two. A product of slices of widths wa and wb is a multiple of the pair's grid (the
product of the bands' lowest bits) below 2**(wa + wb) grid units, so a reduction of L products with
wa + wb + ceil(log2 L) <= 53 has every partial sum a multiple of the grid below 2**53 of it: exact in
float64, in whatever order BLAS adds. The pass's float64 numpy reference (dfpgen.verification.reference)
computes each slice pair; the pairs' results are exact float64 terms whose sum Posit.round_sum rounds once
(dfpgen.core.expansion). Most tensors need one or two slices: the widths follow the values present.
"""

from __future__ import annotations

import math

import numpy as np

from dfpgen.core.spec import ConvSpec
from dfpgen.errors import NumericsError
from dfpgen.passes import Pass

MANTISSA = 53   # float64's significand bits


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
    out, rest, high = [], values, top
    while high > low:
        unit = high - width
        # Scaling by powers of two is exact here (no float64 under- or overflow), and so is trunc.
        part = np.trunc(rest * 2.0**-unit) * 2.0**unit
        if part.any():
            out.append(part)
        rest, high = rest - part, unit
    return out


def exact_terms(conv_pass: Pass, spec: ConvSpec, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """float64 arrays of the pass's result shape whose elementwise sum is exactly the pass on finite a, b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ea, eb = extent(a), extent(b)
    if ea is None or eb is None:
        return [np.zeros(conv_pass.result.shape(spec))]
    wa, wb = widths(ea[0] - ea[1], eb[0] - eb[1], conv_pass.reduction_length(spec))
    return [conv_pass.reference(sa, sb, spec) for sa in slices(a, *ea, wa) for sb in slices(b, *eb, wb)]


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
