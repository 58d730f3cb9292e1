"""Measuring kernels: median wall time of a kernel on prepared operands, side by side with our FP32
kernel and PyTorch's FP32 conv2d (when installed). Used by `dfpgen bench`, benchmarks/ and the tuner."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .dfp import quantize
from .kernel import Kernel, default_threads
from .layout import aligned_empty, block_input, block_weights


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


def random_operands(spec, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible float32 NCHW input and KCRS weights for a spec."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((spec.N, spec.C, spec.H, spec.W), dtype=np.float32)
    w = rng.standard_normal((spec.K, spec.C, spec.R, spec.S), dtype=np.float32) / np.sqrt(spec.C * spec.R * spec.S)
    return x, w.astype(np.float32)


def prepared(kernel: Kernel, x: np.ndarray, w: np.ndarray) -> tuple:
    """Blocked operands and an output buffer for `kernel` (quantized when the kernel is integer)."""
    plan = kernel.plan
    if plan.int_accumulate:
        x = quantize(x, plan.numerics.bits_x).mant
        w = quantize(w, plan.numerics.bits_w).mant
    return block_input(x, plan), block_weights(w, plan), aligned_empty(plan.out_shape, np.float32)


def time_kernel(kernel: Kernel, x: np.ndarray, w: np.ndarray, threads: int | None = None,
                min_seconds: float = 0.25) -> Timing:
    """Median time of the kernel alone (layouts prepared beforehand), as a Timing."""
    bin_, bw, out = prepared(kernel, x, w)
    threads = threads or default_threads()
    seconds, reps = median_time(lambda: kernel.run(bin_, bw, out, 1.0, threads), min_seconds)
    return Timing(seconds, reps, kernel.plan.spec.macs)


def time_torch(spec, x: np.ndarray, w: np.ndarray, threads: int | None = None,
               min_seconds: float = 0.25) -> Timing | None:
    """Median time of PyTorch's FP32 conv2d on the same shape, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads())
    try:
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        with torch.no_grad():
            seconds, reps = median_time(
                lambda: torch.nn.functional.conv2d(xt, wt, stride=spec.stride, padding=spec.pad), min_seconds)
    finally:
        torch.set_num_threads(previous)
    return Timing(seconds, reps, spec.macs)
