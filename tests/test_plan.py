"""The planner (dfpgen/plan.py) and the default blocking (dfpgen/cost.py), without running kernels.

Plans are made for named CPUs (dfpgen.core.target.named), so everything here runs on any machine.
Offsets are checked against numpy's own ravel_multi_index over the layout shapes (which also
raises when a coordinate falls outside the array: an out-of-bounds access in the kernel).
"""

from __future__ import annotations

from math import ceil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dfpgen import Blocking, ConvSpec, Numerics
from dfpgen.codegen.plan import register_need
from dfpgen.core.catalog import select
from dfpgen.core.target import ISAS, named
from dfpgen.errors import PlanError, TargetError
from dfpgen.passes import make_plan
from dfpgen.tuning import cost
from dfpgen.tuning.cost import default_blocking

import oracle_fprop as ref

CPUS = ("znver3", "skylake-avx512", "sapphirerapids", "alderlake")
CPU_ISAS = [(cpu, isa) for cpu in CPUS for isa in named(cpu).isas("dfp16") + named(cpu).isas("fp32")]
ALL = named("sapphirerapids")
SPEC = ConvSpec(1, 64, 64, 16, 28, 3, 3, 1, 1)

# ----------------------------------------------------------------------------- PlanError cases


@pytest.mark.parametrize("cpu, isa, blocking, need, have", [
    ("znver3", "avx2", Blocking(kv=4, wb=8, hb=1), 37, 16),
    ("znver3", "avx2", Blocking(kv=1, wb=15, hb=1), 17, 16),
    ("alderlake", "avx_vnni", Blocking(kv=2, wb=4, hb=2), 19, 16),
    ("skylake-avx512", "avx512", Blocking(kv=4, wb=7, hb=1), 33, 32),
    ("sapphirerapids", "avx512_vnni", Blocking(kv=2, wb=5, hb=3), 33, 32),
    ("sapphirerapids", "fp32_avx512", Blocking(kv=1, wb=16, hb=2), 34, 32),
])
def test_register_budget_exceeded(cpu, isa, blocking, need, have):
    with pytest.raises(PlanError, match=rf"needs {need} vector registers.*has {have}") as info:
        make_plan(SPEC, Numerics(), blocking, named(cpu), isa)
    msg = str(info.value)
    assert f"hb={blocking.hb}" in msg and f"wb={blocking.wb}" in msg and f"kv={blocking.kv}" in msg
    assert register_need(blocking.hb, blocking.wb, blocking.kv) == need


@pytest.mark.parametrize("cpu, isa, blocking", [
    ("znver3", "avx2", Blocking(kv=2, wb=6, hb=1)),          # 12 + 2 + 1 = 15
    ("znver3", "avx2", Blocking(kv=1, wb=14, hb=1)),         # exactly 16
    ("sapphirerapids", "avx512_vnni", Blocking(kv=3, wb=4, hb=2)),   # 24 + 3 + 1 = 28
    ("sapphirerapids", "avx512_vnni", Blocking(kv=1, wb=15, hb=2)),  # exactly 32
])
def test_register_budget_fits(cpu, isa, blocking):
    plan = make_plan(SPEC, Numerics(), blocking, named(cpu), isa)
    assert plan.registers == register_need(blocking.hb, blocking.wb, blocking.kv, plan.flush_in_registers) \
        <= named(cpu).vector_registers


def test_unroll_must_divide_cpb():
    for cpb, unroll in [(16, 3), (4, 8), (6, 4), (5, 2)]:
        with pytest.raises(PlanError, match=rf"unroll={unroll}: must divide\D*\b{cpb}\b"):
            make_plan(SPEC, Numerics(8, 8), Blocking(cpb=cpb, unroll=unroll), ALL, "avx512_vnni")
    with pytest.raises(PlanError, match="unroll"):
        make_plan(SPEC, Numerics(), Blocking(cpb=16, unroll=0), ALL, "fp32_avx512")


@pytest.mark.parametrize("bits, unroll", [(16, 2), (15, 8), (14, 32), (16, 16)])
def test_unroll_longer_than_chain(bits, unroll):
    chain = ref.safe_chain_ref(bits, bits)
    with pytest.raises(PlanError, match=f"unroll={unroll}.*exceeds the accumulate chain {chain}"):
        make_plan(SPEC, Numerics(bits, bits), Blocking(cpb=32, unroll=unroll), ALL, "avx512_vnni")
    # at the chain it plans; FP32 has no chain
    make_plan(SPEC, Numerics(bits, bits), Blocking(cpb=32, unroll=min(chain, 32)), ALL, "avx512_vnni")
    make_plan(SPEC, Numerics(bits, bits), Blocking(cpb=32, unroll=unroll), ALL, "fp32_avx512")


def test_bad_blocking_fields():
    for blocking, pattern in [(Blocking(order="nkx"), "order="), (Blocking(order="NK"), "order="),
                              (Blocking(kv=0), "kv="), (Blocking(wb=0), "wb="), (Blocking(hb=-1), "hb="),
                              (Blocking(cpb=0), "cpb="), (Blocking(cpb=65), "cpb=")]:
        with pytest.raises(PlanError, match=pattern):
            make_plan(SPEC, Numerics(), blocking, ALL, "avx2")
    with pytest.raises(PlanError, match="pass"):
        make_plan(SPEC, Numerics(), Blocking(), ALL, "avx2", "backprop")
    with pytest.raises(TargetError, match="avx512_vnni"):
        make_plan(SPEC, Numerics(), Blocking(), named("znver3"), "avx512_vnni")


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_saturate_on_pmadd_isa(isa):
    with pytest.raises(PlanError, match=rf"overflow='saturate'.*vpdpwssds.*isa='{isa}'"):
        make_plan(SPEC, Numerics(overflow="saturate", chain=4), Blocking(), ALL, isa)
    for vnni in ("avx512_vnni", "avx_vnni"):
        assert make_plan(SPEC, Numerics(overflow="saturate", chain=4), Blocking(), ALL, vnni).chain == 4


# ------------------------------------------------------------------ arithmetic and offset tables


def check_plan(plan) -> None:
    """Every derived field of an FPROP plan against its definition (independent arithmetic)."""
    s, b, num = plan.spec, plan.blocking, plan.numerics
    isa = ISAS[plan.isa.name]
    int_acc = isa.precision == "dfp16"
    elem = 2 if int_acc else 1
    assert plan.pass_name == "fprop"
    assert (plan.elem, plan.lanes, plan.storage) == (elem, isa.lanes, "int16" if int_acc else "float32")
    cpb, unroll = plan.cpb, plan.unroll
    assert 1 <= unroll <= cpb and cpb % unroll == 0 and (b.cpb, b.unroll) == (cpb, unroll)
    CB = ceil(ceil(s.C / elem) / cpb)
    KB = ceil(s.K / plan.lanes)
    # the recorded blocking is the one used: clipped to the layer
    assert b.kv <= KB and b.hb <= s.P and b.wb <= s.Q
    # layouts (docs/architecture.md "Layouts": NCHWc with pairs; weights [K/k][C/(2c)][R][S][c][k][2])
    Hp, Wp = s.H + 2 * s.pad, s.W + 2 * s.pad
    assert plan.src_shape == (s.N, CB, Hp, Wp, cpb * elem)
    assert plan.vec_shape == (KB, CB, s.R, s.S, cpb, plan.lanes, elem)
    assert plan.dst_shape == (s.N, KB, s.P, s.Q, plan.lanes)
    assert plan.batch == s.N
    assert plan.src_batch_stride == int(np.prod(plan.src_shape[1:]))
    assert plan.dst_batch_stride == int(np.prod(plan.dst_shape[1:]))
    # the reduction: steps in (cb, r, s, g) order, offsets by the layout formula
    G = cpb // unroll
    assert plan.steps == CB * s.R * s.S * G == len(plan.src_step_offsets) == len(plan.vec_step_offsets)
    t = 0
    for cb in range(CB):
        for r in range(s.R):
            for c in range(s.S):
                for g in range(G):
                    assert plan.src_step_offsets[t] == np.ravel_multi_index((0, cb, r, c, g * unroll * elem),
                                                                           plan.src_shape)
                    assert plan.vec_step_offsets[t] == np.ravel_multi_index((0, cb, r, c, g * unroll, 0, 0),
                                                                          plan.vec_shape)
                    t += 1
    # every FPROP call reduces the whole table
    calls = plan.call_table
    assert len(calls) >= 1
    assert set(calls[:, 4].tolist()) == {0} and set(calls[:, 5].tolist()) == {plan.steps}
    # flushes: chunks of at most `chain` pair-instructions, as long as the chain allows
    assert plan.flushes == ceil(plan.steps / plan.steps_per_flush)
    if int_acc:
        L = num.effective_chain
        assert plan.chain <= L and plan.steps_per_flush * unroll <= L
        assert plan.chain == plan.steps_per_flush * unroll
        assert plan.steps_per_flush == min(plan.steps, L // unroll)   # no needless flushes
        if num.overflow == "exact":
            assert plan.chain <= ref.safe_chain_ref(num.bits_x, num.bits_w)
    else:
        assert plan.flushes == 1 and plan.steps_per_flush == plan.steps and plan.chain == 0
    # items: contiguous ranges of calls
    starts = plan.item_starts
    assert starts[0] == 0 and starts[-1] == len(calls) and list(starts) == sorted(starts)
    assert plan.items == plan.batch * (len(starts) - 1)
    # tiles: offsets by the layout formula, relative to the call's bases
    assert len({(tl.h, tl.w, tl.v) for tl in plan.tiles}) == len(plan.tiles)
    assert set(calls[:, 0].tolist()) == set(range(len(plan.tiles)))
    for tile in plan.tiles:
        assert tile.h <= b.hb and tile.w <= b.wb and tile.v <= b.kv
        pixels = [(i, j) for i in range(tile.h) for j in range(tile.w)]
        assert len(tile.bcast) == unroll and len(tile.weights) == unroll and len(tile.out) == len(pixels)
        for p in range(unroll):
            assert list(tile.bcast[p]) == [np.ravel_multi_index((0, 0, i * s.stride, j * s.stride, p * elem),
                                                                plan.src_shape) for i, j in pixels]
            assert list(tile.weights[p]) == [np.ravel_multi_index((v, 0, 0, 0, p, 0, 0), plan.vec_shape)
                                             for v in range(tile.v)]
        for k, (i, j) in enumerate(pixels):
            assert list(tile.out[k]) == [np.ravel_multi_index((0, v, i, j, 0), plan.dst_shape) for v in range(tile.v)]
    fp32_partials = plan.flush_in_registers      # FP32 partial sums held in registers (short chains)
    if fp32_partials:
        assert int_acc and plan.flushes > 1
    assert plan.registers == max(register_need(tl.h, tl.w, tl.v, fp32_partials) for tl in plan.tiles) \
        <= plan.target.vector_registers
    assert register_need(b.hb, b.wb, b.kv, fp32_partials) <= plan.target.vector_registers


def check_calls_semantics(plan) -> None:
    """Each accumulator of each call computes the right output from the right operands: the calls write
    every output vector of an image exactly once, and for the first and last reduction step and
    element, the addresses they read are those of x[.., (p*stride + r, q*stride + s), channel element]
    and w[kb, cb, r, s, element] for that output (numpy's ravel_multi_index raises on any coordinate
    outside the arrays: no out-of-bounds access)."""
    s, elem, unroll = plan.spec, plan.elem, plan.unroll
    out_img = plan.dst_shape[1:]
    in_img = plan.src_shape[1:]
    written = np.zeros(out_img[:3], np.int64)           # [KB][P][Q]
    G = plan.cpb // unroll
    last = plan.steps - 1
    g_last = last % G
    cb_last = last // (G * s.R * s.S)
    probes = [(0, 0, 0, 0, 0), (last, cb_last, s.R - 1, s.S - 1, g_last)]
    for tile_index, src, vec, dst, _, _ in plan.call_table.tolist():
        tile = plan.tiles[tile_index]
        for k in range(tile.h * tile.w):
            for v in range(tile.v):
                kb, p, q, lane = np.unravel_index(dst + tile.out[k][v], out_img)
                assert lane == 0
                written[kb, p, q] += 1
                for t, cb, r, ss, g in probes:
                    for e in {0, unroll - 1}:
                        want_in = np.ravel_multi_index(
                            (cb, p * s.stride + r, q * s.stride + ss, (g * unroll + e) * elem + elem - 1), in_img)
                        assert src + plan.src_step_offsets[t] + tile.bcast[e][k] + elem - 1 == want_in
                        want_w = np.ravel_multi_index((kb, cb, r, ss, g * unroll + e, plan.lanes - 1, elem - 1),
                                                      plan.vec_shape)
                        assert vec + plan.vec_step_offsets[t] + tile.weights[e][v] + plan.lanes * elem - 1 == want_w
    assert (written == 1).all(), "every output vector is written by exactly one accumulator"


@st.composite
def plan_inputs(draw):
    stride, pad = draw(st.integers(1, 4)), draw(st.integers(0, 3))
    H, W = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    R, S = draw(st.integers(1, min(11, H + 2 * pad))), draw(st.integers(1, min(11, W + 2 * pad)))
    spec = ConvSpec(draw(st.integers(1, 4)), draw(st.integers(1, 300)), draw(st.integers(1, 300)), H, W, R, S,
                    stride, pad)
    overflow = draw(st.sampled_from(["exact", "exact", "wrap", "saturate"]))
    bits_x, bits_w = draw(st.integers(2, 16)), draw(st.integers(2, 16))
    chain = None
    if overflow == "wrap" or draw(st.booleans()):
        chain = draw(st.integers(1, 300))
        if overflow == "exact":
            chain = min(chain, ref.safe_chain_ref(bits_x, bits_w))
    numerics = Numerics(bits_x, bits_w, "nearest", overflow, chain)
    cpb = draw(st.one_of(st.none(), st.integers(1, 64)))
    unroll = None if cpb is None else draw(st.one_of(
        st.none(), st.sampled_from([d for d in range(1, cpb + 1) if cpb % d == 0])))
    blocking = Blocking(draw(st.integers(1, 6)), draw(st.integers(1, 30)), draw(st.integers(1, 4)), cpb, unroll,
                        draw(st.sampled_from(["nk", "kn"])))
    cpu, isa = draw(st.sampled_from(CPU_ISAS))
    return spec, numerics, blocking, cpu, isa


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(plan_inputs())
def test_plan_invariants(case):
    spec, numerics, blocking, cpu, isa = case
    try:
        plan = make_plan(spec, numerics, blocking, named(cpu), isa)
    except PlanError as exc:
        msg = str(exc)
        assert any(word in msg for word in ("registers", "unroll", "saturate", "too large")), msg
        assume(False)
    check_plan(plan)
    check_calls_semantics(plan)
    assert plan.summary() and all(isinstance(line, str) for line in plan.summary())


@pytest.mark.parametrize("blocking", [Blocking(kv=2, wb=3, hb=1), Blocking(kv=1, wb=5, hb=2, cpb=3, order="kn")],
                         ids=["kv2w3h1", "kv1w5h2cpb3kn"])
@pytest.mark.parametrize("bits", [16, 15, 13, 8])
@pytest.mark.parametrize("cpu, isa", CPU_ISAS)
def test_plan_arithmetic_fixed_cases(cpu, isa, bits, blocking):
    for spec in (SPEC, ConvSpec(3, 17, 100, 9, 9, 3, 3, 2, 0), ConvSpec(1, 3, 5, 1, 1, 1, 1),
                 ConvSpec(1, 512, 9, 6, 6, 6, 6, 1, 0)):
        plan = make_plan(spec, Numerics(bits, bits), blocking, named(cpu), isa)
        check_plan(plan)
        check_calls_semantics(plan)


def test_fp32_partials_in_registers_only_when_they_fit():
    """Short chains may keep FP32 partial sums in registers; the planner doubles the accumulator count
    for them and falls back to the output tile when the doubled block does not fit."""
    short = Numerics(16, 16)   # the full word: chains of one pair-instruction
    small = make_plan(SPEC, short, Blocking(kv=2, wb=3, hb=1), named("znver3"), "avx2")       # 2*6+3 = 15
    large = make_plan(SPEC, short, Blocking(kv=2, wb=6, hb=1), named("znver3"), "avx2")       # 2*12+3 = 27
    for plan in (small, large):
        check_plan(plan)
    assert not large.flush_in_registers and large.registers == 15
    if small.flush_in_registers:
        assert small.registers == 15
    long_chain = make_plan(SPEC, Numerics(8, 8), Blocking(kv=2, wb=3, hb=1), named("znver3"), "avx2")
    assert not long_chain.flush_in_registers and long_chain.flushes == 1


# ------------------------------------------------------------------ default blocking on catalogs


def _catalog_specs():
    seen = {}
    for net in ("resnet50", "googlenet_v1", "vgg16", "alexnet"):
        for spec in select(net, batch=1):
            seen.setdefault(spec.shape_key(), spec)
    return list(seen.values())


CATALOG = _catalog_specs()
# default_blocking depends on the target only through the ISA and the register count: one CPU per pair.
BLOCKING_TARGETS = list({(isa, named(cpu).vector_registers): (cpu, isa) for cpu, isa in CPU_ISAS}.values())


def _sample(specs):
    """One layer per kernel kind (R, S, stride, pad, FC or not), the smallest of each: a fast cross-section."""
    kinds = {}
    for spec in sorted(specs, key=lambda s: s.macs):
        kinds.setdefault((spec.R, spec.S, spec.stride, spec.pad, spec.H == 1), spec)
    return list(kinds.values())


CATALOG_SAMPLE = _sample(CATALOG)
# default_blocking is slow on the large first layers (hundreds of candidates over 112x112 outputs):
# they get two representative targets here and every target in the slow full sweep.
CHEAP_SAMPLE = [spec for spec in CATALOG_SAMPLE if spec.P * spec.Q <= 28 * 28]
BIG_SAMPLE = [spec for spec in CATALOG_SAMPLE if spec.P * spec.Q > 28 * 28]


def _check_default(spec, numerics, target, isa):
    blocking = default_blocking(spec, numerics, target, isa)
    plan = make_plan(spec, numerics, blocking, target, isa)
    assert plan.registers <= target.vector_registers, (spec.name, blocking)
    check_plan(plan)


@pytest.mark.parametrize("cpu, isa, numerics", [
    (cpu, isa, numerics) for cpu, isa in CPU_ISAS
    # the full word (chain 1, FP32 sums in registers where they fit), the default 14 bits (chain 16), 13 and 8
    for numerics in ([Numerics(16, 16), Numerics(), Numerics(13, 13), Numerics(8, 8)] if ISAS[isa].precision == "dfp16"
                     else [Numerics()])])
def test_default_blocking_valid_catalog_sample(cpu, isa, numerics):
    for spec in CHEAP_SAMPLE:
        _check_default(spec, numerics, named(cpu), isa)


@pytest.mark.parametrize("cpu, isa", [("znver3", "avx2"), ("sapphirerapids", "avx512_vnni")])
@pytest.mark.parametrize("spec", BIG_SAMPLE, ids=lambda s: f"{s.name}_{s.R}x{s.S}")
def test_default_blocking_valid_big_first_layers(spec, cpu, isa):
    _check_default(spec, Numerics(), named(cpu), isa)


@pytest.mark.slow
@pytest.mark.parametrize("cpu, isa", BLOCKING_TARGETS)
def test_default_blocking_valid_for_every_catalog_layer(cpu, isa):
    """Every distinct layer of the four catalogs on every ISA of znver3, skylake-avx512, sapphirerapids
    and alderlake (deduplicated by ISA and register count, the only target facts the choice uses)."""
    for spec in CATALOG:
        _check_default(spec, Numerics(), named(cpu), isa)


@pytest.mark.parametrize("cpu, isa", CPU_ISAS)
def test_default_blocking_deterministic(cpu, isa):
    for spec in CHEAP_SAMPLE[:4]:
        assert default_blocking(spec, Numerics(), named(cpu), isa) == default_blocking(spec, Numerics(), named(cpu), isa)


# ------------------------------------------------------- reduction blocks and item orders


@pytest.mark.parametrize("rb", [None, 1, 3, 1000])
def test_wtgrad_reduction_blocks_partition_the_rows(rb):
    """WTGRAD's blocks are whole output rows, in order, covering every step once; items are (vector
    block, filter tap row block); the flush count sums every block's flushes."""
    spec = ConvSpec(3, 20, 40, 11, 10, 3, 3, 1, 1)
    plan = make_plan(spec, Numerics(bits_x=13, bits_w=13), Blocking(kv=2, wb=3, hb=1, rb=rb), named("znver3"),
                     "avx2", "wtgrad")
    blocks = plan.reduction_blocks
    row_steps = plan.steps // (spec.N * spec.P)
    assert blocks[0][0] == 0 and sum(n for _, n in blocks) == plan.steps
    assert all(b1 == b0 + n0 for (b0, n0), (b1, _) in zip(blocks, blocks[1:]))
    assert all(n % row_steps == 0 for _, n in blocks)
    assert plan.blocking.rb == min(rb or plan.blocking.rb, spec.N * spec.P)
    assert [n // row_steps for _, n in blocks[:-1]] == [plan.blocking.rb] * (len(blocks) - 1)
    # (vector block, r, s, input-channel chunk) items: 3 x 9 taps x 3 chunks of the 7 channel tiles (3, 3, 1),
    # the fewest chunks that make WTGRAD_ITEMS = 64 items
    tiles = ceil(spec.C / plan.blocking.wb)
    assert plan.items == ceil(ceil(spec.K / plan.lanes) / 2) * spec.R * spec.S * 3 and tiles == 7
    assert [d.count for d in plan.work.dims] == [3, 9, 3]
    per_block = sum(ceil(n / plan.steps_per_flush) for _, n in blocks)
    assert plan.flushes == per_block


@pytest.mark.parametrize("ref, isa, rb", [
    ("resnet50:res2a_branch2b", "avx2", 2),      # 28 q-pairs a row: 32 pairs a block take 2 rows
    ("resnet50:res4a_branch2b", "avx2", 5),      # 7 q-pairs a row
    ("resnet50:res5a_branch2b", "avx2", 16),     # dw 9 MB, past OUTPUT_CACHED_BYTES: 64 pairs, 4 a row
    ("vgg16:fc6", "avx2", 8),                    # one pair a row: the whole batch of 8
    ("resnet50:res2a_branch2b", "avx512_vnni", 2),
    ("resnet50:res2a_branch2b", "fp32_avx2", 9),  # the FP32 rule: x rows within 160 KB
    ("resnet50:res4a_branch2b", "fp32_avx2", 8),
])
def test_wtgrad_default_reduction_block(ref, isa, rb):
    """The default rb: DFP kernels take BLOCK_PAIRS pair-instructions per call and block (64 when dw
    is past the cached size); the FP32 baseline keeps its x rows within FP32_BLOCK_BYTES."""
    from dfpgen.passes import wtgrad as plan_wtgrad
    spec = select(ref, batch=8)[0]
    cpu = "sapphirerapids" if isa == "avx512_vnni" else "znver3"
    plan = make_plan(spec, Numerics(13, 13), Blocking(kv=2, wb=2, hb=1), named(cpu), isa, "wtgrad")
    assert plan.blocking.rb == rb
    if plan.int_accumulate:
        pairs = plan_wtgrad.BLOCK_PAIRS if spec.K * spec.C * spec.R * spec.S * 4 <= plan_wtgrad.OUTPUT_CACHED_BYTES \
            else plan_wtgrad.BLOCK_PAIRS_LARGE_OUTPUT
        row_pairs = plan.vec_shape[3]
        assert rb == min(spec.N * spec.P, ceil(pairs / row_pairs))


def test_wtgrad_bad_rb():
    with pytest.raises(PlanError, match="rb="):
        make_plan(SPEC, Numerics(), Blocking(rb=0), named("znver3"), "avx2", "wtgrad")


def test_block_steps_is_the_slice_within_each_block():
    from dfpgen.codegen.calls import block_steps
    table = np.array([[0, 0, 0, 0, 0, 10, ], [0, 0, 0, 0, 4, 3], [0, 0, 0, 0, 9, 0]])
    got = block_steps(table, ((0, 5), (5, 5)))
    np.testing.assert_array_equal(got, [[5, 5], [1, 2], [0, 0]])


@pytest.mark.parametrize("pass_name", ["fprop", "bprop"])
def test_order_np_walks_rows_before_filter_blocks(pass_name):
    """Order "np" holds the same calls as "nk", one item per (row block, filter block) with the row
    blocks outermost; and the default picks it on vpmaddwd ISAs for images past L2."""
    spec = ConvSpec(2, 40, 40, 9, 9, 3, 3, 1, 1)
    target = named("znver3")
    nk, np_ = (make_plan(spec, Numerics(), Blocking(kv=2, wb=3, hb=2, order=o), target, "avx2", pass_name)
               for o in ("nk", "np"))
    assert sorted(map(tuple, nk.call_table.tolist())) == sorted(map(tuple, np_.call_table.tolist()))
    assert nk.items == np_.items and not np_.batch_inner
    first_dst = np_.call_table[np.array(np_.item_starts[:-1]), 3]
    vectors = ceil((spec.K if pass_name == "fprop" else spec.C) / np_.lanes)
    out_block = int(np.prod(np_.dst_shape[2:]))                 # dst elements per vector
    blocks = len(range(0, vectors, 2))
    # the first row block's items take every filter block, then the next row block starts at block 0
    assert list(first_dst[:blocks + 1] // out_block) == list(range(0, vectors, 2)) + [0]
    big = ConvSpec(8, 64, 64, 56, 56, 3, 3, 1, 1)
    assert default_blocking(big, Numerics(13, 13), target, "avx2", pass_name).order == "np"
    assert default_blocking(ConvSpec(8, 64, 64, 14, 14, 3, 3, 1, 1), Numerics(13, 13), target, "avx2",
                            pass_name).order == "nk"


@pytest.mark.parametrize("spec", [ConvSpec(8, 64, 64, 56, 56, 3, 3, 1, 1, "res2a"),
                                  ConvSpec(8, 128, 128, 28, 28, 3, 3, 1, 1, "res3a"),
                                  ConvSpec(8, 256, 256, 14, 14, 3, 3, 1, 1, "res4a")], ids=lambda s: s.name)
def test_vpmaddwd_wtgrad_default_leaves_registers_for_the_pinned_chain(spec):
    """The WTGRAD vpmaddwd rule: blocks needing more than 13 of 16 registers are priced as spilling,
    and among the rest the most vectors per broadcast win (kv4 x 2x1 on the ResNet-50 3x3 layers)."""
    target = named("znver3")
    blocking = default_blocking(spec, Numerics(13, 13), target, "avx2", "wtgrad")
    assert register_need(blocking.hb, blocking.wb, blocking.kv) <= target.vector_registers - cost.WTGRAD_TEMPORARIES
    assert (blocking.kv, blocking.wb, blocking.hb) == (4, 2, 1)
    plans = {b: make_plan(spec, Numerics(13, 13), Blocking(*b), target, "avx2", "wtgrad")
             for b in ((4, 2, 1), (2, 2, 3), (5, 2, 1), (2, 5, 1))}
    cycles = {b: cost.predicted_cycles(p) for b, p in plans.items()}
    assert cycles[(4, 2, 1)] < min(cycles[(2, 2, 3)], cycles[(5, 2, 1)], cycles[(2, 5, 1)])


@pytest.mark.parametrize("pass_name", ["fprop", "bprop"])
@pytest.mark.parametrize("cpu,isa", [("znver3", "avx2"), ("skylake-avx512", "avx512")])
def test_vpmaddwd_defaults_take_one_vector_of_pairs_a_step(pass_name, cpu, isa):
    """The vpmaddwd FPROP/BPROP defaults keep a multi-vector channel block but step through it one
    vector's worth of pairs at a time (cost.STEP_VECTORS; shorter steps measured faster on Zen 3)."""
    spec = ConvSpec(8, 128, 128, 28, 28, 3, 3, 1, 1, "res3a")
    blocking = default_blocking(spec, Numerics(13, 13), named(cpu), isa, pass_name)
    lanes = ISAS[isa].lanes
    assert blocking.unroll == cost.STEP_VECTORS * lanes
    assert blocking.cpb > blocking.unroll


@pytest.mark.parametrize("pass_name", ["fprop", "bprop"])
@pytest.mark.parametrize("spec", [ConvSpec(8, 64, 64, 56, 56, 3, 3, 1, 1, "res2a"),
                                  ConvSpec(8, 256, 256, 14, 14, 3, 3, 1, 1, "res4a")], ids=lambda s: s.name)
def test_wide_vpdpwssd_defaults_take_fewer_loads_per_multiply_accumulate(spec, pass_name):
    """On 32-register targets the vpdpwssd FPROP/BPROP rule prices loads at VNNI_LOADS_PER_CYCLE:
    kv4 x 3x2 (10 loads per 24 vpdpwssd) beats kv2 x 7x2 (16 per 28), and ties go to flat blocks."""
    target = named("sapphirerapids")
    blocking = default_blocking(spec, Numerics(13, 13), target, "avx512_vnni", pass_name)
    assert (blocking.kv, blocking.wb, blocking.hb) == (4, 3, 2)
    cycles = {b: cost.predicted_cycles(make_plan(spec, Numerics(13, 13), Blocking(*b), target, "avx512_vnni",
                                                 pass_name)) for b in ((4, 3, 2), (4, 2, 3), (2, 7, 2), (3, 8, 1))}
    assert cycles[(4, 3, 2)] == cycles[(4, 2, 3)] < min(cycles[(2, 7, 2)], cycles[(3, 8, 1)])


# ----------------------------------------------------------------------------- the lazy call table


def eager_grid(vectors, rows, cols, src, vec, dst, steps, rows_outer, item_cols, tiles):
    """The call table rows of one grid as CallsBuilder.grid stacked them before calls were described
    (the reference: this copies that code; `tiles` is the builder's (h, w, v) -> index, filled in as it was),
    and its item ends: each (vector, row) block's columns, or each of its runs of `item_cols`."""
    v0 = np.array([b[0] for b in vectors])[:, None, None]
    r0 = np.array([b[0] for b in rows])[None, :, None]
    c0 = np.array([b[0] for b in cols])[None, None, :]
    shape = (len(vectors), len(rows), len(cols))
    sizes = np.broadcast_arrays(np.array([b[1] for b in vectors])[:, None, None],
                                np.array([b[1] for b in rows])[None, :, None],
                                np.array([b[1] for b in cols])[None, None, :])
    index = np.empty(shape, dtype=np.int64)
    combos = {}
    for v in {b[1] for b in vectors}:
        for h in {b[1] for b in rows}:
            for w in {b[1] for b in cols}:
                mask = (sizes[0] == v) & (sizes[1] == h) & (sizes[2] == w)
                if mask.any():
                    combos[(h, w, v)] = (int(np.argmax(mask.ravel())), mask)
    for key, (_, mask) in sorted(combos.items(), key=lambda kv: kv[1][0]):
        index[mask] = tiles.setdefault(key, len(tiles))
    row_term = lambda b: np.asarray(b)[None, :, None] if np.ndim(b) else b * r0
    offsets = [np.broadcast_to(a * v0 + row_term(b) + c * c0 + d, shape) for a, b, c, d in (src, vec, dst)]
    block = np.stack([index, *offsets, np.full(shape, steps[0]), np.full(shape, steps[1])], axis=-1)
    if rows_outer:
        block = block.transpose(1, 0, 2, 3)
    calls, per_block = index.size, len(cols)
    runs = item_cols if item_cols is not None else [(0, per_block)]
    return block.reshape(-1, 6), [per_block * k + first + count for k in range(calls // per_block)
                                  for first, count in runs]


def eager_plan(monkeypatch, spec, numerics, blocking, cpu, isa, pass_name):
    """The plan, and its call table, item starts, steps per flush and flushes as the eager planner made them."""
    from dfpgen.codegen import plan as plan_module
    grids, original = [], plan_module.CallsBuilder.grid

    def recording(self, vectors, rows, cols, src, vec, dst, steps, rows_outer=False, item_cols=None):
        grids.append((vectors, rows, cols, src, vec, dst, steps, rows_outer, item_cols))
        return original(self, vectors, rows, cols, src, vec, dst, steps, rows_outer, item_cols)

    with monkeypatch.context() as m:
        m.setattr(plan_module.CallsBuilder, "grid", recording)
        plan = make_plan(spec, numerics, blocking, named(cpu), isa, pass_name)
    tiles, blocks, starts = {}, [np.zeros((0, 6), dtype=np.int64)], [0]
    for g in grids:
        block, ends = eager_grid(*g, tiles)
        starts += [starts[-1] + e for e in ends] if ends else []
        blocks.append(block)
    table = np.concatenate(blocks)
    counts = plan_module.block_steps(table, plan.reduction_blocks)
    longest = int(counts.max(initial=0))
    chain = plan.numerics.effective_chain if plan.int_accumulate else 0
    per_flush = max(1, min(longest, chain // plan.unroll)) if chain else max(1, longest)
    _, output = np.unique(table[:, 3], return_inverse=True)
    per_call = (-(-counts // per_flush)).sum(axis=1)
    flushes = max(1, int(np.bincount(output.ravel(), weights=per_call).max(initial=0)))
    assert [(h, w, v) for h, w, v in tiles] == [(t.h, t.w, t.v) for t in plan.tiles]
    return plan, table, tuple(starts), per_flush, flushes


def eager_cycles(plan, table):
    """cost.predicted_cycles as it summed over every row of the call table (the reference: a copy of that code)."""
    rate, pmadd, pmadd_wtgrad = cost.MAC_RATE[plan.isa.kind], cost._pmadd_rules(plan), cost._pmadd_wtgrad(plan)
    loads_per_cycle = cost.PMADD_LOADS_PER_CYCLE if pmadd else \
        cost.VNNI_LOADS_PER_CYCLE if cost._vnni_wide_fprop_bprop(plan) else cost.LOADS_PER_CYCLE
    spill_free = plan.target.vector_registers - (cost.WTGRAD_TEMPORARIES if pmadd_wtgrad else cost.PMADD_TEMPORARIES)
    per_tile = []
    for tile in plan.tiles:
        acc, broadcasts = tile.accumulators, tile.h * tile.w
        if pmadd_wtgrad:
            loads = tile.v / cost.WTGRAD_VECTOR_LOADS_PER_CYCLE + broadcasts / cost.WTGRAD_BROADCASTS_PER_CYCLE
        else:
            loads = (tile.v + broadcasts) / loads_per_cycle
        step = max(plan.unroll * acc / rate, plan.unroll * loads)
        if (pmadd or pmadd_wtgrad) and register_need(tile.h, tile.w, tile.v, plan.flush_in_registers) > spill_free:
            step *= cost.SPILL_PENALTY
        per_tile.append((step + cost.STEP_OVERHEAD, acc * cost.FLUSH_CYCLES[plan.flush_in_registers] + 2 * acc))
    if not len(table):
        return 0.0
    from dfpgen.codegen.calls import block_steps
    tiles, counts = table[:, 0], block_steps(table, plan.reduction_blocks)
    step = np.array([t[0] for t in per_tile])[tiles][:, None]
    flush = np.array([t[1] for t in per_tile])[tiles][:, None]
    flushes = np.maximum(1, -(-counts // plan.steps_per_flush))
    streaming = pmadd and plan.blocking.order != "np" and \
        plan.src_batch_stride * np.dtype(plan.storage).itemsize > cost.L2_IMAGE_BYTES
    return float((counts * step + flushes * flush).sum()) * plan.batch * (cost.STREAMING_PENALTY if streaming else 1.0)


LAZY_SPECS = [
    ConvSpec(2, 24, 40, 9, 11, 3, 3, 1, 1),                                      # odd sizes, tails on every axis
    ConvSpec(1, 16, 48, 9, 11, 1, 1, 2, 0),                                      # strided 1x1
    ConvSpec(2, 8, 8, 12, 12, 5, 3, 2, 2, groups=2, dilation=2).per_group(),     # groups, dilation, stride 2
    ConvSpec(1, 20, 36, 13, 10, 3, 4, 3, 1, stride_w=2, pad_w=2, pad_bottom=0, pad_right=3),  # asymmetric
    ConvSpec(3, 6, 70, 7, 5, 2, 2, 1, 0, dilation=3, dilation_w=1),              # stride < kernel extent
    ConvSpec(4, 72, 10, 1, 1, 1, 1, 1, 0),                                       # FC
]
LAZY_BLOCKINGS = [None, Blocking(2, 3, 1), Blocking(1, 4, 2, order="np"), Blocking(3, 2, 3, order="kn"),
                  Blocking(1, 1, 1, rb=1), Blocking(2, 5, 2, rb=3), Blocking(4, 2, 1, order="np", rb=7)]


@pytest.mark.parametrize("pass_name", ["fprop", "bprop", "wtgrad"])
@pytest.mark.parametrize("cpu, isa, numerics", [("sapphirerapids", "avx512_vnni", Numerics(16, 16)),
                                                ("znver3", "avx2", Numerics(13, 13)),
                                                ("alderlake", "fp32_avx2", Numerics())])
def test_lazy_call_table_is_the_eager_one(monkeypatch, pass_name, cpu, isa, numerics):
    """Plans describe their calls (grids) instead of stacking them: the call table built on demand, the item
    starts, flush counts and predicted cycles equal what the eager planner computed from the stacked table."""
    checked = 0
    for spec in LAZY_SPECS:
        for blocking in LAZY_BLOCKINGS:
            if blocking is None:
                blocking = default_blocking(spec, numerics, named(cpu), isa, pass_name)
            try:
                plan, table, starts, per_flush, flushes = eager_plan(monkeypatch, spec, numerics, blocking, cpu, isa,
                                                                     pass_name)
            except PlanError:
                continue
            assert "call_table" not in plan.__dict__               # nothing built the table while planning
            assert plan.call_count == len(table) == plan.call_words.shape[0]
            np.testing.assert_array_equal(plan.call_table, table)
            np.testing.assert_array_equal(plan.call_words, table)
            assert plan.item_starts == starts
            assert (plan.steps_per_flush, plan.flushes) == (per_flush, flushes)
            assert cost.predicted_cycles(plan) == pytest.approx(eager_cycles(plan, table), rel=1e-12)
            checked += 1
    assert checked >= 25


# ------------------------------------------------------------------------------ the thread split

# 1x1 layers where the split matters, with odd extents: K not a multiple of 16, few pixels, stride 2, FC.
SPLIT_SPECS = [ConvSpec(8, 64, 64, 14, 14, 1, 1, 1, 0), ConvSpec(3, 40, 24, 7, 5, 1, 1, 1, 0),
               ConvSpec(2, 33, 17, 5, 5, 1, 1, 2, 0), ConvSpec(5, 96, 200, 2, 3, 1, 1, 1, 0),
               ConvSpec(8, 300, 1000, 1, 1, 1, 1, 1, 0), ConvSpec(2, 20, 40, 11, 10, 3, 3, 2, 1)]
SPLIT_BLOCKINGS = [None, Blocking(kv=2, wb=3, hb=1, order="kn"), Blocking(kv=1, wb=4, hb=2, order="np"),
                   Blocking(kv=3, wb=5, hb=1, rb=2)]


def item_outputs(plan, item: int) -> set:
    """The output vectors (dst offsets) the calls of one work item write."""
    per = plan.items_per_batch
    n, j = (item % plan.batch, item // plan.batch) if plan.batch_inner else (item // per, item % per)
    out = set()
    for t, _, _, dst, _, _ in plan.call_table[plan.item_starts[j]:plan.item_starts[j + 1]].tolist():
        out.update(n * plan.dst_batch_stride + dst + o for offsets in plan.tiles[t].out for o in offsets)
    return out


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("pass_name", ["fprop", "bprop", "wtgrad"])
def test_split_gives_each_thread_a_box_of_its_own_outputs(pass_name, threads):
    """Each share of plan.split(threads) is one box of units along the plan's split dimensions (image rows x
    filter blocks; WTGRAD: vector blocks x taps x channel chunks), its item ranges ascending and disjoint;
    the shares cover every item once and write disjoint sets of outputs that together are all of them."""
    target, checked = named("sapphirerapids"), 0
    for spec in SPLIT_SPECS:
        for blocking in SPLIT_BLOCKINGS:
            blocking = blocking or default_blocking(spec, Numerics(14, 14), target, "avx512_vnni", pass_name, threads)
            plan = make_plan(spec, Numerics(14, 14), blocking, target, "avx512_vnni", pass_name)
            split = plan.split(threads)
            units, _ = plan.work.coordinates()
            assert 1 <= len(split.shares) <= threads and split.ranges == sum(map(len, split.shares))
            assert len(split.parts) == len(plan.work.dims) and np.prod(split.parts) >= len(split.shares)
            seen, written = np.zeros(plan.items, np.int64), set()
            for share in split.shares:
                assert all(b < e for b, e in share) and all(e0 < b1 for (_, e0), (b1, _) in zip(share, share[1:]))
                items = np.concatenate([np.arange(b, e) for b, e in share])
                seen[items] += 1
                box = [np.unique(units[d, items]) for d in range(len(plan.work.dims))]
                assert all(u[-1] - u[0] + 1 == len(u) for u in box), "a share's units along a dimension are contiguous"
                assert np.prod([len(u) for u in box]) == len(items), "a share is a whole box"
                outputs = set().union(*(item_outputs(plan, int(i)) for i in items))
                assert not outputs & written, "two threads write the same output"
                written |= outputs
            assert (seen == 1).all()
            assert len(written) == np.prod(plan.dst_shape) // plan.lanes
            checked += 1
    assert checked == len(SPLIT_SPECS) * len(SPLIT_BLOCKINGS)


def test_split_keeps_weights_or_inputs_apart():
    """What the split is for: an FC layer's threads own filter blocks (each reads its part of the weights, not
    all of them); a 56x56 layer's own image rows; WTGRAD of 64 output channels at kv 2 owns dw by its two vector
    blocks at 2 threads, and at 3 by channel chunks (input channels) rather than leave a thread idle."""
    target = named("sapphirerapids")
    plan = lambda spec, p, b: make_plan(spec, Numerics(14, 14), b, target, "avx512_vnni", p)
    fc = plan(ConvSpec(8, 2048, 1000, 1, 1, 1, 1), "fprop", Blocking(kv=4, wb=1, hb=1))
    assert fc.split(2).parts == (1, 2) and fc.split(4).parts == (1, 4)
    big = plan(ConvSpec(8, 64, 256, 56, 56, 1, 1), "fprop", Blocking(kv=4, wb=3, hb=2))
    assert big.split(2).parts == (2, 1) and [len(s) for s in big.split(2).shares] == [1, 1]
    wt = plan(ConvSpec(8, 64, 64, 56, 56, 1, 1), "wtgrad", Blocking(kv=2, wb=13, hb=1))
    assert [(d.name, d.count) for d in wt.work.dims] == [("filters", 2), ("taps", 1), ("channels", 5)]
    assert wt.split(2).parts == (2, 1, 1) and wt.split(2).shares == (((0, 5),), ((5, 10),))
    assert wt.split(3).parts == (1, 1, 3) and len(wt.split(3).shares) == 3


def test_split_balances_the_work_not_the_item_count():
    """BPROP at stride 2 of a 1x1 layer: three of the four phases have no taps, so their items cost nothing;
    the rows are cut by cost, so each of 3 threads gets a third of the work (up to one row block), where
    equal item counts would give one thread half of it."""
    plan = make_plan(ConvSpec(3, 32, 32, 12, 12, 1, 1, 2, 0), Numerics(14, 14), Blocking(kv=2, wb=3, hb=1),
                     named("sapphirerapids"), "avx512_vnni", "bprop")
    _, costs = plan.work.coordinates()
    loads = [sum(costs[b:e].sum() for b, e in share) for share in plan.split(3).shares]
    assert max(loads) <= costs.sum() / 3 + costs.max() * plan.work.dims[1].count
    assert len(plan.split(3).shares) == 3


def test_split_score_is_the_busiest_thread():
    """shares() returns the candidate with the smallest score, and a Split's load is that score."""
    from dfpgen.codegen import split as S
    p = make_plan(ConvSpec(4, 256, 96, 9, 9, 1, 1), Numerics(14, 14), Blocking(kv=2, wb=3, hb=1),
                  named("sapphirerapids"), "avx512_vnni", "fprop")
    units, costs = p.work.coordinates()
    best = p.split(3)
    for parts in S.candidates(p.work, 3):
        assert S.score(p.work, parts, units, costs)[0] >= best.load - 1e-6
    assert best.load == pytest.approx(S.partition(p.work, best.parts).load)
    assert S.shares(p.work, 1).load == pytest.approx(S.partition(p.work, (1,) * len(p.work.dims)).load)
