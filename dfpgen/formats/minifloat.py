"""Small binary floating-point formats: OCP FP8 (E4M3, E5M2), bfloat16, FP16, and the MX FP6/FP4 elements.

A pattern is sign, exp_bits exponent field (bias 2**(exp_bits-1) - 1) and man_bits mantissa, with
subnormals at field 0. What the all-ones exponent field means is the `specials` rule:
  "ieee"  IEEE 754: infinities and NaNs there (E5M2, bf16, FP16);
  "fn"    OCP FP8 E4M3: finite except S.1111.111, the only NaN; no infinities, so max 448;
  "none"  OCP MX FP6/FP4 elements: every pattern finite, no Inf or NaN.
Rounding is round-to-nearest, ties to the even mantissa (the even pattern). A magnitude that rounds
above the largest finite value overflows: to Inf ("ieee"), to NaN ("fn"), or to the largest finite
value when saturating ("none" formats always saturate, having nothing else to give). Saturating
conversions also take Inf to the largest finite value; NaN stays NaN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dfpgen.errors import NumericsError
from dfpgen.formats.base import as_float64, check_patterns, finite_values, floor_log2, pattern_dtype, pow2

SPECIALS = ("ieee", "fn", "none")
SCALINGS = ("none", "pow2", "amax")


@functools.lru_cache(maxsize=None)
def decode_table(exp_bits: int, man_bits: int, specials: str) -> np.ndarray:
    """The value of every pattern 0..2**bits-1 as float64 (signed zeros, Inf, NaN); read-only."""
    bias = (1 << (exp_bits - 1)) - 1
    p = np.arange(1 << (1 + exp_bits + man_bits), dtype=np.int64)
    field = (p >> man_bits) & ((1 << exp_bits) - 1)
    mant = p & ((1 << man_bits) - 1)
    normal = np.ldexp((mant + (1 << man_bits)).astype(np.float64), field - bias - man_bits)
    mag = np.where(field == 0, np.ldexp(mant.astype(np.float64), 1 - bias - man_bits), normal)
    top = field == (1 << exp_bits) - 1
    if specials == "ieee":
        mag = np.where(top, np.where(mant == 0, np.inf, np.nan), mag)
    elif specials == "fn":
        mag = np.where(top & (mant == (1 << man_bits) - 1), np.nan, mag)
    table = np.where(p >> (exp_bits + man_bits) == 1, -mag, mag)
    table.setflags(write=False)
    return table


@dataclass(frozen=True)
class MiniFloat:
    """A sign/exponent/mantissa format with a specials rule, and its default per-tensor scaling."""

    exp_bits: int
    man_bits: int
    specials: str = "ieee"
    name: str = ""
    scaling: str = "none"      # quantize()'s default: "none", "pow2" or "amax" (a per-tensor scale)
    saturate: bool = False     # quantize()'s default overflow rule
    # How a dot product of these values accumulates: products summed in FP32 (as FP8 hardware does).
    accumulation: ClassVar[str] = "fp32"

    def __post_init__(self) -> None:
        if self.specials not in SPECIALS or self.scaling not in SCALINGS:
            raise NumericsError(f"MiniFloat: specials must be one of {SPECIALS} and scaling one of {SCALINGS}")

    @property
    def bits(self) -> int:
        """Bits per value."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        """The exponent bias, 2**(exp_bits-1) - 1."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self) -> int:
        """The exponent of the smallest normal value."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """The exponent of the largest finite value (the MX spec's emax_elem)."""
        top = (1 << self.exp_bits) - 1
        return (top - 1 if self.specials == "ieee" else top) - self.bias

    @property
    def max_finite(self) -> float:
        """The largest finite value."""
        spare = 2 if self.specials == "fn" else 1      # E4M3's all-ones mantissa at the top field is NaN
        return float(np.ldexp(float((1 << (self.man_bits + 1)) - spare), self.emax - self.man_bits))

    def describe(self) -> str:
        """One line: the format, its range, specials and default scaling."""
        return (f"{self.name or 'minifloat'}: E{self.exp_bits}M{self.man_bits}, bias {self.bias}, max "
                f"{self.max_finite:g}, min subnormal 2^{self.emin - self.man_bits}, specials {self.specials}; "
                f"nearest even, scaling {self.scaling}, {'saturating' if self.saturate else 'non-saturating'}")

    def round(self, x, saturate: bool | None = None) -> np.ndarray:
        """`x` rounded to this format without scaling, as float64 (overflow per `saturate` and the specials)."""
        sat = self.saturate if saturate is None else bool(saturate)
        a = as_float64(x)
        with np.errstate(all="ignore"):
            mag = np.abs(a)
            # The ulp's exponent (subnormals share emin's; zeros and float64 subnormals read below emin; Inf
            # and NaN, read as 1024, are held at 1023 so that both powers of two below stay in range).
            step = np.maximum(np.minimum(floor_log2(mag), 1023), self.emin) - self.man_bits
            q = np.rint(mag * pow2(-step)) * pow2(step)              # np.rint: ties to even
            over = q > self.max_finite
            if sat or self.specials == "none":
                q[over] = self.max_finite
            else:
                q[over] = np.inf if self.specials == "ieee" else np.nan
            return np.copysign(q, a)

    def scale_of(self, x, scale: str | None = None) -> float:
        """The per-tensor scale quantize() divides `x` by: 1, a power of two, or amax / max_finite."""
        scale = self.scaling if scale is None else scale
        if scale not in SCALINGS:
            raise NumericsError(f"scale={scale!r}: must be one of {', '.join(SCALINGS)}")
        a = as_float64(x)
        finite = np.abs(a[np.isfinite(a)])
        amax = float(finite.max()) if finite.size else 0.0
        if scale == "none" or amax == 0:
            return 1.0
        if scale == "amax":
            return amax / self.max_finite
        # The smallest power of two s with amax / s <= max_finite: nothing overflows, and it is exact.
        m, e = np.frexp(amax / self.max_finite)
        return float(np.ldexp(1.0, int(e) - (m == 0.5)))

    def quantize(self, x, scale: str | None = None, saturate: bool | None = None) -> np.ndarray:
        """`x` divided by its per-tensor scale, rounded, and multiplied back, as float64 of the same shape."""
        s = self.scale_of(x, scale)
        a = as_float64(x)
        if s == 1.0:
            return self.round(a, saturate)
        return self.round(a / s, saturate) * s

    def encode(self, x, saturate: bool | None = None) -> np.ndarray:
        """The bit patterns of `x` rounded without scaling (NaN as the canonical quiet NaN)."""
        a = as_float64(x)
        q = self.round(a, saturate)
        table = decode_table(self.exp_bits, self.man_bits, self.specials)
        half = 1 << (self.bits - 1)
        n_finite = int(np.isfinite(table[:half]).sum())    # the positive finite values lead, in pattern order
        nan = np.isnan(q)
        if nan.any() and self.specials == "none":
            raise NumericsError(f"{self.name}: has no NaN to encode {int(nan.sum())} NaN value(s) with")
        with np.errstate(invalid="ignore"):
            p = np.searchsorted(table[:n_finite], np.abs(q))   # +Inf lands on n_finite, its pattern
        p[nan] = n_finite + ((1 << (self.man_bits - 1)) if self.specials == "ieee" else 0)
        p = p | (np.signbit(np.where(nan, a, q)).astype(np.int64) << (self.bits - 1))
        return p.astype(pattern_dtype(self.bits))

    def decode(self, bits) -> np.ndarray:
        """The float64 values of bit patterns."""
        return decode_table(self.exp_bits, self.man_bits, self.specials)[check_patterns(bits, self.bits)]

    def values(self) -> np.ndarray:
        """Every finite value, ascending (one zero)."""
        return finite_values(decode_table(self.exp_bits, self.man_bits, self.specials))


FP8_E4M3 = MiniFloat(4, 3, "fn", "fp8_e4m3", scaling="pow2")
FP8_E5M2 = MiniFloat(5, 2, "ieee", "fp8_e5m2", scaling="pow2")
BF16 = MiniFloat(8, 7, "ieee", "bf16")
FP16 = MiniFloat(5, 10, "ieee", "fp16")
FP6_E2M3 = MiniFloat(2, 3, "none", "fp6_e2m3")
FP6_E3M2 = MiniFloat(3, 2, "none", "fp6_e3m2")
FP4_E2M1 = MiniFloat(2, 1, "none", "fp4_e2m1")
