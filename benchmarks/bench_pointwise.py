"""Pointwise kernels (dfpgen/runtime/pointwise.py) and max pooling (dfpgen/runtime/pooling.py) against the numpy
code they replace, in GB/s.

    python benchmarks/bench_pointwise.py [--shapes 8x4x56x56,8x16x56x56] [--threads 1,2] [--repeats 7]

Each op runs on blocked FP32 tensors (N, CB, H, W, L), L the host DFP ISA's lanes; SGD on flat arrays of
as many elements. GB/s counts each tensor read or written once (float32), per-channel vectors not
counted (max pooling: its byte of chosen offsets per output counted too); time is the median of `--repeats` calls after one warm-up. The numpy column is the same result
computed by numpy (one thread) on the same blocked arrays, including max|result| where the op returns
it (the DFP caller needs it for the next exponent). Results go to benchmarks/results/pointwise_<cpu>.md
and .json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dfpgen.codegen.layout import aligned_empty
from dfpgen.core.target import get_isa, host
from dfpgen.nn import MaxPool
from dfpgen.runtime import pointwise as pw
from dfpgen.runtime.pooling import maxpool_backward, maxpool_forward

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, write_results  # noqa: E402

AXES = (0, 2, 3)


def _numpy_max(a: np.ndarray) -> float:
    return float(np.abs(a).max())


def cases(shape: tuple, rng: np.random.Generator) -> list[tuple]:
    """(name, tensors moved, ours(threads), numpy()) for every op on one blocked shape."""
    def tensor():
        a = aligned_empty(shape, np.float32)
        a[...] = rng.standard_normal(shape, dtype=np.float32)
        return a

    x, z, dy, out, dz, dx, m = (tensor() for _ in range(7))
    C = shape[1] * shape[4]
    a, b, c = (rng.standard_normal(C, dtype=np.float32) for _ in range(3))
    ab, bb, cb = (v.reshape(1, shape[1], 1, 1, shape[4]) for v in (a, b, c))
    w, g, v = (rng.standard_normal(x.size, dtype=np.float32) for _ in range(3))

    def np_affine():
        np.multiply(x, ab, out=out)
        np.add(out, bb, out=out)
        np.maximum(out, 0, out=out)
        return _numpy_max(out)

    def np_residual():
        np.multiply(x, ab, out=out)
        np.add(out, bb, out=out)
        np.add(out, z, out=out)
        np.maximum(out, 0, out=out)
        return _numpy_max(out)

    def np_relu_grad():
        np.multiply(dy, out > 0, out=dz)
        return _numpy_max(dz)

    def np_bn_grad_sums():
        d = dz * (m > 0)
        return d.sum(axis=AXES, dtype=np.float64), (d * x).sum(axis=AXES, dtype=np.float64)

    def np_bn_grad_apply():
        np.multiply(dz * (m > 0), ab, out=dx)
        np.add(dx, bb * x, out=dx)
        np.add(dx, cb, out=dx)
        return _numpy_max(dx)

    def np_add():
        np.add(x, z, out=out)
        return _numpy_max(out)

    def np_sgd():
        gg = g + 5e-4 * w
        v.__imul__(0.9)
        v.__iadd__(gg)
        w.__isub__(np.float32(0.01) * v)
        return _numpy_max(w)

    # ResNet-50's pool1 window; numpy: the layer's own code on the same arrays (NCHW-style, one thread).
    N, CB, H, W, L = shape
    P, Q = (H - 1) // 2 + 1, (W - 1) // 2 + 1
    pooled = (P * Q) / (H * W) * 1.25   # y or dy (float32) and the chosen offsets (a byte each), per input element
    numpy_pool = MaxPool("numpy", 3, 2, 1)
    numpy_pool.threads = 1
    y, choice, _ = maxpool_forward(x, 3, 2, 1, P, Q, 1)
    dy_pool = aligned_empty(y.shape, np.float32)
    dy_pool[...] = rng.standard_normal(y.shape, dtype=np.float32)
    numpy_pool.forward(np.array(x))

    return [
        ("max pool 3x3/2 forward", 1 + pooled, lambda t: maxpool_forward(x, 3, 2, 1, P, Q, t),
         lambda: numpy_pool.forward(x)),
        ("max pool 3x3/2 backward", 1 + pooled, lambda t: maxpool_backward(dy_pool, choice, 3, 2, 1, H, W, t),
         lambda: numpy_pool.backward(dy_pool)),
        ("channel_sums", 1, lambda t: pw.channel_sums(x, t), lambda: (x.mean(axis=AXES), x.var(axis=AXES))),
        ("affine + relu (BN apply)", 2, lambda t: pw.affine(x, a, b, out, relu=True, threads=t), np_affine),
        ("affine + z + relu (residual)", 3, lambda t: pw.affine(x, a, b, out, True, z=z, threads=t), np_residual),
        ("relu_grad", 3, lambda t: pw.relu_grad(dy, x, dz, t), np_relu_grad),
        ("bn_grad_sums, mask", 3, lambda t: pw.bn_grad_sums(dz, x, t, mask=m), np_bn_grad_sums),
        ("bn_grad_apply, mask", 4, lambda t: pw.bn_grad_apply(dz, x, a, b, c, dx, t, mask=m), np_bn_grad_apply),
        ("add", 3, lambda t: pw.add(x, z, out, t), np_add),
        ("sgd_update (flat)", 5, lambda t: pw.sgd_update(w, g, v, 0.01, 0.9, 5e-4, t), np_sgd),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="8x4x56x56,8x16x56x56", help="N x CB x H x W (L: the host's lanes)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    lanes = get_isa(host().best_isa("dfp16")).lanes
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)
    header = ["shape", "op", "MB moved", "numpy GB/s"] + [f"dfpgen GB/s, {t} thr" for t in threads] \
        + [f"speedup, {t} thr" for t in threads]
    rows, records, ceilings = [], [], []
    for text in args.shapes.split(","):
        shape = tuple(int(s) for s in text.split("x")) + (lanes,)
        src, dst = np.ones(shape, np.float32), np.empty(shape, np.float32)
        copy = median_seconds(lambda: np.copyto(dst, src), args.repeats)
        ceilings.append(f"{text}x{lanes}: {2 * src.nbytes / copy / 1e9:.1f}")
        for name, moved, ours, ref in cases(shape, rng):
            nbytes = int(moved * int(np.prod(shape)) * 4)
            t_np = median_seconds(ref, args.repeats)
            t_ours = [median_seconds(lambda: ours(t), args.repeats) for t in threads]
            rec = {"shape": list(shape), "op": name, "bytes": nbytes, "numpy_s": t_np,
                   "dfpgen_s": dict(zip(threads, t_ours))}
            records.append(rec)
            rows.append([text + f"x{lanes}", name, f"{nbytes / 1e6:.0f}", f"{nbytes / t_np / 1e9:.1f}"]
                        + [f"{nbytes / t / 1e9:.1f}" for t in t_ours] + [f"{t_np / t:.1f}x" for t in t_ours])
            print(" | ".join(rows[-1]), flush=True)
    notes = ["GB/s: float32 tensors read + written once each, per-channel vectors not counted; median of "
             f"{args.repeats} calls after a warm-up",
             "numpy: the same result on the same blocked arrays, one thread, with max|result| where the op "
             "returns it; channel_sums' numpy is x.mean and x.var over N, H, W (as nn.BatchNorm does)",
             "sgd_update: flat arrays of N*CB*H*W*L elements (w, g, v read; w, v written)",
             "the memory ceiling, numpy copyto (one read, one write) GB/s: " + ", ".join(ceilings),
             "several threads: one call waits for pool threads to wake (launch.run_ranges), tens of us"]
    print(f"\nwrote {write_results('pointwise', 'Pointwise kernels vs numpy', notes, header, rows, records)}")


if __name__ == "__main__":
    main()
