"""Data-movement kernels on the layouts ResNet-50's training moves across a strided dimension: transposed tiles
(templates/transpose.ll.j2) against the element-by-element gathers they replaced, from cache and from memory.

    python benchmarks/bench_moves.py [--threads 1,2] [--repeats 9]

Each case is one MoveProgram run on arrays of a ResNet-50 layer (batch 8): its source read from cache (the same
move just ran) and from memory (a 64 MB buffer written in between, which also leaves dirty lines to write back,
as a training step does). GB/s counts the source once (4 bytes an element) and the destination once (2 bytes a
mantissa, 4 a float). Time is the median of `--repeats` runs. The gather column forces the geometry the planner
used before transposed tiles existed. Results go to benchmarks/results/moves_<cpu>.md and .json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dfpgen.codegen import move
from dfpgen.core.target import get_isa, host

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, write_results  # noqa: E402

FLUSH = np.ones(16 << 20, np.float32)   # 64 MB: more than the last-level cache


def cases(lanes: int, rng: np.random.Generator) -> list[tuple]:
    """(name, origin, view in the destination's order, destination dtype)."""
    out = []
    w = rng.standard_normal((512, 2048)).astype(np.float32)
    out.append(("1x1 weights 512x2048 -> FPROP [K/L][C/2][L][2], INT16", w,
                w.reshape(512 // lanes, lanes, 1024, 2).transpose(0, 2, 1, 3), np.int16))
    w3 = rng.standard_normal((512, 512, 3, 3)).astype(np.float32)
    out.append(("3x3 weights 512x512 -> FPROP [K/L][C/2][RS][L][2], INT16", w3,
                w3.reshape(512 // lanes, lanes, 256, 2, 9).transpose(0, 2, 4, 1, 3), np.int16))
    dw = rng.standard_normal((2048 // lanes, 512, lanes)).astype(np.float32)
    out.append(("WTGRAD 1x1 result [K/L][C][L] -> KCRS 2048x512, FP32", dw, dw.transpose(0, 2, 1), np.float32))
    dw3 = rng.standard_normal((512 // lanes, 9, 512, lanes)).astype(np.float32)
    out.append(("WTGRAD 3x3 result [K/L][RS][C][L] -> KCRS 512x512x3x3, FP32", dw3, dw3.transpose(0, 3, 2, 1),
                np.float32))
    x = rng.standard_normal((8, 256, 56, 56)).astype(np.float32)
    out.append(("NCHW 8x256x56x56 -> blocked [N][C/L][H][W][L], FP32", x,
                x.reshape(8, 256 // lanes, lanes, 56, 56).transpose(0, 1, 3, 4, 2), np.float32))
    return out


def _planned(view: np.ndarray, dst: np.ndarray, origin: np.ndarray, transposing: bool) -> move.MoveProgram:
    """The move's program with transposed tiles, or with the element-by-element geometry."""
    planner = move._transposed
    if not transposing:
        move._transposed = lambda geometry, itemsize: None
    move._geometry.cache_clear()
    try:
        return move.MoveProgram.of([(view, dst)], origin, dst)
    finally:
        move._transposed = planner
        move._geometry.cache_clear()


def timed(program, origin, dst, isa, threads: int, repeats: int, cold: bool) -> float:
    """Median seconds of one run of `program`, its source in cache or (`cold`) after writing FLUSH."""
    quantize = dict(bits=14, scale=2.0 ** -3) if dst.dtype == np.int16 else {}
    return median_seconds(lambda: move.run_program(program, origin, dst, host(), isa, threads, **quantize), repeats,
                          before=flush if cold else None)


def flush() -> None:
    """Write more than the last-level cache holds, leaving dirty lines as a training step does."""
    FLUSH[...] += 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    isa = get_isa(host().best_isa("dfp16"))
    rows, records = [], []
    for name, origin, view, dtype in cases(isa.lanes, np.random.default_rng(0)):
        dst = np.empty(view.shape, dtype)
        programs = {kind: _planned(view, dst, origin, kind == "transposed") for kind in ("gather", "transposed")}
        accesses = {kind: p.steps[0].geometry.access(isa.lanes)[0] for kind, p in programs.items()}
        nbytes = origin.size * 4 + dst.nbytes
        for threads in (int(t) for t in args.threads.split(",")):
            for cold in (False, True):
                seconds = {kind: timed(p, origin, dst, isa, threads, args.repeats, cold) for kind, p in programs.items()}
                where = "memory" if cold else "cache"
                rows.append([name, threads, where, f"{seconds['gather'] * 1e3:.2f} ({accesses['gather']})",
                             f"{seconds['transposed'] * 1e3:.2f} ({accesses['transposed']})",
                             f"{nbytes / seconds['transposed'] / 1e9:.1f}",
                             f"{seconds['gather'] / seconds['transposed']:.2f}x"])
                records.append({"case": name, "threads": threads, "source": where, "bytes": nbytes,
                                "accesses": accesses, "seconds": seconds})
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    path = write_results("moves", "Data movement: transposed tiles against gathers",
                         [f"isa {isa.name}, median of {args.repeats} runs; memory = after writing 64 MB",
                          "command: python benchmarks/bench_moves.py " + " ".join(sys.argv[1:])],
                         ["move", "threads", "source in", "before ms (access)", "now ms (access)", "now GB/s",
                          "speedup"], rows, records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
