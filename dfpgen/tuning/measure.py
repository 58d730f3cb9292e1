"""Measuring kernels: median wall time of a kernel on prepared operands, side by side with our FP32
kernel and PyTorch's FP32 conv2d (when installed). Used by `dfpgen bench`, benchmarks/ and the tuner."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dfpgen.codegen.kernel import Kernel, default_threads
from dfpgen.passes import DW, DX, DY, FPROP, Pass, W, X, get
from dfpgen.runtime.execute import prepare_float


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


def random_operands(spec, conv_pass: Pass | str = FPROP, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible float32 operands (src, vec) of one pass: x and dy standard normal, w scaled by
    1/sqrt(fan-in); the same x, w and dy whichever pass asks."""
    rng = np.random.default_rng(seed)
    tensors = {X: rng.standard_normal(X.shape(spec), dtype=np.float32)}
    tensors[W] = rng.standard_normal(W.shape(spec), dtype=np.float32) / np.float32(np.sqrt(spec.Cg * spec.R * spec.S))
    tensors[DY] = rng.standard_normal(DY.shape(spec), dtype=np.float32)
    return tuple(tensors[t] for t in get(conv_pass).operands)


def kernel_call(kernel: Kernel, a: np.ndarray, b: np.ndarray, threads: int | None = None):
    """A no-argument callable that runs the kernel once on prepared operands (layouts done beforehand)."""
    ready = prepare_float(kernel, a, b)
    threads = threads or default_threads()
    return lambda: ready.run(1.0, threads)


def time_kernel(kernel: Kernel, a: np.ndarray, b: np.ndarray, threads: int | None = None,
                min_seconds: float = 0.25) -> Timing:
    """Median time of the kernel alone (layouts prepared beforehand), as a Timing."""
    seconds, reps = median_time(kernel_call(kernel, a, b, threads), min_seconds)
    return Timing(seconds, reps, kernel.plan.spec.macs)


def torch_call(spec, a: np.ndarray, b: np.ndarray, threads: int | None = None, conv_pass: Pass | str = FPROP):
    """A no-argument callable running PyTorch's FP32 kernel for the same pass and shape once (at
    `threads` torch threads), or None without PyTorch.

    A pass whose result is y calls conv2d; one whose result is dx or dw calls
    aten.convolution_backward with only that gradient asked for.
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
    conv_pass = get(conv_pass)
    given = {conv_pass.src: torch.from_numpy(a), conv_pass.vec: torch.from_numpy(b)}
    x, w, dy = (given[t] if t in given else torch.zeros(t.shape(s)) for t in (X, W, DY))
    x = pad_input(x)
    if conv_pass.result not in (DX, DW):
        op = lambda: torch.nn.functional.conv2d(x, w, **geometry)
    else:
        mask = [conv_pass.result is DX, conv_pass.result is DW, False]
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
               conv_pass: Pass | str = FPROP) -> Timing | None:
    """Median time of PyTorch's FP32 kernel for the same pass and shape, or None without PyTorch."""
    call = torch_call(spec, a, b, threads, conv_pass)
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
