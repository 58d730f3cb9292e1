"""WTGRAD kernels (dw = dL/dw) run end to end against the independent float64 references of
tests/oracle_backward.py (direct correlation; derivation of the bounds there).

Contract checked (Conv2d.wtgrad(x, dy), numerics Numerics(bits, bits_grad)):
  * exact equality wherever wtgrad(|xm|, |dym|) < 2**24,
  * |dw - exact| <= gamma_{F+1} * wtgrad(|xm|, |dym|) * 2**(e_x + e_dy) elsewhere (F = plan.flushes),
  * FP32 kernels within gamma_{N*P*Q} * wtgrad(|x|, |dy|) of float64.
WTGRAD reduces over N x P x Q in q-pairs (dfpgen/plan_wtgrad.py): odd Q (a zero-padded pair), Q = 1,
P = 1, N = 1, strides with padding, unrolls that do not divide the pair count and long reductions with
many flushes are where its edge cases live. Every test that executes a kernel is parametrized over the
ISAs the host can run (`dfpgen.core.target.host().isas(...)`).
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

PASS = "wtgrad"
HOST = host()
DFP_ISAS = HOST.isas("dfp16")
FP32_ISAS = HOST.isas("fp32")
# The host's best DFP ISA and, when it is another one, avx2 (the Zen 3 CI path).
SWEEP_ISAS = list(dict.fromkeys(DFP_ISAS[:1] + [i for i in DFP_ISAS if i == "avx2"]))
THREADS = 2

SWEEP_SPECS = [ConvSpec(*s, name=f"wshape{i}") for i, s in enumerate(ref.SWEEP_SHAPES)]
# bits 16 on every DFP ISA; bits 13 on the best one by default, on the others with -m slow.
FULL_RANGE_CASES = [pytest.param(isa, bits, marks=[pytest.mark.slow] if bits != 16 and isa != DFP_ISAS[0] else [])
                    for isa in DFP_ISAS for bits in (16, 13)]
# resnet50 runs on the best ISA by default and on avx2 (when that is another one) with -m slow.
CATALOG_ISAS = [pytest.param(isa, marks=[pytest.mark.slow] if i else []) for i, isa in enumerate(SWEEP_ISAS)]


# --------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=512)
def conv_op(spec: ConvSpec, isa: str, bits: int = 16, blocking: Blocking | None = None, threads: int = THREADS,
            precision: str = "dfp16", bits_grad: int | None = None) -> Conv2d:
    """One op per configuration (compiling is the slow part of these tests)."""
    return Conv2d(spec, bits=bits, isa=isa, threads=threads, blocking={PASS: blocking}, precision=precision,
                  bits_grad=bits_grad)


def operands(rng, spec: ConvSpec, limit_x: int, limit_dy: int):
    xm = ref.random_mant(rng, (spec.N, spec.C, spec.H, spec.W), limit_x)
    dym = ref.random_mant(rng, (spec.N, spec.K, spec.P, spec.Q), limit_dy)
    return xm, dym


def exact(xm, dym, spec):
    return ref.wtgrad_int(xm, dym, spec.R, spec.S, spec.stride, spec.pad)


def absref(xm, dym, spec):
    return ref.wtgrad_abs(xm, dym, spec.R, spec.S, spec.stride, spec.pad)


def small_limit(spec: ConvSpec) -> int:
    return ref.small_mant_limit(ref.wtgrad_terms(spec.N, spec.P, spec.Q))


def check_dfp(dw: np.ndarray, xm, dym, spec: ConvSpec, flushes: int, scale_exp: int, what: str = "") -> None:
    """Exact where wtgrad(|x|,|dy|) < 2**24, within the flush bound elsewhere."""
    assert dw.dtype == np.float32 and dw.shape == (spec.K, spec.C, spec.R, spec.S), (dw.dtype, dw.shape)
    want_exact = exact(xm, dym, spec)
    absc = absref(xm, dym, spec)
    want = ref.exact_to_f32(want_exact, scale_exp)
    bad = (absc < 2**24) & (dw != want)
    assert not bad.any(), (
        f"{what} {spec.describe()}: {int(bad.sum())} dw not exact where wtgrad(|x|,|dy|) < 2**24; first at "
        f"{tuple(int(i) for i in np.argwhere(bad)[0])}: got {dw[bad][0]!r}, want {want[bad][0]!r}")
    err = np.abs(dw.astype(np.float64) - np.ldexp(want_exact, scale_exp))
    bound = ref.dfp_bound(absc, flushes, scale_exp)
    over = err > bound
    assert not over.any(), (
        f"{what} {spec.describe()}: {int(over.sum())} dw past the flush bound (F={flushes}); first at "
        f"{tuple(int(i) for i in np.argwhere(over)[0])}: got {dw[over][0]!r}, want "
        f"{np.ldexp(want_exact, scale_exp)[over][0]!r}, bound {bound[over][0]:.3g}")


# ----------------------------------------------------------------- the reference itself vs torch


@pytest.mark.parametrize("spec", SWEEP_SPECS[1::3], ids=ref.shape_id)
def test_reference_matches_torch_autograd(torch, spec):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W))
    w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S))
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q))
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x), wt, stride=spec.stride, padding=spec.pad).backward(torch.tensor(dy))
    np.testing.assert_allclose(ref.wtgrad_f64(x, dy, spec.R, spec.S, spec.stride, spec.pad), wt.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- crafted shapes and mantissas


@pytest.mark.parametrize("isa", SWEEP_ISAS)
def test_fc_layer_with_a_hundred_thousand_calls_exact(isa):
    """An FC-like layer (VGG's fc6 input width) plans ~10**5 tile calls; the kernel reads that table at
    run time, so the IR stays small, and every dw is exact across two threads."""
    spec = ConvSpec(2, 25088, 256, 1, 1, 1, 1, 1, 0, "fc")
    op = conv_op(spec, isa, blocking=Blocking(kv=2, wb=2, hb=1), threads=2)
    kernel = op.kernel(PASS)
    assert len(kernel.plan.call_table) >= 100_000 and len(kernel.ir) < 100_000
    rng = np.random.default_rng(11)
    limit = small_limit(spec)
    xm, dym = operands(rng, spec, limit, limit)
    dw = op.wtgrad(DFPTensor(xm, -3), DFPTensor(dym, 2))
    np.testing.assert_array_equal(dw, ref.exact_to_f32(exact(xm, dym, spec), -1))


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", SWEEP_SPECS, ids=ref.shape_id)
def test_small_mantissas_exact(spec, isa):
    """Mantissas small enough that wtgrad(|x|,|dy|) < 2**24 everywhere: dw is exact, bit for bit."""
    rng = np.random.default_rng([sum(spec.shape_key()), 3])
    limit = small_limit(spec)
    xm, dym = operands(rng, spec, limit, limit)
    ex, edy = int(rng.integers(-14, 7)), int(rng.integers(-14, 7))
    op = conv_op(spec, isa)
    dw = op.wtgrad(DFPTensor(xm, ex), DFPTensor(dym, edy))
    assert (absref(xm, dym, spec) < 2**24).all()
    np.testing.assert_array_equal(dw, ref.exact_to_f32(exact(xm, dym, spec), ex + edy))


@pytest.mark.parametrize("isa, bits", FULL_RANGE_CASES)
@pytest.mark.parametrize("spec", SWEEP_SPECS, ids=ref.shape_id)
def test_full_range_mantissas_bound(spec, isa, bits):
    """Full-range `bits`-bit mantissas: exact where small, within the flush bound elsewhere."""
    rng = np.random.default_rng([sum(spec.shape_key()), bits, 1])
    top = ref.max_mant(bits)
    xm, dym = operands(rng, spec, top, top)
    xm.flat[-1], dym.flat[0] = top, -top
    ex, edy = int(rng.integers(-20, 5)), int(rng.integers(-24, 5))
    op = conv_op(spec, isa, bits)
    plan = op.kernel(PASS).plan
    assert (plan.numerics.bits_x, plan.numerics.bits_w) == (bits, bits)
    assert plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(bits, bits)
    dw = op.wtgrad(DFPTensor(xm, ex, bits), DFPTensor(dym, edy, bits))
    check_dfp(dw, xm, dym, spec, plan.flushes, ex + edy, f"{isa} bits {bits}")


def test_sweep_covers_the_edge_cases():
    """The sweep holds what the brief asks for (guards against someone trimming SWEEP_SHAPES)."""
    specs = SWEEP_SPECS
    assert {s.stride for s in specs} >= {1, 2, 3, 4} and {s.pad for s in specs} >= {0, 1, 2, 3}
    assert {s.R for s in specs} >= set(range(1, 12)) and {s.S for s in specs} >= set(range(1, 12))
    assert any(s.R != s.S for s in specs) and {s.N for s in specs} >= {1, 3}
    assert {s.C for s in specs} >= {1, 3, 5, 17, 100} and {s.K for s in specs} >= {1, 3, 5, 17, 100}
    assert any(s.P == 1 for s in specs) and any(s.Q == 1 for s in specs)
    assert any(s.Q % 2 and s.Q > 1 for s in specs) and any(s.pad > 0 and s.stride > 1 for s in specs)


@pytest.mark.parametrize("unroll", [1, 2, 3, 5, 7, 8, 13])
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_explicit_unroll_not_dividing_the_pairs(isa, unroll):
    """Q = 13 (7 q-pairs, the last half zero) with unrolls that do not divide 7: dy is zero-padded to
    whole steps; bits 12 (chain 256) admits every unroll here."""
    spec = ConvSpec(2, 5, 17, 9, 25, 3, 3, 2, 1)
    assert spec.Q == 13
    try:
        op = conv_op(spec, isa, bits=12, blocking=Blocking(kv=1, wb=3, hb=2, unroll=unroll))
        plan = op.kernel(PASS).plan
    except PlanError:  # an unroll the planner refuses must say why, not fail later
        pytest.fail(f"unroll={unroll} refused for bits 12")
    assert plan.unroll == unroll
    rng = np.random.default_rng(unroll)
    xm, dym = operands(rng, spec, ref.max_mant(12), ref.max_mant(12))
    dw = op.wtgrad(DFPTensor(xm, -3, 12), DFPTensor(dym, -9, 12))
    check_dfp(dw, xm, dym, spec, plan.flushes, -12, f"{isa} unroll {unroll}")


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_unroll_past_the_chain_is_refused(isa):
    """bits 16: the safe chain is 1 pair-instruction, so an explicit unroll of 2 cannot be exact."""
    with pytest.raises(PlanError, match="unroll"):
        Conv2d(ConvSpec(1, 3, 5, 6, 6, 3, 3, 1, 0), bits=16, isa=isa, threads=THREADS,
               blocking={PASS: Blocking(unroll=2)}).kernel(PASS)


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
    """Every distinct resnet50 layer shape (N=1, full size, the default WTGRAD blocking): exact with small
    mantissas, within the flush bound with full-range 16-bit ones (conv1 reduces 12544 products per dw,
    6272 flushes). FPROP, compiled by the constructor, gets a fixed blocking (its search is not tested here)."""
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS, blocking={"fprop": Blocking()})
    plan = op.kernel(PASS).plan
    rng = np.random.default_rng(len(spec.name) * 7919 + spec.K)
    limit = small_limit(spec)
    xm, dym = operands(rng, spec, limit, limit)
    dw = op.wtgrad(DFPTensor(xm, -3), DFPTensor(dym, -5))
    np.testing.assert_array_equal(dw, ref.exact_to_f32(exact(xm, dym, spec), -8))
    xm, dym = operands(rng, spec, 32767, 32767)
    dw = op.wtgrad(DFPTensor(xm, -10), DFPTensor(dym, -12))
    check_dfp(dw, xm, dym, spec, plan.flushes, -22, isa)


# ------------------------------------------------------------------------ hypothesis: any shape


@st.composite
def spec_and_blocking(draw):
    stride = draw(st.integers(1, 4))
    pad = draw(st.integers(0, 3))
    H = draw(st.integers(1, 12))
    W = draw(st.integers(1, 14))
    R = draw(st.integers(1, min(7, H + 2 * pad)))
    S = draw(st.integers(1, min(7, W + 2 * pad)))
    spec = ConvSpec(draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, 40)), H, W, R, S,
                    stride, pad)
    blocking = Blocking(kv=draw(st.integers(1, 4)), wb=draw(st.integers(1, 9)), hb=draw(st.integers(1, 3)),
                        cpb=draw(st.one_of(st.none(), st.integers(1, 20))),
                        unroll=draw(st.one_of(st.none(), st.integers(1, 9))),
                        order=draw(st.sampled_from(["nk", "kn"])), rb=draw(st.one_of(st.none(), st.integers(1, 5))))
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
    assert plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(bits, bits)
    if blocking.unroll is not None:
        assert plan.unroll == blocking.unroll
    rng = np.random.default_rng(seed)
    top = ref.max_mant(bits)
    limit = min(top, small_limit(spec)) if small else top
    xm, dym = operands(rng, spec, limit, limit)
    dw = op.wtgrad(DFPTensor(xm, 1, bits), DFPTensor(dym, -3, bits))
    check_dfp(dw, xm, dym, spec, plan.flushes, -2, f"{isa} {plan.blocking.describe()} bits {bits}")


# ------------------------------------------------------------------- float inputs against torch

FLOAT_SPECS = [ConvSpec(2, 17, 20, 9, 11, 3, 3, 1, 1), ConvSpec(1, 64, 33, 14, 15, 3, 3, 2, 1),
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
    x.flat[0] = -np.abs(x).max() * 1.5          # a negative peak
    return x, w, dy


@pytest.mark.parametrize("bits, bits_grad, grad_rounding", [(16, 16, None), (12, 12, None), (14, 12, "stochastic")])
@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", FLOAT_SPECS, ids=ref.shape_id)
def test_float_inputs_vs_torch(torch, spec, isa, bits, bits_grad, grad_rounding):
    """x (bits) and dy (bits_grad, grad_rounding) are quantized, then correlated. With q(.) the quantized
    values, wtgrad(x, dy) - wtgrad(q(x), q(dy)) = wtgrad(x - q(x), dy) + wtgrad(q(x), dy - q(dy)), so
    |dw - dw_torch| <= wtgrad(|x - q(x)|, |dy|) + wtgrad(|q(x)|, |dy - q(dy)|) + the flush bound on the
    mantissas + float64 slack. Nearest rounding: the quantization error is known exactly (reference
    quantizer); stochastic: |dy - q(dy)| < 2**e_dy."""
    rng = np.random.default_rng(bits_grad + bits)
    x, w, dy = float_operands(rng, spec)
    op = Conv2d(spec, bits=bits, bits_grad=bits_grad, grad_rounding=grad_rounding, isa=isa, threads=THREADS,
                seed=7)
    plan = op.kernel(PASS).plan
    assert (plan.numerics.bits_x, plan.numerics.bits_w) == (bits, bits_grad)
    dw = op.wtgrad(x, dy)
    _, want = torch_grads(torch, x, w, dy, spec)
    xqm, ex = ref.quantize_ref(x, bits)
    xq = ref.dequant(xqm, ex)
    edy = ref.quant_exp(dy, bits_grad)
    wg = functools.partial(ref.wtgrad_f64, R=spec.R, S=spec.S, stride=spec.stride, pad=spec.pad)
    if grad_rounding is None:
        dyqm, edy2 = ref.quantize_ref(dy, bits_grad)
        assert edy2 == edy
        # the op quantized exactly like the reference: the reference's DFP tensors give the same bits
        np.testing.assert_array_equal(dw, op.wtgrad(DFPTensor(xqm, ex, bits), DFPTensor(dyqm, edy, bits_grad)))
        dyq = ref.dequant(dyqm, edy)
        dy_err = np.abs(dy - dyq)
        assert np.all(dy_err <= np.ldexp(1.0, edy))
    else:
        dy_err = np.full(dy.shape, np.ldexp(1.0, edy))     # stochastic rounding: less than one ulp
        dyq = np.abs(dy.astype(np.float64)) + dy_err          # |q(dy)| <= |dy| + ulp
        dyqm = np.minimum(np.ceil(np.ldexp(dyq, -edy)), ref.max_mant(bits_grad)).astype(np.int64)
    assert np.all(np.abs(x - xq) <= np.ldexp(1.0, ex))
    quant = wg(np.abs(x - xq), np.abs(dy)) + wg(np.abs(xq), dy_err)
    flush = ref.dfp_bound(absref(xqm, np.abs(dyqm).astype(np.int64), spec), plan.flushes, ex + edy)
    slack = 1e-12 * wg(np.abs(x), np.abs(dy)) + 1e-30
    err = np.abs(dw - want)
    bound = quant + flush + slack
    assert np.all(err <= bound), float(np.max(err / bound))
    assert float(np.max(quant + flush)) < 0.05 * float(np.max(np.abs(want)))


# ------------------------------------------------------------------------ finite differences


@functools.lru_cache(maxsize=1)
def _fd_problem():
    """A small layer, its float32 data and the central differences of L = sum(conv(x, w) * G) in w."""
    spec = ConvSpec(2, 3, 4, 6, 5, 3, 2, 2, 1)
    rng = np.random.default_rng(43)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    w = (rng.standard_normal((spec.K, spec.C, spec.R, spec.S)) * 0.3).astype(np.float32)
    G = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    h = 2.0**-6
    n = spec.C * spec.R * spec.S + 1 + spec.N * spec.K * spec.P * spec.Q
    fd, fd_err = np.zeros(w.shape), np.zeros(w.shape)
    w64 = w.astype(np.float64)
    for i in np.ndindex(w.shape):
        wp, wm = w64.copy(), w64.copy()
        wp[i] += h
        wm[i] -= h
        lp, lm = ref.loss_f64(x, wp, G, spec.stride, spec.pad), ref.loss_f64(x, wm, G, spec.stride, spec.pad)
        fd[i] = (lp - lm) / (2 * h)
        a = (ref.loss_f64(np.abs(x), np.abs(wp), np.abs(G), spec.stride, spec.pad)
             + ref.loss_f64(np.abs(x), np.abs(wm), np.abs(G), spec.stride, spec.pad))
        fd_err[i] = (ref.gamma(n, ref.U64) * a * 1.01 + ref.U64 * abs(lp - lm)) / (2 * h)
    return spec, x, w, G, fd, fd_err


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_finite_differences_dw(isa):
    """L(x, w) = sum(conv(x, w) * G): dL/dw = wtgrad(x, G). Compare Conv2d.wtgrad (bits 16) with central
    differences of L in float64 at step h = 2**-6 (w +- h is exact in float64).

    Tolerance: L is linear in w, so the central difference has no truncation error; its float64 error
    is at most (gamma64_n * (A(w+h) + A(w-h)) + u64 * |L+ - L-|) / (2h), with A = sum(conv(|x|, |w|) *
    |G|) and n = C*R*S + 1 + N*K*P*Q the longest chain of float64 operations in L. dfpgen's dw differs
    from the true gradient by the quantization bound (as in test_float_inputs_vs_torch) plus the flush
    bound."""
    spec, x, w, G, fd, fd_err = _fd_problem()
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS)
    dw = op.wtgrad(x, G)
    xqm, ex = ref.quantize_ref(x, 16)
    Gqm, eg = ref.quantize_ref(G, 16)
    xq, Gq = ref.dequant(xqm, ex), ref.dequant(Gqm, eg)
    wg = functools.partial(ref.wtgrad_f64, R=spec.R, S=spec.S, stride=spec.stride, pad=spec.pad)
    quant = wg(np.abs(x - xq), np.abs(G)) + wg(np.abs(xq), np.abs(G - Gq))
    flush = ref.dfp_bound(absref(xqm, Gqm, spec), op.kernel(PASS).plan.flushes, ex + eg)
    tol = quant + flush + fd_err + 1e-12 * wg(np.abs(x), np.abs(G))
    err = np.abs(dw - fd)
    assert np.all(err <= tol), float(np.max(err / tol))
    assert float(np.max(tol)) < 1e-3 * float(np.max(np.abs(fd)))     # a meaningful tolerance


# -------------------------------------------------------------------- run(), max-abs, scaling


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("exps", [(-3, -4), (-70, -70), (40, 50)], ids=["normal", "tiny_scale", "big_scale"])
def test_run_maxabs_and_scale(isa, exps):
    """run('wtgrad') returns (dw, max|dw|); scales 2**(e_x+e_dy) that are no normal float32 are applied
    exactly after the kernel."""
    spec = ConvSpec(3, 5, 33, 5, 13, 3, 2, 2, 1)
    rng = np.random.default_rng(5)
    xm, dym = operands(rng, spec, 2000, 2000)
    op = conv_op(spec, isa)
    dw, m = op.run(PASS, DFPTensor(xm, exps[0]), DFPTensor(dym, exps[1]))
    assert isinstance(m, float) and m == float(np.max(np.abs(dw)))
    check_dfp(dw, xm, dym, spec, op.kernel(PASS).plan.flushes, sum(exps), isa)
    dw, m = op.run(PASS, DFPTensor(np.abs(xm), 0), DFPTensor(-np.abs(dym), 0))     # every dw <= 0
    assert m == float(np.max(np.abs(dw))) == -float(np.min(dw))
    dw, m = op.run(PASS, DFPTensor(np.zeros_like(xm), 0), DFPTensor(dym, 0))
    assert m == 0.0 and not np.any(dw)


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
def test_maxabs_is_of_the_result_not_of_partial_sums(isa):
    """With reduction blocks of one image each, image 1 cancels image 0 exactly: dw is 0 while the
    partial sums after the first block are large, and max|dw| must say 0."""
    spec = ConvSpec(2, 6, 9, 5, 7, 3, 3, 1, 1)
    rng = np.random.default_rng(21)
    xm, dym = operands(rng, spec, 1000, 1000)
    xm[1], dym[1] = xm[0], -dym[0]
    precision = ISAS[isa].precision
    x, dy = (DFPTensor(xm, 0), DFPTensor(dym, 0)) if precision == "dfp16" else \
        (xm.astype(np.float32), dym.astype(np.float32))
    op = Conv2d(spec, bits=16, isa=isa, precision=precision, threads=THREADS,
                blocking={PASS: Blocking(kv=1, wb=2, hb=1, rb=spec.P)})
    assert len(op.kernel(PASS).plan.reduction_blocks) == 2
    dw, m = op.run(PASS, x, dy)
    assert not np.any(dw) and m == 0.0


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("rb", [1, 2, 7, 100])
def test_reduction_blocks_exact_and_bounded(isa, rb):
    """Any reduction block size gives the exact integer dw on small mantissas, and stays within the
    flush bound (which counts every block's flushes) on full-range ones."""
    spec = ConvSpec(3, 10, 19, 9, 8, 3, 3, 1, 1)
    rng = np.random.default_rng(rb)
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS, blocking={PASS: Blocking(kv=2, wb=3, hb=1, rb=rb)})
    plan = op.kernel(PASS).plan
    assert plan.blocking.rb == min(rb, spec.N * spec.P)
    xm, dym = operands(rng, spec, small_limit(spec), small_limit(spec))
    np.testing.assert_array_equal(op.wtgrad(DFPTensor(xm, 0), DFPTensor(dym, 0)), exact(xm, dym, spec))
    xm, dym = operands(rng, spec, 32767, 32767)
    check_dfp(op.wtgrad(DFPTensor(xm, -3), DFPTensor(dym, -4)), xm, dym, spec, plan.flushes, -7, f"{isa} rb {rb}")


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_mixed_bits_per_operand(isa):
    """bits applies to x and bits_grad to dy: the WTGRAD kernel's numerics are (bits, bits_grad)."""
    spec = ConvSpec(4, 17, 20, 12, 13, 3, 3, 1, 1)
    op = conv_op(spec, isa, bits=13, bits_grad=10)
    plan = op.kernel(PASS).plan
    assert (plan.numerics.bits_x, plan.numerics.bits_w) == (13, 10)
    assert plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(13, 10)
    rng = np.random.default_rng(9)
    xm, dym = operands(rng, spec, ref.max_mant(13), ref.max_mant(10))
    dw = op.wtgrad(DFPTensor(xm, -6, 13), DFPTensor(dym, -30, 10))
    check_dfp(dw, xm, dym, spec, plan.flushes, -36, isa)


# --------------------------------------------------------------------------------------- threads


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
@pytest.mark.parametrize("spec", [ConvSpec(3, 20, 100, 13, 11, 3, 3, 2, 1), ConvSpec(1, 3, 5, 4, 4, 3, 3, 1, 0)],
                         ids=ref.shape_id)
def test_threads_bit_identical(spec, isa):
    rng = np.random.default_rng(11)
    precision = ISAS[isa].precision
    if precision == "fp32":
        x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
        dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    else:
        xm, dym = operands(rng, spec, 32767, 32767)
        x, dy = DFPTensor(xm, -8), DFPTensor(dym, -9)
    first = Conv2d(spec, bits=16, isa=isa, threads=1, precision=precision)   # full-range 16-bit mantissas
    blocking = first.kernel(PASS).plan.blocking          # the same kernel for every thread count
    results = [first.run(PASS, x, dy)]
    for threads in (2, 3, 7):
        op = Conv2d(spec, bits=16, isa=isa, threads=threads, precision=precision, blocking={PASS: blocking})
        results.append(op.run(PASS, x, dy))
    for dw, m in results[1:]:
        assert dw.tobytes() == results[0][0].tobytes() and m == results[0][1]


# 1x1 layers the thread split cuts by image rows, filter blocks or (WTGRAD) input-channel chunks: K not a multiple
# of 16, few pixels, stride 2, a fully-connected layer.
SPLIT_1X1 = [ConvSpec(3, 40, 24, 7, 5, 1, 1, 1, 0), ConvSpec(2, 33, 17, 5, 5, 1, 1, 2, 0),
             ConvSpec(2, 200, 96, 4, 4, 1, 1, 2, 0), ConvSpec(4, 64, 64, 14, 14, 1, 1, 1, 0),
             ConvSpec(4, 520, 260, 1, 1, 1, 1, 1, 0)]


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
@pytest.mark.parametrize("spec", SPLIT_1X1, ids=ref.shape_id)
def test_1x1_split_bit_identical_at_any_thread_count(spec, isa):
    """The thread split (dw's vector blocks x taps x channel chunks; the register block, hence the
    vector blocks, may differ by thread count) at 1, 2, 3 and 5 threads, with each thread count's default
    blocking and a fixed one: full-range 14-bit mantissas give the same bits every time, into an output
    filled with NaN first, exact where the reference is below 2**24 and within the flush bound elsewhere."""
    rng = np.random.default_rng([sum(spec.shape_key()), 21])
    xm, dym = operands(rng, spec, 8191, 8191)
    assert_split_bit_identical(spec, isa, PASS, xm, dym,
                               lambda got, flushes, what: check_dfp(got, xm, dym, spec, flushes, -12, what))


def test_1x1_split_cases_include_shares_of_several_ranges():
    """The cases above run shares of several item ranges (boxes that are not contiguous in item order)."""
    assert_some_share_has_several_ranges(SPLIT_1X1, DFP_ISAS[0], PASS)


# ----------------------------------------------------------------------- worst-case overflow


def worst_operands(spec: ConvSpec, bits_x: int, bits_dy: int, pattern: str, rng):
    """All-maximum mantissas with signs that make every product of a dw the same sign, so |dw| is as large
    as it can be: x[n,c] = a(n) g(c) M, dy[n,k] = a(n) b(k) M -> products b(k) g(c) M*M.
    'max': all +; 'min': dy negative (every product -M*M); 'mixed': random signs a, b, g."""
    Mx, Md = ref.max_mant(bits_x), ref.max_mant(bits_dy)
    a, b, g = (np.ones(n, np.int64) for n in (spec.N, spec.K, spec.C))
    if pattern == "min":
        b = -b
    elif pattern == "mixed":
        a, b, g = (rng.choice([-1, 1], n) for n in (spec.N, spec.K, spec.C))
    xm = a[:, None, None, None] * g[None, :, None, None] * Mx * np.ones((1, 1, spec.H, spec.W), np.int64)
    dym = a[:, None, None, None] * b[None, :, None, None] * Md * np.ones((1, 1, spec.P, spec.Q), np.int64)
    return xm.astype(np.int16), dym.astype(np.int16)


# 1x1, stride 1, pad 0, Q = 16 (8 q-pairs, divisible by every default unroll): every step of the reduction
# is full, so with uniform operands each chunk sums (2 * unroll * steps_per_flush) equal products, the
# last one the rest. N*P*Q = 1536 products per dw.
UNIFORM_SPEC = ConvSpec(3, 17, 20, 32, 16, 1, 1, 1, 0)
# A general shape for the bound: stride 2, pad 1, 3x3, odd Q (15), odd channel counts.
GENERAL_SPEC = ConvSpec(3, 5, 17, 31, 29, 3, 3, 2, 1)
WORST_BITS = [(16, 16), (15, 15), (13, 13), (12, 12), (16, 12)]


@pytest.mark.parametrize("pattern", ["max", "min", "mixed"])
@pytest.mark.parametrize("bits", WORST_BITS, ids=lambda b: f"x{b[0]}dy{b[1]}")
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_worst_case_overflow_exact(isa, bits, pattern):
    """overflow='exact' with all-maximum mantissas over a long N x P x Q reduction: the result is exactly
    the FP32 sum of the exact INT32 chunk sums (no wrap, no saturation), with many flushes per dw."""
    bits_x, bits_dy = bits
    spec = UNIFORM_SPEC
    op = conv_op(spec, isa, bits=bits_x, bits_grad=bits_dy)
    plan = op.kernel(PASS).plan
    L = ref.safe_chain_ref(bits_x, bits_dy)
    assert plan.steps_per_flush * plan.unroll <= L and plan.flushes > 1
    rng = np.random.default_rng(len(pattern))
    xm, dym = worst_operands(spec, bits_x, bits_dy, pattern, rng)
    e = (-5, -7)
    dw = op.wtgrad(DFPTensor(xm, e[0], bits_x), DFPTensor(dym, e[1], bits_dy))
    want = exact(xm, dym, spec)
    T = ref.wtgrad_terms(spec.N, spec.P, spec.Q)
    product = ref.max_mant(bits_x) * ref.max_mant(bits_dy)
    assert np.all(np.abs(want) == T * product) and T * product > 2**31
    per_chunk = 2 * plan.unroll * plan.steps_per_flush
    counts = [per_chunk] * (T // per_chunk) + ([T % per_chunk] if T % per_chunk else [])
    assert len(counts) == plan.flushes
    sign = np.sign(want).astype(np.int64)
    model = ref.flush_sum([sign * c * product for c in counts], sum(e))
    np.testing.assert_array_equal(dw, model)
    check_dfp(dw, xm, dym, spec, plan.flushes, sum(e), isa)


@pytest.mark.parametrize("pattern", ["max", "min", "mixed"])
@pytest.mark.parametrize("bits", WORST_BITS, ids=lambda b: f"x{b[0]}dy{b[1]}")
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_worst_case_overflow_general_shape(isa, bits, pattern):
    """All-maximum mantissas on a strided, padded 3x3 layer with odd Q: within the flush bound, which is
    far below 2**31 * scale, so a single wrapped INT32 chunk could not pass."""
    bits_x, bits_dy = bits
    spec = GENERAL_SPEC
    assert spec.Q % 2 == 1
    op = conv_op(spec, isa, bits=bits_x, bits_grad=bits_dy)
    plan = op.kernel(PASS).plan
    assert plan.flushes > 1
    xm, dym = worst_operands(spec, bits_x, bits_dy, pattern, np.random.default_rng(2))
    dw = op.wtgrad(DFPTensor(xm, 0, bits_x), DFPTensor(dym, 0, bits_dy))
    absc = absref(xm, dym, spec)
    assert float(np.max(ref.dfp_bound(absc, plan.flushes))) < 2**30
    assert float(np.max(absc)) > 2**31                           # one INT32 chain could not hold it
    check_dfp(dw, xm, dym, spec, plan.flushes, 0, isa)


# ------------------------------------------------------------------------ every output written


POISON_SPECS = [ConvSpec(3, 17, 33, 7, 9, 3, 3, 1, 1), ConvSpec(1, 5, 100, 13, 13, 5, 5, 2, 2),
                ConvSpec(2, 3, 7, 4, 17, 2, 9, 1, 0), ConvSpec(1, 19, 16, 7, 7, 7, 7, 1, 0)]
POISON_BLOCKINGS = [None, Blocking(kv=3, wb=3, hb=2), Blocking(kv=1, wb=1, hb=1, order="kn"),
                    Blocking(kv=2, wb=4, hb=3, unroll=1), Blocking(kv=2, wb=3, hb=1, rb=1),
                    Blocking(kv=1, wb=2, hb=2, unroll=2, rb=3)]


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
@pytest.mark.parametrize("blocking", POISON_BLOCKINGS, ids=lambda b: b.describe() if b else "default")
@pytest.mark.parametrize("spec", POISON_SPECS, ids=ref.shape_id)
def test_kernel_writes_every_output(spec, blocking, isa):
    """Kernel.run on a NaN-filled output: every element is written, the channel padding lanes with zeros."""
    precision = ISAS[isa].precision
    try:
        # 16 bits: chains of one pair-instruction, FP32 partial sums in registers where they fit
        kernel = dfpgen.compile(spec, PASS, Numerics(16, 16), isa=isa, blocking=blocking)
    except PlanError:
        pytest.skip("blocking does not fit this ISA's register file")
    plan = kernel.plan
    rng = np.random.default_rng(3)
    xm, dym = operands(rng, spec, 30, 30)
    to_src, to_vec, from_dst = plan.conv_pass.to_src, plan.conv_pass.to_vec, plan.conv_pass.from_dst
    out = aligned_empty(plan.dst_shape, np.float32)
    out.fill(np.nan)
    a, b = (xm, dym) if precision == "dfp16" else (xm.astype(np.float32), dym.astype(np.float32))
    m = kernel.run(to_src(a, plan), to_vec(b, plan), out, 1.0, threads=THREADS)
    assert not np.isnan(out).any(), f"{int(np.isnan(out).sum())} of {out.size} outputs never written"
    dw = from_dst(out, plan)
    np.testing.assert_array_equal(dw, exact(xm, dym, spec).astype(np.float32))
    KB, R, S, C, lanes = plan.dst_shape
    assert not np.any(out.transpose(0, 4, 3, 1, 2).reshape(KB * lanes, C, R, S)[spec.K:])
    assert m == float(np.max(np.abs(dw)))


# ----------------------------------------------------------------------------------- FP32 path

FP32_SPECS = [ConvSpec(2, 17, 20, 9, 11, 3, 3, 1, 1), ConvSpec(1, 64, 33, 14, 15, 3, 3, 2, 1),
              ConvSpec(1, 3, 16, 23, 23, 11, 11, 4, 2), ConvSpec(3, 96, 5, 5, 5, 1, 1, 2, 0),
              ConvSpec(1, 1, 1, 1, 1, 1, 1, 1, 0), ConvSpec(4, 7, 30, 28, 27, 3, 3, 1, 1)]


@pytest.mark.parametrize("blocking", [None, Blocking(kv=1, wb=3, hb=2, unroll=3, order="kn"),
                                      Blocking(kv=2, wb=2, hb=1, rb=2)],
                         ids=["default", "kv1w3h2u3", "kv2w2h1rb2"])
@pytest.mark.parametrize("isa", FP32_ISAS)
@pytest.mark.parametrize("spec", FP32_SPECS, ids=ref.shape_id)
def test_fp32_path_within_bound(spec, isa, blocking):
    rng = np.random.default_rng(spec.C + spec.K)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    dy = (rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)) * 1e-3).astype(np.float32)
    op = conv_op(spec, isa, blocking=blocking, precision="fp32")
    plan = op.kernel(PASS).plan
    # one FP32 sum per reduction block, added into dw: the bound holds for any summation order
    assert plan.storage == "float32" and plan.flushes == len(plan.reduction_blocks)
    dw, m = op.run(PASS, x, dy)
    assert dw.dtype == np.float32 and dw.shape == (spec.K, spec.C, spec.R, spec.S)
    want = ref.wtgrad_f64(x, dy, spec.R, spec.S, spec.stride, spec.pad)
    bound = ref.fp32_bound(absref(x, dy, spec), ref.wtgrad_terms(spec.N, spec.P, spec.Q))
    err = np.abs(dw - want)
    assert np.all(err <= bound), float(np.max(err / np.maximum(bound, 1e-300)))
    assert m == float(np.max(np.abs(dw)))
    # DFPTensors fed to an FP32 op are used at their values
    xm, dym = operands(rng, spec, 30, 30)
    dw = op.wtgrad(DFPTensor(xm, -3), DFPTensor(dym, 2))
    np.testing.assert_array_equal(dw, ref.exact_to_f32(exact(xm, dym, spec), -1))


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
    good_x = DFPTensor(np.zeros((s.N, s.C, s.H, s.W), np.int16), 0)
    good_dy = DFPTensor(np.zeros((s.N, s.K, s.P, s.Q), np.int16), 0)
    for bad in [(s.N, s.C + 1, s.H, s.W), (s.N, s.C, s.H, s.W + 1), (s.N + 1, s.C, s.H, s.W)]:
        with pytest.raises(ShapeError, match="^x: expected"):
            op.wtgrad(DFPTensor(np.zeros(bad, np.int16), 0), good_dy)
    for bad in [(s.N, s.K + 1, s.P, s.Q), (s.N, s.K, s.P + 1, s.Q)]:
        with pytest.raises(ShapeError, match="^dy: expected"):
            op.wtgrad(good_x, DFPTensor(np.zeros(bad, np.int16), 0))


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_bad_operands_raise_named_errors(isa):
    """NaN/Inf in a float operand and integer arrays that are not DFPTensors are errors naming the operand."""
    from dfpgen.errors import DTypeError, NonFiniteError
    spec = ConvSpec(2, 5, 7, 6, 7, 3, 3, 2, 1)
    op = conv_op(spec, isa)
    rng = np.random.default_rng(0)
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q)).astype(np.float32)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    bad = x.copy()
    bad[0, 4, 5, 6] = np.nan
    with pytest.raises(NonFiniteError, match="^x: .*(0, 4, 5, 6)"):
        op.wtgrad(bad, dy)
    bad = dy.copy()
    bad[1, 0, 0, 0] = -np.inf
    with pytest.raises(NonFiniteError, match="^dy"):
        op.wtgrad(x, bad)
    with pytest.raises(DTypeError, match="^x"):
        op.wtgrad(x.astype(np.int32), dy)


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_non_contiguous_operands(isa):
    """Strided views and Fortran-ordered arrays give the same dw as contiguous copies."""
    spec = ConvSpec(2, 5, 7, 6, 7, 3, 3, 2, 1)
    op = conv_op(spec, isa)
    rng = np.random.default_rng(1)
    xm, dym = operands(rng, spec, 3000, 3000)
    wide = np.zeros(xm.shape[:3] + (2 * spec.W,), np.int16)
    wide[..., ::2] = xm
    want = op.wtgrad(DFPTensor(xm, -4), DFPTensor(dym, -6))
    np.testing.assert_array_equal(op.wtgrad(DFPTensor(wide[..., ::2], -4), DFPTensor(np.asfortranarray(dym), -6)),
                                  want)
    x = rng.standard_normal(xm.shape).astype(np.float32)
    dy = rng.standard_normal(dym.shape).astype(np.float32)
    np.testing.assert_array_equal(op.wtgrad(np.asfortranarray(x), dy[:, ::-1][:, ::-1]), op.wtgrad(x.copy(), dy.copy()))


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_dfp_tensor_wider_than_numerics_is_not_silently_wrong(isa):
    spec = ConvSpec(1, 3, 16, 16, 16, 1, 1, 1, 0)
    op = conv_op(spec, isa, bits=13)
    shapes = {"x": (1, 3, 16, 16), "dy": (1, 16, 16, 16)}
    assert_wider_operands_refused(op.wtgrad, shapes, {"x": "act", "dy": "grad"})
    xm, dym = (np.full(shape, max_mantissa(13), np.int16) for shape in shapes.values())
    dw = op.wtgrad(DFPTensor(xm, 0, 13), DFPTensor(dym, 0, 13))   # the widest it takes: within the bound
    check_dfp(dw, xm, dym, spec, op.kernel(PASS).plan.flushes, 0, isa)
