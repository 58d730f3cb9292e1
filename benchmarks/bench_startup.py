"""Start-up from warm caches: the seconds a new process takes to build every kernel of a network (each
Conv/Linear layer's Conv2d op at one batch size, all three passes, compiled and ready to run) once an
earlier process has filled the caches.

    python benchmarks/bench_startup.py [--net resnet50] [--batch 8] [--bits 14] [--threads 2]
                                       [--cache-dir DIR] [--runs 3] [--profile FILE]

A first process fills DIR's caches (DFPGEN_CACHE_DIR; compiling from cold takes minutes the first time);
then `--runs` new processes each build every kernel and report the time of that build alone (the
network's construction and imports are reported apart). `--profile FILE` writes the cProfile statistics
of the last run's build to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def input_shapes(layer, shape: tuple, found: list) -> tuple:
    """The output shape of `layer` on an input of `shape`, appending (conv layer, input shape) to
    `found` for every convolution inside it; nothing is computed."""
    from dfpgen.nn import layers as L

    if isinstance(layer, L.Linear):
        N = shape[0]
        found.append((layer.conv, (1, layer.C, 1, N)))
        return (N, layer.K)
    if isinstance(layer, L.Conv):
        found.append((layer, shape))
        s = layer.spec(shape)
        return (s.N, s.K, s.P, s.Q)
    if isinstance(layer, L.Residual):
        out = input_shapes(layer.children[0], shape, found)
        if len(layer.children) > 1:
            input_shapes(layer.children[1], shape, found)
        return out
    if isinstance(layer, L.Concat):
        outs = [input_shapes(child, shape, found) for child in layer.children]
        return (outs[0][0], sum(o[1] for o in outs), *outs[0][2:])
    if isinstance(layer, L.Sequential):
        for child in layer.children:
            shape = input_shapes(child, shape, found)
        return shape
    if isinstance(layer, (L.MaxPool, L.AvgPool)):
        N, C, H, W = shape
        if getattr(layer, "k", None) is None:
            return (N, C, 1, 1)
        k, st, p = layer.k, layer.stride or layer.k, layer.pad

        def out(n):
            if not layer.ceil:
                return (n + 2 * p - k) // st + 1
            m = -(-(n + 2 * p - k) // st) + 1
            return m - ((m - 1) * st >= n + p)
        return (N, C, out(H), out(W))
    if isinstance(layer, L.Flatten):
        n = 1
        for d in shape[1:]:
            n *= d
        return (shape[0], n)
    return shape   # BatchNorm, ReLU: shape-preserving


def child(args) -> None:
    """One new process: build the network, then every kernel; print the times as JSON."""
    t0 = time.perf_counter()
    from dfpgen import passes
    from dfpgen.core.numerics import LayerNumerics
    from dfpgen.nn import build

    net, (C, H, W) = build(args.net, LayerNumerics(bits=args.bits), threads=args.threads)
    found: list = []
    input_shapes(net, (args.batch, C, H, W), found)
    t1 = time.perf_counter()
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    kernels, from_cache = 0, 0
    for layer, shape in found:
        op = layer.op(layer.spec(shape))
        for p in passes.ALL:
            compiled = op.kernel(p).compiled()
            kernels += 1
            from_cache += compiled.from_cache
    t2 = time.perf_counter()
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(json.dumps({"setup_s": t1 - t0, "build_s": t2 - t1, "kernels": kernels, "objects_from_cache": from_cache,
                      "layers": len(found)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--bits", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=None, help="default: a new temporary folder (a cold start)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    env = dict(os.environ, DFPGEN_CACHE_DIR=args.cache_dir or tempfile.mkdtemp(prefix="dfpgen-startup-"))
    base = [sys.executable, __file__, "--child", "--net", args.net, "--batch", str(args.batch),
            "--bits", str(args.bits), "--threads", str(args.threads)]

    def run(extra=()):
        out = subprocess.run(base + list(extra), env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    warm = run()
    print(f"fill caches ({env['DFPGEN_CACHE_DIR']}): {warm['build_s']:.2f} s for {warm['kernels']} kernels "
          f"({warm['objects_from_cache']} objects were cached already)")
    times = []
    for i in range(args.runs):
        r = run(["--profile", args.profile] if args.profile and i == args.runs - 1 else [])
        times.append(r["build_s"])
        print(f"new process {i + 1}: {r['build_s']:.2f} s for {r['kernels']} kernels "
              f"({r['objects_from_cache']} objects from the cache; {r['setup_s']:.2f} s imports and network)")
    median = statistics.median(times)
    print(f"median {median:.2f} s, {median / warm['kernels'] * 1e3:.1f} ms a kernel")


if __name__ == "__main__":
    main()
