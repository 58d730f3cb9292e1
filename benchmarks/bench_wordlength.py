"""Kernel speed per word length (issue 22 item 4): FPROP of ResNet-50's three 3x3 layers at 1 thread on the INT16
kernels at each DFP width a precision ladder climbs (8, 12, 13, 14, 16 bits), our FP32 kernel, PyTorch FP32 when
it is importable, and 8 bits on a `vpdpbusd` (INT8 VNNI) ISA when dfpgen has one this host runs. The contenders
take turns call by call in rounds (benchmarks/bench_conv.py's method); GMAC/s and ratios are medians over rounds.

    python benchmarks/bench_wordlength.py [--layers resnet50:res2a_branch2b,...] [--batch 8] [--bits 8,12,13,14,16]
                                          [--seconds 1.0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dfpgen import Numerics
from dfpgen.core import catalog
from dfpgen.core.target import ISAS, host
from dfpgen.tuning.measure import interleaved, kernel_call, random_operands, torch_call

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conv import distinct, our_kernel  # noqa: E402
from common import write_results  # noqa: E402

LAYERS = "resnet50:res2a_branch2b,resnet50:res3a_branch2b,resnet50:res4a_branch2b"
INT8_INSTRUCTION = "vpdpbusd"   # four INT8 products per INT32 lane: the 8-bit rung's own kernels
REFERENCE_BITS = 13             # issue 22's yardstick: the 8-bit vpdpbusd kernels against the 13-bit INT16 ones


def int16_isa() -> str:
    """This host's best DFP ISA whose instruction multiplies 16-bit pairs (not an INT8 one)."""
    return next(n for n in host().isas("dfp16") if ISAS[n].instruction != INT8_INSTRUCTION)


def int8_isa() -> tuple[str | None, str]:
    """(the vpdpbusd ISA this host runs, or None, and why not)."""
    known = [n for n, isa in ISAS.items() if isa.instruction == INT8_INSTRUCTION]
    if not known:
        return None, f"no {INT8_INSTRUCTION} ISA in dfpgen.core.target.ISAS yet (the INT8 kernels are not merged)"
    runnable = [n for n in known if host().supports(n)]
    if not runnable:
        return None, f"this CPU ({host().cpu}) runs none of the {INT8_INSTRUCTION} ISAs ({', '.join(known)})"
    return runnable[0], ""


def contenders(spec, bits_list: list[int], threads: int = 1) -> tuple[dict, dict]:
    """({name: callable running one FPROP}, {name: (isa, blocking)}) for one layer: dfp<bits> on the INT16 ISA,
    vpdpbusd8 when there is one, fp32 (ours), torch when importable."""
    x, w = random_operands(spec, "fprop")
    isa, (vnni, _) = int16_isa(), int8_isa()
    wanted = [(f"dfp{b}", Numerics(b, b), isa) for b in bits_list]
    if vnni and 8 in bits_list:
        wanted.append(("vpdpbusd8", Numerics(8, 8), vnni))
    wanted.append(("fp32", Numerics(), host().best_isa("fp32")))
    calls, where = {}, {}
    for name, numerics, isa_name in wanted:
        k, source = our_kernel(spec, "fprop", numerics, isa_name, threads)
        calls[name], where[name] = kernel_call(k, x, w, threads), (isa_name, f"{k.plan.blocking.describe()} ({source})")
    run = torch_call(spec, x, w, threads, "fprop")
    if run:
        calls["torch"], where["torch"] = run, ("torch", "")
    return calls, where


def measure(spec, calls: dict, rounds: int, seconds: float) -> dict:
    """Median GMAC/s of each contender, and per-round ratios to dfp13 (median), as one record."""
    times = {name: np.array(t) for name, t in interleaved(calls, rounds, seconds).items()}
    rec = {"layer": spec.name, "batch": spec.N, "gmac": spec.macs / 1e9}
    for name, t in times.items():
        rec[name] = float(np.median(spec.macs / t / 1e9))
    ref = f"dfp{REFERENCE_BITS}"
    for name in (n for n in times if ref in times and n != ref):
        rec[f"{name}_vs_{ref}"] = float(np.median(times[ref] / times[name]))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=LAYERS, help="comma list of layer references")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bits", default="8,12,13,14,16")
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum timing time per contender and layer")
    ap.add_argument("--rounds", type=int, default=5, help="rounds in which the contenders take turns")
    ap.add_argument("--results-dir", default=None, help="where wordlength_<cpu>.md/.json go (default: "
                                                        "benchmarks/results)")
    args = ap.parse_args()
    bits_list = [int(b) for b in args.bits.split(",")]
    specs = distinct([s for ref in args.layers.split(",") for s in catalog.select(ref, batch=args.batch)])
    vnni, why_not = int8_isa()
    records = []
    for spec in specs:
        calls, where = contenders(spec, bits_list)
        rec = measure(spec, calls, args.rounds, args.seconds) | {f"{n}_kernel": f"{i} {b}" for n, (i, b) in where.items()}
        records.append(rec)
        print(f"{spec.name}: " + ", ".join(f"{n} {rec[n]:.1f}" for n in calls), flush=True)
    names = [f"dfp{b}" for b in bits_list] + (["vpdpbusd8"] if vnni and 8 in bits_list else []) + ["fp32"] + \
            (["torch"] if "torch" in records[0] else [])
    ratios = [n for n in names if f"{n}_vs_dfp{REFERENCE_BITS}" in records[0]]
    header = ["layer"] + [f"{n} GMAC/s" for n in names] + [f"{n} / dfp{REFERENCE_BITS}" for n in ratios]
    rows = [[r["layer"]] + [f"{r[n]:.1f}" for n in names] + [f"{r[f'{n}_vs_dfp{REFERENCE_BITS}']:.2f}" for n in ratios]
            for r in records]
    rows.append(["**median**"] + [f"{np.median([r[n] for r in records]):.1f}" for n in names] +
                [f"{np.median([r[f'{n}_vs_dfp{REFERENCE_BITS}'] for r in records]):.2f}" for n in ratios])
    notes = [f"FPROP, 1 thread, batch {args.batch}, layers {args.layers}",
             f"dfp<bits>: the INT16 kernels on {int16_isa()} at that width (the accumulate chain follows it); "
             f"fp32: ours on {host().best_isa('fp32')}; torch: PyTorch FP32 conv2d (whole call)",
             f"vpdpbusd8: {'on ' + vnni if vnni else 'not measured: ' + why_not}",
             f"the contenders take turns call by call in {args.rounds} rounds of >= {args.seconds} s each in all; each "
             f"number is the median over rounds; ratios are taken within a round first (time of dfp{REFERENCE_BITS} / "
             "time of the contender)",
             "blockings: the tuning database's where it has the kernel, else the cost model's default (per record in "
             "the .json)",
             "command: python benchmarks/bench_wordlength.py " + " ".join(sys.argv[1:])]
    path = write_results("wordlength", "FPROP speed per DFP word length (ResNet-50 3x3 layers, 1 thread)", notes,
                         header, rows, records, args.results_dir)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
