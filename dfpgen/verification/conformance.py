"""Conformance: every problem of oneDNN's benchdnn shape lists through FPROP, BPROP and WTGRAD.

Each problem runs through `Conv2d` (the generated kernels, one per group for grouped layers) on
random DFP mantissas of the requested bits, and each pass is compared with the float64 reference
(`dfpgen.verification.reference`): bit for bit wherever no FP32 flush can round (sum of |products| < 2**24),
within the derived flush bound `(flushes + 1) * 2**-24 * sum |products|` everywhere else. The lists
that ship with dfpgen are in `dfpgen.specs/benchdnn/` (provenance in its README).
"""

from __future__ import annotations

import importlib.resources
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from dfpgen import passes
from dfpgen.core.descriptor import Problem, read_list
from dfpgen.core.dfp import DEFAULT_BITS, DFPTensor
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import DFPGenError, UnsupportedError
from dfpgen.passes import DY, Pass, W, X
from dfpgen.runtime.conv import Conv2d
from dfpgen.verification.reference import flush_bound

STATUSES = ("passed", "failed", "unsupported")


@dataclass(frozen=True)
class Outcome:
    """One problem (and pass) of a suite: passed, failed or unsupported, with why."""

    suite: str
    line: int
    problem: str
    pass_name: str
    status: str
    detail: str = ""
    spec: ConvSpec | None = None


def builtin_suites() -> list[Path]:
    """The benchdnn lists that ship with dfpgen, sorted by name."""
    folder = importlib.resources.files("dfpgen.specs") / "benchdnn"
    return sorted((Path(str(entry)) for entry in folder.iterdir() if entry.name.startswith("shapes_")),
                  key=lambda p: p.name)


def shrink(spec: ConvSpec, max_spatial: int | None) -> ConvSpec:
    """The problem scaled down so its input is at most max_spatial pixels high and wide.

    Both axes scale by the same factor. Filter, strides, dilations and paddings stay; the output
    size scales, and the input size is the one that gives that output with the same paddings, so
    every index relation the kernels handle (tails, asymmetric and negative padding) survives."""
    largest = max(spec.H, spec.W)
    if max_spatial is None or largest <= max_spatial:
        return spec
    factor = max_spatial / largest
    h, pb = _shrink_axis(spec.H, spec.P, spec.sh, spec.R_extent, spec.pt, spec.pb, max(1, round(spec.H * factor)))
    w, pr = _shrink_axis(spec.W, spec.Q, spec.sw, spec.S_extent, spec.pl, spec.pr, max(1, round(spec.W * factor)))
    if (h, w) == (spec.H, spec.W):
        return spec
    return replace(spec, H=h, W=w, pad_bottom=pb, pad_right=pr)


def _shrink_axis(size: int, out: int, stride: int, extent: int, low: int, high: int, limit: int) -> tuple[int, int]:
    """The largest input size <= limit (when one is valid) that keeps the axis' pads, filter and stride."""
    if size <= limit:
        return size, high
    outputs = min(out, max(1, (limit - extent + low + high) // stride + 1))
    while outputs < out and (outputs - 1) * stride + extent - low - high < max(1, 1 - high):
        outputs += 1
    return (outputs - 1) * stride + extent - low - high, high


def random_mantissas(shape: tuple, bits: int, rng: np.random.Generator) -> DFPTensor:
    """Uniform random mantissas over the whole range of `bits` (extremes included), exponent 0."""
    top = 2 ** (bits - 1) - 1
    return DFPTensor(rng.integers(-top, top + 1, size=shape, dtype=np.int16), 0, bits)


def check_pass(op: Conv2d, conv_pass: Pass | str, a: DFPTensor, b: DFPTensor) -> str:
    """'' when the pass agrees with the float64 reference, else what is wrong."""
    spec, conv_pass = op.spec, passes.get(conv_pass)
    got = op.run(conv_pass, a, b)[0].astype(np.float64)
    exact = conv_pass.reference(a.mant, b.mant, spec)
    magnitude = conv_pass.reference(np.abs(a.mant.astype(np.int32)), np.abs(b.mant.astype(np.int32)), spec)
    if got.shape != exact.shape:
        return f"shape {got.shape}, expected {exact.shape}"
    bound = flush_bound(magnitude, op.kernel(conv_pass).plan.flushes)
    error = np.abs(got - exact)
    if not np.all(np.isfinite(got)):
        return "non-finite output"
    bad = error > bound
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        return (f"{int(bad.sum())} of {bad.size} outputs off, e.g. at {index}: {got[index]:.9g} vs exact "
                f"{exact[index]:.9g} (bound {bound[index]:.3g})")
    return ""


def run_problem(problem: Problem, suite: str, pass_list: Iterable[Pass] = passes.ALL, *, mb: int | None = 2,
                max_spatial: int | None = None, bits: int = DEFAULT_BITS, isa: str | None = None,
                threads: int | None = None, seed: int = 0) -> list[Outcome]:
    """Run one problem's passes; every failure becomes an Outcome, never an exception."""
    spec = problem.spec if mb is None else problem.spec.with_batch(mb)
    spec = shrink(spec, max_spatial)
    label = problem.spec.name or problem.text
    rng = np.random.default_rng([seed, problem.line])
    outcomes = []
    try:
        op = Conv2d(spec, bits=bits, isa=isa, threads=threads, eager=False)
        tensors = {t: random_mantissas(t.shape(spec), bits, rng) for t in (X, W, DY)}
    except DFPGenError as exc:
        return [Outcome(suite, problem.line, label, passes.get(p).name, "failed", f"{type(exc).__name__}: {exc}", spec)
                for p in pass_list]
    for conv_pass in map(passes.get, pass_list):
        try:
            detail = check_pass(op, conv_pass, *(tensors[t] for t in conv_pass.operands))
        except DFPGenError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        outcomes.append(Outcome(suite, problem.line, label, conv_pass.name, "failed" if detail else "passed", detail,
                                spec))
    return outcomes


def run_suite(path: Path, pass_list: Iterable[Pass] = passes.ALL, progress: Callable[[Outcome], None] | None = None,
              entries: list | None = None, **options) -> list[Outcome]:
    """Every problem of one benchdnn list (see run_problem for the options); `entries` is the list as
    descriptor.read_list already read it, when the caller has it."""
    suite = Path(path).name
    outcomes: list[Outcome] = []
    for entry in read_list(path) if entries is None else entries:
        if isinstance(entry, UnsupportedError):
            found = [Outcome(suite, entry.line, entry.text, "all", "unsupported", _reason(entry))]
        elif isinstance(entry, Exception):
            found = [Outcome(suite, entry.line, entry.text, "all", "failed", f"malformed: {entry}")]
        else:
            found = run_problem(entry, suite, pass_list, **options)
        outcomes.extend(found)
        if progress:
            for outcome in found:
                progress(outcome)
    return outcomes


def _reason(exc: Exception) -> str:
    return str(exc).split("': ", 1)[-1]


def summary(outcomes: list[Outcome]) -> list[tuple[str, int, int, int]]:
    """(suite, passed, failed, unsupported) per suite, counting problem-passes, in first-seen order."""
    counts: dict[str, Counter] = {}
    for o in outcomes:
        counts.setdefault(o.suite, Counter())[o.status] += 1
    return [(suite, c["passed"], c["failed"], c["unsupported"]) for suite, c in counts.items()]
