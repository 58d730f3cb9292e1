"""Training-step time of ResNet-50 v1 at 224x224 on synthetic data: DFP16 vs our FP32 kernels vs
PyTorch FP32 (an equivalent torch model, when installed) vs that torch model converted to DFP16 layers
by dfpgen.torch.convert, at 1 thread and at all threads, in one process. Reports images/s, ratios, and
where the time goes (conv kernels per pass, quantization, layout transforms, everything else: batch
norm, pooling, ReLU, loss, update).

    python benchmarks/bench_train.py [--net resnet50] [--batch 8] [--steps 5] [--threads 1,all] [--bits 14]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

from dfpgen.codegen.kernel import default_threads
from dfpgen.config import openmp_wait_policy, prefer_passive_openmp
from dfpgen.nn import SGD, LayerNumerics, SoftmaxCrossEntropy, build
from dfpgen.nn.layers import Conv, Linear

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

prefer_passive_openmp()   # before torch loads, as importing dfpgen.torch first would do


def ours(net_name: str, numerics: LayerNumerics, batch: int, steps: int, threads: int) -> dict:
    """Median step time of our runtime and the summed phase times of the timed steps."""
    net, shape = build(net_name, numerics, seed=0, threads=threads)
    rng = np.random.default_rng(0)
    convs = [layer for layer in net.layers() if isinstance(layer, (Conv, Linear))]
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    y = rng.integers(0, convs[-1].K, batch)   # the classifier's classes (1000 for the ImageNet networks)
    loss, opt = SoftmaxCrossEntropy(), SGD(net.params, 0.01, threads=threads)

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


MEMORY_FORMATS = ("NCHW", "channels-last")


def torch_step_times(batch: int, steps: int, threads: int, numerics: LayerNumerics) -> dict | None:
    """Per memory format (NCHW, channels-last), median training-step times of the PyTorch model in FP32 and of
    the same model after dfpgen.torch.convert at `numerics`, all four interleaved step by step (one load for
    all), with the converted layers' summed phase times; None without PyTorch."""
    try:
        import torch

        from dfpgen.torch import convert
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch_resnet50(torch)
    x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, 1000, (batch,))
    runs = {}
    for fmt in MEMORY_FORMATS:
        memory = torch.channels_last if fmt == "channels-last" else torch.contiguous_format
        fp32 = copy.deepcopy(model).to(memory_format=memory)
        converted = convert(fp32, numerics=numerics, threads=threads, inplace=False).model
        runs[fmt, "fp32"] = (fp32, x.to(memory_format=memory))
        runs[fmt, "converted"] = (converted, x.to(memory_format=memory))

    def trainer(model, inputs):
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(inputs), y).backward()
            opt.step()
        return step

    steppers = {key: trainer(*run) for key, run in runs.items()}
    for step in steppers.values():
        step()   # the converted models compile their kernels here
    # Layers of one shape and numerics share their ops (and timings): count each op once, per model.
    ops = {key: list({id(op): op for m in runs[key][0].modules() for op in getattr(m, "ops", ())}.values())
           for key in runs if key[1] == "converted"}
    times: dict = {key: [] for key in runs}
    phases: dict = {fmt: {} for fmt in MEMORY_FORMATS}
    for _ in range(steps):
        for key, step in steppers.items():
            for op in ops.get(key, ()):
                op.timings.clear()
            t0 = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - t0)
            for op in ops.get(key, ()):
                for k, v in op.timings.items():
                    phases[key[0]][k] = phases[key[0]].get(k, 0.0) + v / steps
    return {fmt: {"fp32_s": float(np.median(times[fmt, "fp32"])),
                  "converted_s": float(np.median(times[fmt, "converted"])), "phases": phases[fmt]}
            for fmt in MEMORY_FORMATS}


def phase_cells(seconds: float, phases: dict) -> list[str]:
    """The fprop/bprop/wtgrad kernel, quantize, layout, producers and rest columns of one run."""
    kernels = [phases.get(f"kernel {p}", 0.0) for p in ("fprop", "bprop", "wtgrad")]
    layout = phases.get("layout", 0.0) + phases.get("unlayout", 0.0)
    return [*(f"{k:.2f}" for k in kernels), f"{phases.get('quantize', 0.0):.2f}", f"{layout:.2f}",
            f"{phases.get('produced', 0.0):.2f}", f"{seconds - sum(phases.values()):.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", default="resnet50")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", default="1,all")
    ap.add_argument("--bits", type=int, default=LayerNumerics().bits, help="DFP bits (default: dfpgen's, %(default)s)")
    args = ap.parse_args()
    threads_list = [default_threads() if t == "all" else int(t) for t in args.threads.split(",")]
    rows, records = [], []
    numerics = LayerNumerics(bits=args.bits)
    for threads in threads_list:
        dfp = ours(args.net, numerics, args.batch, args.steps, threads)
        fp32 = ours(args.net, LayerNumerics.fp32(), args.batch, args.steps, threads)
        tt = torch_step_times(args.batch, args.steps, threads, numerics) if args.net == "resnet50" else None
        t_torch = min(r["fp32_s"] for r in tt.values()) if tt else None   # the faster PyTorch FP32 layout
        ips = lambda s: args.batch / s
        records.append({"threads": threads, "batch": args.batch, "dfp16_s": dfp["seconds"], "fp32_s": fp32["seconds"],
                        "torch_s": t_torch, "dfp16_phases": dfp["phases"], "fp32_phases": fp32["phases"],
                        "torch": tt})
        first = len(rows)
        for name, res in (("DFP16", dfp), ("FP32 (ours)", fp32)):
            rows.append([name, threads, f"{ips(res['seconds']):.2f}", f"{res['seconds']:.2f}",
                         *phase_cells(res["seconds"], res["phases"]),
                         f"{fp32['seconds'] / res['seconds']:.2f}",
                         f"{t_torch / res['seconds']:.2f}" if t_torch else "-", ""])
        for fmt in MEMORY_FORMATS:
            if not tt:   # no PyTorch (or no torch model of this net)
                rows += [[f"PyTorch {kind} ({fmt})", threads, *["-"] * 12] for kind in ("FP32", "converted")]
                continue
            base, conv = tt[fmt]["fp32_s"], tt[fmt]["converted_s"]
            rows.append([f"PyTorch FP32 ({fmt})", threads, f"{ips(base):.2f}", f"{base:.2f}", *[""] * 7,
                         f"{fp32['seconds'] / base:.2f}", f"{t_torch / base:.2f}", ""])
            rows.append([f"PyTorch converted ({fmt})", threads, f"{ips(conv):.2f}", f"{conv:.2f}",
                         *phase_cells(conv, tt[fmt]["phases"]), f"{fp32['seconds'] / conv:.2f}",
                         f"{t_torch / conv:.2f}", f"{base / conv:.2f}"])
        for r in rows[first:]:
            print(" | ".join(str(c) for c in r), flush=True)
    header = ["run", "threads", "images/s", "step s", "fprop s", "bprop s", "wtgrad s", "quantize s", "layout s",
              "producers s", "rest s", "speedup vs our FP32", "speedup vs PyTorch", "converted vs PyTorch FP32 (same layout)"]
    notes = [f"{args.net} at its ImageNet input size, batch {args.batch}, synthetic data, median of "
             f"{args.steps} steps after a warm-up step; DFP16 at {args.bits} bits (activations, weights, gradients), "
             "exact overflow policy; kernels with the default (untuned) blocking",
             "quantize = operands quantized straight into the kernels' layouts (generated data-movement kernels); "
             "layout = FP32 operands and results moved between layouts",
             "producers = the batch-norm and residual-join kernels that also write the next convolution's operand "
             "layouts (normalization and quantization in one pass; their whole time); rest = the other batch norm, "
             "ReLU and join kernels and SGD (generated pointwise kernels), pooling and the loss (numpy), FP32",
             "PyTorch converted = the PyTorch model after dfpgen.torch.convert at the DFP16 numerics (convolutions "
             "and the classifier in DFP16 kernels, the rest in torch FP32); its rest = torch's layers, autograd and "
             "the torch/numpy hand-over. Both PyTorch models run NCHW and channels-last "
             "(model.to(memory_format=torch.channels_last)), the four steps interleaved in one process; "
             "speedup vs PyTorch is against the faster PyTorch FP32 layout",
             f"OMP_WAIT_POLICY={openmp_wait_policy()} for every PyTorch run (dfpgen.torch's default: idle torch "
             "threads sleep instead of spinning on the cores dfpgen's threads use)",
             "command: python benchmarks/bench_train.py " + " ".join(sys.argv[1:])]
    print(f"\nwrote {write_results('train', f'Training step: {args.net}', notes, header, rows, records)}")


if __name__ == "__main__":
    main()
