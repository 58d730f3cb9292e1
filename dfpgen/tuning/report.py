"""What `dfpgen tune` reports for each tuned kernel: its rate and share of the peak, and its speedups
over the default blocking, our FP32 kernel and PyTorch FP32. The two baselines are measured once per
tuning key and remembered in the database beside the records."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib.util import find_spec

import numpy as np

from dfpgen.codegen.plan import Plan
from dfpgen.runtime.conv import compile
from dfpgen.tuning import measure
from dfpgen.tuning.db import TuningDB
from dfpgen.tuning.tune import Outcome, Task

BASELINE_SECONDS = 0.1   # timing budget of each baseline measurement


@dataclass(frozen=True)
class Baselines:
    """Seconds of the task's kernel in our FP32 kernel and in PyTorch FP32 (None: not measured)."""

    fp32: float | None
    torch: float | None


def baselines(task: Task, db: TuningDB, fp32_isa: str, remeasure: bool = False) -> Baselines:
    """The task's baselines from the database; each one it lacks (or all, with `remeasure`) is measured
    and stored, PyTorch's only where PyTorch is installed, so a database without a torch baseline
    answers on a machine without torch."""
    key = task.key
    fp32_s, torch_s = ((db.baseline(key, name) or (None,))[0] for name in ("fp32", "torch"))
    measure_fp32 = fp32_s is None or remeasure
    measure_torch = (torch_s is None or remeasure) and find_spec("torch") is not None
    if measure_fp32 or measure_torch:
        a, b = measure.random_operands(task.spec, task.conv_pass)
        if measure_fp32:
            kernel = compile(task.spec, task.conv_pass, isa=fp32_isa)
            fp32_s = measure.time_kernel(kernel, a, b, task.threads, BASELINE_SECONDS).seconds
            db.add_baseline(key, "fp32", fp32_s)
        timing = measure.time_torch(task.spec, a, b, task.threads, BASELINE_SECONDS, task.conv_pass) \
            if measure_torch else None
        if timing is not None:
            torch_s = timing.seconds
            db.add_baseline(key, "torch", torch_s)
    return Baselines(fp32_s, torch_s)


def row(task: Task, outcome: Outcome, base: Baselines | None, peak_gmacs: float) -> dict:
    """One result of `dfpgen tune --json` (the schema its --help prints); speedups are time ratios."""
    common = {"layer": task.spec.name, "pass": task.conv_pass.name, "from_db": outcome.from_db,
              "measured": outcome.measured, "failures": outcome.failures}
    best = outcome.best
    if best is None:
        return common | {"blocking": None, "error": "every candidate failed"}
    gmacs = lambda seconds: round(task.spec.macs / seconds / 1e9, 2) if seconds else None
    ratio = lambda seconds: round(seconds / best.seconds, 2) if seconds else None
    default_s = outcome.default.seconds if outcome.default else None
    return common | {
        "blocking": dataclasses.asdict(best.blocking), "gmacs": gmacs(best.seconds),
        "pct_peak": round(100 * task.spec.macs / best.seconds / 1e9 / peak_gmacs, 1),
        "default_gmacs": gmacs(default_s), "vs_default": ratio(default_s),
        "fp32_gmacs": gmacs(base.fp32), "vs_fp32": ratio(base.fp32),
        "torch_gmacs": gmacs(base.torch), "vs_torch": ratio(base.torch)}


def arithmetic_intensity(plan: Plan) -> float:
    """Multiply-accumulates per byte of the kernel's blocked operands and output (a roofline's x)."""
    operand_bytes = 2 if plan.int_accumulate else 4
    nbytes = (np.prod(plan.src_shape) + np.prod(plan.vec_shape)) * operand_bytes + np.prod(plan.dst_shape) * 4
    return float(plan.spec.macs / nbytes)


def roofline_point(task: Task, outcome: Outcome, gmacs: float) -> dict:
    """The tuned kernel as a point of `dfpgen tune --plot`'s roofline."""
    plan = compile(task.spec, task.conv_pass, task.numerics, isa=task.isa, blocking=outcome.best.blocking).plan
    return {"label": task.spec.name, "pass": task.conv_pass.name, "gmacs": gmacs,
            "intensity": arithmetic_intensity(plan)}
