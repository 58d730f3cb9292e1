"""Measuring kernels: median wall time of a kernel on prepared operands, side by side with our FP32
kernel and PyTorch's FP32 conv2d (when installed). Used by `dfpgen bench`, benchmarks/ and the tuner."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dfpgen.core.dfp import quantize
from dfpgen.codegen.kernel import Kernel, default_threads
from dfpgen.codegen.layout import TRANSFORMS, aligned_empty


@dataclass(frozen=True)
class Timing:
    """Median seconds of one kernel (or library call) over `reps` runs, and its MAC rate."""

    seconds: float
    reps: int
    macs: int

    @property
    def gmacs(self) -> float:
        """Billions of multiply-accumulates per second."""
        return self.macs / self.seconds / 1e9


def median_time(fn, min_seconds: float = 0.25, min_reps: int = 5, max_reps: int = 200) -> tuple[float, int]:
    """Warm up once, then run until both `min_reps` runs and `min_seconds` have passed; return the median."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


def random_operands(spec, pass_name: str = "fprop", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible float32 operands of one pass: (x, w) for fprop, (dy, w) for bprop, (x, dy) for wtgrad."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W), dtype=np.float32)
    w = (rng.standard_normal((spec.K, spec.Cg, spec.R, spec.S), dtype=np.float32)
         / np.float32(np.sqrt(spec.Cg * spec.R * spec.S)))
    dy = rng.standard_normal((spec.N, spec.K, spec.P, spec.Q), dtype=np.float32)
    return {"fprop": (x, w), "bprop": (dy, w), "wtgrad": (x, dy)}[pass_name]


def prepared(kernel: Kernel, a: np.ndarray, b: np.ndarray) -> tuple:
    """The kernel's blocked operands and an output buffer (quantized first when the kernel is integer)."""
    plan = kernel.plan
    if plan.int_accumulate:
        a = quantize(a, plan.numerics.bits_x).mant
        b = quantize(b, plan.numerics.bits_w).mant
    to_src, to_vec, _ = TRANSFORMS[plan.pass_name]
    return to_src(a, plan), to_vec(b, plan), aligned_empty(plan.out_shape, np.float32)


def kernel_call(kernel: Kernel, a: np.ndarray, b: np.ndarray, threads: int | None = None):
    """A no-argument callable that runs the kernel once on prepared operands (layouts done beforehand)."""
    src, vec, out = prepared(kernel, a, b)
    threads = threads or default_threads()
    return lambda: kernel.run(src, vec, out, 1.0, threads)


def time_kernel(kernel: Kernel, a: np.ndarray, b: np.ndarray, threads: int | None = None,
                min_seconds: float = 0.25) -> Timing:
    """Median time of the kernel alone (layouts prepared beforehand), as a Timing."""
    seconds, reps = median_time(kernel_call(kernel, a, b, threads), min_seconds)
    return Timing(seconds, reps, kernel.plan.spec.macs)


def torch_call(spec, a: np.ndarray, b: np.ndarray, threads: int | None = None, pass_name: str = "fprop"):
    """A no-argument callable running PyTorch's FP32 kernel for the same pass and shape once (at
    `threads` torch threads), or None without PyTorch.

    fprop calls conv2d; bprop and wtgrad call aten.convolution_backward with only that gradient asked for.
    """
    try:
        import torch
    except ImportError:
        return None
    threads = threads or default_threads()
    s = spec
    # Asymmetric (or negative) padding has no conv2d argument: pad the input once, outside the timing.
    symmetric = s.pt == s.pb and s.pl == s.pr
    padding = [s.pt, s.pl] if symmetric else [0, 0]
    pad_input = (lambda t: t) if symmetric else \
        (lambda t: torch.nn.functional.pad(t, (s.pl, s.pr, s.pt, s.pb)))
    geometry = dict(stride=[s.sh, s.sw], padding=padding, dilation=[s.dh, s.dw], groups=s.groups)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if pass_name == "fprop":
        ta = pad_input(ta)
        op = lambda: torch.nn.functional.conv2d(ta, tb, **geometry)
    else:
        dy, x, w = (ta, torch.zeros(s.N, s.C, s.H, s.W), tb) if pass_name == "bprop" else \
            (tb, ta, torch.zeros(s.K, s.Cg, s.R, s.S))
        x = pad_input(x)
        mask = [pass_name == "bprop", pass_name == "wtgrad", False]
        op = lambda: torch.ops.aten.convolution_backward(dy, x, w, None, geometry["stride"], padding,
                                                         geometry["dilation"], False, [0, 0], s.groups, mask)

    def call():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                op()
        finally:
            torch.set_num_threads(previous)
    return call


def time_torch(spec, a: np.ndarray, b: np.ndarray, threads: int | None = None, min_seconds: float = 0.25,
               pass_name: str = "fprop") -> Timing | None:
    """Median time of PyTorch's FP32 kernel for the same pass and shape, or None without PyTorch."""
    call = torch_call(spec, a, b, threads, pass_name)
    if call is None:
        return None
    seconds, reps = median_time(call, min_seconds)
    return Timing(seconds, reps, spec.macs)


def interleaved(calls: dict, rounds: int = 5, min_seconds: float = 0.25, min_reps: int = 3) -> dict[str, list[float]]:
    """Median seconds of each callable per round; within a round the callables take turns call by call.

    A shared machine drifts (other tenants, clocks) on the scale of a second, and on some hosts flips
    between a fast and a slow state; one call of each contender in turn keeps them within tens of
    milliseconds of each other, so each round's medians (and their ratios) see the same machine, and
    the median over rounds keeps a disturbed round out. A round lasts about `min_seconds` / `rounds`
    per callable, and every callable runs the same number of times in it (at least `min_reps`)."""
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: must be >= 1")
    if min_reps < 1:
        raise ValueError(f"min_reps={min_reps}: must be >= 1")
    if not calls:
        return {}
    for fn in calls.values():
        fn()    # warm-up: JIT, first-touch pages, thread pools
    times = {name: [] for name in calls}
    round_seconds = min_seconds / rounds * len(calls)
    for _ in range(rounds):
        samples = {name: [] for name in calls}
        start = time.perf_counter()
        while len(next(iter(samples.values()))) < min_reps or time.perf_counter() - start < round_seconds:
            for name, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
        for name, seconds in samples.items():
            times[name].append(float(np.median(seconds)))
    return times
