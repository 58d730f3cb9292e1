"""Size limits (issue 20, item 5): the memory of a kernel's tables and operands, and its 32-bit offsets, are
decided from the spec before anything is planned or allocated, and refused in one line naming the estimate
and the limit (or the tensor past 2**31)."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import dfpgen
from dfpgen import Blocking, ConvSpec, Numerics
from dfpgen.codegen import footprint
from dfpgen.core.target import host, named
from dfpgen.errors import PlanError, SizeError
from dfpgen.frontends.cli import main
from dfpgen.passes import ALL, FPROP, WTGRAD
from dfpgen.tuning.cost import default_blocking

HUGE = "mb1024ic4096oc4096ih1024kh3ph1"        # the 24-GB emit: offsets far past 2**31
BIG_INPUTS = "mb64ic256oc256ih512kh3ph1"       # the 16-GiB bench inputs
SMALL = "mb2ic32oc32ih14kh3ph1"
LAYERS = [ConvSpec(2, 19, 35, 9, 11, 3, 3, 2, 1), ConvSpec(1, 64, 64, 16, 28, 3, 3, 1, 1),
          ConvSpec(2, 16, 32, 12, 12, 5, 3, 3, 2, stride_w=2, dilation=2), ConvSpec(4, 100, 10, 1, 1, 1, 1)]
BLOCKINGS = [Blocking(), Blocking(1, 1, 1), Blocking(3, 5, 2), Blocking(2, 3, 1, 8, 4, "np"), Blocking(4, 2, 2, rb=3)]
TARGETS = [("sapphirerapids", "avx512_vnni"), ("sapphirerapids", "fp32_avx512"), ("znver3", "avx2"),
           ("alderlake", "avx_vnni")]


@pytest.fixture
def low_limit(monkeypatch):
    """Available memory of 64 KiB: small layers are refused without a huge one being built."""
    monkeypatch.setattr(footprint, "available_memory", lambda: 1 << 16)


def _peak_bytes(fn):
    """The result (or exception) of fn() and the peak bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as exc:   # noqa: BLE001 - the caller checks what it was
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("conv_pass", ALL, ids=lambda p: p.name)
def test_geometry_counts_what_the_planner_builds(conv_pass):
    checked = 0
    for spec in LAYERS:
        for cpu, isa in TARGETS:
            for blocking in BLOCKINGS:
                try:
                    plan = conv_pass.plan(spec, Numerics(), blocking, named(cpu), isa)
                except PlanError:
                    continue
                g = conv_pass.geometry(spec, Numerics(), blocking, named(cpu), isa)
                assert (g.src_shape, g.vec_shape, g.dst_shape, g.steps, g.calls, g.blocks, g.batch) == \
                    (plan.src_shape, plan.vec_shape, plan.dst_shape, plan.steps, len(plan.call_table),
                     len(plan.reduction_blocks), plan.batch)
                checked += 1
    assert checked >= 40


def _real_bytes(plan) -> int:
    """What a Plan's tables and a run's blocked operands and output really take."""
    rng = np.random.default_rng(0)
    src = rng.integers(-100, 100, plan.conv_pass.src.shape(plan.spec)).astype(plan.storage)
    vec = rng.integers(-100, 100, plan.conv_pass.vec.shape(plan.spec)).astype(plan.storage)
    blocked = plan.conv_pass.to_src(src, plan).nbytes + plan.conv_pass.to_vec(vec, plan).nbytes + \
        np.empty(plan.dst_shape, np.float32).nbytes
    ints = {id(v): v for t in (plan.src_step_offsets, plan.vec_step_offsets) for v in t}
    steps = sum(sys.getsizeof(t) for t in (plan.src_step_offsets, plan.vec_step_offsets)) + \
        sum(sys.getsizeof(v) for v in ints.values())
    return plan.call_table.nbytes + plan.call_words.nbytes + steps + blocked


@pytest.mark.parametrize("conv_pass", ALL, ids=lambda p: p.name)
def test_estimate_bounds_the_real_allocation(conv_pass):
    # The claim in dfpgen/codegen/footprint.py: tables + blocked is at least the real size, at most 1.25 times it.
    for spec in LAYERS:
        for cpu, isa in TARGETS[:3]:
            for blocking in (Blocking(), Blocking(1, 1, 1), Blocking(3, 5, 2)):
                try:
                    plan = conv_pass.plan(spec, Numerics(), blocking, named(cpu), isa)
                except PlanError:
                    continue
                est = footprint.estimate(conv_pass.geometry(spec, Numerics(), blocking, named(cpu), isa))
                real = _real_bytes(plan)
                assert real <= est.tables + est.blocked <= 1.25 * real, (spec.describe(), isa, blocking)


def test_offsets_are_refused_from_the_spec_before_any_table():
    spec = _spec(HUGE)
    error, peak = _peak_bytes(lambda: FPROP.plan(spec, Numerics(), Blocking(4, 6, 1), named("znver4"), "avx512_vnni"))
    assert isinstance(error, SizeError) and isinstance(error, MemoryError)
    assert "offsets past 2**31: split the batch" in str(error) and "x blocked" in str(error)
    assert peak < 50 << 20


def test_default_blocking_does_not_hide_offsets_behind_no_blocking_fits():
    # Before: every candidate's plan failed the offset check after its tables, and the loop said "no register
    # blocking fits". x of this layer is 2.5e9 blocked elements (8192 an image): past 2**31, split the batch.
    spec = _spec("mb300000ic32oc16ih16kh1ph0")
    error, peak = _peak_bytes(lambda: default_blocking(spec, Numerics(), named("znver4"), "avx512_vnni", FPROP))
    assert isinstance(error, SizeError), error
    assert "offsets past 2**31" in str(error) and "no register blocking fits" not in str(error)
    assert peak < 50 << 20


def test_memory_refused_in_default_blocking_compile_and_conv2d(low_limit):
    spec, isa = _spec(SMALL), host().best_isa("dfp16")
    with pytest.raises(SizeError, match=r"needs about .* GiB, more than the 6\.1e-05 GiB of memory available"):
        default_blocking(spec, Numerics(), host(), isa, WTGRAD)
    with pytest.raises(SizeError, match=r"\(fprop\): the kernel needs about"):
        dfpgen.compile(spec, "fprop")
    with pytest.raises(SizeError, match="GiB of memory available"):
        dfpgen.Conv2d(spec, eager=False)


def test_tune_refuses_before_measuring(low_limit, tmp_path):
    from dfpgen.tuning.db import TuningDB
    from dfpgen.tuning.tune import Task, tune

    target = host()
    task = Task(_spec(SMALL), FPROP, Numerics(), target.best_isa("dfp16"), 1, target)
    db = TuningDB(tmp_path / "t.db")
    try:
        with pytest.raises(SizeError, match="the run needs about"):
            tune(task, db, trials=2, budget=1.0)
    finally:
        db.close()


def _one_line_exit_1(args):
    result, peak = _peak_bytes(lambda: CliRunner().invoke(main, args))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: SizeError: "), result.output
    assert "Traceback" not in result.output
    assert peak < 200 << 20, peak
    return lines[0]


def test_cli_emit_of_the_24_gb_layer():
    line = _one_line_exit_1(["emit", "--layer", HUGE, "--cpu", "znver4"])
    assert f"layer {HUGE} (fprop): offsets past 2**31: split the batch (x blocked" in line


def test_cli_bench_of_the_16_gib_inputs():
    line = _one_line_exit_1(["bench", "--layer", BIG_INPUTS])
    assert f"layer {BIG_INPUTS} (fprop)" in line and "split the batch" in line


@pytest.mark.parametrize("command", [["emit"], ["bench"], ["tune", "--trials", "2"]])
def test_cli_memory_limit(command, low_limit, monkeypatch, tmp_path):
    import dfpgen.tuning.peak as peak

    monkeypatch.setattr(peak, "peaks", lambda *a, **k: pytest.fail("measured peaks before the size check"))
    extra = ["--db", str(tmp_path / "t.db")] if command[0] == "tune" else []
    line = _one_line_exit_1(command + ["--layer", SMALL] + extra)
    assert f"layer {SMALL} (fprop): the " in line
    assert "needs about" in line and "more than the 6.1e-05 GiB of memory available" in line


def test_available_memory_reads_the_machine():
    assert 0 < footprint.available_memory()


def _spec(descriptor: str) -> ConvSpec:
    from dfpgen.core.descriptor import parse

    return parse(descriptor)


WIDE = "mb1ic2oc256ih2000kh1"    # a wide 1x1 layer: offsets below 2**31, 64M calls at kv1 w1 h1 on 16 lanes


def test_emit_builds_no_call_table(monkeypatch):
    """Emitting IR plans the calls as grids: a layer whose call table would take GBs (the eager planner stacked
    it, plus copies) emits in small memory, and a kernel cross-emitted for another CPU (it never runs) is
    not refused for a table it will never build: here with 256 MiB available."""
    monkeypatch.setattr(footprint, "available_memory", lambda: 256 << 20)
    spec = _spec(WIDE)
    calls = 256 // 16 * 2000 * 2000
    assert calls * footprint.CALL_FIELDS * (8 + 4) > 4 * 2**30   # the old int64 table and its int32 copy: 4 GiB
    args = ["emit", "--layer", WIDE, "--cpu", "znver4", "--blocking", "kv=1,wb=1,hb=1"]
    result, peak = _peak_bytes(lambda: CliRunner().invoke(main, args))
    assert result.exit_code == 0, result.output
    assert f"{calls} calls x 6 i32" in result.output and f"{calls} tile calls per batch entry" in result.output
    assert peak < 100 << 20, peak
    kernel, peak = _peak_bytes(lambda: dfpgen.compile(spec, "fprop", Numerics(), cpu="znver4",
                                                      blocking=Blocking(1, 1, 1)))
    ir, emit_peak = _peak_bytes(lambda: kernel.ir)
    assert max(peak, emit_peak) < 100 << 20 and "call_table" not in kernel.plan.__dict__
    assert kernel.plan.call_count == calls and kernel.plan.call_fields == 6 and "call_table" not in kernel.plan.__dict__
    assert footprint.estimate_emission(FPROP.geometry(spec, Numerics(), Blocking(1, 1, 1), named("znver4"),
                                                      "avx512_vnni")).total < 1 << 20
    assert default_blocking(spec, Numerics(), named("znver4"), "avx512_vnni") is not None
