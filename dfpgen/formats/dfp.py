"""DFP as a format object: the per-tensor quantizer of dfpgen.core.dfp, seen through the formats interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dfpgen.core import dfp
from dfpgen.errors import DTypeError
from dfpgen.formats.base import as_float64


@dataclass(frozen=True)
class Dfp:
    """DFP with `bits`-bit mantissas (sign included) and one shared exponent per tensor."""

    bits: int = dfp.DEFAULT_BITS
    rounding: str = "nearest"
    # How a dot product accumulates: INT32 chains of mantissa products, flushed to FP32 (numerics.md).
    accumulation: ClassVar[str] = "int32"

    def __post_init__(self) -> None:
        dfp.check_bits(self.bits)
        dfp.check_rounding(self.rounding)

    @property
    def name(self) -> str:
        """The registry name, dfp<bits>."""
        return f"dfp{self.bits}"

    def describe(self) -> str:
        """One line: mantissa width, exponent rule and rounding."""
        return (f"{self.name}: DFP, mantissas |m| <= {dfp.max_mantissa(self.bits)} with one exponent per tensor "
                f"(floor(log2 max|x|) - {self.bits - 2}); rounding {self.rounding}, saturating")

    def to_dfp(self, x, seed=None) -> dfp.DFPTensor:
        """`x` quantized to a DFPTensor (dfpgen.core.dfp.quantize)."""
        return dfp.quantize(x, self.bits, self.rounding, seed)

    def quantize(self, x, seed=None) -> np.ndarray:
        """`x` quantized to DFP and read back, as float64 of the same shape (NaN/Inf raise NonFiniteError)."""
        return self.to_dfp(x, seed).to_float(np.float64)

    def encode(self, x) -> np.ndarray:
        """Mantissas of `x` at exponent 0 (nearest, saturating) as int16: the element grid, before scaling."""
        return dfp.quantize_with_exp(as_float64(x), 0, self.bits, self.rounding).mant.copy()

    def decode(self, bits) -> np.ndarray:
        """Integer mantissas as float64 values at exponent 0."""
        b = np.asarray(bits)
        if b.dtype.kind not in "iu":
            raise DTypeError(f"{self.name}: mantissas must be an integer array, got dtype {b.dtype}")
        return b.astype(np.float64)

    def values(self) -> np.ndarray:
        """Every mantissa value at exponent 0, ascending."""
        top = dfp.max_mantissa(self.bits)
        return np.arange(-top, top + 1, dtype=np.float64)
