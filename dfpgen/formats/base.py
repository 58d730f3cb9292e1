"""What the format families share: input checks, bit-pattern checks and the table of finite values."""

from __future__ import annotations

import numpy as np

from dfpgen.errors import DTypeError, NumericsError

MAX_TABLE_BITS = 16   # encode/decode/values() enumerate bit patterns, so formats up to 16 bits have them


def as_float64(x, name: str = "x") -> np.ndarray:
    """`x` as a float64 array (exact for float16/32/64 and integers below 2**53); rejects other dtypes."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise DTypeError(f"{name}: expected a float or integer array, got dtype {a.dtype}")
    return a.astype(np.float64)


def check_patterns(bits, width: int) -> np.ndarray:
    """`bits` as int64 bit patterns of a `width`-bit format; raises for other dtypes or out-of-range patterns."""
    b = np.asarray(bits)
    if b.dtype.kind not in "iu":
        raise DTypeError(f"bit patterns must be an integer array, got dtype {b.dtype}")
    b = b.astype(np.int64)
    if b.size and (int(b.min()) < 0 or int(b.max()) >= 1 << width):
        raise NumericsError(f"bit patterns must lie in 0..{(1 << width) - 1} for a {width}-bit format, "
                            f"got {int(b.min())}..{int(b.max())}")
    return b


def finite_values(table: np.ndarray) -> np.ndarray:
    """The ascending distinct finite values of a decode table; +0 and -0 count once, as +0."""
    v = table[np.isfinite(table)] + 0.0     # -0.0 + 0.0 is +0.0
    return np.unique(v)


def pow2(k) -> np.ndarray:
    """2.0**k for integers k in -1022..1023 (the caller keeps them there), as float64 built from the exponent
    field: multiplying by it is an exact ldexp while the product stays a normal float64, and far faster."""
    return ((np.asarray(k, np.int64) + 1023) << 52).view(np.float64)


def floor_log2(mag: np.ndarray) -> np.ndarray:
    """floor(log2 m) of float64 magnitudes read from the exponent field: exact for normal values; -1023 for
    0 and float64 subnormals, 1024 for Inf and NaN."""
    return ((mag.view(np.int64) >> 52) & 0x7FF) - 1023


def pattern_dtype(width: int):
    """The unsigned integer dtype encode() returns for a `width`-bit format."""
    return np.uint8 if width <= 8 else np.uint16
