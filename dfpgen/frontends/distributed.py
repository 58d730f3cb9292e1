"""Data-parallel DFP16 training with torch.distributed (gloo on CPU) and DistributedDataParallel.

    dfpgen train --backend torch --nproc 2 --net lenet --data mnist --batch 32 --out DIR

`launch` writes the run's DistConfig to DIR/config.json and starts
`torchrun --nproc_per_node N -m dfpgen.frontends.distributed DIR/config.json`, which runs `run` on
every rank (with --nproc 1 it calls `run` in this process).

Every rank builds the same network (a dfpgen.nn catalog network translated to torch modules by
dfpgen.frontends.torch_zoo, with the numpy runtime's initial weights), converts its convolutions and
fully-connected layers to DFP16 and wraps it in DDP, which all-reduces the FP32 gradients. Each global
batch is the single-process batch: rank r takes samples r, r + W, r + 2W, ... of it, the loss is scaled
so the averaged gradient is the gradient of the global mean loss, and batch norm statistics are
all-reduced over the global batch. What differs from one process is only where DFP quantizes: every
rank picks its own exponents for its shard's activations and gradients. Runs are reproducible: data
order, initial weights and stochastic rounding depend only on the seed (and the rank).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dfpgen.config import torchrun_world
from dfpgen.core.numerics import LayerNumerics
from dfpgen.errors import DFPGenError, NumericsError, PrecisionScheduleError
from dfpgen.files import atomic_write
from dfpgen.frontends.torch import PrecisionHook, convert
from dfpgen.frontends.torch_zoo import build_model
from dfpgen.nn.models import NETWORKS
from dfpgen.nn.optim import SCHEDULES, learning_rate
from dfpgen.training.data import batches, load
from dfpgen.training.precision import rung_bits, schedule_from_json
from dfpgen.training.train import TrainConfig, TrainConfigError

LOG_FIELDS = ("step", "epoch", "lr", "loss", "train_acc", "seconds")
CONFIG_FILE = "config.json"
USAGE = ("usage: torchrun --nproc_per_node N -m dfpgen.frontends.distributed CONFIG.json "
         "(dfpgen train --backend torch --nproc N writes OUT/config.json and runs this)")


class DistributedError(DFPGenError, RuntimeError):
    """A data-parallel run that cannot start or cannot go on (the message names the field, option, file or rank)."""


# ------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class DistConfig:
    """One data-parallel run (the same on every rank); constructing one validates every field."""

    net: str = "lenet"
    data: str = "mnist"
    steps: int | None = None
    epochs: int = 1
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    limit: int | None = None
    numerics: LayerNumerics = LayerNumerics()   # precision "fp32" leaves every layer in torch FP32 (the baseline)
    threads: int | None = None
    out: str = "runs/distributed"
    # A precision schedule's to_json() (MuppetSchedule, FixedLadder: dfpgen.training.precision), or None.
    precision_schedule: dict | None = None

    def __post_init__(self):
        object.__setattr__(self, "numerics", _numerics(self.numerics))
        self.precision()   # a bad schedule definition fails here, naming the field
        for f in fields(self):
            if f.name in ("numerics", "precision_schedule"):
                continue
            value = getattr(self, f.name)
            kind = f.type.split(" | ")[0]  # the annotations are strings: "int", "float | None", ...
            if value is None and "None" in f.type:
                continue
            if kind == "float" and type(value) is int:
                object.__setattr__(self, f.name, value := float(value))  # JSON writes 1.0 as 1
            if type(value) is not {"int": int, "float": float, "str": str}[kind]:
                raise DistributedError(f"{f.name} {value!r}: expected {kind}{' or null' if 'None' in f.type else ''}")
            if f.name in _CHOICES and value not in _CHOICES[f.name]:
                raise DistributedError(f"{f.name} {value!r}: expected one of {', '.join(_CHOICES[f.name])}")
            if f.name in _POSITIVE and value < 1:
                raise DistributedError(f"{f.name} {value!r}: expected a positive integer")
        # The rates mean what they mean in a numpy run: TrainConfig's checks are the one definition of them.
        try:
            TrainConfig(**{name: getattr(self, name) for name in ("lr", "momentum", "weight_decay")})
        except TrainConfigError as exc:
            raise DistributedError(str(exc)) from None

    def precision(self):
        """The precision schedule `precision_schedule` defines (None without one); DistributedError if it is bad."""
        if self.precision_schedule is None:
            return None
        if not isinstance(self.precision_schedule, dict):
            raise DistributedError(f"precision_schedule {self.precision_schedule!r}: expected an object (a "
                                   f"schedule's to_json()) or null")
        if self.numerics.precision != "dfp16":
            raise DistributedError(f"precision_schedule: the rungs set the precision; numerics.precision must be "
                                   f"'dfp16', not {self.numerics.precision!r}")
        try:
            return schedule_from_json(self.precision_schedule)
        except (PrecisionScheduleError, KeyError, TypeError) as exc:
            raise DistributedError(f"precision_schedule: {type(exc).__name__}: {exc}") from None

    def save(self, path: Path) -> Path:
        """Write this configuration to `path` as JSON (atomically) and return the path."""
        atomic_write(Path(path), (json.dumps(asdict(self), indent=2) + "\n").encode())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> DistConfig:
        """The configuration in JSON file `path`; a DistributedError naming the file if it is missing or bad."""
        try:
            fields_ = json.loads(Path(path).read_bytes())
        except OSError as exc:
            raise DistributedError(f"{path}: cannot read the run configuration ({exc.strerror or exc})") from None
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise DistributedError(f"{path}: not a JSON run configuration ({exc})") from None
        if not isinstance(fields_, dict):
            raise DistributedError(f"{path}: expected a JSON object of DistConfig fields, got {type(fields_).__name__}")
        unknown = sorted(set(fields_) - {f.name for f in fields(cls)})
        if unknown:
            names = ", ".join(f.name for f in fields(cls))
            raise DistributedError(f"{path}: unknown field {unknown[0]!r} (fields: {names})")
        try:
            return cls(**fields_)
        except DistributedError as exc:
            raise DistributedError(f"{path}: {exc}") from None


_CHOICES = {"net": tuple(NETWORKS), "schedule": tuple(SCHEDULES)}


def _numerics(value) -> LayerNumerics:
    """A DistConfig's numerics: a LayerNumerics, or its fields as a JSON object."""
    if isinstance(value, LayerNumerics):
        return value
    if not isinstance(value, dict):
        raise DistributedError(f"numerics {value!r}: expected an object of LayerNumerics fields")
    try:
        return LayerNumerics(**{k: tuple(v) if k == "dfp" and isinstance(v, list) else v for k, v in value.items()})
    except TypeError as exc:   # an unknown field
        raise DistributedError(f"numerics: {exc}") from None
    except NumericsError as exc:
        raise DistributedError(f"numerics: {exc}") from None
_POSITIVE = ("steps", "epochs", "batch", "limit", "threads")


# ---------------------------------------------------------------------------------------- training


def _all_sum(values: list[float], world: int) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if world > 1:
        dist.all_reduce(t)
    return t.tolist()


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, rank: int, world: int, batch: int = 250):
    """(mean loss, accuracy) on every rank, each rank evaluating every world-th sample."""
    model.eval()
    xs, ys = x[rank::world], y[rank::world]
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ys), batch):
            logits = model(torch.from_numpy(np.ascontiguousarray(xs[i:i + batch])))
            target = torch.from_numpy(ys[i:i + batch])
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    model.train()
    loss, correct = _all_sum([loss, correct], world)
    return loss / max(len(y), 1), correct / max(len(y), 1)


def run(config: DistConfig) -> dict:
    """Train on this rank (all ranks of a torchrun job call this); returns the summary rank 0 writes."""
    place = torchrun_world()
    rank, world, local_world = place.rank, place.size, place.local_size
    if world > 1 and not dist.is_initialized():
        if not dist.is_available() or not dist.is_gloo_available():
            raise DistributedError("torch.distributed with the gloo backend is not available in this torch build")
        dist.init_process_group("gloo")
    try:
        return _train(config, rank, world, local_world)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(c: DistConfig, rank: int, world: int, local_world: int) -> dict:
    if c.batch < world:
        raise DistributedError(f"--batch {c.batch}: the global batch needs at least one sample per rank ({world})")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = c.threads or max(1, cores // local_world)  # ranks on one machine share its cores
    torch.set_num_threads(threads)
    torch.manual_seed(c.seed)
    data = load(c.data, limit=c.limit)
    model, shape = build_model(c.net, c.seed, data.input_shape, data.classes, sync_bn=world > 1)
    if shape != tuple(data.input_shape):
        raise DistributedError(f"--net {c.net} takes inputs {shape}, the data has {data.input_shape}: "
                               f"use --data synthetic for the ImageNet networks")
    report, schedule = None, c.precision()
    if c.numerics.precision == "dfp16":
        report = convert(model, numerics=c.numerics, threads=threads, seed=(c.seed, rank))
    # DDP leaves every rank the same averaged gradients, so every rank's schedule takes the same switches.
    hook = PrecisionHook(model, schedule, c.numerics, weight_decay=c.weight_decay) if schedule else None
    ddp = _ddp(model) if world > 1 else model
    # As the numpy runtime: weight decay on convolution and fully-connected weights only.
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                          lr=c.lr, momentum=c.momentum)
    per_epoch = len(data.train_y) // c.batch
    if per_epoch == 0:
        raise DistributedError(f"--batch {c.batch} exceeds the {len(data.train_y)} training samples")
    total = c.steps or c.epochs * per_epoch
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        print(f"{c.net} on {data.name} ({len(data.train_y)} train / {len(data.test_y)} test), {world} rank(s) x "
              f"{threads} thread(s), global batch {c.batch}, {total} steps, {c.numerics.describe()}", file=sys.stderr)
        if report is not None:
            print(report, file=sys.stderr)
    rows, step, start = [], 0, time.perf_counter()
    for epoch in range(-(-total // per_epoch)):
        for xb, yb in batches(data.train_x, data.train_y, c.batch, c.seed, epoch):
            if step == total:
                break
            lr = learning_rate(c.schedule, c.lr, step / total, 1)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = torch.from_numpy(xb[rank::world].copy()), torch.from_numpy(yb[rank::world].copy())
            opt.zero_grad(set_to_none=True)
            logits = ddp(x)
            # DDP averages gradients over ranks: W/B times this shard's summed loss averages to the
            # gradient of the global batch's mean loss, whatever the shard sizes.
            loss = F.cross_entropy(logits, y, reduction="sum") * (world / c.batch)
            loss.backward()
            opt.step()
            step += 1
            loss_sum, right = _all_sum([float(loss.detach()) / world, int((logits.argmax(1) == y).sum())], world)
            if not np.isfinite(loss_sum):
                raise DistributedError(f"loss became {loss_sum} at step {step}: lower --lr or raise --bits")
            rows.append({"step": step, "epoch": epoch, "lr": round(lr, 8), "loss": round(loss_sum, 6),
                         "train_acc": round(right / c.batch, 6), "seconds": round(time.perf_counter() - start, 3)}
                        | ({"rung": rung_bits(hook.rung)} if hook else {}))
        if rank == 0 and rows:
            print(f"epoch {epoch + 1}: step {step}/{total} loss {rows[-1]['loss']:.4f}", file=sys.stderr)
        if hook and step == (epoch + 1) * per_epoch:   # a whole epoch: its last step's gradients are still there
            _observe_epoch(hook, epoch + 1, rank, world)
    seconds = time.perf_counter() - start
    test_loss, test_acc = evaluate(model, data.test_x, data.test_y, rank, world)
    _write_outputs(out, rank, model, rows)
    summary = {"config": asdict(c), "world_size": world, "threads": threads, "steps": step,
               "final_loss": rows[-1]["loss"] if rows else None, "test_loss": test_loss, "test_acc": test_acc,
               "seconds": seconds, "images_per_s": step * c.batch / max(seconds, 1e-9),
               "converted": report.converted if report else [], "kept": report.kept if report else []}
    if hook:
        summary["switches"] = [s.to_dict() for s in hook.switches]
        summary["final_rung"] = hook.rung
    if rank == 0:
        atomic_write(out / "summary.json", json.dumps(summary, indent=2).encode())
        print(f"final test accuracy {100 * test_acc:.2f}% ({out})", file=sys.stderr)
    return summary


def _observe_epoch(hook: PrecisionHook, epoch: int, rank: int, world: int) -> None:
    """End an epoch for the precision schedule; check every rank is still at the same rung (they see the same
    gradients, so a difference means the ranks no longer train one model)."""
    switch = hook.end_epoch(epoch)
    if rank == 0 and switch:
        print(f"epoch {epoch}: precision {switch.from_rung} -> {switch.to_rung}", file=sys.stderr)
    # Rungs only climb one at a time from one state: the sum is world x rung only when every rank agrees.
    if _all_sum([hook.state.rung], world)[0] != world * hook.state.rung:
        raise DistributedError(f"epoch {epoch}: the ranks' precision schedules disagree (rank {rank} at rung "
                               f"{hook.rung})")


def _ddp(model: nn.Module) -> nn.Module:
    # SyncBatchNorm2d keeps the buffers equal on every rank, so DDP need not broadcast them every forward
    # (the option's name changed in torch 2.13).
    import inspect

    ddp = nn.parallel.DistributedDataParallel
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:
        return ddp(model, forward_sync_buffers=False)
    return ddp(model, broadcast_buffers=False)


def _write_outputs(out: Path, rank: int, model: nn.Module, rows: list[dict]) -> None:
    """weights_rank{r}.npz (every parameter and buffer) and log_rank{r}.csv, written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    atomic_write(out / f"weights_rank{rank}.npz", buffer.getvalue())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_FIELDS + (("rung",) if rows and "rung" in rows[0] else ()))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / f"log_rank{rank}.csv", text.getvalue().encode())


# ------------------------------------------------------------------------------------------ launch


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config: DistConfig, nproc: int = 1) -> int:
    """Run `config` in this process (nproc 1) or on nproc ranks under torch.distributed.run on the loopback
    (every rank reads OUT/config.json); returns the exit status, 0 when every rank succeeded."""
    if type(nproc) is not int or nproc < 1:
        raise DistributedError(f"nproc {nproc!r}: expected a positive integer")
    if nproc == 1:
        return _guarded(lambda: run(config))
    path = config.save(Path(config.out) / CONFIG_FILE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "dfpgen.frontends.distributed",
           str(path)]
    return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    """Per-rank entry point, `python -m dfpgen.frontends.distributed CONFIG.json`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    return _guarded(lambda: run(DistConfig.load(argv[0])))


def _guarded(body) -> int:
    """Exit status of `body()`: 1, after one line on stderr, when it raises a DFPGenError."""
    try:
        body()
    except DFPGenError as exc:
        try:
            rank = torchrun_world().rank
        except DFPGenError:
            rank = 0  # the environment itself was the error: it is in the message
        print(f"rank {rank}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
