"""Dynamic Fixed Point numerics: INT16 mantissas with one shared exponent per tensor.

A DFP tensor's value is `mant * 2**exp` with `|mant| <= 2**(bits-1) - 1`. Everything here is
exact integer or exact float64 arithmetic (scaling by powers of two is exact), so the kernels can
be checked against it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfpgen.core.stochastic import StreamKey, uniforms
from dfpgen.errors import DTypeError, NonFiniteError, NumericsError, ShapeError

ROUNDING_MODES = ("nearest", "nearest_even", "stochastic", "biased", "chop")
MIN_BITS, MAX_BITS = 2, 16
# The default mantissa width, the paper's (Das et al.; LIBXSMM's INT16 quantizer, add_shift=2): 14 bits in the
# 16-bit word leave two bits of headroom, so safe_chain(14, 14) = 16 pair-instructions accumulate exactly in INT32
# between FP32 flushes. At MAX_BITS the safe chain is one instruction: every product is flushed to FP32 and DFP16
# gains nothing over FP32.
# Every front end (LayerNumerics, Numerics, quantize, the CLI, dfpgen.torch) reads it from here.
DEFAULT_BITS = 14
INT32_MAX = 2**31 - 1


def check_bits(bits, field: str = "bits") -> int:
    """Return `bits` if it is an integer in 2..16, else raise NumericsError naming `field`."""
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise NumericsError(f"{field}={bits!r}: must be an integer in {MIN_BITS}..{MAX_BITS}")
    return int(bits)


def check_rounding(rounding, field: str = "rounding") -> str:
    """Return `rounding` if it names a rounding mode, else raise NumericsError naming `field` and the modes."""
    if not isinstance(rounding, str) or rounding not in ROUNDING_MODES:
        raise NumericsError(f"{field}={rounding!r}: must be one of {', '.join(ROUNDING_MODES)}")
    return rounding


def max_mantissa(bits: int) -> int:
    """The largest mantissa magnitude a `bits`-bit DFP tensor may hold."""
    return 2 ** (check_bits(bits) - 1) - 1


def safe_chain(bits_a: int, bits_b: int, group: int = 2, offset: int = 0) -> int:
    """Longest chain of instructions (`group` products per INT32 lane each; pair-instructions by default)
    that cannot overflow INT32, the `a` operand stored as mantissa + `offset` (vpdpbusd's unsigned bytes)."""
    worst = group * (max_mantissa(bits_a) + offset) * max_mantissa(bits_b)
    return INT32_MAX // worst


def offset_reduction_limit(bits_b: int, offset: int) -> int:
    """The most products one output may reduce when its `a` operand is stored offset by `offset` and the
    correction -offset x sum(b) of the whole reduction starts its first chain: every partial sum is then
    sum_done(a*b) - offset * sum_rest(b), at most offset * max|b| per product (offset > max|a|)."""
    return INT32_MAX // (offset * max_mantissa(bits_b))


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


@dataclass(frozen=True, eq=False)
class DFPTensor:
    """An INT16 mantissa array with one shared power-of-two exponent: value = mant * 2**exp.

    The tensor owns its mantissas: it copies the given array, and `mant` is read-only, so the values a
    kernel cached a layout of (Conv2d keeps one per DFPTensor) can never change under it.
    """

    mant: np.ndarray
    exp: int
    bits: int = MAX_BITS   # given mantissas are valid up to the full word; quantize() defaults to DEFAULT_BITS

    def __post_init__(self) -> None:
        self._check(own=False)

    @classmethod
    def _adopt(cls, mant: np.ndarray, exp: int, bits: int = MAX_BITS) -> DFPTensor:
        """A DFPTensor on a fresh int16 array nothing else references (quantize's own result): no copy."""
        tensor = object.__new__(cls)
        for name, value in (("mant", mant), ("exp", exp), ("bits", bits)):
            object.__setattr__(tensor, name, value)
        tensor._check(own=True)
        return tensor

    def _check(self, own: bool) -> None:
        """Validate the fields and take the mantissas read-only; `own`: the array is already ours alone."""
        check_bits(self.bits)
        if not isinstance(self.mant, np.ndarray) or self.mant.dtype != np.int16:
            raise DTypeError(f"DFPTensor.mant must be a numpy int16 array, got {type(self.mant).__name__}"
                             f"{'' if not isinstance(self.mant, np.ndarray) else ' of ' + str(self.mant.dtype)}")
        if not isinstance(self.exp, (int, np.integer)) or isinstance(self.exp, bool):
            raise DTypeError(f"DFPTensor.exp must be an integer, got {self.exp!r}")
        object.__setattr__(self, "exp", int(self.exp))
        # Kernels cache blocked layouts per DFPTensor, so its values must never change: a private copy (the
        # caller's array stays theirs to change), read-only, seen through a view, whose WRITEABLE flag numpy
        # refuses to set back while the array under it is read-only.
        owned = self.mant if own else self.mant.copy(order="K")
        owned.setflags(write=False)
        object.__setattr__(self, "mant", owned.view())
        peak = int(np.max(np.abs(self.mant.astype(np.int32)))) if self.mant.size else 0
        if peak > max_mantissa(self.bits):
            raise NumericsError(f"DFPTensor.mant holds |{peak}| > {max_mantissa(self.bits)}, "
                                f"the largest {self.bits}-bit mantissa")

    def __reduce__(self):
        # Copies and pickles are built through __init__, so they own read-only mantissas too.
        return (DFPTensor, (self.mant, self.exp, self.bits))

    @property
    def shape(self) -> tuple:
        """The mantissa array's shape."""
        return self.mant.shape

    @property
    def scale(self) -> float:
        """2**exp as a float."""
        return float(np.ldexp(1.0, self.exp))

    def to_float(self, dtype=np.float32) -> np.ndarray:
        """The represented values, mant * 2**exp, as a float array."""
        return np.ldexp(self.mant.astype(np.float64), self.exp).astype(dtype)

    def __repr__(self) -> str:
        return f"DFPTensor(shape={self.shape}, exp={self.exp}, bits={self.bits})"


def exponent_for_max(maxabs: float, bits: int) -> int:
    """The DFP exponent for a tensor whose largest magnitude is `maxabs`: floor(log2(maxabs)) - (bits-2)."""
    if maxabs == 0:
        return 0
    _, e = np.frexp(float(maxabs))  # maxabs = m * 2**e with m in [0.5, 1): floor(log2) = e - 1, exactly
    return int(e) - 1 - (bits - 2)


def _uniforms(seed, shape: tuple) -> np.ndarray:
    """Uniform [0, 1) draws for stochastic rounding: from the counter-based stream of a StreamKey (by
    C-order element index), else from a numpy Generator (or an int or None seeding one)."""
    if isinstance(seed, StreamKey):
        return uniforms(seed, shape)
    return _rng(seed).random(shape)


def _round_float(v: np.ndarray, rounding: str, rng) -> np.ndarray:
    """Round float64 values to integers (as float64) with a DFP rounding mode."""
    if rounding == "stochastic":
        low = np.floor(v)
        return low + (_uniforms(rng, v.shape) < (v - low))
    mag = np.abs(v)
    low = np.floor(mag)
    frac = mag - low
    if rounding == "nearest":  # ties away from zero: symmetric, so no drift for sign-symmetric data
        up = frac >= 0.5
    elif rounding == "nearest_even":
        up = (frac > 0.5) | ((frac == 0.5) & (np.fmod(low, 2) == 1))
    elif rounding == "biased":  # either of the top two dropped bits set: fraction >= 1/4
        up = frac >= 0.25
    else:  # chop
        up = np.zeros(v.shape, dtype=bool)
    return np.copysign(low + up, v)


def round_shift(acc: np.ndarray, shift: int, rounding: str = "nearest", seed=None) -> np.ndarray:
    """Integer `acc / 2**shift` rounded with a DFP mode, as int64 (no saturation)."""
    check_rounding(rounding)
    a = np.asarray(acc).astype(np.int64)
    if shift <= 0:
        return a
    if shift > 63:  # int64 masks/draws end at 2**63: pre-shift to 63, keeping a sticky bit (exact
        # for the deterministic modes; stochastic stays unbiased to within 2**-63)
        k = shift - 63
        if rounding == "stochastic":
            a = a >> k
        else:
            mag = np.abs(a)
            a = np.sign(a) * ((mag >> k) | ((mag >> k) << k != mag))
        shift = 63
    if rounding == "stochastic":
        low = a >> shift
        dropped = a - (low << shift)
        return low + (_rng(seed).integers(0, 1 << shift, size=a.shape, dtype=np.int64) < dropped)
    mag = np.abs(a)
    low = mag >> shift
    dropped = mag & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rounding == "nearest":
        up = dropped >= half
    elif rounding == "nearest_even":
        up = (dropped > half) | ((dropped == half) & ((low & 1) == 1))
    elif rounding == "biased":
        up = dropped >= ((1 << shift) + 3) // 4  # 4*dropped >= 2**shift without int64 overflow
    else:
        up = np.zeros(a.shape, dtype=bool)
    return np.sign(a) * (low + up)


def _saturate(mant: np.ndarray, bits: int) -> np.ndarray:
    top = max_mantissa(bits)
    return np.clip(mant, -top, top).astype(np.int16)


def _check_float_array(x, name: str) -> tuple[np.ndarray, float]:
    """The array and its max |x|; raises for non-float dtypes and for NaN/Inf (naming the first)."""
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as exc:   # ragged nested lists: numpy's message, on one line
        raise ShapeError(f"{name}: expected a float array, got a {type(x).__name__} numpy cannot make one of "
                         f"({' '.join(str(exc).split())})") from None
    if a.dtype.kind != "f":
        raise DTypeError(f"{name}: expected a float array, got dtype {a.dtype}")
    if not a.size:
        return a, 0.0
    maxabs = max(float(a.max()), -float(a.min()))  # NaN and Inf both surface here, without a scan
    if not np.isfinite(maxabs):
        bad = ~np.isfinite(a)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteError(f"{name}: {int(bad.sum())} NaN/Inf value(s), the first at index {first} "
                             f"({a[first]!r})")
    return a, maxabs


def _scaled_mantissas(a: np.ndarray, exp: int, bits: int, rounding: str, seed) -> np.ndarray:
    v = a.astype(np.float64)
    if -1022 <= -exp <= 1023:
        v *= np.float64(2.0) ** -exp  # exact: a power-of-two scaling (the factor itself is a normal double)
    else:
        v = np.ldexp(v, -exp)         # subnormal float64 inputs need a factor beyond 2**1023
    if rounding == "nearest" and a.dtype.itemsize <= 4:
        # Fast path, exact for inputs of at most 24 significant bits: v + copysign(0.5, v) needs no
        # rounding in float64 wherever it could reach the next integer, so trunc() is half-away.
        v += np.copysign(0.5, v)
        np.trunc(v, out=v)
    else:
        v = _round_float(v, rounding, seed)
    top = max_mantissa(bits)
    np.clip(v, -top, top, out=v)
    return v.astype(np.int16)


def quantize(x, bits: int = DEFAULT_BITS, rounding: str = "nearest", seed=None, name: str = "tensor") -> DFPTensor:
    """Quantize a float array to DFP: exp from max|x|, mantissas rounded with `rounding` and saturated.

    `seed` drives stochastic rounding: a `StreamKey` draws element i (in C order) from the counter-based
    stream the generated quantizers use (dfpgen.core.stochastic), so both round alike; an int, None or
    a numpy Generator draws from numpy's generator.
    """
    check_bits(bits)
    check_rounding(rounding)
    a, maxabs = _check_float_array(x, name)
    if a.ndim == 0:   # a scalar: quantized as one element, returned 0-d like the input
        one = quantize(a.reshape(1), bits, rounding, seed, name)
        return DFPTensor(one.mant.reshape(()), one.exp, one.bits)
    exp = exponent_for_max(maxabs, bits)
    if maxabs == 0:
        return DFPTensor._adopt(np.zeros(a.shape, np.int16), exp, bits)
    return DFPTensor._adopt(_scaled_mantissas(a, exp, bits, rounding, seed), exp, bits)


def quantize_with_exp(x, exp: int, bits: int = DEFAULT_BITS, rounding: str = "nearest", seed=None,
                      name: str = "tensor") -> DFPTensor:
    """Quantize a float array on a given exponent (e.g. one from a fused max-abs), saturating."""
    check_bits(bits)
    check_rounding(rounding)
    a, _ = _check_float_array(x, name)
    return DFPTensor._adopt(_scaled_mantissas(a, int(exp), bits, rounding, seed), int(exp), bits)


def downconvert(acc, exp: int, bits: int = DEFAULT_BITS, rounding: str = "nearest", seed=None) -> DFPTensor:
    """Down-convert integer accumulators (value acc * 2**exp) to DFP: shift right by
    bitlen(max|acc|) - (bits-1) with rounding and add the shift to the exponent."""
    check_bits(bits)
    check_rounding(rounding)
    a = np.asarray(acc)
    if a.dtype.kind not in "iu":
        raise DTypeError(f"downconvert: expected an integer accumulator array, got dtype {a.dtype}")
    a = a.astype(np.int64)
    peak = int(np.max(np.abs(a))) if a.size else 0
    shift = max(0, peak.bit_length() - (bits - 1))
    return DFPTensor._adopt(_saturate(round_shift(a, shift, rounding, seed), bits), int(exp) + shift, bits)


def downconvert_float(acc, bits: int = DEFAULT_BITS, rounding: str = "nearest", seed=None) -> DFPTensor:
    """Down-convert FP32 (or FP64) accumulators to DFP; the same as quantizing them."""
    return quantize(acc, bits, rounding, seed, name="accumulator")


def dfp_mul(a: DFPTensor, b: DFPTensor) -> tuple[np.ndarray, int]:
    """Elementwise product: exact INT32 mantissa products and the exponent exp_a + exp_b."""
    return a.mant.astype(np.int32) * b.mant.astype(np.int32), a.exp + b.exp


def dfp_add(a: DFPTensor, b: DFPTensor, bits: int | None = None, rounding: str = "nearest",
            seed=None) -> DFPTensor:
    """Elementwise sum: align to the larger exponent (rounded right shift of the other), add exactly,
    then down-convert to `bits` (default: the wider operand's)."""
    rng = _rng(seed)
    bits = max(a.bits, b.bits) if bits is None else check_bits(bits)
    exp = max(a.exp, b.exp)
    total = (round_shift(a.mant, exp - a.exp, rounding, rng)
             + round_shift(b.mant, exp - b.exp, rounding, rng))
    return downconvert(total, exp, bits, rounding, rng)
