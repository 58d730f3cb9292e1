"""benchdnn descriptors and --batch-file wherever the command line takes a layer (tiny kernels)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dfpgen.frontends.cli import main

DESCRIPTOR = 'mb3ic16ih8oc16oh8kh3ph1n"tiny"'
GROUPED = "g2mb2ic16ih6oc8oh6kh3ph1dh0"


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path / "cache"))

    def invoke(*args):
        return CliRunner().invoke(main, list(args))
    return invoke


def test_tune_takes_a_descriptor_and_keeps_its_minibatch(run, tmp_path):
    result = run("tune", "--layer", DESCRIPTOR, "--pass", "fprop", "--trials", "3", "--budget", "5", "--threads", "1",
                 "--db", str(tmp_path / "db.sqlite"), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["batch"] == 3 and [r["layer"] for r in doc["results"]] == ["tiny"]
    result = run("tune", "--layer", DESCRIPTOR, "--pass", "fprop", "--batch", "2", "--trials", "2", "--budget", "5",
                 "--threads", "1", "--db", str(tmp_path / "db.sqlite"), "--json")
    assert json.loads(result.stdout)["batch"] == 2


def test_bench_and_tune_take_a_batch_file(run, tmp_path):
    listing = tmp_path / "shapes_mine"
    listing.write_text(f"# two problems\n{DESCRIPTOR}\n{GROUPED}\n")
    result = run("bench", "--batch-file", str(listing), "--pass", "fprop", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["layer"] for r in rows] == ["tiny", GROUPED]   # the grouped problem is timed per group
    result = run("tune", "--batch-file", str(listing), "--pass", "wtgrad", "--trials", "2", "--budget", "8",
                 "--threads", "1", "--db", str(tmp_path / "db.sqlite"), "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"]) == 2


def test_emit_a_grouped_dilated_kernel(run):
    result = run("emit", "--layer", "g2ic16ih9oc8oh5kh3ph1dh1", "--pass", "bprop", "--cpu", "sapphirerapids",
                 "--bits", "14", "--asm")
    assert result.exit_code == 0, result.output
    assert "vpdpwssd" in result.output and "C=8 K=4" in result.output   # one group's kernel


def test_malformed_descriptors_and_batch_files_are_usage_errors(run, tmp_path):
    result = run("tune", "--layer", "mb2ic16ih8oc16kh3xx1")
    assert result.exit_code == 2 and "unknown entry" in result.output
    listing = tmp_path / "bad"
    listing.write_text("mb2ic16ih8oc16kh3ph1\nmb2ic16xx\n")
    result = run("bench", "--batch-file", str(listing))
    assert result.exit_code == 2 and "line 2" in result.output and "unknown entry" in result.output
    result = run("emit")
    assert result.exit_code == 2 and "--layer" in result.output
