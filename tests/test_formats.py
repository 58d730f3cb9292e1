"""dfpgen.formats against references built from each format's definition, never from the code under test.

Posits: every pattern decoded field by field (sign, regime run, exponent, fraction) as the 2022 posit
standard defines them, and rounding done on the bit string of the exact value (nearest n-bit pattern,
ties to even, never 0, never past maxpos). Minifloats: IEEE fields and each format's special-value rule,
rounding to the nearest value in the decoded table. MX: the OCP MX v1.0 formulas on hand-made blocks.
"""

import dataclasses
import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dfpgen
import dfpgen.formats as F
from dfpgen.core import dfp
from dfpgen.errors import FormatError, NumericsError
from dfpgen.formats.minifloat import FP4_E2M1, FP6_E2M3, FP6_E3M2
from dfpgen.formats.mx import INT8_ELEMENT

POSITS = [(n, es) for n in range(2, 17) for es in range(4)]


# --- posit reference ---------------------------------------------------------------------------------

def posit_value(p: int, n: int, es: int) -> float:
    """The value of n-bit posit pattern p, read field by field from its bit string."""
    if p == 0:
        return 0.0
    if p == 1 << (n - 1):
        return math.nan
    negative = p >> (n - 1) == 1
    if negative:
        p = (1 << n) - p
    body = format(p, f"0{n}b")[1:]
    run = len(body) - len(body.lstrip(body[0]))
    k = run - 1 if body[0] == "1" else -run
    rest = body[run + 1:]
    exp = int(rest[:es].ljust(es, "0"), 2) if es else 0
    frac_bits = rest[es:]
    frac = int(frac_bits, 2) / 2 ** len(frac_bits) if frac_bits else 0.0
    value = math.ldexp(1.0 + frac, k * 2 ** es + exp)
    return -value if negative else value


@lru_cache(maxsize=None)
def posit_table(n: int, es: int) -> np.ndarray:
    return np.array([posit_value(p, n, es) for p in range(1 << n)])


def posit_round(x, n: int, es: int) -> int:
    """The pattern a finite x (a float, or an exact dyadic Fraction) rounds to: its exact posit bit string cut to
    n bits, nearest even."""
    if x == 0:
        return 0
    a = abs(Fraction(x))                                   # exact for floats too
    scale = a.numerator.bit_length() - a.denominator.bit_length()
    scale -= Fraction(2) ** scale > a                      # floor(log2 a)
    k, e = divmod(scale, 2 ** es)
    regime = "1" * (k + 1) + "0" if k >= 0 else "0" * (-k) + "1"
    frac, frac_bits = a / Fraction(2) ** scale - 1, ""
    while frac:                                            # dyadic: the bit string ends
        frac *= 2
        frac_bits += "1" if frac >= 1 else "0"
        frac -= frac >= 1
    body = regime + (format(e, f"0{es}b") if es else "") + frac_bits
    kept = int(body[:n - 1].ljust(n - 1, "0"), 2)
    if body[n - 1:n] == "1" and ("1" in body[n:] or kept & 1):
        kept += 1
    kept = min(max(kept, 1), (1 << (n - 1)) - 1)        # never 0, never NaR: minpos and maxpos
    return kept if x > 0 else (1 << n) - kept


@pytest.mark.parametrize("n,es", POSITS)
def test_posit_table_matches_the_definition(n, es):
    fmt = F.get(f"posit{n}_{es}")
    ref = posit_table(n, es)
    patterns = np.arange(1 << n)
    np.testing.assert_array_equal(fmt.decode(patterns), ref)
    finite = patterns[np.isfinite(ref)]
    assert np.array_equal(fmt.encode(ref[finite]), finite)
    np.testing.assert_array_equal(fmt.values(), np.sort(ref[finite]))
    assert len(fmt.values()) == 2 ** n - 1 and fmt.bits == n
    assert fmt.maxpos == ref[(1 << (n - 1)) - 1] == 1 / fmt.minpos


@pytest.mark.parametrize("n,es", POSITS)
def test_posit_rounds_at_and_beside_every_boundary(n, es):
    """Between neighbours p and p+1 the boundary is the (n+1)-bit pattern 2p+1; at it, the even pattern."""
    fmt = F.get(f"posit{n}_{es}")
    ref = posit_table(n, es)
    p = np.arange(1, (1 << (n - 1)) - 1)
    mid = posit_table(n + 1, es)[2 * p + 1]
    at = np.where(p % 2 == 0, p, p + 1)
    for x, want in ((mid, at), (np.nextafter(mid, 0), p), (np.nextafter(mid, np.inf), p + 1)):
        assert np.array_equal(fmt.encode(x), want)
        assert np.array_equal(fmt.encode(-x), (1 << n) - want)
        assert np.array_equal(fmt.quantize(x), ref[want])
        assert np.array_equal(fmt.quantize(-x), -ref[want])
    if n <= 10:     # the boundary claim itself, against rounding on the exact bit string
        for x, want in ((mid, at), (np.nextafter(mid, 0), p), (np.nextafter(mid, np.inf), p + 1)):
            assert [posit_round(float(v), n, es) for v in x] == want.tolist()


@pytest.mark.parametrize("n,es", POSITS)
def test_posit_float32_inputs_round_by_lookup_exactly_as_float64(n, es):
    """float32 arrays (training's operands) round by a table lookup on their bit pattern: the same results at
    every boundary, one float32 step either side, on random values over float32's range, and at the specials."""
    fmt = F.get(f"posit{n}_{es}")
    p = np.arange(1, (1 << (n - 1)) - 1)
    mid = posit_table(n + 1, es)[2 * p + 1]
    assert np.array_equal(mid.astype(np.float32), mid)    # every boundary is a float32
    mid = mid.astype(np.float32)
    rng = np.random.default_rng(n * 10 + es)
    spread = (rng.standard_normal(2000) * np.exp(rng.uniform(-87, 87, 2000))).astype(np.float32)
    specials = np.array([0, 1e-45, 1e-38, 3.4e38, np.inf, np.nan], np.float32)
    x = np.concatenate([mid, np.nextafter(mid, np.float32(0)), np.nextafter(mid, np.float32(np.inf)), spread,
                        specials])
    x = np.concatenate([x, -x])
    got = fmt.quantize(x)
    assert got.dtype == np.float64 and np.array_equal(got, fmt.quantize(x.astype(np.float64)), equal_nan=True)


@pytest.mark.parametrize("n,es", [(8, 0), (8, 1), (8, 2), (16, 1), (16, 3), (12, 2)])
def test_posit_random_values_against_bit_string_rounding(n, es):
    rng = np.random.default_rng(n * 10 + es)
    span = (n - 2) << es
    x = np.ldexp(rng.uniform(1, 2, 3000), rng.integers(-span - 4, span + 4, 3000)) * rng.choice([-1, 1], 3000)
    got = F.get(f"posit{n}_{es}").encode(x)
    assert got.tolist() == [posit_round(float(v), n, es) for v in x]


@pytest.mark.parametrize("n,es", [(8, 0), (8, 1), (16, 1), (5, 3)])
def test_posit_specials(n, es):
    fmt = F.get(f"posit{n}_{es}")
    q = fmt.quantize(np.array([0.0, -0.0, 5e-324, -5e-324, fmt.minpos / 2, fmt.maxpos * 1.5, 1e300, -1.79e308]))
    assert q.tolist() == [0, 0, fmt.minpos, -fmt.minpos, fmt.minpos, fmt.maxpos, fmt.maxpos, -fmt.maxpos]
    assert not np.signbit(q[1])                       # one zero: -0 gives +0
    assert np.isnan(fmt.quantize(np.array([np.nan, np.inf, -np.inf]))).all()
    assert fmt.encode(np.array([np.nan, np.inf, -np.inf, -0.0])).tolist() == [1 << (n - 1)] * 3 + [0]
    for scalar in (3.3, np.float32(-0.7), 0.0):     # 0-d inputs give 0-d results
        assert fmt.quantize(scalar).shape == () and fmt.quantize(scalar) == fmt.quantize(np.array([scalar]))[0]


# --- minifloat reference -----------------------------------------------------------------------------

MINIFLOATS = {  # format: (exponent bits, mantissa bits, what the all-ones exponent field holds, max finite)
    F.FP8_E4M3: (4, 3, "NaN at S.1111.111 only", 448.0),
    F.FP8_E5M2: (5, 2, "IEEE", 57344.0),
    F.BF16: (8, 7, "IEEE", (2 - 2 ** -7) * 2.0 ** 127),
    F.FP16: (5, 10, "IEEE", 65504.0),
    FP6_E2M3: (2, 3, "finite", 7.5),
    FP6_E3M2: (3, 2, "finite", 28.0),
    FP4_E2M1: (2, 1, "finite", 6.0),
}
IDS = [f.name for f in MINIFLOATS]


def minifloat_value(p: int, e: int, m: int, rule: str) -> float:
    bias = 2 ** (e - 1) - 1
    sign, field, mant = p >> (e + m), (p >> m) & (2 ** e - 1), p & (2 ** m - 1)
    if rule == "IEEE" and field == 2 ** e - 1:
        v = math.inf if mant == 0 else math.nan
    elif rule.startswith("NaN") and field == 2 ** e - 1 and mant == 2 ** m - 1:
        v = math.nan
    elif field == 0:
        v = mant * 2.0 ** (1 - bias - m)
    else:
        v = (1 + mant / 2 ** m) * 2.0 ** (field - bias)
    return -v if sign else v


@lru_cache(maxsize=None)
def minifloat_table(e: int, m: int, rule: str) -> np.ndarray:
    return np.array([minifloat_value(p, e, m, rule) for p in range(1 << (1 + e + m))])


@pytest.mark.parametrize("fmt", MINIFLOATS, ids=IDS)
def test_minifloat_table_matches_the_definition(fmt):
    e, m, rule, top = MINIFLOATS[fmt]
    ref = minifloat_table(e, m, rule)
    patterns = np.arange(1 << (1 + e + m))
    np.testing.assert_array_equal(fmt.decode(patterns), ref)
    finite = patterns[np.isfinite(ref)]
    assert np.array_equal(fmt.encode(ref[finite]), finite)           # -0 included
    np.testing.assert_array_equal(fmt.values(), np.unique(ref[finite]))
    assert fmt.values()[-1] == fmt.max_finite == top and fmt.bits == 1 + e + m


@pytest.mark.parametrize("fmt", MINIFLOATS, ids=IDS)
def test_minifloat_rounds_at_and_beside_every_midpoint(fmt):
    e, m, rule, _ = MINIFLOATS[fmt]
    ref = minifloat_table(e, m, rule)
    pos = np.arange(1 << (e + m))
    pos = pos[np.isfinite(ref[pos])]                  # consecutive patterns, ascending values, 0 first
    lo, hi = pos[:-1], pos[1:]
    mid = (ref[lo] + ref[hi]) / 2
    at = np.where(lo % 2 == 0, lo, hi)               # ties to the even mantissa
    for x, want in ((mid, at), (np.nextafter(mid, 0), lo), (np.nextafter(mid, np.inf), hi)):
        assert np.array_equal(fmt.round(x), ref[want])
        assert np.array_equal(fmt.round(-x), -ref[want])
        assert np.array_equal(fmt.quantize(x, scale="none"), ref[want])
        assert np.array_equal(fmt.encode(x), want)


@pytest.mark.parametrize("fmt", MINIFLOATS, ids=IDS)
def test_minifloat_overflow_zero_and_specials(fmt):
    e, m, rule, top = MINIFLOATS[fmt]
    ulp = 2.0 ** (math.frexp(top)[1] - 1 - m)         # the top binade's spacing
    edge = top + ulp / 2                              # halfway to the next value the format would have
    max_is_even = (int(fmt.encode(np.array([top]))[0]) % 2) == 0
    over = {"IEEE": math.inf, "finite": top}.get(rule, math.nan)
    q = fmt.round(np.array([edge, np.nextafter(edge, np.inf), np.inf, -np.inf]), saturate=False)
    np.testing.assert_array_equal(q, [top if max_is_even else over, over, over, -over])
    q = fmt.round(np.array([edge, 1e300, np.inf, -np.inf]), saturate=True)
    assert q.tolist() == [top, top, top, -top]
    assert np.isnan(fmt.round(np.array([np.nan]), saturate=True)).all()
    tiny = 2.0 ** (2 - 2 ** (e - 1) - m)              # the smallest subnormal
    q = fmt.round(np.array([0.0, -0.0, tiny / 2, -tiny / 2, 5e-324, np.nextafter(tiny / 2, 1)]))
    assert q.tolist() == [0, 0, 0, 0, 0, tiny] and np.signbit(q).tolist() == [0, 1, 0, 1, 0, 0]


def test_fp16_matches_numpys_float16_cast():
    x = np.concatenate([np.random.default_rng(0).standard_normal(20000) * 10.0 ** np.arange(-9, 11).repeat(1000),
                        F.FP16.values()[:-1] + np.diff(F.FP16.values()) / 2])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(F.FP16.quantize(x), x.astype(np.float16).astype(np.float64))


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2"])
def test_fp8_per_tensor_scales(name):
    fmt = F.get(name)
    x = np.random.default_rng(1).standard_normal(500) * 1e4
    amax = np.abs(x).max()
    s = fmt.scale_of(x)                               # the default, pow2: the smallest power of two that fits
    assert math.frexp(s)[0] == 0.5 and fmt.max_finite / 2 < amax / s <= fmt.max_finite
    np.testing.assert_array_equal(fmt.quantize(x), fmt.round(x / s) * s)
    s_amax = amax / fmt.max_finite                    # not a power of two: x / s_amax is rounded to float64 first
    assert fmt.scale_of(x, "amax") == s_amax
    np.testing.assert_array_equal(fmt.quantize(x, scale="amax"), fmt.round(x / s_amax) * s_amax)
    assert abs(np.abs(fmt.quantize(x, scale="amax")).max() - amax) <= 1e-12 * amax
    assert fmt.scale_of(np.zeros(3)) == 1.0 and fmt.scale_of(x, "none") == 1.0
    with pytest.raises(NumericsError, match="scale='ceil'"):
        fmt.quantize(x, scale="ceil")


# --- MX ------------------------------------------------------------------------------------------------

MX_ELEMENTS = {  # name: (emax_elem, the largest element value), from the spec's element tables
    "mxint8": (0, 127 / 64), "mxfp8_e4m3": (8, 448.0), "mxfp8_e5m2": (15, 57344.0), "mxfp6_e2m3": (2, 7.5),
    "mxfp6_e3m2": (4, 28.0), "mxfp4": (2, 6.0),
}


def element_grid(name):
    """Every element value with the parity of its pattern, from the definitions above (not the code)."""
    if name == "mxint8":
        k = np.arange(-127, 128)
        return k / 64.0, k % 2
    e, m, rule, _ = MINIFLOATS[F.get(name).element]
    ref = minifloat_table(e, m, rule)
    p = np.arange(len(ref))
    keep = np.isfinite(ref) & ~((ref == 0) & (p > 0))
    return ref[keep], p[keep] % 2


def mx_reference(block: np.ndarray, name: str) -> np.ndarray:
    """OCP MX v1.0 section 6.3 on one block, element by element: X = 2**(floor(log2 amax) - emax_elem),
    P_i = the element value nearest V_i / X (ties to the even pattern), clamped to the largest element."""
    emax, top = MX_ELEMENTS[name]
    if not np.isfinite(block).all():
        return np.full(block.shape, np.nan)
    amax = max(abs(float(v)) for v in block)
    shared = -127 if amax == 0 else max(math.frexp(amax)[1] - 1 - emax, -127)
    if shared > 127:
        return np.full(block.shape, np.nan)
    grid, parity = element_grid(name)
    out = []
    for v in block:
        t = min(max(math.ldexp(float(v), -shared), -top), top)
        d = np.abs(grid - t)
        best = np.flatnonzero(d == d.min())
        pick = best[0] if len(best) == 1 else next(i for i in best if parity[i] == 0)
        out.append(math.ldexp(float(grid[pick]), shared))
    return np.array(out)


def hand_made_blocks(name):
    emax, top = MX_ELEMENTS[name]
    rng = np.random.default_rng(7)
    grid = element_grid(name)[0]
    mids = (grid[:-1] + grid[1:]) / 2                 # with amax = 8 * top, X = 8: every element a tie
    return {
        "zeros": np.zeros(32),
        "nan": np.r_[np.nan, np.ones(31)],
        "inf": np.r_[np.ones(31), -np.inf],
        "largest scale": np.float32(3.4e38) * rng.uniform(-1, 1, 32),
        "past E8M0": np.r_[1e300, np.ones(31)],
        "amax a power of two": np.r_[8.0, rng.uniform(-8, 8, 31)],
        "mixed signs": rng.standard_normal(32) * 10.0 ** rng.integers(-3, 3, 32),
        "ties": np.ldexp(np.r_[top, mids[::max(1, len(mids) // 31)][:31]], 3),
        "tiny": np.r_[1e-40, -3e-41, np.zeros(30)],
        "below E8M0": rng.standard_normal(32) * 1e-45,
    }


@pytest.mark.parametrize("name", list(MX_ELEMENTS))
def test_mx_hand_made_blocks_follow_the_spec(name):
    fmt = F.get(name)
    for label, block in hand_made_blocks(name).items():
        block = np.asarray(block, dtype=np.float64)
        np.testing.assert_array_equal(fmt.quantize(block), mx_reference(block, name), err_msg=label)


@pytest.mark.parametrize("name", list(MX_ELEMENTS))
def test_mx_scales_follow_the_spec(name):
    fmt = F.get(name)
    emax, _ = MX_ELEMENTS[name]
    blocks = hand_made_blocks(name)
    got = fmt.scale_exponents(np.stack([blocks[k] for k in ("zeros", "nan", "inf", "past E8M0",
                                                            "amax a power of two", "largest scale")]), axis=-1)
    assert got.shape == (6, 1)
    np.testing.assert_array_equal(got[:, 0], [-127, np.nan, np.nan, np.nan, 3 - emax, 127 - emax])


@pytest.mark.parametrize("name", ["mxint8", "mxfp8_e4m3", "mxfp4"])
def test_mx_partial_blocks_and_axes(name):
    fmt = F.get(name)
    x = np.random.default_rng(3).standard_normal((2, 70, 3)) * 10.0 ** np.arange(70)[None, :, None] / 1e35
    q = fmt.quantize(x, axis=1)                        # blocks [0,32), [32,64) and the short [64,70)
    for i in range(2):
        for j in range(3):
            want = np.concatenate([mx_reference(x[i, s:s + 32, j], name) for s in (0, 32, 64)])
            np.testing.assert_array_equal(q[i, :, j], want)
    assert fmt.scale_exponents(x, axis=1).shape == (2, 3, 3)
    np.testing.assert_array_equal(fmt.quantize(x, axis=-2), q)
    np.testing.assert_array_equal(fmt.quantize(np.moveaxis(x, 1, -1), axis=-1), np.moveaxis(q, 1, -1))
    # WTGRAD blocks over (N, H, W) taken together, channel by channel
    y = np.random.default_rng(4).standard_normal((3, 2, 5, 7))
    flat = np.moveaxis(y, 1, 0).reshape(2, -1)
    want = np.stack([np.concatenate([mx_reference(c[s:s + 32], name) for s in range(0, 105, 32)]) for c in flat])
    np.testing.assert_array_equal(fmt.quantize(y, axis=F.BLOCK_AXES["wtgrad"]["x"]),
                                  np.moveaxis(want.reshape(2, 3, 5, 7), 0, 1))
    with pytest.raises(Exception, match="axis"):
        fmt.quantize(x, axis=(1, 1))


def test_mx_element_tables():
    k = np.arange(256)
    np.testing.assert_array_equal(INT8_ELEMENT.decode(k), np.where(k >= 128, k - 256, k) / 64)
    np.testing.assert_array_equal(INT8_ELEMENT.values(), np.arange(-128, 128) / 64)
    assert INT8_ELEMENT.round(np.array([-3.0, 2.0, 1 / 128, 3 / 128])).tolist() == [-127 / 64, 127 / 64, 0, 2 / 64]
    for name in MX_ELEMENTS:
        fmt = F.get(name)
        v = fmt.values()
        np.testing.assert_array_equal(fmt.decode(fmt.encode(v[v > -2])), v[v > -2])


# --- DFP -----------------------------------------------------------------------------------------------

def test_dfp_is_the_core_quantizer():
    x = np.random.default_rng(5).standard_normal((4, 9)).astype(np.float32)
    for bits in (8, 14, 16):
        fmt = F.get(f"dfp{bits}")
        t = dfp.quantize(x, bits)
        np.testing.assert_array_equal(fmt.quantize(x), t.to_float(np.float64))
        assert fmt.to_dfp(x).exp == t.exp and fmt.bits == bits
        assert len(fmt.values()) == 2 * dfp.max_mantissa(bits) + 1
        np.testing.assert_array_equal(fmt.decode(fmt.encode(fmt.values())), fmt.values())


# --- properties -----------------------------------------------------------------------------------------

PROPERTY_FORMATS = ["posit8_0", "posit8_1", "posit8_2", "posit16_1", "posit16_3", "posit5_3", "fp8_e4m3", "fp8_e5m2",
                    "bf16", "fp16", "mxint8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4",
                    "dfp14", "dfp8"]
tensors = st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=32).map(np.array)


@pytest.mark.parametrize("name", PROPERTY_FORMATS)
@settings(max_examples=60, deadline=None)
@given(x=tensors)
def test_quantize_is_idempotent_monotone_and_odd(name, x):
    fmt = F.get(name)
    q = fmt.quantize(x)
    assert q.shape == x.shape and q.dtype == np.float64
    np.testing.assert_array_equal(fmt.quantize(q), q)
    qs = fmt.quantize(np.sort(x))                      # one tensor, one block: one scale
    assert (qs[1:] >= qs[:-1]).all()
    np.testing.assert_array_equal(fmt.quantize(-x), -q)


@pytest.mark.parametrize("name", ["posit8_1", "posit16_1", "fp8_e4m3", "bf16", "fp16", "mxint8", "mxfp4", "dfp14"])
@settings(max_examples=30, deadline=None)
@given(x=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
def test_quantize_lands_on_the_value_table(name, x):
    fmt = F.get(name)
    x = np.array(x)
    q = fmt.quantize(x) if not name.startswith("mx") else fmt.quantize(x) / 2.0 ** fmt.scale_exponents(x)
    if name.startswith("fp8"):
        q = q / fmt.scale_of(x)
    elif name.startswith("dfp"):
        q = q / fmt.to_dfp(x).scale
    assert np.isin(q[np.isfinite(q)], fmt.values()).all()


# --- names ----------------------------------------------------------------------------------------------

def test_every_name_round_trips():
    names = F.names()
    assert len(names) == len(set(names)) == 60 + 10 + 15
    for name in names:
        fmt = F.get(name)
        assert fmt.name == name and F.get(name) is fmt
        line = fmt.describe()
        assert isinstance(line, str) and "\n" not in line and line.startswith(name)
        assert 2 <= fmt.bits <= 16
        with pytest.raises(dataclasses.FrozenInstanceError):     # one definition, never changed in place
            setattr(fmt, dataclasses.fields(fmt)[0].name, 3)
    for name in ("posit8_1", "posit16_1", "fp8_e4m3", "fp8_e5m2", "bf16", "mxint8", "mxfp8_e4m3", "dfp14"):
        assert name in names


@pytest.mark.parametrize("bad", ["posit8", "posit40_1", "posit8_4", "posit1_0", "posit08_1", "fp8_e3m3", "mxfp5",
                                 "dfp17", "dfp1", "FP16", "", " bf16", None, 7, 8.0, ["bf16"]])
def test_malformed_names_raise_one_line_listing_the_valid_ones(bad):
    with pytest.raises(FormatError) as info:
        F.get(bad)
    message = str(info.value)
    assert isinstance(info.value, (NumericsError, ValueError))
    assert "\n" not in message and repr(bad) in message
    for valid in ("posit<n>_<es> (n 2..16, es 0..3)", "fp8_e4m3", "fp8_e5m2", "bf16", "fp16", "mxint8", "mxfp8_e4m3",
                  "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "dfp<bits> (bits 2..16)"):
        assert valid in message


# --- posit(8, 0) on the INT16 kernels (issue 23 item 3) ---------------------------------------------------

def test_posit8_0_is_exactly_a_dfp14_tensor():
    fmt = F.get("posit8_0")
    t = fmt.to_dfp(fmt.values())
    assert (t.exp, t.bits, int(np.abs(t.mant).max())) == (-6, 14, 4096)
    np.testing.assert_array_equal(t.to_float(np.float64), fmt.values())
    x = np.random.default_rng(8).standard_normal(1000) * 20
    np.testing.assert_array_equal(fmt.to_dfp(x).to_float(np.float64), fmt.quantize(x))
    assert [F.get(f"posit{n}_0").dfp_bits() for n in (4, 8, 9, 10)] == [6, 14, 16, None]
    with pytest.raises(NumericsError, match="posit\\(40, 1\\)"):
        F.Posit(40, 1)
    with pytest.raises(NumericsError, match="posit8_1"):
        F.get("posit8_1").to_dfp(x)
    with pytest.raises(NumericsError, match="NaR"):
        fmt.to_dfp(np.array([1.0, np.nan]))


def quire_passes(x: np.ndarray, w: np.ndarray, dy: np.ndarray, pad: int) -> dict:
    """The three passes of a stride-1 convolution on integer mantissas, summed exactly in int64 (the quire)."""
    (N, _, H, W), (K, _, R, S) = x.shape, w.shape
    P, Q = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dyp = np.pad(dy, ((0, 0), (0, 0), (R - 1 - pad,) * 2, (S - 1 - pad,) * 2))
    y, dx, dw = np.zeros((N, K, P, Q), np.int64), np.zeros(x.shape, np.int64), np.zeros(w.shape, np.int64)
    for r in range(R):
        for s in range(S):
            y += np.einsum("nchw,kc->nkhw", xp[:, :, r:r + P, s:s + Q], w[:, :, r, s])
            dx += np.einsum("nkhw,kc->nchw", dyp[:, :, R - 1 - r:R - 1 - r + H, S - 1 - s:S - 1 - s + W], w[:, :, r, s])
            dw[:, :, r, s] = np.einsum("nkpq,ncpq->kc", dy, xp[:, :, r:r + P, s:s + Q])
    return {"fprop": y, "bprop": dx, "wtgrad": dw}


def test_posit8_0_on_the_int16_kernels_is_the_quire_rounded_once():
    """posit(8, 0) operands as DFP14 tensors, through the generated INT16 kernels, with one INT32 chain
    over each whole reduction: every |mantissa| <= 4096, so a pair-instruction adds at most 2**25 and INT32
    holds the exact sum (the quire) while sum|products| < 2**31, which the data is checked for. The one
    flush then rounds that sum to FP32 once: bit for bit the quire rounded to float32, in all three passes,
    also where sums pass 2**24 and FP32 must round."""
    fmt = F.get("posit8_0")
    spec = dfpgen.ConvSpec(N=1, C=64, K=16, H=8, W=8, R=3, S=3, stride=1, pad=1)
    rng = np.random.default_rng(23)
    x = fmt.to_dfp(rng.standard_normal((1, 64, 8, 8)) * 20)
    w = fmt.to_dfp(rng.standard_normal((16, 64, 3, 3)) * 20)
    dy = fmt.to_dfp(rng.standard_normal((1, 16, 8, 8)) * 20)
    mant = {t: a.mant.astype(np.int64) for t, a in (("x", x), ("w", w), ("dy", dy))}
    quire = quire_passes(mant["x"], mant["w"], mant["dy"], spec.pad)
    bound = quire_passes(np.abs(mant["x"]), np.abs(mant["w"]), np.abs(mant["dy"]), spec.pad)
    assert max(int(v.max()) for v in bound.values()) < 2 ** 31          # INT32 never wraps on this data
    op = dfpgen.Conv2d(spec, bits=14, chain=1 << 16, overflow="wrap", threads=1)
    rounded = 0
    for name, a, b in (("fprop", x, w), ("bprop", dy, w), ("wtgrad", x, dy)):
        assert op.kernel(name).plan.flushes == 1, f"{name}: the reduction is not one INT32 chain"
        exact = quire[name].astype(np.float64) * 2.0 ** (a.exp + b.exp)
        got = op.run(name, a, b)[0]
        np.testing.assert_array_equal(got, exact.astype(np.float32), err_msg=name)
        rounded += int((exact != exact.astype(np.float32)).sum())
    assert rounded > 0          # some sums needed more than FP32's 24 bits: the single rounding was exercised
