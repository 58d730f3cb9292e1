"""The benchmark scripts' own logic (not their timings): benchmarks/bench_overheads.py's variants."""

import sys
from pathlib import Path

import numpy as np
import pytest

from dfpgen.bench import prepared, random_operands
from dfpgen.plan import CALL_COLUMNS
from dfpgen.spec import ConvSpec
from dfpgen.target import host

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_overheads  # noqa: E402

SPEC = ConvSpec.from_descriptor("mb2ic40ih7oc24oh7kh3ph1")   # 20 pairs x 9 taps: flushed at bits 13
ISA = host().best_isa("dfp16")


@pytest.fixture(scope="module")
def variants():
    return bench_overheads.variants(SPEC, "fprop", 13, ISA)


def test_variants_keep_the_blocking_and_the_step_tables(variants):
    plans = [k.plan for k in variants.values()]
    assert {p.blocking for p in plans} == {plans[0].blocking}
    assert {(p.in_step_offsets, p.w_step_offsets) for p in plans} == {(plans[0].in_step_offsets,
                                                                       plans[0].w_step_offsets)}
    assert all(len(p.call_table) == len(plans[0].call_table) for p in plans)


def test_no_flushes_flushes_each_output_once(variants):
    assert variants["kernel"].plan.flushes > 1
    assert variants["no flushes"].plan.flushes == 1 == variants["neither"].plan.flushes


def test_no_footprint_points_every_call_at_the_start(variants):
    kernel, moved = variants["kernel"].plan.call_table, variants["no footprint"].plan.call_table
    offsets = [CALL_COLUMNS.index("src"), CALL_COLUMNS.index("dst")]
    assert kernel[:, offsets].any() and not moved[:, offsets].any()
    keep = [i for i in range(len(CALL_COLUMNS)) if i not in offsets]
    np.testing.assert_array_equal(moved[:, keep], kernel[:, keep])


def test_no_flushes_computes_the_same_convolution_on_small_data(variants):
    x, w = random_operands(SPEC, "fprop")
    outs = []
    for name in ("kernel", "no flushes"):
        src, vec, out = prepared(variants[name], x, w)
        variants[name].run(src, vec, out, 1.0, 1)
        outs.append(out)
    # random 13-bit data stays far from INT32 overflow; only the FP32 rounding of the flushes differs
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-3 * np.abs(outs[0]).max())
