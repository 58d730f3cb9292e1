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
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from numpy.lib.array_utils import byte_bounds

from dfpgen.codegen import emit, jit
from dfpgen.codegen.launch import run_ranges, split_items
from dfpgen.core.dfp import check_rounding, max_mantissa
from dfpgen.core.stochastic import DRAW_BITS, INDEX_LIMIT, StreamKey
from dfpgen.core.target import Isa, Target
from dfpgen.errors import DTypeError, PlanError, ShapeError, SizeError

RANK = 6            # dimensions of a geometry; the outer four are work items
MIN_ITEM_WORK = 1 << 15   # elements per thread below which more threads cost more than they save
# (src, dst, geometry, scale, top, key k0, key k1, max|src| slot, first item, end item)
MOVE_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float,
                                  ctypes.c_float, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p,
                                  ctypes.c_int64, ctypes.c_int64)
# The LLVM intrinsic each rounding mode starts from (the quantizing pointwise kernels ask it too).
ROUND_INTRINSIC = {"nearest": "round", "nearest_even": "roundeven", "chop": "trunc", "biased": "trunc",
                    "stochastic": "floor", None: "trunc"}


INTERLEAVES = (2, 4)   # INT16 pairs, INT8 quads
ACCESSES = ("contiguous", "gather", "run", "interleave", "spread", "partial", "transpose")


@dataclass(frozen=True)
class MovePlan:
    """One data-movement kernel: quantize (with `rounding`) or copy FP32, `vector` elements at a time,
    written to consecutive destination elements and read from the source as `access` says:
    "contiguous" (consecutive too; with vector 1, any strides), "gather" (the innermost dimension's
    stride), "run" (dimensions 4 and 5 form one destination-contiguous run, read with a gather),
    "interleave" (a run of `interleave` contiguous source runs, element by element: INT16 pairs or INT8 quads
    from channels-innermost FP32), "spread" (a contiguous source run into every `interleave`-th destination
    element: one element of each pair or quad, written with a masked store) or "partial" (`runs` contiguous
    source runs into the first `runs` elements of each group of `interleave`, packed and stored under a mask:
    the layouts' edge columns and last q's, where the group's other elements hold padding)."""

    target: Target
    isa: Isa
    quantize: bool
    rounding: str | None
    vector: int
    access: str = "contiguous"
    dequantize: bool = False   # store the represented FP32 values mant * 2**exp instead of mantissas
    storage_bits: int = 16     # mantissas as INT16, or as bytes (the INT8 ISAs' layouts)
    offset: int = 0            # added to each stored byte: vpdpbusd's unsigned operand holds mant + 128
    interleave: int = 1        # source runs an "interleave" access weaves together, or a "spread" skips (2 or 4)
    runs: int = 0              # "partial": the source runs woven into each group (fewer than `interleave`)
    slide: str = ""            # packed: "lanes" (or "rows") when a vector's runs 1.. are the previous vector's
                               # (the previous row's) runs 0.., which it reuses
    adjacent: bool = False     # "transpose" of groups: a group's elements are neighbours in the source

    entry = "dfpgen_move"
    draw_bits = DRAW_BITS
    draw_unit = "0x3E70000000000000"   # 2**-24, as LLVM spells a float constant

    @property
    def template(self) -> str:
        """The template that renders this plan: transposing tiles have their own loop nest."""
        return "transpose.ll.j2" if self.access == "transpose" else "move.ll.j2"

    @property
    def packed(self) -> bool:
        """Whether an "interleave" (or "partial", "transpose") quantizes each source run on its own and packs a
        lane's mantissas into one 32-bit word (INT16 pairs, INT8 quads) instead of interleaving floats."""
        return self.access in ("interleave", "partial", "transpose") and self.quantize and not self.dequantize \
            and self.storage_bits * self.interleave == 32

    @property
    def round_intrinsic(self) -> str:
        """The LLVM rounding intrinsic the rounding mode starts from."""
        return ROUND_INTRINSIC[self.rounding]

    def summary(self) -> list[str]:
        """Comment lines for the IR header."""
        stored = "DFP values" if self.dequantize else "INT16" if self.storage_bits == 16 else \
            f"bytes + {self.offset}" if self.offset else "INT8"
        what = f"quantize FP32 -> {stored}, rounding {self.rounding}" if self.quantize else "copy FP32"
        return [f"data movement: {what}, {self.vector} element(s) per step ({self.access}), "
                f"{self.target.cpu} {self.isa.name}"]


@dataclass(frozen=True)
class Geometry:
    """Extents and element strides of two views, outermost first, padded to RANK dimensions. A `transposed`
    geometry is in the transposing kernel's order (_transposed): items, then the source's contiguous dimension,
    the destination's, and the group of destination elements beside each of the latter."""

    extents: tuple
    src_strides: tuple
    dst_strides: tuple
    transposed: bool = False

    def items(self, access: str) -> int:
        """Work items: the product of the outer four extents (three for runs, whose rows are dimension 3, and for
        transposes, whose tiles span dimensions 3 and 4)."""
        return int(np.prod(self.extents[:RANK - (3 if access in ("run", "interleave", "partial", "transpose")
                                                 else 2)], dtype=np.int64))

    def access(self, vector: int) -> tuple[str, int]:
        """How the kernel reads the source and how many elements it moves at a time: whole vectors
        wherever the destination is contiguous over them, else one element at a time."""
        if self.transposed:
            return "transpose", vector
        (n4, n5), (ss4, ss5), (ds4, ds5) = self.extents[4:], self.src_strides[4:], self.dst_strides[4:]
        if ds5 == 1 and n5 % vector == 0:
            return ("contiguous" if ss5 == 1 else "gather"), vector
        if ds5 == 1 and n5 in INTERLEAVES and ds4 == n5 and n4 % vector == 0 and ss4 == 1:
            return "interleave", n5 * vector
        if ds5 == 1 and n5 < vector and vector % n5 == 0 and ds4 == n5 and (n4 * n5) % vector == 0:
            return "run", vector
        # The first n5 elements of each pair or quad from n5 contiguous runs (WTGRAD's edge columns and last q's,
        # where the group's other elements read padding): packed words under a mask (mantissas only, _kernel).
        if ds5 == 1 and ss4 == 1 and ds4 in INTERLEAVES and n5 < ds4 and n4 % vector == 0:
            return "partial", ds4 * vector
        # One element of every pair or quad (the edges of WTGRAD's layouts, where the others read padding):
        # whole source vectors, stored into every ds5-th destination element under a mask.
        if ss5 == 1 and ds5 in INTERLEAVES and n5 % vector == 0:
            return "spread", vector
        return "contiguous", 1

    def slides(self, vector: int) -> str:
        """How an "interleave" of `vector` elements may reuse runs: "lanes" when the next vector along a row
        reads its run g where this one read run g+1 (WTGRAD's x at stride 1, whose element e reads column
        w + e) and a row holds several vectors; "rows" when a row is one vector and the next row is the one
        shifted so (a column phase of WTGRAD's x at a larger stride); else ""."""
        (n3, n4, n5), (ss3, ss4, ss5) = self.extents[3:], self.src_strides[3:]
        if ss5 == vector // n5 * ss4 and n4 * n5 > vector:
            return "lanes"
        if n4 * n5 == vector and ss5 == ss3 and n3 > 1:
            return "rows"
        return ""

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
    return _geometry(src.shape, _strides(src, "source"), _strides(dst, "destination"), dst.itemsize)


# A training step moves the same views step after step (only the arrays behind them change): their geometries
# and kernels are looked up by shape and strides, which costs a small part of planning them again.
@lru_cache(maxsize=4096)
def _geometry(shape: tuple, src_strides: tuple, dst_strides: tuple, dst_itemsize: int) -> Geometry:
    """plan_geometry's answer for views of `shape` with these element strides."""
    dims = [(n, s, d) for n, s, d in zip(shape, src_strides, dst_strides) if n != 1]
    # Any loop order moves the same elements (stochastic draws go by source position), so the destination's
    # order is taken: sequential writes, whole vectors wherever it is contiguous (gathering the source).
    merged = _merged(_merged(dims), sort=True)
    if len(merged) > RANK:
        raise PlanError(f"data movement: the views need {len(merged)} dimensions after merging, at most {RANK}")
    merged = [(1, 0, 0)] * (RANK - len(merged)) + merged
    g = Geometry(*(tuple(int(m[i]) for m in merged) for i in range(3)))
    return _transposed(g, dst_itemsize) or _source_runs_inside(g, dst_itemsize)


MIN_TRANSPOSE = 8   # elements along a tile's side below which gathers cost less than a mostly masked tile
ELEMENTWISE = ("gather", "run")   # accesses that read the source an element at a time (besides vector 1)


def _reads_elementwise(g: Geometry) -> bool:
    """Whether the element-by-element kernels would move `g` at every vector width."""
    return all(access in ELEMENTWISE or vector == 1 for access, vector in (g.access(8), g.access(16)))


def _transposed(g: Geometry, dst_itemsize: int) -> Geometry | None:
    """`g` in the transposing kernel's order, where the destination runs along a dimension the source strides
    through (KCRS weights into the kernels' lane-innermost layouts and back, NCHW into blocked tensors) and the
    source is contiguous along another: [items 0..2][A: source-contiguous][B: destination-contiguous][group].
    A group is the INT16 pair beside each B element (destination dimension 5 of extent 2 after a dimension of
    destination stride 2); A then is contiguous in the source, or strides by 2 over pairs that are themselves
    neighbours there. None where no such dimensions exist, where more than three others remain, for byte
    destinations (the INT8 layouts' quads) or where the element-by-element kernels read whole vectors anyway."""
    n, ss, ds = g.extents, g.src_strides, g.dst_strides
    if dst_itemsize == 1 or ds[5] != 1 or not _reads_elementwise(g):
        return None
    grouped = n[5] == 2 and ds[4] == 2 and n[4] > 1
    run, group = (4, 5) if grouped else (5, None)
    contiguous = 2 if grouped and ss[5] == 1 else 1   # pairs of neighbours: A walks them two at a time
    if ss[run] == 1 or n[run] < MIN_TRANSPOSE:
        return None
    across = [d for d in range(run) if n[d] >= MIN_TRANSPOSE and ss[d] == contiguous]
    if not across:
        return None
    a = across[-1]
    others = [d for d in range(run) if d != a and n[d] > 1]
    if len(others) > 3:
        return None
    dims = [(1, 0, 0)] * (3 - len(others)) + [(n[d], ss[d], ds[d]) for d in others + [a, run]]
    dims.append((n[group], ss[group], ds[group]) if grouped else (1, 0, 0))
    return Geometry(*(tuple(int(dim[i]) for dim in dims) for i in range(3)), transposed=True)


FULL_LINE = 64   # bytes: a destination written in runs of at least a cache line may be written out of order


def _source_runs_inside(g: Geometry, dst_itemsize: int) -> Geometry:
    """`g` with the dimension that continues the source's innermost run (its source stride is the run's length)
    moved to the row loop, right outside the moved elements, when the destination takes whole cache lines per
    row: a channels-last source (64..2048 channels a pixel) then streams once from memory, where the
    destination's order would read it in one pass per channel block, a strided sliver at a time. Where the
    destination's runs are shorter than a line, its order stays (partial lines written out of order cost more)."""
    n, ss, ds = g.extents, g.src_strides, g.dst_strides
    if ds[5] != 1:
        return g
    if ss[5] == 1:                                              # contiguous runs along dimension 5
        run, slot, dst_run = n[5], 4, n[5]
    elif ss[4] == 1 and n[5] in INTERLEAVES and ds[4] == n[5]:  # interleaved runs along dimension 4
        if any(g.slides(n[5] * lanes) for lanes in (8, 16)):
            return g                                            # the slide reuses runs in this order
        run, slot, dst_run = n[4], 3, n[4] * n[5]
    else:
        return g
    outer = [d for d in range(slot) if n[d] > 1 and ss[d] == run]
    if dst_run * dst_itemsize < FULL_LINE or not outer or ss[slot] == run:
        return g
    inner = outer[-1]
    dims = [(n[d], ss[d], ds[d]) for d in range(slot + 1) if d != inner and n[d] > 1]
    dims += [(n[inner], ss[inner], ds[inner])] + [(n[d], ss[d], ds[d]) for d in range(slot + 1, RANK)]
    dims = [(1, 0, 0)] * (RANK - len(dims)) + dims
    return Geometry(*(tuple(int(dim[i]) for dim in dims) for i in range(3)))


@lru_cache(maxsize=None)
def _compiled(plan: MovePlan) -> jit.Compiled:
    return jit.jit_on_host(plan, render(plan), MOVE_SIGNATURE, "data movement")


@lru_cache(maxsize=4096)
def _kernel(geometry: Geometry, target: Target, isa: Isa, quantize: bool, rounding: str | None, dequantize: bool,
            storage_bits: int, offset: int) -> tuple:
    """The compiled kernel moving `geometry` (its function) and its number of work items."""
    access, vector = geometry.access(isa.lanes)
    group = geometry.dst_strides[4] if access == "partial" else geometry.extents[5] if access in (
        "interleave", "transpose") else geometry.dst_strides[5] if access == "spread" else 1
    plan = MovePlan(target, isa, quantize, rounding, vector, access, dequantize, storage_bits, offset, group,
                    geometry.extents[5] if access == "partial" else 0,
                    adjacent=access == "transpose" and group > 1 and geometry.src_strides[5] == 1)
    if access == "partial" and not plan.packed:   # FP32 or narrower-than-a-word groups: element by element
        plan = replace(plan, access="contiguous", vector=1, interleave=1, runs=0)
        access = "contiguous"
    if plan.packed and access != "transpose":
        plan = replace(plan, slide=geometry.slides(vector))
    return _compiled(plan).function, geometry.items(access)


def render(plan: MovePlan) -> str:
    """The IR of a data-movement kernel (for inspection and tests)."""
    return emit.render_kind(plan)


def _check(a: np.ndarray, dtype, name: str) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.dtype(dtype):
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise DTypeError(f"{name}: expected a {np.dtype(dtype)} array, got {got}")


def _storage(dst: np.ndarray, mantissas: bool, bits: int | None, offset: int) -> np.dtype:
    """The destination's dtype, checked: float32 for values, else int16 or (mantissas of at most 8 bits, with
    `offset` keeping them in range) int8/uint8."""
    if not isinstance(dst, np.ndarray):
        raise DTypeError(f"destination: expected a {_allowed(mantissas)} array, got {type(dst).__name__}")
    return _checked_storage(dst.dtype, mantissas, bits, offset)


def _allowed(mantissas: bool) -> str:
    return "int16 or int8 or uint8" if mantissas else "float32"


@lru_cache(maxsize=256)
def _checked_storage(dtype: np.dtype, mantissas: bool, bits: int | None, offset: int) -> np.dtype:
    allowed = (np.int16, np.int8, np.uint8) if mantissas else (np.float32,)
    if dtype not in allowed:
        raise DTypeError(f"destination: expected a {_allowed(mantissas)} array, got {dtype}")
    if mantissas and dtype.itemsize == 1:
        info, top = np.iinfo(dtype), max_mantissa(bits)
        if -top + offset < info.min or top + offset > info.max:
            raise DTypeError(f"destination: {dtype} holds {info.min}..{info.max}; {bits}-bit mantissas plus "
                             f"offset {offset} need {offset - top}..{offset + top}")
    elif offset:
        raise DTypeError(f"offset={offset}: only byte destinations take an offset")
    return dtype


@dataclass(frozen=True, eq=False)
class MoveStep:
    """One kernel launch of a program: a geometry between two views, placed by byte offsets from the first
    element of the origin (the array every source view is taken from) and of the destination buffer, and the
    geometry as the kernel reads it (`words`, numbering stochastic draws from the origin's first element)."""

    src_offset: int
    dst_offset: int
    geometry: Geometry
    size: int
    words: np.ndarray


@dataclass(frozen=True)
class MoveProgram:
    """The launches that move (source view, destination view) pairs, independent of where the arrays live:
    views depend only on the arrays' shapes and strides, so a conversion plans its program once and runs it
    on every new origin of the same layout (dfpgen/runtime/blocked.py)."""

    steps: tuple

    @staticmethod
    def of(pairs: list, origin: np.ndarray, dst: np.ndarray) -> MoveProgram:
        """The program of `pairs`, whose sources are views of `origin` and destinations views of `dst`."""
        steps: list = []
        for src, view in pairs:
            _check(src, np.float32, "source")
            if view.dtype != dst.dtype:
                raise DTypeError(f"destination view: {view.dtype}, but the buffer holds {dst.dtype}")
            # Offsets replace the views when the program runs on other arrays: a view must lie in its array.
            _inside(src, origin, "source view", "origin")
            _inside(view, dst, "destination view", "destination")
            _steps(src, view, src.ctypes.data - origin.ctypes.data, view.ctypes.data - dst.ctypes.data, steps)
        return MoveProgram(tuple(steps))

    def reads_all(self, origin_size: int) -> bool:
        """Whether the moves read every element of a dense origin of `origin_size` elements (WTGRAD's x skips
        what its kernel never reads), so that their max|.| is the origin's."""
        return _reads_all(self, origin_size)


@lru_cache(maxsize=1024)
def _reads_all(program: MoveProgram, origin_size: int) -> bool:
    read = np.zeros(origin_size, bool)
    for step in program.steps:
        g = step.geometry
        start = step.src_offset // 4   # views lie inside their origin (MoveProgram.of checked it)
        # A bool per float32 element: the geometry's element strides are the mask's byte strides.
        np.lib.stride_tricks.as_strided(read[start:], g.extents, g.src_strides)[...] = True
    return bool(read.all())


def _inside(view: np.ndarray, array: np.ndarray, name: str, of: str) -> None:
    """ShapeError unless every element of `view` lies in `array`'s memory (a view of it, not a copy)."""
    if view.size == 0:
        return
    low, high = byte_bounds(view)
    start, end = byte_bounds(array)
    if low < start or high > end:
        raise ShapeError(f"data movement: a {name} lies outside the {of} array (a copy, not a view of it)")


def _steps(src: np.ndarray, view: np.ndarray, src_offset: int, dst_offset: int, steps: list) -> None:
    """Append the launches of one pair: one, or with more dimensions than a geometry holds, one per index of
    the outermost."""
    try:
        geometry = plan_geometry(src, view)
    except PlanError:
        if src.ndim <= RANK:
            raise
        for i in range(src.shape[0]):
            _steps(src[i], view[i], src_offset + i * src.strides[0], dst_offset + i * view.strides[0], steps)
        return
    if src.size:
        words = geometry.words(src_offset // 4)
        words.flags.writeable = False
        steps.append(MoveStep(src_offset, dst_offset, geometry, src.size, words))


def move(src: np.ndarray, dst: np.ndarray, target: Target, isa: Isa, threads: int, *, scale: float = 1.0,
         bits: int | None = None, rounding: str = "nearest", key: StreamKey | None = None,
         origin: np.ndarray | None = None, dequantize: bool = False, offset: int = 0) -> float:
    """Copy FP32 view `src` into view `dst` (same extents); with `bits`, dst is int16 and receives the
    mantissas round(src * scale) clamped to +-(2**(bits-1)-1) (an int8/uint8 dst: as bytes, plus `offset`,
    as the INT8 ISAs store their unsigned operand), or with `dequantize` dst is float32 and
    receives the values those mantissas represent. `scale` (and, dequantizing, 1/scale) must be a power
    of two whose float32 is normal. Stochastic rounding needs `key`; it numbers elements by their position in
    `origin` (the array `src` is a view of; default: src, which must then be C-contiguous). Returns
    max|src| (NaN when src holds one)."""
    _check(src, np.float32, "source")
    _storage(dst, bits is not None and not dequantize, bits, offset)
    if bits is not None and rounding == "stochastic" and origin is None and not src.flags.c_contiguous and \
            key is not None:
        raise ShapeError("source: stochastic rounding numbers elements by position; pass origin= for a view")
    origin = src if origin is None else origin
    program = MoveProgram.of([(src, dst)], origin, dst)
    return run_program(program, origin, dst, target, isa, threads, scale=scale, bits=bits, rounding=rounding,
                       key=key, dequantize=dequantize, offset=offset)


@lru_cache(maxsize=4096)
def _launches(program: MoveProgram, target: Target, isa: Isa, quantize: bool, rounding: str | None,
              dequantize: bool, storage_bits: int, offset: int, threads: int) -> tuple:
    """A program's launches for one kind of move and thread count: (kernel, item ranges, source and destination
    byte offsets, the words' address, first max|.| slot) each, and the slots they fill; the same every step."""
    launches, slots = [], 0
    for step in program.steps:
        fn, items = _kernel(step.geometry, target, isa, quantize, rounding, dequantize, storage_bits, offset)
        ranges = tuple(split_items(items, min(threads, max(1, step.size // MIN_ITEM_WORK))))
        launches.append((fn, ranges, step.src_offset, step.dst_offset, step.words.ctypes.data, slots))
        slots += len(ranges)
    return tuple(launches), slots


def run_program(program: MoveProgram, origin: np.ndarray, dst: np.ndarray, target: Target, isa: Isa, threads: int,
                *, scale: float = 1.0, bits: int | None = None, rounding: str = "nearest",
                key: StreamKey | None = None, dequantize: bool = False, offset: int = 0) -> float:
    """Run a program's moves from `origin` into `dst` (arrays of the layouts it was planned for), as `move`
    moves one pair; returns max|.| over the moved elements (NaN when one is NaN)."""
    _check(origin, np.float32, "source")
    quantize = bits is not None
    storage = _storage(dst, quantize and not dequantize, bits, offset)
    if not dst.flags.writeable:
        raise ShapeError("destination: a read-only array")
    if quantize:
        check_rounding(rounding)
    stochastic = quantize and rounding == "stochastic"
    if stochastic:
        if key is None:
            raise PlanError("stochastic rounding in a generated quantizer needs a StreamKey (key=)")
        if origin.size >= INDEX_LIMIT:
            raise SizeError(f"stochastic rounding numbers at most 2**32 elements, the source has {origin.size}")
    if stochastic and program.steps and min(step.src_offset for step in program.steps) < 0:
        raise SizeError("stochastic rounding numbers elements from the origin's first: a source view starts before it")
    launches, slot_count = _launches(program, target, isa, quantize, rounding if quantize else None,
                                     quantize and dequantize, 8 * storage.itemsize if quantize and not dequantize
                                     else 16, offset, threads)
    top = float(max_mantissa(bits)) if quantize else 0.0
    k0, k1 = (key.k0, key.k1) if key is not None else (0, 0)
    src_base, dst_base, scale = origin.ctypes.data, dst.ctypes.data, float(scale)
    slots = np.zeros(max(slot_count, 1), np.float32)
    at = slots.ctypes.data
    for fn, ranges, src_offset, dst_offset, words, first in launches:
        args = (src_base + src_offset, dst_base + dst_offset, words, scale, top, k0, k1)
        if len(ranges) == 1:
            fn(*args, at + 4 * first, *ranges[0])
        else:
            run_ranges(lambda i, b, e: fn(*args, at + 4 * (first + i), b, e), ranges)
    return float(slots.max())   # NaN when any slot holds one
