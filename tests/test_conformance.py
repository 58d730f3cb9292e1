"""dfpgen.verification.conformance and `dfpgen conformance`: oneDNN's benchdnn lists through all three passes."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dfpgen import ConvSpec, passes
from dfpgen.core.descriptor import parse_problem
from dfpgen.core.dfp import DEFAULT_BITS
from dfpgen.core.target import get_isa, host
from dfpgen.frontends.cli import main
from dfpgen.verification import conformance

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "conformance" / "benchdnn"
SUITES = conformance.builtin_suites()
CI_MAX_SPATIAL = 12     # keeps every index relation (see shrink) and the whole run within a few minutes


def three_d_lines(path: Path) -> int:
    count = 0
    for raw in path.read_text().splitlines():
        entries = raw.split("#", 1)[0].strip().split("n", 1)[0]   # no entry key holds an n
        count += any(key in entries for key in ("id", "kd", "od"))
    return count


def test_the_package_ships_every_suite_with_its_provenance():
    names = {p.name for p in SUITES}
    assert len(names) == 16 and "shapes_resnet_50" in names and "shapes_dilated" in names
    readme = (ROOT / "specs" / "benchdnn" / "README.md").read_text()
    assert "Apache License 2.0" in readme and "515bfba6" in readme


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/conformance checkout")
def test_the_shipped_suites_are_unchanged_copies():
    shared = sorted(SHARED.glob("shapes_*"))
    assert [p.name for p in shared] == [p.name for p in SUITES]
    for theirs, ours in zip(shared, SUITES):
        assert theirs.read_bytes() == ours.read_bytes(), ours.name


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_every_2d_problem_passes_all_three_passes(suite):
    # The full 16-bit word: chains of one instruction, FP32 partial sums in registers, the widest extremes
    # (the default width's longer chains: test_the_default_bits_and_their_longer_chains).
    outcomes = conformance.run_suite(suite, mb=2, max_spatial=CI_MAX_SPATIAL, bits=16)
    failed = [f"{o.line} {o.problem} [{o.pass_name}]: {o.detail}" for o in outcomes if o.status == "failed"]
    assert not failed, "\n".join(failed)
    unsupported = [o for o in outcomes if o.status == "unsupported"]
    assert len(unsupported) == three_d_lines(suite)
    assert all("3-D" in o.detail for o in unsupported)
    assert sum(o.status == "passed" for o in outcomes) > 0


INT8_ISAS = [n for n in host().isas("dfp16", bits=8) if get_isa(n).instruction == "vpdpbusd"]


@pytest.mark.skipif(not INT8_ISAS, reason="no VNNI on this host: 8-bit data runs on the INT16 kernels")
@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_every_2d_problem_passes_all_three_passes_on_vpdpbusd(suite):
    # 8-bit operands take the INT8 kernels by default: offset bytes, their corrections, quads along the reduction.
    outcomes = conformance.run_suite(suite, mb=2, max_spatial=CI_MAX_SPATIAL, bits=8)
    failed = [f"{o.line} {o.problem} [{o.pass_name}]: {o.detail}" for o in outcomes if o.status == "failed"]
    assert not failed, "\n".join(failed)
    assert sum(o.status == "unsupported" for o in outcomes) == three_d_lines(suite)


def test_the_default_bits_and_their_longer_chains():
    # FPROP: 64 channels x 3 x 3 taps = 288 pair-instructions per output, in chains of up to safe_chain(14, 14) = 16
    problem = parse_problem('mb2ic64ih10oc40oh10kh3ph1n"default"')
    assert conformance.run_problem.__kwdefaults__["bits"] == DEFAULT_BITS == 14
    outcomes = conformance.run_problem(problem, "inline")
    assert [o.status for o in outcomes] == ["passed"] * 3


def test_bits_13_and_the_flush_bound_path():
    problem = parse_problem('mb2ic64ih10oc40oh10kh3ph1n"bound"')
    outcomes = conformance.run_problem(problem, "inline", bits=13)
    assert [o.status for o in outcomes] == ["passed"] * 3


@pytest.mark.parametrize("text", ["mb2ic3ih227oc96oh55kh11sh4ph0", "ic32oc13_ih13oh12kh3ph0",
                                  "mb20ic16ih1iw80oc6oh1kh1kw3sh1pw0ph0sw1dh0dw2",
                                  "mb2_g2ic96oc96_ih57oh26kh5sh2ph1dh1", "ic16oc16_iw1kw3ow100pw100"])
def test_shrink_keeps_filter_stride_dilation_and_padding(text):
    spec = parse_problem(text).spec
    small = conformance.shrink(spec, 12)
    assert (small.R, small.S, small.sh, small.sw, small.dh, small.dw, small.pt, small.pl, small.pb, small.pr) == \
        (spec.R, spec.S, spec.sh, spec.sw, spec.dh, spec.dw, spec.pt, spec.pl, spec.pb, spec.pr)
    assert small.P <= spec.P and small.Q <= spec.Q
    if spec.H > 12:
        assert small.H < spec.H
    assert conformance.shrink(spec, None) is spec


def test_shrink_scales_outputs_proportionally():
    spec = ConvSpec(2, 3, 64, 224, 224, 7, 7, 2, 3)
    small = conformance.shrink(spec, 16)
    assert (small.P, small.Q) == (8, 8) and small.H == 15   # (8 - 1) * 2 + 7 - 3 - 3


def test_a_wrong_answer_is_reported_with_where_and_how_much(monkeypatch):
    problem = parse_problem("mb2ic8ih6oc8oh6kh3ph1")
    original = conformance.Conv2d.run

    def off_by_one(self, pass_name, a, b):
        result, maxabs = original(self, pass_name, a, b)
        result = result.copy()
        result.flat[3] += 1.0
        return result, maxabs
    monkeypatch.setattr(conformance.Conv2d, "run", off_by_one)
    outcomes = conformance.run_problem(problem, "inline", bits=8)
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert "1 of" in outcomes[0].detail and "vs exact" in outcomes[0].detail


def test_cli_prints_a_table_and_exits_zero_when_everything_passes(tmp_path):
    suite = tmp_path / "shapes_mine"
    suite.write_text('# two problems and a 3-D one\nmb2ic4ih6oc5oh6kh3ph1n"a"\ng2ic4ih5oc4oh3kh3dh1ph1n"b"\n'
                     "ic3oc16_id5od5kd3pd1\n")
    result = CliRunner().invoke(main, ["conformance", "--suite", str(suite), "-v"])
    assert result.exit_code == 0, result.output
    assert "shapes_mine" in result.output and "UNSUPPORTED" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("shapes_mine"))
    assert row.split()[1:] == ["6", "0", "1"]


def test_cli_exits_nonzero_and_names_the_failure(tmp_path, monkeypatch):
    suite = tmp_path / "shapes_mine"
    suite.write_text("mb2ic4ih6oc5oh6kh3ph1\n")
    monkeypatch.setattr(conformance, "check_pass", lambda op, p, a, b: "injected" if p is passes.BPROP else "")
    result = CliRunner().invoke(main, ["conformance", "--suite", str(suite)])
    assert result.exit_code == 1
    assert "FAILED shapes_mine:1" in result.output and "[bprop] injected" in result.output


def test_cli_json_schema(tmp_path):
    suite = tmp_path / "shapes_mine"
    suite.write_text("mb2ic4ih6oc5oh6kh3ph1\nmalformed_xx\n")
    result = CliRunner().invoke(main, ["conformance", "--suite", str(suite), "--pass", "fprop", "--json"])
    assert result.exit_code == 1       # the malformed line is a failure
    doc = json.loads(result.stdout)
    assert doc["suites"] == [{"suite": "shapes_mine", "passed": 1, "failed": 1, "unsupported": 0}]
    assert {tuple(sorted(p)) for p in doc["problems"]} == {("detail", "line", "pass", "problem", "status", "suite")}
    assert [p["status"] for p in doc["problems"]] == ["passed", "failed"]


def test_random_mantissas_cover_the_range():
    t = conformance.random_mantissas((4096,), 5, np.random.default_rng(0))
    assert t.mant.max() == 15 and t.mant.min() == -15 and t.bits == 5


def test_cli_refuses_an_isa_this_cpu_lacks(tmp_path):
    from dfpgen.core.target import host

    missing = [isa for isa in ("avx512_vnni", "avx_vnni", "avx512", "avx2") if isa not in host().isas("dfp16")]
    if not missing:
        pytest.skip("this CPU has every DFP ISA")
    suite = tmp_path / "shapes_mine"
    suite.write_text("mb2ic4ih6oc5oh6kh3ph1\n")
    result = CliRunner().invoke(main, ["conformance", "--suite", str(suite), "--isa", missing[0]])
    assert result.exit_code == 1 and "TargetError" in result.output and "FAILED" not in result.output
