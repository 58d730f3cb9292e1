"""What `dfpgen tune` reports (dfpgen/tuning/report.py): result rows, the baselines kept in the
database, and the roofline's arithmetic intensity."""

from __future__ import annotations

import numpy as np
import pytest

import dfpgen
from dfpgen import passes
from dfpgen.codegen.plan import Blocking
from dfpgen.core.numerics import Numerics
from dfpgen.core.target import host
from dfpgen.tuning import measure, report
from dfpgen.tuning.db import Record, TuningDB
from dfpgen.tuning.tune import Outcome, Task

SPEC = dfpgen.ConvSpec(2, 8, 16, 6, 6, 3, 3, 1, 1, "tiny")


@pytest.fixture
def task():
    return Task(SPEC, passes.BPROP, Numerics(13, 13), host().best_isa("dfp16"), 1, host())


def record(task, seconds):
    return Record(task.key, Blocking(1, 2, 1), seconds, SPEC.macs / seconds / 1e9, layer="tiny")


def test_row_gives_rates_and_time_ratios(task):
    outcome = Outcome(task, record(task, 1e-3), record(task, 2e-3), from_db=False, measured=5, failures=1)
    row = report.row(task, outcome, report.Baselines(fp32=3e-3, torch=None), peak_gmacs=SPEC.macs / 1e-3 / 1e9 * 2)
    assert row["pass"] == "bprop" and row["layer"] == "tiny" and row["blocking"]["kv"] == 1
    assert row["gmacs"] == round(SPEC.macs / 1e-3 / 1e9, 2) and row["pct_peak"] == 50.0
    assert (row["vs_default"], row["vs_fp32"], row["vs_torch"], row["torch_gmacs"]) == (2.0, 3.0, None, None)
    assert (row["measured"], row["failures"]) == (5, 1)


def test_a_task_whose_candidates_all_failed_says_so(task):
    row = report.row(task, Outcome(task, None, None, from_db=False, measured=3, failures=3), None, 1.0)
    assert row["blocking"] is None and row["error"] == "every candidate failed" and row["failures"] == 3


def test_baselines_are_measured_once_then_read_from_the_database(task, tmp_path, monkeypatch):
    db = TuningDB(tmp_path / "t.sqlite")
    first = report.baselines(task, db, host().best_isa("fp32"))
    assert first.fp32 > 0
    for name in ("random_operands", "time_kernel", "time_torch"):
        monkeypatch.setattr(measure, name, lambda *a, **k: pytest.fail("measured instead of reading the database"))
    assert report.baselines(task, db, host().best_isa("fp32")) == first


def test_arithmetic_intensity_counts_operands_and_output(task):
    plan = dfpgen.compile(SPEC, passes.FPROP, Numerics(13, 13), isa=task.isa).plan
    nbytes = (np.prod(plan.src_shape) + np.prod(plan.vec_shape)) * 2 + np.prod(plan.dst_shape) * 4
    assert report.arithmetic_intensity(plan) == pytest.approx(SPEC.macs / nbytes)
