"""INT8 kernels on vpdpbusd (issue 22): the Isa records, the safe chain of offset bytes, the layouts with
the +128 src offset and the correction block, and kernels exact against the integer reference
(tests/oracle_fprop.py), on the host when it has AVX-512 VNNI, cross-emitted everywhere."""

from __future__ import annotations

import numpy as np
import pytest

import dfpgen
from dfpgen import Blocking, Conv2d, ConvSpec, DFPTensor, Numerics
from dfpgen.codegen.layout import block_input, block_weights, transposed_weight_blocks
from dfpgen.core.catalog import select
from dfpgen.core.dfp import offset_reduction_limit, safe_chain
from dfpgen.core.target import ISAS, get_isa, host, named
from dfpgen.errors import NumericsError, PlanError, TargetError
from dfpgen.passes import make_plan
from dfpgen.runtime.execute import prepare

import oracle_backward as ob
import oracle_fprop as ref
from strategies import HOST_INT8, INT8_ISAS

HOST = host()
EMIT = named("sapphirerapids")
THREADS = 2
CHANNEL_PASSES = ["fprop", "bprop"]
PASSES = CHANNEL_PASSES + ["wtgrad"]
needs_vnni = pytest.mark.skipif(not HOST_INT8, reason="the host has no VNNI: 8-bit data runs on the INT16 kernels")

# Strided, padded, 1x1, channel and filter tails, and a layer wider than one channel block.
SHAPES = [
    ConvSpec(1, 1, 1, 1, 1, 1, 1, name="one"),
    ConvSpec(3, 3, 5, 7, 9, 3, 3, 1, 1, name="tiny"),
    ConvSpec(2, 17, 17, 9, 10, 3, 3, 2, 1, name="s2p1"),
    ConvSpec(1, 100, 3, 13, 13, 5, 5, 2, 2, name="c100"),
    ConvSpec(3, 5, 96, 11, 11, 1, 1, 1, 0, name="pw"),
    ConvSpec(1, 3, 16, 23, 23, 11, 11, 4, 0, name="s4"),
    ConvSpec(1, 130, 2, 6, 6, 10, 2, 1, 2, name="tall"),
    ConvSpec(1, 70, 9, 5, 6, 4, 5, 2, 2, name="odd"),
]
# Catalog layers (N=1): a 3x3 padded one, a strided 1x1 and the 7x7 stride-2 stem.
CATALOG = [select(ref_)[0] for ref_ in ("resnet50:res2a_branch2b", "resnet50:res3a_branch1", "resnet50:conv1")]


def _mantissas(rng, spec, limit_x=127, limit_w=127):
    xm = ref.random_mant(rng, (spec.N, spec.C, spec.H, spec.W), limit_x)
    wm = ref.random_mant(rng, (spec.K, spec.C, spec.R, spec.S), limit_w)
    xm.flat[0], wm.flat[-1] = -limit_x, limit_w
    return xm, wm


def _check(y, xm, wm, spec, flushes, scale_exp):
    """Exact where conv(|x|,|w|) < 2**24; within the flush bound elsewhere (one flush: the INT32 sum is exact)."""
    exact = ref.conv_int(xm, wm, spec.stride, spec.pad)
    absc = ref.conv_abs(xm, wm, spec.stride, spec.pad)
    want = ref.exact_to_f32(exact, scale_exp)
    small = absc < 2**24
    np.testing.assert_array_equal(y[small], want[small])
    err = np.abs(y.astype(np.float64) - np.ldexp(exact, scale_exp))
    assert (err <= ref.dfp_bound(absc, flushes, np.ldexp(1.0, scale_exp))).all()


# ------------------------------------------------------------------------------ records and numerics


def test_isa_records_ask_for_groups_of_four():
    for name in INT8_ISAS:
        isa = get_isa(name)
        assert (isa.instruction, isa.group, isa.max_bits, isa.src_offset, isa.kind) == ("vpdpbusd", 4, 8, 128, "vnni")
        assert (isa.src_storage, isa.vec_storage, isa.storage_bytes) == ("uint8", "int8", 1)
    assert get_isa("avx512_vnni_int8").lanes == 16 and get_isa("avx_vnni_int8").lanes == 8
    assert all(get_isa(n).group == 2 for n in ("avx512_vnni", "avx_vnni", "avx512", "avx2"))


def test_int8_isas_are_chosen_only_for_8_bit_operands():
    cpu = named("znver4")
    assert cpu.best_isa("dfp16") == "avx512_vnni" and "avx512_vnni_int8" not in cpu.isas("dfp16")
    assert cpu.best_isa("dfp16", bits=8) == "avx512_vnni_int8"
    assert cpu.best_isa("dfp16", bits=9) == "avx512_vnni"
    assert named("alderlake").best_isa("dfp16", bits=8) == "avx_vnni_int8"
    # No VNNI: 8-bit data keeps the INT16 kernels, and asking for vpdpbusd is refused.
    assert named("skylake-avx512").best_isa("dfp16", bits=8) == "avx512"
    assert named("znver3").best_isa("dfp16", bits=8) == "avx2"
    with pytest.raises(TargetError, match="avx512vnni"):
        named("skylake-avx512").check_isa("avx512_vnni_int8")


def test_safe_chain_of_offset_bytes():
    # INT16 pairs of 8-bit mantissas: 2**31-1 // (2 * 127 * 127), the figure.
    assert safe_chain(8, 8) == 66_572
    # vpdpbusd: four products of u = x + 128 in 1..255 by w in -127..127 per lane: 2**31-1 // (4 * 255 * 127).
    assert safe_chain(8, 8, 4, 128) == (2**31 - 1) // (4 * 255 * 127) == 16_577
    assert safe_chain(4, 8, 4, 128) == (2**31 - 1) // (4 * (7 + 128) * 127)
    assert Numerics(8, 8).chain_on(get_isa("avx512_vnni_int8")) == 16_577
    assert Numerics(8, 8).chain_on(get_isa("avx512_vnni")) == 66_572
    # The correction starts the first chain: every partial sum is at most 128 x 127 per product.
    assert offset_reduction_limit(8, 128) == (2**31 - 1) // (128 * 127) == 132_104
    with pytest.raises(NumericsError, match="chain=20000.*avx512_vnni_int8"):
        Numerics(8, 8, chain=20_000).chain_on(get_isa("avx512_vnni_int8"))


def test_plan_refusals_name_the_field():
    spec = ConvSpec(1, 8, 16, 4, 4, 3, 3, 1, 1)
    with pytest.raises(PlanError, match=r"bits_x=9: .*at most 8 bits"):
        make_plan(spec, Numerics(9, 8), Blocking(), EMIT, "avx512_vnni_int8")
    with pytest.raises(PlanError, match=r"bits_w=14"):
        make_plan(spec, Numerics(8, 14), Blocking(), EMIT, "avx512_vnni_int8")
    with pytest.raises(PlanError, match="saturate"):
        make_plan(spec, Numerics(8, 8, overflow="saturate"), Blocking(), EMIT, "avx512_vnni_int8")
    with pytest.raises(PlanError, match=r"C\*R\*S=147456: .*at most 132104"):
        make_plan(ConvSpec(1, 16384, 16, 3, 3, 3, 3), Numerics(8, 8), Blocking(), EMIT, "avx512_vnni_int8")


# ------------------------------------------------------------------------------------------ layouts


@pytest.mark.parametrize("spec", SHAPES[1:4], ids=lambda s: s.name)
def test_fprop_layouts_offset_src_and_carry_the_correction(spec):
    plan = make_plan(spec, Numerics(8, 8), Blocking(kv=1, wb=1, hb=1, cpb=3, unroll=1), EMIT, "avx512_vnni_int8")
    rng = np.random.default_rng(7)
    xm, wm = _mantissas(rng, spec)
    N, CB, Hp, Wp, ce = plan.src_shape
    assert plan.elem == 4 and ce == plan.cpb * 4 and CB == -(-spec.C // ce)
    b = block_input(xm, plan)
    assert b.dtype == np.uint8 and b.shape == plan.src_shape and b.ctypes.data % 64 == 0
    want = np.full(plan.src_shape, 128, np.int64)               # a stored 128 is a zero: padding included
    p = spec.pad
    for c in range(spec.C):
        cb, rem = divmod(c, ce)
        want[:, cb, p:p + spec.H, p:p + spec.W, rem] = xm[:, c] + 128
    np.testing.assert_array_equal(b, want)
    KB, CBv, R, S, cpb, lanes, elem = plan.vec_shape
    assert CBv == CB + 1 and elem == 4 and plan.corrected
    v = block_weights(wm, plan)
    assert v.dtype == np.int8
    for k in range(spec.K):
        kb, lane = divmod(k, lanes)
        for c in range(spec.C):
            cb, rem = divmod(c, ce)
            np.testing.assert_array_equal(v[kb, cb, :, :, rem // 4, lane, rem % 4], wm[k, c])
    corr = np.ascontiguousarray(v[:, CB, 0, 0, 0]).view(np.int32).reshape(KB * lanes)
    sums = np.zeros(KB * lanes, np.int64)
    sums[:spec.K] = wm.sum(axis=(1, 2, 3), dtype=np.int64)
    np.testing.assert_array_equal(corr, -128 * sums)


def test_mantissas_wider_than_a_byte_are_refused():
    spec = SHAPES[1]
    plan = make_plan(spec, Numerics(8, 8), Blocking(), EMIT, "avx512_vnni_int8")
    xm = np.zeros((spec.N, spec.C, spec.H, spec.W), np.int16)
    xm[0, 0, 0, 0] = 128
    with pytest.raises(NumericsError, match="uint8"):
        block_input(xm, plan)
    wm = np.zeros((spec.K, spec.C, spec.R, spec.S), np.int16)
    wm[0, 0, 0, 0] = -129
    with pytest.raises(NumericsError, match="int8"):
        block_weights(wm, plan)


# --------------------------------------------------------------------------------- cross-emission


@pytest.mark.parametrize("cpu, isa", [("sapphirerapids", "avx512_vnni_int8"), ("znver4", "avx512_vnni_int8"),
                                      ("sapphirerapids", "avx_vnni_int8"), ("alderlake", "avx_vnni_int8")])
@pytest.mark.parametrize("pass_name", PASSES)
def test_cross_emitted_kernels_run_vpdpbusd(pass_name, cpu, isa):
    kernel = dfpgen.compile(ConvSpec(1, 32, 32, 8, 8, 3, 3, 2, 1), pass_name, Numerics(8, 8), isa=isa, cpu=cpu)
    asm = kernel.asm
    assert "vpdpbusd" in asm and "vpdpwssd" not in asm and not kernel.executable
    if cpu == "alderlake":            # no AVX-512: the VEX form
        assert "{vex}\tvpdpbusd" in asm
    assert "@corr_steps" in kernel.ir and "correction:" in kernel.ir


# ------------------------------------------------------------------------------ kernels, exact


def _operands(rng, spec, pass_name, limit=127):
    """Mantissas of a pass's (src, vec) with both extremes present, and its exact integer result and
    sum of |products| (the independent oracles)."""
    shapes = {"fprop": ((spec.N, spec.C, spec.H, spec.W), (spec.K, spec.C, spec.R, spec.S)),
              "bprop": ((spec.N, spec.K, spec.P, spec.Q), (spec.K, spec.C, spec.R, spec.S)),
              "wtgrad": ((spec.N, spec.C, spec.H, spec.W), (spec.N, spec.K, spec.P, spec.Q))}[pass_name]
    a, b = (ref.random_mant(rng, shape, limit) for shape in shapes)
    a.flat[0], b.flat[-1] = -limit, limit
    if pass_name == "fprop":
        f = lambda x, y: ref.conv_int(x, y, spec.stride, spec.pad)
    elif pass_name == "bprop":
        f = lambda x, y: ob.bprop_int(x, y, spec.H, spec.W, spec.stride, spec.pad)
    else:
        f = lambda x, y: ob.wtgrad_int(x, y, spec.R, spec.S, spec.stride, spec.pad)
    return a, b, f(a, b), f(np.abs(a).astype(np.int64), np.abs(b).astype(np.int64))


def _run(kernel, a, b, threads=THREADS):
    ready = prepare(kernel, a, b)
    ready.run(1.0, threads)
    return ready.result()


def _exact_where_small(y, exact, absc, flushes):
    """Exact where the sum of |products| < 2**24; within the flush bound elsewhere (one flush: exact INT32)."""
    small = absc < 2**24
    np.testing.assert_array_equal(y[small], exact[small].astype(np.float32))
    assert (np.abs(y - exact) <= ref.dfp_bound(absc, flushes, 1.0)).all()


@needs_vnni
@pytest.mark.parametrize("isa", HOST_INT8)
@pytest.mark.parametrize("spec", SHAPES, ids=lambda s: s.name)
@pytest.mark.parametrize("pass_name", PASSES)
def test_exact_against_the_integer_reference(pass_name, spec, isa):
    rng = np.random.default_rng([spec.C, spec.K, spec.R])
    a, b, exact, absc = _operands(rng, spec, pass_name)
    kernel = dfpgen.compile(spec, pass_name, Numerics(8, 8), isa=isa)
    assert kernel.plan.isa.name == isa and kernel.plan.corrected
    _exact_where_small(_run(kernel, a, b), exact, absc, kernel.plan.flushes)


@needs_vnni
@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
@pytest.mark.parametrize("pass_name", PASSES)
def test_catalog_layers_exact(pass_name, spec):
    rng = np.random.default_rng(spec.C)
    a, b, exact, absc = _operands(rng, spec, pass_name)
    kernel = dfpgen.compile(spec, pass_name, Numerics(8, 8), isa=HOST_INT8[0])
    _exact_where_small(_run(kernel, a, b), exact, absc, kernel.plan.flushes)


@needs_vnni
@pytest.mark.parametrize("spec", CATALOG[:1], ids=lambda s: s.name)
def test_fprop_through_conv2d_with_dfp_tensors(spec):
    rng = np.random.default_rng(spec.K)
    xm, wm = _mantissas(rng, spec)
    op = Conv2d(spec, bits=8, isa=HOST_INT8[0], threads=THREADS)
    y = op.fprop(DFPTensor(xm, -2, 8), DFPTensor(wm, -6, 8))
    _check(y, xm, wm, spec, op.kernels["fprop"].plan.flushes, -8)


@needs_vnni
@pytest.mark.parametrize("blocking", [Blocking(kv=1, wb=1, hb=1, cpb=1, unroll=1), Blocking(kv=3, wb=2, hb=3, cpb=5),
                                      Blocking(kv=2, wb=5, hb=1, cpb=8, unroll=2, order="kn"),
                                      Blocking(kv=1, wb=3, hb=2, order="np")], ids=Blocking.describe)
@pytest.mark.parametrize("chain", [None, 3])
@pytest.mark.parametrize("pass_name", CHANNEL_PASSES)
def test_exact_for_any_blocking_and_with_flushes(pass_name, blocking, chain):
    """A short chain makes several flushes per output: the correction rides only the first one."""
    spec = ConvSpec(2, 45, 40, 7, 9, 3, 3, 2, 1, name="flushes")
    rng = np.random.default_rng(11)
    a, b, exact, _ = _operands(rng, spec, pass_name, 20)     # every partial sum below 2**24: exact
    numerics = Numerics(8, 8, chain=chain) if chain else Numerics(8, 8)
    kernel = dfpgen.compile(spec, pass_name, numerics, isa=HOST_INT8[0], blocking=blocking)
    if chain:
        assert kernel.plan.flushes > 1
    for threads in (1, 3):
        np.testing.assert_array_equal(_run(kernel, a, b, threads), exact.astype(np.float32))


@needs_vnni
def test_float_operands_through_conv2d():
    spec = SHAPES[2]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S)).astype(np.float32)
    y = Conv2d(spec, bits=8, isa=HOST_INT8[0], threads=THREADS).fprop(x, w)
    qx, qw = dfpgen.quantize(x, 8), dfpgen.quantize(w, 8)
    np.testing.assert_array_equal(y, ref.exact_to_f32(ref.conv_int(qx.mant, qw.mant, spec.stride, spec.pad),
                                                      qx.exp + qw.exp))


# ------------------------------------------------------------------------ tuning, cost model, peak


def test_knob_space_plans_for_int8_and_halves_the_predicted_cycles():
    from dfpgen.tuning.cost import default_blocking, predicted_cycles
    from dfpgen.tuning.tune import knob_space, rank_by_cost

    spec = select("resnet50:res3a_branch2b")[0]
    cpu = named("znver4")
    space = knob_space(spec, "fprop", Numerics(8, 8), cpu, "avx512_vnni_int8")
    ranked = rank_by_cost(space, spec, "fprop", Numerics(8, 8), cpu, "avx512_vnni_int8")
    assert space and ranked
    b8 = default_blocking(spec, Numerics(8, 8), cpu, "avx512_vnni_int8", "fprop", 1)
    b13 = default_blocking(spec, Numerics(13, 13), cpu, "avx512_vnni", "fprop", 1)
    c8 = predicted_cycles(make_plan(spec, Numerics(8, 8), b8, cpu, "avx512_vnni_int8", "fprop"))
    c13 = predicted_cycles(make_plan(spec, Numerics(13, 13), b13, cpu, "avx512_vnni", "fprop"))
    assert 0.4 < c8 / c13 < 0.6            # four products an instruction instead of two


def test_peak_probe_of_vpdpbusd_counts_four_products():
    from dfpgen.tuning.peak import probe_ir

    ir = probe_ir("avx512_vnni_int8", 4)
    assert ir.count("asm \"vpdpbusd") == 4 and "<64 x i8>" in ir
    assert "avx512_vnni_int8" in named("znver4").all_isas() and "avx512_vnni_int8" not in named("znver3").all_isas()


@needs_vnni
@pytest.mark.parametrize("spec, blocking, chain", [
    (ConvSpec(2, 45, 40, 7, 9, 3, 3, 2, 1), Blocking(kv=1, wb=1, hb=1, unroll=1, rb=1), None),
    (ConvSpec(2, 45, 40, 7, 9, 3, 3, 2, 1), Blocking(kv=2, wb=3, hb=2, unroll=2, rb=3), 3),
    (ConvSpec(3, 17, 33, 9, 10, 3, 3, 1, 1), Blocking(kv=3, wb=2, hb=3, rb=4), None),
    (ConvSpec(8, 20, 20, 1, 1, 1, 1), Blocking(kv=2, wb=4, hb=1, rb=1), None),   # more blocks than vectors of an image
], ids=["rb1", "rb3-chain3", "rb4", "fc-rb1"])
def test_wtgrad_exact_over_reduction_blocks(spec, blocking, chain):
    """Every reduction block's first chain starts from that block's correction."""
    rng = np.random.default_rng(5)
    a, b, exact, _ = _operands(rng, spec, "wtgrad", 20)
    numerics = Numerics(8, 8, chain=chain) if chain else Numerics(8, 8)
    kernel = dfpgen.compile(spec, "wtgrad", numerics, isa=HOST_INT8[0], blocking=blocking)
    assert len(kernel.plan.reduction_blocks) > 1 and kernel.plan.vec_shape[0] > spec.N
    for threads in (1, 2):
        np.testing.assert_array_equal(_run(kernel, a, b, threads), exact.astype(np.float32))


def _catalog_sweep() -> list[ConvSpec]:
    seen = {}
    for net in ("resnet50", "googlenet_v1", "vgg16", "alexnet"):
        for spec in select(net, batch=1):
            seen.setdefault(spec.shape_key(), spec)
    return list(seen.values())


@pytest.mark.slow
@needs_vnni
@pytest.mark.parametrize("spec", _catalog_sweep(), ids=lambda s: s.name.replace("/", "."))
@pytest.mark.parametrize("pass_name", PASSES)
def test_catalog_sweep_exact(pass_name, spec):
    """Every distinct layer of resnet50, googlenet_v1, vgg16 and alexnet at N=1, full-range 8-bit mantissas
    (slow: run with -m slow)."""
    rng = np.random.default_rng(len(spec.name) * 7919 + spec.C)
    a, b, exact, absc = _operands(rng, spec, pass_name)
    kernel = dfpgen.compile(spec, pass_name, Numerics(8, 8), isa=HOST_INT8[0])
    _exact_where_small(_run(kernel, a, b), exact, absc, kernel.plan.flushes)


# ------------------------------------------------------------------------------------------ runtime selection

@pytest.mark.parametrize("bits, bits_w", [(8, 8), (6, 8), (8, 12), (13, 13)])
def test_layers_take_vpdpbusd_exactly_when_every_operand_has_8_bits_or_fewer(bits, bits_w):
    """Conv2d picks each pass's ISA from its operands' bits: the INT8 kernels where both fit 8 bits and the
    host has VNNI, the INT16 kernels otherwise (a host without VNNI keeps them for 8-bit data too)."""
    from dfpgen import passes
    from dfpgen.runtime.blocked import to_blocked
    from dfpgen.runtime.blocked_conv import run_blocked

    spec = ConvSpec(2, 24, 32, 6, 6, 3, 3, 1, 1, "pick")
    op = Conv2d(spec, bits=bits, bits_w=bits_w, threads=2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 24, 6, 6)).astype(np.float32)
    w = rng.standard_normal((32, 24, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 32, 6, 6)).astype(np.float32)
    for conv_pass in passes.ALL:
        n = op.pass_numerics(conv_pass)
        narrow = max(n.bits_x, n.bits_w) <= 8
        want = "vpdpbusd" if narrow and HOST_INT8 else ISAS[HOST.best_isa("dfp16")].instruction
        assert op.kernel(conv_pass).plan.isa.instruction == want
    # The blocked runtime moves the offset layouts (with numpy) and gives Conv2d's results.
    np.testing.assert_array_equal(run_blocked(op, passes.FPROP, to_blocked(x, 2), w).nchw(1), op.fprop(x, w))
    np.testing.assert_array_equal(run_blocked(op, passes.BPROP, to_blocked(dy, 2), w).nchw(1), op.bprop(dy, w))
    np.testing.assert_array_equal(run_blocked(op, passes.WTGRAD, to_blocked(x, 2), to_blocked(dy, 2)),
                                  op.wtgrad(x, dy))



def _reference_corrections(dst, plan, conv_pass):
    """The corrections as numpy computed them before the generated kernel (sums over the blocked bytes)."""
    def corr(sums):
        return (-128 * sums.astype(np.int64)).astype(np.int32).view(np.int8).reshape(sums.shape + (4,))
    if conv_pass == "fprop":
        CB = dst.shape[1] - 1
        dst[:, CB, 0, 0, 0] = corr(dst[:, :CB].sum(axis=(1, 2, 3, 4, 6), dtype=np.int64))
    elif conv_pass == "bprop":
        _, _, R, S, cpb, _, _ = dst.shape
        KB = transposed_weight_blocks(plan)
        for i, (rows, cols) in enumerate(plan.layout.phases):
            sums = dst[:, :KB][:, :, list(rows)][:, :, :, list(cols)].sum(axis=(1, 2, 3, 4, 6), dtype=np.int64)
            block, vector = divmod(i, R * S * cpb)
            dst[(slice(None), KB + block) + np.unravel_index(vector, (R, S, cpb))] = corr(sums)
    else:
        N, (_, KB, P, Qe, lanes, _) = plan.spec.N, dst.shape
        rows = dst[:N].sum(axis=(3, 5), dtype=np.int64).transpose(0, 2, 1, 3).reshape(N * P, KB, lanes)
        for b, (first, count) in enumerate(plan.layout.block_rows):
            image, vector = divmod(b, P * Qe)
            dst[N + image, :, vector // Qe, vector % Qe] = corr(rows[first:first + count].sum(axis=0))


@pytest.mark.parametrize("isa", INT8_ISAS)
@pytest.mark.parametrize("spec", SHAPES + [ConvSpec(3, 40, 36, 9, 9, 3, 3, 2, 1, name="s2wide")], ids=lambda s: s.name)
@pytest.mark.parametrize("pass_name", PASSES)
def test_corrections_equal_numpy_sums(pass_name, spec, isa):
    """Each pass's corrections table (which vectors each correction sums, where it goes), run by the generated
    kernel on the host and by numpy for a named CPU, equals the sums numpy takes over the blocked layout."""
    conv_pass = dfpgen.passes.get(pass_name)
    targets = [t for t in (HOST, EMIT) if t.supports(isa)]
    for target in targets:
        plan = make_plan(spec, Numerics(8, 8), Blocking(rb=2) if pass_name == "wtgrad" else Blocking(), target,
                         isa, pass_name)
        if not plan.corrected:
            continue
        rng = np.random.default_rng(spec.C)
        dst = rng.integers(-128, 128, plan.vec_shape, dtype=np.int8)
        dst.reshape(-1)[:plan.vec_shape[-1] * 4] = -128   # the largest sums the bytes can make
        want = dst.copy()
        _reference_corrections(want, plan, pass_name)
        conv_pass.vec_finish(dst, plan)
        np.testing.assert_array_equal(dst, want)
