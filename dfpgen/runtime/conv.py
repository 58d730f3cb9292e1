"""The user-facing runtime entry points: `compile` one kernel, and the `Conv2d` operator."""

from __future__ import annotations

import time
import weakref

import numpy as np

from dfpgen.codegen import kernel as kernel_mod
from dfpgen.config import settings
from dfpgen.codegen.cost import default_blocking
from dfpgen.core.dfp import DFPTensor, quantize
from dfpgen.errors import NumericsError, ShapeError, TargetError
from dfpgen.codegen.kernel import Kernel, default_threads
from dfpgen.codegen.layout import TRANSFORMS, aligned_empty
from dfpgen.codegen.plan import Blocking, make_plan
from dfpgen.core.spec import ConvSpec, Numerics
from dfpgen.core.target import get_isa, resolve

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
            cpu: str | None = None, blocking: Blocking | None = None, precision: str | None = None,
            threads: int | None = None, use_db: bool = True) -> Kernel:
    """Plan and emit one kernel. `cpu` names a CPU to cross-emit for (inspect .ir/.asm; not runnable).

    `precision` defaults to that of `isa`, else dfp16. Without a blocking, the tuning database's best
    for this kernel at `threads` (default: all cores) is used when there is one, else the cost
    model's default; `Kernel.source` says which. A grouped layer's kernel computes one group
    (`spec.per_group()`); Conv2d runs it once per group.
    """
    numerics = numerics or Numerics()
    spec = spec.per_group()
    target = resolve(cpu)
    precision = precision or (get_isa(isa).precision if isa else "dfp16")
    isa = choose_isa(target, precision, isa)
    source = "given"
    if blocking is None and use_db and target.is_host:
        from dfpgen.tuning.tune import lookup

        blocking, source = lookup(spec, pass_name, numerics, isa, threads or default_threads(), target)
    if blocking is None:
        blocking, source = default_blocking(spec, numerics, target, isa, pass_name), "default"
    kernel = kernel_mod.build(make_plan(spec, numerics, blocking, target, isa, pass_name))
    kernel.source = source
    return kernel


# For each pass: (src operand, vec operand, result) names, and which operand bits/rounding apply.
PASS_OPERANDS = {
    "fprop": (("x", "act"), ("w", "weight"), "y"),
    "bprop": (("dy", "grad"), ("w", "weight"), "dx"),
    "wtgrad": (("x", "act"), ("dy", "grad"), "dw"),
}

# For each pass: the channel axis that groups split in (src, vec, result): x, dy and y/dx on their
# channel axis 1, w and dw on their output-channel axis 0.
GROUP_AXES = {"fprop": (1, 0, 1), "bprop": (1, 0, 1), "wtgrad": (1, 1, 0)}


def group_slice(a: np.ndarray, axis: int, group: int, groups: int) -> np.ndarray:
    """The channels of one group along `axis` (a view)."""
    if groups == 1:
        return a
    size = a.shape[axis] // groups
    index = [slice(None)] * a.ndim
    index[axis] = slice(group * size, (group + 1) * size)
    return a[tuple(index)]


class Conv2d:
    """A convolution layer run through generated kernels in all three training passes.

    `fprop(x, w)`, `bprop(dy, w)` and `wtgrad(x, dy)` take float32 NCHW activations and gradients and
    KCRS weights, quantized with the op's numerics, or DFPTensors, used as they are (quantize a tensor
    once and pass the DFPTensor to every pass that reads it). `bits` applies to activations,
    `bits_w` (default: bits) to weights, `bits_grad` (default: bits) to gradients; `grad_rounding`
    (default: rounding; "stochastic" is a common choice) to quantizing gradients.
    The fprop kernel is compiled at construction (unless eager=False), the others on first use; a DFPTensor passed again (e.g. the weights of
    every micro-batch) is converted to the pass's layout only once. A grouped layer (spec.groups > 1,
    depthwise included) runs one generated per-group kernel once per group on that group's channel
    slices: the tensors keep one shared exponent, so the result is exactly that of one convolution.
    """

    def __init__(self, spec: ConvSpec, bits: int = 16, rounding: str = "nearest", overflow: str = "exact",
                 chain: int | None = None, isa: str | None = None, threads: int | None = None,
                 blocking: Blocking | dict | None = None, bits_w: int | None = None, precision: str = "dfp16",
                 seed=None, bits_grad: int | None = None, grad_rounding: str | None = None, eager: bool = True):
        self.spec = spec
        self.precision = precision
        self.bits = {"act": bits, "weight": bits if bits_w is None else bits_w,
                     "grad": bits if bits_grad is None else bits_grad}
        self.rounding = {"act": rounding, "weight": rounding, "grad": grad_rounding or rounding}
        self.overflow, self.chain, self.isa = overflow, chain, isa
        self.numerics = self.pass_numerics("fprop")
        self.threads = threads or default_threads()
        self.rng = np.random.default_rng(seed)
        self._blocking = blocking if isinstance(blocking, dict) else {"fprop": blocking}
        self._kernels: dict[str, Kernel] = {}
        self._layouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.timings: dict[str, float] = {}
        for pass_name in PASS_OPERANDS:
            self.pass_numerics(pass_name)  # bad numerics are reported at construction, not at first use
        choose_isa(resolve(None), precision, isa)
        if eager:
            self.kernel("fprop")  # planning errors (e.g. saturate without vpdpwssds) surface here too

    def pass_numerics(self, pass_name: str) -> Numerics:
        """The Numerics of one pass: the bits of its two operands, the policy and chain."""
        (_, src_kind), (_, vec_kind), _ = PASS_OPERANDS[pass_name]
        return Numerics(self.bits[src_kind], self.bits[vec_kind], self.rounding["act"], self.overflow, self.chain)

    def kernel(self, pass_name: str) -> Kernel:
        """The generated kernel of a pass (compiled on first use)."""
        if pass_name not in self._kernels:
            if pass_name not in PASS_OPERANDS:
                from dfpgen.errors import PlanError
                raise PlanError(f"pass={pass_name!r}: must be one of {', '.join(PASS_OPERANDS)}")
            self._kernels[pass_name] = compile(self.spec, pass_name, self.pass_numerics(pass_name), isa=self.isa,
                                               blocking=self._blocking.get(pass_name), precision=self.precision,
                                               threads=self.threads)
        return self._kernels[pass_name]

    @property
    def kernels(self) -> dict:
        """The kernels compiled so far, by pass name."""
        return dict(self._kernels)

    def quantize(self, a, kind: str, name: str) -> DFPTensor:
        """Quantize an operand of kind 'act', 'weight' or 'grad' with the op's bits and rounding."""
        start = time.perf_counter()
        q = quantize(a, self.bits[kind], self.rounding[kind], self.rng, name=name)
        self.timings["quantize"] = self.timings.get("quantize", 0.0) + time.perf_counter() - start
        return q

    def _operand(self, a, kind: str, name: str, shape: tuple):
        if isinstance(a, DFPTensor):
            if self.precision == "dfp16" and a.bits > self.bits[kind]:
                # The kernel's accumulate chain was sized for the op's bits: wider mantissas could wrap.
                raise NumericsError(f"{name}: a {a.bits}-bit DFPTensor, but this op's {kind} operands have "
                                    f"{self.bits[kind]} bits (its INT32 chain is sized for them); quantize "
                                    f"with bits={self.bits[kind]} or build the op with more bits")
            mant, exp = (a.to_float(np.float32), 0) if self.precision == "fp32" else (a.mant, a.exp)
        elif self.precision == "fp32":
            mant = np.asarray(a)
            if mant.dtype.kind != "f":
                from dfpgen.errors import DTypeError
                raise DTypeError(f"{name}: expected a float array, got dtype {mant.dtype}")
            mant, exp = mant.astype(np.float32, copy=False), 0
        else:
            q = self.quantize(a, kind, name)
            mant, exp = q.mant, q.exp
        if tuple(mant.shape) != shape:
            raise ShapeError(f"{name}: expected shape {shape} for layer {self.spec.name or '-'} "
                             f"({self.spec.describe()}), got {tuple(mant.shape)}")
        return mant, exp

    def _blocked(self, operand, pass_name: str, role: tuple, convert):
        """The operand in the pass's layout; converted once per DFPTensor object and pass (DFPTensors are
        treated as immutable), so weights reused across calls are laid out once."""
        if not isinstance(operand, DFPTensor):
            return convert()
        per_tensor = self._layouts.setdefault(operand, {})
        if (pass_name, role) not in per_tensor:
            per_tensor[(pass_name, role)] = convert()
        return per_tensor[(pass_name, role)]

    def _shapes(self) -> dict:
        s = self.spec
        return {"x": (s.N, s.C, s.H, s.W), "w": (s.K, s.Cg, s.R, s.S), "dy": (s.N, s.K, s.P, s.Q)}

    def run(self, pass_name: str, a, b) -> tuple[np.ndarray, float]:
        """Run one pass on its two operands (see PASS_OPERANDS); returns the result and its max|.|.

        Seconds spent per phase accumulate in `self.timings` (quantize, layout, "kernel <pass>", unlayout)."""
        clock = time.perf_counter
        t0 = clock()
        kernel = self.kernel(pass_name)
        (src_name, src_kind), (vec_name, vec_kind), _ = PASS_OPERANDS[pass_name]
        shapes = self._shapes()
        src, e_src = self._operand(a, src_kind, src_name, shapes[src_name])
        vec, e_vec = self._operand(b, vec_kind, vec_name, shapes[vec_name])
        to_src, to_vec, from_dst = TRANSFORMS[pass_name]
        plan, groups = kernel.plan, self.spec.groups
        src_axis, vec_axis, out_axis = GROUP_AXES[pass_name]
        scale = np.ldexp(1.0, e_src + e_vec)
        normal = 2.0**-126 <= scale < 2.0**127
        t1 = clock()
        spent = {"layout": 0.0, f"kernel {pass_name}": 0.0, "unlayout": 0.0}
        parts, maxabs = [], 0.0
        for g in range(groups):
            src_g, vec_g = group_slice(src, src_axis, g, groups), group_slice(vec, vec_axis, g, groups)
            t_start = clock()
            out = aligned_empty(plan.out_shape, np.float32)
            blocked_src = self._blocked(a, pass_name, ("src", g), lambda: to_src(src_g, plan))
            blocked_vec = self._blocked(b, pass_name, ("vec", g), lambda: to_vec(vec_g, plan))
            t_run = clock()
            maxabs = max(maxabs, kernel.run(blocked_src, blocked_vec, out, scale if normal else 1.0, self.threads))
            t_done = clock()
            parts.append(from_dst(out, plan))
            spent["layout"] += t_run - t_start
            spent[f"kernel {pass_name}"] += t_done - t_run
            spent["unlayout"] += clock() - t_done
        t_end = clock()
        result = parts[0] if groups == 1 else np.concatenate(parts, axis=out_axis)
        if not normal:  # 2**(e_src+e_vec) is no normal float32: scale in float64 after the kernel, exactly
            result = (result.astype(np.float64) * scale).astype(np.float32)
            maxabs = float(np.float32(maxabs * scale))
        spent["quantize"] = t1 - t0
        spent["unlayout"] += clock() - t_end
        for phase, seconds in spent.items():
            self.timings[phase] = self.timings.get(phase, 0.0) + seconds
        return result, maxabs

    def fprop_maxabs(self, x, w) -> tuple[np.ndarray, float]:
        """Forward pass; also returns max|y| from the kernel's fused epilogue (no extra pass over y)."""
        return self.run("fprop", x, w)

    def fprop(self, x, w) -> np.ndarray:
        """Forward pass: y, float32 NCHW."""
        return self.run("fprop", x, w)[0]

    def bprop(self, dy, w) -> np.ndarray:
        """Backward data pass: dx = dL/dx, float32 NCHW."""
        return self.run("bprop", dy, w)[0]

    def wtgrad(self, x, dy) -> np.ndarray:
        """Weight-gradient pass: dw = dL/dw, float32 KCRS."""
        return self.run("wtgrad", x, dy)[0]

    def backward(self, x, dy, w) -> tuple[np.ndarray, np.ndarray]:
        """Both backward passes; dy (and x, w when floats) are quantized once and shared."""
        if not isinstance(dy, DFPTensor) and self.precision != "fp32":
            dy = self.quantize(dy, "grad", "dy")
        return self.bprop(dy, w), self.wtgrad(x, dy)
