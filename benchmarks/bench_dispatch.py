"""What limits a vpmaddwd loop on this core: the peak probe beside fixed instruction mixes.

    python benchmarks/bench_dispatch.py [--seconds 30] [--rounds 15]

Every loop below is one inline-assembly block (x86-64, AVX2 ymm), so LLVM can neither reorder nor
merge its instructions, and each runs entirely in registers and L1. They take turns call by call
with dfpgen's register-only probe (the denominator of every "% of peak" dfpgen prints):

  * clock: a chain of dependent integer adds, one a cycle: the core's clock while the others run;
  * independent operands: vpmaddwd on two fixed registers + vpaddd into 12 accumulators, which
    checks that the probe (whose vpmaddwd reads its own accumulator) is not latency-bound;
  * vpmaddwd alone: the products without their vpaddd, the multiplier's own rate;
  * probe + N ALU ops / + a load / + a broadcast: one or two independent operations added after
    every vpmaddwd + vpaddd of the probe: if the rate falls with operations that need no vector
    pipe, the loop is bound by how many instructions the core issues a cycle, not by its multipliers;
  * register block kv x w: the kernels' own instruction mix without their flushes and memory
    traffic: kv weight vectors and w input broadcasts feeding kv*w accumulators each channel pair.

The table gives each loop's operations per vpmaddwd, its median and best GMAC/s over rounds, and
its rate as a share of the probe's (median of per-round ratios, and in the round where the probe
was fastest). Results go to benchmarks/results/dispatch_<cpu>.md and .json.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np

from dfpgen.core.target import get_isa, host
from dfpgen.tuning.measure import interleaved
from dfpgen.tuning.peak import probe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

MACS_PER_PMADD = 2 * get_isa("avx2").lanes     # an INT16 pair into each INT32 lane of a ymm register
CALL_SECONDS = 0.003       # one timed call of each loop
_CLOBBERS = ",".join([f"~{{xmm{i}}}" for i in range(16)] +
                     ["~{rax}", "~{rcx}", "~{rdx}", "~{memory}", "~{dirflag}", "~{fpsr}", "~{flags}"])
_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)


@dataclass(frozen=True)
class Loop:
    """One timed loop: its body (AT&T syntax, `$0` = a 4 KB L1-resident buffer), run `iters` times."""

    name: str
    body: tuple[str, ...]
    pmadds: int            # vpmaddwd per iteration (0 for the clock loop)
    cycles: int = 0        # cycles per iteration, when fixed by a dependency chain (the clock loop)

    @property
    def ops_per_pmadd(self) -> float:
        """Instructions per vpmaddwd, counting the loop's own decrement and branch."""
        return (len(self.body) + 2) / self.pmadds if self.pmadds else float("nan")

    def text(self) -> str:
        """The whole inline-assembly loop."""
        return "\n".join(["1:", *self.body, "dec %rcx", "jnz 1b"])


def _pmadd_add(src: str, bcast: str, tmp: str, acc: str) -> list[str]:
    return [f"vpmaddwd {src}, {bcast}, {tmp}", f"vpaddd {tmp}, {acc}, {acc}"]


def clock_loop(adds: int = 200) -> Loop:
    """Dependent integer adds: one a cycle (an add's latency on every x86-64 core)."""
    return Loop("clock (dependent adds)", tuple(["add $$1, %rax"] * adds), 0, cycles=adds)


def independent_operands(accumulators: int = 12) -> Loop:
    """vpmaddwd of two fixed registers, each product added into its own accumulator."""
    body = []
    for k in range(accumulators):
        body += _pmadd_add("%ymm15", "%ymm14", f"%ymm{12 + k % 2}", f"%ymm{k}")
    return Loop("independent operands", tuple(body), accumulators)


def products_only(registers: int = 12) -> Loop:
    """vpmaddwd of two fixed registers into `registers` destinations, nothing accumulated."""
    return Loop("vpmaddwd alone (no vpaddd)",
                tuple(f"vpmaddwd %ymm15, %ymm14, %ymm{k}" for k in range(registers)), registers)


EXTRA_OPS = {
    "ALU op": lambda e: f"lea {e + 1}(%rcx), %{'rax' if e % 2 == 0 else 'rdx'}",
    "load": lambda e: f"mov {64 * (e % 8)}($0), %{'rax' if e % 2 == 0 else 'rdx'}",
    "broadcast": lambda e: f"vpbroadcastd {4 * (e % 8)}($0), %ymm13",
}


def probe_plus(kind: str, extra: int, accumulators: int = 12) -> Loop:
    """The probe's own chain (vpmaddwd reads the accumulator, vpaddd adds the product back) with
    `extra` independent operations of `kind` after every pair."""
    body = []
    for k in range(accumulators):
        body += _pmadd_add("%ymm15", f"%ymm{k}", "%ymm14", f"%ymm{k}")
        body += [EXTRA_OPS[kind](e) for e in range(extra)]
    name = "probe in assembly" if not extra else f"probe + {extra} {kind}{'s' if extra > 1 else ''}"
    return Loop(name, tuple(body), accumulators)


def register_block(kv: int, width: int, pairs: int = 8) -> Loop:
    """The kernels' step: per channel pair, kv weight loads, then per pixel a broadcast and kv
    vpmaddwd + vpaddd into that pixel's accumulators (registers: kv*width + kv + 2 <= 16)."""
    if kv * width + kv + 2 > 16:
        raise ValueError(f"kv={kv} x width={width}: needs {kv * width + kv + 2} of 16 ymm registers")
    weights, bcast = kv * width, kv * width + kv
    tmp = bcast + 1
    body = []
    for p in range(pairs):
        body += [f"vmovdqu {(64 * p + 32 * v) % 4096}($0), %ymm{weights + v}" for v in range(kv)]
        for j in range(width):
            body.append(f"vpbroadcastd {4 * (8 * j + p)}($0), %ymm{bcast}")
            for v in range(kv):
                body += _pmadd_add(f"%ymm{weights + v}", f"%ymm{bcast}", f"%ymm{tmp}", f"%ymm{j * kv + v}")
    return Loop(f"register block kv{kv} x w{width}", tuple(body), kv * width * pairs)


def default_loops() -> list[Loop]:
    """Every loop the benchmark times, in table order."""
    return [clock_loop(), independent_operands(), products_only(),
            probe_plus("ALU op", 0), probe_plus("ALU op", 1), probe_plus("ALU op", 2),
            probe_plus("load", 1), probe_plus("broadcast", 1),
            register_block(2, 4), register_block(2, 5), register_block(2, 6), register_block(3, 3)]


class Compiled:
    """Loops JIT-compiled into one module; `call(name, iters)` runs one."""

    def __init__(self, loops: list[Loop]):
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
        functions = []
        for i, loop in enumerate(loops):
            text = loop.text().replace("\\", "\\5C").replace('"', "\\22").replace("\n", "\\0A")
            functions.append(f"""define void @loop{i}(ptr %buf, i64 %n) {{
  call void asm sideeffect "mov $1, %rcx\\0A{text}", "r,r,{_CLOBBERS}"(ptr %buf, i64 %n)
  ret void
}}""")
        module = llvm.parse_assembly("\n".join(functions))
        module.verify()
        tm = llvm.Target.from_default_triple().create_target_machine(cpu=llvm.get_host_cpu_name(), opt=2)
        self.engine = llvm.create_mcjit_compiler(module, tm)
        self.engine.finalize_object()
        self.buffer = np.zeros(2048, dtype=np.int16)    # 4 KB: every load hits L1
        self.functions = {loop.name: _SIGNATURE(self.engine.get_function_address(f"loop{i}"))
                          for i, loop in enumerate(loops)}

    def call(self, name: str, iters: int) -> None:
        """Run loop `name` for `iters` iterations."""
        self.functions[name](self.buffer.ctypes.data, iters)


def calibrated(compiled: Compiled, name: str, seconds: float = CALL_SECONDS) -> int:
    """Iterations that make one call of loop `name` last about `seconds`."""
    iters = 64
    while True:
        t0 = time.perf_counter()
        compiled.call(name, iters)
        elapsed = time.perf_counter() - t0
        if elapsed > seconds / 4 or iters > 1 << 30:
            return max(1, int(iters * seconds / max(elapsed, 1e-9)))
        iters *= 4


def measure(loops: list[Loop], rounds: int, seconds: float) -> tuple[dict[str, np.ndarray], int]:
    """Per-round median seconds per iteration of every loop and per probe call ('probe'), timed side by
    side, and the multiply-accumulates of one probe call."""
    compiled = Compiled(loops)
    probe_run, probe_macs = probe("avx2", seconds=CALL_SECONDS * 8)
    iters = {loop.name: calibrated(compiled, loop.name) for loop in loops}
    calls = {loop.name: (lambda n=loop.name: compiled.call(n, iters[n])) for loop in loops}
    calls["probe"] = probe_run
    times = interleaved(calls, rounds=rounds, min_seconds=seconds)
    return {name: np.array(t) / iters.get(name, 1) for name, t in times.items()}, probe_macs


def rows_and_records(loops: list[Loop], per_iter: dict[str, np.ndarray], probe_macs: int) -> tuple[list, list]:
    """Table rows and JSON records from per-round seconds per iteration."""
    probe_rate = probe_macs / per_iter["probe"]                       # MAC/s, per round
    fastest = int(np.argmax(probe_rate))
    clock = next(loop for loop in loops if loop.cycles)
    ghz = clock.cycles / per_iter[clock.name] / 1e9

    def record(name: str, ops: float | None, rate: np.ndarray) -> dict:
        share = rate / probe_rate
        return {"loop": name, "ops_per_pmadd": ops, "gmacs_median": float(np.median(rate) / 1e9),
                "gmacs_best": float(rate.max() / 1e9), "share_median": float(np.median(share)),
                "share_fastest_round": float(share[fastest])}

    records = [record("probe", None, probe_rate)
               | {"pmadd_per_cycle_median": float(np.median(probe_rate / MACS_PER_PMADD / (ghz * 1e9))),
                  "ghz_median": float(np.median(ghz)), "ghz_best": float(ghz.max())}]
    records += [record(loop.name, loop.ops_per_pmadd, loop.pmadds * MACS_PER_PMADD / per_iter[loop.name])
                for loop in loops if loop.pmadds]
    rows = [["dfpgen probe (denominator)" if r["loop"] == "probe" else r["loop"],
             "-" if r["loop"] == "probe" else f"{r['ops_per_pmadd']:.2f}", f"{r['gmacs_median']:.1f}",
             f"{r['gmacs_best']:.1f}", f"{r['share_median']:.2f}", f"{r['share_fastest_round']:.2f}"]
            for r in records]
    return rows, records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="total timing time of each loop")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    if not host().supports("avx2"):
        sys.exit("bench_dispatch: the loops are AVX2 (ymm vpmaddwd); this CPU does not have AVX2")
    loops = default_loops()
    print(f"timing {len(loops) + 1} loops call by call for about {args.seconds * (len(loops) + 1):.0f} s ...",
          flush=True)
    per_iter, probe_macs = measure(loops, args.rounds, args.seconds)
    rows, records = rows_and_records(loops, per_iter, probe_macs)
    probe_record = records[0]      # the probe's record also carries the clock of the same rounds
    header = ["loop", "ops per vpmaddwd", "GMAC/s median", "GMAC/s best", "share of probe (median)",
              "share of probe (fastest round)"]
    notes = [f"clock (dependent adds, same rounds): median {probe_record['ghz_median']:.2f} GHz, best "
             f"{probe_record['ghz_best']:.2f} GHz; the probe retires {probe_record['pmadd_per_cycle_median']:.2f} "
             "vpmaddwd a "
             "cycle (median)",
             "one core; every loop in registers and L1; the loops and the probe take turns call by call in "
             f"{args.rounds} rounds; medians over rounds",
             "ops per vpmaddwd: instructions per vpmaddwd including the loop's decrement and branch",
             "command: python benchmarks/bench_dispatch.py " + " ".join(sys.argv[1:])]
    for row in rows:
        print(" | ".join(row), flush=True)
    path = write_results("dispatch", "What limits a vpmaddwd loop on this core", notes, header, rows, records)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
