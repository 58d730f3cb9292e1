"""The thread split of the 1x1 layers (issue 21): each kernel timed under the split it had before (contiguous
ranges of items, WTGRAD's items whole vector blocks) and under the plan's split (dfpgen.codegen.split: boxes of
image rows x filter blocks, or of dw's vector blocks x channel chunks x taps), side by side in one process.

    python benchmarks/bench_split.py [--layers resnet50] [--passes fprop,bprop,wtgrad] [--batch 8] [--bits 14]
                                     [--threads 1,all] [--rounds 7] [--seconds 1.0]

Before: the one-thread default blocking, contiguous item ranges. After: the default blocking for the thread count
(FPROP's and BPROP's are the one-thread one; WTGRAD's is ranked for its busiest thread) and the plan's split. At
1 thread they are the same kernel and call. The contenders and the vpdpwssd peak probe take turns call by call in
rounds (tuning.measure.interleaved); GMAC/s and % of the peak (x threads) are medians of per-round values.
"busy" is the rate by the busiest thread's CPU time (time.thread_time around its kernel calls, median over
runs): on a shared machine it leaves out the time a thread waited for a core, which wall time does not.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from dfpgen import Numerics, compile
from dfpgen.codegen.launch import default_threads, run_shares, split_items
from dfpgen.core import catalog
from dfpgen.core.target import host
from dfpgen.runtime.execute import prepare_float
from dfpgen.tuning.measure import interleaved, random_operands
from dfpgen.tuning.peak import peaks, probe

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import write_results  # noqa: E402


def previous_shares(plan, threads: int) -> tuple:
    """The split before issue 21: contiguous, nearly equal ranges of items, one per thread; WTGRAD's items
    were whole vector blocks (all input channels of one filter tap), which are runs of today's items (vector
    block, channel chunk, tap) when the layer has one tap."""
    work = plan.work
    if plan.batch > 1 or len(work.dims) < 3:
        return tuple((r,) for r in split_items(plan.items, threads))
    groups, per = work.dims[0].count, plan.items // work.dims[0].count
    assert work.dims[1].name == "taps" and work.dims[1].count == 1, "1x1 layers only: the old items were (vector " \
                                                                     "block, tap), today's (vector block, tap, chunk)"
    return tuple(((b * per, e * per),) for b, e in split_items(groups, threads))


def runner(kernel, ready, shares):
    """A no-argument callable running the kernel once under `shares` (as Kernel.run does), recording the
    busiest share's CPU seconds in .busy."""
    fn, plan = kernel.compiled().function, kernel.plan
    maxabs = np.zeros(max(1, sum(len(s) for s in shares)), dtype=np.float32)
    args = (ready.src.ctypes.data, ready.vec.ctypes.data, ready.out.ctypes.data, plan.call_words.ctypes.data, 1.0)
    cpu = np.zeros(len(shares))
    owner = {slot: i for i, share in enumerate(shares) for slot in
             range(sum(len(s) for s in shares[:i]), sum(len(s) for s in shares[:i + 1]))}

    def call(slot, b, e):
        t0 = time.thread_time()
        fn(*args, maxabs.ctypes.data + 4 * slot, b, e)
        cpu[owner[slot]] += time.thread_time() - t0

    def run():
        cpu[:] = 0
        run_shares(call, shares)
        run.busy.append(float(cpu.max()))
    run.busy = []
    run.keepalive = (kernel, ready)    # the raw pointers above must outlive the callable
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="resnet50", help="comma list of layer references; 1x1 layers are kept")
    ap.add_argument("--passes", default="fprop,bprop,wtgrad")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bits", type=int, default=14)
    ap.add_argument("--threads", default="1,all", help="comma list; 'all' = every core")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=1.0, help="timing time per contender and kernel")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args()
    isa = host().best_isa("dfp16")
    numerics = Numerics(args.bits, args.bits)
    threads = [default_threads() if t == "all" else int(t) for t in args.threads.split(",")]
    seen, specs = set(), []
    for ref in args.layers.split(","):
        for s in catalog.select(ref, batch=args.batch):
            if s.R == s.S == 1 and s.shape_key() not in seen:
                seen.add(s.shape_key())
                specs.append(s)
    stored = peaks()[isa].gmacs          # dfpgen peak's cached one-core rate
    load = os.getloadavg()[0]
    peak_run, peak_macs = probe(isa)
    rows, records = [], []
    for pass_name in args.passes.split(","):
        for spec in specs:
            operands = random_operands(spec, pass_name)
            # Before: the one-thread default blocking for every thread count (WTGRAD's now follows the count).
            first = compile(spec, pass_name, numerics, isa=isa, threads=1)
            kernels, calls = {}, {}
            for t in threads:
                kernel = compile(spec, pass_name, numerics, isa=isa, threads=t)
                kernels[t] = kernel
                if t == 1:
                    calls[(t, "both")] = runner(kernel, prepare_float(kernel, *operands), kernel.plan.split(1).shares)
                else:
                    calls[(t, "before")] = runner(first, prepare_float(first, *operands), previous_shares(first.plan, t))
                    calls[(t, "after")] = runner(kernel, prepare_float(kernel, *operands), kernel.plan.split(t).shares)
            plan = first.plan
            named = {f"{t} {which}": run for (t, which), run in calls.items()}
            named["peak"] = peak_run
            times = {name: np.array(v) for name, v in interleaved(named, args.rounds, args.seconds).items()}
            peak = peak_macs / times["peak"] / 1e9
            rec = {"pass": pass_name, "layer": spec.name, "shape": spec.describe(), "blocking": plan.blocking.describe(),
                   "peak_gmacs": float(np.median(peak))}
            for (t, which), run in calls.items():
                gmacs = spec.macs / times[f"{t} {which}"] / 1e9
                busy = spec.macs / float(np.median(run.busy)) / 1e9
                kernel = first if which == "before" else kernels[t]
                shares = previous_shares(first.plan, t) if which == "before" else kernel.plan.split(t).shares
                rec[f"t{t}_{which}"] = {"gmacs": float(np.median(gmacs)), "pct": float(np.median(100 * gmacs / peak / t)),
                                        "busy_gmacs": busy, "busy_pct": 100 * busy / stored / t,
                                        "blocking": kernel.plan.blocking.describe(),
                                        "ranges_per_thread": [len(s) for s in shares]}
                if which != "before":
                    rec[f"t{t}_parts"] = dict(zip((d.name for d in kernel.plan.work.dims), kernel.plan.split(t).parts))
            records.append(rec)
            cell = lambda r: f"{r['gmacs']:.1f} ({r['pct']:.0f}%) / {r['busy_gmacs']:.1f} ({r['busy_pct']:.0f}%)"
            row = [pass_name, spec.name, plan.blocking.describe()]
            for t in threads:
                if t == 1:
                    row.append(cell(rec["t1_both"]))
                else:
                    after = kernels[t].plan
                    cut = ", ".join(f"{d.name} {p}" for d, p in zip(after.work.dims, after.split(t).parts) if p > 1)
                    row += [cell(rec[f"t{t}_before"]), cell(rec[f"t{t}_after"]),
                            cut + ("" if after.blocking == plan.blocking else f"; {after.blocking.describe()}")]
            rows.append(row)
            print(" | ".join(row), flush=True)
    header = ["pass", "layer", "blocking"]
    for t in threads:
        header += [f"{t} thread: wall / busy GMAC/s (% peak)"] if t == 1 else \
            [f"{t} threads before", f"{t} threads after", f"{t}-thread split: parts (blocking if not the 1-thread one)"]
    notes = [f"ResNet-50 1x1 layers (distinct shapes), batch {args.batch}, bits {args.bits}, isa {isa}, default blockings",
             "before: the one-thread default blocking, contiguous item ranges, one per thread (WTGRAD: whole vector "
             "blocks); after: the default blocking for the thread count and the plan's split (dfpgen.codegen.split)",
             f"GMAC/s and % of the {isa} peak x threads: medians over {args.rounds} rounds in which the contenders "
             "and the peak probe take turns call by call",
             "cells: wall-clock GMAC/s (% of the probe's rate in the same rounds x threads) / busy GMAC/s (% of "
             f"the stored peak x threads, {stored:.1f} GMAC/s a core from dfpgen peak); busy: MACs / the busiest "
             "thread's CPU time (median over runs), what the split does on cores it has to itself, where wall time "
             "also counts the time a thread waited for a core on a shared machine",
             f"load average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
             f"{os.cpu_count()} cores shared with other work",
             "command: python benchmarks/bench_split.py " + " ".join(sys.argv[1:])]
    path = write_results("issue21_1x1", "Issue 21: the 1x1 layers' thread split", notes, header, rows, records,
                         args.results_dir)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
