"""The one path from operands to a result: block the operands into the kernel's layouts, run the
kernel, unblock its FP32 output. Conv2d, the tuner, the measurements and conformance all use it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfpgen.codegen.kernel import Kernel
from dfpgen.codegen.layout import aligned_empty
from dfpgen.core.dfp import quantize
from dfpgen.core.numerics import Numerics


@dataclass
class Prepared:
    """A kernel with its blocked operands and output buffer, ready to run any number of times."""

    kernel: Kernel
    src: np.ndarray
    vec: np.ndarray
    out: np.ndarray

    def run(self, scale: float = 1.0, threads: int | None = None) -> float:
        """Run the kernel once into `out`; returns max|out| (the fused epilogue)."""
        return self.kernel.run(self.src, self.vec, self.out, scale, threads)

    def result(self) -> np.ndarray:
        """The last run's output in NCHW / KCRS, float32, without channel padding."""
        plan = self.kernel.plan
        return plan.conv_pass.from_dst(self.out, plan)


def block_src(kernel: Kernel, src: np.ndarray) -> np.ndarray:
    """The src operand (mantissas, or FP32 values for FP32 kernels) in the kernel's blocked layout."""
    return kernel.plan.conv_pass.to_src(src, kernel.plan)


def block_vec(kernel: Kernel, vec: np.ndarray) -> np.ndarray:
    """The vec operand in the kernel's blocked layout."""
    return kernel.plan.conv_pass.to_vec(vec, kernel.plan)


def output_buffer(kernel: Kernel) -> np.ndarray:
    """An aligned FP32 buffer of the kernel's blocked output shape."""
    return aligned_empty(kernel.plan.dst_shape, np.float32)


def prepare(kernel: Kernel, src: np.ndarray, vec: np.ndarray) -> Prepared:
    """Block both operands (already mantissas, or FP32 values for FP32 kernels) and allocate the output."""
    return Prepared(kernel, block_src(kernel, src), block_vec(kernel, vec), output_buffer(kernel))


def quantized_operands(a: np.ndarray, b: np.ndarray, numerics: Numerics | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Float operands as a kernel reads them, and the scale of its result: DFP mantissas of the
    numerics' bits and 2**(exponents) for integer kernels, the floats and 1.0 for FP32 (None)."""
    if numerics is None:
        return a, b, 1.0
    qa, qb = quantize(a, numerics.bits_x), quantize(b, numerics.bits_w)
    return qa.mant, qb.mant, float(np.ldexp(1.0, qa.exp + qb.exp))


def prepare_float(kernel: Kernel, a: np.ndarray, b: np.ndarray) -> Prepared:
    """`prepare` on float operands, quantized first when the kernel is integer (the scale is dropped:
    for timing)."""
    plan = kernel.plan
    src, vec, _ = quantized_operands(a, b, plan.numerics if plan.int_accumulate else None)
    return prepare(kernel, src, vec)
