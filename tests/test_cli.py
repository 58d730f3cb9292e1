"""The emit, peak and bench commands (the layers command has tests/test_cli_layers.py)."""

import json

import pytest
from click.testing import CliRunner

from dfpgen.core.dfp import DEFAULT_BITS
from dfpgen.core.target import host
from dfpgen.frontends.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_emit_ir_for_a_named_cpu_is_annotated_with_the_plan():
    result = invoke("emit", "--layer", "resnet50:res2a_branch2b", "--cpu", "sapphirerapids", "--bits", "14")
    assert result.exit_code == 0, result.output
    assert "; layer res2a_branch2b: N=1 C=64 K=64 56x56" in result.output
    assert "chain 16 pair-instructions (safe 16)" in result.output
    assert "@llvm.x86.avx512.vpdpwssd.512" in result.output


def test_the_default_bits_are_the_papers_14_and_every_width_is_selectable():
    # No --bits: 14-bit operands, exact chains of 16 pair-instructions (LIBXSMM's add_shift=2 headroom).
    result = invoke("emit", "--layer", "resnet50:res2a_branch2b", "--cpu", "sapphirerapids")
    assert result.exit_code == 0, result.output
    assert "bits x14/w14, overflow exact, chain 16 pair-instructions (safe 16)" in result.output
    full = invoke("emit", "--layer", "resnet50:res2a_branch2b", "--cpu", "sapphirerapids", "--bits", "16")
    assert "bits x16/w16, overflow exact, chain 1 pair-instructions (safe 1)" in full.output
    for command in ("emit", "bench", "tune", "train", "conformance"):
        text = " ".join(invoke(command, "--help").output.split())
        assert f"[default: {DEFAULT_BITS}; 2<=x<=16]" in text and DEFAULT_BITS == 14, command


def test_emit_asm_for_alderlake_uses_vex_vnni():
    result = invoke("emit", "--layer", "resnet50:res2a_branch2b", "--cpu", "alderlake", "--asm")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# layer res2a_branch2b")
    assert "{vex}\tvpdpwssd" in result.output


def test_emit_writes_one_file_per_selected_layer(tmp_path):
    result = invoke("emit", "--layer", "resnet50:res2a", "--cpu", "znver3", "--asm", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"res2a_{b}.fprop.avx2.znver3.s" for b in ("branch1", "branch2a", "branch2b", "branch2c")]


def test_emit_reports_bad_requests_cleanly():
    result = invoke("emit", "--layer", "resnet50:res2a_branch2b", "--cpu", "alderlake", "--isa", "avx512_vnni")
    assert result.exit_code == 1
    assert "TargetError" in result.output and "alderlake" in result.output
    result = invoke("emit", "--layer", "resnet50:res9", "--cpu", "znver3")
    assert result.exit_code == 2 and "res9" in result.output
    result = invoke("emit", "--layer", "resnet50:conv1", "--cpu", "znver3", "--blocking", "kv=1,zz=3")
    assert result.exit_code == 2 and "unknown knob 'zz'" in result.output
    result = invoke("emit", "--layer", "resnet50:conv1", "--cpu", "znver3", "--blocking", "kv=9,wb=9,hb=9")
    assert result.exit_code == 1 and "PlanError" in result.output and "registers" in result.output


@pytest.mark.skipif(not host().isas("dfp16"), reason="host runs no DFP ISA")
def test_peak_and_bench_json(tmp_path, monkeypatch):
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path))
    peaks = json.loads(invoke("peak", "--json").output)
    assert set(peaks) == set(host().all_isas())
    assert all(p["gmacs"] > 0 for p in peaks.values())
    result = invoke("bench", "--layer", "resnet50:res5a_branch2b", "--batch", "1", "--threads", "1",
                    "--bits", "13", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("["):])
    assert [r["layer"] for r in rows] == ["res5a_branch2b"]
    row = rows[0]
    assert row["isa"] == host().best_isa("dfp16") and row["dfp_gmacs"] > 0 and 0 < row["pct_peak"]


@pytest.mark.parametrize("content", [
    "[]", "3", '{"key": 1}', "KEY_PEAKS_LIST", "KEY_PEAK_BAD", "KEY_PEAK_NAN_TEXT", "KEY_MISSING_ISA", "not json {",
])
def test_peak_cache_of_the_wrong_shape_is_remeasured_and_rewritten(tmp_path, monkeypatch, content):
    from dfpgen.tuning import peak

    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path))
    measured = []

    def fake_measure(name, target=None, seconds=0.2):
        measured.append(name)
        return peak.Peak(name, "insn", 10.0, 12)
    monkeypatch.setattr(peak, "measure", fake_measure)
    names = host().all_isas()
    peak.peaks()                                            # a good cache file, to learn its key
    path = peak._cache_path(host())
    key = json.loads(path.read_text())["key"]
    good = {"isa": names[0], "instruction": "i", "gmacs": 5.0, "accumulators": 12}
    content = {"KEY_PEAKS_LIST": json.dumps({"key": key, "peaks": []}),
               "KEY_PEAK_BAD": json.dumps({"key": key, "peaks": {n: [1] for n in names}}),
               "KEY_PEAK_NAN_TEXT": json.dumps({"key": key, "peaks": {n: {**good, "isa": n, "gmacs": "nan"}
                                                                       for n in names}}),
               "KEY_MISSING_ISA": json.dumps({"key": key, "peaks": {names[0]: good}}) if len(names) > 1 else "[]",
               }.get(content, content)
    path.write_text(content)
    measured.clear()
    result = invoke("peak", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.output)) == sorted(names) and sorted(measured) == sorted(names)
    measured.clear()
    assert peak.peaks() and not measured                    # the rewritten file serves the next call
