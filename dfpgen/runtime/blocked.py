"""Blocked tensors: how the numpy runtime keeps activations and gradients between layers.

A `Blocked` tensor is FP32 [N][C/L][H][W][L] with channels zero-padded to a multiple of L, the lanes of
the host's DFP ISA: exactly the layout the FPROP and BPROP kernels write, so a convolution's result
goes to the next layer without a conversion, and batch norm, ReLU and adds work on it as it is.
NCHW exists only at the network's edges (`to_blocked`, `Blocked.nchw`).

`convert` fills a kernel operand's layout from a tensor through the generated data-movement kernels
(quantizing on the way for DFP kernels), with numpy as the fallback for layouts the views cannot
express (odd channel counts of weights, grouped layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dfpgen.codegen.layout import aligned_zeros
from dfpgen.codegen.move import MoveProgram, run_program
from dfpgen.codegen.views import regroup, split, unblock_rows
from dfpgen.core.dfp import quantize_with_exp
from dfpgen.core.stochastic import StreamKey
from dfpgen.core.target import Isa, Target, get_isa, resolve
from dfpgen.errors import NonFiniteError, ShapeError
from dfpgen.runtime import pool


@lru_cache(maxsize=None)
def host_isa() -> tuple[Target, Isa]:
    """The host target and its best DFP ISA, whose lanes set the blocked layout's L."""
    target = resolve(None)
    return target, get_isa(target.best_isa("dfp16"))


def lanes() -> int:
    """L of the blocked layout on this machine: 16 with AVX-512, 8 with AVX2."""
    return host_isa()[1].lanes


@dataclass(eq=False)
class Blocked:
    """An FP32 activation or gradient [N][C/L][H][W][L]; `maxabs` is max|.| when its producer computed it."""

    data: np.ndarray
    channels: int
    maxabs: float | None = None

    def __post_init__(self) -> None:
        d = self.data
        if d.ndim != 5 or d.dtype != np.float32 or not d.flags.c_contiguous or d.shape[1] * d.shape[4] < self.channels \
                or (d.shape[1] - 1) * d.shape[4] >= max(self.channels, 1):
            raise ShapeError(f"Blocked: data must be a C-contiguous float32 [N][C/L][H][W][L] array for "
                             f"{self.channels} channels, got {d.dtype} {d.shape}")

    @property
    def shape(self) -> tuple:
        """The logical NCHW shape."""
        N, _, H, W, _ = self.data.shape
        return (N, self.channels, H, W)

    @property
    def lanes(self) -> int:
        """L: channels per block."""
        return self.data.shape[4]

    def max_abs(self) -> float:
        """max|.|, from the producer when it gave one, else measured (and then remembered)."""
        if self.maxabs is None:
            self.maxabs = float(np.max(np.abs(self.data))) if self.data.size else 0.0
        return self.maxabs

    def nchw(self, threads: int) -> np.ndarray:
        """The tensor as a new C-contiguous float32 NCHW array."""
        return self.unblock_into(np.empty(self.shape, np.float32), threads)

    def unblock_into(self, out: np.ndarray, threads: int) -> np.ndarray:
        """Write the tensor into `out`, a float32 array of the NCHW shape in any layout (a channels-last
        view moves 16-channel runs instead of gathering); returns out."""
        if out.shape != self.shape or out.dtype != np.float32:
            raise ShapeError(f"Blocked: expected a float32 destination of shape {self.shape}, got {out.dtype} "
                             f"{out.shape}")
        fill(out, unblock_rows(self.data, out), self.data, lambda a: _numpy_unblock(a, self.channels), threads)
        return out


@dataclass(eq=False)
class Measured:
    """A plain float32 array (NCHW or KCRS) and its max|.|, measured at most once. With `hint`, maxabs
    is a guess (the last SGD update's max, last step's max of a layer's input): whoever quantizes the array
    checks the exponent it gives against the one of the max of the values it moved, redoes the work on the
    right exponent if they differ, and keeps the measured max."""

    data: np.ndarray
    maxabs: float | None = None
    hint: bool = False

    def max_abs(self) -> float:
        """max|.| (two reductions, no temporary array)."""
        if self.maxabs is None:
            self.maxabs = max(float(self.data.max()), -float(self.data.min())) if self.data.size else 0.0
            self.hint = False
        return self.maxabs

    def measure(self) -> float:
        """max|.| measured now, replacing any hint."""
        self.maxabs = None
        return self.max_abs()


def is_dense(a: np.ndarray) -> bool:
    """Whether `a` fills its memory without gaps or overlaps in some axis order (NCHW, channels-last, ...)."""
    return a.size == 0 or a.flags.c_contiguous or a.transpose(memory_axes(a)).flags.c_contiguous


def memory_axes(a: np.ndarray) -> tuple:
    """a's axes from the largest stride to the smallest: a.transpose(memory_axes(a)) walks a's memory in order
    when a is dense."""
    return tuple(sorted(range(a.ndim), key=lambda axis: (-a.strides[axis], axis)))


def empty_blocked(shape: tuple, zero: bool = False) -> np.ndarray:
    """A 64-byte-aligned [N][C/L][H][W][L] float32 buffer for an NCHW shape (zeroed when asked)."""
    N, C, H, W = shape
    L = lanes()
    dims = (N, -(-C // L), H, W, L)
    return aligned_zeros(dims, np.float32) if zero else pool.empty(dims, np.float32)


def to_blocked(x: np.ndarray, threads: int) -> Blocked:
    """An NCHW float array (the network's input) as a Blocked tensor."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ShapeError(f"to_blocked: expected an NCHW array, got shape {x.shape}")
    data = empty_blocked(x.shape, zero=x.shape[1] % lanes() != 0)
    src = split(x, 1, x.shape[1], 1) if x.shape[1] % lanes() else split(x, 1, x.shape[1] // lanes(), lanes())
    pairs = regroup(src, data.transpose(0, 1, 4, 2, 3), 1)
    maxabs = fill(data, pairs, x, lambda a: _numpy_block(a, data.shape), threads)
    return Blocked(data, x.shape[1], maxabs)


def _numpy_block(x: np.ndarray, shape: tuple) -> np.ndarray:
    N, G, H, W, L = shape
    padded = np.zeros((N, G * L, H, W), x.dtype)
    padded[:, :x.shape[1]] = x
    return padded.reshape(N, G, L, H, W).transpose(0, 1, 3, 4, 2)


def _numpy_unblock(data: np.ndarray, channels: int) -> np.ndarray:
    N, G, H, W, L = data.shape
    return data.transpose(0, 1, 4, 2, 3).reshape(N, G * L, H, W)[:, :channels]


def program(cache: dict, key: tuple, make, origin: np.ndarray, dst: np.ndarray) -> MoveProgram | None:
    """The MoveProgram of the view pairs `make()` returns for `origin` and `dst` (None: no views), planned once
    per `key` and layouts of the two arrays: their views, and so the program, depend on nothing else."""
    key = (*key, origin.shape, origin.strides, origin.dtype, dst.shape, dst.strides, dst.dtype)
    if key not in cache:
        pairs = make()
        cache[key] = None if pairs is None else MoveProgram.of(pairs, origin, dst)
    return cache[key]


def fill(dst: np.ndarray, pairs: list | MoveProgram | None, origin: np.ndarray, layout, threads: int, *,
         exp: int | None = None, bits: int | None = None, rounding: str = "nearest", key: StreamKey | None = None,
         dequantize: bool = False, offset: int = 0) -> float:
    """Fill `dst` from `origin` (the array every source view is taken from): move each (source,
    destination) view pair (or run their MoveProgram, planned for arrays of these layouts), FP32 copies or
    with `bits` the mantissas on exponent `exp`. Without pairs
    (or without an exponent numpy can scale by in float32), numpy quantizes `origin` as it is laid out
    and `layout(values)` arranges the result in dst's shape. With `dequantize`, dst (float32) receives
    the values the mantissas represent: the operand of an FP32 kernel whose tensor kind is DFP. Byte
    destinations (the INT8 ISAs) store mantissa + `offset`. Either way stochastic rounding numbers
    elements by their position in `origin`, so both round alike. Returns max|origin| over what moved;
    NonFiniteError on NaN/Inf."""
    normal = bits is None or (-126 <= -exp <= 127 and (not dequantize or -126 <= exp <= 127))
    if pairs is None or not normal:   # 2**-exp (or 2**exp, dequantizing) is no normal float32: numpy
        values = origin
        if bits is not None:   # in memory order: stochastic draws number elements by memory position, as moves do
            axes = memory_axes(origin)
            q = quantize_with_exp(origin.transpose(axes), exp, bits, rounding, seed=key)
            values = (q.to_float(np.float32) if dequantize else q.mant).transpose(np.argsort(axes))
        dst[...] = layout(values)
        maxabs = float(np.max(np.abs(origin))) if origin.size else 0.0
    else:
        target, isa = host_isa()
        scale = float(np.ldexp(1.0, -exp)) if bits is not None else 1.0
        moves = pairs if isinstance(pairs, MoveProgram) else MoveProgram.of(pairs, origin, dst)
        maxabs = run_program(moves, origin, dst, target, isa, threads, scale=scale, bits=bits, rounding=rounding,
                             key=key, dequantize=dequantize, offset=offset)
    return finite(maxabs)


def finite(maxabs: float) -> float:
    """`maxabs`, a max|.| measured while quantizing or moving a tensor; NonFiniteError if it is NaN or Inf."""
    if not np.isfinite(maxabs):
        raise NonFiniteError(f"a tensor to be quantized or laid out holds NaN or Inf (max |.| = {maxabs})")
    return maxabs
