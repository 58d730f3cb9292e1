"""Data-parallel DFP16 training with torch.distributed (gloo on CPU) and DistributedDataParallel.

    torchrun --nproc_per_node 2 -m dfpgen.frontends.distributed --net lenet --data mnist --steps 5 --batch 32 --out DIR

Every rank builds the same network (a dfpgen.nn catalog network translated to torch modules by
dfpgen.frontends.torch_zoo, with the numpy runtime's initial weights), converts its convolutions and fully-connected layers to DFP16 and
wraps it in DDP, which all-reduces the FP32 gradients. Each global batch is the single-process batch:
rank r takes samples r, r + W, r + 2W, ... of it, the loss is scaled so the averaged gradient is the
gradient of the global mean loss, and batch norm statistics are all-reduced over the global batch.
What differs from one process is only where DFP quantizes: every rank picks its own exponents for its
shard's activations and gradients. Runs are reproducible: data order, initial weights and stochastic
rounding depend only on --seed (and the rank).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dfpgen.training.data import batches, load
from dfpgen.core.dfp import ROUNDING_MODES
from dfpgen.errors import DFPGenError
from dfpgen.files import atomic_write
from dfpgen.nn.models import NETWORKS
from dfpgen.nn.optim import SCHEDULES, learning_rate
from dfpgen.frontends.torch import convert
from dfpgen.frontends.torch_zoo import build_model

LOG_FIELDS = ("step", "epoch", "lr", "loss", "train_acc", "seconds")


class DistributedError(DFPGenError, RuntimeError):
    """A data-parallel run that cannot start or cannot go on (the message names the option or rank)."""


# ------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class DistConfig:
    """One data-parallel run (the same on every rank)."""

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
    precision: str = "dfp16"
    bits: int = 16
    bits_w: int | None = None
    bits_grad: int | None = None
    rounding: str = "nearest"
    grad_rounding: str | None = None
    threads: int | None = None
    out: str = "runs/distributed"


def parse_args(argv: list[str] | None = None) -> DistConfig:
    """The DistConfig of a command line (see --help)."""
    p = argparse.ArgumentParser(prog="torchrun --nproc_per_node N -m dfpgen.frontends.distributed",
                                description="Data-parallel DFP16 training with torch.distributed (gloo, CPU).")
    p.add_argument("--net", default="lenet", choices=list(NETWORKS), help="catalog network")
    p.add_argument("--data", default="mnist", help="mnist, synthetic, or a path (see dfpgen train --help)")
    p.add_argument("--steps", type=_positive, default=None, help="optimizer steps (default: --epochs of data)")
    p.add_argument("--epochs", type=_positive, default=1)
    p.add_argument("--batch", type=_positive, default=32, help="global batch, split over the ranks")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=_positive, default=None, help="use only this many training images")
    p.add_argument("--precision", choices=("dfp16", "fp32"), default="dfp16",
                   help="fp32 leaves every layer in torch FP32 (the baseline)")
    p.add_argument("--bits", type=int, default=16)
    p.add_argument("--bits-w", type=int, default=None)
    p.add_argument("--bits-grad", type=int, default=None)
    p.add_argument("--rounding", choices=ROUNDING_MODES, default="nearest")
    p.add_argument("--grad-rounding", choices=ROUNDING_MODES, default=None)
    p.add_argument("--threads", type=_positive, default=None, help="threads per rank (default: cores / ranks)")
    p.add_argument("--out", default="runs/distributed", help="folder for weights_rank*.npz, log_rank*.csv, summary.json")
    return DistConfig(**vars(p.parse_args(argv)))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


# ---------------------------------------------------------------------------------------- training


def _world() -> tuple[int, int, int]:
    """(rank, world size, ranks on this machine) from torchrun's environment; (0, 1, 1) without it."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    return int(env.get("RANK", "0")), world, int(env.get("LOCAL_WORLD_SIZE", str(world)))


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
    rank, world, local_world = _world()
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
    report = None
    if c.precision == "dfp16":
        report = convert(model, bits=c.bits, bits_w=c.bits_w, bits_grad=c.bits_grad, rounding=c.rounding,
                         grad_rounding=c.grad_rounding, threads=threads, seed=(c.seed, rank))
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
              f"{threads} thread(s), global batch {c.batch}, {total} steps, {c.precision}", file=sys.stderr)
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
                         "train_acc": round(right / c.batch, 6), "seconds": round(time.perf_counter() - start, 3)})
        if rank == 0 and rows:
            print(f"epoch {epoch + 1}: step {step}/{total} loss {rows[-1]['loss']:.4f}", file=sys.stderr)
    seconds = time.perf_counter() - start
    test_loss, test_acc = evaluate(model, data.test_x, data.test_y, rank, world)
    _write_outputs(out, rank, model, rows)
    summary = {"config": asdict(c), "world_size": world, "threads": threads, "steps": step,
               "final_loss": rows[-1]["loss"] if rows else None, "test_loss": test_loss, "test_acc": test_acc,
               "seconds": seconds, "images_per_s": step * c.batch / max(seconds, 1e-9),
               "converted": report.converted if report else [], "kept": report.kept if report else []}
    if rank == 0:
        atomic_write(out / "summary.json", json.dumps(summary, indent=2).encode())
        print(f"final test accuracy {100 * test_acc:.2f}% ({out})", file=sys.stderr)
    return summary


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
    writer = csv.DictWriter(text, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / f"log_rank{rank}.csv", text.getvalue().encode())


# ------------------------------------------------------------------------------------------ launch


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str], nproc: int = 1) -> int:
    """Run `main(argv)` in this process (nproc 1) or under torch.distributed.run on the loopback (nproc > 1)."""
    if nproc == 1:
        return main(argv)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "dfpgen.frontends.distributed", *argv]
    return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (the same on every rank); returns the exit status."""
    config = parse_args(argv)
    try:
        run(config)
    except DFPGenError as exc:
        rank = _world()[0]
        print(f"rank {rank}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
