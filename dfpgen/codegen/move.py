"""Data-movement kernels: a strided view of FP32 values copied into another view of the same extents,
quantized to INT16 mantissas on the way (scale, round in any DFP rounding mode, clamp, pack) or kept
FP32. Layout conversions are views (dfpgen/codegen/layout.py builds them), so one kernel per
(quantize, rounding, vector width) serves every layout and layer; the views' extents and strides
are the kernel's run-time geometry, planned here (docs/architecture.md, Data movement).

Stochastic rounding draws from the counter-based stream of dfpgen.core.stochastic, indexed by each
element's position in the source array, so the result is `dfpgen.quantize(..., seed=key)`'s exactly,
for any thread count.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dfpgen.codegen import emit, jit
from dfpgen.codegen.launch import run_ranges, split_items
from dfpgen.core.dfp import check_rounding, max_mantissa
from dfpgen.core.stochastic import DRAW_BITS, INDEX_LIMIT, StreamKey
from dfpgen.core.target import Isa, Target
from dfpgen.errors import DTypeError, PlanError, ShapeError, SizeError
from dfpgen.version import __version__

RANK = 6            # dimensions of a geometry; the outer four are work items
MIN_ITEM_WORK = 1 << 15   # elements per thread below which more threads cost more than they save
# (src, dst, geometry, scale, top, key k0, key k1, max|src| slot, first item, end item)
MOVE_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float,
                                  ctypes.c_float, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p,
                                  ctypes.c_int64, ctypes.c_int64)
_ROUND_INTRINSIC = {"nearest": "round", "nearest_even": "roundeven", "chop": "trunc", "biased": "trunc",
                    "stochastic": "floor", None: "trunc"}


ACCESSES = ("contiguous", "gather", "run", "pairs")


@dataclass(frozen=True)
class MovePlan:
    """One data-movement kernel: quantize (with `rounding`) or copy FP32, `vector` elements at a time,
    written to consecutive destination elements and read from the source as `access` says:
    "contiguous" (consecutive too; with vector 1, any strides), "gather" (the innermost dimension's
    stride), "run" (dimensions 4 and 5 form one destination-contiguous run, read with a gather) or
    "pairs" (a run of two interleaved contiguous halves: INT16 pairs from channels-innermost FP32)."""

    target: Target
    isa: Isa
    quantize: bool
    rounding: str | None
    vector: int
    access: str = "contiguous"
    dequantize: bool = False   # store the represented FP32 values mant * 2**exp instead of mantissas

    template = "move.ll.j2"
    entry = "dfpgen_move"
    draw_bits = DRAW_BITS
    draw_unit = "0x3E70000000000000"   # 2**-24, as LLVM spells a float constant

    @property
    def round_intrinsic(self) -> str:
        """The LLVM rounding intrinsic the rounding mode starts from."""
        return _ROUND_INTRINSIC[self.rounding]

    def summary(self) -> list[str]:
        """Comment lines for the IR header."""
        what = f"quantize FP32 -> {'DFP values' if self.dequantize else 'INT16'}, rounding {self.rounding}" \
            if self.quantize else "copy FP32"
        return [f"data movement: {what}, {self.vector} element(s) per step ({self.access}), "
                f"{self.target.cpu} {self.isa.name}"]


@dataclass(frozen=True)
class Geometry:
    """Extents and element strides of two views, outermost first, padded to RANK dimensions."""

    extents: tuple
    src_strides: tuple
    dst_strides: tuple

    def items(self, access: str) -> int:
        """Work items: the product of the outer four extents (three for runs, whose rows are dimension 3)."""
        return int(np.prod(self.extents[:RANK - (3 if access in ("run", "pairs") else 2)], dtype=np.int64))

    def access(self, vector: int) -> tuple[str, int]:
        """How the kernel reads the source and how many elements it moves at a time: whole vectors
        wherever the destination is contiguous over them, else one element at a time."""
        (n4, n5), (ss4, ss5), (ds4, ds5) = self.extents[4:], self.src_strides[4:], self.dst_strides[4:]
        if ds5 == 1 and n5 % vector == 0:
            return ("contiguous" if ss5 == 1 else "gather"), vector
        if ds5 == 1 and ds4 == 2 and n5 == 2 and n4 == vector and ss4 == 1:
            return "pairs", 2 * vector
        if ds5 == 1 and n5 < vector and vector % n5 == 0 and ds4 == n5 and (n4 * n5) % vector == 0:
            return "run", vector
        return "contiguous", 1

    def words(self, index_base: int) -> np.ndarray:
        """The geometry as the kernel reads it: int64 extents, src strides, dst strides, index base."""
        return np.array([*self.extents, *self.src_strides, *self.dst_strides, index_base], dtype=np.int64)


def _strides(a: np.ndarray, name: str) -> tuple:
    if any(s < 0 or s % a.itemsize for s in a.strides):
        raise ShapeError(f"{name}: strides {a.strides} must be non-negative multiples of the item size {a.itemsize}")
    return tuple(s // a.itemsize for s in a.strides)


def _merged(dims: list, sort: bool = False) -> list:
    """(extent, src stride, dst stride) dimensions with neighbours contiguous in both views merged,
    after ordering them by stride when `sort`."""
    if sort:
        dims = sorted(dims, key=lambda dim: (dim[2], dim[1]), reverse=True)
    merged: list = []
    for n, s, d in dims:
        if merged and merged[-1][1] == s * n and merged[-1][2] == d * n:
            merged[-1] = (merged[-1][0] * n, s, d)
        else:
            merged.append((n, s, d))
    return merged


def plan_geometry(src: np.ndarray, dst: np.ndarray) -> Geometry:
    """The geometry of moving view `src` into view `dst`: size-1 dimensions dropped, the rest in the
    destination's order, neighbours contiguous in both views merged (longer inner loops, fewer items),
    padded to RANK."""
    if src.shape != dst.shape:
        raise ShapeError(f"data movement: source view {src.shape} and destination view {dst.shape} differ")
    dims = [(n, s, d) for n, s, d in zip(src.shape, _strides(src, "source"), _strides(dst, "destination"))
            if n != 1]
    # Any loop order moves the same elements (stochastic draws go by source position), so the destination's
    # order is taken: sequential writes, whole vectors wherever it is contiguous (gathering the source).
    merged = _merged(_merged(dims), sort=True)
    if len(merged) > RANK:
        raise PlanError(f"data movement: the views need {len(merged)} dimensions after merging, at most {RANK}")
    merged = [(1, 0, 0)] * (RANK - len(merged)) + merged
    return Geometry(*(tuple(int(m[i]) for m in merged) for i in range(3)))


@lru_cache(maxsize=None)
def _compiled(plan: MovePlan) -> jit.Compiled:
    ir = emit.environment().get_template(plan.template).render(plan=plan, entry=plan.entry, version=__version__)
    return jit.jit(ir, plan.entry, plan.target, plan.isa, signature=MOVE_SIGNATURE)


def render(plan: MovePlan) -> str:
    """The IR of a data-movement kernel (for inspection and tests)."""
    return emit.environment().get_template(plan.template).render(plan=plan, entry=plan.entry, version=__version__)


def _check(a: np.ndarray, dtype, name: str) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise DTypeError(f"{name}: expected a {np.dtype(dtype)} array, got {got}")


def move(src: np.ndarray, dst: np.ndarray, target: Target, isa: Isa, threads: int, *, scale: float = 1.0,
         bits: int | None = None, rounding: str = "nearest", key: StreamKey | None = None,
         origin: np.ndarray | None = None, dequantize: bool = False) -> float:
    """Copy FP32 view `src` into view `dst` (same extents); with `bits`, dst is int16 and receives the
    mantissas round(src * scale) clamped to +-(2**(bits-1)-1), or with `dequantize` dst is float32 and
    receives the values those mantissas represent. `scale` (and, dequantizing, 1/scale) must be a power
    of two whose float32 is normal. Stochastic rounding needs `key`; it numbers elements by their position in
    `origin` (the array `src` is a view of; default: src, which must then be C-contiguous). Returns
    max|src| (NaN when src holds one)."""
    _check(src, np.float32, "source")
    quantize = bits is not None
    _check(dst, np.int16 if quantize and not dequantize else np.float32, "destination")
    if not dst.flags.writeable:
        raise ShapeError("destination: a read-only array")
    if quantize:
        check_rounding(rounding)
    try:
        geometry = plan_geometry(src, dst)
    except PlanError:
        if src.ndim <= RANK:
            raise
        found = 0.0   # more dimensions than a geometry holds: one move per index of the outermost
        for i in range(src.shape[0]):
            one = move(src[i], dst[i], target, isa, threads, scale=scale, bits=bits, rounding=rounding, key=key,
                       origin=src if origin is None else origin, dequantize=dequantize)
            found = one if np.isnan(one) else max(found, one)
        return found
    index_base = 0
    if quantize and rounding == "stochastic":
        if key is None:
            raise PlanError("stochastic rounding in a generated quantizer needs a StreamKey (key=)")
        origin = src if origin is None else origin
        if origin is src and not src.flags.c_contiguous:
            raise ShapeError("source: stochastic rounding numbers elements by position; pass origin= for a view")
        index_base = (src.ctypes.data - origin.ctypes.data) // 4
        if index_base < 0 or origin.size >= INDEX_LIMIT:
            raise SizeError(f"stochastic rounding numbers at most 2**32 elements, the source has {origin.size}")
    if src.size == 0:
        return 0.0
    access, vector = geometry.access(isa.lanes)
    plan = MovePlan(target, isa, quantize, rounding if quantize else None, vector, access, quantize and dequantize)
    fn = _compiled(plan).function
    words = geometry.words(index_base)
    parts = min(threads, max(1, src.size // MIN_ITEM_WORK))
    ranges = split_items(geometry.items(access), parts)
    slots = np.zeros(len(ranges), np.float32)
    top = float(max_mantissa(bits)) if quantize else 0.0
    k0, k1 = (key.k0, key.k1) if key is not None else (0, 0)
    args = (src.ctypes.data, dst.ctypes.data, words.ctypes.data, float(scale), top, k0, k1)
    run_ranges(lambda i, b, e: fn(*args, slots.ctypes.data + 4 * i, b, e), ranges)
    return float(slots.max())
