"""Data-parallel DFP16 training with torch.distributed (gloo on CPU) and DistributedDataParallel.

    dfpgen train --backend torch --nproc 2 --net lenet --data mnist --batch 32 --out DIR

`launch` writes the run's DistConfig to DIR/config.json and starts
`torchrun --nproc_per_node N -m dfpgen.frontends.distributed DIR/config.json`, which runs `run` on
every rank (with --nproc 1 it calls `run` in this process).

DIR gets what a numpy-backend run writes: log.csv (one row per epoch, dfpgen.training.train's format,
with the precision columns under a schedule), checkpoint.npz after every whole epoch, summary.json and
curves.png; and per rank the final weights_rank{r}.npz and the per-step log_rank{r}.csv. With `resume`
a run continues from DIR/checkpoint.npz: weights, batch norm buffers, momentum, the precision schedule's
state and switches, every rank's stochastic-rounding generators and torch's RNG, the logs so far.

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
from dataclasses import asdict, dataclass, field, fields
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
from dfpgen.frontends.torch import DFPConv2d, DFPLinear, PrecisionHook, convert
from dfpgen.frontends.torch_zoo import build_model
from dfpgen.nn.models import NETWORKS
from dfpgen.nn.optim import SCHEDULES, learning_rate
from dfpgen.training.data import batches, load
from dfpgen.training.precision import rung_bits, schedule_from_json, schedule_label
from dfpgen.training.train import (CheckpointError, EpochLog, TrainConfig, TrainConfigError, check_arrays,
                                   precision_checkpoint, precision_fields, precision_from_checkpoint, read_checkpoint,
                                   write_checkpoint, write_log)

LOG_FIELDS = ("step", "epoch", "lr", "loss", "train_acc", "seconds")   # the per-step log_rank{r}.csv
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.npz"
# What a resumed run may change: its length (as --epochs on the numpy backend; --steps too), where the
# folder is, the threads (dfpgen's kernels give the same bits for any count) and the resume flag itself.
RESUME_FREE = ("epochs", "steps", "threads", "out", "resume")
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
    resume: bool = False   # continue from out/checkpoint.npz (written after every whole epoch)

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
            if type(value) is not {"int": int, "float": float, "str": str, "bool": bool}[kind]:
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
        summary = _train(config, rank, world, local_world)
        if world > 1:
            # Every rank reaches teardown together (rank 0 writes the checkpoint and plots first): a rank that
            # tore down its gloo connections while a peer still held them was seen to abort at exit in CI.
            dist.barrier()
        return summary
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
    # As the numpy runtime: weight decay on convolution and fully-connected weights only.
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                          lr=c.lr, momentum=c.momentum)
    per_epoch = len(data.train_y) // c.batch
    if per_epoch == 0:
        raise DistributedError(f"--batch {c.batch} exceeds the {len(data.train_y)} training samples")
    out = Path(c.out)
    progress = _Progress()
    if c.resume:   # before the hook and DDP: the hook sets the saved rung, DDP starts from the saved weights
        progress = _restore(c, rank, world, model, opt)
    # DDP leaves every rank the same averaged gradients, so every rank's schedule takes the same switches.
    hook = PrecisionHook(model, schedule, c.numerics, state=progress.precision, switches=progress.switches,
                         weight_decay=c.weight_decay) if schedule else None
    ddp = _ddp(model) if world > 1 else model
    total = c.steps or c.epochs * per_epoch
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        if c.resume:
            print(f"resumed from {out / CHECKPOINT_FILE} after epoch {progress.epoch}", file=sys.stderr)
        note = f" (precision schedule: {schedule_label(schedule)})" if schedule else ""
        print(f"{c.net} on {data.name} ({len(data.train_y)} train / {len(data.test_y)} test), {world} rank(s) x "
              f"{threads} thread(s), global batch {c.batch}, {total} steps, "
              f"{(hook.numerics if hook else c.numerics).describe()}{note}", file=sys.stderr)
        if report is not None:
            print(report, file=sys.stderr)
    step, start = progress.step, time.perf_counter() - (progress.rows[-1]["seconds"] if progress.rows else 0.0)
    for epoch in range(progress.epoch, -(-total // per_epoch)):
        epoch_start, losses, correct = time.perf_counter(), [], 0
        for xb, yb in batches(data.train_x, data.train_y, c.batch, c.seed, epoch):
            if step >= total:
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
            losses.append(loss_sum)
            correct += int(right)
            progress.rows.append({"step": step, "epoch": epoch, "lr": round(lr, 8), "loss": round(loss_sum, 6),
                                  "train_acc": round(right / c.batch, 6),
                                  "seconds": round(time.perf_counter() - start, 3)}
                                 | ({"rung": rung_bits(hook.rung)} if hook else {}))
        seconds = time.perf_counter() - epoch_start
        # As the numpy backend: evaluate at the rung trained at, then let the schedule see the last gradients.
        test_loss, test_acc = evaluate(model, data.test_x, data.test_y, rank, world)
        whole = step == (epoch + 1) * per_epoch   # with --steps a last partial epoch is logged, not observed
        precision = {}
        if hook:
            rung = hook.rung
            switch = _observe_epoch(hook, epoch + 1, rank, world) if whole else None
            precision = precision_fields(rung, hook.state if whole else None, switch)
        seen = len(losses) * c.batch
        progress.history.append(EpochLog(epoch + 1, learning_rate(c.schedule, c.lr, epoch * per_epoch / total, 1),
                                         float(np.mean(losses)), correct / seen, test_loss, test_acc, seconds,
                                         seen / seconds, **precision))
        progress.epoch, progress.step = epoch + 1, step
        if whole:   # a partial epoch is not resumable: a resumed run redoes it from the last whole one
            _save_checkpoint(out / CHECKPOINT_FILE, c, rank, world, model, opt, hook, progress)
        if rank == 0:
            write_log(out / "log.csv", progress.history)
            print(progress.history[-1].line(), file=sys.stderr)
    _write_outputs(out, rank, model, progress.rows)
    return _summary(c, rank, world, threads, report, hook, progress)


@dataclass
class _Progress:
    """Where a run stands after its last epoch: what a checkpoint saves and a resumed run starts from."""

    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)   # EpochLog per epoch: log.csv
    rows: list = field(default_factory=list)      # per step: log_rank{r}.csv
    precision: object = None                      # the schedule's PrecisionState (None: its first)
    switches: tuple = ()


def _summary(c: DistConfig, rank: int, world: int, threads: int, report, hook, run: _Progress) -> dict:
    """summary.json (rank 0 writes it, and the plot): the config, the final epoch's test loss and accuracy,
    training seconds and images/s over every epoch, the converted layers, and a schedule's switches."""
    final = run.history[-1] if run.history else None
    seconds = sum(h.seconds for h in run.history)
    summary = {"config": asdict(c), "world_size": world, "threads": threads, "epochs": run.epoch, "steps": run.step,
               "final_loss": run.rows[-1]["loss"] if run.rows else None,
               "test_loss": final.test_loss if final else None, "test_acc": final.test_acc if final else None,
               "seconds": seconds, "images_per_s": run.step * c.batch / max(seconds, 1e-9),
               "converted": report.converted if report else [], "kept": report.kept if report else []}
    if hook:
        summary["switches"] = [s.to_dict() for s in hook.switches]
        summary["final_rung"] = hook.rung
    if rank == 0:
        out = Path(c.out)
        atomic_write(out / "summary.json", json.dumps(summary, indent=2).encode())
        try:
            from dfpgen.training.plot import run_curves
            run_curves(out, c.net, c.numerics, hook.schedule if hook else None)
        except DFPGenError as exc:   # matplotlib missing: the run itself succeeded
            print(f"no plot: {exc}", file=sys.stderr)
        print(f"final test accuracy {100 * final.test_acc:.2f}% ({out})" if final else "nothing trained",
              file=sys.stderr)
    return summary


def _observe_epoch(hook: PrecisionHook, epoch: int, rank: int, world: int):
    """End an epoch for the precision schedule and return its switch (or None); check every rank is still at the
    same rung (they see the same gradients, so a difference means the ranks no longer train one model)."""
    switch = hook.end_epoch(epoch)
    if rank == 0 and switch:
        print(switch.describe(), file=sys.stderr)
    # Rungs only climb one at a time from one state: the sum is world x rung only when every rank agrees.
    if _all_sum([hook.state.rung], world)[0] != world * hook.state.rung:
        raise DistributedError(f"epoch {epoch}: the ranks' precision schedules disagree (rank {rank} at rung "
                               f"{hook.rung})")
    return switch


# ------------------------------------------------------------------------------------------ resume


def read_resume(config: DistConfig, world: int, arrays: bool = True) -> tuple[dict, dict]:
    """(meta, arrays) of the checkpoint `config` resumes from on `world` ranks (arrays=False: the meta only).
    CheckpointError for a missing or damaged one, one of another backend, or of another configuration
    (naming the fields); DistributedError for one written by another number of processes."""
    path = Path(config.out) / CHECKPOINT_FILE
    meta, saved = read_checkpoint(path, asdict(config), RESUME_FREE, backend="torch", arrays=arrays)
    if meta.get("world_size") != world:
        # Each rank quantizes its own shard with its own generators: another world size is another trajectory.
        raise DistributedError(f"checkpoint {path} was written by {meta.get('world_size')} process(es), this run "
                               f"has {world}: resume it with --nproc {meta.get('world_size')}")
    return meta, saved


def _dfp_layers(model: nn.Module) -> list:
    """The model's DFP layers, in module order: each draws stochastic rounding from its own generator."""
    return [m for m in model.modules() if isinstance(m, (DFPConv2d, DFPLinear))]


def _save_checkpoint(path: Path, c: DistConfig, rank: int, world: int, model: nn.Module, opt, hook,
                     run: _Progress) -> None:
    """checkpoint.npz (rank 0 writes it atomically; every rank must call this): the weights and buffers, SGD's
    momentum, the schedule's state, every rank's generators and the logs so far. The rest is the same on every
    rank (DDP's averaged gradients, SyncBatchNorm's global statistics), so rank 0's copy stands for all."""
    # No catalog network draws from torch's generator today (no dropout); it is saved so one that does resumes too.
    rng = {"dfp": [m.rng.bit_generator.state for m in _dfp_layers(model)], "torch": torch.get_rng_state().numpy()}
    ranks = [rng]
    if world > 1:
        ranks = [None] * world
        dist.all_gather_object(ranks, rng)
    if rank != 0:
        return
    arrays = {f"model/{k}": v.detach().numpy() for k, v in model.state_dict().items()}
    state = opt.state_dict()
    arrays.update({f"optim/{i}/{name}": value.numpy() for i, entry in state["state"].items()
                   for name, value in entry.items()})
    arrays.update({f"torch_rng/{r}": s["torch"] for r, s in enumerate(ranks)})
    meta = {"epoch": run.epoch, "step": run.step, "config": asdict(c), "world_size": world,
            "history": [asdict(h) for h in run.history], "step_log": run.rows,
            "optimizer": state["param_groups"], "rng": [s["dfp"] for s in ranks]}
    if hook:
        meta["precision"], schedule_arrays = precision_checkpoint(hook.state, hook.switches)
        arrays.update(schedule_arrays)
    write_checkpoint(path, meta, arrays, backend="torch")


def _restore(c: DistConfig, rank: int, world: int, model: nn.Module, opt) -> _Progress:
    """Load out/checkpoint.npz into the model, optimizer and this rank's generators; returns where it stood."""
    path = Path(c.out) / CHECKPOINT_FILE
    meta, arrays = read_resume(c, world)
    names = list(model.state_dict())
    optim = [k for k in arrays if k.startswith("optim/")]
    check_arrays(path, arrays, [f"model/{k}" for k in names] + [f"torch_rng/{rank}"])
    layers = _dfp_layers(model)
    if len(meta["rng"][rank]) != len(layers):
        raise CheckpointError(f"checkpoint {path} holds {len(meta['rng'][rank])} DFP layers' generators, the model "
                              f"has {len(layers)}")
    model.load_state_dict({k: torch.from_numpy(arrays[f"model/{k}"]) for k in names})
    momentum = {}
    for key in optim:   # optim/{parameter index}/{name}: SGD's momentum_buffer
        _, index, name = key.split("/", 2)
        momentum.setdefault(int(index), {})[name] = torch.from_numpy(arrays[key])
    opt.load_state_dict({"state": momentum, "param_groups": meta["optimizer"]})
    for layer, state in zip(layers, meta["rng"][rank]):
        layer.rng.bit_generator.state = state
    torch.set_rng_state(torch.from_numpy(arrays[f"torch_rng/{rank}"]))
    run = _Progress(meta["epoch"], meta["step"], [EpochLog(**h) for h in meta["history"]], meta["step_log"])
    if c.precision_schedule is not None:
        run.precision, run.switches = precision_from_checkpoint(path, meta, arrays)
    return run


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
    (every rank reads OUT/config.json); returns the exit status, 0 when every rank succeeded. A resume whose
    checkpoint does not fit raises here (CheckpointError, DistributedError)."""
    if type(nproc) is not int or nproc < 1:
        raise DistributedError(f"nproc {nproc!r}: expected a positive integer")
    if config.resume:   # a checkpoint that cannot be resumed is one line here, before any rank starts
        read_resume(config, nproc, arrays=False)
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


def _leave(status: int) -> None:
    """Exit a rank of a multi-rank job with `status` once its output is flushed, without running the C++
    static destructors: with gloo's threads still joinable they abort an otherwise finished rank
    ("terminate called without an active exception", seen in CI after the barrier and the teardown)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _ranks() -> int:
    """The job's number of ranks (1 where the torchrun variables are missing or wrong: main said why)."""
    try:
        return torchrun_world().size
    except DFPGenError:
        return 1


if __name__ == "__main__":
    exit_status = main()
    if _ranks() > 1:
        _leave(exit_status)
    sys.exit(exit_status)
