"""Training-step time at 8 bits (issue 22): the same 8-bit numerics on the INT8 kernels (vpdpbusd) and on the
INT16 kernels, against FP32, on the MuPPET study's network (resnet8, MNIST-sized input), one process, the
contenders taking turns step by step. Reports the median step, the ratios, and where the time goes (conv
kernels per pass, quantization with the INT8 corrections, layouts, everything else: batch norm, pooling,
ReLU, loss, SGD), summed over the layers.

    python benchmarks/bench_step8.py [--net resnet8] [--batch 32] [--steps 7] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from dfpgen.core.target import host
from dfpgen.nn import SGD, LayerNumerics, SoftmaxCrossEntropy, build
from dfpgen.nn.layers import Conv, Linear
from dfpgen.training.precision import rung_numerics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

PHASES = ("kernel fprop", "kernel bprop", "kernel wtgrad", "quantize", "layout")


def contenders() -> dict[str, LayerNumerics]:
    """FP32, 8 bits on the INT16 kernels, and 8 bits as dfpgen chooses (vpdpbusd where the host has VNNI; a host
    without it has no third contender)."""
    int16 = host().best_isa("dfp16")   # operands of 16 bits: the INT16 kernels
    chosen = host().best_isa("dfp16", bits=8)
    found = {"FP32": LayerNumerics.fp32(), f"8 bits on {int16}": rung_numerics(LayerNumerics(isa=int16), 8)}
    if chosen != int16:
        found[f"8 bits on {chosen}"] = rung_numerics(LayerNumerics(), 8)
    return found


class Runner:
    """One network at one numerics, stepping on fixed data; its steps' seconds and phase seconds."""

    def __init__(self, net_name: str, numerics: LayerNumerics, batch: int, threads: int):
        self.net, shape = build(net_name, numerics, seed=0, threads=threads)
        rng = np.random.default_rng(0)
        self.convs = [layer for layer in self.net.layers() if isinstance(layer, (Conv, Linear))]
        self.x = rng.standard_normal((batch, *shape), dtype=np.float32)
        self.y = rng.integers(0, self.convs[-1].K, batch)
        self.loss, self.opt = SoftmaxCrossEntropy(), SGD(self.net.params, 0.01, threads=threads)
        self.step(), self.step()   # compiles every kernel (cached on disk for later runs)
        for op in self.ops():
            op.timings.clear()
        self.times: list[float] = []

    def ops(self):
        return [op for conv in self.convs for op in conv.ops]

    def step(self) -> None:
        self.opt.zero_grad()
        self.loss.forward(self.net.forward(self.x, True), self.y)
        self.net.backward(self.loss.backward())
        self.opt.step()

    def timed(self) -> None:
        start = time.perf_counter()
        self.step()
        self.times.append(time.perf_counter() - start)

    def phases(self) -> dict[str, float]:
        """Mean seconds per step of each phase over the timed steps, "other" being the rest of the median step."""
        found = {p: sum(op.timings.get(p, 0.0) for op in self.ops()) / len(self.times) for p in PHASES}
        found["other"] = float(np.median(self.times)) - sum(found.values())
        return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="resnet8")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=7, help="steps per contender and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()
    runners = {name: Runner(args.net, numerics, args.batch, args.threads) for name, numerics in contenders().items()}
    for _ in range(args.rounds):   # turns step by step: a noisy neighbour slows every contender alike
        for _ in range(args.steps):
            for runner in runners.values():
                runner.timed()
    fp32 = float(np.median(runners["FP32"].times))
    rows, records = [], []
    for name, runner in runners.items():
        ms = 1e3 * float(np.median(runner.times))
        phases = runner.phases()
        rows.append([name, f"{ms:.1f}", f"{fp32 * 1e3 / ms:.2f}"] + [f"{1e3 * phases[p]:.1f}" for p in (*PHASES, "other")])
        records.append({"contender": name, "median_ms": ms, "steps_ms": [1e3 * t for t in runner.times],
                        "phases_ms": {p: 1e3 * v for p, v in phases.items()}})
        print(" | ".join(rows[-1]), flush=True)
    notes = [f"net {args.net}, batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds of {args.steps} "
             f"steps per contender, taking turns step by step; median step", "phases: ms per step summed over the "
             "convolution and fully connected layers (quantize includes the INT8 corrections); other: the rest "
             "of the median step (batch norm, pooling, ReLU, loss, SGD)",
             "command: python benchmarks/bench_step8.py " + " ".join(sys.argv[1:])]
    path = write_results("step8", "Training step at 8 bits: INT8 vs INT16 kernels vs FP32", notes,
                         ["contender", "ms/step", "FP32 / this", *PHASES, "other"], rows, records, args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
