"""Training-step time of ResNet-50 v1 at 224x224 on synthetic data: DFP16 vs our FP32 kernels vs
PyTorch FP32 (an equivalent torch model, when installed), at 1 thread and at all threads, in one
process. Reports images/s, ratios, and where the time goes (conv kernels per pass, quantization,
layout transforms, everything else: batch norm, pooling, ReLU, loss, update).

    python benchmarks/bench_train.py [--net resnet50] [--batch 8] [--steps 3] [--threads 1,all] [--bits 14]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from dfpgen.codegen.kernel import default_threads
from dfpgen.nn import SGD, LayerNumerics, SoftmaxCrossEntropy, build
from dfpgen.nn.layers import Conv, Linear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402


def ours(net_name: str, numerics: LayerNumerics, batch: int, steps: int, threads: int) -> dict:
    """Median step time of our runtime and the summed phase times of the timed steps."""
    net, shape = build(net_name, numerics, seed=0, threads=threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    y = rng.integers(0, 1000, batch)
    loss, opt = SoftmaxCrossEntropy(), SGD(net.params, 0.01)
    convs = [layer for layer in net.layers() if isinstance(layer, (Conv, Linear))]

    def step():
        opt.zero_grad()
        loss.forward(net.forward(x, True), y)
        net.backward(loss.backward())
        opt.step()

    step()  # compiles every kernel (cached on disk for later runs)
    for conv in convs:
        for op in conv.ops:
            op.timings.clear()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    phases: dict[str, float] = {}
    for conv in convs:
        for op in conv.ops:
            for k, v in op.timings.items():
                phases[k] = phases.get(k, 0.0) + v / steps
    return {"seconds": float(np.median(times)), "phases": phases}


def torch_resnet50(torch):
    """ResNet-50 v1 (stride in the first 1x1 of each downsampling block) in PyTorch."""
    nn = torch.nn

    class Bottleneck(nn.Module):
        def __init__(self, c, mid, stride, project):
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(c, mid, 1, stride, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.Conv2d(mid, mid, 3, 1, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.Conv2d(mid, 4 * mid, 1, bias=False), nn.BatchNorm2d(4 * mid))
            self.short = nn.Sequential(nn.Conv2d(c, 4 * mid, 1, stride, bias=False), nn.BatchNorm2d(4 * mid)) \
                if project else nn.Identity()

        def forward(self, x):
            return torch.relu(self.main(x) + self.short(x))

    layers, c = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
    for stage, (blocks, mid) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512))):
        for i in range(blocks):
            layers.append(Bottleneck(c, mid, 2 if i == 0 and stage > 0 else 1, i == 0))
            c = 4 * mid
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))


def torch_step_time(batch: int, steps: int, threads: int) -> float | None:
    """Median training-step time of the PyTorch model, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_resnet50(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, 1000, (batch,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="resnet50")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", default="1,all")
    ap.add_argument("--bits", type=int, default=LayerNumerics().bits, help="DFP bits (default: dfpgen's, %(default)s)")
    args = ap.parse_args()
    threads_list = [default_threads() if t == "all" else int(t) for t in args.threads.split(",")]
    rows, records = [], []
    for threads in threads_list:
        dfp = ours(args.net, LayerNumerics(bits=args.bits), args.batch, args.steps, threads)
        fp32 = ours(args.net, LayerNumerics.fp32(), args.batch, args.steps, threads)
        t_torch = torch_step_time(args.batch, args.steps, threads) if args.net == "resnet50" else None
        ips = lambda s: args.batch / s
        rec = {"threads": threads, "batch": args.batch, "dfp16_s": dfp["seconds"], "fp32_s": fp32["seconds"],
               "torch_s": t_torch, "dfp16_phases": dfp["phases"], "fp32_phases": fp32["phases"]}
        records.append(rec)
        for name, res in (("DFP16", dfp), ("FP32 (ours)", fp32)):
            ph = res["phases"]
            kernels = {p: ph.get(f"kernel {p}", 0.0) for p in ("fprop", "bprop", "wtgrad")}
            other = res["seconds"] - sum(ph.values())
            rows.append([name, threads, f"{ips(res['seconds']):.2f}", f"{res['seconds']:.2f}",
                         *(f"{kernels[p]:.2f}" for p in kernels), f"{ph.get('quantize', 0):.2f}",
                         f"{ph.get('layout', 0) + ph.get('unlayout', 0):.2f}", f"{other:.2f}",
                         f"{fp32['seconds'] / res['seconds']:.2f}",
                         f"{t_torch / res['seconds']:.2f}" if t_torch else "-"])
        if t_torch:
            rows.append(["PyTorch FP32", threads, f"{ips(t_torch):.2f}", f"{t_torch:.2f}", "", "", "", "", "", "",
                         f"{fp32['seconds'] / t_torch:.2f}", "1.00"])
        for r in rows[-3:]:
            print(" | ".join(str(c) for c in r), flush=True)
    header = ["run", "threads", "images/s", "step s", "fprop s", "bprop s", "wtgrad s", "quantize s", "layout s",
              "rest s", "speedup vs our FP32", "speedup vs PyTorch"]
    notes = [f"{args.net} at its ImageNet input size, batch {args.batch}, synthetic data, median of "
             f"{args.steps} steps after a warm-up step; DFP16 at {args.bits} bits (activations, weights, gradients), "
             "exact overflow policy; kernels with the default (untuned) blocking",
             "rest = batch norm, pooling, ReLU, residual adds, loss and SGD update (numpy, FP32)",
             "command: python benchmarks/bench_train.py " + " ".join(sys.argv[1:])]
    print(f"\nwrote {write_results('train', f'Training step: {args.net}', notes, header, rows, records)}")


if __name__ == "__main__":
    main()
