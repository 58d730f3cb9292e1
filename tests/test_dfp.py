"""Dynamic Fixed Point numerics (`dfpgen.core.dfp`) checked bit for bit against an independent reference.

The reference below uses only `fractions.Fraction` and Python ints (no dfpgen helpers): exponents
are exact floor(log2(.)) of rationals, rounding is done on the exact quotient, and stochastic
rounding replays the documented numpy draws from the same seed.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dfpgen.core.dfp import ROUNDING_MODES, DFPTensor, dfp_add, dfp_mul, downconvert, quantize, round_shift, safe_chain
from dfpgen.errors import DFPGenError, DTypeError, NonFiniteError, NumericsError, ShapeError

MODES = ("nearest", "nearest_even", "stochastic", "biased", "chop")
DETERMINISTIC = tuple(m for m in MODES if m != "stochastic")
FLOATS = (np.float16, np.float32, np.float64)
ALL_BITS = tuple(range(2, 17))
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# Independent reference (Fraction + int only)
# ---------------------------------------------------------------------------------------------

def top(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def floor_log2(q: Fraction) -> int:
    """Exact floor(log2(q)) for a positive rational."""
    assert q > 0
    e = q.numerator.bit_length() - q.denominator.bit_length()
    while pow2(e) > q:
        e -= 1
    while pow2(e + 1) <= q:
        e += 1
    return e


def round_det(v: Fraction, mode: str) -> int:
    """Round an exact rational to an integer with a deterministic DFP mode (sign-magnitude)."""
    sign = -1 if v < 0 else 1
    mag = abs(v)
    low = math.floor(mag)
    frac = mag - low
    if mode == "nearest":
        up = frac >= Fraction(1, 2)
    elif mode == "nearest_even":
        up = frac > Fraction(1, 2) or (frac == Fraction(1, 2) and low % 2 == 1)
    elif mode == "biased":
        up = frac >= Fraction(1, 4)
    elif mode == "chop":
        up = False
    else:  # pragma: no cover
        raise AssertionError(mode)
    return sign * (low + int(up))


def sat(m: int, bits: int) -> int:
    return max(-top(bits), min(top(bits), m))


def ref_quantize(x: np.ndarray, bits: int, mode: str, seed=None) -> tuple[list[int], int]:
    """Reference quantization: (flat mantissas, exponent)."""
    vals = [Fraction(float(t)) for t in np.asarray(x).ravel()]  # float(...) of float16/32/64 is exact
    peak = max((abs(v) for v in vals), default=Fraction(0))
    if peak == 0:
        return [0] * len(vals), 0
    exp = floor_log2(peak) - (bits - 2)
    vs = [v / pow2(exp) for v in vals]
    if mode == "stochastic":
        u = np.random.default_rng(seed).random(np.asarray(x).shape).ravel()
        out = []
        for v, ui in zip(vs, u):
            fl = math.floor(v)
            out.append(fl + int(Fraction(float(ui)) < v - fl))
    else:
        out = [round_det(v, mode) for v in vs]
    return [sat(m, bits) for m in out], exp


def ref_round_shift(acc: list[int], shape, s: int, mode: str, rng) -> list[int]:
    """Reference integer acc / 2**s with a DFP mode; `rng` is a Generator replaying the draws."""
    if s <= 0:
        return list(acc)
    if mode == "stochastic":
        assert s <= 63, "the documented int64 draws only exist for shifts up to 63"
        r = rng.integers(0, 2**s, size=shape, dtype=np.int64).ravel()
        out = []
        for a, ri in zip(acc, r):
            fl = a >> s  # Python >> floors
            out.append(fl + int(int(ri) < a - fl * 2**s))
        return out
    return [round_det(Fraction(a, 2**s), mode) for a in acc]


def ref_downconvert(acc: list[int], shape, exp: int, bits: int, mode: str, rng) -> tuple[list[int], int]:
    peak = max((abs(a) for a in acc), default=0)
    s = max(0, peak.bit_length() - (bits - 1))
    out = ref_round_shift(acc, shape, s, mode, rng)
    return [sat(m, bits) for m in out], exp + s


def flat(t: DFPTensor) -> list[int]:
    return [int(m) for m in t.mant.ravel()]


def check_tensor(t: DFPTensor, shape, bits: int) -> None:
    assert isinstance(t, DFPTensor)
    assert t.mant.dtype == np.int16
    assert t.mant.shape == tuple(shape)
    assert t.bits == bits
    assert isinstance(t.exp, int)
    if t.mant.size:
        assert int(np.abs(t.mant.astype(np.int64)).max()) <= top(bits)


# ---------------------------------------------------------------------------------------------
# Reference self-checks (so a wrong reference cannot silently agree with a wrong module)
# ---------------------------------------------------------------------------------------------

def test_reference_rounding_table():
    cases = {  # v: (nearest, nearest_even, biased, chop)
        Fraction(5, 2): (3, 2, 3, 2), Fraction(-5, 2): (-3, -2, -3, -2),
        Fraction(7, 2): (4, 4, 4, 3), Fraction(-7, 2): (-4, -4, -4, -3),
        Fraction(1, 2): (1, 0, 1, 0), Fraction(-1, 2): (-1, 0, -1, 0),
        Fraction(1, 4): (0, 0, 1, 0), Fraction(-1, 4): (0, 0, -1, 0),
        Fraction(5, 4): (1, 1, 2, 1), Fraction(-5, 4): (-1, -1, -2, -1),
        Fraction(3, 4): (1, 1, 1, 0), Fraction(-3, 4): (-1, -1, -1, 0),
        Fraction(1, 5): (0, 0, 0, 0), Fraction(-1, 5): (0, 0, 0, 0),
        Fraction(3): (3, 3, 3, 3), Fraction(-3): (-3, -3, -3, -3),
    }
    for v, want in cases.items():
        assert tuple(round_det(v, m) for m in ("nearest", "nearest_even", "biased", "chop")) == want, v


def test_reference_floor_log2():
    for e in range(-1100, 1030, 7):
        assert floor_log2(pow2(e)) == e
        assert floor_log2(pow2(e) * Fraction(3, 2)) == e
        assert floor_log2(pow2(e + 1) - pow2(e - 60)) == e


def test_rounding_modes_constant():
    assert set(ROUNDING_MODES) == set(MODES)


# ---------------------------------------------------------------------------------------------
# quantize
# ---------------------------------------------------------------------------------------------

@st.composite
def float_arrays(draw):
    dtype = draw(st.sampled_from(FLOATS))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=6))
    width = np.finfo(dtype).bits
    elements = st.floats(allow_nan=False, allow_infinity=False, width=width)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def dyadic_arrays(draw):
    """Small-integer multiples of a power of two: quotients land on ties, quarters and powers of two."""
    bits = draw(st.integers(2, 16))
    dtype = draw(st.sampled_from(FLOATS))
    extra = draw(st.integers(0, 3))
    lim = 2 ** (bits - 1 + extra)
    ks = draw(st.lists(st.integers(-lim, lim), min_size=1, max_size=24))
    lo = {np.float16: -20, np.float32: -140, np.float64: -1070}[dtype]
    hi = {np.float16: -3, np.float32: 100, np.float64: 1000}[dtype]
    scale = draw(st.integers(lo, hi))
    x = (np.array(ks, dtype=np.float64) * 2.0**scale).astype(dtype)
    return bits, x


def assert_quantize_matches(x, bits, mode, seed):
    t = quantize(x, bits, mode, seed=seed)
    want, exp = ref_quantize(x, bits, mode, seed)
    check_tensor(t, np.asarray(x).shape, bits)
    assert t.exp == exp
    assert flat(t) == want
    return t


@SETTINGS
@given(x=float_arrays(), bits=st.integers(2, 16), mode=st.sampled_from(MODES), seed=st.integers(0, 2**32))
def test_quantize_matches_reference(x, bits, mode, seed):
    t = assert_quantize_matches(x, bits, mode, seed)
    if x.size and np.any(x != 0):  # the tensor maximum lands in [2**(bits-2), 2**(bits-1) - 1]
        peak = int(np.abs(t.mant.astype(np.int64)).max())
        assert 2 ** (bits - 2) <= peak <= top(bits)


@SETTINGS
@given(data=dyadic_arrays(), mode=st.sampled_from(MODES), seed=st.integers(0, 2**32))
def test_quantize_dyadic_matches_reference(data, mode, seed):
    bits, x = data
    assert_quantize_matches(x, bits, mode, seed)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_quantize_every_bits_mode_dtype(bits, mode, dtype):
    rng = np.random.default_rng(1000 * bits + 7)
    x = (rng.standard_normal(40) * 3.0 ** rng.integers(-6, 6, 40)).astype(dtype)
    x[5] = 0.0
    x[6] = -x[7]
    assert_quantize_matches(x, bits, mode, seed=bits)


def test_quantize_explicit_ties():
    # max 2**14 -> E = 14, exp = 0 for 16 bits: the mantissa is x rounded
    x = np.array([16384.0, 2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 1.5, 0.25, -0.25, 0.75, 1.25, -1.25, 0.125])
    want = {
        "nearest": [16384, 3, -3, 4, -4, 1, -1, 2, 0, 0, 1, 1, -1, 0],
        "nearest_even": [16384, 2, -2, 4, -4, 0, 0, 2, 0, 0, 1, 1, -1, 0],
        "biased": [16384, 3, -3, 4, -4, 1, -1, 2, 1, -1, 1, 2, -2, 0],
        "chop": [16384, 2, -2, 3, -3, 0, 0, 1, 0, 0, 0, 1, -1, 0],
    }
    for dtype in FLOATS:
        for mode, w in want.items():
            t = quantize(x.astype(dtype), 16, mode)
            assert t.exp == 0
            assert t.mant.tolist() == w, (dtype, mode)


@pytest.mark.parametrize("bits", ALL_BITS)
def test_quantize_ties_scaled_every_bits(bits):
    # peak 2**(bits-1) * 2**k -> exp = k + 1, so odd multiples of 2**k are exact .5 ties
    k = -3
    odd = [n for n in (1, -1, 3, -3, 5) if abs(n) < 2 ** (bits - 1)]
    ns = [2 ** (bits - 1)] + odd
    x = np.array(ns, dtype=np.float64) * 2.0**k
    for mode in DETERMINISTIC:
        t = quantize(x, bits, mode)
        assert t.exp == k + 1
        assert t.mant[0] == 2 ** (bits - 2)
        assert flat(t) == [sat(round_det(Fraction(n, 2), mode), bits) for n in ns]
    even = {1: 0, -1: 0, 3: 2, -3: -2, 5: 2}
    away = {1: 1, -1: -1, 3: 2, -3: -2, 5: 3}
    assert quantize(x, bits, "nearest_even").mant.tolist()[1:] == [even[n] for n in odd]
    assert quantize(x, bits, "nearest").mant.tolist()[1:] == [away[n] for n in odd]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", MODES)
def test_quantize_powers_of_two(mode, dtype):
    for bits in ALL_BITS:
        for kmax in (-14, -1, 0, 3, 9):
            if dtype == np.float16 and kmax - (bits - 2) < -24:
                continue  # below float16's smallest subnormal
            ks = [kmax - j for j in range(bits - 1)]  # all exactly representable on the tensor's exponent
            x = np.array([(-1) ** i * 2.0**k for i, k in enumerate(ks)], dtype=dtype)
            t = quantize(x, bits, mode, seed=0)
            assert t.exp == kmax - (bits - 2)
            assert t.mant.tolist() == [(-1) ** i * 2 ** (bits - 2 - j) for i, j in enumerate(range(bits - 1))]
            assert np.array_equal(t.to_float(np.float64), x.astype(np.float64))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_quantize_rounds_into_saturation(bits, mode):
    # v = 2**(bits-1) - 1/2**j just below the top power: rounds to 2**(bits-1) (or stays at the top
    # when chopped) -> saturated to 2**(bits-1) - 1, for positive and negative peaks
    for sign in (1, -1):
        for j in (1, 2, 20):
            v = Fraction(2 ** (bits - 1)) - Fraction(1, 2**j)
            for scale in (-30, 0, 17):
                x = np.array([sign * float(v * pow2(scale)), 1.0 * 2.0**scale])
                t = quantize(x, bits, mode, seed=j)
                assert t.exp == scale
                assert int(t.mant[0]) == sign * top(bits)  # rounded up (or chopped) to the top
                assert flat(t) == ref_quantize(x, bits, mode, j)[0]


def test_quantize_saturation_float32_and_float16():
    t = quantize(np.array([32767.5, -32767.5], np.float32), 16, "nearest")
    assert (t.exp, t.mant.tolist()) == (0, [32767, -32767])
    t = quantize(np.array([32767.75, 0.25], np.float32), 16, "biased")
    assert (t.exp, t.mant.tolist()) == (0, [32767, 1])
    t = quantize(np.array([1.9990234375], np.float16), 2, "nearest")  # v = 1.999 -> 2 -> 1
    assert (t.exp, t.mant.tolist()) == (0, [1])
    t = quantize(np.array([-1.5], np.float16), 3, "nearest_even")  # v = -3 exactly, top 3: no rounding
    assert (t.exp, t.mant.tolist()) == (-1, [-3])
    t = quantize(np.array([-1.75], np.float16), 3, "nearest_even")  # v = -3.5 -> -4 -> -3
    assert (t.exp, t.mant.tolist()) == (-1, [-3])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", MODES)
def test_quantize_tiny_and_negative(mode, dtype):
    tiny = float(np.finfo(dtype).smallest_subnormal)
    x = np.array([-1.0, tiny, -tiny, 1e-3, -1e-3, 2.0**-15, -(2.0**-15), 2.0**-16, -0.999], dtype=dtype)
    t = assert_quantize_matches(x, 16, mode, seed=3)
    assert t.exp == -14 and t.mant[0] == -16384
    if mode in ("nearest", "nearest_even", "chop"):
        assert t.mant[1] == 0 and t.mant[2] == 0


@pytest.mark.parametrize("dtype", (np.float16, np.float32))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", (2, 8, 15, 16))
def test_quantize_subnormal_tensors(bits, mode, dtype):
    info = np.finfo(dtype)
    tiny = float(info.smallest_subnormal)
    emin = {np.float16: -24, np.float32: -149}[dtype]
    x = np.array([tiny, -3 * tiny, 5 * tiny, 0.0, -7 * tiny], dtype=dtype)
    assert np.all(np.abs(x[x != 0]) < info.smallest_normal)
    t = assert_quantize_matches(x, bits, mode, seed=11)
    assert t.exp == emin + 2 - (bits - 2)  # max |x| = 7 * 2**emin -> floor(log2) = emin + 2
    if bits >= 5:  # 7 * 2**emin has at most 3 significant bits: exact on the grid
        assert np.array_equal(t.to_float(np.float64), x.astype(np.float64))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_quantize_all_zero(bits, mode, dtype):
    for shape in ((0,), (5,), (2, 3)):
        x = np.zeros(shape, dtype=dtype)
        if x.size:
            x.flat[0] = -0.0
        t = quantize(x, bits, mode, seed=1)
        check_tensor(t, shape, bits)
        assert t.exp == 0 and not np.any(t.mant)


def test_quantize_accepts_lists_and_names():
    t = quantize([0.5, -0.25], 16, name="weights")
    assert t.exp == -15 and t.mant.tolist() == [16384, -8192]
    assert np.array_equal(t.to_float(np.float64), [0.5, -0.25])


# ---- stochastic ---------------------------------------------------------------------------------

def test_stochastic_reproducible_and_generator_seeds():
    x = np.random.default_rng(5).standard_normal((7, 9)).astype(np.float32)
    a = quantize(x, 12, "stochastic", seed=42)
    b = quantize(x, 12, "stochastic", seed=42)
    assert a.exp == b.exp and np.array_equal(a.mant, b.mant)
    g = quantize(x, 12, "stochastic", seed=np.random.default_rng(42))
    assert g.exp == a.exp and np.array_equal(g.mant, a.mant)
    assert flat(a) == ref_quantize(x, 12, "stochastic", 42)[0]
    # a shared Generator advances between calls, so consecutive calls replay consecutive draws
    gen, replay = np.random.default_rng(9), np.random.default_rng(9)
    first, second = quantize(x, 12, "stochastic", seed=gen), quantize(x, 12, "stochastic", seed=gen)
    assert flat(first) == ref_quantize(x, 12, "stochastic", replay)[0]
    assert flat(second) == ref_quantize(x, 12, "stochastic", replay)[0]
    # different seeds give (almost surely) different roundings of non-grid data
    assert any(not np.array_equal(quantize(x, 12, "stochastic", seed=s).mant, a.mant) for s in range(3))


@pytest.mark.parametrize("value", (0.3, -0.3, 0.123456789, -0.9, 2.0**-20))
def test_stochastic_quantize_unbiased(value):
    n = 200_000
    x = np.full(n + 1, value)
    x[0] = 1.0  # peak 1 -> exp = -14 for 16 bits
    t = quantize(x, 16, "stochastic", seed=123)
    assert t.exp == -14
    v = Fraction(value) * 2**14
    m = t.mant[1:].astype(np.int64)
    fl = math.floor(v)
    assert set(np.unique(m).tolist()) <= {fl, fl + 1}
    p = float(v - fl)
    se = math.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(float(m.mean()) - float(v)) < 5 * se + 1e-9
    # the deterministic modes are not all unbiased here (sanity check the statistic has power)
    assert abs(float(quantize(x, 16, "chop").mant[1:].astype(np.int64).mean()) - float(v)) > 10 * se or p == 0


def test_stochastic_round_shift_unbiased():
    n = 100_000
    for acc, s in ((1_000_003, 5), (-1_000_003, 5), (7, 10), (-(2**40) - 12345, 33)):
        out = round_shift(np.full(n, acc, np.int64), s, "stochastic", seed=acc & 0xFFFF)
        q = Fraction(acc, 2**s)
        p = float(q - math.floor(q))
        se = math.sqrt(max(p * (1 - p), 1e-12) / n)
        assert set(np.unique(out).tolist()) <= {math.floor(q), math.floor(q) + 1}
        assert abs(float(out.mean()) - float(q)) < 5 * se + 1e-9


def _untemper(y: int) -> int:
    """Invert MT19937's output tempering, so a chosen state word yields a chosen 32-bit output."""
    def inv_right(y, s):
        x = y
        for _ in range(32 // s + 1):
            x = y ^ (x >> s)
        return x

    def inv_left(y, s, mask):
        x = y
        for _ in range(32 // s + 1):
            x = y ^ ((x << s) & mask)
        return x & 0xFFFFFFFF

    y = inv_right(y, 18)
    y = inv_left(y, 15, 0xEFC60000)
    y = inv_left(y, 7, 0x9D2C5680)
    return inv_right(y, 11)


def constant_generator(word: int) -> np.random.Generator:
    """A Generator whose next 624 32-bit outputs all equal `word` (0: u = 0.0; 0xFFFFFFFF: u = 1 - 2**-53)."""
    mt = np.random.MT19937(0)
    state = mt.state
    state["state"]["key"][:] = _untemper(word)
    state["state"]["pos"] = 0
    mt.state = state
    return np.random.Generator(mt)


def test_constant_generator_draws():
    assert constant_generator(0).random(4).tolist() == [0.0] * 4
    assert constant_generator(0xFFFFFFFF).random(4).tolist() == [1 - 2.0**-53] * 4
    assert constant_generator(0xFFFFFFFF).integers(0, 2**40, size=3, dtype=np.int64).tolist() == [2**40 - 1] * 3


@pytest.mark.parametrize("bits", (2, 5, 16))
def test_stochastic_extreme_draws(bits):
    # u = 0 rounds every non-integer up (ceil), u = 1 - 2**-53 rounds down (floor): pins the strict `<`
    x = np.array([1.99999, 1.0, 0.5, 0.3, -0.3, -1.0, 2.0**-30, -(2.0**-30), 0.0, -1.99999])
    vals = [Fraction(float(t)) * pow2(bits - 2) for t in x]  # peak ~2: exp = -(bits - 2)
    lo = quantize(x, bits, "stochastic", seed=constant_generator(0xFFFFFFFF))
    hi = quantize(x, bits, "stochastic", seed=constant_generator(0))
    assert lo.exp == hi.exp == -(bits - 2)
    assert flat(hi) == [sat(math.ceil(v), bits) for v in vals]
    assert flat(lo) == [sat(math.floor(v), bits) for v in vals]
    assert flat(hi) == ref_quantize(x, bits, "stochastic", constant_generator(0))[0]
    acc = [5, -5, 8, -8, 1, -1, 0, 2**40 + 3, -(2**40) - 3, 2**62 + 1]
    for s in (1, 3, 33, 63):
        up = round_shift(np.array(acc, np.int64), s, "stochastic", seed=constant_generator(0))
        down = round_shift(np.array(acc, np.int64), s, "stochastic", seed=constant_generator(0xFFFFFFFF))
        assert up.tolist() == [-((-a) >> s) for a in acc]  # ceil
        assert down.tolist() == [a >> s for a in acc]  # floor
    for s in (64, 65, 90):
        down = round_shift(np.array(acc, np.int64), s, "stochastic", seed=constant_generator(0xFFFFFFFF))
        assert down.tolist() == [a >> s for a in acc]
    t = downconvert(np.array([2**bits - 1, 3, -3], np.int32), 0, bits, "stochastic", seed=constant_generator(0))
    assert t.exp == 1 and flat(t) == [top(bits), sat(2, bits), -1]


def test_stochastic_round_shift_unbiased_past_63():
    n = 100_000
    for acc, s in ((2**63 - 1, 64), (-3 * 2**61, 65), (2**62, 66), (-(2**63 - 1), 64)):
        out = round_shift(np.full(n, acc, np.int64), s, "stochastic", seed=s)
        q = Fraction(acc, 2**s)
        p = float(q - math.floor(q))
        se = math.sqrt(p * (1 - p) / n)
        assert set(np.unique(out).tolist()) <= {math.floor(q), math.floor(q) + 1}
        assert abs(float(out.mean()) - float(q)) < 5 * se


# ---- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf))
def test_quantize_non_finite(bad, dtype):
    x = np.ones((3, 4), dtype=dtype)
    x[1, 2] = bad
    with pytest.raises(NonFiniteError, match="conv1_input") as info:
        quantize(x, 16, name="conv1_input")
    assert isinstance(info.value, DFPGenError)
    assert isinstance(info.value, NumericsError)
    with pytest.raises(NonFiniteError, match="tensor"):
        quantize(x)


@pytest.mark.parametrize("bits", (0, 1, 17, 32, -16, True, 8.0, "16", None))
def test_bad_bits(bits):
    x = np.ones(3)
    for call in (lambda: quantize(x, bits), lambda: downconvert(np.ones(3, np.int32), 0, bits),
                 lambda: DFPTensor(np.zeros(3, np.int16), 0, bits)):
        with pytest.raises(NumericsError, match="bits") as info:
            call()
        assert isinstance(info.value, DFPGenError)
    with pytest.raises(NumericsError, match="bits"):
        safe_chain(bits, 8)
    with pytest.raises(NumericsError, match="bits"):
        safe_chain(8, bits)


@pytest.mark.parametrize("rounding", ("round", "Nearest", "", None, "stochastic "))
def test_bad_rounding(rounding):
    calls = (lambda: quantize(np.ones(3), 16, rounding),
             lambda: round_shift(np.ones(3, np.int32), 2, rounding),
             lambda: downconvert(np.ones(3, np.int32), 0, 16, rounding))
    for call in calls:
        with pytest.raises(NumericsError) as info:
            call()
        assert isinstance(info.value, DFPGenError)
        for mode in MODES:
            assert mode in str(info.value)


@pytest.mark.parametrize("x", (np.arange(4, dtype=np.int16), np.arange(4, dtype=np.int32),
                               np.arange(4, dtype=np.int64), np.arange(4, dtype=np.uint8),
                               np.array([True, False]), [1, 2, 3], np.ones(2, complex)))
def test_quantize_rejects_non_float(x):
    with pytest.raises(DTypeError) as info:
        quantize(x)
    assert isinstance(info.value, DFPGenError)


def test_downconvert_rejects_float():
    with pytest.raises(DTypeError):
        downconvert(np.ones(3, np.float32), 0)


# ---------------------------------------------------------------------------------------------
# round_shift / downconvert
# ---------------------------------------------------------------------------------------------

int64_lists = st.lists(st.integers(-(2**63) + 1, 2**63 - 1), min_size=1, max_size=12)
int32_lists = st.lists(st.integers(INT32_MIN + 1, INT32_MAX), min_size=0, max_size=16)
small_lists = st.lists(st.integers(-300, 300), min_size=1, max_size=16)


@SETTINGS
@given(acc=st.one_of(int64_lists, int32_lists.filter(bool), small_lists), shift=st.integers(-3, 130),
       mode=st.sampled_from(DETERMINISTIC))
def test_round_shift_deterministic(acc, shift, mode):
    out = round_shift(np.array(acc, np.int64), shift, mode)
    assert out.dtype == np.int64
    assert out.tolist() == ref_round_shift(acc, (len(acc),), shift, mode, None)


@SETTINGS
@given(acc=st.one_of(int64_lists, int32_lists.filter(bool), small_lists), shift=st.integers(0, 63),
       seed=st.integers(0, 2**32))
def test_round_shift_stochastic_replay(acc, shift, seed):
    out = round_shift(np.array(acc, np.int64), shift, "stochastic", seed=seed)
    assert out.tolist() == ref_round_shift(acc, (len(acc),), shift, "stochastic", np.random.default_rng(seed))


def test_round_shift_explicit():
    acc = np.array([3, -3, 5, -5, 6, -6, 7, -7, 1, -1, 0], np.int64)  # shift 2: quotients in quarters
    want = {
        "nearest": [1, -1, 1, -1, 2, -2, 2, -2, 0, 0, 0],
        "nearest_even": [1, -1, 1, -1, 2, -2, 2, -2, 0, 0, 0],
        "biased": [1, -1, 2, -2, 2, -2, 2, -2, 1, -1, 0],
        "chop": [0, 0, 1, -1, 1, -1, 1, -1, 0, 0, 0],
    }
    for mode, w in want.items():
        assert round_shift(acc, 2, mode).tolist() == w, mode
    ties = np.array([1, 3, 5, -1, -3, -5], np.int64)  # shift 1: exact .5
    assert round_shift(ties, 1, "nearest").tolist() == [1, 2, 3, -1, -2, -3]
    assert round_shift(ties, 1, "nearest_even").tolist() == [0, 2, 2, 0, -2, -2]
    assert round_shift(ties, 1, "biased").tolist() == [1, 2, 3, -1, -2, -3]
    assert round_shift(ties, 1, "chop").tolist() == [0, 1, 2, 0, -1, -2]
    for mode in MODES:
        assert round_shift(acc, 0, mode).tolist() == acc.tolist()


def test_round_shift_wide_values_and_shifts():
    # no int64 overflow in the rounding decision for huge magnitudes or shifts past 63
    acc = [2**61, 3, -5, 2**62 + 1, -(2**62), 2**63 - 1, -(2**63 - 1), 2**62 - 1]
    for mode in DETERMINISTIC:
        for s in (60, 61, 62, 63, 64, 65, 70, 200):
            assert round_shift(np.array(acc, np.int64), s, mode).tolist() == \
                ref_round_shift(acc, (len(acc),), s, mode, None), (mode, s)
    for s in (64, 100):  # stochastic past 63: results stay floor or floor + 1
        out = round_shift(np.array(acc, np.int64), s, "stochastic", seed=1).tolist()
        for a, o in zip(acc, out):
            assert o in (a >> s, (a >> s) + 1)


@SETTINGS
@given(acc=st.one_of(int32_lists, int64_lists.map(lambda v: [a >> 2 for a in v]), small_lists),
       exp=st.integers(-200, 200), bits=st.integers(2, 16), mode=st.sampled_from(MODES),
       seed=st.integers(0, 2**32), dtype=st.sampled_from((np.int32, np.int64)))
def test_downconvert_matches_reference(acc, exp, bits, mode, seed, dtype):
    if dtype == np.int32 and any(not INT32_MIN <= a <= INT32_MAX for a in acc):
        dtype = np.int64
    t = downconvert(np.array(acc, dtype).reshape(-1), exp, bits, mode, seed=seed)
    want, wexp = ref_downconvert(acc, (len(acc),), exp, bits, mode, np.random.default_rng(seed))
    check_tensor(t, (len(acc),), bits)
    assert t.exp == wexp
    assert flat(t) == want
    if acc and max(abs(a) for a in acc).bit_length() > bits - 1:  # shifted: peak lands in the top octave
        assert 2 ** (bits - 2) <= int(np.abs(t.mant.astype(np.int64)).max()) <= top(bits)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", ALL_BITS)
def test_downconvert_saturation_and_no_shift(bits, mode):
    # peak 2**bits - 1 -> bitlen bits -> shift 1 -> (2**bits - 1)/2 = 2**(bits-1) - 1/2 rounds to 2**(bits-1)
    acc = np.array([2**bits - 1, -(2**bits - 1), 1], np.int32)
    t = downconvert(acc, 5, bits, mode, seed=2)
    assert t.exp == 6
    assert abs(int(t.mant[0])) == top(bits) and abs(int(t.mant[1])) == top(bits)
    assert t.mant[0] > 0 > t.mant[1]
    # a peak that already fits: no shift, exact copy
    fits = np.array([top(bits), -top(bits), 0, 1], np.int64)
    t = downconvert(fits, -7, bits, mode, seed=2)
    assert t.exp == -7 and t.mant.tolist() == fits.tolist()
    z = downconvert(np.zeros((2, 2), np.int32), 3, bits, mode)
    assert z.exp == 3 and not np.any(z.mant)


def test_downconvert_shapes_and_int32_extremes():
    acc = np.array([[INT32_MAX, INT32_MIN + 1], [12345, -1]], np.int32)
    for mode in MODES:
        t = downconvert(acc, 0, 16, mode, seed=0)
        check_tensor(t, (2, 2), 16)
        assert t.exp == 16
        want, wexp = ref_downconvert([int(a) for a in acc.ravel()], (2, 2), 0, 16, mode,
                                     np.random.default_rng(0))
        assert flat(t) == want and t.exp == wexp


# ---------------------------------------------------------------------------------------------
# dfp_mul / dfp_add
# ---------------------------------------------------------------------------------------------

@st.composite
def dfp_tensors(draw, n, bits=None, exp_range=(-60, 60)):
    b = draw(st.integers(2, 16)) if bits is None else bits
    mant = draw(st.lists(st.integers(-top(b), top(b)), min_size=n, max_size=n))
    exp = draw(st.integers(*exp_range))
    return DFPTensor(np.array(mant, np.int16), exp, b)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 12))
def test_dfp_mul_exact(data, n):
    a, b = data.draw(dfp_tensors(n)), data.draw(dfp_tensors(n))
    prod, exp = dfp_mul(a, b)
    assert prod.dtype == np.int32 and exp == a.exp + b.exp
    assert prod.tolist() == [int(x) * int(y) for x, y in zip(a.mant, b.mant)]


def test_dfp_mul_extremes():
    a = DFPTensor(np.array([32767, -32767, 32767], np.int16), 3)
    prod, exp = dfp_mul(a, a)
    assert prod.tolist() == [32767**2] * 3 and exp == 6


def ref_dfp_add(a: DFPTensor, b: DFPTensor, bits: int, mode: str, seed) -> tuple[list[int], int]:
    rng = np.random.default_rng(seed)
    e = max(a.exp, b.exp)
    ra = ref_round_shift(flat(a), a.shape, e - a.exp, mode, rng)
    rb = ref_round_shift(flat(b), b.shape, e - b.exp, mode, rng)
    return ref_downconvert([x + y for x, y in zip(ra, rb)], a.shape, e, bits, mode, rng)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 12), mode=st.sampled_from(MODES), seed=st.integers(0, 2**32),
       out_bits=st.one_of(st.none(), st.integers(2, 16)))
def test_dfp_add_matches_reference(data, n, mode, seed, out_bits):
    # exponent gaps up to 63 in stochastic mode (the documented int64 draws), wider otherwise
    span = (-30, 30) if mode == "stochastic" else (-100, 100)
    a = data.draw(dfp_tensors(n, exp_range=span))
    b = data.draw(dfp_tensors(n, exp_range=span))
    t = dfp_add(a, b, out_bits, mode, seed=seed)
    bits = max(a.bits, b.bits) if out_bits is None else out_bits
    want, wexp = ref_dfp_add(a, b, bits, mode, seed)
    check_tensor(t, (n,), bits)
    assert t.exp == wexp
    assert flat(t) == want


def test_dfp_add_explicit():
    a = DFPTensor(np.array([100, -100, 3], np.int16), 0)
    b = DFPTensor(np.array([5, 6, -7], np.int16), 2)  # a aligned to exp 2: 100/4 = 25, 3/4 -> 1 (nearest)
    t = dfp_add(a, b)
    assert t.exp == 2 and t.mant.tolist() == [30, -19, -6]
    t = dfp_add(a, b, rounding="chop")
    assert t.exp == 2 and t.mant.tolist() == [30, -19, -7]
    # an exact sum that needs one more bit is down-converted
    c = DFPTensor(np.array([32767, -32767], np.int16), 0)
    t = dfp_add(c, c)
    assert t.exp == 1 and t.mant.tolist() == [32767, -32767]
    t = dfp_add(c, c, bits=8)
    assert t.exp == 9 and t.mant.tolist() == [127, -127]
    # operands of very different scale: the small one vanishes (no int64 overflow in the shift)
    big = quantize(np.array([1e30, -1e30]), 16)
    small = quantize(np.array([1e-30, 3e-30]), 16)
    for mode in MODES:
        for x, y in ((big, small), (small, big)):
            t = dfp_add(x, y, rounding=mode, seed=0)
            assert t.exp == big.exp and t.mant.tolist() == big.mant.tolist()


# ---------------------------------------------------------------------------------------------
# safe_chain: the INT32 overflow bound of vpdpwssd chains
# ---------------------------------------------------------------------------------------------

def worst_pair_brute(bits_a: int, bits_b: int) -> int:
    """max |a0*b0 + a1*b1| over all legal mantissas (brute force for small widths, extremes otherwise)."""
    if bits_a <= 9 and bits_b <= 9:
        ma = np.arange(-top(bits_a), top(bits_a) + 1, dtype=np.int64)
        mb = np.arange(-top(bits_b), top(bits_b) + 1, dtype=np.int64)
        prod = np.abs(np.outer(ma, mb)).max()
        return int(2 * prod)  # both lanes of a pair can hit the extreme product independently
    cands = [-top(bits_a), -top(bits_a) + 1, 0, top(bits_a) - 1, top(bits_a)]
    cands_b = [-top(bits_b), -top(bits_b) + 1, 0, top(bits_b) - 1, top(bits_b)]
    return 2 * max(abs(x * y) for x in cands for y in cands_b)


def test_safe_chain_table():
    table = {16: 1, 15: 4, 14: 16, 13: 64, 12: 256, 8: 66572}
    for bits, length in table.items():
        assert safe_chain(bits, bits) == length


def test_safe_chain_bound_all_pairs():
    for ba in ALL_BITS:
        for bb in ALL_BITS:
            L = safe_chain(ba, bb)
            worst = worst_pair_brute(ba, bb)
            assert isinstance(L, int) and L >= 1
            assert L * worst <= INT32_MAX and -L * worst >= INT32_MIN  # L worst pairs fit
            assert (L + 1) * worst > INT32_MAX  # one more overflows
            assert safe_chain(ba, bb) == safe_chain(bb, ba)


@pytest.mark.parametrize("bits", (16, 15, 14, 13, 12, 8))
def test_safe_chain_vpdpwssd_emulation(bits):
    L = safe_chain(bits, bits)
    m = top(bits)
    for sa, sb in ((1, 1), (-1, 1), (-1, -1)):
        n = L + 1
        a = np.full((n, 2), sa * m, np.int16)  # one row per instruction: two INT16 products per lane
        b = np.full((n, 2), sb * m, np.int16)
        pairs = (a.astype(np.int32) * b.astype(np.int32)).astype(np.int64).sum(axis=1)
        exact = np.cumsum(pairs)  # int64 reference accumulator
        in_range = (exact >= INT32_MIN) & (exact <= INT32_MAX)
        assert in_range[:L].all()  # the first L instructions never leave INT32
        wrapped = np.cumsum(pairs.astype(np.int32), dtype=np.int32)  # what the INT32 lane holds
        assert np.array_equal(wrapped[:L].astype(np.int64), exact[:L])
        if sa * sb > 0:  # the (L+1)-th worst positive pair overflows
            assert not in_range[L]
            assert int(wrapped[L]) != int(exact[L])


# ---------------------------------------------------------------------------------------------
# DFPTensor
# ---------------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data(), n=st.integers(0, 12), bits=st.integers(2, 16))
def test_to_float_exact(data, n, bits):
    t = data.draw(dfp_tensors(n, bits=bits, exp_range=(-1000, 1000)))
    want = [Fraction(int(m)) * pow2(t.exp) for m in t.mant]
    got = t.to_float(np.float64)
    assert got.dtype == np.float64
    assert [Fraction(float(g)) for g in got] == want
    if -120 <= t.exp <= 100:  # float32 normal range: the default dtype is exact too
        g32 = t.to_float()
        assert g32.dtype == np.float32
        assert [Fraction(float(g)) for g in g32] == want
    assert t.scale == float(pow2(t.exp))


@pytest.mark.parametrize("bits", ALL_BITS)
def test_dfptensor_mantissa_range(bits):
    DFPTensor(np.array([top(bits), -top(bits), 0], np.int16), 0, bits)
    for bad in (top(bits) + 1, -top(bits) - 1):
        if not -(2**15) <= bad < 2**15:
            continue  # not an int16 at all
        with pytest.raises(NumericsError) as info:
            DFPTensor(np.array([0, bad], np.int16), 0, bits)
        assert isinstance(info.value, DFPGenError)
    if bits == 16:
        with pytest.raises(NumericsError):
            DFPTensor(np.array([-32768], np.int16), 0, 16)


@pytest.mark.parametrize("mant", (np.zeros(3, np.int32), np.zeros(3, np.int8), np.zeros(3, np.uint16),
                                  np.zeros(3, np.float32), np.zeros(3, np.float16), [0, 1, 2], 5))
def test_dfptensor_rejects_non_int16(mant):
    with pytest.raises(DTypeError) as info:
        DFPTensor(mant, 0)
    assert isinstance(info.value, DFPGenError)


@pytest.mark.parametrize("exp", (1.0, "3", None, True))
def test_dfptensor_rejects_bad_exp(exp):
    with pytest.raises(DTypeError):
        DFPTensor(np.zeros(2, np.int16), exp)


def test_dfptensor_basics():
    t = DFPTensor(np.array([[1, -2], [3, 4]], np.int16), np.int64(-3), 8)
    assert t.shape == (2, 2) and t.exp == -3 and type(t.exp) is int and t.bits == 8
    assert t.scale == 0.125
    assert t.to_float().tolist() == [[0.125, -0.25], [0.375, 0.5]]
    assert "exp=-3" in repr(t)
    empty = DFPTensor(np.zeros((0, 3), np.int16), 0)
    assert empty.to_float().shape == (0, 3)


def test_dfptensor_owns_read_only_mantissas():
    """Issue 20 item 2: kernels cache layouts per DFPTensor, so nothing may change its mantissas."""
    import copy
    import pickle

    m = np.array([[1, -2], [3, 4]], np.int16)
    t = DFPTensor(m, -3, 8)
    m *= -1                                    # the caller's array stays the caller's
    assert t.mant.tolist() == [[1, -2], [3, 4]] and not np.shares_memory(t.mant, m)
    quantized = quantize(np.array([1.5, -2.0], np.float32), 12)
    for tensor in (t, quantized, downconvert(np.array([7, -9]), 0, 4), copy.copy(t), copy.deepcopy(t),
                   pickle.loads(pickle.dumps(t))):
        before = tensor.mant.copy()
        for write in (lambda a: a.__setitem__(0, 1), lambda a: a.__imul__(2), lambda a: a.fill(0),
                      lambda a: np.negative(a, out=a), lambda a: a.setflags(write=True)):
            with pytest.raises(ValueError):
                write(tensor.mant)
        np.testing.assert_array_equal(tensor.mant, before)
    assert copy.deepcopy(t).mant.tolist() == t.mant.tolist() and copy.deepcopy(t).bits == 8
@pytest.mark.parametrize("scalar", [1.0, -0.75, 0.0, np.float64(3.0), np.array(1.5), np.float32(2.0)])
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_quantize_a_scalar_gives_a_0d_tensor_like_one_element(scalar, rounding):
    t = quantize(scalar, rounding=rounding, seed=1)
    one = quantize(np.asarray(scalar).reshape(1), rounding=rounding, seed=1)
    assert t.shape == () and (t.exp, int(t.mant)) == (one.exp, int(one.mant[0]))
    assert float(t.to_float()) == pytest.approx(float(scalar), rel=2.0 ** -14)


def test_quantize_a_ragged_list_is_one_line():
    with pytest.raises(ShapeError, match="tensor: expected a float array, got a list") as info:
        quantize([[1.0], [2.0, 3.0]])
    assert "\n" not in str(info.value)
