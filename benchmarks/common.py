"""Shared pieces of the benchmark scripts: machine description, tables, result files."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import llvmlite
import numpy as np

import dfpgen
from dfpgen.core.target import host

RESULTS = Path(__file__).resolve().parent / "results"


def training_study_parser(doc: str, net: str, epochs: int, runs) -> argparse.ArgumentParser:
    """The options every MNIST training study shares: --net, --epochs, --seeds, --batch, --lr, --runs."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--net", default=net)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--runs", default=",".join(runs))
    return ap


def machine() -> dict:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": host().cpu, "model": model, "cores": cores, "dfp_isas": host().isas("dfp16"),
            "python": platform.python_version(), "numpy": np.__version__, "llvmlite": llvmlite.__version__,
            "torch": torch_version, "dfpgen": dfpgen.__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def median_seconds(fn, repeats: int, before=None) -> float:
    """Median seconds of `repeats` calls of `fn` after one warm-up call; `before()` (untimed) precedes each."""
    fn()
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(header: list[str], rows: list[list]) -> str:
    """A GitHub-markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def write_results(name: str, title: str, notes: list[str], header: list[str], rows: list[list],
                  records: list[dict], directory: Path | None = None) -> Path:
    """Write <name>_<cpu>.md (the table with the machine) and .json (every record) into `directory`
    (default benchmarks/results); return the .md path."""
    info = machine()
    directory = Path(directory) if directory is not None else RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{name}_{info['cpu']}"
    md = [f"# {title}", "", "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), ""]
    md += [f"- {n}" for n in notes] + ["", table(header, rows), ""]
    stem.with_suffix(".md").write_text("\n".join(md))
    stem.with_suffix(".json").write_text(json.dumps({"machine": info, "records": records}, indent=1))
    return stem.with_suffix(".md")


def train_seeds(name: str, numerics, net: str, epochs: int, seeds: list[int], batch: int, lr: float, data,
                out: Path) -> tuple[list[float], dict[str, list[dict]]]:
    """Train `net` at `numerics` once per seed (the seed fixes data order and initial weights, so every numerics
    sees the same), writing out/<name>_seed<seed>/log.csv and printing a line per run; returns the final test
    accuracies (%) and the logs' rows by run label."""
    from dfpgen.training.train import TrainConfig, Trainer, read_log, write_log

    finals, curves = [], {}
    for seed in seeds:
        trainer = Trainer(TrainConfig(net, data.name, numerics, epochs, batch, lr, seed=seed), dataset=data)
        start = time.perf_counter()
        while trainer.epoch < epochs:
            log = trainer.train_epoch()
        run_dir = out / f"{name}_seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        write_log(run_dir / "log.csv", trainer.history)
        curves[f"{name} seed {seed}"] = read_log(run_dir / "log.csv")
        finals.append(100 * log.test_acc)
        print(f"{name} seed {seed}: test accuracy {100 * log.test_acc:.2f}% "
              f"({time.perf_counter() - start:.0f} s, {log.images_per_s:.0f} img/s)", flush=True)
    return finals, curves
