"""Emitter: golden IR for a few kernels, and the template contract (plan fields only, strict names)."""

import difflib
import re
from pathlib import Path

import jinja2
import numpy as np
import pytest

from dfpgen import Blocking, ConvSpec, Numerics
from dfpgen.codegen.emit import environment, render, template_hash
from dfpgen.core.target import named
from dfpgen.passes import make_plan

GOLDEN = Path(__file__).parent / "golden"

# Small kernels that exercise every template branch: VNNI with row/column/channel tails and several
# flushes, AVX2 with stride and one flush, the FP32 baseline, and INT8 VNNI with its correction.
CASES = {
    "vnni_tails_sapphirerapids": (ConvSpec(2, 6, 40, 3, 3, 3, 3, 1, 1, "tails"), Numerics(14, 14),
                                  Blocking(kv=2, wb=2, hb=2), "sapphirerapids", "avx512_vnni"),
    "vnni_bits16_register_flush": (ConvSpec(1, 4, 16, 3, 4, 3, 1, 1, 0, "b16"), Numerics(16, 16),
                                   Blocking(kv=1, wb=2, hb=1), "icelake-server", "avx512_vnni"),
    "avx2_stride2_znver3": (ConvSpec(1, 16, 8, 9, 9, 3, 3, 2, 0, "s2"), Numerics(12, 12),
                            Blocking(kv=1, wb=3, hb=1), "znver3", "avx2"),
    "fp32_avx2_1x1_znver3": (ConvSpec(1, 8, 16, 4, 4, 1, 1, 1, 0, "pw"), Numerics(),
                             Blocking(kv=2, wb=4, hb=1), "znver3", "fp32_avx2"),
    # vpdpbusd: offset src, the correction table and vectors, tails, and a short chain (several flushes).
    "int8_tails_flushes_znver4": (ConvSpec(2, 10, 40, 3, 3, 3, 3, 1, 1, "i8"), Numerics(8, 8, chain=6),
                                  Blocking(kv=2, wb=2, hb=2), "znver4", "avx512_vnni_int8"),
}
# BPROP with stride 2 (four phases, one without taps) and WTGRAD with odd Q (a zero-padded q pair).
PASS_CASES = {
    "bprop_stride2_skylake": (ConvSpec(1, 8, 16, 5, 5, 1, 1, 2, 0, "b"), Numerics(13, 13),
                              Blocking(kv=1, wb=2, hb=1), "skylake-avx512", "avx512", "bprop"),
    "wtgrad_q_pairs_znver3": (ConvSpec(2, 3, 8, 5, 5, 3, 3, 1, 1, "g"), Numerics(12, 12),
                              Blocking(kv=1, wb=3, hb=1, unroll=3), "znver3", "avx2", "wtgrad"),
    # vpdpbusd WTGRAD: quads along q and one correction per reduction block.
    "int8_wtgrad_blocks_sapphirerapids": (ConvSpec(2, 3, 8, 5, 9, 3, 3, 1, 1, "g8"), Numerics(8, 8),
                                          Blocking(kv=1, wb=3, hb=1, unroll=2, rb=2), "sapphirerapids",
                                          "avx512_vnni_int8", "wtgrad"),
}
CASES.update({name: case[:5] for name, case in PASS_CASES.items()})
PASS_OF = {name: case[5] for name, case in PASS_CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_ir(name, regen_golden):
    spec, numerics, blocking, cpu, isa = CASES[name]
    ir = render(make_plan(spec, numerics, blocking, named(cpu), isa, PASS_OF.get(name, "fprop")))
    path = GOLDEN / f"{name}.ll"
    if regen_golden:
        path.write_text(ir)
    expected = path.read_text()
    if ir != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), ir.splitlines(True), "golden", "now"))[:80])
        pytest.fail(f"emitted IR differs from {path.name}; if the change is intended, rerun with "
                    f"--regen-golden and review the diff:\n{diff}")


def test_ir_carries_the_plan_as_comments():
    spec, numerics, blocking, cpu, isa = CASES["vnni_tails_sapphirerapids"]
    plan = make_plan(spec, numerics, blocking, named(cpu), isa)
    ir = render(plan)
    for line in plan.summary():
        assert f"; {line}" in ir
    assert f"flush INT32->FP32 every {plan.steps_per_flush} steps" in ir


def test_short_chains_keep_fp32_partial_sums_in_registers():
    spec, numerics, blocking, cpu, isa = CASES["vnni_bits16_register_flush"]
    plan = make_plan(spec, numerics, blocking, named(cpu), isa)
    assert plan.chain == 1 and plan.flushes > 1 and plan.flush_in_registers
    assert "%facc." in render(plan)
    spec, numerics, blocking, cpu, isa = CASES["vnni_tails_sapphirerapids"]
    plan = make_plan(spec, numerics, blocking, named(cpu), isa)
    assert not plan.flush_in_registers and "%facc." not in render(plan)


def test_templates_reject_undefined_names():
    env = environment()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ plan.no_such_field }}").render(plan=object())


def test_template_hash_is_stable_and_short():
    assert template_hash("conv.ll.j2") == template_hash("conv.ll.j2")
    assert len(template_hash("conv.ll.j2")) == 16


def test_ir_does_not_grow_with_the_call_table():
    # The call table is a run-time argument: a layer with 8x the calls renders as many IR lines, and
    # no constant table as long as the call table.
    small, large = (make_plan(ConvSpec(2, c, 64, 1, 1, 1, 1, 1, 0, "fc"), Numerics(13, 13), Blocking(kv=2, wb=2, hb=1),
                              named("znver3"), "avx2", "wtgrad") for c in (512, 4096))
    assert len(large.call_table) == 8 * len(small.call_table) > 1000
    ir_small, ir_large = render(small), render(large)
    assert "ptr noalias readonly %calls" in ir_large and f"{len(large.call_table)} calls x 6 i32" in ir_large
    assert len(ir_small.splitlines()) == len(ir_large.splitlines()) and len(ir_large) < 1.05 * len(ir_small)
    tables = [int(n) for n in re.findall(r"constant \[(\d+) x i32\]", ir_large)]
    assert tables and max(tables) < len(small.call_table)
    assert large.call_words.dtype == np.int32 and large.call_words.flags.c_contiguous
    assert np.array_equal(large.call_words, large.call_table)
