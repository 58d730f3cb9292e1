"""Producers that write the convolutions' INT16 layouts (docs/architecture.md, Training runtime) against storing
FP32 and converting it, on ResNet-50 tensors (batch 8).

    python benchmarks/bench_producers.py [--threads 1,2] [--repeats 11]

Three producers, each the way the numpy runtime ran it before (the pointwise kernel stores the FP32 tensor, then
the convolution's conversions read it) and the way it runs now (the same kernel packs the INT16 layouts):
batch norm's backward (dy into WTGRAD's and BPROP's layouts, no FP32 kept), batch norm + ReLU (x into a 1x1
layer's FPROP and WTGRAD layouts, FP32 kept for the ReLU mask) and the residual join (likewise, FP32 kept for the
shortcut). Both ways write the same bits (tests/test_nn_layers.py); the columns are medians of `--repeats` runs,
the two ways interleaved. Results go to benchmarks/results/producers_<cpu>.md and .json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dfpgen import passes
from dfpgen.codegen.layout import aligned_empty
from dfpgen.core.dfp import exponent_for_max
from dfpgen.core.numerics import LayerNumerics
from dfpgen.core.spec import ConvSpec
from dfpgen.runtime import pointwise
from dfpgen.runtime.blocked import Blocked, lanes
from dfpgen.runtime.blocked_conv import convert_ahead, convert_in_producer
from dfpgen.runtime.conv import Conv2d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, write_results  # noqa: E402

BITS = 14


def cases(threads: int, N: int = 8, C: int = 256, H: int = 56, rng: np.random.Generator | None = None) -> list:
    """(name, FP32-then-convert run, packing run, the Conv2d and the (pass, role) layouts both write) on one
    C x H x H tensor."""
    rng = rng or np.random.default_rng(0)
    L = lanes()
    shape = (N, C // L, H, H, L)

    def tensor():
        a = aligned_empty(shape, np.float32)
        a[...] = rng.standard_normal(shape, dtype=np.float32)
        return a

    dz, x, z, out = (tensor() for _ in range(4))
    a, b, c = (rng.standard_normal(C).astype(np.float32) for _ in range(3))
    numerics = LayerNumerics(bits=BITS)
    consumer = Conv2d(ConvSpec(N, C // 4, C, H, H, 1, 1, 1, 0, "before"), numerics=numerics, threads=threads,
                      eager=False)   # dy of its output feeds its backward
    reader = Conv2d(ConvSpec(N, C, C // 4, H, H, 1, 1, 1, 0, "after"), numerics=numerics, threads=threads,
                    eager=False)     # x feeds its forward
    producers = {
        "batch norm backward -> dy (WTGRAD vec, BPROP src)": (
            consumer, ((passes.WTGRAD, "vec"), (passes.BPROP, "src")), False,
            lambda packs, q, o: pointwise.bn_grad_apply(dz, x, a, b, c, o, threads, packs=packs, quantizer=q)),
        "batch norm + ReLU -> x (FPROP src, WTGRAD src)": (
            reader, ((passes.FPROP, "src"), (passes.WTGRAD, "src")), True,
            lambda packs, q, o: pointwise.affine(x, a, b, o, True, threads=threads, packs=packs, quantizer=q)),
        "residual join -> x (FPROP src, WTGRAD src)": (
            reader, ((passes.FPROP, "src"), (passes.WTGRAD, "src")), True,
            lambda packs, q, o: pointwise.affine(x, a, b, o, True, z=z, threads=threads, packs=packs, quantizer=q)),
    }
    out_cases = []
    for name, (op, wanted, keep, produce) in producers.items():
        def before(op=op, wanted=wanted, produce=produce):
            maxabs = produce((), None, out)
            for target in wanted:
                convert_ahead(op, *target, Blocked(out, C, maxabs), None)

        exp = exponent_for_max(produce((), None, out), BITS)

        def after(op=op, wanted=wanted, produce=produce, keep=keep, exp=exp):
            converted, _ = convert_in_producer(op, wanted, shape, None, exp, produce, keep_fp32=keep)
            if len(converted) != len(wanted):
                raise RuntimeError(f"{name}: packed {sorted(p.name + ' ' + r for p, r in converted)} of "
                                   f"{len(wanted)} layouts")
        out_cases.append((name, before, after, op, wanted))
    return out_cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    rows, records = [], []
    for threads in (int(t) for t in args.threads.split(",")):
        for name, before, after, *_ in cases(threads):
            first, second = median_seconds(before, args.repeats), median_seconds(after, args.repeats)
            rows.append([name, threads, f"{first * 1e3:.2f}", f"{second * 1e3:.2f}", f"{first / second:.2f}x"])
            records.append({"case": name, "threads": threads, "store_and_convert_s": first, "packed_s": second})
            print(" | ".join(map(str, rows[-1])), flush=True)
    header = ["producer -> layouts", "threads", "store FP32 + convert ms", "pack ms", "speedup"]
    notes = [f"ResNet-50 res2 tensors: batch 8, 256 channels, 56x56, {BITS}-bit mantissas, rounding nearest; the 1x1 "
             "layers' layouts", f"median of {args.repeats} runs after a warm-up",
             "command: python benchmarks/bench_producers.py " + " ".join(sys.argv[1:])]
    print(f"\nwrote {write_results('producers', 'Producers writing operand layouts', notes, header, rows, records)}")


if __name__ == "__main__":
    main()
