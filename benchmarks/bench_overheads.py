"""Where a DFP kernel's time goes beyond its multiply-accumulates: the same kernel timed side by side
with variants that each remove one overhead, and the register-only peak probe.

    python benchmarks/bench_overheads.py [--passes fprop] [--layers resnet50:res2a_branch2b,...]
                                         [--bits 13] [--batch 8] [--seconds 4] [--rounds 9]

Variants (same blocking, same code shape, one thread; their outputs are not the convolution):
  * kernel: the default kernel, as `dfpgen.compile` builds it;
  * no flushes: overflow "wrap" with a chain past the whole reduction, so each output is flushed once
    (the plan's step loops are unchanged, only the INT32 -> FP32 flushes between them go);
  * no footprint: the kernel's own code with every call table entry pointed at the start of the
    operands and the output, so its loads and stores stay in L1 whatever the layer's size;
  * neither: both at once: what is left is the register block's loop itself.
The share of an overhead is 1 - (variant time / kernel time), a median of per-round ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from dfpgen import Numerics, compile
from dfpgen.codegen.calls import CALL_COLUMNS, Calls
from dfpgen.codegen.kernel import build
from dfpgen.core import catalog
from dfpgen.core.target import host
from dfpgen.runtime.execute import prepare_float
from dfpgen.tuning.measure import interleaved, random_operands
from dfpgen.tuning.peak import probe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

DEFAULT_LAYERS = "resnet50:res2a_branch2b,resnet50:res3a_branch2b,resnet50:res4a_branch2b"
OFFSETS = [CALL_COLUMNS.index("src"), CALL_COLUMNS.index("dst")]   # the call table columns zeroed


def without_footprint(kernel):
    """The kernel with every call's src and dst offsets set to 0 (same code, same call count)."""
    table = kernel.plan.call_table.copy()
    table[:, OFFSETS] = 0
    return build(dataclasses.replace(kernel.plan, calls=Calls.from_table(table)))


def variants(spec, pass_name: str, bits: int, isa: str) -> dict:
    """name -> Kernel for the four variants of one layer and pass."""
    kernel = compile(spec, pass_name, Numerics(bits, bits), isa=isa, threads=1, tuned=False)
    # A chain longer than any reduction: one flush per output; "wrap" is the policy that allows it.
    unflushed = Numerics(bits, bits, overflow="wrap",
                         chain=max(kernel.plan.steps * kernel.plan.unroll, kernel.plan.numerics.safe_chain))
    no_flush = compile(spec, pass_name, unflushed, isa=isa, blocking=kernel.plan.blocking, threads=1,
                       tuned=False)
    return {"kernel": kernel, "no flushes": no_flush, "no footprint": without_footprint(kernel),
            "neither": without_footprint(no_flush)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", default="fprop")
    ap.add_argument("--layers", default=DEFAULT_LAYERS)
    ap.add_argument("--bits", type=int, default=13)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--isa", default=None, help="DFP ISA (default: this machine's best)")
    ap.add_argument("--seconds", type=float, default=4.0, help="minimum timing time per variant and layer")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    isa = args.isa or host().best_isa("dfp16")
    peak_run, peak_macs = probe(isa)
    specs = [s for ref in args.layers.split(",") for s in catalog.select(ref, batch=args.batch)]
    records, rows = [], []
    for pass_name in args.passes.split(","):
        for spec in specs:
            kernels = variants(spec, pass_name, args.bits, isa)
            a, b = random_operands(spec, pass_name)
            calls = {}
            for name, k in kernels.items():
                calls[name] = prepare_float(k, a, b).run
            calls["peak"] = peak_run
            times = {n: np.array(t) for n, t in interleaved(calls, args.rounds, args.seconds).items()}
            peak_rate = peak_macs / times["peak"]
            rec = {"pass": pass_name, "layer": spec.name, "bits": args.bits, "isa": isa,
                   "blocking": kernels["kernel"].plan.blocking.describe(),
                   "flushes": kernels["kernel"].plan.flushes, "peak_gmacs": float(np.median(peak_rate)) / 1e9}
            row = [pass_name, spec.name, rec["blocking"]]
            for name in kernels:
                pct = float(np.median(100 * spec.macs / times[name] / peak_rate))
                rec[f"{name}_pct"] = pct
                if name != "kernel":
                    rec[f"{name}_share"] = float(np.median(1 - times[name] / times["kernel"]))
                    row.append(f"{pct:.0f}% ({100 * rec[f'{name}_share']:+.1f}%)")
                else:
                    row.append(f"{pct:.0f}%")
            records.append(rec)
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    header = ["pass", "layer", "blocking", "kernel % peak", "no flushes", "no footprint", "neither"]
    notes = [f"DFP{args.bits}, isa {isa}, batch {args.batch}, 1 thread; % of the register-only peak of the "
             "instruction measured in the same rounds",
             "in parentheses: the share of the kernel's time the variant saves (median of per-round ratios)",
             f"the variants and the peak probe take turns call by call in {args.rounds} rounds; medians over rounds",
             "command: python benchmarks/bench_overheads.py " + " ".join(sys.argv[1:])]
    path = write_results("overheads", "Where a DFP kernel's time goes", notes, header, rows, records)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
