"""FPROP kernels run end to end and checked against the independent reference in tests/oracle_fprop.py.

Every test that executes a kernel is parametrized over the ISAs the host can run
(`dfpgen.core.target.host().isas(...)`), so the same file runs on a Zen 3 CI box (avx2 only) and on a
VNNI machine. The numerical contract (derived in oracle_fprop.py):
  * exact equality wherever conv(|xm|, |wm|) < 2**24,
  * |y - exact| <= gamma_{F+1} * conv(|xm|, |wm|) * 2**(ex+ew) elsewhere (F = plan.flushes),
  * FP32 kernels within gamma_{C*R*S} * conv(|x|, |w|) of a float64 conv.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dfpgen
from dfpgen import Blocking, Conv2d, ConvSpec, DFPTensor, Numerics
from dfpgen.codegen.layout import aligned_empty, aligned_zeros, block_input, block_weights, unblock_output
from dfpgen.core.catalog import select
from dfpgen.core.dfp import max_mantissa
from dfpgen.core.target import ISAS, host
from dfpgen.errors import PlanError, ShapeError, TargetError

import oracle_fprop as ref
from refusals import assert_wider_operands_refused
from splits import assert_some_share_has_several_ranges, assert_split_bit_identical

HOST = host()
DFP_ISAS = HOST.isas("dfp16")
FP32_ISAS = HOST.isas("fp32")
# The host's best DFP ISA and, when it is another one, avx2 (the Zen 3 CI path).
SWEEP_ISAS = list(dict.fromkeys(DFP_ISAS[:1] + [i for i in DFP_ISAS if i == "avx2"]))
THREADS = 2
PASS = "fprop"

# --------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=256)
def conv_op(spec: ConvSpec, isa: str, bits: int = 16, blocking: Blocking | None = None,
            threads: int = THREADS, precision: str = "dfp16") -> Conv2d:
    """One compiled op per configuration (compiling is the slow part of these tests)."""
    return Conv2d(spec, bits=bits, isa=isa, threads=threads, blocking=blocking, precision=precision)


def mantissas(rng, spec: ConvSpec, limit_x: int, limit_w: int):
    xm = ref.random_mant(rng, (spec.N, spec.C, spec.H, spec.W), limit_x)
    wm = ref.random_mant(rng, (spec.K, spec.C, spec.R, spec.S), limit_w)
    return xm, wm


def check_dfp(y: np.ndarray, xm: np.ndarray, wm: np.ndarray, spec: ConvSpec, flushes: int,
              scale_exp: int, what: str = "") -> None:
    """Exact where conv(|xm|,|wm|) < 2**24, within the flush bound elsewhere."""
    assert y.dtype == np.float32 and y.shape == (spec.N, spec.K, spec.P, spec.Q), (y.dtype, y.shape)
    exact = ref.conv_int(xm, wm, spec.stride, spec.pad)
    absc = ref.conv_abs(xm, wm, spec.stride, spec.pad)
    small = absc < 2**24
    want = ref.exact_to_f32(exact, scale_exp)
    bad = small & (y != want)
    assert not bad.any(), (
        f"{what} {spec.describe()}: {int(bad.sum())} outputs not exact where conv(|x|,|w|) < 2**24; "
        f"first at {tuple(int(i) for i in np.argwhere(bad)[0])}: got {y[bad][0]!r}, want {want[bad][0]!r}")
    err = np.abs(y.astype(np.float64) - np.ldexp(exact, scale_exp))
    bound = ref.dfp_bound(absc, flushes, np.ldexp(1.0, scale_exp))
    over = err > bound
    assert not over.any(), (
        f"{what} {spec.describe()}: {int(over.sum())} outputs past the flush bound (F={flushes}); "
        f"worst error/bound {float(np.max(err / np.maximum(bound, 1e-300))):.3g}")


# ----------------------------------------------------------------- crafted shapes and mantissas

# (N, C, K, H, W, R, S, stride, pad): every value of the brief's sweep appears; many are smaller than
# the register block, have P = 1 or Q = 1, channel counts off the 8/16 multiples, non-square kernels.
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0),
    (3, 3, 5, 7, 9, 3, 3, 1, 1),
    (1, 16, 16, 8, 8, 3, 3, 1, 1),
    (1, 17, 17, 9, 10, 3, 3, 2, 1),
    (3, 5, 96, 11, 11, 1, 1, 1, 0),
    (1, 96, 100, 6, 5, 3, 3, 1, 0),
    (1, 100, 3, 13, 13, 5, 5, 2, 2),
    (1, 3, 16, 23, 23, 11, 11, 4, 0),
    (1, 5, 17, 12, 15, 11, 7, 4, 3),
    (1, 17, 5, 5, 3, 1, 7, 1, 3),
    (1, 3, 1, 4, 17, 2, 9, 1, 0),
    (3, 16, 33, 2, 3, 2, 2, 1, 0),
    (1, 7, 96, 1, 1, 1, 1, 1, 0),
    (1, 33, 17, 3, 3, 3, 3, 1, 0),
    (1, 96, 16, 7, 7, 7, 7, 1, 0),
    (3, 17, 100, 9, 9, 3, 3, 2, 0),
    (1, 5, 5, 3, 3, 3, 3, 1, 3),
    (1, 16, 16, 17, 19, 5, 3, 4, 2),
    (1, 3, 3, 2, 2, 5, 5, 1, 2),
    (1, 100, 17, 14, 14, 1, 1, 2, 0),
    (1, 1, 100, 10, 10, 4, 4, 2, 1),
    (3, 1, 16, 6, 31, 1, 11, 1, 0),
    (1, 5, 3, 33, 2, 11, 1, 1, 0),
    (1, 17, 96, 19, 1, 3, 1, 4, 1),
    (1, 96, 5, 1, 9, 1, 3, 1, 1),
    (1, 3, 17, 8, 8, 8, 8, 2, 3),
    (1, 100, 100, 4, 4, 2, 2, 4, 0),
    (3, 3, 3, 5, 5, 6, 6, 1, 1),
    (1, 24, 40, 7, 7, 3, 3, 1, 1),
    (1, 70, 9, 5, 6, 4, 5, 2, 2),
    (1, 2, 130, 3, 5, 3, 3, 1, 1),
    (1, 130, 2, 6, 6, 10, 2, 1, 2),
]
SHAPE_SPECS = [ConvSpec(*s, name=f"shape{i}") for i, s in enumerate(SHAPES)]


def _shape_id(spec: ConvSpec) -> str:
    return "N{}C{}K{}_{}x{}_r{}s{}_st{}p{}".format(spec.N, spec.C, spec.K, spec.H, spec.W, spec.R, spec.S,
                                                 spec.stride, spec.pad)


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", SHAPE_SPECS, ids=_shape_id)
def test_small_mantissas_exact(spec, isa):
    """Mantissas small enough that conv(|x|,|w|) < 2**24 everywhere: the output is exact, bit for bit."""
    rng = np.random.default_rng([hash(spec.shape_key()) % 2**32, 1])
    limit = ref.small_mant_limit(spec.C, spec.R, spec.S)
    xm, wm = mantissas(rng, spec, limit, limit)
    ex, ew = int(rng.integers(-12, 7)), int(rng.integers(-12, 7))
    op = conv_op(spec, isa)
    y = op.fprop(DFPTensor(xm, ex), DFPTensor(wm, ew))
    assert (ref.conv_abs(xm, wm, spec.stride, spec.pad) < 2**24).all()
    np.testing.assert_array_equal(y, ref.exact_to_f32(ref.conv_int(xm, wm, spec.stride, spec.pad), ex + ew))


@pytest.mark.parametrize("bits", [16, 13])
@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", SHAPE_SPECS, ids=_shape_id)
def test_full_range_mantissas_bound(spec, isa, bits):
    """Full-range mantissas of `bits` bits: exact where small, within the flush bound elsewhere."""
    rng = np.random.default_rng([hash(spec.shape_key()) % 2**32, bits])
    top = ref.max_mant(bits)
    xm, wm = mantissas(rng, spec, top, top)
    xm.flat[0], wm.flat[-1] = -top, top       # the extremes are always present
    ex, ew = int(rng.integers(-20, 5)), int(rng.integers(-20, 5))
    op = conv_op(spec, isa, bits)
    plan = op.kernels["fprop"].plan
    assert plan.numerics.bits_x == bits and plan.chain <= ref.safe_chain_ref(bits, bits)
    y = op.fprop(DFPTensor(xm, ex, bits), DFPTensor(wm, ew, bits))
    check_dfp(y, xm, wm, spec, plan.flushes, ex + ew, f"{isa} bits {bits}")


# ------------------------------------------------------------------------------ whole catalogs


def _catalog_specs() -> list[ConvSpec]:
    seen = {}
    for net in ("resnet50", "googlenet_v1", "vgg16", "alexnet"):
        for spec in select(net, batch=1):
            seen.setdefault(spec.shape_key(), spec)
    return list(seen.values())


CATALOG_SPECS = _catalog_specs()


def _catalog_sample(specs):
    """One layer per kernel kind (R, S, stride, pad, fully connected), the cheapest of each."""
    kinds = {}
    for spec in sorted(specs, key=lambda s: s.macs):
        kinds.setdefault((spec.R, spec.S, spec.stride, spec.pad, spec.H == 1), spec)
    return list(kinds.values())


CATALOG_SAMPLE = _catalog_sample(CATALOG_SPECS)


def check_catalog_layer(spec, isa):
    """Full spatial size at N=1, default blocking: exact with small mantissas, within the flush bound
    with full-range 16-bit ones."""
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS)
    plan = op.kernels["fprop"].plan
    rng = np.random.default_rng(len(spec.name) * 7919 + spec.C)
    limit = ref.small_mant_limit(spec.C, spec.R, spec.S)
    xm, wm = mantissas(rng, spec, limit, limit)
    y = op.fprop(DFPTensor(xm, -3), DFPTensor(wm, -5))
    np.testing.assert_array_equal(y, ref.exact_to_f32(ref.conv_int(xm, wm, spec.stride, spec.pad), -8))
    xm, wm = mantissas(rng, spec, 32767, 32767)
    y = op.fprop(DFPTensor(xm, -10), DFPTensor(wm, -12))
    check_dfp(y, xm, wm, spec, plan.flushes, -22, isa)


@pytest.mark.parametrize("isa", SWEEP_ISAS)
@pytest.mark.parametrize("spec", CATALOG_SAMPLE, ids=lambda s: f"{s.name.replace('/', '.')}_{s.R}x{s.S}s{s.stride}")
def test_catalog_layer_sample(spec, isa):
    """One layer of each kind found in the catalogs (the full sweep is marked slow)."""
    check_catalog_layer(spec, isa)


@pytest.mark.slow
@pytest.mark.parametrize("isa", SWEEP_ISAS)
@pytest.mark.parametrize("spec", CATALOG_SPECS, ids=lambda s: s.name.replace("/", "."))
def test_catalog_layer(spec, isa):
    """Every distinct layer shape of resnet50, googlenet_v1, vgg16 and alexnet (slow: the default
    blocking search and the compile take seconds on the large layers)."""
    check_catalog_layer(spec, isa)


# ------------------------------------------------------------------------ hypothesis: any shape


@st.composite
def spec_and_blocking(draw):
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 2))
    H = draw(st.integers(1, 12))
    W = draw(st.integers(1, 12))
    R = draw(st.integers(1, min(6, H + 2 * pad)))
    S = draw(st.integers(1, min(6, W + 2 * pad)))
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
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(case=spec_and_blocking(), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_shapes_and_blockings(isa, case, seed):
    spec, blocking, bits, small = case
    try:
        op = Conv2d(spec, bits=bits, isa=isa, threads=THREADS, blocking=blocking)
    except PlanError:
        assume(False)
    plan = op.kernels["fprop"].plan
    assert plan.cpb % plan.unroll == 0 and plan.steps_per_flush * plan.unroll <= ref.safe_chain_ref(bits, bits)
    rng = np.random.default_rng(seed)
    top = ref.max_mant(bits)
    limit = min(top, ref.small_mant_limit(spec.C, spec.R, spec.S)) if small else top
    xm, wm = mantissas(rng, spec, limit, limit)
    y = op.fprop(DFPTensor(xm, 0, bits), DFPTensor(wm, -2, bits))
    check_dfp(y, xm, wm, spec, plan.flushes, -2, f"{isa} {plan.blocking.describe()} bits {bits}")


# ------------------------------------------------------------------- float inputs against torch

FLOAT_SPECS = [ConvSpec(2, 17, 20, 9, 11, 3, 3, 1, 1), ConvSpec(1, 64, 33, 14, 14, 3, 3, 2, 1),
               ConvSpec(1, 3, 16, 23, 23, 11, 11, 4, 2), ConvSpec(3, 96, 5, 5, 5, 1, 1, 1, 0)]


@pytest.mark.parametrize("bits", [16, 12, 8])
@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("spec", FLOAT_SPECS, ids=_shape_id)
def test_float_inputs_vs_torch(torch, spec, isa, bits):
    """Float32 inputs are quantized (docs/numerics.md "DFP tensors") and convolved; the result differs from torch's
    conv of the unquantized inputs by at most the quantization error propagated through the conv
    (conv(x,w) - conv(xq,wq) = conv(x - xq, w) + conv(xq, w - wq)) plus the flush bound."""
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((spec.N, spec.C, spec.H, spec.W)) * 3).astype(np.float32)
    w = (rng.standard_normal((spec.K, spec.C, spec.R, spec.S)) * 0.05).astype(np.float32)
    x[0, 0, 0, 0] = -np.abs(x).max() * 1.5       # a negative peak
    op = conv_op(spec, isa, bits)
    y = op.fprop(x, w)
    xqm, ex = ref.quantize_ref(x, bits)
    wqm, ew = ref.quantize_ref(w, bits)
    # The op quantized exactly like the reference: feeding the reference's DFP tensors gives the same bits.
    np.testing.assert_array_equal(y, op.fprop(DFPTensor(xqm, ex, bits), DFPTensor(wqm, ew, bits)))
    xq, wq = np.ldexp(xqm.astype(np.float64), ex), np.ldexp(wqm.astype(np.float64), ew)
    assert np.all(np.abs(xq - x) <= np.ldexp(0.5, ex)) and np.all(np.abs(wq - w) <= np.ldexp(0.5, ew))
    want = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                                      stride=spec.stride, padding=spec.pad).numpy()
    conv = functools.partial(ref.conv_f64, stride=spec.stride, pad=spec.pad)
    quant = conv(np.abs(x - xq), np.abs(w)) + conv(np.abs(xq), np.abs(wq - w))
    flush = ref.dfp_bound(ref.conv_abs(xqm, wqm, spec.stride, spec.pad), op.kernels["fprop"].plan.flushes,
                          np.ldexp(1.0, ex + ew))
    slack = 1e-12 * conv(np.abs(x), np.abs(w)) + 1e-30
    err = np.abs(y - want)
    assert np.all(err <= quant + flush + slack), float(np.max(err / (quant + flush + slack)))
    # and the bound is not vacuous: it is far below the output's magnitude for 12 and 16 bits
    if bits >= 12:
        assert float(np.max(quant + flush)) < 0.05 * float(np.max(np.abs(want)))


# ---------------------------------------------------------------------------- fused max-abs


@pytest.mark.parametrize("isa", DFP_ISAS)
@pytest.mark.parametrize("case", ["random", "negative", "zero", "subnormal_scale", "tails"])
def test_fprop_maxabs_is_max_abs_y(isa, case):
    rng = np.random.default_rng(5)
    spec = ConvSpec(2, 17, 21, 7, 9, 3, 3, 1, 1) if case != "tails" else ConvSpec(3, 5, 33, 5, 13, 3, 2, 2, 1)
    xm, wm = mantissas(rng, spec, 1000, 1000)
    ex, ew = -4, -6
    if case == "negative":            # every output <= 0: max|y| comes from the most negative one
        xm, wm = np.abs(xm), -np.abs(wm)
    elif case == "zero":
        wm = np.zeros_like(wm)
    elif case == "subnormal_scale":   # 2**(ex+ew) is no normal float32: Conv2d scales after the kernel
        ex, ew = -65, -65
    op = conv_op(spec, isa)
    y, m = op.fprop_maxabs(DFPTensor(xm, ex), DFPTensor(wm, ew))
    assert isinstance(m, float)
    assert m == float(np.max(np.abs(y)))
    if case == "zero":
        assert m == 0.0 and not np.any(y)
    else:
        check_dfp(y, xm, wm, spec, op.kernels["fprop"].plan.flushes, ex + ew, isa)


# --------------------------------------------------------------------------------------- threads


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
@pytest.mark.parametrize("spec", [ConvSpec(3, 20, 100, 13, 11, 3, 3, 1, 1), ConvSpec(1, 3, 5, 4, 4, 3, 3, 1, 0)],
                         ids=_shape_id)
def test_threads_bit_identical(spec, isa):
    rng = np.random.default_rng(11)
    precision = ISAS[isa].precision
    if precision == "fp32":
        x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
        w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S)).astype(np.float32)
    else:
        xm, wm = mantissas(rng, spec, 32767, 32767)
        x, w = DFPTensor(xm, -8), DFPTensor(wm, -9)
    results = []
    for threads in (1, 2, 3, 7):
        op = Conv2d(spec, bits=16, isa=isa, threads=threads, precision=precision)   # full-range 16-bit mantissas
        results.append(op.fprop_maxabs(x, w))
    for y, m in results[1:]:
        assert y.tobytes() == results[0][0].tobytes() and m == results[0][1]


# 1x1 layers the thread split cuts by image rows, filter blocks or (WTGRAD) input-channel chunks: K not a multiple
# of 16, few pixels, stride 2, a fully-connected layer.
SPLIT_1X1 = [ConvSpec(3, 40, 24, 7, 5, 1, 1, 1, 0), ConvSpec(2, 33, 17, 5, 5, 1, 1, 2, 0),
             ConvSpec(2, 200, 96, 4, 4, 1, 1, 2, 0), ConvSpec(4, 64, 64, 14, 14, 1, 1, 1, 0),
             ConvSpec(4, 520, 260, 1, 1, 1, 1, 1, 0)]


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
@pytest.mark.parametrize("spec", SPLIT_1X1, ids=_shape_id)
def test_1x1_split_bit_identical_at_any_thread_count(spec, isa):
    """The thread split (image rows x filter blocks) at 1, 2, 3 and 5 threads, with each thread count's default
    blocking and a fixed one: full-range 14-bit mantissas give the same bits every time, into an output
    filled with NaN first, exact where the reference is below 2**24 and within the flush bound elsewhere."""
    rng = np.random.default_rng([sum(spec.shape_key()), 21])
    xm, wm = mantissas(rng, spec, 8191, 8191)
    assert_split_bit_identical(spec, isa, PASS, xm, wm,
                               lambda got, flushes, what: check_dfp(got, xm, wm, spec, flushes, -12, what))


def test_1x1_split_cases_include_shares_of_several_ranges():
    """The cases above run shares of several item ranges (boxes that are not contiguous in item order)."""
    assert_some_share_has_several_ranges(SPLIT_1X1, DFP_ISAS[0], PASS)


# ---------------------------------------------------------------- every output element written


POISON_SPECS = [ConvSpec(3, 17, 33, 7, 9, 3, 3, 1, 1), ConvSpec(1, 5, 100, 13, 13, 5, 5, 2, 2),
                ConvSpec(2, 3, 7, 4, 17, 2, 9, 1, 0), ConvSpec(1, 96, 16, 7, 7, 7, 7, 1, 0)]
POISON_BLOCKINGS = [None, Blocking(kv=3, wb=3, hb=2),  # 22 registers: fits 32, not 16
                    Blocking(kv=1, wb=1, hb=1, order="kn"),
                    Blocking(kv=2, wb=4, hb=3, cpb=3, unroll=1),
                    Blocking(kv=2, wb=2, hb=2, order="np")]


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
@pytest.mark.parametrize("blocking", POISON_BLOCKINGS, ids=lambda b: b.describe() if b else "default")
@pytest.mark.parametrize("spec", POISON_SPECS, ids=_shape_id)
def test_kernel_run_writes_every_output(spec, blocking, isa):
    """Kernel.run on an output pre-filled with NaN: every element (padding lanes included) is written."""
    precision = ISAS[isa].precision
    try:
        # 16 bits: chains of one pair-instruction, FP32 partial sums in registers where they fit
        kernel = dfpgen.compile(spec, "fprop", Numerics(16, 16), isa=isa, blocking=blocking)
    except PlanError:
        pytest.skip("blocking does not fit this ISA's register file")
    plan = kernel.plan
    rng = np.random.default_rng(3)
    xm, wm = mantissas(rng, spec, 30, 30)
    out = aligned_empty(plan.dst_shape, np.float32)
    out.fill(np.nan)
    src_x, src_w = (xm, wm) if precision == "dfp16" else (xm.astype(np.float32), wm.astype(np.float32))
    m = kernel.run(block_input(src_x, plan), block_weights(src_w, plan), out, 1.0, threads=THREADS)
    assert not np.isnan(out).any(), f"{int(np.isnan(out).sum())} of {out.size} outputs never written"
    y = unblock_output(out, plan)
    np.testing.assert_array_equal(y, ref.conv_int(xm, wm, spec.stride, spec.pad).astype(np.float32))
    assert not np.any(out.transpose(0, 1, 4, 2, 3).reshape(spec.N, -1, spec.P, spec.Q)[:, spec.K:])
    assert m == float(np.max(np.abs(y)))


def _offset_copy(a: np.ndarray, offset_bytes: int) -> np.ndarray:
    """A C-contiguous copy of `a` whose data starts `offset_bytes` past a 64-byte boundary."""
    raw = aligned_empty((a.nbytes + 64,), np.uint8)
    out = raw[offset_bytes:offset_bytes + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == offset_bytes and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("isa", DFP_ISAS + FP32_ISAS)
def test_kernel_run_on_unaligned_and_noncontiguous_operands(isa):
    """Kernel.run accepts any C-contiguous arrays (4-byte aligned: one broadcast element); Conv2d accepts
    non-contiguous NCHW/KCRS views. Results are the same bits as from aligned, contiguous operands."""
    spec = ConvSpec(2, 17, 20, 7, 9, 3, 3, 1, 1)
    precision = ISAS[isa].precision
    kernel = dfpgen.compile(spec, "fprop", Numerics(), isa=isa)
    plan = kernel.plan
    rng = np.random.default_rng(9)
    xm, wm = mantissas(rng, spec, 30, 30)
    dt = np.int16 if precision == "dfp16" else np.float32
    bi, bw = block_input(xm.astype(dt), plan), block_weights(wm.astype(dt), plan)
    out = aligned_empty(plan.dst_shape, np.float32)
    kernel.run(bi, bw, out, 1.0, threads=THREADS)
    for offset in (4, 8, 36):
        out2 = _offset_copy(np.full(plan.dst_shape, np.nan, np.float32), offset)
        kernel.run(_offset_copy(bi, offset), _offset_copy(bw, 60 - offset), out2, 1.0, threads=THREADS)
        assert out2.tobytes() == out.tobytes()
    op = conv_op(spec, isa, precision=precision)
    xf = np.asfortranarray(xm)                         # same values, not C-contiguous
    wv = np.ascontiguousarray(wm[:, ::-1])[:, ::-1]      # a negative-stride view of the same values
    assert not xf.flags.c_contiguous and not wv.flags.c_contiguous
    if precision == "dfp16":
        got, want = op.fprop(DFPTensor(xf, 0), DFPTensor(wv, 0)), op.fprop(DFPTensor(xm, 0), DFPTensor(wm, 0))
    else:
        got = op.fprop(xf.astype(np.float32, order="F"), wv.astype(np.float32)[:, ::-1][:, ::-1])
        want = op.fprop(xm.astype(np.float32), wm.astype(np.float32))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, ref.conv_int(xm, wm, 1, 1).astype(np.float32))


# ------------------------------------------------------------------------------------- errors

ERR_SPEC = ConvSpec(2, 5, 7, 6, 6, 3, 3, 1, 1)


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_wrong_shapes_raise_shape_error(isa):
    op = conv_op(ERR_SPEC, isa)
    s = ERR_SPEC
    good_x = DFPTensor(np.zeros((s.N, s.C, s.H, s.W), np.int16), 0)
    good_w = DFPTensor(np.zeros((s.K, s.C, s.R, s.S), np.int16), 0)
    for bad_x in [(s.N, s.C + 1, s.H, s.W), (s.N, s.C, s.H, s.W + 1), (s.C, s.H, s.W), (s.N + 1, s.C, s.H, s.W)]:
        with pytest.raises(ShapeError, match="^x: expected"):
            op.fprop(DFPTensor(np.zeros(bad_x, np.int16), 0), good_w)
        with pytest.raises(ShapeError):
            op.fprop(np.ones(bad_x, np.float32), np.ones(good_w.shape, np.float32))
    for bad_w in [(s.K + 1, s.C, s.R, s.S), (s.K, s.C, s.R, s.S + 1), (s.K, s.C - 1, s.R, s.S)]:
        with pytest.raises(ShapeError, match="^w: expected"):
            op.fprop(good_x, DFPTensor(np.zeros(bad_w, np.int16), 0))
    kernel = op.kernels["fprop"]
    plan = kernel.plan
    bi = block_input(good_x.mant, plan)
    bw = block_weights(good_w.mant, plan)
    out = aligned_zeros(plan.dst_shape, np.float32)   # cast below: garbage NaNs would warn
    with pytest.raises(ShapeError, match="input"):
        kernel.run(bi[:, :, :-1], bw, out)
    with pytest.raises(ShapeError, match="input"):
        kernel.run(bi.astype(np.float32), bw, out)
    with pytest.raises(ShapeError, match="weights"):
        kernel.run(bi, bw.astype(np.int32), out)
    with pytest.raises(ShapeError, match="out"):
        kernel.run(bi, bw, out.astype(np.float64))
    with pytest.raises(ShapeError, match="contiguous"):
        kernel.run(bi, bw, np.asfortranarray(out))


@pytest.mark.parametrize("cpu, isa, instruction", [
    ("sapphirerapids", "avx512_vnni", "vpdpwssd"), ("sapphirerapids", "avx_vnni", "vpdpwssd"),
    ("skylake-avx512", "avx512", "vpmaddwd"), ("znver3", "avx2", "vpmaddwd"),
    ("sapphirerapids", "fp32_avx512", "vfmadd231ps")])
def test_cross_emitted_kernel_inspects_but_does_not_run(cpu, isa, instruction):
    kernel = dfpgen.compile(ERR_SPEC, "fprop", isa=isa, cpu=cpu)
    assert "define void @dfpgen_fprop" in kernel.ir
    assert instruction in kernel.asm
    assert not kernel.executable
    plan = kernel.plan
    args = (np.zeros(plan.src_shape, plan.storage), np.zeros(plan.vec_shape, plan.storage),
            np.zeros(plan.dst_shape, np.float32))
    with pytest.raises(TargetError, match="cannot run"):
        kernel.run(*args)


def test_cross_emitted_default_cpu_kernel_raises_target_error():
    """The brief's spelling: dfpgen.compile(..., cpu='sapphirerapids') with the default ISA."""
    kernel = dfpgen.compile(ERR_SPEC, "fprop", cpu="sapphirerapids")
    assert kernel.plan.isa.name == "avx512_vnni" and "vpdpwssd" in kernel.asm and kernel.ir
    plan = kernel.plan
    with pytest.raises(TargetError):
        kernel.run(np.zeros(plan.src_shape, np.int16), np.zeros(plan.vec_shape, np.int16),
                   np.zeros(plan.dst_shape, np.float32))


MISSING = [name for name in ISAS if not HOST.supports(name)]


@pytest.mark.parametrize("isa", MISSING or [pytest.param(None, marks=pytest.mark.skip("the host has every ISA"))])
def test_isa_the_host_lacks_raises_target_error(isa):
    with pytest.raises(TargetError, match=isa):
        Conv2d(ERR_SPEC, isa=isa, precision=ISAS[isa].precision)
    with pytest.raises(TargetError):
        dfpgen.compile(ERR_SPEC, "fprop", isa=isa)


def test_isa_a_named_cpu_lacks_raises_target_error():
    with pytest.raises(TargetError, match="avx512_vnni"):
        dfpgen.compile(ERR_SPEC, "fprop", isa="avx512_vnni", cpu="znver3")
    with pytest.raises(TargetError, match="avx_vnni"):
        dfpgen.compile(ERR_SPEC, "fprop", isa="avx_vnni", cpu="skylake-avx512")
    with pytest.raises(TargetError):
        dfpgen.compile(ERR_SPEC, "fprop", isa="sse2")
    with pytest.raises(TargetError):
        Conv2d(ERR_SPEC, isa="fp32_avx2")           # an fp32 ISA for a dfp16 op
    with pytest.raises(TargetError):
        dfpgen.compile(ERR_SPEC, "fprop", cpu="pentium4")


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_dfp_tensor_wider_than_numerics_is_not_silently_wrong(isa):
    spec = ConvSpec(1, 64, 16, 3, 3, 3, 3, 1, 0)
    op = conv_op(spec, isa, bits=13)             # safe chain 64 pair-instructions for 13-bit operands
    shapes = {"x": (1, 64, 3, 3), "w": (16, 64, 3, 3)}
    assert_wider_operands_refused(op.fprop, shapes, {"x": "act", "w": "weight"})
    xm, wm = (np.full(shape, max_mantissa(13), np.int16) for shape in shapes.values())
    y = op.fprop(DFPTensor(xm, 0, 13), DFPTensor(wm, 0, 13))   # the widest it takes: within the bound
    check_dfp(y, xm, wm, spec, op.kernels["fprop"].plan.flushes, 0, isa)


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_dfp_tensor_changed_in_place_is_not_stale(isa):
    spec = ConvSpec(1, 5, 7, 4, 4, 3, 3, 1, 1)
    op = Conv2d(spec, bits=16, isa=isa, threads=THREADS)   # takes DFPTensor's default, the full word
    rng = np.random.default_rng(8)
    xm, wm = mantissas(rng, spec, 50, 50)
    x, w = DFPTensor(xm.copy(), 0), DFPTensor(wm.copy(), 0)
    op.fprop(x, w)
    try:
        w.mant[...] = -w.mant
        x.mant[0, 0] += 1
    except ValueError:          # a read-only mantissa array is a fine answer too
        return
    np.testing.assert_array_equal(op.fprop(x, w), ref.conv_int(x.mant, w.mant, 1, 1).astype(np.float32))


@pytest.mark.parametrize("isa", DFP_ISAS[:1])
def test_dfp_tensor_on_a_callers_array_that_changes_is_not_stale(isa):
    """Issue 20 item 2: the tensor owns a copy, so changing the caller's array later changes nothing."""
    spec = ConvSpec(1, 5, 7, 4, 4, 3, 3, 1, 1)
    op = Conv2d(spec, bits=13, isa=isa, threads=THREADS)
    xm, m = mantissas(np.random.default_rng(9), spec, 50, 50)
    x, t = DFPTensor(xm, 0, 13), DFPTensor(m, -10, 13)
    want = ref.exact_to_f32(ref.conv_int(xm, m, 1, 1), -10)
    np.testing.assert_array_equal(op.fprop(x, t), want)
    m *= -1
    xm[0, 0] += 1
    # t's layout was cached by the first call: the result must be that of t's values as they read now,
    # and those must be the values t was built with.
    np.testing.assert_array_equal(op.fprop(x, t), ref.exact_to_f32(ref.conv_int(x.mant, t.mant, 1, 1), -10))
    np.testing.assert_array_equal(op.fprop(x, t), want)


# ----------------------------------------------------------------------------------- FP32 path

FP32_SPECS = [ConvSpec(2, 17, 20, 9, 11, 3, 3, 1, 1), ConvSpec(1, 64, 33, 14, 14, 3, 3, 2, 1),
              ConvSpec(1, 3, 16, 23, 23, 11, 11, 4, 2), ConvSpec(3, 96, 5, 5, 5, 1, 1, 1, 0),
              ConvSpec(1, 1, 1, 1, 1, 1, 1, 1, 0), ConvSpec(1, 130, 7, 6, 6, 10, 2, 1, 2)]


@pytest.mark.parametrize("blocking", [None, Blocking(kv=1, wb=3, hb=2, cpb=5, unroll=5, order="kn")],
                         ids=["default", "kv1w3h2cpb5"])
@pytest.mark.parametrize("isa", FP32_ISAS)
@pytest.mark.parametrize("spec", FP32_SPECS, ids=_shape_id)
def test_fp32_path_within_bound(spec, isa, blocking):
    rng = np.random.default_rng(spec.C + spec.K)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    w = (rng.standard_normal((spec.K, spec.C, spec.R, spec.S)) * 1e-3).astype(np.float32)
    op = conv_op(spec, isa, blocking=blocking, precision="fp32")
    plan = op.kernels["fprop"].plan
    assert plan.storage == "float32" and plan.flushes == 1
    y, m = op.fprop_maxabs(x, w)
    assert y.dtype == np.float32 and y.shape == (spec.N, spec.K, spec.P, spec.Q)
    want = ref.conv_f64(x, w, spec.stride, spec.pad)
    bound = ref.fp32_bound(ref.conv_abs(x, w, spec.stride, spec.pad), spec.C * spec.R * spec.S)
    err = np.abs(y - want)
    assert np.all(err <= bound), float(np.max(err / np.maximum(bound, 1e-300)))
    assert m == float(np.max(np.abs(y)))
    # DFPTensors fed to an FP32 op are used at their values
    xm, wm = mantissas(rng, spec, 30, 30)
    y = op.fprop(DFPTensor(xm, -3), DFPTensor(wm, 2))
    np.testing.assert_array_equal(y, ref.exact_to_f32(ref.conv_int(xm, wm, spec.stride, spec.pad), -1))
