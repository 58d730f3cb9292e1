"""User mistakes on the command line (issue 20 items 9 and 10): one line, exit 2 for usage errors and 1 for
others, never a traceback, and nothing computed before the mistake is reported."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from dfpgen.frontends.cli import main
from dfpgen.training.train import EpochLog, write_log

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TINY = "mb1ic4oc4ih4kh3"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result, code: int) -> str:
    """The single error line of a failed command (click's Usage/Try preamble of usage errors aside)."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith(("Usage:", "Try '"))]
    assert len(lines) == 1, result.output
    return lines[0]


def test_emit_into_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_line(run("emit", "--layer", TINY, "--cpu", "znver3", "-o", blocker / "sub"), 1)
    assert f"-o {blocker / 'sub'}: cannot create the folder" in line
    folder = tmp_path / "out"   # a folder where the .ll file should go: the write itself fails
    (folder / f"{TINY}.fprop.avx2.znver3.ll").mkdir(parents=True)
    line = one_line(run("emit", "--layer", TINY, "--cpu", "znver3", "-o", folder), 1)
    assert f"{TINY}.fprop.avx2.znver3.ll" in line


def test_train_into_an_unwritable_place_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run("train", "--net", "lenet", "--data", "synthetic", "--limit", 32, "--epochs", 1, "--out",
                 blocker / "run")
    assert f"--out {blocker / 'run'}: cannot create the folder" in one_line(result, 1)
    assert "epoch" not in result.output


def test_bench_batch_file_that_is_binary_or_has_no_descriptors(tmp_path):
    binary = tmp_path / "binary.lst"
    binary.write_bytes(b"mb1ic4\xd0\xff\x00oc4\n")
    line = one_line(run("bench", "--batch-file", binary), 2)
    assert str(binary) in line and "not a text file" in line and "0xd0" in line
    line = one_line(run("conformance", "--suite", binary), 1)
    assert "DescriptorError" in line and str(binary) in line
    comments = tmp_path / "comments.lst"
    comments.write_text("# nothing here\n\n--dir=FWD_D\n")
    for command in ("bench", "emit", "tune"):
        line = one_line(run(command, "--batch-file", comments), 2)
        assert f"{comments}: no descriptors in the file" in line


def _log(tmp_path):
    (tmp_path / "run").mkdir()
    write_log(tmp_path / "run" / "log.csv", [EpochLog(1, 0.05, 2.0, 0.25, 2.0, 0.3, 1.5, 170.0),
                                             EpochLog(2, 0.025, 1.5, 0.5, 1.25, 0.6, 1.25, 204.8)])
    return tmp_path / "run"


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_plot_output_with_an_unknown_extension_names_the_working_ones(tmp_path):
    line = one_line(run("plot", _log(tmp_path), "-o", tmp_path / "f.xyz"), 1)
    assert "'.xyz'" in line and ".png" in line and ".pdf" in line and ".svg" in line
    assert not (tmp_path / "f.xyz").exists()


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")
def test_plot_into_a_folder_writes_curves_png_and_says_so(tmp_path):
    log, folder = _log(tmp_path), tmp_path / "plots"
    folder.mkdir()
    result = run("plot", log, "-o", folder)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {folder / 'curves.png'}"
    assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "plots.png").exists()
    result = run("plot", log, "-o", tmp_path / "noext")
    assert result.exit_code == 0 and result.output.strip() == f"wrote {tmp_path / 'noext.png'}"
    assert (tmp_path / "noext.png").exists()


@pytest.mark.parametrize("args, expect", [
    (["--nproc", "64", "--batch", "8"], "--nproc"),
    (["--nproc", "2", "--batch", "1"], "--batch is 1"),
])
def test_train_torch_nproc_is_checked_before_spawning(monkeypatch, args, expect):
    from dfpgen.frontends import cli

    def no_launch(*a, **k):
        raise AssertionError("spawned processes")
    monkeypatch.setattr(cli, "_train_torch", no_launch)
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    line = one_line(run("train", "--backend", "torch", *args), 2)
    assert expect in line


def test_train_torch_nproc_beyond_the_cores_is_refused(monkeypatch):
    from dfpgen.frontends import cli

    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    line = one_line(run("train", "--backend", "torch", "--nproc", "4", "--batch", "64"), 2)
    assert "4: more processes than the 2 cores" in line and "--nproc <= 2" in line


@pytest.mark.parametrize("option", ["--lr", "--weight-decay"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e999"])
def test_train_rates_must_be_finite(option, value):
    line = one_line(run("train", option, value, "--data", "synthetic", "--limit", 32, "--epochs", 1), 2)
    assert option in line and ("finite number" in line or "not in the range" in line)
