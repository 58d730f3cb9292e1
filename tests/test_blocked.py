"""The blocked runtime (dfpgen/runtime/blocked.py, blocked_conv.py and the view pairs of codegen/views.py):
every pass run on Blocked tensors and generated conversions equals Conv2d's numpy path bit for bit, for
any shape (odd channels, strides, dilations, negative pads), rounding mode and thread count."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen import passes
from dfpgen.codegen.plan import ResultLayout
from dfpgen.core.dfp import DFPTensor, quantize
from dfpgen.core.spec import ConvSpec
from dfpgen.core.stochastic import StreamKey
from dfpgen.core.target import get_isa, resolve
from dfpgen.errors import NonFiniteError, NumericsError, PlanError, ShapeError
from dfpgen.runtime.blocked import Blocked, Measured, empty_blocked, lanes, to_blocked
from dfpgen.runtime.blocked_conv import Converted, convert_ahead, run_blocked
from dfpgen.runtime.conv import Conv2d

from strategies import general_specs


def _operands(spec: ConvSpec, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    w = rng.standard_normal((spec.K, spec.Cg, spec.R, spec.S)).astype(np.float32)
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    return x, w, dy


def _blocked_results(op: Conv2d, x, w, dy, threads: int, keys=(None, None, None)):
    xb, dyb = to_blocked(x, threads), to_blocked(dy, threads)
    kx, kw, kdy = keys
    y = run_blocked(op, passes.FPROP, xb, Measured(w), (kx, kw))
    dx = run_blocked(op, passes.BPROP, dyb, Measured(w), (kdy, kw))
    dw = run_blocked(op, passes.WTGRAD, xb, dyb, (kx, kdy))
    return y, dx, dw


@settings(max_examples=30, deadline=None)
@given(spec=general_specs(max_size=10, max_channels=20, groups=(1,)), precision=st.sampled_from(["dfp16", "fp32"]),
       threads=st.integers(1, 3), bits=st.integers(8, 16), seed=st.integers(0, 1000))
def test_every_pass_equals_the_numpy_path(spec, precision, threads, bits, seed):
    op = Conv2d(spec, bits=bits, precision=precision, threads=threads)
    x, w, dy = _operands(spec, seed)
    y, dx, dw = _blocked_results(op, x, w, dy, threads)
    assert isinstance(y, Blocked) and isinstance(dx, Blocked)
    np.testing.assert_array_equal(y.nchw(threads), op.fprop(x, w))
    np.testing.assert_array_equal(dx.nchw(threads), op.bprop(dy, w))
    np.testing.assert_array_equal(dw, op.wtgrad(x, dy))
    assert y.maxabs == float(np.abs(y.nchw(threads)).max())   # from the kernel's epilogue


EIGHT_BIT_ISAS = resolve(None).isas("dfp16", bits=8)   # the INT8 ISAs (where the host has VNNI), then the INT16 ones


@settings(max_examples=40, deadline=None)
@given(spec=general_specs(max_size=12, max_channels=20, groups=(1,)), isa=st.sampled_from(EIGHT_BIT_ISAS),
       threads=st.integers(1, 3), rounding=st.sampled_from(["nearest", "chop"]), seed=st.integers(0, 1000))
def test_eight_bit_layouts_through_views_equal_the_numpy_path(spec, isa, threads, rounding, seed):
    """8-bit data on the INT8 kernels (quads: packed, sliding, partial and spread moves, the corrections kernel)
    and on the INT16 kernels, at every vector width the host runs: the blocked runtime's generated moves give
    Conv2d's numpy-laid-out results, for any stride, padding, dilation and odd extents (edge columns, last q's)."""
    op = Conv2d(spec, bits=8, isa=isa, rounding=rounding, threads=threads, seed=seed)
    x, w, dy = _operands(spec, seed)
    keys = tuple(StreamKey.of(seed, i) for i in range(3))
    y, dx, dw = _blocked_results(op, x, w, dy, threads, keys)
    qx, qw, qdy = (quantize(a, 8, rounding, seed=k) for a, k in zip((x, w, dy), keys))
    np.testing.assert_array_equal(y.nchw(threads), op.fprop(qx, qw))
    np.testing.assert_array_equal(dx.nchw(threads), op.bprop(qdy, qw))
    np.testing.assert_array_equal(dw, op.wtgrad(qx, qdy))


@pytest.mark.parametrize("spec", [ConvSpec(2, 64, 32, 9, 9, 3, 3, 1, 1, "3x3"), ConvSpec(2, 48, 80, 8, 7, 1, 1, 2, 0, "s2"),
                                  ConvSpec(2, 3, 16, 15, 15, 7, 7, 2, 3, "rgb")], ids=lambda s: s.name)
def test_stochastic_rounding_shares_one_key_per_tensor_and_ignores_threads(spec):
    """x, w and dy each quantized once under their key: the same mantissas in both passes that read them,
    equal to dfpgen.quantize with that key, whichever thread count runs it."""
    x, w, dy = _operands(spec, 3)
    keys = (StreamKey.of(1), StreamKey.of(2), StreamKey.of(3))
    results = []
    for threads in (1, 2, 3):
        op = Conv2d(spec, bits=12, rounding="stochastic", threads=threads)
        y, dx, dw = _blocked_results(op, x, w, dy, threads, keys)
        results.append((y.nchw(1), dx.nchw(1), dw))
    for later in results[1:]:
        for a, b in zip(results[0], later):
            np.testing.assert_array_equal(a, b)
    # The reference: the same keys, numbering elements in the blocked x and dy the kernels read from.
    op = Conv2d(spec, bits=12, rounding="stochastic", threads=1)
    xb = to_blocked(x, 1)
    qx = quantize(xb.data, 12, "stochastic", seed=keys[0])
    qw = quantize(w, 12, "stochastic", seed=keys[1])
    mant_x = qx.mant.transpose(0, 1, 4, 2, 3).reshape(spec.N, -1, spec.H, spec.W)[:, :spec.C]
    y_ref = op.fprop(DFPTensor(np.ascontiguousarray(mant_x), qx.exp, 12), qw)
    np.testing.assert_array_equal(results[0][0], y_ref)


def test_blocked_round_trip_and_padding_channels():
    for C in (1, 3, lanes(), lanes() + 5):
        x = np.random.default_rng(C).standard_normal((2, C, 5, 4)).astype(np.float32)
        b = to_blocked(x, 2)
        assert b.data.shape == (2, -(-C // lanes()), 5, 4, lanes()) and b.shape == x.shape
        flat = b.data.transpose(0, 1, 4, 2, 3).reshape(2, -1, 5, 4)
        assert not flat[:, C:].any()                      # padding channels are zero
        np.testing.assert_array_equal(b.nchw(3), x)
        assert b.maxabs == float(np.abs(x).max())


def test_a_stale_weight_hint_is_caught():
    spec = ConvSpec(1, 32, 16, 6, 6, 3, 3, 1, 1, "hint")
    x, w, _ = _operands(spec, 4)
    op = Conv2d(spec, bits=10, threads=2)
    right = run_blocked(op, passes.FPROP, to_blocked(x, 2), Measured(w)).nchw(1)
    for hint in (float(np.abs(w).max()) * 4, float(np.abs(w).max()) / 4):
        wrong = run_blocked(op, passes.FPROP, to_blocked(x, 2), Measured(w, hint, hint=True)).nchw(1)
        np.testing.assert_array_equal(wrong, right)


def test_a_hint_needs_only_the_right_exponent_and_is_replaced_by_the_measured_max():
    spec = ConvSpec(1, 32, 16, 6, 6, 3, 3, 1, 1, "hint")
    x, w, _ = _operands(spec, 4)
    op = Conv2d(spec, bits=10, threads=2)
    right = run_blocked(op, passes.FPROP, to_blocked(x, 2), Measured(w)).nchw(1)
    top = float(np.abs(w).max())
    guess = Measured(w, np.nextafter(np.float32(top), np.float32(0)).item() * 0.99, hint=True)   # same binade
    np.testing.assert_array_equal(run_blocked(op, passes.FPROP, to_blocked(x, 2), guess).nchw(1), right)
    assert guess.maxabs == top and not guess.hint


def test_a_hint_is_measured_where_the_moves_skip_elements():
    """WTGRAD's x of a 1x1 layer at stride 2 skips odd rows and columns: a hinted max sitting there is measured,
    not checked against the moved elements, so the exponent is the whole tensor's."""
    spec = ConvSpec(1, 16, 16, 6, 6, 1, 1, 2, 0, "skip")
    x, _, dy = _operands(spec, 8)
    x[0, 3, 1, 1] = 1000.0   # an odd row and column: never read by the kernel
    op = Conv2d(spec, bits=10, threads=1)
    want = run_blocked(op, passes.WTGRAD, Measured(x), Measured(dy))
    hinted = Measured(x, float(np.abs(x[:, :, ::2, ::2]).max()), hint=True)   # the max of what the kernel reads
    np.testing.assert_array_equal(run_blocked(op, passes.WTGRAD, hinted, Measured(dy)), want)
    assert hinted.maxabs == 1000.0 and not hinted.hint


def _channels_last(a: np.ndarray) -> np.ndarray:
    """The same values with NHWC (KRSC) memory: a dense array whose strides are not C order."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("spec", [ConvSpec(2, 20, 36, 7, 6, 3, 3, 1, 1, "odd"), ConvSpec(3, 64, 1000, 1, 1, 1, 1, 1, 0, "fc")],
                         ids=lambda s: s.name)
def test_channels_last_operands_and_weight_gradients_in_any_layout(spec, rounding):
    """Channels-last (dense, strided) x, w and dy are read in place, and WTGRAD writes dw into a channels-last
    out=: the values are the C-contiguous run's, with stochastic draws numbered by memory position (so
    equal to rounding the NHWC arrays)."""
    x, w, dy = _operands(spec, 8)
    op = Conv2d(spec, bits=11, rounding=rounding, threads=2)
    kx, kw, kdy = StreamKey(1, 2), StreamKey(3, 4), StreamKey(5, 6)
    x_cl, w_cl, dy_cl = _channels_last(x), _channels_last(w), _channels_last(dy)
    dw = _channels_last(np.zeros_like(w))
    y = run_blocked(op, passes.FPROP, Measured(x_cl), Measured(w_cl), (kx, kw)).nchw(1)
    dx = run_blocked(op, passes.BPROP, Measured(dy_cl), Measured(w_cl), (kdy, kw)).nchw(1)
    assert run_blocked(op, passes.WTGRAD, Measured(x_cl), Measured(dy_cl), (kx, kdy), out=dw) is dw
    if rounding == "stochastic":   # the NHWC arrays rounded as dfpgen.quantize rounds them, then the numpy path
        q = lambda a, key: quantize(np.ascontiguousarray(a.transpose(0, 2, 3, 1)), 11, rounding, seed=key)  # noqa
        x, w, dy = (DFPTensor(q(a, k).mant.transpose(0, 3, 1, 2).copy(), q(a, k).exp, 11)
                    for a, k in ((x, kx), (w, kw), (dy, kdy)))
    np.testing.assert_array_equal(y, op.fprop(x, w))
    np.testing.assert_array_equal(dx, op.bprop(dy, w))
    np.testing.assert_array_equal(dw, op.wtgrad(x, dy))


def test_bad_out_is_one_line():
    spec = ConvSpec(1, 16, 16, 4, 4, 3, 3, 1, 1, "out")
    op = Conv2d(spec, bits=10, threads=1)
    x, w, dy = _operands(spec, 5)
    with pytest.raises(ShapeError, match=r"out=: expected a dense, writeable float32 array of shape \(16, 16, 3, 3\)"):
        run_blocked(op, passes.WTGRAD, x, dy, out=np.zeros((16, 16, 3, 3), np.float64))
    with pytest.raises(ShapeError, match="out=: expected a dense"):
        run_blocked(op, passes.WTGRAD, x, dy, out=np.zeros((16, 16, 3, 6), np.float32)[..., ::2])
    with pytest.raises(ShapeError, match=r"out=: expected a dense, writeable float32 array of shape \(1, 16, 4, 4\)"):
        run_blocked(op, passes.FPROP, x, w, out=np.zeros((1, 16, 4, 5), np.float32))


def test_errors_are_one_line_and_name_the_tensor():
    spec = ConvSpec(1, 16, 16, 4, 4, 3, 3, 1, 1, "err")
    op = Conv2d(spec, bits=10, threads=1)
    x, w, _ = _operands(spec, 5)
    with pytest.raises(ShapeError, match="x: expected shape"):
        run_blocked(op, passes.FPROP, to_blocked(x[:, :8], 1), w)
    bad = x.copy()
    bad[0, 3, 1, 1] = np.nan
    with pytest.raises(NonFiniteError, match="NaN"):
        to_blocked(bad, 1)
    with pytest.raises(NonFiniteError, match="NaN"):   # a producer's max that missed the NaN: the quantizer sees it
        run_blocked(op, passes.FPROP, Blocked(to_blocked(x, 1).data * np.float32(np.nan), 16, 1.0), w)
    with pytest.raises(ShapeError, match="Blocked: data must be"):
        Blocked(np.zeros((1, 2, 4, 4, 3), np.float32), 16)
    grouped = Conv2d(ConvSpec(1, 16, 16, 4, 4, 3, 3, 1, 1, "g", 2), bits=10, threads=1)
    with pytest.raises(NumericsError, match="groups=2"):
        run_blocked(grouped, passes.FPROP, to_blocked(x, 1), w[:, :8])
    assert empty_blocked((1, 16, 2, 2)).shape[-1] == lanes()


@settings(max_examples=25, deadline=None)
@given(spec=general_specs(max_size=10, max_channels=3, groups=(1,)), whole_blocks=st.booleans(),
       isa=st.sampled_from(EIGHT_BIT_ISAS + resolve(None).isas("fp32")), wide=st.booleans(),
       tiny=st.booleans(), threads=st.integers(1, 3), seed=st.integers(0, 1000))
def test_results_written_into_a_channels_last_out(spec, whole_blocks, isa, wide, tiny, threads, seed):
    """FPROP and BPROP given a channels-last `out` write it: in place from a CHANNELS_LAST kernel when the
    channels are whole blocks of lanes, else through a conversion; an NCHW `out` through a conversion. All
    equal the blocked result bit for bit, for any geometry, ISA (INT8, INT16 and FP32 kernels) and thread
    count, and for results whose scale is no normal float32 (`tiny`: rescaled after the kernel)."""
    if whole_blocks:
        spec = dataclasses.replace(spec, C=spec.C * lanes(), K=spec.K * lanes())
    bits = 12 if wide and get_isa(isa).accepts_bits(12) else 8
    op = Conv2d(spec, bits=bits, precision=get_isa(isa).precision, isa=isa, threads=threads)
    x, w, dy = _operands(spec, seed)
    if tiny:
        x, w = x * np.float32(2.0**-70), w * np.float32(2.0**-70)
    for conv_pass, a, b in ((passes.FPROP, x, w), (passes.BPROP, dy, w)):
        want = run_blocked(op, conv_pass, Measured(a), Measured(b)).nchw(threads)
        N, C, H, W = want.shape
        for out in (np.full((N, H, W, C), np.nan, np.float32).transpose(0, 3, 1, 2),
                    np.full(want.shape, np.nan, np.float32)):
            assert run_blocked(op, conv_pass, Measured(a), Measured(b), out=out) is out
            np.testing.assert_array_equal(out, want)
        lanes_of_kernel = op.kernel(conv_pass).plan.lanes
        in_place = (conv_pass, ResultLayout.CHANNELS_LAST) in op._laid_out
        assert in_place == (C % lanes_of_kernel == 0)
        if in_place:
            assert op.kernel(conv_pass, ResultLayout.CHANNELS_LAST).plan.dst_shape == (N, H, W, C)


def test_a_channels_last_result_needs_whole_blocks_and_wtgrad_has_one_layout():
    spec = ConvSpec(1, 16, 20, 4, 4, 3, 3, 1, 1, "cl")
    op = Conv2d(spec, bits=12, threads=1)
    with pytest.raises(PlanError, match="result_layout='channels-last': 20 result channels are not a multiple of "
                                        "the 16 lanes"):
        op.kernel(passes.FPROP, ResultLayout.CHANNELS_LAST)
    with pytest.raises(PlanError, match="result_layout='channels-last': WTGRAD writes dw"):
        op.kernel(passes.WTGRAD, ResultLayout.CHANNELS_LAST)


def test_an_operand_converted_ahead_is_the_one_the_pass_would_convert():
    """convert_ahead's layout is what run_blocked converts at the pass (stochastic rounding on the same key), and
    run_blocked refuses one converted for another pass, role or op in one line."""
    spec = ConvSpec(2, 32, 48, 7, 7, 3, 3, 1, 1, "ahead")
    x, w, dy = _operands(spec, 7)
    op = Conv2d(spec, bits=12, rounding="stochastic", threads=2)
    key = StreamKey.of(1, 2)
    ahead = convert_ahead(op, passes.BPROP, "vec", Measured(w), key)
    assert isinstance(ahead, Converted)
    dx = run_blocked(op, passes.BPROP, Measured(dy), ahead, (StreamKey.of(3, 4), key)).nchw(2)
    fresh = Conv2d(spec, bits=12, rounding="stochastic", threads=1)
    np.testing.assert_array_equal(dx, run_blocked(fresh, passes.BPROP, Measured(dy), Measured(w),
                                                  (StreamKey.of(3, 4), key)).nchw(1))
    with pytest.raises(ShapeError, match="fprop vec: got an operand converted for bprop vec$"):
        run_blocked(op, passes.FPROP, Measured(x), ahead)
    with pytest.raises(ShapeError, match="bprop vec: got an operand converted for bprop vec of another layer"):
        run_blocked(fresh, passes.BPROP, Measured(dy), ahead)


@pytest.mark.parametrize("isa", resolve(None).isas("dfp16"))
def test_every_host_isa_including_narrower_lanes(isa):
    """A layer forced onto an ISA with fewer lanes than the runtime's layout (AVX-VNNI's 8 on an AVX-512
    host) still takes and returns the runtime's blocked tensors."""
    spec = ConvSpec(2, 40, 24, 7, 6, 3, 3, 1, 1, "isa")
    x, w, dy = _operands(spec, 6)
    op = Conv2d(spec, bits=13, isa=isa, threads=2)
    y, dx, dw = _blocked_results(op, x, w, dy, 2)
    assert y.lanes == lanes() and dx.lanes == lanes()
    np.testing.assert_array_equal(y.nchw(2), op.fprop(x, w))
    np.testing.assert_array_equal(dx.nchw(2), op.bprop(dy, w))
    np.testing.assert_array_equal(dw, op.wtgrad(x, dy))


@pytest.mark.parametrize("precision", ["dfp16", "fp32"])
def test_prepared_conversions_follow_each_operand_layout(precision):
    """The op keeps one prepared conversion per operand layout: new data, then channels-last operands, then
    NCHW again (Measured keeps an array's layout), each equal to a fresh op's results."""
    spec = ConvSpec(2, 24, 40, 7, 6, 3, 3, 1, 1, "cache")
    op = Conv2d(spec, precision=precision, threads=2)
    for seed, channels_last in ((1, False), (2, False), (3, True), (4, False)):
        x, w, dy = _operands(spec, seed)
        if channels_last:
            x, w, dy = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) for a in (x, w, dy))
        fresh = Conv2d(spec, precision=precision, threads=1)
        mx, mw, mdy = Measured(x), Measured(w), Measured(dy)
        y, dx, dw = (run_blocked(op, p, a, b) for p, a, b in ((passes.FPROP, mx, mw), (passes.BPROP, mdy, mw),
                                                                (passes.WTGRAD, mx, mdy)))
        np.testing.assert_array_equal(y.nchw(1), fresh.fprop(x, w))
        np.testing.assert_array_equal(dx.nchw(1), fresh.bprop(dy, w))
        np.testing.assert_array_equal(dw, fresh.wtgrad(x, dy))
    conversions = {key[:2] for key in op.move_programs}
    assert len(conversions) == 7   # six operands and WTGRAD's result
    assert len(op.move_programs) == 6 * 2 + 1   # two layouts of each operand, one of dw (C-contiguous), no more
