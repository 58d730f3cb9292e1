"""The user-facing runtime entry points: `compile` one kernel, and the `Conv2d` operator."""

from __future__ import annotations

import time
import weakref

import numpy as np

from dfpgen import passes
from dfpgen.codegen import kernel as kernel_mod
from dfpgen.codegen.kernel import Kernel, default_threads
from dfpgen.codegen.plan import Blocking, ResultLayout
from dfpgen.config import settings
from dfpgen.core.dfp import DFPTensor, quantize
from dfpgen.core.numerics import PRECISIONS, Kind, LayerNumerics, Numerics, layer_numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import get_isa, resolve
from dfpgen.errors import DTypeError, NumericsError, PlanError, ShapeError, TargetError
from dfpgen.passes import Pass
from dfpgen.runtime import emulated, plancache, quire
from dfpgen.runtime.execute import Prepared, block_src, block_vec, output_buffer
from dfpgen.tuning.cost import default_blocking
from dfpgen.tuning.tune import lookup


def choose_isa(target, precision: str = "dfp16", isa: str | None = None, bits: int = 16) -> str:
    """The ISA to use: the caller's, else DFPGEN_ISA (when it fits the precision and operands of `bits` bits),
    else the target's best for them (vpdpbusd for 8 bits and fewer where the CPU has VNNI)."""
    if precision not in PRECISIONS:
        raise TargetError(f"precision={precision!r}: must be one of {', '.join(PRECISIONS)}")
    forced = settings().isa
    if isa is None and forced and get_isa(forced).precision == precision and get_isa(forced).accepts_bits(bits):
        isa = forced
    isa = isa or target.best_isa(precision, bits)
    if get_isa(isa).precision != precision:
        raise TargetError(f"isa={isa!r} computes {get_isa(isa).precision}, not {precision}")
    target.check_isa(isa)
    return isa


def compile(spec: ConvSpec, conv_pass: Pass | str = passes.FPROP, numerics: Numerics | None = None, isa: str | None = None,
            cpu: str | None = None, blocking: Blocking | None = None, precision: str | None = None,
            threads: int | None = None, tuned: bool = False,
            result_layout: ResultLayout = ResultLayout.BLOCKED) -> Kernel:
    """Plan and emit one kernel. `cpu` names a CPU to cross-emit for (inspect .ir/.asm; not runnable).
    `result_layout`: how FPROP and BPROP lay out their result (dfpgen.codegen.plan.ResultLayout).
    SizeError, before any table is built, when its offsets pass 2**31 or its tables and blocked operands
    would not fit in the available memory (dfpgen.codegen.footprint).

    `precision` defaults to that of `isa`, else dfp16. Without a blocking, the cost model's default for
    `threads` (default: all cores; WTGRAD's depends on it, its result never does) is used, or with
    `tuned=True` the tuning database's best for this kernel at `threads` when it has one
    (`dfpgen.tuning.tune.lookup`); `Kernel.source` says which. A grouped layer's kernel computes one group
    (`spec.per_group()`); Conv2d runs it once per group. A kernel built before, by any process, comes
    from the plan cache (`dfpgen.runtime.plancache`).
    """
    conv_pass, numerics = passes.get(conv_pass), numerics or Numerics()
    spec = spec.per_group()
    target = resolve(cpu)
    precision = precision or (get_isa(isa).precision if isa else "dfp16")
    isa = choose_isa(target, precision, isa, max(numerics.bits_x, numerics.bits_w))
    source = "given"
    if blocking is None and tuned and target.is_host:
        blocking, source = lookup(spec, conv_pass, numerics, isa, threads or default_threads(), target)
    conv_pass.check_size(spec, numerics, blocking, target, isa)   # SizeError before any table is built
    # Keyed on the concrete blocking the database returned (or "default" and the thread count), so a re-tune
    # never meets an old entry.
    threads = threads or default_threads()
    cache_key = plancache.key(spec, conv_pass, numerics, blocking, target, isa, threads, result_layout)
    kernel = plancache.load(cache_key)
    if kernel is None:
        chosen = blocking if blocking is not None else default_blocking(spec, numerics, target, isa, conv_pass, threads)
        kernel = kernel_mod.build(conv_pass.plan(spec, numerics, chosen, target, isa, result_layout))
        plancache.store(cache_key, kernel)
    kernel.source = source if blocking is not None else "default"
    return kernel


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
    once and pass the DFPTensor to every pass that reads it). The numerics are one `LayerNumerics`
    (`numerics=`), or its fields given as keywords: `bits` applies to activations, `bits_w`
    (default: bits) to weights, `bits_grad` (default: bits) to gradients; `grad_rounding` (default:
    rounding; "stochastic" is a common choice) to quantizing gradients; `precision="fp32"` runs every
    pass in FP32 kernels, and a pass whose two operand kinds are not both DFP (`LayerNumerics.dfp`)
    runs in FP32 kernels too. Without a `blocking` (one, for FPROP, or a dict by pass), each kernel
    takes the tuning database's best when it has one, else the cost model's default.
    The fprop kernel is compiled at construction (unless eager=False), the others on first use; a DFPTensor passed again (e.g. the weights of
    every micro-batch) is converted to the pass's layout only once. A grouped layer (spec.groups > 1,
    depthwise included) runs one generated per-group kernel once per group on that group's channel
    slices: the tensors keep one shared exponent, so the result is exactly that of one convolution.
    """

    def __init__(self, spec: ConvSpec, bits: int | None = None, rounding: str | None = None,
                 overflow: str | None = None, chain: int | None = None, isa: str | None = None,
                 threads: int | None = None, blocking: Blocking | dict | None = None, bits_w: int | None = None,
                 precision: str | None = None, seed=None, bits_grad: int | None = None,
                 grad_rounding: str | None = None, eager: bool = True, numerics: LayerNumerics | None = None):
        numerics = layer_numerics(numerics, precision=precision, bits=bits, bits_w=bits_w, bits_grad=bits_grad,
                                  rounding=rounding, grad_rounding=grad_rounding, overflow=overflow, chain=chain)
        self.spec, self.numerics = spec, numerics
        self.isa = isa or numerics.isa
        self.threads = _threads(threads)
        self.rng = np.random.default_rng(seed)
        self._blocking = _blockings(blocking)
        self._kernels: dict[Pass, Kernel] = {}
        self._laid_out: dict[tuple, Kernel] = {}   # (pass, result layout) -> a non-blocked result's kernel
        self._layouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.operand_buffers: dict = {}   # (pass, role) -> the blocked runtime's reused operand buffers
        self.move_programs: dict = {}     # the blocked runtime's conversions, by pass, role and layouts
        self.timings: dict[str, float] = {}
        passes.kernel_numerics(numerics)   # a chain too long for some pass's bits is reported now
        for conv_pass in passes.ALL:
            isa = self._isa(conv_pass)   # a wrong ISA for the numerics is reported at construction, not at first use
            # So is a layer too large for this machine: operands, result, tables (SizeError, nothing allocated).
            conv_pass.check_size(spec, self.pass_numerics(conv_pass), self._blocking.get(conv_pass), resolve(None), isa,
                                 run=True)
        if eager:
            self.kernel(passes.FPROP)  # planning errors (e.g. saturate without vpdpwssds) surface here too

    @property
    def precision(self) -> str:
        """'dfp16' or 'fp32': the layer's numerics' precision."""
        return self.numerics.precision

    def _isa(self, conv_pass: Pass) -> str:
        precision, isa = self.numerics.pass_precision(conv_pass), self.isa
        if isa is not None and self.precision == "dfp16" and precision == "fp32" and get_isa(isa).precision == "dfp16":
            isa = None   # a DFP16 ISA names the DFP16 kernels of a layer some of whose passes are FP32
        numerics = self.pass_numerics(conv_pass)
        return choose_isa(resolve(None), precision, isa, max(numerics.bits_x, numerics.bits_w))

    def pass_numerics(self, conv_pass: Pass | str) -> Numerics:
        """The Numerics of one pass's kernel: the bits of its two operands, the policy and chain."""
        return self.numerics.kernel_numerics(passes.get(conv_pass))

    def kernel(self, conv_pass: Pass | str, result_layout: ResultLayout = ResultLayout.BLOCKED) -> Kernel:
        """The generated kernel of a pass (compiled on first use), with the tuned blocking when the
        tuning database has one for it, else the given or the cost model's. Another `result_layout` gives
        the kernel of the same blocking, and so the same operand layouts, writing its result that way."""
        conv_pass = passes.get(conv_pass)
        if result_layout is not ResultLayout.BLOCKED:
            key = (conv_pass, result_layout)
            if key not in self._laid_out:
                plan = self.kernel(conv_pass).plan
                self._laid_out[key] = compile(self.spec, conv_pass, self.pass_numerics(conv_pass), isa=plan.isa.name,
                                              blocking=plan.blocking, threads=self.threads,
                                              result_layout=result_layout)
            return self._laid_out[key]
        if conv_pass not in self._kernels:
            self._kernels[conv_pass] = compile(self.spec, conv_pass, self.pass_numerics(conv_pass),
                                               isa=self._isa(conv_pass), blocking=self._blocking.get(conv_pass),
                                               threads=self.threads, tuned=True)
        return self._kernels[conv_pass]

    @property
    def kernels(self) -> dict:
        """The kernels compiled so far, by pass name."""
        return {p.name: k for p, k in self._kernels.items()}

    def quantize(self, a, kind: str, name: str) -> DFPTensor:
        """Quantize an operand of kind 'act', 'weight' or 'grad' with the op's bits and rounding."""
        start = time.perf_counter()
        n = self.numerics
        q = quantize(a, n.bits_of(kind), n.rounding_of(kind), self.rng, name=name)
        self.timings["quantize"] = self.timings.get("quantize", 0.0) + time.perf_counter() - start
        return q

    def _operand(self, a, conv_pass: Pass, tensor, dfp: bool):
        kind, shape = tensor.kind, tensor.shape(self.spec)
        if isinstance(a, DFPTensor):
            bits = self.numerics.bits_of(kind)
            if dfp and a.bits > bits:
                # The kernel's accumulate chain was sized for the op's bits: wider mantissas could wrap.
                raise NumericsError(f"{tensor.name}: a {a.bits}-bit DFPTensor, but this op's {kind} operands have "
                                    f"{bits} bits (its INT32 chain is sized for them); quantize "
                                    f"with bits={bits} or build the op with more bits")
            mant, exp = (a.mant, a.exp) if dfp else (a.to_float(np.float32), 0)
        elif not dfp:
            mant = np.asarray(a)
            if mant.dtype.kind != "f":
                raise DTypeError(f"{tensor.name}: expected a float array, got dtype {mant.dtype}")
            mant, exp = mant.astype(np.float32, copy=False), 0
        else:
            q = self.quantize(a, kind, tensor.name)
            mant, exp = q.mant, q.exp
        if tuple(mant.shape) != shape:
            raise ShapeError(f"{tensor.name}: expected shape {shape} for layer {self.spec.name or '-'} "
                             f"({self.spec.describe()}), got {tuple(mant.shape)}")
        if not isinstance(a, DFPTensor) and self.numerics.format_of(kind) is not None:
            # An emulated format (dfpgen.runtime.emulated): the FP32 kernel reads the values rounded to it,
            # for MX blocked along this pass's reduction axis.
            mant = emulated.operand_values(self.numerics, conv_pass, tensor, mant)
        return mant, exp

    def _blocked(self, operand, conv_pass: Pass, role: tuple, convert):
        """The operand in the pass's layout; converted once per DFPTensor object and pass (DFPTensors are
        treated as immutable), so weights reused across calls are laid out once."""
        if not isinstance(operand, DFPTensor):
            return convert()
        per_tensor = self._layouts.setdefault(operand, {})
        if (conv_pass, role) not in per_tensor:
            per_tensor[(conv_pass, role)] = convert()
        return per_tensor[(conv_pass, role)]

    def run(self, conv_pass: Pass | str, a, b) -> tuple[np.ndarray, float]:
        """Run one pass on its two operands (the pass's src and vec: x, w for fprop; dy, w for bprop;
        x, dy for wtgrad); returns the result and its max|.|.

        Seconds spent per phase accumulate in `self.timings` (quantize, layout, "kernel <pass>", unlayout)."""
        clock = time.perf_counter
        t0 = clock()
        conv_pass = passes.get(conv_pass)
        fmt = emulated.result_format(self.numerics, conv_pass)
        if fmt is not None:   # a posit's quire: the exact result, rounded once
            return self._run_quire(conv_pass, fmt, a, b)
        kernel = self.kernel(conv_pass)
        dfp = kernel.plan.int_accumulate
        src, e_src = self._operand(a, conv_pass, conv_pass.src, dfp)
        vec, e_vec = self._operand(b, conv_pass, conv_pass.vec, dfp)
        groups = self.spec.groups
        scale = np.ldexp(1.0, e_src + e_vec)
        normal = 2.0**-126 <= scale < 2.0**127
        t1 = clock()
        spent = {"layout": 0.0, f"kernel {conv_pass.name}": 0.0, "unlayout": 0.0}
        parts, maxabs = [], 0.0
        for g in range(groups):
            src_g = group_slice(src, conv_pass.src.group_axis, g, groups)
            vec_g = group_slice(vec, conv_pass.vec.group_axis, g, groups)
            t_start = clock()
            ready = Prepared(kernel, self._blocked(a, conv_pass, ("src", g), lambda: block_src(kernel, src_g)),
                             self._blocked(b, conv_pass, ("vec", g), lambda: block_vec(kernel, vec_g)),
                             output_buffer(kernel))
            t_run = clock()
            maxabs = max(maxabs, ready.run(scale if normal else 1.0, self.threads))
            t_done = clock()
            parts.append(ready.result())
            spent["layout"] += t_run - t_start
            spent[f"kernel {conv_pass.name}"] += t_done - t_run
            spent["unlayout"] += clock() - t_done
        t_end = clock()
        result = parts[0] if groups == 1 else np.concatenate(parts, axis=conv_pass.result.group_axis)
        if not normal:  # 2**(e_src+e_vec) is no normal float32: scale in float64 after the kernel, exactly
            result = (result.astype(np.float64) * scale).astype(np.float32)
            maxabs = float(np.float32(maxabs * scale))
        spent["quantize"] = t1 - t0
        spent["unlayout"] += clock() - t_end
        for phase, seconds in spent.items():
            self.timings[phase] = self.timings.get(phase, 0.0) + seconds
        return result, maxabs

    def _run_quire(self, conv_pass: Pass, fmt, a, b) -> tuple[np.ndarray, float]:
        """run() of a pass that accumulates in `fmt`'s quire (dfpgen.runtime.quire): on the values an FP32
        kernel would read, the exact result rounded once. A format operand forces FP32 kernels, so no DFP
        mantissas reach here."""
        start = time.perf_counter()
        src, _ = self._operand(a, conv_pass, conv_pass.src, False)
        vec, _ = self._operand(b, conv_pass, conv_pass.vec, False)
        rounded = time.perf_counter()
        result = quire.run(conv_pass, self.spec, src, vec, fmt)
        self.timings["quantize"] = self.timings.get("quantize", 0.0) + rounded - start
        phase = f"kernel {conv_pass.name}"
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - rounded
        return result, float(np.max(np.abs(result))) if result.size else 0.0

    def fprop_maxabs(self, x, w) -> tuple[np.ndarray, float]:
        """Forward pass; also returns max|y| from the kernel's fused epilogue (no extra pass over y)."""
        return self.run(passes.FPROP, x, w)

    def fprop(self, x, w) -> np.ndarray:
        """Forward pass: y, float32 NCHW."""
        return self.run(passes.FPROP, x, w)[0]

    def bprop(self, dy, w) -> np.ndarray:
        """Backward data pass: dx = dL/dx, float32 NCHW."""
        return self.run(passes.BPROP, dy, w)[0]

    def wtgrad(self, x, dy) -> np.ndarray:
        """Weight-gradient pass: dw = dL/dw, float32 KCRS."""
        return self.run(passes.WTGRAD, x, dy)[0]

    def backward(self, x, dy, w) -> tuple[np.ndarray, np.ndarray]:
        """Both backward passes; dy (and x, w when floats) are quantized once and shared."""
        if not isinstance(dy, DFPTensor) and self.numerics.is_dfp(Kind.GRAD):
            dy = self.quantize(dy, Kind.GRAD, "dy")
        return self.bprop(dy, w), self.wtgrad(x, dy)


def _threads(threads) -> int:
    """The thread count: the caller's (a positive integer), else default_threads()."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise TargetError(f"threads={threads!r}: must be an integer >= 1 (or None: every core)")
    return int(threads)


def _blockings(blocking) -> dict:
    """Blockings by pass: one Blocking is FPROP's; a dict maps passes or their names to Blockings."""
    if blocking is None:
        return {}
    if isinstance(blocking, Blocking):
        return {passes.FPROP: blocking}
    if isinstance(blocking, dict):
        chosen = {passes.get(p): b for p, b in blocking.items()}
        for p, b in chosen.items():
            if b is not None and not isinstance(b, Blocking):
                raise PlanError(f"blocking[{p.name!r}]={b!r}: must be a dfpgen.Blocking or None")
        return chosen
    raise PlanError(f"blocking={blocking!r}: must be a dfpgen.Blocking, a dict of them by pass, or None")
