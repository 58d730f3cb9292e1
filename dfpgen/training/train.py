"""Training whole networks with the generated kernels: the loop, evaluation, CSV logs and checkpoints.

Runs are reproducible: the data order depends on (seed, epoch), every stochastic rounding on (seed,
step, layer), and convolution results do not depend on the thread count, so `--resume` from an
epoch checkpoint continues exactly the trajectory of an uninterrupted run.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dfpgen.core.numerics import LayerNumerics
from dfpgen.errors import DFPGenError
from dfpgen.files import atomic_write
from dfpgen.nn.layers import BatchNorm, Conv, Linear, SoftmaxCrossEntropy, set_numerics
from dfpgen.nn.models import build
from dfpgen.nn.optim import SGD, learning_rate
from dfpgen.training.data import Dataset, batches, load
from dfpgen.training.precision import PrecisionSchedule, PrecisionState, Switch, rung_bits

CHECKPOINT_FORMAT = 1
LOG_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_s")
# With a precision schedule: the rung trained at (bits, 32 = FP32), MuPPET's max/current diversity ratio on the
# epochs it checks, and the switch made after the epoch (nan where there is none).
PRECISION_FIELDS = ("rung", "gd_ratio", "switch_from", "switch_to")


class CheckpointError(DFPGenError, RuntimeError):
    """A checkpoint is missing, corrupt, or from another run configuration."""


class TrainConfigError(DFPGenError, ValueError):
    """A training hyperparameter out of range (a NaN or infinite learning rate, a negative weight decay)."""


class LogError(DFPGenError, ValueError):
    """A training log is missing, not a dfpgen log, or damaged (undecodable bytes, a bad cell, a short row)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (and must match when resuming)."""

    net: str = "resnet8"
    data: str = "mnist"
    numerics: LayerNumerics = field(default_factory=LayerNumerics)
    epochs: int = 8
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    limit: int | None = None
    precision_schedule: PrecisionSchedule | None = None   # MuppetSchedule or FixedLadder (dfpgen.training.precision)

    def __post_init__(self) -> None:
        # A NaN or infinite rate would only surface epochs later as non-finite weights: refuse it here.
        for name, low, high, allowed in (("lr", 0.0, None, "a finite number > 0"),
                                         ("momentum", 0.0, 1.0, "a number in [0, 1)"),
                                         ("weight_decay", 0.0, None, "a finite number >= 0")):
            value = getattr(self, name)
            number = float("nan")
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
                try:
                    number = float(value)
                except OverflowError:   # an int beyond float64
                    pass
            if not np.isfinite(number) or number < low or (name == "lr" and number == 0) or \
                    (high is not None and number >= high):
                raise TrainConfigError(f"{name}={value!r}: must be {allowed}")
            object.__setattr__(self, name, number)   # frozen; numpy scalars become floats for the JSON config

    def to_json(self) -> dict:
        """A JSON-able form."""
        d = dataclasses.asdict(self)
        d["numerics"] = dataclasses.asdict(self.numerics)
        if not self.numerics.formats:   # as before formats existed, so earlier checkpoints still resume
            del d["numerics"]["formats"]
        d["precision_schedule"] = self.precision_schedule.to_json() if self.precision_schedule else None
        return d

    def matches(self, other: dict) -> list[str]:
        """Fields of a saved config that differ from this one (epochs may grow when resuming)."""
        return config_differences(self.to_json(), other, free=("epochs",))


def config_differences(mine: dict, saved: dict, free: tuple[str, ...] = ()) -> list[str]:
    """Fields of JSON config `mine` that a saved one holds differently, leaving out the `free` ones (those a
    resumed run may change, such as its length)."""
    mine = json.loads(json.dumps(mine))   # tuples as lists, as the saved JSON has them
    return [k for k in mine if k not in free and mine[k] != saved.get(k)]


@dataclass
class EpochLog:
    """One row of the CSV log."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    images_per_s: float
    rung: int | None = None          # PRECISION_FIELDS: None without a precision schedule
    gd_ratio: float | None = None
    switch_from: int | None = None
    switch_to: int | None = None

    def line(self) -> str:
        """The epoch's one-line report: training and test loss and accuracy, images per second."""
        return (f"epoch {self.epoch}: train loss {self.train_loss:.4f} acc {100 * self.train_acc:.2f}%  "
                f"test loss {self.test_loss:.4f} acc {100 * self.test_acc:.2f}%  {self.images_per_s:.0f} img/s")


class Trainer:
    """Builds the network and optimizer for a config and trains it, epoch by epoch."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None, threads: int | None = None):
        self.config = config
        self.data = dataset or load(config.data, limit=config.limit)
        self.schedule = config.precision_schedule
        self.precision = PrecisionState() if self.schedule else None
        self.switches: list[Switch] = []
        self.net, shape = build(config.net, self.numerics(), config.seed, threads, self.data.input_shape,
                                self.data.classes)
        if tuple(shape) != tuple(self.data.input_shape):
            raise DFPGenError(f"network {config.net} takes inputs {shape}, data {self.data.name} has "
                              f"{self.data.input_shape}")
        self.params = self.net.params
        self.optimizer = SGD(self.params, config.lr, config.momentum, config.weight_decay)
        self.loss = SoftmaxCrossEntropy()
        # Every layer that can round stochastically: convolutions and fully connected layers (whose inner
        # Conv layers() does not list), each reseeded per (seed, step, layer) so runs and resumes repeat.
        self.seeded = [layer for layer in self.net.layers() if isinstance(layer, (Conv, Linear))]
        self.norms = [layer for layer in self.net.layers() if isinstance(layer, BatchNorm)]
        self.epoch = 0
        self.history: list[EpochLog] = []

    def numerics(self) -> LayerNumerics:
        """The numerics training runs at now: the schedule's current rung, else the config's."""
        if self.schedule is None:
            return self.config.numerics
        return self.schedule.numerics(self.config.numerics, self.precision)

    def _observe_precision(self) -> dict:
        """Let the schedule see the epoch's last gradients (MuPPET samples every parameter's, policy.py's update);
        switch the network's numerics if it climbs. Returns the epoch's PRECISION_FIELDS."""
        rung = self.schedule.rungs[self.precision.rung]
        self.precision, switch = self.schedule.observe_epoch(self.precision, self.epoch, self.sampled_gradients())
        if switch:
            self.switches.append(switch)
            set_numerics(self.net, self.numerics())
        return precision_fields(rung, self.precision, switch)

    def sampled_gradients(self) -> dict[str, np.ndarray]:
        """What a precision schedule samples after an epoch: each parameter's last gradient plus its weight decay
        term, the tensor MuPPET's quant_sgd leaves in p.grad (docs/precision.md)."""
        decay = self.config.weight_decay
        return {p.name: p.grad + np.float32(decay) * p.data if p.decay and decay else p.grad for p in self.params}

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (the last partial batch is dropped)."""
        return len(self.data.train_y) // self.config.batch

    def step(self, x: np.ndarray, y: np.ndarray, lr: float, step_index: int) -> tuple[float, int]:
        """One forward, backward and update; returns the loss and the number of correct predictions."""
        for i, layer in enumerate(self.seeded):
            layer.reseed(self.config.seed, step_index, i)
        self.optimizer.zero_grad()
        logits = self.net.forward(x, train=True)
        loss = self.loss.forward(logits, y)
        self.net.backward(self.loss.backward())
        self.optimizer.step(lr)
        return loss, int((logits.argmax(axis=1) == y).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch: int = 250) -> tuple[float, float]:
        """Mean loss and accuracy in evaluation mode (batch norm's running statistics)."""
        total_loss, correct = 0.0, 0
        for i in range(0, len(y), batch):
            logits = self.net.forward(x[i:i + batch], train=False)
            total_loss += self.loss.forward(logits, y[i:i + batch]) * len(y[i:i + batch])
            correct += int((logits.argmax(axis=1) == y[i:i + batch]).sum())
        return total_loss / max(len(y), 1), correct / max(len(y), 1)

    def train_epoch(self, progress: Callable[[int, float, float], None] | None = None) -> EpochLog:
        """Train one epoch and evaluate; `progress(step, loss, images_per_s)` after every step."""
        c, epoch = self.config, self.epoch
        steps = self.steps_per_epoch()
        start, seen, losses, correct = time.perf_counter(), 0, [], 0
        for i, (x, y) in enumerate(batches(self.data.train_x, self.data.train_y, c.batch, c.seed, epoch)):
            lr = learning_rate(c.schedule, c.lr, epoch + i / max(steps, 1), c.epochs)
            loss, right = self.step(x, y, lr, epoch * steps + i)
            if not np.isfinite(loss):
                raise DFPGenError(f"loss became {loss} at epoch {epoch}, step {i}: lower --lr or raise --bits")
            losses.append(loss)
            correct += right
            seen += len(y)
            if progress:
                progress(i + 1, loss, seen / (time.perf_counter() - start))
        seconds = time.perf_counter() - start
        test_loss, test_acc = self.evaluate(self.data.test_x, self.data.test_y)
        self.epoch += 1
        precision = self._observe_precision() if self.schedule else {}
        log = EpochLog(self.epoch, learning_rate(c.schedule, c.lr, epoch, c.epochs), float(np.mean(losses)),
                       correct / max(seen, 1), test_loss, test_acc, seconds, seen / seconds, **precision)
        self.history.append(log)
        return log

    # ------------------------------------------------------------------------------ persistence

    def state(self) -> dict:
        """Every array a checkpoint holds."""
        arrays = {f"param/{p.name}": p.data for p in self.params}
        arrays.update(self.optimizer.state())
        for bn in self.norms:
            arrays[f"bn/{bn.name}/mean"], arrays[f"bn/{bn.name}/var"] = bn.running_mean, bn.running_var
        return arrays

    def save(self, path: Path) -> None:
        """Write a checkpoint atomically (a kill mid-write leaves the previous one intact)."""
        meta = {"epoch": self.epoch, "config": self.config.to_json(),
                "history": [dataclasses.asdict(h) for h in self.history]}
        arrays = self.state()
        if self.schedule:
            meta["precision"], schedule_arrays = precision_checkpoint(self.precision, self.switches)
            arrays.update(schedule_arrays)
        write_checkpoint(path, meta, arrays)

    def restore(self, path: Path) -> None:
        """Load a checkpoint of the same configuration and continue after its last epoch."""
        path = Path(path)
        meta, arrays = read_checkpoint(path, self.config.to_json(), free=("epochs",))
        check_arrays(path, arrays, self.state())
        for p in self.params:
            p.data[...] = arrays[f"param/{p.name}"]
        self.optimizer.load_state(arrays)
        for bn in self.norms:
            bn.running_mean[...] = arrays[f"bn/{bn.name}/mean"]
            bn.running_var[...] = arrays[f"bn/{bn.name}/var"]
        self.epoch = meta["epoch"]
        self.history = [EpochLog(**h) for h in meta["history"]]
        if self.schedule:
            self._restore_precision(path, meta, arrays)

    def _restore_precision(self, path: Path, meta: dict, arrays: dict) -> None:
        """The schedule's state and switches from a checkpoint, and the network at the saved rung."""
        self.precision, self.switches = precision_from_checkpoint(path, meta, arrays)
        set_numerics(self.net, self.numerics())


def precision_fields(rung, state: PrecisionState | None = None, switch: Switch | None = None) -> dict:
    """An epoch's PRECISION_FIELDS: the rung trained at, the ratio of the schedule's check after it (None
    without one: no check that epoch, or no state) and the switch made after it."""
    return {"rung": rung_bits(rung), "gd_ratio": state.last_ratio if state else None,
            "switch_from": rung_bits(switch.from_rung) if switch else None,
            "switch_to": rung_bits(switch.to_rung) if switch else None}


def write_checkpoint(path: Path, meta: dict, arrays: dict[str, np.ndarray], backend: str = "numpy") -> None:
    """A checkpoint: `arrays` and the JSON-able `meta` (its config, epoch, history, ...) in one .npz, written
    atomically (a kill mid-write leaves the previous one intact); `backend` is the runtime that wrote it."""
    meta = {"format": CHECKPOINT_FORMAT, **({"backend": backend} if backend != "numpy" else {}), **meta}
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    atomic_write(Path(path), buffer.getvalue())


def read_checkpoint(path: Path, config: dict, free: tuple[str, ...] = (), backend: str = "numpy",
                    arrays: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a checkpoint written by `backend` under JSON config `config` (the `free` fields may
    differ); with arrays=False only the meta is read. Raises CheckpointError, naming the file, for a missing,
    unreadable or foreign checkpoint, and naming the fields of one written by another configuration."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path) as saved:
            meta = json.loads(bytes(saved["__meta__"]).decode())
            loaded = {k: saved[k] for k in saved.files if k != "__meta__"} if arrays else {}
    except Exception as exc:  # zip, pickle and JSON errors all mean the same thing to the user
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')}, expected {CHECKPOINT_FORMAT}")
    if meta.get("backend", "numpy") != backend:   # numpy checkpoints predate the field
        raise CheckpointError(f"checkpoint {path} was written by --backend {meta.get('backend', 'numpy')}; "
                              f"resume it with that backend, not --backend {backend}")
    differ = config_differences(config, meta["config"], free)
    if differ:
        raise CheckpointError(f"checkpoint {path} was written by another configuration (differs in "
                              f"{', '.join(differ)})")
    return meta, loaded


def check_arrays(path: Path, arrays: dict, wanted) -> None:
    """CheckpointError, naming one, when a checkpoint's `arrays` lack any of the `wanted` names."""
    missing = set(wanted) - set(arrays)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {len(missing)} arrays, e.g. {sorted(missing)[0]}")


def precision_checkpoint(state: PrecisionState, switches: list[Switch]) -> tuple[dict, dict[str, np.ndarray]]:
    """A precision schedule's state and switches for a checkpoint: (its meta entry, its arrays, the gradient sums
    of an unfinished MuPPET window). The policy's state goes with the weights: a resumed run must take the same
    switches."""
    state = state.to_dict()
    arrays = {f"precision/{name}": g for name, g in state.pop("sum_grads").items()}
    return {"state": state, "switches": [s.to_dict() for s in switches]}, arrays


def precision_from_checkpoint(path: Path, meta: dict, arrays: dict) -> tuple[PrecisionState, list[Switch]]:
    """The schedule state and switches `precision_checkpoint` put in a checkpoint; CheckpointError without them."""
    if "precision" not in meta:
        raise CheckpointError(f"checkpoint {path} has no precision schedule state")
    state = dict(meta["precision"]["state"])
    state["sum_grads"] = {k[len("precision/"):]: v for k, v in arrays.items() if k.startswith("precision/")}
    return PrecisionState.from_dict(state), [Switch.from_dict(s) for s in meta["precision"]["switches"]]


def write_log(path: Path, history: list[EpochLog]) -> None:
    """The per-epoch CSV log (rewritten whole and atomically each epoch)."""
    out = io.StringIO()
    scheduled = any(h.rung is not None for h in history)   # precision columns only for scheduled runs
    writer = csv.DictWriter(out, fieldnames=LOG_FIELDS + (PRECISION_FIELDS if scheduled else ()))
    writer.writeheader()
    for h in history:
        row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in dataclasses.asdict(h).items()}
        for k in PRECISION_FIELDS:
            if scheduled and row[k] is None:
                row[k] = "nan"   # read_log reads every cell as a number
            elif not scheduled:
                del row[k]
        writer.writerow(row)
    atomic_write(Path(path), out.getvalue().encode())


def read_log(path: Path) -> list[dict]:
    """Rows of a CSV log as dicts of floats. Raises LogError, naming the file, line and bad value, for
    anything that is not a readable dfpgen training log."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise LogError(f"cannot read log {path}: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LogError(f"{path} line {line}: byte {raw[exc.start:exc.start + 1]!r} is not UTF-8 text, so this "
                       f"is not a dfpgen training log") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise LogError(f"{path} line {reader.line_num}: {exc}") from None
    if not rows or set(LOG_FIELDS) - set(reader.fieldnames or ()):
        raise LogError(f"{path} is not a dfpgen training log (expected columns {', '.join(LOG_FIELDS)})")
    columns = len(reader.fieldnames)
    out = []
    for line, row in rows:
        if None in row:
            raise LogError(f"{path} line {line}: {columns + len(row[None])} cells, expected {columns} "
                           f"(extra {_shown(row[None][0])})")
        missing = [k for k, v in row.items() if v is None]
        if missing:
            raise LogError(f"{path} line {line}: {columns - len(missing)} cells, expected {columns} "
                           f"(no {missing[0]})")
        values = {}
        for k, v in row.items():
            try:
                values[k] = float(v)
            except ValueError:
                raise LogError(f"{path} line {line}: {k} is {_shown(v)}, not a number") from None
        out.append(values)
    return out


def _shown(value: str, limit: int = 40) -> str:
    """A cell for a one-line message: quoted, escaped, and cut short."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
