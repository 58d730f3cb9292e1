"""Convolution speed per pass, side by side in one process: DFP16 kernels (bits 16/14/13/12) vs our
FP32 kernel vs PyTorch FP32 (conv2d for FPROP, aten.convolution_backward for BPROP and WTGRAD), on
ResNet-50 layers, at 1 thread and at all threads. The contenders and the peak probes take turns call
by call in rounds, and ratios and % of the single-core peak of each kernel's instruction (x threads)
are medians of per-round values, so the drift of a shared machine stays out of them.

    python benchmarks/bench_conv.py [--passes fprop,bprop,wtgrad] [--layers resnet50] [--batch 8]
                                    [--bits 16,14,13,12] [--threads 1,all] [--tune SECONDS] [--db PATH]
                                    [--seconds 1.0] [--rounds 5]

Each bits value runs on --isa, else on this machine's best ISA for that width: 8 bits and fewer on the
INT8 vpdpbusd kernels where the CPU has VNNI (e.g. `--bits 8,13 --passes fprop --threads 1` compares
them with the 13-bit INT16 kernels; the DFP8/DFP13 column is that speed-up, per round).

Without --tune every kernel (ours, DFP and FP32 alike) uses the tuning database's blocking when it has
one, else the cost model's default. With --tune each of our kernels is first tuned for SECONDS (the
same search as `dfpgen tune`, into --db or the user's database). The table says which.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from dfpgen import Numerics, compile
from dfpgen.codegen.kernel import default_threads
from dfpgen.core import catalog
from dfpgen.core.target import host
from dfpgen.tuning.measure import interleaved, kernel_call, random_operands, torch_call
from dfpgen.tuning.peak import peaks, probe
from dfpgen.tuning.tune import Task, tune

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import write_results  # noqa: E402


def distinct(specs):
    """One spec per distinct shape (ResNet-50 repeats shapes), keeping the first name."""
    seen, out = set(), []
    for s in specs:
        if s.shape_key() not in seen:
            seen.add(s.shape_key())
            out.append(s)
    return out


def our_kernel(spec, pass_name, numerics, isa_name, threads, db=None, tune_seconds: float = 0.0):
    """Our kernel for one measurement, and where its blocking came from: with a tuning `db`, tuned for
    `tune_seconds` first; else the tuning database's blocking where it has one, else the cost model's default."""
    if db is None:
        k = compile(spec, pass_name, numerics, isa=isa_name, threads=threads, tuned=True)
        return k, k.source
    best = tune(Task(spec, pass_name, numerics, isa_name, threads, host()), db, budget=tune_seconds).best
    return compile(spec, pass_name, numerics, isa=isa_name, blocking=best.blocking if best else None,
                   threads=threads), "tuned" if best else "default"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", default="fprop,bprop,wtgrad")
    ap.add_argument("--layers", default="resnet50",
                    help="comma list of layer references (default: every ResNet-50 shape)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bits", default="16,14,13,12")
    ap.add_argument("--threads", default="1,all", help="comma list; 'all' = every core")
    ap.add_argument("--isa", default=None,
                    help="DFP ISA for every bits value (default: this machine's best for each width)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="minimum timing time per contender and layer, over all rounds")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds in which the contenders (and the peak probes) take turns")
    ap.add_argument("--tune", type=float, default=0.0, help="seconds of tuning per kernel before timing it")
    ap.add_argument("--db", default=None, help="tuning database for --tune (default: the user's)")
    ap.add_argument("--results-dir", default=None,
                    help="where conv_<cpu>.md/.json go (default: benchmarks/results)")
    args = ap.parse_args()
    db = None
    if args.tune:
        from dfpgen.tuning.db import TuningDB
        db = TuningDB(args.db)

    def kernel(spec, pass_name, numerics, isa_name, threads):
        return our_kernel(spec, pass_name, numerics, isa_name, threads, db, args.tune)

    bits_list = [int(b) for b in args.bits.split(",")]
    thread_list = [default_threads() if t == "all" else int(t) for t in args.threads.split(",")]
    isa_of = {bits: args.isa or host().best_isa("dfp16", bits=bits) for bits in bits_list}
    fp32_isa = host().best_isa("fp32")
    peak = peaks()
    specs = distinct([s for ref in args.layers.split(",") for s in catalog.select(ref, batch=args.batch)])
    records, rows = [], []
    passes = args.passes.split(",")
    probes = {name: probe(name) for name in dict.fromkeys(list(isa_of.values()) + [fp32_isa])}
    for pass_name, threads, spec in ((p, t, s) for p in passes for t in thread_list for s in specs):
            x, w = random_operands(spec, pass_name)
            rec = {"pass": pass_name, "layer": spec.name, "threads": threads, "batch": spec.N,
                   "gmac": spec.macs / 1e9}
            calls, isas = {}, {}
            for bits in bits_list:
                k, source = kernel(spec, pass_name, Numerics(bits, bits), isa_of[bits], threads)
                calls[f"dfp{bits}"], isas[f"dfp{bits}"] = kernel_call(k, x, w, threads), isa_of[bits]
                rec[f"dfp{bits}_blocking"] = f"{k.plan.blocking.describe()} ({source})"
            k32, source = kernel(spec, pass_name, Numerics(), fp32_isa, threads)
            calls["fp32"], isas["fp32"] = kernel_call(k32, x, w, threads), fp32_isa
            rec["fp32_blocking"] = f"{k32.plan.blocking.describe()} ({source})"
            torch_run = torch_call(spec, x, w, threads, pass_name)
            if torch_run:
                calls["torch"] = torch_run
            ours = list(calls)
            calls.update({f"peak:{name}": run for name, (run, _) in probes.items()})
            times = {name: np.array(t) for name, t in interleaved(calls, args.rounds, args.seconds).items()}
            median = lambda a: float(np.median(a))
            for name in ours:
                rec[name] = median(spec.macs / times[name] / 1e9)
            for name in (n for n in ours if n != "torch"):
                peak_rate = probes[isas[name]][1] / times[f"peak:{isas[name]}"] / 1e9
                rec[f"{name}_pct"] = median(100 * spec.macs / times[name] / 1e9 / (peak_rate * threads))
                rec[f"{name}_peak"] = median(peak_rate)
            ref = bits_list[min(2, len(bits_list) - 1)]
            # Ratios per round, then the median: each round's contenders ran within a second of each other.
            rec["ratio_fp32"] = median(times["fp32"] / times[f"dfp{ref}"])
            for b in (b for b in bits_list if b != ref):
                rec[f"ratio_dfp{b}"] = median(times[f"dfp{ref}"] / times[f"dfp{b}"])
            rec["ratio_torch"] = median(times["torch"] / times[f"dfp{ref}"]) if torch_run else None
            rec.setdefault("torch", None)
            records.append(rec)
            row = [pass_name, spec.name, threads] + [f"{rec[f'dfp{b}']:.1f} ({rec[f'dfp{b}_pct']:.0f}%)" for b in bits_list]
            row += [f"{rec['fp32']:.1f} ({rec['fp32_pct']:.0f}%)", f"{rec['torch']:.1f}" if torch_run else "-",
                    f"{rec['ratio_fp32']:.2f}", f"{rec['ratio_torch']:.2f}" if torch_run else "-"]
            row += [f"{rec[f'ratio_dfp{b}']:.2f}" for b in bits_list if b != ref]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    ref = bits_list[min(2, len(bits_list) - 1)]
    header = ["pass", "layer", "threads"] + [f"DFP{b} GMAC/s (% peak)" for b in bits_list] + \
             ["FP32 GMAC/s (% peak)", "torch FP32 GMAC/s", f"DFP{ref} / FP32", f"DFP{ref} / torch"] + \
             [f"DFP{b} / DFP{ref}" for b in bits_list if b != ref]
    for pass_name, threads in ((p, t) for p in passes for t in thread_list):
        sel = [r for r in records if r["threads"] == threads and r["pass"] == pass_name]
        med = lambda key: float(np.median([r[key] for r in sel]))
        summary = [pass_name, "**median**", threads] + [f"{med(f'dfp{b}'):.1f}" for b in bits_list] + \
                  [f"{med('fp32'):.1f}", f"{med('torch'):.1f}" if sel[0]["torch"] else "-",
                   f"{med('ratio_fp32'):.2f}", f"{med('ratio_torch'):.2f}" if sel[0]["torch"] else "-"] + \
                  [f"{med(f'ratio_dfp{b}'):.2f}" for b in bits_list if b != ref]
        rows.append(summary)
    per_bits = ", ".join(f"{b}: {i}" for b, i in isa_of.items())
    notes = [f"passes {args.passes}, batch {args.batch}, layers {args.layers} (distinct shapes), DFP isa per bits "
             f"{per_bits}, FP32 isa {fp32_isa}",
             f"the contenders and the peak probes take turns call by call in {args.rounds} rounds per layer; each "
             "number is the median over rounds of that round's median (ratios and % peak are taken within a "
             "round first)",
             "our kernels are timed alone (layouts prepared beforehand); PyTorch times its whole conv2d / "
             "convolution_backward call",
             "% peak: of the register-only peak of the kernel's instruction on one core x threads, measured "
             "in the same rounds (dfpgen peak's probe)",
             "peaks GMAC/s at the start (dfpgen peak): " + ", ".join(f"{n} {p.gmacs:.1f}" for n, p in peak.items()),
             f"blockings: {'each of our kernels tuned for ' + str(args.tune) + ' s first' if args.tune else 'the tuning database where it has the kernel, else the default'} (per record in the .json)",
             "command: python benchmarks/bench_conv.py " + " ".join(sys.argv[1:])]
    path = write_results("conv", "Convolution passes: DFP16 vs FP32 vs PyTorch", notes, header, rows, records,
                         args.results_dir)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
