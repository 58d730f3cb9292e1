"""Precision schedules: training through a ladder of word lengths (8 -> 12 -> 14 -> 16 bits -> FP32) on the
integer kernels, switching either when MuPPET's gradient-diversity policy says so (`MuppetSchedule`) or after
fixed numbers of epochs (`FixedLadder`, `--precision-ladder 8:2,12:2,16:*`).

A schedule is a frozen definition; what changes during a run is a `PrecisionState`, advanced once per epoch
by `schedule.observe_epoch(state, epoch, gradients)`, which also answers the `Switch` made, if any. The
state round-trips through `to_dict`/`from_dict` so `--resume` continues the same decisions. Every rung is a
LayerNumerics: DFP with `bits` for all three tensor kinds (gradients rounded stochastically unless the base
numerics say otherwise), or FP32; master weights are FP32 throughout. docs/precision.md has the policy as
MuPPET's code implements it and where its paper differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Protocol

import numpy as np

from dfpgen.core.dfp import MAX_BITS, MIN_BITS
from dfpgen.core.numerics import LayerNumerics
from dfpgen.errors import PrecisionScheduleError

FP32 = "fp32"
LADDER_FORM = "BITS:EPOCHS,...,BITS:* (BITS in 2..16 or fp32, rising; EPOCHS >= 1; '*' on the last rung only)"


def check_rung(rung, where: str = "rung"):
    """`rung` as an int in 2..16 or 'fp32'; PrecisionScheduleError naming `where` otherwise."""
    if isinstance(rung, str) and rung.lower() == FP32:
        return FP32
    if isinstance(rung, (int, np.integer)) and not isinstance(rung, (bool, np.bool_)) and MIN_BITS <= rung <= MAX_BITS:
        return int(rung)
    raise PrecisionScheduleError(f"{where}={rung!r}: must be bits in {MIN_BITS}..{MAX_BITS} or 'fp32'")


def rung_bits(rung) -> int:
    """The rung as a number for CSV logs and ordering: its bits, 32 for FP32."""
    return 32 if rung == FP32 else int(rung)


def rung_numerics(base: LayerNumerics, rung) -> LayerNumerics:
    """The numerics of one rung: `base` with every kind at `rung` bits and stochastic gradient rounding (unless
    base chose a gradient rounding), or FP32."""
    if rung == FP32:
        return LayerNumerics.fp32()
    return base.with_(precision="dfp16", bits=rung, bits_w=None, bits_grad=None,
                      grad_rounding=base.grad_rounding or "stochastic")


def _check_ladder(rungs, where: str) -> tuple:
    """Rungs checked and strictly rising (a ladder only climbs)."""
    rungs = tuple(check_rung(r, f"{where}[{i}]") for i, r in enumerate(rungs))
    if len(rungs) < 2:
        raise PrecisionScheduleError(f"{where}={rungs!r}: needs at least two rungs")
    for i in range(1, len(rungs)):
        if rung_bits(rungs[i]) <= rung_bits(rungs[i - 1]):
            raise PrecisionScheduleError(f"{where}[{i}]={rungs[i]!r}: rungs must rise (after {rungs[i - 1]!r})")
    return rungs


def gradient_diversity(samples) -> float:
    """sum_i ||g_i||^2 / ||sum_i g_i||^2 of one layer's sampled gradients (NaN when the sum is zero)."""
    norms = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in samples)
    total = float(np.sum(np.square(np.sum([np.asarray(g, np.float64) for g in samples], axis=0))))
    return norms / total if total > 0 else math.nan


@dataclass(frozen=True)
class Switch:
    """A precision switch made after `epoch` (1-based, as log.csv counts), with MuPPET's ratio and threshold."""

    epoch: int
    from_rung: int | str
    to_rung: int | str
    diversity_ratio: float | None = None   # max GD / current GD at the check (None for a fixed ladder)
    threshold: float | None = None

    def to_dict(self) -> dict:
        """A JSON-able form (summary.json, checkpoints)."""
        return {"epoch": self.epoch, "from": self.from_rung, "to": self.to_rung,
                "diversity_ratio": self.diversity_ratio, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> "Switch":
        """Rebuild from `to_dict`."""
        return cls(d["epoch"], d["from"], d["to"], d.get("diversity_ratio"), d.get("threshold"))

    def describe(self) -> str:
        """One log line: the epoch, the rungs, and MuPPET's ratio and threshold when a check made it."""
        why = (f" (diversity ratio {self.diversity_ratio:.4g} > threshold {self.threshold:.4g})"
               if self.diversity_ratio is not None else "")
        return f"epoch {self.epoch}: precision {self.from_rung} -> {self.to_rung}{why}"


@dataclass(frozen=True)
class PrecisionState:
    """Where a run stands: the rung index, and MuPPET's running maximum diversity, violation count and the
    per-layer sums of the gradients sampled since the last check (float64: sum of ||g||^2, and sum of g)."""

    rung: int = 0
    max_gd: float = 0.0
    violations: int = 0
    last_ratio: float | None = None   # the ratio at the latest check, for logs
    sum_norms: Mapping[str, float] = field(default_factory=dict)
    sum_grads: Mapping[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Scalars JSON-able; `sum_grads` stays a dict of arrays (a checkpoint keeps them in its .npz)."""
        return {"rung": self.rung, "max_gd": self.max_gd, "violations": self.violations,
                "last_ratio": self.last_ratio, "sum_norms": dict(self.sum_norms), "sum_grads": dict(self.sum_grads)}

    @classmethod
    def from_dict(cls, d: dict) -> "PrecisionState":
        """Rebuild from `to_dict`."""
        return cls(int(d["rung"]), float(d["max_gd"]), int(d["violations"]), d.get("last_ratio"),
                   {k: float(v) for k, v in d["sum_norms"].items()},
                   {k: np.asarray(v, np.float64) for k, v in d["sum_grads"].items()})


class PrecisionSchedule(Protocol):
    """What the trainer asks of a schedule (MuppetSchedule, FixedLadder)."""

    rungs: tuple

    def numerics(self, base: LayerNumerics, state: PrecisionState) -> LayerNumerics:
        """The current rung's numerics."""

    def observe_epoch(self, state: PrecisionState, epoch: int,
                      gradients: Mapping[str, np.ndarray]) -> tuple[PrecisionState, Switch | None]:
        """The state after epoch `epoch` (1-based) ended with these per-layer gradients, and the switch made."""

    def to_json(self) -> dict:
        """The definition, JSON-able (part of a run's configuration)."""


def _current(schedule, base: LayerNumerics, state: PrecisionState) -> LayerNumerics:
    return rung_numerics(base, schedule.rungs[state.rung])


@dataclass(frozen=True)
class MuppetSchedule:
    """MuPPET's policy (ICIdsl/muppet policy.py): every `r` epochs the mean over layers of the gradient diversity
    of the gradients sampled at the ends of those epochs; a violation when max/current > T(j) = alpha + beta *
    exp(-decay * j), j the 0-based epoch; `p` violations since the last switch climb one rung."""

    ladder: tuple = (8, 12, 14, 16, FP32)
    r: int = 3
    p: int = 2
    alpha: float = 1.0
    beta: float = 1.5
    decay: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "ladder", _check_ladder(self.ladder, "ladder"))
        for name in ("r", "p"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise PrecisionScheduleError(f"{name}={value!r}: must be an integer >= 1")
            object.__setattr__(self, name, int(value))
        for name in ("alpha", "beta", "decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise PrecisionScheduleError(f"{name}={value!r}: must be a finite number")
            object.__setattr__(self, name, float(value))

    @property
    def rungs(self) -> tuple:
        """The ladder's rungs, lowest first."""
        return self.ladder

    def threshold(self, j: int) -> float:
        """T(j) = alpha + beta * exp(-decay * j), j the 0-based epoch index (policy.py line 14)."""
        return self.alpha + self.beta * math.exp(-self.decay * j)

    def numerics(self, base: LayerNumerics, state: PrecisionState) -> LayerNumerics:
        """The current rung's numerics."""
        return _current(self, base, state)

    def observe_epoch(self, state: PrecisionState, epoch: int,
                      gradients: Mapping[str, np.ndarray]) -> tuple[PrecisionState, Switch | None]:
        """Sample this epoch's last gradients; on every r-th epoch check the policy and maybe climb a rung."""
        if state.rung == len(self.rungs) - 1:   # the top rung: MuPPET stops checking (policy.py line 49)
            return PrecisionState(state.rung), None
        # Copies in float64: policy.py stores the first sample by reference, which later steps overwrite.
        norms, grads = dict(state.sum_norms), dict(state.sum_grads)
        for name, g in gradients.items():
            g = np.asarray(g, np.float64)
            norms[name] = norms.get(name, 0.0) + float(np.sum(np.square(g)))
            grads[name] = grads[name] + g if name in grads else g.copy()
        if epoch % self.r != 0:   # (epoch + 1) % resolution in policy.py's 0-based count
            return PrecisionState(state.rung, state.max_gd, state.violations, None, norms, grads), None
        per_layer = [norms[k] / total for k in grads if (total := float(np.sum(np.square(grads[k])))) > 0]
        mean = float(np.mean(per_layer)) if per_layer else math.nan
        limit = self.threshold(epoch - 1)
        max_gd, violations = state.max_gd, state.violations
        if mean >= max_gd:
            max_gd = mean
        elif max_gd / mean > limit:
            violations += 1
        ratio = max_gd / mean if mean else math.nan
        if violations >= self.p:   # not consecutive: violations count up until a switch resets them
            switch = Switch(epoch, self.rungs[state.rung], self.rungs[state.rung + 1], ratio, limit)
            return PrecisionState(state.rung + 1, 0.0, 0, ratio), switch
        return PrecisionState(state.rung, max_gd, violations, ratio), None

    def to_json(self) -> dict:
        """The definition, JSON-able."""
        return {"kind": "muppet", "ladder": list(self.ladder), "r": self.r, "p": self.p, "alpha": self.alpha,
                "beta": self.beta, "decay": self.decay}


@dataclass(frozen=True)
class FixedLadder:
    """Rungs held for fixed numbers of epochs: ((bits, epochs), ..., (bits_or_fp32, None)), the last open-ended
    (MuPPET's prec_epoch_schedule)."""

    steps: tuple

    def __post_init__(self) -> None:
        steps = tuple(tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in self.steps)
        if any(len(s) != 2 for s in steps):
            raise PrecisionScheduleError(f"steps={self.steps!r}: each step must be (bits, epochs)")
        rungs = _check_ladder([s[0] for s in steps], "steps")
        for i, (_, epochs) in enumerate(steps):
            last = i == len(steps) - 1
            if last and epochs is not None:
                raise PrecisionScheduleError(f"steps[{i}] epochs={epochs!r}: the last rung is open-ended (None)")
            if not last and (not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1):
                raise PrecisionScheduleError(f"steps[{i}] epochs={epochs!r}: must be an integer >= 1")
        object.__setattr__(self, "steps", tuple((r, None if e is None else int(e)) for r, (_, e) in zip(rungs, steps)))

    @property
    def rungs(self) -> tuple:
        """The ladder's rungs, lowest first."""
        return tuple(r for r, _ in self.steps)

    def numerics(self, base: LayerNumerics, state: PrecisionState) -> LayerNumerics:
        """The current rung's numerics."""
        return _current(self, base, state)

    def observe_epoch(self, state: PrecisionState, epoch: int,
                      gradients: Mapping[str, np.ndarray]) -> tuple[PrecisionState, Switch | None]:
        """Climb a rung when `epoch` completes the current rung's epochs; gradients are not looked at."""
        ends = np.cumsum([e for _, e in self.steps[:-1]])
        if state.rung < len(ends) and epoch >= ends[state.rung]:
            return PrecisionState(state.rung + 1), Switch(epoch, self.rungs[state.rung], self.rungs[state.rung + 1])
        return state, None

    def to_json(self) -> dict:
        """The definition, JSON-able."""
        return {"kind": "ladder", "steps": [list(s) for s in self.steps]}

    def text(self) -> str:
        """The --precision-ladder form, e.g. '8:2,12:2,16:*'."""
        return ",".join(f"{r}:{'*' if e is None else e}" for r, e in self.steps)


def parse_ladder(text: str) -> FixedLadder:
    """A FixedLadder from '8:2,12:2,16:*'; PrecisionScheduleError naming the bad item and the allowed form."""
    items = [item.strip() for item in str(text).split(",")]
    steps = []
    for i, item in enumerate(items):
        bits, sep, epochs = item.partition(":")
        bits, epochs = bits.strip().lower(), epochs.strip()
        last = i == len(items) - 1
        if not sep or not bits or not epochs:
            raise PrecisionScheduleError(f"--precision-ladder {text!r}: item {item!r} is not BITS:EPOCHS; "
                                         f"expected {LADDER_FORM}")
        if not (bits == FP32 or bits.isdigit()) or (bits != FP32 and not MIN_BITS <= int(bits) <= MAX_BITS):
            raise PrecisionScheduleError(f"--precision-ladder {text!r}: bits {bits!r} in {item!r}; "
                                         f"expected {LADDER_FORM}")
        if (epochs == "*") != last or (epochs != "*" and not (epochs.isdigit() and int(epochs) >= 1)):
            raise PrecisionScheduleError(f"--precision-ladder {text!r}: epochs {epochs!r} in {item!r}; "
                                         f"expected {LADDER_FORM}")
        steps.append((FP32 if bits == FP32 else int(bits), None if epochs == "*" else int(epochs)))
    try:
        return FixedLadder(tuple(steps))
    except PrecisionScheduleError as exc:
        raise PrecisionScheduleError(f"--precision-ladder {text!r}: {exc}; expected {LADDER_FORM}") from None


def schedule_label(schedule) -> str | None:
    """A short name of a precision schedule for plot legends and run headers ('muppet', 'ladder 8:2,16:*'); None
    for no schedule."""
    if schedule is None:
        return None
    return "muppet" if schedule.to_json()["kind"] == "muppet" else f"ladder {schedule.text()}"


def schedule_from_json(d: dict | None):
    """The schedule a `to_json` dict describes (None for None)."""
    if d is None:
        return None
    if d.get("kind") == "muppet":
        return MuppetSchedule(tuple(d["ladder"]), d["r"], d["p"], d["alpha"], d["beta"], d["decay"])
    if d.get("kind") == "ladder":
        return FixedLadder(tuple(tuple(s) for s in d["steps"]))
    raise PrecisionScheduleError(f"kind={d.get('kind')!r}: a precision schedule must be 'muppet' or 'ladder'")
