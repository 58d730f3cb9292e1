"""Posit passes accumulate in a quire (issue 23 item 2): every pass whose result kind is a posit gives
exactly round_to_posit(exact dot product), checked against an independent reference: the passes summed
from their definitions in Python Fractions, rounded by cutting the exact value's posit bit string to n
bits (nearest, ties to even, never 0, never past maxpos) and decoded by test_formats' field-by-field
reader. Also the building blocks (exact expansions, exact slices, rounding an exact sum) and hand-made
sums where the FP32 kernels' sum rounds to the wrong posit."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_formats import posit_round, posit_table

from dfpgen import Conv2d, ConvSpec, formats, passes
from dfpgen.core import expansion
from dfpgen.core.numerics import LayerNumerics
from dfpgen.core.stochastic import StreamKey
from dfpgen.errors import NumericsError
from dfpgen.nn.layers import Conv
from dfpgen.runtime import blas, quire
from dfpgen.runtime.blocked import to_blocked
from dfpgen.runtime.blocked_conv import convert_operand, operand_values, run_blocked

from strategies import general_specs

POSITS = ["posit8_0", "posit8_1", "posit8_2", "posit12_3", "posit16_1", "posit16_2"]


# --- the reference --------------------------------------------------------------------------------------

def posit_round_exact(q: Fraction, n: int, es: int) -> float:
    """The value an exact dyadic q rounds to in posit(n, es): its posit bit string cut to n bits, nearest even."""
    return float(posit_table(n, es)[posit_round(q, n, es)])


def exact_passes(x: np.ndarray, w: np.ndarray, dy: np.ndarray, spec: ConvSpec) -> dict:
    """y, dx and dw summed exactly in Fractions from the convolution's definition, one product at a time:
    y[n,k,p,q] = sum x[n,c,h,v] w[k,c',r,s] with h = p*sh + r*dh - pt, v = q*sw + s*dw - pl inside the input
    and c in k's group; dx and dw sum the same products' partners."""
    s = spec
    fx, fw, fdy = (np.vectorize(Fraction, otypes=[object])(np.asarray(a, np.float64)) for a in (x, w, dy))
    y = np.full((s.N, s.K, s.P, s.Q), Fraction(0), object)
    dx = np.full((s.N, s.C, s.H, s.W), Fraction(0), object)
    dw = np.full((s.K, s.Cg, s.R, s.S), Fraction(0), object)
    for n in range(s.N):
        for k in range(s.K):
            for cg in range(s.Cg):
                c = (k // s.Kg) * s.Cg + cg
                for r in range(s.R):
                    for t in range(s.S):
                        for p in range(s.P):
                            h = p * s.sh + r * s.dh - s.pt
                            for q in range(s.Q):
                                v = q * s.sw + t * s.dw - s.pl
                                if 0 <= h < s.H and 0 <= v < s.W:
                                    y[n, k, p, q] += fx[n, c, h, v] * fw[k, cg, r, t]
                                    dx[n, c, h, v] += fdy[n, k, p, q] * fw[k, cg, r, t]
                                    dw[k, cg, r, t] += fx[n, c, h, v] * fdy[n, k, p, q]
    return {"fprop": y, "bprop": dx, "wtgrad": dw}


def rounded(exact: np.ndarray, name: str) -> np.ndarray:
    fmt = formats.get(name)
    return np.vectorize(lambda q: posit_round_exact(q, fmt.n, fmt.es), otypes=[np.float64])(exact)


def spread(rng, shape, decades: float) -> np.ndarray:
    """Normal values scaled over `decades` binades either way, so sums mix very different magnitudes."""
    return rng.standard_normal(shape) * np.exp2(rng.uniform(-decades, decades, shape))


def numerics_for(act: str, weight: str, grad: str) -> LayerNumerics:
    return LayerNumerics(formats={"act": act, "weight": weight, "grad": grad})


# --- building blocks ------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-2.0**600, max_value=2.0**600),
                min_size=1, max_size=8))
def test_expansions_are_exact_and_know_their_sign(terms):
    got = expansion.of_terms([np.array(t) for t in terms])
    exact = sum(map(Fraction, terms), Fraction(0))
    assert sum((Fraction(float(c)) for c in got), Fraction(0)) == exact
    assert float(expansion.sign(got)) == (exact > 0) - (exact < 0)


@pytest.mark.parametrize("name", ["posit16_3", "posit8_1"])
def test_slices_hold_every_bit_in_few_slices(name):
    rng = np.random.default_rng(1)
    values = formats.get(name).quantize(spread(rng, 500, 40))
    top, low = quire.extent(values)
    assert np.all(np.abs(values) < 2.0 ** top) and np.all(np.mod(values, 2.0 ** low) == 0)
    assert not np.all(np.mod(values, 2.0 ** (low + 1)) == 0) and np.abs(values).max() >= 2.0 ** (top - 1)
    parts = quire.slices(values, top, low, 20)
    assert len(parts) == math.ceil((top - low) / 20) and np.array_equal(np.sum(parts, axis=0), values)
    for i, part in enumerate(parts):
        unit = 2.0 ** (top - 20 * (i + 1))
        assert np.all(np.mod(part, unit) == 0) and np.all(np.abs(part) < unit * 2 ** 20)
    assert quire.extent(np.zeros(3)) is None


def test_slice_widths_keep_the_reduction_within_float64():
    assert quire.widths(13, 13, 500) == (13, 13)                           # one pair: 26 + 9 <= 53
    wa, wb = quire.widths(60, 30, 4096)                                     # 41 bits for a pair
    fewest = min(math.ceil(60 / a) * math.ceil(30 / (41 - a)) for a in range(1, 41))
    assert wa + wb == 41 and math.ceil(60 / wa) * math.ceil(30 / wb) == fewest == 6
    assert sum(quire.widths(200, 200, 1)) == 53


@pytest.mark.parametrize("name", POSITS + ["posit5_1", "posit2_0"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_sum_is_the_exact_sum_rounded_once(name, data):
    """Terms whose exact sum is near boundaries, ties, minpos, maxpos and zero, against the bit-string rounding."""
    fmt = formats.get(name)
    values = fmt.values()
    bounds = posit_table(fmt.n + 1, fmt.es)                      # every rounding boundary is an (n+1)-bit posit
    bounds = bounds[np.isfinite(bounds)]
    picks = st.one_of(st.sampled_from(list(values)), st.sampled_from(list(bounds)),
                      st.floats(-2.0**60, 2.0**60, allow_nan=False), st.sampled_from([2.0**-70, -2.0**-70, 0.0]))
    terms = data.draw(st.lists(picks, min_size=1, max_size=5))
    got = fmt.round_sum([np.array([t]) for t in terms])
    assert got.shape == (1,) and got[0] == posit_round_exact(sum(map(Fraction, terms), Fraction(0)), fmt.n, fmt.es)


def test_round_sum_of_one_term_is_quantize_and_nonfinite_terms_give_nar():
    fmt = formats.get("posit16_1")
    values = spread(np.random.default_rng(2), 2000, 40)
    assert np.array_equal(fmt.round_sum([values]), fmt.quantize(values))
    got = fmt.round_sum([np.array([1.0, np.inf, 2.0]), np.array([np.nan, 1.0, 0.5])])
    assert np.isnan(got[:2]).all() and got[2] == 2.5


# --- the passes -----------------------------------------------------------------------------------------

SPEC = ConvSpec(N=2, C=3, K=4, H=6, W=5, R=3, S=2, stride=2, pad=1, dilation=1)
CASES = [("posit8_0", "posit8_0", "posit8_0"), ("posit8_1", "posit8_1", "posit16_1"), ("posit8_2", "posit8_2", "posit8_2"),
         ("posit16_1", "posit16_1", "posit16_1"), ("posit16_2", "posit16_2", "posit16_2"),
         ("posit12_3", "posit12_3", "posit12_3")]


def operands(numerics: LayerNumerics, spec: ConvSpec, seed: int, decades: float) -> dict:
    """Operands rounded to their kinds' formats: x, w, dy."""
    rng = np.random.default_rng(seed)
    raw = {"x": spread(rng, (spec.N, spec.C, spec.H, spec.W), decades),
           "w": spread(rng, (spec.K, spec.Cg, spec.R, spec.S), decades),
           "dy": spread(rng, (spec.N, spec.K, spec.P, spec.Q), decades)}
    kinds = {"x": "act", "w": "weight", "dy": "grad"}
    return {t: numerics.format_of(kinds[t]).quantize(a).astype(np.float32) for t, a in raw.items()}


@pytest.mark.parametrize("kinds", CASES, ids=lambda k: "-".join(k))
def test_every_pass_is_the_exact_sum_rounded_once(kinds):
    """Conv2d.run (the PyTorch layers' path) and run_blocked (dfpgen.nn's) against the Fraction reference,
    on operands spread over 2**+-12 so sums need far more than FP32's 24 bits."""
    numerics = numerics_for(*kinds)
    ops = operands(numerics, SPEC, 0, 12)
    exact = exact_passes(ops["x"], ops["w"], ops["dy"], SPEC)
    op = Conv2d(SPEC, numerics=numerics, threads=1, eager=False)
    for conv_pass in passes.ALL:
        want = rounded(exact[conv_pass.name], kinds[0] if conv_pass is passes.FPROP else kinds[2])
        a, b = ops[conv_pass.src.name], ops[conv_pass.vec.name]
        got, maxabs = op.run(conv_pass, a, b)
        assert got.dtype == np.float32 and np.array_equal(got, want), conv_pass.name
        assert maxabs == np.abs(want).max()
        blocked = run_blocked(op, conv_pass, *(to_blocked(v, 1) if v.shape[0] == SPEC.N else v for v in (a, b)))
        result = blocked.nchw(1) if conv_pass.result_views is True else blocked
        assert np.array_equal(result, want), f"{conv_pass.name} (blocked)"


@settings(max_examples=15, deadline=None)
@given(spec=general_specs(max_size=6, max_channels=2, max_batch=2), name=st.sampled_from(POSITS),
       seed=st.integers(0, 2**16))
def test_general_shapes_are_the_exact_sum_rounded_once(spec, name, seed):
    numerics = numerics_for(name, name, name)
    ops = operands(numerics, spec, seed, 30)
    exact = exact_passes(ops["x"], ops["w"], ops["dy"], spec)
    op = Conv2d(spec, numerics=numerics, threads=1, eager=False)
    for conv_pass in passes.ALL:
        got = op.run(conv_pass, ops[conv_pass.src.name], ops[conv_pass.vec.name])[0]
        assert np.array_equal(got, rounded(exact[conv_pass.name], name)), conv_pass.name


def test_wide_posits_need_several_slices_and_stay_exact():
    """posit16_3 values over 2**+-100: each operand spans over 200 bits, so the sum comes from many slice pairs."""
    spec = ConvSpec(N=1, C=4, K=2, H=3, W=3, R=2, S=2)
    numerics = numerics_for("posit16_3", "posit16_3", "posit16_3")
    ops = operands(numerics, spec, 5, 100)
    terms = quire.exact_terms(passes.FPROP, spec, ops["x"], ops["w"])
    assert len(terms) > 4
    exact = exact_passes(ops["x"], ops["w"], ops["dy"], spec)
    op = Conv2d(spec, numerics=numerics, threads=1, eager=False)
    for conv_pass in passes.ALL:
        got = op.run(conv_pass, ops[conv_pass.src.name], ops[conv_pass.vec.name])[0]
        assert np.array_equal(got, rounded(exact[conv_pass.name], "posit16_3")), conv_pass.name


# --- hand-made sums: 1x1 convolutions whose reduction is three products --------------------------------

ONE = {"fprop": ConvSpec(N=1, C=3, K=1, H=1, W=1, R=1, S=1), "bprop": ConvSpec(N=1, C=1, K=3, H=1, W=1, R=1, S=1),
       "wtgrad": ConvSpec(N=3, C=1, K=1, H=1, W=1, R=1, S=1)}


def three_products(conv_pass, left, right):
    """Operands of a 1x1 pass whose one output is sum(left[i] * right[i]), i < 3."""
    left, right = np.array(left, np.float32), np.array(right, np.float32)
    shaped = {"fprop": (left.reshape(1, 3, 1, 1), right.reshape(1, 3, 1, 1)),
              "bprop": (left.reshape(1, 3, 1, 1), right.reshape(3, 1, 1, 1)),
              "wtgrad": (left.reshape(3, 1, 1, 1), right.reshape(3, 1, 1, 1))}
    return shaped[conv_pass.name]


def run_one(conv_pass, left, right, name: str, numerics: LayerNumerics | None = None) -> float:
    op = Conv2d(ONE[conv_pass.name], numerics=numerics or numerics_for(name, name, name), threads=1, eager=False)
    return float(op.run(conv_pass, *three_products(conv_pass, left, right))[0].ravel()[0])


@pytest.mark.parametrize("conv_pass", passes.ALL, ids=lambda p: p.name)
def test_the_fp32_sum_rounds_to_the_wrong_posit_and_the_quire_does_not(conv_pass):
    """1 + 2**-13 + 2**-30 lies just above the boundary 1 + 2**-13 between posit(16, 1)'s 1 and 1 + 2**-12, so it
    rounds up. FP32 drops the 2**-30 in any order of addition, lands on the boundary and ties to the even
    pattern, 1: what the FP32 kernels used to give."""
    left, right = [1.0, 2.0**-13, 2.0**-15], [1.0, 1.0, 2.0**-15]
    fmt = formats.get("posit16_1")
    fp32 = Conv2d(ONE[conv_pass.name], numerics=LayerNumerics.fp32(), threads=1, eager=False)
    plain = fp32.run(conv_pass, *three_products(conv_pass, left, right))[0]
    assert float(plain.ravel()[0]) == 1 + 2.0**-13 and float(fmt.quantize(plain).ravel()[0]) == 1.0
    assert run_one(conv_pass, left, right, "posit16_1") == 1 + 2.0**-12


@pytest.mark.parametrize("conv_pass", passes.ALL, ids=lambda p: p.name)
@pytest.mark.parametrize("left,right,name,want", [
    ([1.0, 2.0**-13, 0.0], [1.0, 1.0, 0.0], "posit16_1", 1.0),                       # a tie: to the even pattern
    ([1.0, 2.0**-12, 2.0**-13], [1.0, 1.0, 1.0], "posit16_1", 1 + 2.0**-11),        # a tie, the other way
    ([1.0, 2.0**-13, -2.0**-15], [1.0, 1.0, 2.0**-15], "posit16_1", 1.0),           # just below the tie
    ([64.0, 64.0, 64.0], [64.0, 64.0, 64.0], "posit8_1", 4096.0),                   # past maxpos: saturates
    ([-64.0, -64.0, 1.0], [64.0, 64.0, 1.0], "posit8_1", -4096.0),
    ([2.0**-12, 0.0, 0.0], [2.0**-12, 0.0, 0.0], "posit8_1", 2.0**-12),             # below minpos: minpos
    ([1.0, -1.0, 2.0**-12], [1.0, 1.0, -2.0**-12], "posit8_1", -2.0**-12),          # cancels to -2**-24
    ([1.0, -1.0, 0.5], [3.0, 3.0, 0.0], "posit8_1", 0.0),                           # cancels exactly to 0
    ([2.0**100, -2.0**100, 2.0**-90], [2.0**10, 2.0**10, 2.0**-10], "posit16_3", 2.0**-100),   # 2**220 cancels
    ([2.0**100, -2.0**100, 2.0**-100], [2.0**10, 2.0**10, 2.0**-10], "posit16_3", 2.0**-112),  # to minpos
])
def test_ties_saturation_and_tiny_sums(conv_pass, left, right, name, want):
    assert run_one(conv_pass, left, right, name) == want


def test_mixed_operands_sum_exactly_into_a_posit_result():
    """A posit result kind fed by FP8 or MX operands (BPROP: dy posit, w FP8) is the exact sum rounded once too;
    an FP32 result kind (FPROP into FP8 activations) stays an FP32 kernel result."""
    numerics = numerics_for("fp8_e4m3", "mxfp8_e4m3", "posit16_1")
    spec = ConvSpec(N=2, C=3, K=4, H=5, W=5, R=3, S=3, pad=1)
    rng = np.random.default_rng(7)
    x, w = spread(rng, (2, 3, 5, 5), 6).astype(np.float32), spread(rng, (4, 3, 3, 3), 6).astype(np.float32)
    dy = spread(rng, (2, 4, 5, 5), 12).astype(np.float32)
    op = Conv2d(spec, numerics=numerics, threads=1, eager=False)
    xq = op._operand(x, passes.WTGRAD, passes.X, False)[0]
    wq = op._operand(w, passes.BPROP, passes.W, False)[0]
    dyq = op._operand(dy, passes.BPROP, passes.DY, False)[0]
    exact = exact_passes(xq, wq, dyq, spec)
    assert np.array_equal(op.run(passes.BPROP, dy, w)[0], rounded(exact["bprop"], "posit16_1"))
    assert np.array_equal(op.run(passes.WTGRAD, x, dy)[0], rounded(exact["wtgrad"], "posit16_1"))
    y = op.run(passes.FPROP, x, w)[0]
    assert not np.array_equal(y, formats.get("posit16_1").quantize(y).astype(np.float32))


def test_nan_operands_give_nar_where_they_reach():
    numerics = numerics_for("posit8_1", "posit8_1", "posit8_1")
    spec = ConvSpec(N=1, C=2, K=2, H=4, W=4, R=3, S=3)
    x = np.ones((1, 2, 4, 4), np.float32)
    x[0, 1, 0, 0] = np.nan
    y = Conv2d(spec, numerics=numerics, threads=1, eager=False).run(passes.FPROP, x, np.ones((2, 2, 3, 3), np.float32))[0]
    assert np.isnan(y[:, :, 0, 0]).all() and np.all(y[:, :, 1:, :] == 16) and np.all(y[:, :, :, 1:] == 16)


def test_a_training_layer_with_posits_gives_the_quire_results():
    """dfpgen.nn's Conv: forward and backward through run_blocked, each pass the exact sum rounded once."""
    numerics = numerics_for("posit8_1", "posit8_1", "posit16_1")
    layer = Conv("c", 3, 4, 3, numerics=numerics, rng=np.random.default_rng(3), threads=1, pad=1)
    rng = np.random.default_rng(4)
    x = spread(rng, (2, 3, 5, 5), 6).astype(np.float32)
    y = layer.forward(x)
    spec = ConvSpec(N=2, C=3, K=4, H=5, W=5, R=3, S=3, pad=1)
    fmt = {k: numerics.format_of(k) for k in ("act", "weight", "grad")}
    xq, wq = fmt["act"].quantize(x), fmt["weight"].quantize(layer.weight.data)
    dy = spread(rng, y.shape, 6).astype(np.float32)
    dyq = fmt["grad"].quantize(dy)
    exact = exact_passes(xq, wq, dyq, spec)
    y_nchw = y if isinstance(y, np.ndarray) else y.nchw(1)
    assert np.array_equal(y_nchw, rounded(exact["fprop"], "posit8_1"))
    layer.weight.grad[...] = 0
    dx = layer.backward(dy)
    dx_nchw = dx if isinstance(dx, np.ndarray) else dx.nchw(1)
    assert np.array_equal(dx_nchw, rounded(exact["bprop"], "posit16_1"))
    assert np.array_equal(layer.weight.grad, rounded(exact["wtgrad"], "posit16_1"))


def test_operands_beyond_the_exact_range_are_refused():
    spec = ConvSpec(N=1, C=1, K=1, H=1, W=1, R=1, S=1)
    huge, one = np.full((1, 1, 1, 1), 2.0**500), np.ones((1, 1, 1, 1))
    with pytest.raises(NumericsError, match=r"^fprop: operand a has values beyond 2\*\*\+-400"):
        quire.exact_terms(passes.FPROP, spec, huge, one)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_dfp_operands_of_a_posit_pass_are_the_values_the_fp32_kernel_would_read(rounding):
    """act and weight DFP, gradients posit(16, 1): BPROP's and WTGRAD's results are posits, so their DFP operands
    (w, x) are quantized in numpy for the quire. They are exactly what convert_operand lays out for the FP32
    kernel, stochastic draws included (one stream key per tensor), and the passes are their exact sums rounded."""
    numerics = LayerNumerics(grad_rounding="nearest", rounding=rounding, formats={"grad": "posit16_1"})
    spec = ConvSpec(N=2, C=20, K=6, H=5, W=5, R=3, S=3, pad=1)
    rng = np.random.default_rng(9)
    x, w = spread(rng, (2, 20, 5, 5), 4).astype(np.float32), spread(rng, (6, 20, 3, 3), 4).astype(np.float32)
    dy = spread(rng, (2, 6, 5, 5), 8).astype(np.float32)
    op = Conv2d(spec, numerics=numerics, threads=1, eager=False)
    key = StreamKey(12, 34)
    xb = to_blocked(x, 1)
    for conv_pass, role, operand in ((passes.BPROP, "vec", w), (passes.WTGRAD, "src", xb)):
        mine = operand_values(op, conv_pass, role, operand, key)
        laid_out, exp = convert_operand(op, conv_pass, role, operand, key)
        to_layout = conv_pass.to_vec if role == "vec" else conv_pass.to_src
        assert exp == 0 and np.array_equal(to_layout(mine, op.kernel(conv_pass).plan), laid_out)
    wq, xq = operand_values(op, passes.BPROP, "vec", w, key), operand_values(op, passes.WTGRAD, "src", xb, key)
    dyq = formats.get("posit16_1").quantize(dy)
    exact = exact_passes(xq, wq, dyq, spec)
    assert np.array_equal(run_blocked(op, passes.BPROP, to_blocked(dy, 1), w, (None, key)).nchw(1),
                          rounded(exact["bprop"], "posit16_1"))
    assert np.array_equal(run_blocked(op, passes.WTGRAD, xb, to_blocked(dy, 1), (key, None)),
                          rounded(exact["wtgrad"], "posit16_1"))


def test_the_gemms_run_on_one_blas_thread_and_the_count_comes_back():
    found = blas.openblas()   # None where numpy links another BLAS: then one_thread does nothing
    before = int(found[0]()) if found else None
    with blas.one_thread():
        assert found is None or int(found[0]()) == 1
    assert found is None or int(found[0]()) == before
