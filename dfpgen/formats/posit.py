"""Posits per the 2022 posit standard, generalised to any es: decoding, and rounding on the bit pattern.

A posit(n, es) pattern is sign, regime (a run of equal bits and its terminator), up to es exponent bits
(missing ones read as 0) and the fraction; negative posits are two's complements of positive ones, the
pattern 1 0...0 is NaR. Rounding is round-to-nearest-even on the pattern: a value rounds up exactly when
it lies above the (n+1)-bit posit between two n-bit neighbours p and p+1 (pattern 2p+1), and at that value
to the neighbour whose pattern is even. Near the ends of the range, where exponent bits are cut off, that
boundary is not the arithmetic midpoint. Nonzero values never round to 0 and magnitudes beyond maxpos
round to maxpos; NaN and Inf give NaR, which quantize() returns as NaN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dfpgen.core import expansion
from dfpgen.core.dfp import MAX_BITS, DFPTensor, max_mantissa
from dfpgen.errors import NonFiniteError, NumericsError
from dfpgen.formats.base import as_float64, check_patterns, finite_values, pattern_dtype

MIN_N, MAX_N = 2, 16
MAX_ES = 3


@functools.lru_cache(maxsize=None)
def decode_table(n: int, es: int) -> np.ndarray:
    """The value of every n-bit pattern 0..2**n-1 as float64 (NaR as NaN); read-only."""
    width = n - 1                                           # the bits after the sign
    p = np.arange(1, 1 << width, dtype=np.int64)            # the positive patterns
    lead = (p >> (width - 1)) & 1
    run = np.zeros_like(p)
    alive = np.ones(p.shape, dtype=bool)
    for i in range(width - 1, -1, -1):                      # the regime run, from the top bit down
        alive &= ((p >> i) & 1) == lead
        run += alive
    k = np.where(lead == 1, run - 1, -run)
    rest = np.maximum(width - run - 1, 0)                   # bits after the regime's terminator
    exp_kept = np.minimum(rest, es)
    frac_bits = rest - exp_kept
    exp = ((p >> frac_bits) & ((1 << exp_kept) - 1)) << (es - exp_kept)
    frac = p & ((1 << frac_bits) - 1)
    mag = np.ldexp(1.0 + np.ldexp(frac.astype(np.float64), -frac_bits), k * (1 << es) + exp)
    table = np.empty(1 << n, dtype=np.float64)
    table[0] = 0.0
    table[1:1 << width] = mag
    table[1 << width] = np.nan
    table[(1 << width) + 1:] = -mag[::-1]                   # pattern 2**n - p is -value(p)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def _rounding_tables(n: int, es: int) -> tuple[np.ndarray, np.ndarray]:
    """The positive values (pattern i+1 at index i) and the rounding boundaries between neighbours."""
    top = 1 << (n - 1)
    positives = decode_table(n, es)[1:top]
    bounds = decode_table(n + 1, es)[3:2 * top - 2:2]       # the (n+1)-bit patterns 2p+1, p = 1..top-2
    return positives, bounds


@functools.lru_cache(maxsize=None)
def _float32_tables(n: int, es: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The rounding of float32 magnitudes by their bit pattern's top bits: every rounding boundary is an
    (n+1)-bit posit, a normal float32 (|exponent| <= 120) with at most n-2-es fraction bits, so its pattern
    ends in `shift` = 23 - max(n-2-es, 0) zero bits. A magnitude whose pattern is k << shift rounds as `exact[k]`
    says; one strictly between k << shift and (k+1) << shift crosses no boundary and rounds as `inside[k]`.
    Both tables come from the float64 quantizer (float32, read-only; NaN/Inf patterns give NaN)."""
    shift = 23 - max(n - 2 - es, 0)
    keys = np.arange(1 << (31 - shift), dtype=np.uint32) << np.uint32(shift)
    posit = Posit(n, es)
    tables = []
    for offset in (0, 1):
        with np.errstate(invalid="ignore"):   # the NaN patterns
            mag = (keys + np.uint32(offset)).view(np.float32).astype(np.float64)
        table = posit.quantize(mag).astype(np.float32)
        table.setflags(write=False)
        tables.append(table)
    return tables[0], tables[1], shift


@functools.lru_cache(maxsize=None)
def _float32_rounding(n: int, es: int) -> tuple[np.ndarray, int]:
    """`_float32_tables`' inside and exact tables end to end (one gather: exact[k] is entry k + len/2), and shift."""
    exact, inside, shift = _float32_tables(n, es)
    table = np.concatenate([inside, exact])
    table.setflags(write=False)
    return table, shift


@dataclass(frozen=True)
class Posit:
    """posit(n, es): n-bit posit with es exponent bits, 2 <= n <= 16, 0 <= es <= 3."""

    n: int
    es: int
    # How a dot product of these values accumulates: exactly, in a quire, rounded once at the end.
    accumulation: ClassVar[str] = "quire"

    def __post_init__(self) -> None:
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.n, self.es))
        if not (ok and MIN_N <= self.n <= MAX_N and 0 <= self.es <= MAX_ES):
            raise NumericsError(f"posit({self.n!r}, {self.es!r}): n must be an integer in {MIN_N}..{MAX_N} "
                                f"and es in 0..{MAX_ES}")

    @property
    def name(self) -> str:
        """The registry name, posit<n>_<es>."""
        return f"posit{self.n}_{self.es}"

    @property
    def bits(self) -> int:
        """Bits per value."""
        return self.n

    @property
    def maxpos(self) -> float:
        """The largest posit, 2**((n-2) * 2**es)."""
        return float(np.ldexp(1.0, (self.n - 2) << self.es))

    @property
    def minpos(self) -> float:
        """The smallest positive posit, 1/maxpos."""
        return float(np.ldexp(1.0, -((self.n - 2) << self.es)))

    def describe(self) -> str:
        """One line: the format, its range and its rounding."""
        return (f"{self.name}: {self.n}-bit posit, es={self.es}, minpos 2^{-((self.n - 2) << self.es)}, "
                f"maxpos 2^{(self.n - 2) << self.es}; nearest, ties to even pattern, saturating, NaN/Inf -> NaR")

    def _index(self, mag: np.ndarray) -> np.ndarray:
        """Index into the positive values of each (finite, nonzero) magnitude's rounding."""
        _, bounds = _rounding_tables(self.n, self.es)
        idx = np.searchsorted(bounds, mag, side="left")
        if not len(bounds):                                 # posit(2, es): the one positive value, 1
            return idx
        on_bound = bounds[np.minimum(idx, len(bounds) - 1)] == mag
        # At a boundary between value idx (pattern idx+1) and value idx+1, the even pattern wins.
        return idx + (on_bound & (idx % 2 == 0))

    def quantize(self, x) -> np.ndarray:
        """`x` rounded to this posit, as float64 of the same shape (NaR as NaN; posits are unscaled)."""
        if isinstance(x, np.ndarray) and x.dtype == np.float32:
            return self._quantize_float32(x)
        a = as_float64(x)
        positives, _ = _rounding_tables(self.n, self.es)
        with np.errstate(invalid="ignore"):
            out = np.copysign(positives[self._index(np.abs(a))], a)
        # np.where, not item assignment: a 0-d input makes `out` a numpy scalar.
        return np.where(a == 0, 0.0, np.where(np.isfinite(a), out, np.nan))

    def _quantize_float32(self, x: np.ndarray) -> np.ndarray:
        """quantize() of a float32 array by table lookup on its bit pattern (training's hot path): exact, as
        `_float32_tables` says why."""
        exact, inside, shift = _float32_tables(self.n, self.es)
        bits = np.ascontiguousarray(x).view(np.uint32) & np.uint32(0x7FFFFFFF)
        key = bits >> np.uint32(shift)
        on_grid = (bits & np.uint32((1 << shift) - 1)) == 0
        mag = np.where(on_grid, exact[key], inside[key])
        return np.copysign(mag, x).astype(np.float64)

    def round_sum(self, terms) -> np.ndarray:
        """The exact elementwise sum of float64-exact arrays `terms` rounded once to this posit, as float64: a
        quire's rounding (NaR, as NaN, wherever a term is NaN or infinite)."""
        arrays = [t if isinstance(t, np.ndarray) and t.dtype == np.float64 else as_float64(t, "terms") for t in terms]
        bad = None
        if not all(np.isfinite(t).all() for t in arrays):
            bad = ~np.logical_and.reduce([np.isfinite(t) for t in arrays])
            arrays = [np.where(bad, 0.0, t) for t in arrays]
        if len(arrays) == 1:   # one float64 term is the exact sum (and has its sign)
            sign, magnitude = arrays[0], np.abs(arrays[0])
            near = self._near(magnitude)
            side = magnitude - near   # a rounded difference has the exact difference's sign
        else:
            exact = expansion.of_terms(arrays)
            sign = expansion.sign(exact)
            near = self._near(np.abs(expansion.approximate(exact)))
            # |sum| as an expansion (negation is exact), compared exactly with near
            side = expansion.sign(expansion.grow([c * sign for c in exact], -near.astype(np.float64)))
        out = np.where(sign == 0, 0.0, np.copysign(self._round_near(near, side), sign))
        return out if bad is None else np.where(bad, np.nan, out)

    def _near(self, approx: np.ndarray) -> np.ndarray:
        """A float32 within one float32 step of each |sum|, from a float64 `approx` within a few float64 ulps
        of it. Magnitudes beyond [minpos, maxpos] round to the end they pass, so clipping keeps their rounding
        and keeps the float32 normal."""
        return np.clip(approx, self.minpos, self.maxpos).astype(np.float32)

    def _round_near(self, near: np.ndarray, side: np.ndarray) -> np.ndarray:
        """The rounding (float32) of magnitudes m given as a positive normal float32 `near` within one float32
        step of m and the sign of m - near (`side`). Every rounding boundary is a float32 (`_float32_tables`), so
        an m beside `near` lies strictly between two neighbouring float32s with no boundary between them: it
        rounds as the `inside` entry of the lower one (`near`, or the float32 below it); m == near rounds as
        near itself does."""
        table, shift = _float32_rounding(self.n, self.es)
        bits = near.view(np.uint32)
        key = (bits - (side < 0).astype(np.uint32)) >> np.uint32(shift)
        on_grid = (side == 0) & ((bits & np.uint32((1 << shift) - 1)) == 0)
        return table[key + on_grid * np.uint32(len(table) // 2)]

    def encode(self, x) -> np.ndarray:
        """The bit patterns of `x` rounded to this posit (NaR for NaN/Inf)."""
        a = as_float64(x)
        p = self._index(np.abs(a)).astype(np.int64) + 1
        p = np.where(a < 0, (1 << self.n) - p, p)
        p[a == 0] = 0
        p[~np.isfinite(a)] = 1 << (self.n - 1)
        return p.astype(pattern_dtype(self.n))

    def decode(self, bits) -> np.ndarray:
        """The float64 values of posit bit patterns (NaR as NaN)."""
        return decode_table(self.n, self.es)[check_patterns(bits, self.n)]

    def values(self) -> np.ndarray:
        """Every finite value of this posit, ascending."""
        return finite_values(decode_table(self.n, self.es))

    def dfp_bits(self) -> int | None:
        """The DFP mantissa width holding every value exactly at exponent log2(minpos), or None if none does
        (true for es = 0 and n <= 9: posit(8, 0) needs 14 bits, its values being k * 2**-6 with |k| <= 4096)."""
        mant = self.values() / self.minpos
        top = int(mant[-1])
        if not np.array_equal(mant, np.rint(mant)) or top > max_mantissa(MAX_BITS):
            return None
        return top.bit_length() + 1

    def to_dfp(self, x) -> DFPTensor:
        """`x` rounded to this posit, as the DFPTensor holding exactly those values (exponent log2(minpos))."""
        bits = self.dfp_bits()
        if bits is None:
            raise NumericsError(f"{self.name}: its values are not all on one DFP grid of at most {MAX_BITS} bits "
                                f"(only es = 0 posits of n <= 9 bits are)")
        q = self.quantize(x)
        if np.isnan(q).any():
            raise NonFiniteError(f"{self.name}: {int(np.isnan(q).sum())} NaR value(s) (from NaN/Inf), which DFP "
                                 f"cannot hold")
        exp = -((self.n - 2) << self.es)
        return DFPTensor._adopt(np.ldexp(q, -exp).astype(np.int16), exp, bits)
