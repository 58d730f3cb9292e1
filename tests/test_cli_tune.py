"""`dfpgen tune` and `dfpgen db show|export` on a one-layer catalog file (tiny kernels, few trials).

The peak measurement behind "% of peak" is cached in DFPGEN_CACHE_DIR: the module shares one cache
directory so it is measured once. No test asserts a speedup (the machine is shared and noisy).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest
from click.testing import CliRunner

from dfpgen.codegen.plan import Blocking
from dfpgen.core.target import host
from dfpgen.errors import TargetError
from dfpgen.frontends.cli import main
from dfpgen.tuning import measure

CATALOG = """[network]
name = "tiny"
input = [16, 8, 8]
[[layer]]
name = "c"
C = 16
K = 16
H = 8
W = 8
R = 3
S = 3
stride = 1
pad = 1
"""
TOP_KEYS = {"cpu", "isa", "threads", "batch", "bits", "db", "results"}
RESULT_KEYS = {"layer", "pass", "from_db", "blocking", "gmacs", "pct_peak", "default_gmacs", "vs_default",
               "fp32_gmacs", "vs_fp32", "torch_gmacs", "vs_torch", "measured", "failures"}
EXPORT_KEYS = {"key", "layer", "blocking", "seconds", "gmacs", "error_kind", "error", "created"}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    try:
        host().best_isa("dfp16")
    except TargetError as exc:
        pytest.skip(f"no DFP16 ISA on this host: {exc}")
    return tmp_path_factory.mktemp("dfpgen-cache")


@pytest.fixture
def env(shared_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(shared_cache))
    catalog = tmp_path / "tiny.toml"
    catalog.write_text(CATALOG)
    return tmp_path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tune_args(env, db, *extra):
    return ("tune", "--layer", f"{env / 'tiny.toml'}:c", "--pass", "fprop", "--bits", "13", "--trials", "4",
            "--budget", "10", "--batch", "2", "--threads", "1", "--db", db, *extra)


def json_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)   # the progress bar goes to stderr


def test_tune_help_documents_the_json_keys():
    text = invoke("tune", "--help").output
    documented = set(re.findall(r'"(\w+)"', text[text.index("--json prints"):]))
    assert documented >= TOP_KEYS | RESULT_KEYS
    export_help = invoke("db", "export", "--help").output
    assert set(re.findall(r'"(\w+)"', export_help)) >= EXPORT_KEYS


def answered_from_the_db(monkeypatch, *args) -> dict:
    """`dfpgen ... --json` with every measurement (ours and PyTorch's) failing the test if called."""
    def measuring(*_, **__):
        raise AssertionError("measured instead of answering from the database")

    with monkeypatch.context() as m:
        for name in ("random_operands", "time_kernel", "time_torch"):
            m.setattr(measure, name, measuring)
        return json_of(invoke(*args))


def test_tune_json_then_answers_from_the_db(env, monkeypatch):
    db = env / "t.sqlite"
    first = json_of(invoke(*tune_args(env, db, "--json")))
    assert set(first) == TOP_KEYS
    assert first["cpu"] == host().cpu and first["isa"] == host().best_isa("dfp16")
    assert (first["threads"], first["batch"], first["bits"], first["db"]) == (1, 2, 13, str(db))
    (r,) = first["results"]
    assert set(r) == RESULT_KEYS
    assert (r["layer"], r["pass"], r["from_db"]) == ("c", "fprop", False)
    assert set(r["blocking"]) == {f.name for f in dataclasses.fields(Blocking)}
    Blocking(**r["blocking"])
    assert 1 <= r["measured"] <= 4 and 0 <= r["failures"] < r["measured"]
    assert r["gmacs"] > 0 and r["pct_peak"] > 0
    assert r["default_gmacs"] is not None and r["default_gmacs"] > 0
    assert r["vs_default"] >= 1.0          # the default is among the candidates: best <= default by construction
    assert r["default_gmacs"] <= r["gmacs"]
    assert r["fp32_gmacs"] > 0 and r["vs_fp32"] > 0
    assert (r["torch_gmacs"] is None) == (r["vs_torch"] is None)

    second = answered_from_the_db(monkeypatch, *tune_args(env, db, "--json"))   # with or without PyTorch
    (again,) = second["results"]
    assert again["from_db"] is True and again["measured"] == 0 and again["failures"] == 0
    assert again["blocking"] == r["blocking"] and again["gmacs"] == r["gmacs"]
    assert again["default_gmacs"] == r["default_gmacs"]
    assert (again["fp32_gmacs"], again["torch_gmacs"]) == (r["fp32_gmacs"], r["torch_gmacs"])  # baselines too

    shown = invoke("db", "show", "--db", db)
    assert shown.exit_code == 0, shown.output
    stored = int(re.search(r": (\d+) records", shown.output).group(1))
    assert r["measured"] <= stored <= r["measured"] + 4      # and the finalists' confirming timings
    rows = [line for line in shown.output.splitlines()[2:] if line.strip()]
    assert len(rows) == 1                                   # the best of the one task
    assert rows[0].split()[:4] == ["c", "fprop", "2", "1"]
    assert Blocking(**r["blocking"]).describe() in rows[0]

    everything = invoke("db", "show", "--all", "--db", db)
    assert everything.exit_code == 0
    assert len([line for line in everything.output.splitlines()[2:] if line.strip()]) == stored

    exported = invoke("db", "export", "--db", db)
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == stored
    for line in lines:
        assert set(line) == EXPORT_KEYS
        assert line["layer"] == "c" and line["key"]["pass_name"] == "fprop" and line["key"]["batch"] == 2
        assert line["key"]["threads"] == 1 and line["key"]["numerics"][:2] == [13, 13]
        assert (line["seconds"] is None) == (line["error_kind"] is not None)
    assert r["blocking"] in [line["blocking"] for line in lines if line["seconds"] is not None]


def test_tune_with_torch_measures_its_baseline_once(env, torch, monkeypatch):
    db = env / "t.sqlite"
    (first,) = json_of(invoke(*tune_args(env, db, "--json")))["results"]
    assert first["torch_gmacs"] > 0 and first["vs_torch"] > 0
    (again,) = answered_from_the_db(monkeypatch, *tune_args(env, db, "--json"))["results"]
    assert again["from_db"] is True and again["measured"] == 0
    assert (again["fp32_gmacs"], again["torch_gmacs"]) == (first["fp32_gmacs"], first["torch_gmacs"])


def test_retune_searches_again(env):
    db = env / "t.sqlite"
    first = json_of(invoke(*tune_args(env, db, "--json")))["results"][0]
    again = json_of(invoke(*tune_args(env, db, "--json", "--retune", "--seed", "1")))["results"][0]
    assert again["from_db"] is False and again["measured"] >= 1
    export = invoke("db", "export", "--db", db).stdout.splitlines()
    # every candidate of both searches, and up to 4 confirming timings of each search's finalists
    assert first["measured"] + again["measured"] <= len(export) <= first["measured"] + again["measured"] + 8


def test_tune_table_output(env):
    result = invoke(*tune_args(env, env / "t.sqlite"))
    assert result.exit_code == 0, result.output
    assert "tried" in result.stdout and "fprop" in result.stdout and str(env / "t.sqlite") in result.stdout


def test_tune_plot_writes_a_png(env):
    pytest.importorskip("matplotlib")
    db, png = env / "t.sqlite", env / "roofline.png"
    result = invoke(*tune_args(env, db, "--plot", png, "--json"))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000


def test_db_show_and_export_of_a_missing_db_are_empty(env):
    missing = env / "none.sqlite"
    shown = invoke("db", "show", "--db", missing)
    assert shown.exit_code == 0 and "0 records" in shown.output
    exported = invoke("db", "export", "--db", missing)
    assert exported.exit_code == 0 and exported.stdout == ""
    assert not missing.exists()


@pytest.mark.parametrize("command", ["tune", "show", "export"])
def test_corrupt_db_is_a_clean_error(env, command):
    bad = env / "bad.sqlite"
    bad.write_bytes(random.Random(0).randbytes(8192))
    args = tune_args(env, bad) if command == "tune" else ("db", command, "--db", bad)
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert "TuningDBError" in result.output and str(bad) in result.output
    assert isinstance(result.exception, SystemExit)    # a click error, not an uncaught exception


def test_db_show_of_a_truncated_db_is_a_clean_error(env):
    from dfpgen.tuning.db import Record, TuningDB, TuningKey

    path = env / "cut.sqlite"
    key = TuningKey((16, 16, 8, 8, 3, 3, 1, 1), "fprop", (16, 16, "nearest", "exact", 1, "avx512_vnni"), 2, 1,
                    "testcpu", "avx2", "0123456789abcdef")
    db = TuningDB(path)
    for i in range(300):
        db.add(Record(key, Blocking(kv=1 + i % 3, wb=1 + i % 11), 1e-4 * (1 + i % 13), 1.0, None, None,
                      1700000000.0 + i, f"layer{i:04d}"))
    db.close()
    path.write_bytes(path.read_bytes()[:-100])
    result = CliRunner().invoke(main, ["db", "show", "--db", str(path)])
    assert result.exit_code in (0, 1), result.output
    assert result.exit_code == 0 or "TuningDBError" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------- interrupted and unreadable

def clean_error(result, code: int = 1) -> str:
    """The one `Error:` line of a command that failed cleanly (no traceback, a click error)."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return line


def test_an_interrupted_tune_resumes_and_confirms(env, monkeypatch):
    from dfpgen.tuning.tune import Measurer

    db = env / "t.sqlite"
    original, calls = Measurer.measure, []

    def killed(self, blocking):
        if len(calls) == 2:
            raise KeyboardInterrupt      # Ctrl-C after two candidates
        calls.append(blocking)
        return original(self, blocking)
    with monkeypatch.context() as m:
        m.setattr(Measurer, "measure", killed)
        aborted = CliRunner().invoke(main, [str(a) for a in tune_args(env, db, "--json")])
    assert aborted.exit_code == 1 and "Aborted" in aborted.output
    assert len(invoke("db", "export", "--db", db).stdout.splitlines()) == 2
    assert "unconfirmed" in invoke("db", "show", "--db", db).output

    (resumed,) = json_of(invoke(*tune_args(env, db, "--json")))["results"]
    assert resumed["from_db"] is False                  # the unfinished search does not answer
    assert resumed["vs_default"] is not None and resumed["vs_default"] >= 1.0   # the default was confirmed
    table = invoke(*tune_args(env, db))                 # now a completed search: the database answers
    assert table.exit_code == 0, table.output
    row = [line for line in table.stdout.splitlines() if line.startswith("c ")][0]
    assert " db " in row and row.split()[-3] != "-"     # "x default" is known
    assert "unconfirmed" not in invoke("db", "show", "--db", db).output


def test_a_resumed_tune_says_what_it_reused(env, monkeypatch):
    from dfpgen.tuning.tune import Measurer

    db = env / "t.sqlite"
    original, calls = Measurer.measure, []

    def killed(self, blocking):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(blocking)
        return original(self, blocking)
    with monkeypatch.context() as m:
        m.setattr(Measurer, "measure", killed)
        CliRunner().invoke(main, [str(a) for a in tune_args(env, db)])
    table = invoke(*tune_args(env, db))
    assert table.exit_code == 0, table.output
    reused = re.search(r"(\d+) tried, (\d+) reused", table.stdout)
    assert reused and int(reused.group(2)) >= 2, table.stdout    # candidates the first run had measured


@pytest.fixture
def corrupt_default(env, tmp_path, monkeypatch):
    """A corrupt tuning database at DFPGEN_CACHE_DIR's default path (a cache directory of its own)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tuning.sqlite").write_bytes(random.Random(0).randbytes(8192))
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(cache))
    return cache / "tuning.sqlite"


@pytest.mark.parametrize("command", ["tune", "show", "export"])
def test_a_corrupt_default_db_fails_tune_and_db_with_one_line(env, corrupt_default, command):
    args = tune_args(env, "x")[:-2] if command == "tune" else ("db", command)       # no --db: the default
    line = clean_error(CliRunner().invoke(main, [str(a) for a in args]))
    assert "TuningDBError" in line and str(corrupt_default) in line


def test_train_runs_with_a_corrupt_default_db_and_warns_once(env, corrupt_default):
    import numpy as np

    rng = np.random.default_rng(0)
    data = env / "digits.npz"
    np.savez(data, x_train=rng.integers(0, 255, (32, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 32),
             x_test=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 8))
    with pytest.warns(UserWarning) as caught:
        result = CliRunner().invoke(main, ["train", "--net", "lenet", "--data", str(data), "--batch", "16",
                                           "--epochs", "1", "--threads", "1", "--out", str(env / "run")])
    assert result.exit_code == 0, result.output
    ours = [w for w in caught if w.category.__name__ == "TuningDBWarning"]
    assert len(ours) == 1 and str(corrupt_default) in str(ours[0].message)
    assert "tuning database is ignored" in str(ours[0].message)


@pytest.mark.parametrize("under", ["file/t.sqlite", "file/deeper/t.sqlite"])
def test_db_under_a_regular_file_is_one_line(env, monkeypatch, under):
    (env / "file").write_text("not a folder\n")
    line = clean_error(invoke(*tune_args(env, env / under)))
    assert "TuningDBError" in line and str(env / under) in line and "not a folder" in line
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(env / under))
    args = tune_args(env, "x")[:-2]
    line = clean_error(CliRunner().invoke(main, [str(a) for a in args]))
    assert f"DFPGEN_CACHE_DIR='{env / under}'" in line and f"{env / 'file'} is a file, not a folder" in line
    assert (env / "file").read_text() == "not a folder\n"


@pytest.mark.parametrize("command", ["show", "export"])
def test_db_show_of_an_empty_file_writes_nothing(env, command):
    empty = env / "empty.sqlite"
    empty.touch()
    result = invoke("db", command, "--db", empty)
    assert result.exit_code == 0, result.output
    if command == "show":
        assert "0 records (empty)" in result.output
    else:
        assert result.stdout == ""
    assert empty.stat().st_size == 0


@pytest.mark.parametrize("budget", ["nan", "inf", "-inf", "-1", "0.5"])
def test_tune_budget_must_be_finite_and_at_least_one_second(env, budget):
    args = list(tune_args(env, env / "t.sqlite"))
    args[args.index("--budget") + 1] = budget
    line = clean_error(CliRunner().invoke(main, [str(a) for a in args]), code=2)
    assert "--budget" in line and budget.lstrip("-") in line
    assert not (env / "t.sqlite").exists()
