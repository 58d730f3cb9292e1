"""Threaded pointwise ops on blocked FP32 tensors (batch norm, ReLU, residual joins) and the SGD update.

Blocked tensors are C-contiguous, 64-byte-aligned float32 arrays of shape (N, CB, H, W, L), the conv
kernels' FP32 output layout (L: the lanes of one of this host's DFP ISAs, 16 or 8; channels padded
with zeros to CB*L). Per-channel vectors are float32 arrays of shape (CB*L,). Each op is one `Op`
definition (its kernel body) and one function here that checks the arguments and runs it.

Results never depend on the thread count: every output element and every per-item sum is computed
by exactly one work item, and the per-item sums are added over the batch here, in a fixed order.
Every op that writes returns max|written result| as a float, NaN if any result is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dfpgen.codegen.layout import ALIGNMENT
from dfpgen.codegen.pointwise import (PACK_STRIDES, Body, Channel, Op, PointwiseKernel, Scalar, Tensor, Where, Wide,
                                      kernel, masked)
from dfpgen.codegen.pointwise import plan as plan_op
from dfpgen.codegen.pointwise import relu as relu_of
from dfpgen.core.dfp import max_mantissa
from dfpgen.core.stochastic import INDEX_LIMIT, StreamKey
from dfpgen.core.target import get_isa, host
from dfpgen.errors import DTypeError, NumericsError, PlanError, ShapeError

# ------------------------------------------------------------------ op definitions


def _channel_sums() -> Body:
    x = Wide(Tensor("x"))
    return Body(sums=(x, x * x))


def _affine(relu: bool, residual: bool, scale: bool, shift: bool, packed: int = 0) -> Body:
    y = Channel("a") * Tensor("x") + Channel("b")
    if residual:
        z = Channel("c") * Tensor("z") if scale else Tensor("z")
        y = y + (z + Channel("d") if shift else z)
    y = relu_of(y) if relu else y
    return Body(stores=(("out", y),), maxabs=y, packs=tuple((f"pack{k}", y) for k in range(packed)))


def _relu_grad() -> Body:
    dz = Where("ogt", Tensor("out"), Tensor("dy"))
    return Body(stores=(("dz", dz),), maxabs=dz)


def _bn_grad_sums(mask: bool) -> Body:
    dz = Wide(masked(Tensor("dz"), Tensor("mask") if mask else None))
    return Body(sums=(dz, dz * Wide(Tensor("x"))))


def _bn_grad_apply(mask: bool, add: bool, store: bool = True, packed: int = 0) -> Body:
    dz = masked(Tensor("dz"), Tensor("mask") if mask else None)
    dx = Channel("a") * dz + Channel("b") * Tensor("x") + Channel("c")
    dx = dx + Tensor("add") if add else dx
    return Body(stores=(("dx", dx),) if store else (), maxabs=dx,
                packs=tuple((f"pack{k}", dx) for k in range(packed)))


def _add() -> Body:
    y = Tensor("a") + Tensor("b")
    return Body(stores=(("out", y),), maxabs=y)


def _sgd(decay: bool) -> Body:
    # numpy's order in dfpgen/nn/optim.py, every operation rounded to float32: g + wd*w; v*m + that;
    # w - lr*v. The op disables contraction, so these are the same bits.
    w, g = Tensor("w"), Tensor("g")
    v = Tensor("v") * Scalar("momentum") + (g + Scalar("weight_decay") * w if decay else g)
    w = w - Scalar("lr") * v
    return Body(stores=(("v", v), ("w", w)), maxabs=w)


CHANNEL_SUMS = Op("channel_sums", "per-channel sum and sum of squares of x (float64)", _channel_sums)
AFFINE = Op("affine", "out = act(a*x + b [+ c*z + d]) per channel [, packed into INT16 layouts]", _affine)
RELU_GRAD = Op("relu_grad", "dz = dy where out > 0, else 0", _relu_grad)
BN_GRAD_SUMS = Op("bn_grad_sums", "per-channel sum dz' and sum dz'*x (float64), dz' = dz [where mask > 0]",
                  _bn_grad_sums)
BN_GRAD_APPLY = Op("bn_grad_apply", "dx = a*dz' + b*x + c [+ add] per channel [, packed into INT16 layouts]",
                   _bn_grad_apply)
ADD = Op("add", "out = a + b", _add)
SGD = Op("sgd", "v = momentum*v + (g + weight_decay*w); w -= lr*v", _sgd, flat=True, contract=False)


# ------------------------------------------------------------------ checks and running


@dataclass(frozen=True, eq=False)
class PackTarget:
    """An INT16 layout a blocked op writes its result into, quantized: element (item, pixel, lane) of the
    blocked result ([N][CB][H][W][L], item = n*CB + cb) goes to dst.flat[items[item] + pixels[pixel] +
    lane*stride]. Every position must lie in dst (`check` says so once, where the tables are made)."""

    dst: np.ndarray      # int16, C-contiguous
    items: np.ndarray    # int64, one per (n, cb)
    pixels: np.ndarray   # int32, one per (h, w)
    stride: int

    def check(self, shape: tuple) -> None:
        """Raise ShapeError unless the tables fit a blocked result of `shape` and every position lies in dst."""
        N, CB, H, W, L = shape
        if self.dst.dtype != np.int16 or not self.dst.flags.c_contiguous or not self.dst.flags.writeable:
            raise ShapeError(f"pack: dst: {self.dst.dtype}, must be a writeable C-contiguous int16 array")
        if self.items.shape != (N * CB,) or self.pixels.shape != (H * W,) or self.stride not in PACK_STRIDES:
            raise ShapeError(f"pack: tables of {self.items.shape} items, {self.pixels.shape} pixels, stride "
                             f"{self.stride}; a result of shape {shape} needs ({N * CB},), ({H * W},), one of "
                             f"{PACK_STRIDES}")
        low = int(self.items.min()) + int(self.pixels.min())
        high = int(self.items.max()) + int(self.pixels.max()) + (L - 1) * self.stride
        if low < 0 or high >= self.dst.size:
            raise ShapeError(f"pack: positions {low}..{high} leave dst's {self.dst.size} elements")


@dataclass(frozen=True)
class Quantizer:
    """How packed results are quantized: 2**-exp scale, `bits`-bit mantissas, a rounding mode and its stream."""

    exp: int
    bits: int
    rounding: str
    key: StreamKey | None = None

    def __post_init__(self):
        if not -126 <= -self.exp <= 127:
            raise NumericsError(f"exp={self.exp}: packing scales by 2**-exp, a normal float32 only for exp in "
                                f"-127..126")

    def operands(self) -> dict:
        """The quantizer's kernel operands: scale, top and the stochastic stream's two key words."""
        k0, k1 = (self.key.k0, self.key.k1) if self.key is not None else (0, 0)
        return {"scale": np.array([np.ldexp(1.0, -self.exp)], np.float32),
                "top": np.array([max_mantissa(self.bits)], np.float32), "keys": np.array([k0, k1], np.uint32)}


@lru_cache(maxsize=None)
def _kernel(op: Op, isa: str, flags: tuple, rounding: str | None = None, pack_strides: tuple = ()) -> PointwiseKernel:
    return kernel(plan_op(op, isa, rounding=rounding, pack_strides=pack_strides, **dict(flags)))


def host_lanes() -> tuple[int, ...]:
    """The lane counts blocked tensors may have here: those of this host's DFP ISAs, widest first."""
    return tuple(sorted({get_isa(n).lanes for n in host().isas("dfp16")}, reverse=True))


def isa_for(fn: str, name: str, lanes: int) -> str:
    """The DFP ISA whose vectors have `lanes` floats (the blocked tensors' last axis); a one-line error
    naming `fn`'s argument `name` when this host has none."""
    isa = _lanes_isa(lanes)
    if isa:
        return isa
    raise ShapeError(f"{fn}: {name}: last axis (lanes) is {lanes}; this host's DFP ISAs take "
                     f"{' or '.join(map(str, host_lanes()))}")


@lru_cache(maxsize=None)
def _lanes_isa(lanes: int) -> str | None:
    return next((n for n in host().isas("dfp16") if get_isa(n).lanes == lanes), None)


def _float32(fn: str, name: str, a, writable: bool) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise DTypeError(f"{fn}: {name}: expected a numpy float32 array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise DTypeError(f"{fn}: {name}: dtype {a.dtype}; must be float32")
    if not a.flags.c_contiguous:
        raise ShapeError(f"{fn}: {name}: not C-contiguous; must be (np.ascontiguousarray)")
    if writable and not a.flags.writeable:
        raise ShapeError(f"{fn}: {name}: read-only; the result is written into it")
    return a


def check_blocked(fn: str, name: str, a, like: tuple | None = None) -> np.ndarray:
    """Check a blocked tensor argument (shape `like` when given); one-line errors name it."""
    _float32(fn, name, a, False)
    if like is not None and a.shape != like:
        raise ShapeError(f"{fn}: {name}: shape {a.shape}; must be {like}, the shape of the first tensor")
    if a.ndim != 5 or 0 in a.shape:
        raise ShapeError(f"{fn}: {name}: shape {a.shape}; must be blocked (N, CB, H, W, L), every extent >= 1")
    if a.ctypes.data % ALIGNMENT:
        raise ShapeError(f"{fn}: {name}: data not {ALIGNMENT}-byte aligned; allocate it with "
                         f"dfpgen.codegen.layout.aligned_empty")
    return a


def _channel(fn: str, name: str, a, channels: int) -> np.ndarray:
    """Check a per-channel vector argument of `channels` floats."""
    _float32(fn, name, a, False)
    if a.shape != (channels,):
        raise ShapeError(f"{fn}: {name}: shape {a.shape}; must be ({channels},), CB*L of the tensors")
    return a


def _run(fn: str, op: Op, tensors: dict, channels: dict, threads: int | None, packs: tuple = (),
         quantizer: Quantizer | None = None, **flags):
    """Check and run a blocked op (its result also packed into each of `packs`, quantized as `quantizer`
    says); returns (per-channel sums [sum][CB*L] or None, max|result|)."""
    first, *rest = tensors
    shape = check_blocked(fn, first, tensors[first]).shape
    for name in rest:
        check_blocked(fn, name, tensors[name], shape)
    N, CB, H, W, L = shape
    for name, a in channels.items():
        _channel(fn, name, a, CB * L)
    arrays = tensors | channels
    if packs:
        for target in packs:
            target.check(shape)
        arrays |= quantizer.operands()
        for k, target in enumerate(packs):
            arrays |= {f"pack{k}": target.dst, f"pack{k}.items": target.items, f"pack{k}.pixels": target.pixels}
        if quantizer.rounding == "stochastic" and (quantizer.key is None or np.prod(shape) >= INDEX_LIMIT):
            raise PlanError(f"{fn}: stochastic rounding needs a StreamKey and at most 2**32 elements")
    k = _kernel(op, isa_for(fn, first, L), tuple(sorted(flags.items())),
                quantizer.rounding if packs else None, tuple(t.stride for t in packs))
    for o in k.plan.operands:
        if o.written and o.kind == "tensor":
            _float32(fn, o.name, tensors[o.name], True)
    slots, maxabs = k.run(arrays, H * W, N * CB, CB, threads)
    if slots is None:
        return None, float(maxabs)
    # The sums over n, in index order: the same bits for any thread split of the items.
    total = slots.reshape(N, CB, -1, L).sum(axis=0)
    return [total[:, s, :].reshape(CB * L) for s in range(total.shape[1])], float(maxabs)


# ------------------------------------------------------------------ the ops


def channel_sums(x: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (sum x, sum x^2) over N, H, W as float64 arrays of shape (CB*L,): BN statistics."""
    sums, _ = _run("channel_sums", CHANNEL_SUMS, {"x": x}, {}, threads)
    return sums[0], sums[1]


def affine(x: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray, relu: bool = False,
           z: np.ndarray | None = None, c: np.ndarray | None = None, d: np.ndarray | None = None,
           threads: int | None = None, packs: tuple = (), quantizer: Quantizer | None = None) -> float:
    """out = act(a*x + b [+ c*z + d]) per channel (c, d None: 1 and 0), act ReLU or identity, also packed into
    each PackTarget of `packs` as `quantizer` says; max|out|."""
    if packs and quantizer is None:
        raise ShapeError("affine: packs need a quantizer (exponent, bits, rounding)")
    tensors = {"x": x, "out": out} | ({"z": z} if z is not None else {})
    if z is None and (c is not None or d is not None):
        raise ShapeError("affine: c and d scale and shift z; pass z or leave them None")
    channels = {"a": a, "b": b} | {k: v for k, v in (("c", c), ("d", d)) if v is not None}
    _, m = _run("affine", AFFINE, tensors, channels, threads, tuple(packs), quantizer, relu=bool(relu),
                residual=z is not None, scale=c is not None, shift=d is not None,
                **({"packed": len(packs)} if packs else {}))
    return m


def relu_grad(dy: np.ndarray, out: np.ndarray, dz: np.ndarray, threads: int | None = None) -> float:
    """dz = dy where out > 0, else 0 (out: the ReLU's output); returns max|dz|."""
    return _run("relu_grad", RELU_GRAD, {"dy": dy, "out": out, "dz": dz}, {}, threads)[1]


def bn_grad_sums(dz: np.ndarray, x: np.ndarray, threads: int | None = None,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (sum dz', sum dz'*x) as float64 (CB*L,), dz' = dz where mask > 0 (all of dz without a mask)."""
    tensors = {"dz": dz, "x": x} | ({"mask": mask} if mask is not None else {})
    sums, _ = _run("bn_grad_sums", BN_GRAD_SUMS, tensors, {}, threads, mask=mask is not None)
    return sums[0], sums[1]


def bn_grad_apply(dz: np.ndarray, x: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, dx: np.ndarray | None,
                  threads: int | None = None, mask: np.ndarray | None = None, add: np.ndarray | None = None,
                  packs: tuple = (), quantizer: Quantizer | None = None) -> float:
    """dx = a*dz' + b*x + c [+ add] per channel, dz' as in bn_grad_sums, stored into `dx` (None: not stored)
    and packed into each PackTarget of `packs` as `quantizer` says; returns max|dx|."""
    if dx is None and not packs:
        raise ShapeError("bn_grad_apply: dx is None and nothing is packed: the result would go nowhere")
    if packs and quantizer is None:
        raise ShapeError("bn_grad_apply: packs need a quantizer (exponent, bits, rounding)")
    tensors = {"dz": dz, "x": x} | {k: v for k, v in (("dx", dx), ("mask", mask), ("add", add)) if v is not None}
    return _run("bn_grad_apply", BN_GRAD_APPLY, tensors, {"a": a, "b": b, "c": c}, threads, tuple(packs), quantizer,
                mask=mask is not None, add=add is not None,
                **({"store": dx is not None, "packed": len(packs)} if packs else {}))[1]


def add(a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int | None = None) -> float:
    """out = a + b; returns max|out|."""
    return _run("add", ADD, {"a": a, "b": b, "out": out}, {}, threads)[1]


def sgd_update(w: np.ndarray, g: np.ndarray, v: np.ndarray, lr: float, momentum: float, weight_decay: float,
               threads: int | None = None, lanes: int | None = None) -> float:
    """One SGD step in place, bit for bit as dfpgen.nn.optim.SGD; returns max|w| (NaN if any).

    v = momentum*v + (g + weight_decay*w); w -= lr*v, every operation in float32, in that order, no
    FMA. weight_decay 0 adds g alone, as SGD does for parameters without decay. w, g, v: C-contiguous
    float32 arrays of one shape, any size (no padding: the last vector is masked); `lanes`: the vector
    width (default: the host's best DFP ISA's)."""
    fn = "sgd_update"
    _float32(fn, "w", w, True)
    for name, a in (("g", g), ("v", v)):
        _float32(fn, name, a, name == "v")
        if a.shape != w.shape:
            raise ShapeError(f"{fn}: {name}: shape {a.shape}; must be {w.shape}, the shape of w")
    if w.size == 0:
        return 0.0
    isa = host().best_isa("dfp16") if lanes is None else isa_for(fn, "lanes", lanes)
    k = _kernel(SGD, isa, (("decay", weight_decay != 0),))
    scalars = {n: np.array([s], np.float32) for n, s in (("lr", lr), ("momentum", momentum),
                                                         ("weight_decay", weight_decay))}
    _, m = k.run({"w": w, "g": g, "v": v} | scalars, w.size, 1, 1, threads)
    return float(m)
