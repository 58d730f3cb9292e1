"""Groups, dilation, per-axis strides and asymmetric (also negative) padding in all three passes.

The kernels run on integer mantissas small enough that no FP32 flush rounds, so every pass must
equal an independent int64 reference exactly. The reference here is a direct gather/scatter over
filter taps (no dfpgen code); dfpgen.verification.reference, which `dfpgen conformance` compares against, is
itself checked against it and against PyTorch's conv2d and autograd where installed.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dfpgen
from dfpgen import ConvSpec
from dfpgen.core.dfp import DFPTensor
from dfpgen.core.target import host
from dfpgen.passes import get
from dfpgen.verification import reference

from strategies import general_specs

ISA = host().best_isa("dfp16")


def _rows(spec: ConvSpec, r: int, s: int, margin: int):
    """Index slices, in a buffer with `margin` zeros on every side, of the input pixels tap (r, s) reads."""
    h0, w0 = margin + r * spec.dh - spec.pt, margin + s * spec.dw - spec.pl
    return slice(h0, h0 + spec.sh * (spec.P - 1) + 1, spec.sh), slice(w0, w0 + spec.sw * (spec.Q - 1) + 1, spec.sw)


def _margin(spec: ConvSpec) -> int:
    return spec.pt + spec.pl + spec.R_extent + spec.S_extent + spec.sh * spec.P + spec.sw * spec.Q


def _groups(spec: ConvSpec):
    for g in range(spec.groups):
        yield slice(g * spec.Cg, (g + 1) * spec.Cg), slice(g * spec.Kg, (g + 1) * spec.Kg)


def _taps(x, spec: ConvSpec):
    """(group channel slices, r, s, the input pixels tap (r, s) reads for every output) over all taps."""
    m = _margin(spec)
    xp = np.zeros((spec.N, spec.C, spec.H + 2 * m, spec.W + 2 * m), np.int64)
    xp[:, :, m:m + spec.H, m:m + spec.W] = x
    for cs, ks in _groups(spec):
        for r in range(spec.R):
            for s in range(spec.S):
                rows, cols = _rows(spec, r, s, m)
                yield cs, ks, r, s, xp[:, cs, rows, cols]


def fprop_int(x, w, spec):
    """y[n,k,p,q] = sum over k's group c, r, s of x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] * w[k,c,r,s], int64."""
    y = np.zeros((spec.N, spec.K, spec.P, spec.Q), np.int64)
    for _, ks, r, s, window in _taps(x, spec):
        y[:, ks] += np.einsum("ncpq,kc->nkpq", window, w[ks, :, r, s].astype(np.int64))
    return y


def bprop_int(dy, w, spec):
    """dx: every output gradient scattered back through every tap, int64."""
    m = _margin(spec)
    dxp = np.zeros((spec.N, spec.C, spec.H + 2 * m, spec.W + 2 * m), np.int64)
    for cs, ks in _groups(spec):
        for r in range(spec.R):
            for s in range(spec.S):
                rows, cols = _rows(spec, r, s, m)
                dxp[:, cs, rows, cols] += np.einsum("nkpq,kc->ncpq", dy[:, ks].astype(np.int64),
                                                    w[ks, :, r, s].astype(np.int64))
    return dxp[:, :, m:m + spec.H, m:m + spec.W]


def wtgrad_int(x, dy, spec):
    """dw[k,c,r,s] = sum over n, p, q of dy[n,k,p,q] * x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl], int64."""
    dw = np.zeros((spec.K, spec.Cg, spec.R, spec.S), np.int64)
    for _, ks, r, s, window in _taps(x, spec):
        dw[ks, :, r, s] = np.einsum("nkpq,ncpq->kc", dy[:, ks].astype(np.int64), window)
    return dw


INT_REFERENCES = {"fprop": fprop_int, "bprop": bprop_int, "wtgrad": wtgrad_int}


def operands(spec: ConvSpec, rng, limit: int = 7, bits: int = 8):
    """Small DFP mantissas: every sum of |products| stays far below 2**24, so kernels must be exact."""
    make = lambda shape: DFPTensor(rng.integers(-limit, limit + 1, size=shape).astype(np.int16), 0, bits)
    x = make((spec.N, spec.C, spec.H, spec.W))
    w = make((spec.K, spec.Cg, spec.R, spec.S))
    dy = make((spec.N, spec.K, spec.P, spec.Q))
    return {"fprop": (x, w), "bprop": (dy, w), "wtgrad": (x, dy)}


def check_all_passes(spec: ConvSpec, seed: int = 0, threads: int = 2) -> None:
    rng = np.random.default_rng(seed)
    op = dfpgen.Conv2d(spec, bits=8, isa=ISA, threads=threads, eager=False)
    for pass_name, (a, b) in operands(spec, rng).items():
        got = op.run(pass_name, a, b)[0]
        want = INT_REFERENCES[pass_name](a.mant, b.mant, spec)
        assert got.shape == want.shape, (pass_name, spec.describe())
        np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=f"{pass_name}: {spec.describe()}")


NAMED = [
    ConvSpec(2, 4, 6, 8, 8, 3, 3, 2, 1, dilation=2),                                   # dilated, strided
    ConvSpec(2, 32, 13, 13, 13, 3, 3, 1, 0, pad_bottom=1),                             # asymmetric pad (tails)
    ConvSpec(2, 96, 96, 17, 17, 5, 5, 2, 1, groups=2, dilation=2),                     # grouped + dilated
    ConvSpec(2, 8, 8, 8, 5, 3, 3, 1, 1, pad_w=3, dilation_w=3),                        # per-axis dilation, pad
    ConvSpec(3, 16, 6, 1, 8, 1, 3, 1, 0, dilation_w=3, pad_right=-1),                  # negative pad: crops
    ConvSpec(2, 20, 20, 5, 5, 3, 3, 1, 1, groups=4),                                   # grouped, odd channels
    ConvSpec(2, 17, 17, 9, 9, 3, 3, 2, 1, groups=17),                                  # depthwise
    ConvSpec(2, 4, 6, 8, 8, 3, 3, 1, 1, stride_w=3, dilation_w=3),                     # per-axis stride
    ConvSpec(1, 3, 16, 23, 23, 5, 5, 2, 1, stride_w=3, dilation=2, pad_bottom=0, pad_right=0),
]


@pytest.mark.parametrize("spec", NAMED, ids=lambda s: s.describe().replace(" ", "_"))
def test_named_shapes_are_exact_in_every_pass(spec):
    check_all_passes(spec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(general_specs(max_size=12, max_channels=6, max_batch=3), st.integers(0, 2**16))
def test_hypothesis_shapes_are_exact_in_every_pass(spec, seed):
    check_all_passes(spec, seed)


@settings(max_examples=150, deadline=None)
@given(general_specs(max_size=14), st.integers(0, 2**16))
def test_float64_reference_equals_the_direct_reference(spec, seed):
    for pass_name, (a, b) in operands(spec, np.random.default_rng(seed), limit=1000, bits=16).items():
        np.testing.assert_array_equal(get(pass_name).reference(a.mant, b.mant, spec),
                                      INT_REFERENCES[pass_name](a.mant, b.mant, spec).astype(np.float64))


def test_threads_give_the_same_bits():
    spec = ConvSpec(3, 20, 24, 11, 13, 3, 3, 2, 1, groups=4, dilation=2, pad_right=0)
    rng = np.random.default_rng(5)
    ops = [dfpgen.Conv2d(spec, bits=16, isa=ISA, threads=t, eager=False) for t in (1, 2, 3)]
    for pass_name, (a, b) in operands(spec, rng, limit=2**15 - 1, bits=16).items():
        first, *others = [op.run(pass_name, a, b)[0] for op in ops]
        for other in others:
            np.testing.assert_array_equal(first, other)


def test_grouped_float_inputs_share_one_exponent():
    spec = ConvSpec(2, 8, 8, 6, 6, 3, 3, 1, 1, groups=2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    x[:, 4:] *= 1e-3                                   # the second group alone would get another exponent
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    op = dfpgen.Conv2d(spec, bits=16, isa=ISA, eager=False)
    xq, wq = dfpgen.quantize(x, 16), dfpgen.quantize(w, 16)
    got = op.fprop(x, w)
    exact = reference.fprop(xq.mant, wq.mant, spec) * 2.0 ** (xq.exp + wq.exp)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-6 * np.abs(exact).max())


def test_weights_of_a_grouped_layer_have_per_group_channels():
    spec = ConvSpec(1, 8, 8, 6, 6, 3, 3, 1, 1, groups=2)
    op = dfpgen.Conv2d(spec, bits=16, isa=ISA, eager=False)
    with pytest.raises(dfpgen.ShapeError, match=r"\(8, 4, 3, 3\)"):
        op.fprop(np.zeros((1, 8, 6, 6), np.float32), np.zeros((8, 8, 3, 3), np.float32))


def test_spec_validation_names_the_field():
    with pytest.raises(dfpgen.SpecError, match="K=6: must be a multiple of groups=4"):
        ConvSpec(1, 8, 6, 5, 5, 3, 3, groups=4)
    with pytest.raises(dfpgen.SpecError, match="dilated filter height 7"):
        ConvSpec(1, 8, 8, 5, 5, 3, 3, dilation=3)
    with pytest.raises(dfpgen.SpecError, match="pad_bottom=-5: must be an integer >= -4"):
        ConvSpec(1, 8, 8, 5, 5, 1, 1, pad_bottom=-5)
    assert ConvSpec(1, 8, 8, 5, 5, 3, 3, 2, 1, stride_w=2, pad_bottom=1) == ConvSpec(1, 8, 8, 5, 5, 3, 3, 2, 1)



@pytest.mark.parametrize("spec", NAMED, ids=lambda s: s.describe().replace(" ", "_"))
def test_float64_reference_matches_pytorch(torch, spec):
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((spec.N, spec.C, spec.H, spec.W))).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((spec.K, spec.Cg, spec.R, spec.S))).requires_grad_()
    y = F.conv2d(F.pad(x, (spec.pl, spec.pr, spec.pt, spec.pb)), w, stride=(spec.sh, spec.sw),
                 dilation=(spec.dh, spec.dw), groups=spec.groups)
    dy = torch.from_numpy(rng.standard_normal(tuple(y.shape)))
    y.backward(dy)
    np.testing.assert_allclose(reference.fprop(x.detach().numpy(), w.detach().numpy(), spec), y.detach().numpy(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(reference.bprop(dy.numpy(), w.detach().numpy(), spec), x.grad.numpy(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(reference.wtgrad(x.detach().numpy(), dy.numpy(), spec), w.grad.numpy(),
                               rtol=1e-10, atol=1e-10)
