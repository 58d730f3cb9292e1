"""The INT32 accumulate chain and the overflow policies (docs/numerics.md "The accumulate chain", "Overflow policies").

Worst-case operands (every mantissa at +-(2**(b-1) - 1), signs arranged so every product has the same
sign) are run for every bit width and compared bit for bit with `reference.emulate_flushes`, which
models the kernel's chunks: exact INT32 chunk sums (policy 'exact'), sums mod 2**32 ('wrap'), or a
per-instruction clamp ('saturate', vpdpwssds); each chunk is then converted to FP32 and added with an fma.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import dfpgen
from dfpgen import Blocking, Conv2d, ConvSpec, DFPTensor, Numerics
from dfpgen.core.target import host, named
from dfpgen.errors import NumericsError, PlanError
from dfpgen.passes import make_plan

import oracle_fprop as ref

HOST = host()
DFP_ISAS = HOST.isas("dfp16")
VNNI = ("avx512_vnni", "avx_vnni")
PMADD = ("avx512", "avx2")
THREADS = 2

# pair-instructions per output (C*R*S/2) must exceed L(b) for a second flush; past bits 7 that needs
# tensors of hundreds of MB, so bits <= 6 reuse the bits-7 shape (one long chunk, no flush).
_LONG = {16: (64, 3), 15: (64, 3), 14: (64, 3), 13: (64, 3), 12: (64, 3), 11: (256, 3), 10: (512, 5),
         9: (1024, 6), 8: (2048, 9), 7: (4096, 12)}
MULTI_FLUSH_BITS = tuple(_LONG)


def long_spec(bits: int) -> ConvSpec:
    C, R = _LONG.get(bits, _LONG[7])
    return ConvSpec(1, C, 17, R, R, R, R, 1, 0, name=f"long{bits}")


def worst_operands(spec: ConvSpec, bits: int, case: str):
    """All-maximum mantissas: 'max' (every product +M*M), 'min' (every product -M*M), and
    'alternating' (x and w alternate sign over channels so the products stay aligned: output channels
    of even k sum -M*M's, odd k sum +M*M's)."""
    M = ref.max_mant(bits)
    x = np.full((spec.N, spec.C, spec.H, spec.W), M, np.int16)
    w = np.full((spec.K, spec.C, spec.R, spec.S), M, np.int16)
    if case == "min":
        x = -x
    elif case == "alternating":
        sign_c = np.where(np.arange(spec.C) % 2 == 0, 1, -1).astype(np.int16)
        sign_k = np.where(np.arange(spec.K) % 2 == 0, 1, -1).astype(np.int16)
        x = x * sign_c[None, :, None, None]
        w = -w * sign_c[None, :, None, None] * sign_k[:, None, None, None]
    return x.astype(np.int16), w.astype(np.int16)


@functools.lru_cache(maxsize=64)
def op_for(spec: ConvSpec, isa: str, bits: int, overflow: str = "exact", chain: int | None = None,
           blocking: Blocking | None = None) -> Conv2d:
    return Conv2d(spec, bits=bits, overflow=overflow, chain=chain, isa=isa, threads=THREADS, blocking=blocking)


def emulate(xm, wm, spec, plan, policy, scale_exp=0):
    return ref.emulate_flushes(xm, wm, spec.stride, spec.pad, cpb=plan.cpb, unroll=plan.unroll,
                               steps_per_flush=plan.steps_per_flush, policy=policy, scale_exp=scale_exp)


# ------------------------------------------------------------------------------------- exact


@pytest.mark.parametrize("case", ["max", "min", "alternating"])
@pytest.mark.parametrize("bits", range(2, 17))
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_exact_policy_worst_case_operands(isa, bits, case):
    spec = long_spec(bits)
    op = op_for(spec, isa, bits)
    plan = op.kernels["fprop"].plan
    L = ref.safe_chain_ref(bits, bits)
    assert plan.numerics.safe_chain == L and plan.numerics.overflow == "exact"
    assert plan.chain <= L and plan.steps_per_flush * plan.unroll <= L
    if bits in MULTI_FLUSH_BITS:
        assert plan.flushes > 1, f"shape too short to exercise a flush: {plan.summary()}"
    xm, wm = worst_operands(spec, bits, case)
    y = op.fprop(DFPTensor(xm, -1, bits), DFPTensor(wm, 1, bits))
    exact = ref.conv_int(xm, wm, spec.stride, spec.pad)
    # bit for bit the exact INT32 chunks flushed into FP32 (no chunk wrapped or saturated) ...
    np.testing.assert_array_equal(y, emulate(xm, wm, spec, plan, "exact"))
    # ... which is the exact result within the flush bound, and the exact result itself below 2**24
    absc = ref.conv_abs(xm, wm, spec.stride, spec.pad)
    assert np.all(np.abs(y - exact) <= ref.dfp_bound(absc, plan.flushes))
    small = absc < 2**24
    np.testing.assert_array_equal(y[small], exact[small].astype(np.float32))
    if case == "alternating":
        assert np.all(y[:, 0::2] < 0) and np.all(y[:, 1::2] > 0)


@pytest.mark.parametrize("case", ["max", "alternating"])
@pytest.mark.parametrize("bits", [16, 15, 13])
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_exact_policy_worst_case_with_padding(isa, bits, case):
    """Border outputs see fewer taps; every output is still exactly the emulated chunk sum."""
    spec = ConvSpec(2, 37, 9, 5, 6, 3, 3, 1, 1)
    op = op_for(spec, isa, bits)
    plan = op.kernels["fprop"].plan
    assert plan.flushes > 1
    xm, wm = worst_operands(spec, bits, case)
    y = op.fprop(DFPTensor(xm, 0, bits), DFPTensor(wm, 0, bits))
    np.testing.assert_array_equal(y, emulate(xm, wm, spec, plan, "exact"))


def _flush_mode_blocking(mode: str) -> Blocking:
    """A register block whose FP32 partial sums fit beside the INT32 accumulators ('registers') or
    only fit without them ('memory': doubled, the block exceeds the host's register file)."""
    regs = HOST.vector_registers
    if mode == "registers":
        return Blocking(kv=1, wb=2, hb=1)
    wb = (regs - 2) // 2 + 1
    assert 2 * wb + 2 > regs >= wb + 2
    return Blocking(kv=1, wb=wb, hb=1)


@pytest.mark.parametrize("mode", ["registers", "memory"])
@pytest.mark.parametrize("case", ["max", "alternating"])
@pytest.mark.parametrize("bits", [16, 15])
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_exact_policy_both_flush_targets(isa, bits, case, mode):
    """Short chains flush either into FP32 partial sums held in registers or into the output tile; both
    must give the same bits as the emulated chunk sums."""
    spec = ConvSpec(1, 64, 9, 5, 18, 3, 3, 1, 1)
    op = op_for(spec, isa, bits, blocking=_flush_mode_blocking(mode))
    plan = op.kernels["fprop"].plan
    assert plan.flushes > 1
    if hasattr(plan, "flush_in_registers"):
        assert plan.flush_in_registers == (mode == "registers"), plan.summary()
    xm, wm = worst_operands(spec, bits, case)
    y = op.fprop(DFPTensor(xm, 2, bits), DFPTensor(wm, -7, bits))
    np.testing.assert_array_equal(y, emulate(xm, wm, spec, plan, "exact", scale_exp=-5))


# -------------------------------------------------------------------------------------- wrap

WRAP_CASES = [(8, None), (5, Blocking(unroll=1)), (3, None), (64, None)]


@pytest.mark.parametrize("chain, blocking", WRAP_CASES, ids=lambda v: str(v) if not isinstance(v, Blocking) else "u1")
@pytest.mark.parametrize("case", ["max", "min", "alternating"])
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_wrap_policy_gives_wrapped_int32(isa, case, chain, blocking):
    spec = ConvSpec(1, 64, 17, 4, 4, 3, 3, 1, 1)
    op = op_for(spec, isa, 16, "wrap", chain, blocking)
    plan = op.kernels["fprop"].plan
    assert plan.numerics.overflow == "wrap" and plan.chain <= chain
    assert plan.steps_per_flush * plan.unroll > ref.safe_chain_ref(16, 16)   # past the safe bound
    xm, wm = worst_operands(spec, 16, case)
    y = op.fprop(DFPTensor(xm, 0), DFPTensor(wm, 0))
    want = emulate(xm, wm, spec, plan, "wrap")
    np.testing.assert_array_equal(y, want)
    exact = ref.conv_int(xm, wm, spec.stride, spec.pad)
    assert np.any(np.abs(y - exact) > 2**30), "the chunks did wrap: the result is far from the exact one"


@pytest.mark.parametrize("isa", DFP_ISAS)
def test_wrap_policy_is_exact_when_data_fits(isa):
    """A chain past the safe bound with data small enough not to overflow: wrap is then exact."""
    spec = ConvSpec(1, 64, 17, 6, 6, 3, 3, 1, 1)
    op = op_for(spec, isa, 16, "wrap", 8)
    rng = np.random.default_rng(0)
    xm = ref.random_mant(rng, (1, 64, 6, 6), 300)
    wm = ref.random_mant(rng, (17, 64, 3, 3), 300)
    y = op.fprop(DFPTensor(xm, 0), DFPTensor(wm, 0))
    np.testing.assert_array_equal(y, ref.conv_int(xm, wm, 1, 1).astype(np.float32))


# ---------------------------------------------------------------------------------- saturate


@pytest.mark.parametrize("isa", VNNI)
def test_saturate_emits_vpdpwssds(isa):
    spec = ConvSpec(1, 64, 17, 4, 4, 3, 3, 1, 1)
    sat = dfpgen.compile(spec, "fprop", Numerics(16, 16, overflow="saturate", chain=8), isa=isa,  # past the bound 1
                         cpu="sapphirerapids")
    assert "vpdpwssds" in sat.asm
    assert f"vpdpwssds.{sat.plan.isa.vector_bits}" in sat.ir
    exact = dfpgen.compile(spec, "fprop", Numerics(16, 16), isa=isa, cpu="sapphirerapids")
    assert "vpdpwssds" not in exact.asm and "vpdpwssd" in exact.asm


@pytest.mark.parametrize("chain", [8, None])
@pytest.mark.parametrize("case", ["max", "min", "alternating"])
@pytest.mark.parametrize("isa", [i for i in DFP_ISAS if i in VNNI] or
                         [pytest.param("avx512_vnni", marks=pytest.mark.skip("the host has no VNNI ISA"))])
def test_saturate_policy_result(isa, case, chain):
    spec = ConvSpec(1, 64, 17, 4, 4, 3, 3, 1, 1)
    op = op_for(spec, isa, 16, "saturate", chain)
    plan = op.kernels["fprop"].plan
    xm, wm = worst_operands(spec, 16, case)
    y = op.fprop(DFPTensor(xm, 0), DFPTensor(wm, 0))
    np.testing.assert_array_equal(y, emulate(xm, wm, spec, plan, "saturate"))
    if chain is None:   # the safe chain never saturates: the exact chunks
        np.testing.assert_array_equal(y, emulate(xm, wm, spec, plan, "exact"))
    else:               # every full chunk clamped at the INT32 limits
        assert np.max(np.abs(y)) <= plan.flushes * 2.0**31
        assert not np.array_equal(y, emulate(xm, wm, spec, plan, "exact"))


@pytest.mark.parametrize("isa, cpu", [("avx2", "znver3"), ("avx512", "skylake-avx512"), ("avx2", "sapphirerapids")])
def test_saturate_on_pmadd_isa_plan_error(isa, cpu):
    spec = ConvSpec(1, 16, 16, 8, 8, 3, 3, 1, 1)
    for numerics in (Numerics(overflow="saturate"), Numerics(overflow="saturate", chain=8)):
        with pytest.raises(PlanError, match=r"saturate.*vpdpwssds.*" + isa):
            make_plan(spec, numerics, Blocking(), named(cpu), isa)
        with pytest.raises(PlanError, match=r"saturate.*vpdpwssds"):
            dfpgen.compile(spec, "fprop", numerics, isa=isa, cpu=cpu, blocking=Blocking(kv=1, wb=2))


@pytest.mark.parametrize("isa, cpu", [("avx2", "znver3"), ("avx512", "skylake-avx512")])
def test_saturate_on_pmadd_isa_clear_error_with_default_blocking(isa, cpu):
    spec = ConvSpec(1, 16, 16, 8, 8, 3, 3, 1, 1)
    with pytest.raises(PlanError, match=r"saturate.*vpdpwssds"):
        dfpgen.compile(spec, "fprop", Numerics(overflow="saturate", chain=8), isa=isa, cpu=cpu)


@pytest.mark.skipif("avx2" not in DFP_ISAS, reason="the host has no avx2")
def test_conv2d_saturate_on_avx2_clear_error():
    with pytest.raises(PlanError, match=r"saturate.*vpdpwssds"):
        Conv2d(ConvSpec(1, 16, 16, 8, 8, 3, 3, 1, 1), overflow="saturate", chain=8, isa="avx2")


# ---------------------------------------------------------------------------- numerics rules


@pytest.mark.parametrize("bits", range(2, 17))
def test_exact_chain_past_safe_raises(bits):
    L = ref.safe_chain_ref(bits, bits)
    assert dfpgen.safe_chain(bits, bits) == L
    assert Numerics(bits, bits, chain=L).effective_chain == L
    assert Numerics(bits, bits).effective_chain == L
    with pytest.raises(NumericsError, match="safe_chain"):
        Numerics(bits, bits, overflow="exact", chain=L + 1)
    # saturate and wrap may go past it
    assert Numerics(bits, bits, overflow="wrap", chain=L + 1).effective_chain == L + 1
    assert Numerics(bits, bits, overflow="saturate", chain=L + 1).effective_chain == L + 1


def test_safe_chain_table_and_mixed_bits():
    assert [ref.safe_chain_ref(b, b) for b in (16, 15, 14, 13, 12, 8)] == [1, 4, 16, 64, 256, 66572]
    assert Numerics(16, 8).safe_chain == ref.safe_chain_ref(16, 8) == (2**31 - 1) // (2 * 32767 * 127)
    with pytest.raises(NumericsError, match="wrap"):
        Numerics(overflow="wrap")
    with pytest.raises(NumericsError):
        Numerics(chain=0)
    with pytest.raises(NumericsError):
        Numerics(overflow="clamp")


@pytest.mark.parametrize("bits_x, bits_w", [(16, 8), (8, 16), (12, 14)])
@pytest.mark.parametrize("isa", DFP_ISAS)
def test_mixed_bits_worst_case_exact(isa, bits_x, bits_w):
    """bits_w differs from bits_x: the chain follows safe_chain(bits_x, bits_w)."""
    spec = ConvSpec(1, 1024, 9, 3, 3, 3, 3, 1, 0)
    op = Conv2d(spec, bits=bits_x, bits_w=bits_w, isa=isa, threads=THREADS)
    plan = op.kernels["fprop"].plan
    L = ref.safe_chain_ref(bits_x, bits_w)
    assert plan.steps_per_flush * plan.unroll <= L and plan.flushes > 1
    xm = np.full((1, 1024, 3, 3), ref.max_mant(bits_x), np.int16)
    wm = np.full((9, 1024, 3, 3), -ref.max_mant(bits_w), np.int16)
    y = op.fprop(DFPTensor(xm, 0, bits_x), DFPTensor(wm, 0, bits_w))
    np.testing.assert_array_equal(y, emulate(xm, wm, spec, plan, "exact"))
