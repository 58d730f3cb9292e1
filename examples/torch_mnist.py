"""Train a small PyTorch CNN on dfpgen's built-in MNIST (5,000 real images) in FP32 or in DFP16.

    python examples/torch_mnist.py --precision dfp16 --seeds 0,1,2 --epochs 4
    python examples/torch_mnist.py --precision fp32  --seeds 0,1,2 --epochs 4

The model is plain PyTorch. For dfp16, `dfpgen.torch.convert` swaps its nn.Conv2d / nn.Linear layers for
DFP16 ones in place (same Parameters, so the optimizer is built as usual) and reports what it did. The
same seed gives both precisions the same initial weights and the same data order.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfpgen.core.numerics import LayerNumerics
from dfpgen.nn.optim import learning_rate
from dfpgen.torch import convert
from dfpgen.training.data import batches, load


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-pool stages and a two-layer classifier (about 110k parameters)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 250) -> float:
    """Top-1 accuracy in evaluation mode."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            logits = model(torch.from_numpy(x[i:i + batch]))
            correct += int((logits.argmax(1).numpy() == y[i:i + batch]).sum())
    model.train()
    return correct / len(y)


def train(seed: int, precision: str, epochs: int, batch: int, lr: float, data, verbose: bool = True,
          bits: int | None = None) -> float:
    """Train one model from `seed`; returns its test accuracy."""
    torch.manual_seed(seed)
    model = SmallCNN(data.classes)
    if precision == "dfp16":
        report = convert(model, bits=bits, rounding="nearest", seed=seed)   # bits None: dfpgen's default
        if verbose:
            print(report)
    decay = [p for p in model.parameters() if p.dim() > 1]  # no weight decay on BN and biases
    rest = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9)
    steps = len(data.train_y) // batch
    for epoch in range(epochs):
        start, losses = time.perf_counter(), []
        for i, (xb, yb) in enumerate(batches(data.train_x, data.train_y, batch, seed, epoch)):
            for group in opt.param_groups:
                group["lr"] = learning_rate("cosine", lr, epoch + i / steps, epochs)
            loss = F.cross_entropy(model(torch.from_numpy(xb)), torch.from_numpy(yb))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        if verbose:
            print(f"  seed {seed} epoch {epoch + 1}/{epochs}: train loss {np.mean(losses):.4f} "
                  f"({time.perf_counter() - start:.1f} s)")
    return accuracy(model, data.test_x, data.test_y)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, train one model per seed and print the accuracies and their mean."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--precision", choices=("fp32", "dfp16"), default="dfp16")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, one run each")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--bits", type=int, default=LayerNumerics().bits, help="DFP bits (default: dfpgen's, %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; 1 keeps torch's spin-waiting OpenMP workers off the cores dfpgen's "
                        "kernel threads use (and is faster for a network this small in FP32 too)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    data = load("mnist")
    print(f"MNIST: {len(data.train_y)} train / {len(data.test_y)} test images, {args.precision}"
          f"{f' ({args.bits} bits)' if args.precision == 'dfp16' else ''}, "
          f"{args.epochs} epochs of batch {args.batch}")
    accs = []
    for seed in seeds:
        start = time.perf_counter()
        accs.append(train(seed, args.precision, args.epochs, args.batch, args.lr, data, bits=args.bits))
        print(f"{args.precision} seed {seed}: test accuracy {100 * accs[-1]:.2f}% ({time.perf_counter() - start:.0f} s)")
    spread = f" +- {100 * statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
    print(f"{args.precision} mean test accuracy over {len(accs)} seed(s): {100 * statistics.mean(accs):.2f}%{spread}")


if __name__ == "__main__":
    main()
