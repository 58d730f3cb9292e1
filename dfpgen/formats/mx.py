"""OCP Microscaling (MX v1.0) block formats: 32 elements along one axis share an E8M0 power-of-two scale.

Per block of values V (spec section 6.3): shared_exp = floor(log2(max|V|)) - emax_elem, X = 2**shared_exp,
and each element is V_i / X rounded to the element format (nearest, ties to even) and clamped to its
largest normal value. E8M0 holds exponents -127..127 and NaN (0xFF): a shared_exp below -127 (an
all-zero block, or tiny values) is clamped to -127, and one above 127, or a block holding NaN or Inf,
gives the NaN scale, so every value of that block reads NaN (as Microsoft's microxcaling reference does).
A partial block at the end of the axis (its length not a multiple of 32) is a block of its own, as if
padded with zeros, which change no block maximum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dfpgen.errors import NumericsError, ShapeError
from dfpgen.formats.base import as_float64, check_patterns, pattern_dtype, pow2
from dfpgen.formats.minifloat import FP4_E2M1, FP6_E2M3, FP6_E3M2, FP8_E4M3, FP8_E5M2, MiniFloat

SCALE_EMIN, SCALE_EMAX = -127, 127     # E8M0's exponents; 0xFF is NaN


@dataclass(frozen=True)
class IntElement:
    """MXINT8's element: 8-bit two's complement with an implicit 2**-6, so k/64 for k in -128..127."""

    bits: int = 8
    frac_bits: int = 6
    name: str = "int8"

    @property
    def emax(self) -> int:
        """The exponent of the largest value (1.984375 = 127/64): 0."""
        return self.bits - 2 - self.frac_bits

    @property
    def max_finite(self) -> float:
        """The largest value, 127/64."""
        return float(np.ldexp((1 << (self.bits - 1)) - 1, -self.frac_bits))

    def describe(self) -> str:
        """One line: the element and its rounding."""
        return (f"{self.name}: {self.bits}-bit two's complement x 2^-{self.frac_bits}; nearest even, clamped "
                f"symmetrically to +-{self.max_finite:g} (-2, pattern 0x80, is never produced)")

    def round(self, x, saturate: bool = True) -> np.ndarray:
        """`x` rounded to k/64 (ties to even) and clamped to +-127/64; NaN stays NaN."""
        a = as_float64(x)
        top = (1 << (self.bits - 1)) - 1
        with np.errstate(invalid="ignore"):
            k = np.clip(np.rint(a * 2.0 ** self.frac_bits), -top, top)
        return np.copysign(k * 2.0 ** -self.frac_bits, a)

    def encode(self, x, saturate: bool = True) -> np.ndarray:
        """Two's complement patterns of `x` rounded to this element (always clamped)."""
        a = as_float64(x)
        if np.isnan(a).any():
            raise NumericsError(f"{self.name}: has no NaN to encode NaN values with")
        k = np.ldexp(self.round(a), self.frac_bits).astype(np.int64)
        return (k & ((1 << self.bits) - 1)).astype(pattern_dtype(self.bits))

    def decode(self, bits) -> np.ndarray:
        """The values of two's complement patterns."""
        b = check_patterns(bits, self.bits)
        k = np.where(b >= 1 << (self.bits - 1), b - (1 << self.bits), b)
        return np.ldexp(k.astype(np.float64), -self.frac_bits)

    def values(self) -> np.ndarray:
        """Every value of the encoding, -2 included, ascending."""
        return np.ldexp(np.arange(-(1 << (self.bits - 1)), 1 << (self.bits - 1)).astype(np.float64),
                        -self.frac_bits)


INT8_ELEMENT = IntElement()


def _axes(ndim: int, axis) -> tuple[int, ...]:
    """`axis` (an int or a tuple of ints) as distinct non-negative axes of an ndim array."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else tuple(axis)
    if not axes or any(not isinstance(a, (int, np.integer)) or isinstance(a, bool) for a in axes):
        raise ShapeError(f"axis={axis!r}: must be an axis or a tuple of axes")
    out = tuple(int(a) + ndim if -ndim <= int(a) < 0 else int(a) for a in axes)
    if any(not 0 <= a < ndim for a in out) or len(set(out)) != len(out):
        raise ShapeError(f"axis={axis!r}: must name distinct axes of a {ndim}-d array")
    return out


@dataclass(frozen=True)
class MX:
    """An MX block format: `block` elements of `element` along an axis share one E8M0 scale."""

    element: MiniFloat | IntElement
    name: str
    block: int = 32
    # How a dot product accumulates: products summed in FP32 (the MX spec's dot product, section 6.2).
    accumulation: ClassVar[str] = "fp32"

    @property
    def bits(self) -> int:
        """Bits per element (the 8-bit scale is shared by a block)."""
        return self.element.bits

    def describe(self) -> str:
        """One line: element, block and scale."""
        return (f"{self.name}: OCP MX v1.0, {self.block} x {self.element.name} (emax_elem {self.element.emax}) "
                f"sharing an E8M0 scale 2^-127..2^127; elements nearest even, clamped to +-{self.element.max_finite:g}")

    def _blocks(self, a: np.ndarray, axis) -> tuple[np.ndarray, Callable]:
        """`a` as (..., nblocks, block) with the blocked axes last (zero-padded), and the inverse map."""
        axes = _axes(a.ndim, axis)
        rest = [d for d in range(a.ndim) if d not in axes]
        moved = np.transpose(a, rest + list(axes))
        lead = moved.shape[:len(rest)]
        length = int(np.prod(moved.shape[len(rest):], dtype=np.int64))
        nblocks = -(-length // self.block)
        flat = np.zeros(lead + (nblocks * self.block,))
        flat[..., :length] = moved.reshape(lead + (length,))

        def back(b: np.ndarray) -> np.ndarray:
            out = b.reshape(lead + (nblocks * self.block,))[..., :length].reshape(moved.shape)
            return np.transpose(out, np.argsort(rest + list(axes)))
        return flat.reshape(lead + (nblocks, self.block)), back

    def _shared_exp(self, blocks: np.ndarray) -> np.ndarray:
        """Each block's shared exponent as float64 (NaN for the NaN scale)."""
        with np.errstate(invalid="ignore"):
            amax = np.max(np.abs(blocks), axis=-1)            # NaN propagates
            _, e = np.frexp(amax)
            shared = (e - 1 - self.element.emax).astype(np.float64)
            shared = np.where(amax == 0, SCALE_EMIN, np.maximum(shared, SCALE_EMIN))
            return np.where(~np.isfinite(amax) | (shared > SCALE_EMAX), np.nan, shared)

    def scale_exponents(self, x, axis=-1) -> np.ndarray:
        """The shared exponent of every block (NaN for the NaN scale): the blocked axes replaced by one
        axis of ceil(length / block) blocks, after the other axes."""
        blocks, _ = self._blocks(as_float64(x), axis)
        return self._shared_exp(blocks)

    def quantize(self, x, axis=-1) -> np.ndarray:
        """`x` blocked along `axis` (an axis, or a tuple taken together in that order), each block scaled,
        its elements rounded, and scaled back: float64 of x's shape."""
        a = as_float64(x)
        if a.ndim == 0:
            return self.quantize(a.reshape(1), 0).reshape(())
        blocks, back = self._blocks(a, axis)
        shared = self._shared_exp(blocks)[..., None]
        exp = np.where(np.isnan(shared), 0, shared).astype(np.int64)
        with np.errstate(invalid="ignore"):   # exp in -127..127: multiplying by pow2 is an exact ldexp
            q = self.element.round(blocks * pow2(-exp), saturate=True) * pow2(exp)
        q = np.where(np.isnan(shared), np.nan, q)
        return back(q)

    def encode(self, x) -> np.ndarray:
        """Bit patterns of elements (values already divided by their scale)."""
        return self.element.encode(x, saturate=True)

    def decode(self, bits) -> np.ndarray:
        """Element values of bit patterns (before the scale)."""
        return self.element.decode(bits)

    def values(self) -> np.ndarray:
        """Every finite element value, ascending (before the scale)."""
        return self.element.values()


MXINT8 = MX(INT8_ELEMENT, "mxint8")
MXFP8_E4M3 = MX(FP8_E4M3, "mxfp8_e4m3")
MXFP8_E5M2 = MX(FP8_E5M2, "mxfp8_e5m2")
MXFP6_E2M3 = MX(FP6_E2M3, "mxfp6_e2m3")
MXFP6_E3M2 = MX(FP6_E3M2, "mxfp6_e3m2")
MXFP4 = MX(FP4_E2M1, "mxfp4")
