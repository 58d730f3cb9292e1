"""Time to accuracy with precision switching (issue 22 item 4): a small ResNet trained on the built-in MNIST data
with identical hyper-parameters, data order and initial weights per seed in FP32, in fixed DFP16 at the default
bits, under MuPPET's policy (8 -> 12 -> 14 -> 16 bits -> FP32) and under a fixed ladder. Per run: the final test
accuracy, the training seconds until the test accuracy first reaches the same seed's FP32 final accuracy minus
--margin points, the total training seconds, and the switches. Writes every run's log, a table and one plot.

    python benchmarks/precision_study.py [--net resnet8] [--epochs 30] [--limit 1000] [--seeds 0,1,2]
                                         [--ladder 8:2,12:2,14:2,16:*] [--margin 0.5]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from dfpgen.nn import LayerNumerics
from dfpgen.training.data import load
from dfpgen.training.plot import training_curves
from dfpgen.training.precision import MuppetSchedule, parse_ladder, rung_numerics
from dfpgen.training.train import TrainConfig, Trainer, read_log, write_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, training_study_parser, write_results  # noqa: E402

RUN_NAMES = ("fp32", "dfp16", "muppet", "ladder")   # fp32 first: it sets each seed's target


def run_setup(name: str, ladder: str) -> tuple[LayerNumerics, object]:
    """(numerics, precision schedule) of a run; every DFP run starts from the default numerics."""
    if name == "fp32":
        return LayerNumerics.fp32(), None
    schedules = {"dfp16": lambda: None, "muppet": MuppetSchedule, "ladder": lambda: parse_ladder(ladder)}
    if name not in schedules:
        raise ValueError(f"--runs {name!r}: expected some of {', '.join(RUN_NAMES)}")
    return LayerNumerics(), schedules[name]()


def time_to(history, target: float) -> tuple[float | None, int | None]:
    """(training seconds, epoch) at the end of the first epoch whose test accuracy (%) reaches `target`."""
    seconds = np.cumsum([h.seconds for h in history])
    for h, s in zip(history, seconds):
        if 100 * h.test_acc >= target:
            return float(s), h.epoch
    return None, None


def warm_up(net: str, setups: dict, batch: int, source: str = "mnist") -> None:
    """Compile every kernel the runs will use (each rung's, at the training and evaluation shapes) before any
    timing, so no run's seconds include compilation that another run then reuses from the cache."""
    numerics = {n for n, _ in setups.values()}
    numerics |= {rung_numerics(n, r) for n, schedule in setups.values() if schedule for r in schedule.rungs}
    data = load(source, limit=batch)
    for n in numerics:
        Trainer(TrainConfig(net, source, n, 1, batch, seed=0, limit=batch), dataset=data).train_epoch()


def train_one(config: TrainConfig, data, out: Path) -> dict:
    """Train one run, write its log.csv under `out`; its record (per-epoch history included)."""
    trainer = Trainer(config, dataset=data)
    start = time.perf_counter()
    while trainer.epoch < config.epochs:
        log = trainer.train_epoch()
        print(f"  epoch {log.epoch:2d}: test {100 * log.test_acc:.2f}% ({log.seconds:.1f} s)"
              + (f" rung {log.rung} -> {log.switch_to}" if log.switch_to is not None else ""), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    write_log(out / "log.csv", trainer.history)
    return {"history": trainer.history, "wall_s": time.perf_counter() - start,
            "switches": [(s.epoch, s.from_rung, s.to_rung) for s in trainer.switches]}


def main() -> None:
    ap = training_study_parser(__doc__, "resnet8", 30, RUN_NAMES)
    ap.add_argument("--data", default="mnist", help="built-in 'mnist' (pip install 'dfpgen[data]') or a dataset path")
    ap.add_argument("--limit", type=int, default=1000, help="training images used (of 4,000)")
    ap.add_argument("--ladder", default="8:2,12:2,14:2,16:*", help="the fixed ladder run's --precision-ladder")
    ap.add_argument("--margin", type=float, default=0.5, help="target: the seed's FP32 final accuracy minus this")
    ap.add_argument("--results-dir", default=None, help="default: benchmarks/results")
    args = ap.parse_args()
    names = args.runs.split(",")
    setups = {name: run_setup(name, args.ladder) for name in names}   # a bad --runs or --ladder fails now
    results = Path(args.results_dir) if args.results_dir else RESULTS
    start = time.perf_counter()
    warm_up(args.net, setups, args.batch, args.data)
    print(f"kernels compiled in {time.perf_counter() - start:.0f} s", flush=True)
    data = load(args.data, limit=args.limit)
    seeds = [int(s) for s in args.seeds.split(",")]
    records, curves, targets = [], {}, {}
    for seed in seeds:
        for name in names:
            numerics, schedule = setups[name]
            config = TrainConfig(args.net, args.data, numerics, args.epochs, args.batch, args.lr, seed=seed,
                                 limit=args.limit, precision_schedule=schedule)
            print(f"{name} seed {seed}", flush=True)
            run_dir = results / "precision_study" / f"{name}_seed{seed}"
            run = train_one(config, data, run_dir)
            final = 100 * run["history"][-1].test_acc
            if name == "fp32":
                targets[seed] = final - args.margin
            seconds, epoch = time_to(run["history"], targets.get(seed, np.nan))
            records.append({"run": name, "seed": seed, "test_acc": final, "target": targets.get(seed),
                            "time_to_target_s": seconds, "epoch_to_target": epoch,
                            "train_s": float(sum(h.seconds for h in run["history"])), "wall_s": run["wall_s"],
                            "switches": run["switches"],
                            "epoch_s": [round(h.seconds, 3) for h in run["history"]],
                            "test_accs": [round(100 * h.test_acc, 2) for h in run["history"]]})
            curves[f"{name} seed {seed}"] = read_log(run_dir / "log.csv")
            print(f"{name} seed {seed}: test accuracy {final:.2f}%, target reached "
                  f"{'never' if seconds is None else f'after {seconds:.1f} s (epoch {epoch})'}, "
                  f"{records[-1]['train_s']:.1f} s training, switches {run['switches'] or 'none'}", flush=True)
    training_curves(curves, str(results / "precision_study.png"),
                    f"{args.net} on MNIST ({args.limit} train), {args.epochs} epochs: FP32, DFP16, MuPPET, "
                    f"ladder {args.ladder}")
    rows = [table_row(name, setups[name], [r for r in records if r["run"] == name], records) for name in names]
    data_name = "built-in MNIST" if args.data == "mnist" else args.data
    notes = [f"{args.net}, {data_name} ({args.limit} training images, 1,000 test), {args.epochs} epochs, batch "
             f"{args.batch}, SGD momentum 0.9, lr {args.lr} cosine, weight decay 5e-4, seeds {args.seeds}; "
             "identical data order and initial weights per seed across runs",
             f"target: each seed's FP32 final test accuracy minus {args.margin} points; time to target = training "
             "seconds (log.csv's per-epoch seconds, evaluation excluded) summed up to the end of the first epoch "
             "at or above it ('never': not reached)",
             "MuPPET: r=3, p=2, ladder 8,12,14,16,fp32 (docs/precision.md); DFP rungs round gradients "
             f"stochastically; fixed ladder {args.ladder}",
             "every rung's kernels are compiled before the first run, so no run's seconds include compilation",
             "plot: precision_study.png (test accuracy per epoch, switches as dotted lines); logs: "
             "precision_study/<run>_seed<seed>/log.csv",
             "command: python benchmarks/precision_study.py " + " ".join(sys.argv[1:])]
    header = ["run", "schedule", "final acc per seed (%)", "mean (%)", "std", "mean - fp32",
              "time to target per seed (s)", "mean time to target (s)", "training s (mean)", "switches (epoch from->to)"]
    path = write_results("precision_study", "Time to accuracy with precision switching (MuPPET) on MNIST", notes,
                         header, rows, records, results)
    print(f"wrote {path}")


def table_row(name: str, setup, runs: list[dict], records: list[dict]) -> list:
    """One table row: a run's seeds summarized."""
    numerics, schedule = setup
    if schedule is None:
        label = "fp32" if numerics.precision == "fp32" else f"dfp16 {numerics.bits} bits"
    else:
        label = "muppet r=3 p=2" if name == "muppet" else f"ladder {schedule.text()}"
    accs = [r["test_acc"] for r in runs]
    reference = np.mean([r["test_acc"] for r in records if r["run"] == "fp32"] or [np.nan])
    times = [r["time_to_target_s"] for r in runs]
    reached = [t for t in times if t is not None]
    switches = "; ".join(f"s{r['seed']}: " + (", ".join(f"{e} {a}->{b}" for e, a, b in r["switches"]) or "none")
                         for r in runs) if schedule else "-"
    return [name, label, ", ".join(f"{a:.2f}" for a in accs), f"{np.mean(accs):.2f}", f"{np.std(accs):.2f}",
            f"{np.mean(accs) - reference:+.2f}", ", ".join("never" if t is None else f"{t:.1f}" for t in times),
            f"{np.mean(reached):.1f}" + ("" if len(reached) == len(times) else f" ({len(reached)}/{len(times)} reached)")
            if reached else "never", f"{np.mean([r['train_s'] for r in runs]):.1f}", switches]


if __name__ == "__main__":
    main()
