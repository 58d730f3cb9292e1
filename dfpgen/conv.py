"""The user-facing runtime entry points: `compile` one kernel, and the `Conv2d` operator."""

from __future__ import annotations

import numpy as np

from . import kernel as kernel_mod
from .config import settings
from .cost import default_blocking
from .dfp import DFPTensor, quantize
from .errors import ShapeError, TargetError
from .kernel import Kernel, default_threads
from .layout import aligned_empty, block_input, block_weights, unblock_output
from .plan import Blocking, make_plan
from .spec import ConvSpec, Numerics
from .target import FP32_ISAS, get_isa, resolve

PRECISIONS = ("dfp16", "fp32")


def choose_isa(target, precision: str = "dfp16", isa: str | None = None) -> str:
    """The ISA to use: the caller's, else DFPGEN_ISA (when it fits the precision), else the target's best."""
    if precision not in PRECISIONS:
        raise TargetError(f"precision={precision!r}: must be one of {', '.join(PRECISIONS)}")
    forced = settings().isa
    if isa is None and forced and get_isa(forced).precision == precision:
        isa = forced
    isa = isa or target.best_isa(precision)
    if get_isa(isa).precision != precision:
        raise TargetError(f"isa={isa!r} computes {get_isa(isa).precision}, not {precision}")
    target.check_isa(isa)
    return isa


def compile(spec: ConvSpec, pass_name: str = "fprop", numerics: Numerics | None = None, isa: str | None = None,
            cpu: str | None = None, blocking: Blocking | None = None, precision: str | None = None) -> Kernel:
    """Plan and emit one kernel. `cpu` names a CPU to cross-emit for (inspect .ir/.asm; not runnable).

    `precision` defaults to that of `isa`, else dfp16; blocking defaults to the cost model's choice.
    """
    numerics = numerics or Numerics()
    target = resolve(cpu)
    precision = precision or (get_isa(isa).precision if isa else "dfp16")
    isa = choose_isa(target, precision, isa)
    blocking = blocking or default_blocking(spec, numerics, target, isa)
    return kernel_mod.build(make_plan(spec, numerics, blocking, target, isa, pass_name))


class Conv2d:
    """A convolution layer run through generated kernels: `fprop(x, w)` on float32 NCHW / KCRS arrays
    (quantized with the op's numerics) or on DFPTensors (used as they are)."""

    def __init__(self, spec: ConvSpec, bits: int = 16, rounding: str = "nearest", overflow: str = "exact",
                 chain: int | None = None, isa: str | None = None, threads: int | None = None,
                 blocking: Blocking | None = None, bits_w: int | None = None, precision: str = "dfp16",
                 seed=None):
        self.spec = spec
        self.precision = precision
        self.numerics = Numerics(bits, bits if bits_w is None else bits_w, rounding, overflow, chain)
        self.threads = threads or default_threads()
        self.rng = np.random.default_rng(seed)
        self._fprop = compile(spec, "fprop", self.numerics, isa=isa, blocking=blocking, precision=precision)

    @property
    def kernels(self) -> dict:
        """The generated kernels by pass name."""
        return {"fprop": self._fprop}

    def _operand(self, a, bits: int, name: str):
        if isinstance(a, DFPTensor):
            if self.precision == "fp32":
                return a.to_float(np.float32), 0
            return a.mant, a.exp
        if self.precision == "fp32":
            arr = np.asarray(a)
            if arr.dtype.kind != "f":
                from .errors import DTypeError
                raise DTypeError(f"{name}: expected a float array, got dtype {arr.dtype}")
            return arr.astype(np.float32, copy=False), 0
        q = quantize(a, bits, self.numerics.rounding, self.rng, name=name)
        return q.mant, q.exp

    def _check_shape(self, name: str, a: np.ndarray, expected: tuple) -> None:
        if tuple(a.shape) != expected:
            raise ShapeError(f"{name}: expected shape {expected} for layer {self.spec.name or '-'} "
                             f"({self.spec.describe()}), got {tuple(a.shape)}")

    def fprop_maxabs(self, x, w) -> tuple[np.ndarray, float]:
        """Forward pass; also returns max|y| from the kernel's fused epilogue (no extra pass over y)."""
        s = self.spec
        xm, ex = self._operand(x, self.numerics.bits_x, "x")
        wm, ew = self._operand(w, self.numerics.bits_w, "w")
        self._check_shape("x", xm, (s.N, s.C, s.H, s.W))
        self._check_shape("w", wm, (s.K, s.C, s.R, s.S))
        plan = self._fprop.plan
        out = aligned_empty(plan.out_shape, np.float32)
        scale = np.ldexp(1.0, ex + ew)
        in_range = np.float32(scale) == scale and np.isfinite(np.float32(scale)) and scale >= 2.0**-126
        maxabs = self._fprop.run(block_input(xm, plan), block_weights(wm, plan), out,
                                 scale if in_range else 1.0, self.threads)
        y = unblock_output(out, plan)
        if not in_range:  # 2**(ex+ew) is no normal float32: scale in float64 after the kernel, exactly
            y = (y.astype(np.float64) * scale).astype(np.float32)
            maxabs = float(np.float32(maxabs * scale))
        return y, maxabs

    def fprop(self, x, w) -> np.ndarray:
        """Forward pass: float32 NCHW output."""
        return self.fprop_maxabs(x, w)[0]
