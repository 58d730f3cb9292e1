"""BPROP kernels (dx = dL/dx) run end to end against the independent float64 references of
tests/oracle_backward.py (scatter-add over taps; derivation of the bounds there).

Contract checked (Conv2d.bprop(dy, w), numerics Numerics(bits_grad, bits_w)):
  * exact equality wherever bprop(|dym|, |wm|) < 2**24,
  * |dx - exact| <= gamma_{F+1} * bprop(|dym|, |wm|) * 2**(e_dy + e_w) elsewhere (F = plan.flushes),
  * FP32 kernels within gamma_{K*R*S} * bprop(|dy|, |w|) of float64.
Every test that executes a kernel is parametrized over the ISAs the host can run
(`dfpgen.core.target.host().isas(...)`): the file runs on an avx2-only Zen 3 as well as on a VNNI machine.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dfpgen
from dfpgen import Blocking, Conv2d, ConvSpec, DFPTensor, Numerics
from dfpgen.codegen.layout import aligned_empty
from dfpgen.core.catalog import select
from dfpgen.core.dfp import max_mantissa
from dfpgen.core.target import ISAS, host
from dfpgen.errors import PlanError, ShapeError, TargetError

import oracle_backward as ref
from refusals import assert_wider_operands_refused
from splits import assert_some_share_has_several_ranges, assert_split_bit_identical

PASS = "bprop"
HOST = host()
DFP_ISAS = HOST.isas("dfp16")
FP32_ISAS = HOST.isas("fp32")
# The host's best DFP ISA and, when it is another one, avx2 (the Zen 3 CI path).
SWEEP_ISAS = list(dict.fromkeys(DFP_ISAS[:1] + [i for i in DFP_ISAS if i == "avx2"]))
THREADS = 2

SWEEP_SPECS = [ConvSpec(*s, name=f"bshape{i}") for i, s in enumerate(ref.SWEEP_SHAPES)]
# bits 16 on every DFP ISA; bits 13 on the best one by default, on the others with -m slow.
FULL_RANGE_CASES = [pytest.param(isa, bits, marks=[pytest.mark.slow] if bits != 16 and isa != DFP_ISAS[0] else [])
                    for isa in DFP_ISAS for bits in (16, 13)]
# resnet50 runs on the best ISA by default and on avx2 (when that is another one) with -m slow.
CATALOG_ISAS = [pytest.param(isa, marks=[pytest.mark.slow] if i else []) for i, isa in enumerate(SWEEP_ISAS)]


# --------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=512)
def conv_op(spec: ConvSpec, isa: str, bits: int = 16, blocking: Blocking | None = None, threads: int = THREADS,
            precision: str = "dfp16", bits_w: int | None = None, bits_grad: int | None = None) -> Conv2d:
    """One op per configuration (compiling is the slow part of these tests)."""
    return Conv2d(spec, bits=bits, isa=isa, threads=threads, blocking={PASS: blocking}, precision=precision,
                  bits_w=bits_w, bits_grad=bits_grad)


def operands(rng, spec: ConvSpec, limit_dy: int, limit_w: int):
    dym = ref.random_mant(rng, (spec.N, spec.K, spec.P, spec.Q), limit_dy)
    wm = ref.random_mant(rng, (spec.K, spec.C, spec.R, spec.S), limit_w)
    return dym, wm


def exact(dym, wm, spec):
    return ref.bprop_int(dym, wm, spec.H, spec.W, spec.stride, spec.pad)


def absref(dym, wm, spec):
    return ref.bprop_abs(dym, wm, spec.H, spec.W, spec.stride, spec.pad)


def small_limit(spec: ConvSpec) -> int:
    return ref.small_mant_limit(ref.bprop_terms(spec.K, spec.R, spec.S))


def check_dfp(dx: np.ndarray, dym, wm, spec: ConvSpec, flushes: int, scale_exp: int, what: str = "") -> None:
    """Exact where bprop(|dy|,|w|) < 2**24, within the flush bound elsewhere."""
    assert dx.dtype == np.float32 and dx.shape == (spec.N, spec.C, spec.H, spec.W), (dx.dtype, dx.shape)
    want_exact = exact(dym, wm, spec)
    absc = absref(dym, wm, spec)
    want = ref.exact_to_f32(want_exact, scale_exp)
    bad = (absc < 2**24) & (dx != want)
    assert not bad.any(), (
        f"{what} {spec.describe()}: {int(bad.sum())} dx not exact where bprop(|dy|,|w|) < 2**24; first at "
        f"{tuple(int(i) for i in np.argwhere(bad)[0])}: got {dx[bad][0]!r}, want {want[bad][0]!r}")
    err = np.abs(dx.astype(np.float64) - np.ldexp(want_exact, scale_exp))
    bound = ref.dfp_bound(absc, flushes, scale_exp)
    over = err > bound
    assert not over.any(), (
        f"{what} {spec.describe()}: {int(over.sum())} dx past the flush bound (F={flushes}); first at "
        f"{tuple(int(i) for i in np.argwhere(over)[0])}: got {dx[over][0]!r}, want "
        f"{np.ldexp(want_exact, scale_exp)[over][0]!r}, bound {bound[over][0]:.3g}")


# ----------------------------------------------------------------- the reference itself vs torch


@pytest.mark.parametrize("spec", SWEEP_SPECS[::3], ids=ref.shape_id)
def test_reference_matches_torch_autograd(torch, spec):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W))
    w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S))
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(xt, torch.tensor(w), stride=spec.stride, padding=spec.pad).backward(torch.tensor(dy))
    np.testing.assert_allclose(ref.bprop_f64(dy, w, spec.H, spec.W, spec.stride, spec.pad), xt.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- crafted shapes and mantissas


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", SWEEP_SPECS, ids=ref.shape_id)
def test_small_mantissas_exact(spec, isa):
    """Mantissas small enough that bprop(|dy|,|w|) < 2**24 everywhere: dx is exact, bit for bit."""
    rng = np.random.default_rng([sum(spec.shape_key()), 1])
    limit = small_limit(spec)
    dym, wm = operands(rng, spec, limit, limit)
    edy, ew = int(rng.integers(-14, 7)), int(rng.integers(-14, 7))
    op = conv_op(spec, isa)
    dx = op.bprop(DFPTensor(dym, edy), DFPTensor(wm, ew))
    assert (absref(dym, wm, spec) < 2**24).all()
    np.testing.assert_array_equal(dx, ref.exact_to_f32(exact(dym, wm, spec), edy + ew))


@pytest.mark.parametrize("isa, bits", FULL_RANGE_CASES)
@pytest.mark.parametrize("spec", SWEEP_SPECS, ids=ref.shape_id)
def test_full_range_mantissas_bound(spec, isa, bits):
    """Full-range `bits`-bit mantissas: exact where small, within the flush bound elsewhere."""
    rng = np.random.default_rng([sum(spec.shape_key()), bits])
    top = ref.max_mant(bits)
    dym, wm = operands(rng, spec, top, top)
    dym.flat[0], wm.flat[-1] = -top, top
    edy, ew = int(rng.integers(-24, 5)), int(rng.integers(-20, 5))
    op = conv_op(spec, isa, bits)
    plan = op.kernel(PASS).plan
    assert (plan.numerics.bits_x, plan.numerics.bits_w) == (bits, bits)
    assert plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(bits, bits)
    dx = op.bprop(DFPTensor(dym, edy, bits), DFPTensor(wm, ew, bits))
    check_dfp(dx, dym, wm, spec, plan.flushes, edy + ew, f"{isa} bits {bits}")


def test_sweep_covers_the_edge_cases():
    """The sweep holds what the brief asks for (guards against someone trimming SWEEP_SHAPES)."""
    specs = SWEEP_SPECS
    assert {s.stride for s in specs} >= {1, 2, 3, 4} and {s.pad for s in specs} >= {0, 1, 2, 3}
    assert {s.R for s in specs} >= set(range(1, 12)) and {s.S for s in specs} >= set(range(1, 12))
    assert any(s.R != s.S for s in specs) and {s.N for s in specs} >= {1, 3}
    assert {s.C for s in specs} >= {1, 3, 5, 17, 100} and {s.K for s in specs} >= {1, 3, 5, 17, 100}
    assert any(s.R < s.stride for s in specs) and any(s.pad > 0 and s.stride > 1 for s in specs)
    assert any(s.P == 1 for s in specs) and any(s.Q == 1 for s in specs) and any(s.Q % 2 for s in specs)
    assert any((s.H + 2 * s.pad - s.R) % s.stride for s in specs)       # rows no window reaches


# ------------------------------------------------------------------------- resnet50, every layer


def _catalog_specs() -> list[ConvSpec]:
    seen = {}
    for spec in select("resnet50", batch=1):
        seen.setdefault(spec.shape_key(), spec)
    return list(seen.values())


CATALOG_SPECS = _catalog_specs()


@pytest.mark.parametrize("isa", CATALOG_ISAS)
@pytest.mark.parametrize("spec", CATALOG_SPECS, ids=lambda s: s.name.replace("/", "."))
def test_resnet50_layer(spec, isa):
    """Every distinct resnet50 layer shape (N=1, full size, the default BPROP blocking): exact with small
    mantissas, within the flush bound with full-range 16-bit ones. (FPROP, compiled by the constructor,
    gets a fixed blocking: its cost-model search is not what this file tests and takes seconds.)"""
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS, blocking={"fprop": Blocking()})
    plan = op.kernel(PASS).plan
    rng = np.random.default_rng(len(spec.name) * 7919 + spec.C)
    limit = small_limit(spec)
    dym, wm = operands(rng, spec, limit, limit)
    dx = op.bprop(DFPTensor(dym, -3), DFPTensor(wm, -5))
    np.testing.assert_array_equal(dx, ref.exact_to_f32(exact(dym, wm, spec), -8))
    dym, wm = operands(rng, spec, 32767, 32767)
    dx = op.bprop(DFPTensor(dym, -10), DFPTensor(wm, -12))
    check_dfp(dx, dym, wm, spec, plan.flushes, -22, isa)


# ------------------------------------------------------------------------ hypothesis: any shape


@st.composite
def spec_and_blocking(draw):
    stride = draw(st.integers(1, 4))
    pad = draw(st.integers(0, 3))
    H = draw(st.integers(1, 12))
    W = draw(st.integers(1, 12))
    R = draw(st.integers(1, min(7, H + 2 * pad)))
    S = draw(st.integers(1, min(7, W + 2 * pad)))
    spec = ConvSpec(draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, 40)), H, W, R, S,
                    stride, pad)
    cpb = draw(st.one_of(st.none(), st.integers(1, 20)))
    unroll = None if cpb is None else draw(st.one_of(
        st.none(), st.sampled_from([d for d in range(1, cpb + 1) if cpb % d == 0])))
    blocking = Blocking(kv=draw(st.integers(1, 4)), wb=draw(st.integers(1, 9)), hb=draw(st.integers(1, 3)),
                        cpb=cpb, unroll=unroll, order=draw(st.sampled_from(["nk", "kn", "np"])))
    bits = draw(st.sampled_from([16, 14, 12, 8]))
    small = draw(st.booleans())
    return spec, blocking, bits, small


@pytest.mark.parametrize("isa", DFP_ISAS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(case=spec_and_blocking(), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_shapes_and_blockings(isa, case, seed):
    spec, blocking, bits, small = case
    try:
        op = Conv2d(spec, bits=bits, isa=isa, threads=THREADS, blocking={PASS: blocking})
        plan = op.kernel(PASS).plan
    except PlanError:
        assume(False)
    assert plan.cpb % plan.unroll == 0 and plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(bits, bits)
    rng = np.random.default_rng(seed)
    top = ref.max_mant(bits)
    limit = min(top, small_limit(spec)) if small else top
    dym, wm = operands(rng, spec, limit, limit)
    dx = op.bprop(DFPTensor(dym, 1, bits), DFPTensor(wm, -3, bits))
    check_dfp(dx, dym, wm, spec, plan.flushes, -2, f"{isa} {plan.blocking.describe()} bits {bits}")


# ------------------------------------------------------------------- float inputs against torch

FLOAT_SPECS = [ConvSpec(2, 17, 20, 9, 11, 3, 3, 1, 1), ConvSpec(1, 64, 33, 14, 14, 3, 3, 2, 1),
               ConvSpec(1, 3, 16, 23, 23, 11, 11, 4, 2), ConvSpec(3, 96, 5, 5, 5, 1, 1, 2, 0)]


def torch_grads(torch, x, w, dy, spec):
    """dx, dw of torch.nn.functional.conv2d by autograd, in float64 on the (float32) inputs."""
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, np.float64), requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, stride=spec.stride, padding=spec.pad)
    y.backward(torch.tensor(np.asarray(dy, np.float64)))
    return xt.grad.numpy(), wt.grad.numpy()


def float_operands(rng, spec: ConvSpec):
    x = (rng.standard_normal((spec.N, spec.C, spec.H, spec.W)) * 3).astype(np.float32)
    w = (rng.standard_normal((spec.K, spec.C, spec.R, spec.S)) * 0.05).astype(np.float32)
    dy = (rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)) * 1e-3).astype(np.float32)
    w.flat[0] = -np.abs(w).max() * 1.5          # a negative peak
    return x, w, dy


@pytest.mark.parametrize("bits_grad, grad_rounding", [(16, None), (12, None), (12, "stochastic")])
@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", FLOAT_SPECS, ids=ref.shape_id)
def test_float_inputs_vs_torch(torch, spec, isa, bits_grad, grad_rounding):
    """dy and w are quantized (dy with bits_grad / grad_rounding, w with bits_w = 14), then convolved.
    With q(.) the quantized values, bprop(dy, w) - bprop(q(dy), q(w)) = bprop(dy - q(dy), w) +
    bprop(q(dy), w - q(w)), so |dx - dx_torch| <= bprop(|dy - q(dy)|, |w|) + bprop(|q(dy)|, |w - q(w)|)
    + the flush bound on the mantissas + float64 slack. Nearest rounding: the quantization error is
    known exactly (reference quantizer); stochastic: |dy - q(dy)| < 2**e_dy."""
    rng = np.random.default_rng(bits_grad)
    x, w, dy = float_operands(rng, spec)
    bits_w = 14
    op = Conv2d(spec, bits=16, bits_w=bits_w, bits_grad=bits_grad, grad_rounding=grad_rounding, isa=isa,
                threads=THREADS, seed=7)
    plan = op.kernel(PASS).plan
    assert (plan.numerics.bits_x, plan.numerics.bits_w) == (bits_grad, bits_w)
    dx = op.bprop(dy, w)
    want, _ = torch_grads(torch, x, w, dy, spec)
    wqm, ew = ref.quantize_ref(w, bits_w)
    wq = ref.dequant(wqm, ew)
    edy = ref.quant_exp(dy, bits_grad)
    bp = functools.partial(ref.bprop_f64, H=spec.H, W=spec.W, stride=spec.stride, pad=spec.pad)
    if grad_rounding is None:
        dyqm, edy2 = ref.quantize_ref(dy, bits_grad)
        assert edy2 == edy
        # the op quantized exactly like the reference: the reference's DFP tensors give the same bits
        np.testing.assert_array_equal(dx, op.bprop(DFPTensor(dyqm, edy, bits_grad), DFPTensor(wqm, ew, bits_w)))
        dyq = ref.dequant(dyqm, edy)
        dy_err = np.abs(dy - dyq)
        assert np.all(dy_err <= np.ldexp(1.0, edy))
    else:
        dy_err = np.full(dy.shape, np.ldexp(1.0, edy))     # stochastic rounding: less than one ulp
        dyq = np.abs(dy.astype(np.float64)) + dy_err          # |q(dy)| <= |dy| + ulp
        dyqm = np.minimum(np.ceil(np.ldexp(dyq, -edy)), ref.max_mant(bits_grad)).astype(np.int64)
    assert np.all(np.abs(w - wq) <= np.ldexp(1.0, ew))
    quant = bp(dy_err, np.abs(w)) + bp(np.abs(dyq), np.abs(w - wq))
    flush = ref.dfp_bound(absref(np.abs(dyqm).astype(np.int64), wqm, spec), plan.flushes, edy + ew)
    slack = 1e-12 * bp(np.abs(dy), np.abs(w)) + 1e-30
    err = np.abs(dx - want)
    bound = quant + flush + slack
    assert np.all(err <= bound), float(np.max(err / bound))
    # the bound says something: far below dx's magnitude
    assert float(np.max(quant + flush)) < (0.05 if bits_grad >= 12 else 0.3) * float(np.max(np.abs(want)))


# ------------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_finite_differences_dx(isa):
    """L(x, w) = sum(conv(x, w) * G): dL/dx = bprop(G, w). Compare Conv2d.bprop (bits 16) with
    central differences of L in float64 at step h = 2**-6 (x +- h is exact in float64).

    Tolerance: L is linear in x, so the central difference has no truncation error; its float64
    error is at most (gamma64_n * (A(x+h) + A(x-h)) + u64 * |L+ - L-|) / (2h), with A = sum(conv(|x|,
    |w|) * |G|) and n = C*R*S + 1 + N*K*P*Q the longest chain of float64 operations in L. dfpgen's dx
    differs from the true gradient by the quantization bound (as in test_float_inputs_vs_torch) plus
    the flush bound."""
    spec = ConvSpec(2, 3, 4, 6, 5, 3, 2, 2, 1)
    rng = np.random.default_rng(42)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    w = (rng.standard_normal((spec.K, spec.C, spec.R, spec.S)) * 0.3).astype(np.float32)
    G = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS)
    dx = op.bprop(G, w)
    h = 2.0**-6
    n = spec.C * spec.R * spec.S + 1 + spec.N * spec.K * spec.P * spec.Q
    fd = np.zeros(x.shape)
    fd_err = np.zeros(x.shape)
    x64 = x.astype(np.float64)
    for i in np.ndindex(x.shape):
        xp, xm = x64.copy(), x64.copy()
        xp[i] += h
        xm[i] -= h
        lp, lm = ref.loss_f64(xp, w, G, spec.stride, spec.pad), ref.loss_f64(xm, w, G, spec.stride, spec.pad)
        fd[i] = (lp - lm) / (2 * h)
        a = (ref.loss_f64(np.abs(xp), np.abs(w), np.abs(G), spec.stride, spec.pad)
             + ref.loss_f64(np.abs(xm), np.abs(w), np.abs(G), spec.stride, spec.pad))
        fd_err[i] = (ref.gamma(n, ref.U64) * a * 1.01 + ref.U64 * abs(lp - lm)) / (2 * h)
    Gqm, eg = ref.quantize_ref(G, 16)
    wqm, ew = ref.quantize_ref(w, 16)
    Gq, wq = ref.dequant(Gqm, eg), ref.dequant(wqm, ew)
    bp = functools.partial(ref.bprop_f64, H=spec.H, W=spec.W, stride=spec.stride, pad=spec.pad)
    quant = bp(np.abs(G - Gq), np.abs(w)) + bp(np.abs(Gq), np.abs(w - wq))
    flush = ref.dfp_bound(absref(Gqm, wqm, spec), op.kernel(PASS).plan.flushes, eg + ew)
    tol = quant + flush + fd_err + 1e-12 * bp(np.abs(G), np.abs(w))
    err = np.abs(dx - fd)
    assert np.all(err <= tol), float(np.max(err / tol))
    assert float(np.max(tol)) < 1e-3 * float(np.max(np.abs(fd)))     # a meaningful tolerance


# ---------------------------------------------------------------------------- backward()


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_backward_quantizes_dy_once(isa):
    """backward(x, dy, w) quantizes dy once (stochastic rounding here) and feeds that one DFP tensor to
    both passes: replaying the op's random stream gives the same dy and the same (dx, dw)."""
    spec = ConvSpec(2, 5, 7, 6, 7, 3, 3, 2, 1)
    rng = np.random.default_rng(3)
    x, w, dy = float_operands(rng, spec)
    kw = dict(bits=14, bits_grad=10, grad_rounding="stochastic", isa=isa, threads=THREADS, seed=123)
    dx, dw = Conv2d(spec, **kw).backward(x, dy, w)
    twin = Conv2d(spec, **kw)
    dyq = twin.quantize(dy, "grad", "dy")
    assert dyq.bits == 10
    np.testing.assert_array_equal(dx, twin.bprop(dyq, w))
    np.testing.assert_array_equal(dw, twin.wtgrad(x, dyq))
    # and with DFPTensor inputs backward is exactly bprop + wtgrad
    op = conv_op(spec, isa)
    xm, dym, wm = (ref.random_mant(rng, s, 30000) for s in [(2, 5, 6, 7), (2, 7, 3, 4), (7, 5, 3, 3)])
    X, DY, Wt = DFPTensor(xm, -2), DFPTensor(dym, -20), DFPTensor(wm, -9)
    dx, dw = op.backward(X, DY, Wt)
    np.testing.assert_array_equal(dx, op.bprop(DY, Wt))
    np.testing.assert_array_equal(dw, op.wtgrad(X, DY))


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_reused_dfp_tensors(isa):
    """A DFPTensor passed again (weights across micro-batches, dy to both backward passes) gives the same
    results as a fresh one: its cached layout belongs to the right pass and role."""
    spec = ConvSpec(2, 17, 20, 7, 9, 3, 3, 2, 1)
    op = conv_op(spec, isa)
    rng = np.random.default_rng(17)
    wm = ref.random_mant(rng, (spec.K, spec.C, spec.R, spec.S), 32767)
    Wt = DFPTensor(wm, -7)
    for step in range(3):
        dym = ref.random_mant(rng, (spec.N, spec.K, spec.P, spec.Q), 32767)
        xm = ref.random_mant(rng, (spec.N, spec.C, spec.H, spec.W), 32767)
        DY, X = DFPTensor(dym, -20 + step), DFPTensor(xm, -3)
        dx = op.bprop(DY, Wt)
        check_dfp(dx, dym, wm, spec, op.kernel(PASS).plan.flushes, -27 + step, f"{isa} step {step}")
        np.testing.assert_array_equal(dx, op.bprop(DFPTensor(dym.copy(), -20 + step), DFPTensor(wm.copy(), -7)))
        dw = op.wtgrad(X, DY)
        np.testing.assert_array_equal(dw, op.wtgrad(DFPTensor(xm.copy(), -3), DFPTensor(dym.copy(), -20 + step)))
        np.testing.assert_array_equal(op.bprop(DY, Wt), dx)


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_mixed_bits_per_operand(isa):
    """bits_grad applies to dy and bits_w to w: the BPROP kernel's numerics are (bits_grad, bits_w), its
    chain the safe chain of that pair, and results stay within the bound at those widths."""
    spec = ConvSpec(2, 17, 300, 5, 6, 3, 3, 1, 1)
    op = conv_op(spec, isa, bits=16, bits_w=13, bits_grad=11)
    plan = op.kernel(PASS).plan
    assert (plan.numerics.bits_x, plan.numerics.bits_w) == (11, 13)
    assert plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(11, 13)
    rng = np.random.default_rng(9)
    dym, wm = operands(rng, spec, ref.max_mant(11), ref.max_mant(13))
    dx = op.bprop(DFPTensor(dym, -30, 11), DFPTensor(wm, -6, 13))
    check_dfp(dx, dym, wm, spec, plan.flushes, -36, isa)


# -------------------------------------------------------------------- run(), max-abs, scaling


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("exps", [(-3, -4), (-70, -70), (40, 50)], ids=["normal", "tiny_scale", "big_scale"])
def test_run_maxabs_and_scale(isa, exps):
    """run('bprop') returns (dx, max|dx|); scales 2**(e_dy+e_w) that are no normal float32 are applied
    exactly after the kernel."""
    spec = ConvSpec(3, 5, 33, 5, 13, 3, 2, 2, 1)
    rng = np.random.default_rng(5)
    dym, wm = operands(rng, spec, 2000, 2000)
    op = conv_op(spec, isa)
    dx, m = op.run(PASS, DFPTensor(dym, exps[0]), DFPTensor(wm, exps[1]))
    assert isinstance(m, float) and m == float(np.max(np.abs(dx)))
    check_dfp(dx, dym, wm, spec, op.kernel(PASS).plan.flushes, sum(exps), isa)
    dx, m = op.run(PASS, DFPTensor(-np.abs(dym), 0), DFPTensor(np.abs(wm), 0))     # every dx <= 0
    assert m == float(np.max(np.abs(dx))) == -float(np.min(dx))
    dx, m = op.run(PASS, DFPTensor(dym, 0), DFPTensor(np.zeros_like(wm), 0))
    assert m == 0.0 and not np.any(dx)


# --------------------------------------------------------------------------------------- threads


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
@pytest.mark.parametrize("spec", [ConvSpec(3, 100, 20, 13, 11, 3, 3, 2, 1), ConvSpec(1, 3, 5, 4, 4, 3, 3, 1, 0)],
                         ids=ref.shape_id)
def test_threads_bit_identical(spec, isa):
    rng = np.random.default_rng(11)
    precision = ISAS[isa].precision
    if precision == "fp32":
        dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
        w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S)).astype(np.float32)
    else:
        dym, wm = operands(rng, spec, 32767, 32767)
        dy, w = DFPTensor(dym, -8), DFPTensor(wm, -9)
    first = Conv2d(spec, bits=16, isa=isa, threads=1, precision=precision)   # full-range 16-bit mantissas
    blocking = first.kernel(PASS).plan.blocking          # the same kernel for every thread count
    results = [first.run(PASS, dy, w)]
    for threads in (2, 3, 7):
        op = Conv2d(spec, bits=16, isa=isa, threads=threads, precision=precision, blocking={PASS: blocking})
        assert op.kernel(PASS).plan.items >= 1
        results.append(op.run(PASS, dy, w))
    for dx, m in results[1:]:
        assert dx.tobytes() == results[0][0].tobytes() and m == results[0][1]


# 1x1 layers the thread split cuts by image rows, filter blocks or (WTGRAD) input-channel chunks: K not a multiple
# of 16, few pixels, stride 2, a fully-connected layer.
SPLIT_1X1 = [ConvSpec(3, 40, 24, 7, 5, 1, 1, 1, 0), ConvSpec(2, 33, 17, 5, 5, 1, 1, 2, 0),
             ConvSpec(2, 200, 96, 4, 4, 1, 1, 2, 0), ConvSpec(4, 64, 64, 14, 14, 1, 1, 1, 0),
             ConvSpec(4, 520, 260, 1, 1, 1, 1, 1, 0)]


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
@pytest.mark.parametrize("spec", SPLIT_1X1, ids=ref.shape_id)
def test_1x1_split_bit_identical_at_any_thread_count(spec, isa):
    """The thread split (image rows of every phase x filter blocks) at 1, 2, 3 and 5 threads, with each
    thread count's default blocking and a fixed one: full-range 14-bit mantissas give the same bits every
    time, into an output filled with NaN first, exact where the reference is below 2**24 and within the
    flush bound elsewhere."""
    rng = np.random.default_rng([sum(spec.shape_key()), 21])
    dym, wm = operands(rng, spec, 8191, 8191)
    assert_split_bit_identical(spec, isa, PASS, dym, wm,
                               lambda got, flushes, what: check_dfp(got, dym, wm, spec, flushes, -12, what))


def test_1x1_split_cases_include_shares_of_several_ranges():
    """The cases above run shares of several item ranges (boxes that are not contiguous in item order)."""
    assert_some_share_has_several_ranges(SPLIT_1X1, DFP_ISAS[0], PASS)


# ----------------------------------------------------------------------- worst-case overflow


def worst_operands(spec: ConvSpec, bits_dy: int, bits_w: int, pattern: str, rng):
    """All-maximum mantissas with signs that make every product of an output the same sign, so |dx|
    is as large as it can be: dy[n,k] = a(n) b(k) M, w[k,c] = b(k) g(c) M -> products a(n) g(c) M*M.
    'max': all +; 'min': dy negative (every product -M*M); 'mixed': random signs a, b, g."""
    Md, Mw = ref.max_mant(bits_dy), ref.max_mant(bits_w)
    a, b, g = (np.ones(n, np.int64) for n in (spec.N, spec.K, spec.C))
    if pattern == "min":
        a = -a
    elif pattern == "mixed":
        a, b, g = (rng.choice([-1, 1], n) for n in (spec.N, spec.K, spec.C))
    dym = (a[:, None, None, None] * b[None, :, None, None] * Md * np.ones((1, 1, spec.P, spec.Q), np.int64))
    wm = (b[:, None, None, None] * g[None, :, None, None] * Mw * np.ones((1, 1, spec.R, spec.S), np.int64))
    return dym.astype(np.int16), wm.astype(np.int16)


# 1x1, stride 1, pad 0, K a multiple of every 2*cpb: every step of the reduction is a full one, so with
# uniform operands each chunk sums (2 * unroll * steps_per_flush) equal products, the last one the rest.
UNIFORM_SPEC = ConvSpec(1, 17, 1536, 3, 3, 1, 1, 1, 0)
# A general shape for the bound: stride 2, pad 1, 3x3, odd channel counts, zero dy margins.
GENERAL_SPEC = ConvSpec(2, 5, 600, 7, 7, 3, 3, 2, 1)
WORST_BITS = [(16, 16), (15, 15), (13, 13), (12, 12), (12, 16)]


@pytest.mark.parametrize("pattern", ["max", "min", "mixed"])
@pytest.mark.parametrize("bits", WORST_BITS, ids=lambda b: f"dy{b[0]}w{b[1]}")
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_worst_case_overflow_exact(isa, bits, pattern):
    """overflow='exact' with all-maximum mantissas: the result is exactly the FP32 sum of the exact INT32
    chunk sums (no wrap, no saturation), for several flushes per output."""
    bits_dy, bits_w = bits
    spec = UNIFORM_SPEC
    op = conv_op(spec, isa, bits=16, bits_w=bits_w, bits_grad=bits_dy)
    plan = op.kernel(PASS).plan
    L = ref.safe_chain_ref(bits_dy, bits_w)
    assert plan.steps_per_flush * plan.unroll <= L and plan.flushes > 1
    rng = np.random.default_rng(len(pattern))
    dym, wm = worst_operands(spec, bits_dy, bits_w, pattern, rng)
    e = (-5, -7)
    dx = op.bprop(DFPTensor(dym, e[0], bits_dy), DFPTensor(wm, e[1], bits_w))
    want = exact(dym, wm, spec)
    product = ref.max_mant(bits_dy) * ref.max_mant(bits_w)
    assert np.all(np.abs(want) == spec.K * product)
    per_chunk = 2 * plan.unroll * plan.steps_per_flush
    counts = [per_chunk] * (spec.K // per_chunk) + ([spec.K % per_chunk] if spec.K % per_chunk else [])
    assert len(counts) == plan.flushes
    assert spec.K * product > 2**31               # one INT32 chain could not hold an output
    sign = np.sign(want).astype(np.int64)
    model = ref.flush_sum([sign * c * product for c in counts], sum(e))
    np.testing.assert_array_equal(dx, model)
    check_dfp(dx, dym, wm, spec, plan.flushes, sum(e), isa)


@pytest.mark.parametrize("pattern", ["max", "min", "mixed"])
@pytest.mark.parametrize("bits", WORST_BITS, ids=lambda b: f"dy{b[0]}w{b[1]}")
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_worst_case_overflow_general_shape(isa, bits, pattern):
    """All-maximum mantissas on a strided, padded 3x3 layer: within the flush bound, which is far below
    2**31 * scale, so a single wrapped INT32 chunk could not pass."""
    bits_dy, bits_w = bits
    spec = GENERAL_SPEC
    op = conv_op(spec, isa, bits=16, bits_w=bits_w, bits_grad=bits_dy)
    plan = op.kernel(PASS).plan
    assert plan.flushes > 1
    dym, wm = worst_operands(spec, bits_dy, bits_w, pattern, np.random.default_rng(2))
    dx = op.bprop(DFPTensor(dym, 0, bits_dy), DFPTensor(wm, 0, bits_w))
    absc = absref(dym, wm, spec)
    assert float(np.max(ref.dfp_bound(absc, plan.flushes))) < 2**30
    assert float(np.max(absc)) > 2**31                           # one INT32 chain could not hold it
    check_dfp(dx, dym, wm, spec, plan.flushes, 0, isa)


# ------------------------------------------------------------------------ every output written


POISON_SPECS = [ConvSpec(3, 17, 33, 7, 9, 3, 3, 1, 1), ConvSpec(1, 5, 100, 13, 13, 1, 1, 2, 0),
                ConvSpec(2, 3, 7, 11, 17, 2, 3, 3, 1), ConvSpec(1, 33, 16, 8, 8, 2, 2, 4, 0)]
POISON_BLOCKINGS = [None, Blocking(kv=3, wb=3, hb=2), Blocking(kv=1, wb=1, hb=1, order="kn"),
                    Blocking(kv=2, wb=4, hb=3, cpb=3, unroll=1), Blocking(kv=2, wb=2, hb=2, order="np")]


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
@pytest.mark.parametrize("blocking", POISON_BLOCKINGS, ids=lambda b: b.describe() if b else "default")
@pytest.mark.parametrize("spec", POISON_SPECS, ids=ref.shape_id)
def test_kernel_writes_every_output(spec, blocking, isa):
    """Kernel.run on a NaN-filled output: every element is written, pixels of phases without taps (R <
    stride) and the channel padding lanes with zeros."""
    precision = ISAS[isa].precision
    try:
        kernel = dfpgen.compile(spec, PASS, Numerics(), isa=isa, blocking=blocking)
    except PlanError:
        pytest.skip("blocking does not fit this ISA's register file")
    plan = kernel.plan
    rng = np.random.default_rng(3)
    dym, wm = operands(rng, spec, 30, 30)
    to_src, to_vec, from_dst = plan.conv_pass.to_src, plan.conv_pass.to_vec, plan.conv_pass.from_dst
    out = aligned_empty(plan.dst_shape, np.float32)
    out.fill(np.nan)
    a, b = (dym, wm) if precision == "dfp16" else (dym.astype(np.float32), wm.astype(np.float32))
    m = kernel.run(to_src(a, plan), to_vec(b, plan), out, 1.0, threads=THREADS)
    assert not np.isnan(out).any(), f"{int(np.isnan(out).sum())} of {out.size} outputs never written"
    dx = from_dst(out, plan)
    np.testing.assert_array_equal(dx, exact(dym, wm, spec).astype(np.float32))
    N, CB, H, W, lanes = plan.dst_shape
    assert not np.any(out.transpose(0, 1, 4, 2, 3).reshape(N, CB * lanes, H, W)[:, spec.C:])
    assert m == float(np.max(np.abs(dx)))


# ----------------------------------------------------------------------------------- FP32 path

FP32_SPECS = [ConvSpec(2, 17, 20, 9, 11, 3, 3, 1, 1), ConvSpec(1, 64, 33, 14, 14, 3, 3, 2, 1),
              ConvSpec(1, 3, 16, 23, 23, 11, 11, 4, 2), ConvSpec(3, 96, 5, 5, 5, 1, 1, 2, 0),
              ConvSpec(1, 1, 1, 1, 1, 1, 1, 1, 0), ConvSpec(1, 7, 130, 6, 6, 10, 2, 1, 2)]


@pytest.mark.parametrize("blocking", [None, Blocking(kv=1, wb=3, hb=2, cpb=5, unroll=5, order="kn")],
                         ids=["default", "kv1w3h2cpb5"])
@pytest.mark.parametrize("isa", FP32_ISAS)
@pytest.mark.parametrize("spec", FP32_SPECS, ids=ref.shape_id)
def test_fp32_path_within_bound(spec, isa, blocking):
    rng = np.random.default_rng(spec.C + spec.K)
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    w = (rng.standard_normal((spec.K, spec.C, spec.R, spec.S)) * 1e-3).astype(np.float32)
    op = conv_op(spec, isa, blocking=blocking, precision="fp32")
    plan = op.kernel(PASS).plan
    assert plan.storage == "float32" and plan.flushes == 1
    dx, m = op.run(PASS, dy, w)
    assert dx.dtype == np.float32 and dx.shape == (spec.N, spec.C, spec.H, spec.W)
    want = ref.bprop_f64(dy, w, spec.H, spec.W, spec.stride, spec.pad)
    bound = ref.fp32_bound(absref(dy, w, spec), ref.bprop_terms(spec.K, spec.R, spec.S))
    err = np.abs(dx - want)
    assert np.all(err <= bound), float(np.max(err / np.maximum(bound, 1e-300)))
    assert m == float(np.max(np.abs(dx)))
    # DFPTensors fed to an FP32 op are used at their values
    dym, wm = operands(rng, spec, 30, 30)
    dx = op.bprop(DFPTensor(dym, -3), DFPTensor(wm, 2))
    np.testing.assert_array_equal(dx, ref.exact_to_f32(exact(dym, wm, spec), -1))


# --------------------------------------------------------------------- cross-emitted assembly


@pytest.mark.parametrize("cpu, instruction, absent", [("sapphirerapids", "vpdpwssd", None),
                                                      ("znver3", "vpmaddwd", "vpdpwssd")])
@pytest.mark.parametrize("spec", [ConvSpec(2, 17, 20, 9, 11, 3, 3, 2, 1), ConvSpec(1, 64, 64, 8, 8, 1, 1, 1, 0)],
                         ids=ref.shape_id)
def test_cross_emitted_asm(spec, cpu, instruction, absent):
    isa = {"sapphirerapids": "avx512_vnni", "znver3": "avx2"}[cpu]     # explicit: DFPGEN_ISA must not matter
    kernel = dfpgen.compile(spec, PASS, Numerics(), isa=isa, cpu=cpu)
    assert kernel.plan.isa.name == isa and kernel.plan.target.cpu == cpu
    assert kernel.plan.pass_name == PASS and f"define void @dfpgen_{PASS}" in kernel.ir
    assert instruction in kernel.asm
    if absent:
        assert absent not in kernel.asm
    assert not kernel.executable
    plan = kernel.plan
    with pytest.raises(TargetError):
        kernel.run(np.zeros(plan.src_shape, np.int16), np.zeros(plan.vec_shape, np.int16),
                   np.zeros(plan.dst_shape, np.float32))


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_wrong_shapes_raise_shape_error(isa):
    spec = ConvSpec(2, 5, 7, 6, 6, 3, 3, 2, 1)
    op = conv_op(spec, isa)
    s = spec
    good_dy = DFPTensor(np.zeros((s.N, s.K, s.P, s.Q), np.int16), 0)
    good_w = DFPTensor(np.zeros((s.K, s.C, s.R, s.S), np.int16), 0)
    for bad in [(s.N, s.K + 1, s.P, s.Q), (s.N, s.K, s.P, s.Q + 1), (s.N, s.C, s.H, s.W)]:
        with pytest.raises(ShapeError, match="^dy: expected"):
            op.bprop(DFPTensor(np.zeros(bad, np.int16), 0), good_w)
    with pytest.raises(ShapeError, match="^w: expected"):
        op.bprop(good_dy, DFPTensor(np.zeros((s.K, s.C + 1, s.R, s.S), np.int16), 0))


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_bad_operands_raise_named_errors(isa):
    """NaN/Inf in a float operand and integer arrays that are not DFPTensors are errors naming the operand."""
    from dfpgen.errors import DTypeError, NonFiniteError
    spec = ConvSpec(2, 5, 7, 6, 7, 3, 3, 2, 1)
    op = conv_op(spec, isa)
    rng = np.random.default_rng(0)
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S)).astype(np.float32)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    bad = dy.copy()
    bad[1, 2, 0, 1] = np.inf
    with pytest.raises(NonFiniteError, match="^dy: .*(1, 2, 0, 1)"):
        op.bprop(bad, w)
    with pytest.raises(NonFiniteError, match="^dy"):
        op.backward(x, bad, w)
    with pytest.raises(DTypeError, match="^dy"):
        op.bprop(dy.astype(np.int16), w)


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_non_contiguous_operands(isa):
    """Strided views and Fortran-ordered arrays give the same dx as contiguous copies."""
    spec = ConvSpec(2, 5, 7, 6, 7, 3, 3, 2, 1)
    op = conv_op(spec, isa)
    rng = np.random.default_rng(1)
    dym, wm = operands(rng, spec, 3000, 3000)
    wide = np.zeros(dym.shape[:3] + (2 * spec.Q,), np.int16)
    wide[..., ::2] = dym
    want = op.bprop(DFPTensor(dym, -4), DFPTensor(wm, -6))
    np.testing.assert_array_equal(op.bprop(DFPTensor(wide[..., ::2], -4), DFPTensor(np.asfortranarray(wm), -6)),
                                  want)
    dy = rng.standard_normal(dym.shape).astype(np.float32)
    w = rng.standard_normal(wm.shape).astype(np.float32)
    np.testing.assert_array_equal(op.bprop(np.asfortranarray(dy), w[::-1][::-1]), op.bprop(dy.copy(), w.copy()))


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_dfp_tensor_wider_than_numerics_is_not_silently_wrong(isa):
    spec = ConvSpec(1, 16, 256, 3, 3, 1, 1, 1, 0)
    op = conv_op(spec, isa, bits=13)
    shapes = {"dy": (1, 256, 3, 3), "w": (256, 16, 1, 1)}
    assert_wider_operands_refused(op.bprop, shapes, {"dy": "grad", "w": "weight"})
    dym, wm = (np.full(shape, max_mantissa(13), np.int16) for shape in shapes.values())
    dx = op.bprop(DFPTensor(dym, 0, 13), DFPTensor(wm, 0, 13))   # the widest it takes: within the bound
    check_dfp(dx, dym, wm, spec, op.kernel(PASS).plan.flushes, 0, isa)
