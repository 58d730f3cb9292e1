"""PyTorch front end: drop-in nn.Conv2d / nn.Linear layers whose three training passes run in dfpgen's
DFP16 kernels, and `convert`, which swaps them into an existing model.

Only this module, dfpgen.frontends.torch_zoo and dfpgen.frontends.distributed import torch (an optional
extra: pip install 'dfpgen[torch]').
Master weights, biases, the optimizer and every other layer stay FP32 in torch, as in Das et al.

A layer's passes run through dfpgen.runtime.blocked_conv.run_blocked on zero-copy numpy views of the
torch tensors: the generated, threaded data-movement kernels quantize x, w and dy straight into each
pass's operand layout, and FPROP's and BPROP's results come back as tensors of the input's memory
format. A channels-last model (`model.to(memory_format=torch.channels_last)`) is the fast one: its
tensors move in 16-channel runs, where NCHW needs gathers, and the kernels write FPROP's and BPROP's
results into its tensors in place (when the channels are whole 16-lane blocks). Grouped layers and layers
with FP32 kinds keep the Conv2d.run path (numpy quantization).

Importing dfpgen.torch before torch sets OMP_WAIT_POLICY=PASSIVE (unless set), so torch's idle OpenMP
threads sleep instead of spinning on the cores the DFP kernels run on; imported after torch, a
multi-threaded layer warns once.
"""

from __future__ import annotations

import copy
import sys
import textwrap
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np

from dfpgen.config import openmp_wait_policy, prefer_passive_openmp

# After each parallel region PyTorch's OpenMP threads spin, waiting for the next one, on the cores that
# dfpgen's kernel threads need: a converted model ran 1.35x slower on 2 cores (docs/experiments.md §9).
# The policy is read once, when torch loads its OpenMP runtime, so it is set here unless torch came first.
_TORCH_SPINS = "torch" in sys.modules and openmp_wait_policy() is None
if "torch" not in sys.modules:
    prefer_passive_openmp()

import torch  # noqa: E402  # isort: skip
from torch import nn
from torch.autograd.function import once_differentiable

from dfpgen import passes
from dfpgen.codegen.plan import Blocking, common
from dfpgen.core.dfp import DFPTensor, _check_float_array, quantize
from dfpgen.core.numerics import KINDS, LayerNumerics, layer_numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.stochastic import StreamKey
from dfpgen.core.target import resolve
from dfpgen.errors import DTypeError, NonFiniteError, NumericsError, ShapeError, SpecError, TargetError
from dfpgen.runtime import pool
from dfpgen.runtime.blocked import Measured, memory_axes
from dfpgen.runtime.blocked_conv import run_blocked
from dfpgen.runtime.conv import Conv2d, _threads, choose_isa
from dfpgen.training.precision import PrecisionSchedule, PrecisionState, Switch

_spin_warned = False

__all__ = ["ConversionReport", "DFPConv2d", "DFPLinear", "PrecisionHook", "convert", "conv_support", "gradients",
           "set_numerics"]

# Compiled ops shared by every layer of the process: a kernel depends only on the shape and the numerics,
# so ResNet-50's many identical blocks compile each kernel once. The spec carries no layer name because the
# name is part of the emitted IR, so naming it would defeat the kernel cache.
_OPS: dict[tuple, Conv2d] = {}


def _pair(value, option: str) -> tuple[int, int]:
    """(h, w) from an int or a pair of ints; raises SpecError naming `option` otherwise."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise SpecError(f"{option}={value!r}: expected an int or a pair of ints")
    return pair


def conv_support(kernel_size, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros") -> dict:
    """The ConvSpec geometry (R, S, strides, dilations, pads, groups) of an nn.Conv2d's arguments; raises
    SpecError naming the first option DFP layers cannot take."""
    R, S = _pair(kernel_size, "kernel_size")
    (sh, sw), (dh, dw) = _pair(stride, "stride"), _pair(dilation, "dilation")
    for option, values in (("kernel_size", (R, S)), ("stride", (sh, sw)), ("dilation", (dh, dw))):
        if min(values) < 1:
            raise SpecError(f"{option}={values}: must be >= 1")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise SpecError(f"groups={groups!r}: expected a positive int")
    if padding_mode != "zeros":
        raise SpecError(f"padding_mode={padding_mode!r}: DFP convolutions support padding_mode='zeros' only")
    if padding == "valid":
        pads = (0, 0, 0, 0)
    elif padding == "same":
        if (sh, sw) != (1, 1):
            raise SpecError(f"padding='same' with stride={stride!r}: 'same' needs stride 1")
        # As torch: the total padding d*(k-1) split with the odd pixel at the bottom/right.
        th, tw = dh * (R - 1), dw * (S - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    elif isinstance(padding, str):
        raise SpecError(f"padding={padding!r}: must be an int, a pair of ints, 'valid' or 'same'")
    else:
        ph, pw = _pair(padding, "padding")
        if min(ph, pw) < 0:
            raise SpecError(f"padding={padding!r}: must be >= 0")
        pads = (ph, ph, pw, pw)
    return dict(R=R, S=S, stride=sh, stride_w=sw, dilation=dh, dilation_w=dw, groups=groups, pad=pads[0],
                pad_bottom=pads[1], pad_w=pads[2], pad_right=pads[3])


def _check_tensor(t: torch.Tensor, what: str, layer: str, channels_last: bool = False) -> np.ndarray:
    """The tensor's data as a float32 numpy array: a view of a contiguous tensor, or with `channels_last` of a
    channels-last one too (its strides kept), else a C-contiguous copy."""
    if t.device.type != "cpu":
        raise TargetError(f"{layer}: {what} is on device {t.device}; DFP layers run on the CPU: move the model "
                          f"and data there (.cpu())")
    if t.dtype != torch.float32:
        raise DTypeError(f"{layer}: {what} has dtype {t.dtype}; DFP layers take torch.float32 only")
    t = t.detach()
    if channels_last and _is_channels_last(t):
        return t.numpy()
    return t.contiguous().numpy()


def _is_channels_last(t: torch.Tensor) -> bool:
    """Whether a 4-D tensor is laid out NHWC (and not also NCHW: then either view is the same memory)."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


class _DFPLayer:
    """The numerics, quantization and op cache that DFPConv2d and DFPLinear share (a mixin over nn.Module)."""

    def _setup(self, geometry: dict, numerics: LayerNumerics, threads, seed) -> None:
        self.numerics = numerics
        self.geometry, self.threads = geometry, _check_options(numerics, threads)
        self.rng = np.random.default_rng(seed)  # only stochastic rounding draws from it
        self.dfp_name = type(self).__name__     # convert() sets the qualified module name, for messages
        self._ops: dict[tuple, Conv2d] = {}

    def _quantize(self, a: np.ndarray, kind: str, what: str) -> DFPTensor | np.ndarray:
        n = self.numerics
        if not n.is_dfp(kind):
            return a   # an FP32 kind of a mixed layer: its passes run in FP32 kernels
        return quantize(a, n.bits_of(kind), n.rounding_of(kind), self.rng, name=f"{self.dfp_name} {what}")

    def _key(self) -> StreamKey:
        """The stochastic-rounding stream of one tensor, drawn from the layer's generator (so a seed repeats
        it); one key per tensor, shared by the passes that read it, as dfpgen.nn.Conv draws them."""
        return StreamKey.drawn(self.rng)

    def op(self, x_shape: tuple) -> Conv2d:
        """The Conv2d that runs this layer on (N, C, H, W) inputs (a Linear's are (1, C, 1, batch)); each
        pass's kernel is compiled on its first use."""
        if x_shape not in self._ops:
            N, C, H, W = x_shape
            spec = ConvSpec(N=N, C=C, K=self._out_channels(), H=H, W=W, **self.geometry)
            key = (spec.shape_key(), self.numerics, self.threads)
            if key not in _OPS:
                _OPS[key] = Conv2d(spec, numerics=self.numerics, threads=self.threads, eager=False)
            self._ops[x_shape] = _OPS[key]
        return self._ops[x_shape]

    @property
    def ops(self) -> tuple[Conv2d, ...]:
        """The Conv2d ops this layer has run, one per input shape; layers of the same shape and numerics share
        them, and with them their `timings` (where the time went, summed over those layers)."""
        return tuple(self._ops.values())

    def __getstate__(self):
        # Compiled kernels are ctypes objects: copies and pickles (deepcopy, torch.save) recompile on use.
        state = dict(self.__dict__)
        state["_ops"] = {}
        return state


class _DFPConvFunction(torch.autograd.Function):
    """y = conv(x, w) in DFP16; x, w and dy are each quantized with one exponent and one stochastic-rounding
    key shared by every pass that reads them, so all three passes see the same operands."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, layer: _DFPLayer) -> torch.Tensor:
        xn = _check_tensor(x, "input", layer.dfp_name, channels_last=True)
        op = layer.op(tuple(xn.shape))
        ctx.blocked = _runs_blocked(op)
        # Generated conversions read any dense layout in place; the numpy path takes C-contiguous arrays.
        wn = _check_tensor(weight, "weight", layer.dfp_name, channels_last=ctx.blocked)
        if not ctx.blocked:
            return _conv2d_forward(ctx, np.ascontiguousarray(xn), wn, op, layer)
        # The weights are quantized from the Parameter on every call, never cached: a write through .data
        # (p.data.add_(...), weight.data[...] = v) changes neither _version nor data_ptr, so no cheap key
        # could tell that they changed.
        xm, wm = _measured(xn, x, layer, "input"), _measured(wn, weight, layer, "weight")
        keys = (layer._key(), layer._key())
        y = _result_tensor(op, passes.FPROP, _is_channels_last(x))
        _run(op, passes.FPROP, xm, wm, keys, layer, ("input", "weight"), out=y.numpy())
        _remember(layer, "input", xm)
        _remember(layer, "weight", wm)
        # Backward reads x and w again where they are views of the tensors (not copies): autograd keeps
        # those, so an in-place change before backward fails there, as for nn.Conv2d, instead of quantizing
        # other values.
        need_x, need_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(x if need_w and _shares(xn, x) else None, weight if need_x and _shares(wn, weight)
                              else None)
        ctx.dfp = (op, layer, xm if need_w else None, wm if need_x else None, keys)
        ctx.weight_layout = (tuple(weight.shape), torch.channels_last if _is_channels_last(weight) else
                             torch.contiguous_format)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        need_x, need_w = ctx.needs_input_grad[:2]
        if not (need_x or need_w):
            del ctx.dfp
            return None, None, None
        if not ctx.blocked:
            return _conv2d_backward(ctx, dy)
        ctx.saved_tensors   # noqa: B018 -- raises if x or w changed in place since forward
        op, layer, xm, wm, (key_x, key_w) = ctx.dfp
        del ctx.dfp
        dym = _measured(_check_tensor(dy, "output gradient", layer.dfp_name, channels_last=True), dy, layer,
                        "output gradient")
        key_dy = layer._key()
        dx = None
        if need_x:
            dx = _result_tensor(op, passes.BPROP, _is_channels_last(dy))
            _run(op, passes.BPROP, dym, wm, (key_dy, key_w), layer, ("output gradient", "weight"), out=dx.numpy())
        dw = None
        if need_w:   # in the weight's memory format, which autograd would otherwise copy it into
            shape, memory_format = ctx.weight_layout
            dw = _empty_tensor(shape, memory_format == torch.channels_last)
            _run(op, passes.WTGRAD, xm, dym, (key_x, key_dy), layer, ("input", "output gradient"), out=dw.numpy())
        _remember(layer, "output gradient", dym)
        return dx, dw, None


def _runs_blocked(op: Conv2d) -> bool:
    """Whether a layer's passes run through run_blocked: ungrouped (it refuses groups) and every kind DFP.
    The others keep Conv2d.run, where a DFP operand of an FP32-kernel pass enters as its quantized values
    and NaN passes through FP32 passes."""
    return op.spec.groups == 1 and all(op.numerics.is_dfp(kind) for kind in KINDS)


def _run(op: Conv2d, conv_pass, a: Measured, b: Measured, keys: tuple, layer: _DFPLayer, names: tuple,
         out: np.ndarray | None = None):
    """run_blocked, one call per op at a time: layers of one shape share the op and its operand buffers,
    which two threads (say two models trained side by side) must not fill at once. NaN/Inf in an operand whose
    max|.| was a guess is found by the conversion; it is reported as for a measured one, naming the tensor."""
    if op.threads > 1 and _TORCH_SPINS:
        _warn_spinning(op.threads)
    try:
        with op.__dict__.setdefault("_torch_lock", threading.Lock()):
            return run_blocked(op, conv_pass, a, b, keys, out)
    except NonFiniteError:
        for operand, what in zip((a, b), names):
            _check_float_array(operand.data, f"{layer.dfp_name} {what}")
        raise


def _warn_spinning(threads: int) -> None:
    """Say once that torch's busy-waiting OpenMP threads slow the DFP layers, and how to stop them."""
    global _spin_warned
    if not _spin_warned:
        _spin_warned = True
        warnings.warn(f"dfpgen.torch: torch was imported first with OMP_WAIT_POLICY unset, so its idle OpenMP "
                      f"threads spin on the cores the DFP layers' {threads} threads need; set "
                      f"OMP_WAIT_POLICY=PASSIVE in the environment, or import dfpgen.torch before torch",
                      RuntimeWarning, stacklevel=5)


def _shares(a: np.ndarray, t: torch.Tensor) -> bool:
    """Whether numpy array `a` is a view of tensor t's memory (not a contiguous copy of it)."""
    return a.ctypes.data == t.data_ptr()


def _measured(a: np.ndarray, t: torch.Tensor, layer: _DFPLayer, what: str) -> Measured:
    """a (a view or copy of tensor t) with its max|.| (the quantization's exponent, shared by every pass that
    reads it): guessed from the layer's last step (`_remember`; the conversion measures the moved values and
    redoes the work if the guess's exponent was not theirs), else measured now in one pass over t on torch's
    threads; NaN/Inf raise NonFiniteError worded as dfpgen.quantize words it."""
    if not a.size:
        return Measured(a, 0.0)
    guess = _hints(layer).get((what, a.shape))
    if guess is not None:
        return Measured(a, guess, hint=True)
    # In memory order: torch reduces a channels-last tensor viewed as NCHW 20x slower than the same memory as NHWC.
    low, high = torch.aminmax(t.detach().permute(*memory_axes(a)))
    operand = Measured(a, max(float(high), -float(low)))
    if not np.isfinite(operand.max_abs()):
        _check_float_array(a, f"{layer.dfp_name} {what}")
    return operand


def _hints(layer: _DFPLayer) -> dict:
    """max|.| of the tensors the layer quantized last, by (what, shape): the next step's guesses."""
    return layer.__dict__.setdefault("_max_hints", {})


def _remember(layer: _DFPLayer, what: str, operand: Measured) -> None:
    """Keep an operand's measured max|.| (a conversion has checked any guess) as the layer's next guess."""
    if operand.data.size and not operand.hint and operand.maxabs is not None:
        _hints(layer)[(what, operand.data.shape)] = operand.maxabs


def _result_tensor(op: Conv2d, conv_pass, channels_last: bool) -> torch.Tensor:
    """An empty tensor for a pass's result, for run_blocked to write: channels-last when the pass's input was
    (as nn.Conv2d keeps the memory format; the kernels then write it in place), else NCHW."""
    return _empty_tensor(conv_pass.result.shape(op.spec), channels_last)


def _empty_tensor(shape: tuple, channels_last: bool) -> torch.Tensor:
    """An uninitialized float32 tensor of an NCHW (or KCRS) shape, NCHW or channels-last in memory, over memory
    reused from earlier steps' results once autograd let them go (dfpgen/runtime/pool.py): a new result every
    step otherwise costs a page fault every 4 KiB."""
    if not channels_last:
        return torch.from_numpy(pool.empty(shape, np.float32))
    N, C, H, W = shape
    return torch.from_numpy(pool.empty((N, H, W, C), np.float32)).permute(0, 3, 1, 2)


def _conv2d_forward(ctx, xn: np.ndarray, wn: np.ndarray, op: Conv2d, layer: _DFPLayer) -> torch.Tensor:
    """FPROP through Conv2d.run on DFPTensors (numpy quantization), for layers run_blocked does not take."""
    xq = layer._quantize(xn, "act", "input")
    wq = layer._quantize(wn, "weight", "weight")
    # The input mantissas are only needed for wtgrad: int16 is half the memory autograd would keep.
    ctx.dfp = (op, xq if ctx.needs_input_grad[1] else None, wq, layer)
    return torch.from_numpy(np.ascontiguousarray(op.fprop(xq, wq)))


def _conv2d_backward(ctx, dy: torch.Tensor) -> tuple:
    """BPROP and WTGRAD through Conv2d.run, dy quantized once for both."""
    op, xq, wq, layer = ctx.dfp
    del ctx.dfp
    need_x, need_w = ctx.needs_input_grad[:2]
    dyq = layer._quantize(_check_tensor(dy, "output gradient", layer.dfp_name), "grad", "output gradient")
    dx = torch.from_numpy(np.ascontiguousarray(op.bprop(dyq, wq))) if need_x else None
    dw = torch.from_numpy(np.ascontiguousarray(op.wtgrad(xq, dyq))) if need_w else None
    return dx, dw, None


class DFPConv2d(_DFPLayer, nn.Conv2d):
    """nn.Conv2d whose forward, input-gradient and weight-gradient passes run in DFP16 kernels.

    Takes nn.Conv2d's arguments (zero padding only; grouped layers run one generated kernel per group)
    plus the numerics, as one `numerics=LayerNumerics(...)` or as its fields: `bits` (activations;
    default LayerNumerics's, 14),
    `bits_w`, `bits_grad` (default: bits), `rounding`, `grad_rounding` (default: rounding), `overflow`,
    `isa`; and `threads` and `seed` (stochastic rounding). The bias is added in FP32 by torch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 bits: int | None = None, bits_w: int | None = None, bits_grad: int | None = None,
                 rounding: str | None = None, grad_rounding: str | None = None, overflow: str | None = None,
                 isa: str | None = None, threads: int | None = None, seed=None, numerics: LayerNumerics | None = None):
        numerics = layer_numerics(numerics, bits=bits, bits_w=bits_w, bits_grad=bits_grad, rounding=rounding,
                                  grad_rounding=grad_rounding, overflow=overflow, isa=isa)
        geometry = conv_support(kernel_size, stride, padding, dilation, groups, padding_mode)
        _check_factory(device, dtype)
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                           padding_mode, device, dtype)
        self._setup(geometry, numerics, threads, seed)

    def _out_channels(self) -> int:
        return self.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """conv(x, weight) + bias; x is (N, C, H, W) or (C, H, W), float32 on the CPU."""
        if x.dim() == 3:
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"{self.dfp_name}: input shape {tuple(x.shape)}: expected (N, {self.in_channels}, H, W)")
        y = _DFPConvFunction.apply(x, self.weight, self)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.numerics.arguments()}"


class DFPLinear(_DFPLayer, nn.Linear):
    """nn.Linear run as a DFP16 1x1 convolution whose pixels are the batch: x (N, C) -> (1, C, 1, N).

    Takes nn.Linear's arguments plus the same numerics keywords as DFPConv2d; the bias is added by torch.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None, *,
                 bits: int | None = None, bits_w: int | None = None, bits_grad: int | None = None,
                 rounding: str | None = None, grad_rounding: str | None = None, overflow: str | None = None,
                 isa: str | None = None, threads: int | None = None, seed=None, numerics: LayerNumerics | None = None):
        numerics = layer_numerics(numerics, bits=bits, bits_w=bits_w, bits_grad=bits_grad, rounding=rounding,
                                  grad_rounding=grad_rounding, overflow=overflow, isa=isa)
        _check_factory(device, dtype)
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        self._setup(conv_support(1), numerics, threads, seed)

    def _out_channels(self) -> int:
        return self.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x @ weight.T + bias over x's last axis (any leading axes, as nn.Linear)."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"{self.dfp_name}: input shape {tuple(x.shape)}: expected (..., {self.in_features})")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        # The transposes are torch ops, so autograd transposes dy and dx back for us.
        x4 = x2.t().reshape(1, self.in_features, 1, x2.shape[0])
        y4 = _DFPConvFunction.apply(x4, self.weight.view(self.out_features, self.in_features, 1, 1), self)
        y = y4.reshape(self.out_features, x2.shape[0]).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.numerics.arguments()}"


def _check_options(numerics: LayerNumerics, threads) -> int | None:
    """The threads (None: all cores) once checked as Conv2d checks them; raises now, not at the first batch,
    for numerics no pass can run, a DFP ISA this host lacks, or one the overflow policy cannot use."""
    threads = None if threads is None else _threads(threads)
    kernels = passes.kernel_numerics(numerics)
    if numerics.precision == "dfp16":
        target = resolve(None)
        # The planner's own ISA checks (saturate needs vpdpwssds), which Conv2d meets when it compiles eagerly;
        # they read no shape, so a 1x1 layer stands in for the shapes the first batch brings. Each pass's ISA
        # follows its operands' bits (8 and fewer: vpdpbusd where the CPU has VNNI).
        for kernel_numerics in kernels.values():
            isa = choose_isa(target, "dfp16", numerics.isa, max(kernel_numerics.bits_x, kernel_numerics.bits_w))
            common(kernel_numerics, Blocking(), target, isa, ConvSpec(1, 1, 1, 1, 1, 1, 1))
    return threads


def _check_factory(device, dtype) -> None:
    if dtype is not None and dtype != torch.float32:
        raise DTypeError(f"dtype={dtype}: DFP layers keep float32 master weights only")
    # meta is allowed: convert() builds on it, then hands the layer the original Parameters.
    if device is not None and torch.device(device).type not in ("cpu", "meta"):
        raise TargetError(f"device={device!r}: DFP layers run on the CPU only")


# ---------------------------------------------------------------------------------------------- convert


@dataclass
class ConversionReport:
    """What `convert` swapped to DFP16 and what it left in FP32 (with the reason)."""

    converted: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    numerics: str = ""
    model: nn.Module | None = field(default=None, repr=False)  # the converted model (a copy unless inplace)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} layer(s) to DFP16 ({self.numerics})"
                 + (":" if self.converted else "")]
        if self.converted:
            lines += textwrap.wrap(", ".join(self.converted), 100, initial_indent="  ", subsequent_indent="  ")
        lines.append(f"kept {len(self.kept)} layer(s) in FP32" + (":" if self.kept else ""))
        lines += [f"  {name}: {reason}" for name, reason in self.kept]
        return "\n".join(lines)


def _why_not(module: nn.Module) -> str | None:
    """Why a Conv2d / Linear cannot become a DFP layer, or None when it can."""
    if isinstance(module, nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
        return "lazy layer with no shape yet: run one forward pass before convert()"
    if type(module) not in (nn.Conv2d, nn.Linear):
        # A subclass may override forward (weight standardization, parametrizations, lazy shapes): swapping
        # it would silently change the model.
        return f"{type(module).__name__} subclasses {'nn.Conv2d' if isinstance(module, nn.Conv2d) else 'nn.Linear'}" \
               f" and may compute something else"
    for name, p in module.named_parameters(recurse=False):
        if p.dtype != torch.float32 or p.device.type != "cpu":
            return f"{name} is {p.dtype} on {p.device}; DFP layers take float32 CPU parameters"
    if isinstance(module, nn.Conv2d):
        try:
            conv_support(module.kernel_size, module.stride, module.padding, module.dilation, module.groups,
                         module.padding_mode)
        except SpecError as exc:
            return str(exc)
    return None


def _dfp_twin(module: nn.Module, options: dict) -> nn.Module:
    """The DFP layer for `module`, sharing its Parameter objects (built on the meta device: no new weights)."""
    if isinstance(module, nn.Conv2d):
        m = module
        new = DFPConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                        m.bias is not None, m.padding_mode, device="meta", **options)
    else:
        new = DFPLinear(module.in_features, module.out_features, module.bias is not None, device="meta", **options)
    new.weight = module.weight
    if module.bias is not None:
        new.bias = module.bias
    new.train(module.training)
    return new


def convert(model: nn.Module, bits: int | None = None, rounding: str | None = None, grad_rounding: str | None = None,
            bits_w: int | None = None, bits_grad: int | None = None, overflow: str | None = None,
            isa: str | None = None, threads: int | None = None, seed=None, inplace: bool = True,
            numerics: LayerNumerics | None = None) -> ConversionReport:
    """Swap every compatible nn.Conv2d / nn.Linear of `model` for a DFP layer sharing its Parameters.

    The numerics are one `numerics=LayerNumerics(...)` or its fields by keyword, as for DFPConv2d.
    Optimizers built before the call and state_dict keys keep working. Incompatible layers (non-zero
    padding modes, subclasses, non-float32) stay FP32 and are listed with the reason; layers
    that already are DFP layers are left as they are and listed in neither.
    `seed` (int or tuple) seeds each layer's stochastic rounding as (seed, layer index). The converted
    model is `report.model`: `model` itself when inplace (unless `model` is itself a Conv2d/Linear), else a copy.
    """
    numerics = layer_numerics(numerics, bits=bits, bits_w=bits_w, bits_grad=bits_grad, rounding=rounding,
                              grad_rounding=grad_rounding, overflow=overflow, isa=isa)
    threads = _check_options(numerics, threads)   # even for a model with no layer to convert
    if not inplace:
        model = copy.deepcopy(model)
    report = ConversionReport(numerics=numerics.describe().removeprefix("dfp16 (").split("; DFP")[0])
    options = dict(numerics=numerics, threads=threads)
    twins: dict[int, nn.Module] = {}  # a module registered under several names stays one shared module

    def swap(module: nn.Module, name: str) -> nn.Module:
        if isinstance(module, _DFPLayer) or not isinstance(module, (nn.Conv2d, nn.Linear)):
            return module
        if id(module) not in twins:
            reason = _why_not(module)
            if reason is not None:
                report.kept.append((name or "(model)", reason))
                twins[id(module)] = module
            else:
                entropy = None if seed is None else [*np.atleast_1d(seed).tolist(), len(report.converted)]
                twins[id(module)] = _dfp_twin(module, dict(options, seed=entropy))
                twins[id(module)].dfp_name = name or "(model)"
                report.converted.append(name or "(model)")
        return twins[id(module)]

    # Module order (pre-order, as named_modules lists them), so the report reads like print(model).
    for name, module in list(model.named_modules(remove_duplicate=False)):
        new = swap(module, name)
        if new is not module and name:
            parent_name, _, child_name = name.rpartition(".")
            model.get_submodule(parent_name)._modules[child_name] = new
    report.model = twins.get(id(model), model)
    return report


# -------------------------------------------------------------------------------- precision schedules


def set_numerics(model: nn.Module, numerics: LayerNumerics) -> int:
    """Switch every DFP layer of `model` to `numerics` (a precision schedule's next rung); returns the layers
    changed. Their ops are rebuilt on next use, from the process's op cache when that shape and numerics ran."""
    if not isinstance(numerics, LayerNumerics):
        raise NumericsError(f"numerics={numerics!r}: must be a dfpgen.LayerNumerics (a schedule's rung)")
    # As at construction: numerics no pass can run, or an ISA this host lacks, fail here (and leave every layer
    # as it was), not at the next batch.
    _check_options(numerics, None)
    layers = [m for m in model.modules() if isinstance(m, _DFPLayer) and m.numerics != numerics]
    for layer in layers:
        layer.numerics = numerics
        layer._ops = {}
    return len(layers)


def gradients(model: nn.Module, weight_decay: float = 0.0) -> dict[str, np.ndarray]:
    """{name: gradient as numpy} of every parameter that has one, what a precision schedule samples: p.grad plus
    weight_decay * p for the convolution and fully connected weights (dim > 1), which dfpgen's runtimes decay,
    as MuPPET's quant_sgd leaves the decayed gradient in p.grad."""
    return {name: (p.grad + weight_decay * p.detach() if weight_decay and p.dim() > 1 else p.grad).detach().numpy()
            for name, p in model.named_parameters() if p.grad is not None}


class PrecisionHook:
    """Runs a precision schedule (dfpgen.training.precision's MuppetSchedule or FixedLadder) over a converted
    model: sets the current rung's numerics, and after each epoch feeds the last step's gradients (with the
    optimizer's `weight_decay` on weights, see gradients()) to the schedule and applies the switch it makes.
    `state` (a PrecisionState) resumes a run where it stood."""

    def __init__(self, model: nn.Module, schedule: PrecisionSchedule, base: LayerNumerics | None = None,
                 state: PrecisionState | None = None, switches: tuple[Switch, ...] = (), weight_decay: float = 0.0):
        self.model, self.schedule, self.weight_decay = model, schedule, weight_decay
        self.base = layer_numerics(base)   # the numerics every DFP rung starts from (rounding, overflow, isa)
        self.state = PrecisionState() if state is None else state
        self.switches = list(switches)
        set_numerics(model, self.numerics)

    @property
    def numerics(self) -> LayerNumerics:
        """The current rung's numerics."""
        return self.schedule.numerics(self.base, self.state)

    @property
    def rung(self):
        """The current rung: bits, or 'fp32'."""
        return self.schedule.rungs[self.state.rung]

    def end_epoch(self, epoch: int) -> Switch | None:
        """After epoch `epoch` (1-based) and before the next zero_grad: let the schedule see every parameter's
        gradient and switch the model's DFP layers if it climbs; returns the Switch, or None."""
        self.state, switch = self.schedule.observe_epoch(self.state, epoch, gradients(self.model, self.weight_decay))
        if switch:
            self.switches.append(switch)
            set_numerics(self.model, self.numerics)
        return switch
