"""The tiling planner: spec + numerics + blocking + target -> a Plan with every loop, bound, offset and
flush point precomputed. Templates only loop over a Plan's fields; all index arithmetic lives here.

Every pass is planned into the same generic shape, which one template (templates/conv.ll.j2) renders:
  * a register-block `Tile`: `pixels` broadcast elements x `v` weight vectors of INT32 (or FP32)
    accumulators, with constant offsets of every broadcast, vector load and output store;
  * a reduction over a slice of two offset tables (`src_steps`, `vec_steps`), each step doing
    `unroll` multiply-accumulates per accumulator, flushed to FP32 every `steps_per_flush` steps;
  * a call table: which tile runs at which src/vec/dst offsets over which slice of the tables,
    grouped into work items; items repeat over `batch` (images) unless the batch is reduced. The
    kernel takes it as an argument at run time (`Plan.call_words`), so FC layers with a million
    calls still render small IR. Planners describe the calls as grids (`Calls`); flushes, offsets,
    item boundaries and the cost model work from those, and the table is built only when asked
    (`Plan.call_table`: a run, tests), so planning and emitting take memory for grids and items, not calls.
The pass planners (dfpgen/passes/) only compute these tables; a Plan carries its pass object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from math import ceil
from typing import Callable

import numpy as np

from dfpgen.codegen.calls import CALL_FIELDS, Calls, CallsBuilder, block_steps
from dfpgen.codegen.split import Dim, Level, Split, Work, shares
from dfpgen.core.dfp import offset_reduction_limit
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Isa, Target, get_isa
from dfpgen.errors import PlanError, SizeError

ORDERS = ("nk", "kn", "np")
PLAN_FORMAT = 5   # bump when the meaning of a Plan or Blocking field changes (goes into cache keys)


class ResultLayout(Enum):
    """How an FPROP or BPROP kernel lays out its FP32 result: BLOCKED [N][C/L][H][W][L] (the numpy runtime's
    tensors, channels padded to whole blocks) or CHANNELS_LAST [N][H][W][C], the memory of a channels-last
    tensor, which the kernel then writes in place (dfpgen.torch's results need no conversion); C must be a
    multiple of the lanes L there, as every vector store is a whole block of channels."""

    BLOCKED = "blocked"
    CHANNELS_LAST = "channels-last"

    def dst(self, images: int, channels: int, rows: int, cols: int, lanes: int) -> tuple:
        """The result's shape and its element strides of a channel block, a row, a column and an image."""
        blocks = ceil(channels / lanes)
        if self is ResultLayout.BLOCKED:
            row = cols * lanes
            return (images, blocks, rows, cols, lanes), rows * row, row, lanes, blocks * rows * row
        if channels % lanes:
            raise PlanError(f"result_layout={self.value!r}: {channels} result channels are not a multiple of the "
                            f"{lanes} lanes; use {ResultLayout.BLOCKED.value!r}")
        row = cols * channels
        return (images, rows, cols, channels), lanes, row, channels, rows * row


@dataclass(frozen=True)
class Blocking:
    """The tuner's knobs for one kernel. None picks the planner's choice for that knob.

    kv: output vectors per register block (output channels / lanes); wb x hb: broadcast elements per
    register block (output pixels for fprop/bprop: width x rows; input channels x filter taps for
    wtgrad); cpb: reduction-channel elements (INT16 pairs, or FP32 channels) per channel block of the
    layouts (fprop/bprop); unroll: reduction elements per inner-loop step; order: work-item order,
    "nk" (image, then filter block, then output rows), "kn" (filter-block-major, weights stay in
    cache) or "np" (image, then output rows, then filter blocks: an image's input rows stay in cache
    across the filter blocks, for images too large for L2); rb: WTGRAD's reduction block, output
    rows (of the N x P rows reduced) that every work item of a thread takes before the next block,
    so that block's rows of x and dy stay in cache across the items.
    """

    kv: int = 2
    wb: int = 4
    hb: int = 1
    cpb: int | None = None
    unroll: int | None = None
    order: str = "nk"
    rb: int | None = None

    def __post_init__(self) -> None:
        # Numpy integers (e.g. from np.arange sweeps) are stored as ints: JSON keys and records need Python ints.
        for name in ("kv", "wb", "hb", "cpb", "unroll", "rb"):
            value = getattr(self, name)
            if isinstance(value, np.integer):
                object.__setattr__(self, name, int(value))   # frozen

    def describe(self) -> str:
        """Compact text form, e.g. 'kv4 w6 h1 cpb16 u16 nk' (WTGRAD's adds e.g. ' rb4')."""
        return (f"kv{self.kv} w{self.wb} h{self.hb} cpb{self.cpb if self.cpb else '-'} "
                f"u{self.unroll if self.unroll else '-'} {self.order}" + (f" rb{self.rb}" if self.rb else ""))


@dataclass(frozen=True)
class Tile:
    """One register-block shape: h x w broadcast elements x v vectors, with every constant offset.

    bcast[p][k]: src offset of reduction element p for broadcast k (k = i*w + j), from the call's base;
    weights[p][v]: vec offset of element p for vector v; out[k][v]: dst offset of broadcast k, vector v;
    corr[v]: vec offset of vector v's INT32 correction (ISAs with an unsigned src, else empty), added to
    the call's vec base and the plan's `correction_steps` entry of the call's first step.
    """

    h: int
    w: int
    v: int
    bcast: tuple
    weights: tuple
    out: tuple
    corr: tuple = ()

    @property
    def name(self) -> str:
        """The LLVM function name of this tile."""
        return f"tile_h{self.h}_w{self.w}_v{self.v}"

    @property
    def accumulators(self) -> int:
        """Vector accumulators this tile keeps in registers."""
        return self.h * self.w * self.v


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything the emitter needs, precomputed. Offsets are in elements of the operand's storage type."""

    spec: ConvSpec
    numerics: Numerics
    blocking: Blocking
    target: Target
    isa: Isa
    conv_pass: object         # the dfpgen.passes.Pass planned
    elem: int                 # reduction channels per broadcast element: the ISA's group (2 INT16, 4 INT8, 1 FP32)
    lanes: int
    cpb: int
    unroll: int
    src_shape: tuple          # the blocked src operand (broadcast side)
    vec_shape: tuple          # the blocked vec operand (vector side)
    dst_shape: tuple          # the FP32 dst, laid out as result_layout says
    layout: object            # pass-specific layout facts (pads, padded sizes) for dfpgen.codegen.layout
    steps: int                # length of the step tables
    src_step_offsets: tuple
    vec_step_offsets: tuple
    steps_per_flush: int      # steps accumulated in INT32 before a flush to FP32
    flushes: int              # the most flushes any output takes
    flush_in_registers: bool  # FP32 partial sums in registers (short chains) rather than in the output tile
    chain: int                # pair-instructions per accumulator between flushes (<= the numerics' chain)
    tiles: tuple
    calls: Calls              # described; `call_table` builds calls x (tile, src, vec, dst, step_begin,
                              # step_count), in item order, when asked
    item_starts: tuple        # calls of item j are item_starts[j] .. item_starts[j+1]
    reduction_blocks: tuple   # (begin, count): a thread runs its items once per block, in order, each call over
                              # the part of its step slice in the block; the first block writes, the rest add
    batch: int                # times the items repeat (images), 1 when the pass reduces over the batch
    src_batch_stride: int
    dst_batch_stride: int
    registers: int
    work: Work                # the items as boxes of split dimensions, for the thread split (`split`)
    notes: tuple = field(default=())
    correction_steps: tuple = field(default=())   # per step t: where the INT32 correction of a call whose slice
                                                  # starts at t lies, from the call's vec base (unsigned-src ISAs)
    result_layout: ResultLayout = ResultLayout.BLOCKED
    _splits: dict = field(default_factory=dict, init=False, repr=False, compare=False)   # threads -> Split

    def split(self, threads: int) -> Split:
        """Which items each of at most `threads` threads runs (dfpgen.codegen.split), computed once per count."""
        if threads not in self._splits:
            self._splits[threads] = shares(self.work, threads)
        return self._splits[threads]

    @cached_property
    def call_table(self) -> np.ndarray:
        """calls x (tile, src, vec, dst, step_begin, step_count) int64, in item order: built on first use."""
        return self.calls.table()

    @cached_property
    def call_words(self) -> np.ndarray:
        """The call table as the kernel reads it at run time: C-contiguous int32, calls x CALL_FIELDS
        (finish() has checked that every offset fits); built on first use, by a run."""
        return np.ascontiguousarray(self.call_table, dtype=np.int32).reshape(-1, CALL_FIELDS)

    @property
    def call_count(self) -> int:
        """Calls per batch entry (rows of the call table), without building it."""
        return self.calls.count

    @property
    def call_fields(self) -> int:
        """Columns of the call table (CALL_COLUMNS)."""
        return CALL_FIELDS

    @property
    def pass_name(self) -> str:
        """The planned pass's name (for messages and summaries)."""
        return self.conv_pass.name

    @property
    def template(self) -> str:
        """The template that renders this plan (what the emitter asks of any kernel kind's plan)."""
        return self.conv_pass.template

    @property
    def entry(self) -> str:
        """The exported function name of the kernel."""
        return self.conv_pass.entry

    @property
    def items_per_batch(self) -> int:
        """Work items of one image (or of the whole pass when the batch is reduced)."""
        return len(self.item_starts) - 1

    @property
    def items(self) -> int:
        """Work items in all; threads take contiguous ranges of them."""
        return self.batch * self.items_per_batch

    @property
    def batch_inner(self) -> bool:
        """Whether consecutive items walk the batch (order "kn": a weight block stays in cache)."""
        return self.blocking.order == "kn" and self.batch > 1

    @property
    def int_accumulate(self) -> bool:
        """INT16 pairs into INT32 (with flushes), as opposed to FP32 FMAs."""
        return self.isa.precision == "dfp16"

    @property
    def asm_steps(self) -> bool:
        """Whether each reduction step is one inline-assembly block (ASM_STEP_INSTRUCTIONS)."""
        return self.isa.instruction in ASM_STEP_INSTRUCTIONS

    @property
    def storage(self) -> str:
        """numpy dtype name of the src and vec layouts (the vec's where they differ: see src_storage)."""
        return self.isa.vec_storage

    @property
    def src_storage(self) -> str:
        """numpy dtype name of the src layout (uint8, offset, on the INT8 ISAs)."""
        return self.isa.src_storage

    @property
    def vec_storage(self) -> str:
        """numpy dtype name of the vec layout."""
        return self.isa.vec_storage

    @property
    def corrected(self) -> bool:
        """Whether the src is stored offset and each call's first chain starts from a correction vector."""
        return bool(self.correction_steps)

    def tile(self, h: int, w: int, v: int) -> Tile:
        """The Tile of one shape."""
        for t in self.tiles:
            if (t.h, t.w, t.v) == (h, w, v):
                return t
        raise KeyError((h, w, v))

    def summary(self) -> list[str]:
        """Human-readable lines describing the plan (used as comments in emitted IR and assembly)."""
        s, n, b = self.spec, self.numerics, self.blocking
        lines = [
            f"layer {s.name or '-'}: {s.describe()}",
            f"pass {self.pass_name}, isa {self.isa.name} ({self.isa.instruction}, {self.lanes} lanes), "
            f"cpu {self.target.cpu}",
            f"blocking {b.describe()}",
            f"register block {b.hb}x{b.wb} x {b.kv} vectors: {self.registers} of "
            f"{self.target.vector_registers} vector registers",
            f"layouts: src {list(self.src_shape)} vec {list(self.vec_shape)} dst {list(self.dst_shape)}"
            + ("" if self.result_layout is ResultLayout.BLOCKED else f" ({self.result_layout.value})"),
            f"reduction: step tables of {self.steps} steps, {self.unroll} elements a step"
            f"{', each step one inline-assembly block' if self.asm_steps else ''}",
        ]
        if self.int_accumulate:
            unit = "pair-instructions" if self.elem == 2 else f"{self.elem}-product instructions"
            lines.append(
                f"numerics: bits x{n.bits_x}/w{n.bits_w}, overflow {n.overflow}, chain {self.chain} "
                f"{unit} (safe {n.safe_chain_on(self.isa)}), flush INT32->FP32 every {self.steps_per_flush} "
                f"steps, at most {self.flushes} flushes per output, FP32 partial sums in "
                f"{'registers' if self.flush_in_registers else 'the output tile'}")
        lines.append(f"work: {self.items} items ({self.batch} x {self.items_per_batch}), {self.call_count} "
                     f"tile calls per batch entry, order {b.order}")
        return lines + list(self.notes)


def register_need(h: int, w: int, v: int, fp32_partials: bool = False) -> int:
    """Vector registers a register block needs: accumulators, weight vectors and one broadcast, and
    as many again for FP32 partial sums when those are kept in registers."""
    return h * w * v * (2 if fp32_partials else 1) + v + 1


# vpdpwssd and FMA reduction steps are one inline-assembly block each (instructions in plan order), since LLVM's
# scheduler hoists later weight loads and spills AVX-512's 31-register blocks; the vpmaddwd paths keep LLVM's
# schedule with pinned sums (templates/conv.ll.j2), as hand-scheduled ones ran no faster (docs/experiments.md §2, §8).
ASM_STEP_INSTRUCTIONS = ("vpdpwssd", "vpdpbusd", "vfmadd231ps")

# Flushing into the output tile in memory (L1) keeps the whole register file for INT32 accumulators
# and costs a load and a store per accumulator and flush (docs/numerics.md "Flushes to FP32"; measured
# in docs/experiments.md §7); with chains this short (bits 15-16) that traffic dominates, so FP32
# partial sums move to registers when they fit.
REGISTER_FLUSH_MAX_CHAIN = 4


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of n that is <= limit (at least 1)."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def split(extent: int, block: int) -> list[tuple[int, int]]:
    """(start, size) blocks covering 0..extent: full blocks, then one tail."""
    return [(start, min(block, extent - start)) for start in range(0, extent, block)]


@dataclass(frozen=True)
class Common:
    """What every pass planner decides the same way: ISA facts, knobs validated, chain and unroll."""

    isa: Isa
    elem: int
    lanes: int
    chain: int
    kv: int
    wb: int
    hb: int


def common(numerics: Numerics, blocking: Blocking, target: Target, isa_name: str, spec: ConvSpec) -> Common:
    """Validate the ISA, overflow policy and register-block knobs shared by every pass."""
    if spec.groups > 1:
        raise PlanError(f"groups={spec.groups}: a kernel computes one group; plan spec.per_group() and run it "
                        f"once per group (dfpgen.Conv2d does)")
    isa = get_isa(isa_name)
    target.check_isa(isa_name)
    b = blocking
    if b.order not in ORDERS:
        raise PlanError(f"order={b.order!r}: must be one of {', '.join(ORDERS)}")
    for name in ("kv", "wb", "hb"):
        value = getattr(b, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PlanError(f"{name}={value!r}: must be an integer >= 1")
    for name in ("cpb", "unroll", "rb"):   # their ranges depend on the layer: checked where they are used
        value = getattr(b, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise PlanError(f"{name}={value!r}: must be an integer >= 1 or None (the planner's choice)")
    int_acc = isa.precision != "fp32"
    if int_acc:
        for name in ("bits_x", "bits_w"):
            if not isa.accepts_bits(getattr(numerics, name)):
                raise PlanError(f"{name}={getattr(numerics, name)}: isa={isa.name!r} ({isa.instruction}) takes "
                                f"operands of at most {isa.max_bits} bits; use an INT16 ISA for wider mantissas")
    if numerics.overflow == "saturate" and int_acc and not isa.saturating:
        raise PlanError(f"overflow='saturate' needs a saturating multiply-accumulate (vpdpwssds); "
                        f"isa={isa.name!r} has none: use avx512_vnni or avx_vnni, or overflow='exact'")
    return Common(isa, isa.group, isa.lanes, numerics.chain_on(isa) if int_acc else 0, b.kv, b.wb, b.hb)


def check_correction(c: Common, numerics: Numerics, products: int, what: str) -> None:
    """PlanError when an unsigned-src ISA's correction could overflow INT32: the first chain of a call
    starts at -offset x (sum of the vec operand over the whole reduction of `products` products)."""
    if not c.isa.src_offset:
        return
    limit = offset_reduction_limit(numerics.bits_w, c.isa.src_offset)
    if products > limit:
        raise PlanError(f"{what}={products}: isa={c.isa.name!r} stores the src offset by {c.isa.src_offset}, so one "
                        f"output may reduce at most {limit} products (bits_w={numerics.bits_w}); use an INT16 ISA")


def channel_blocks(c: Common, blocking: Blocking, channels: int, numerics: Numerics) -> tuple[int, int, int]:
    """(cpb, unroll, blocks) for a reduction over `channels` channels held as elements of c.elem."""
    elements = ceil(channels / c.elem)
    cpb = blocking.cpb if blocking.cpb is not None else min(c.lanes, elements)
    if not 1 <= cpb <= 64:
        raise PlanError(f"cpb={cpb}: must be in 1..64 channel elements")
    return cpb, choose_unroll(c, blocking.unroll, cpb, numerics), ceil(elements / cpb)


def clip_block(c: Common, vectors: int, rows: int, cols: int) -> Common:
    """The register block clipped to the extents it tiles (vector count, rows, columns)."""
    return dataclasses.replace(c, kv=min(c.kv, vectors), hb=min(c.hb, rows), wb=min(c.wb, cols))


def choose_unroll(c: Common, requested: int | None, elements: int, numerics: Numerics) -> int:
    """Reduction elements per step: the request, else all `elements`, kept within the accumulate chain."""
    unroll = requested if requested is not None else elements
    if c.chain and requested is None and unroll > c.chain:
        unroll = largest_divisor_at_most(elements, c.chain)
    if not 1 <= unroll <= elements or elements % unroll:
        raise PlanError(f"unroll={unroll}: must divide the channel block of {elements} elements")
    if c.chain and unroll > c.chain:
        raise PlanError(f"unroll={unroll}: a step of {unroll} pair-instructions exceeds the accumulate chain "
                        f"{c.chain} (bits x{numerics.bits_x}/w{numerics.bits_w}, {numerics.overflow}); "
                        f"use unroll <= {c.chain}")
    return unroll


@dataclass(frozen=True)
class PassTables:
    """What a pass planner computes and `finish` assembles into a Plan: the blocked shapes, the step
    tables, the calls, the batch walk and the reduction blocks."""

    common: Common                # the validated ISA facts and the register block, clipped to the layer
    cpb: int
    unroll: int
    src_shape: tuple
    vec_shape: tuple
    dst_shape: tuple
    layout: object                # pass-specific layout facts for the pass's layout functions
    src_steps: list               # per reduction step: src offset, and
    vec_steps: list               # vec offset, from a call's base
    tile_offsets: Callable        # (h, w, v) -> the Tile's (bcast, weights, out) offsets
    calls: CallsBuilder
    batch: int                    # times the items repeat (images), 1 when the pass reduces over the batch
    src_batch_stride: int
    dst_batch_stride: int
    notes: list
    rb: int | None = None
    reduction_blocks: list | None = None   # (begin, count) slices partitioning the step tables; default one
    split_dims: tuple = ()        # the thread split's dimensions and item order (dfpgen.codegen.split.Dim,
    split_levels: tuple = ()      # Level); default: one dimension, the items in order
    correction_steps: list | None = None        # unsigned-src ISAs: Plan.correction_steps
    correction_vectors: Callable | None = None  # unsigned-src ISAs: v -> a tile's corr offsets (Tile.corr)
    result_layout: ResultLayout = ResultLayout.BLOCKED


def finish(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, conv_pass,
           tables: PassTables) -> Plan:
    """Assemble a Plan from a pass planner's tables: flush points, tiles, register check, size check.

    Reduction blocks make a thread run all its items once per block, each call over its own slice
    within the block."""
    c, builder, unroll = tables.common, tables.calls, tables.unroll
    src_steps, vec_steps = tables.src_steps, tables.vec_steps
    steps = len(src_steps)
    calls = builder.calls()
    blocks = tuple(tables.reduction_blocks) if tables.reduction_blocks else ((0, steps),)
    # All calls of one group share a step slice, hence their steps in every reduction block.
    slices = sorted({(begin, count) for _, _, begin, count in calls.groups()})
    counts = block_steps(np.array([(0, 0, 0, 0, b, n) for b, n in slices], dtype=np.int64).reshape(-1, CALL_FIELDS),
                         blocks)
    longest = int(counts.max(initial=0))
    per_flush = max(1, min(longest, c.chain // unroll)) if c.chain else max(1, longest)
    # Each call runs once per reduction block and flushes its own steps there; calls sharing a dst add up.
    # Grid calls never share a dst base: FPROP's is (filter block, output row, output column) and WTGRAD's
    # (filter block, r, s, input channel), each in mixed radix (column < Q, row < P; channel < C, s < S, r < R);
    # BPROP's is (channel block, input row, input column), each pixel in exactly one phase's grid, and its grids
    # partition the channel blocks; Calls.table() asserts it. So a grid call's flushes are its own, and only
    # explicit rows need the table.
    if calls.explicit:
        table = calls.table()
        _, output = np.unique(table[:, 3], return_inverse=True)
        per_call = (-(-block_steps(table, blocks) // per_flush)).sum(axis=1)
        flushes = max(1, int(np.bincount(output.ravel(), weights=per_call).max(initial=0)))
    else:
        flushes = max([1] + (-(-counts // per_flush)).sum(axis=1).tolist())
    tiles, registers = [], 0
    in_registers = (bool(c.chain) and flushes > 1 and per_flush * unroll <= REGISTER_FLUSH_MAX_CHAIN
                    and all(register_need(h, w, v, True) <= target.vector_registers for h, w, v in builder.tiles))
    for key, _ in sorted(builder.tiles.items(), key=lambda kv: kv[1]):
        h, w, v = key
        bcast, weights, out = tables.tile_offsets(h, w, v)
        corr = tables.correction_vectors(v) if tables.correction_vectors else ()
        tiles.append(Tile(h, w, v, bcast, weights, out, corr))
        registers = max(registers, register_need(h, w, v, in_registers))
    if registers > target.vector_registers:
        raise PlanError(f"register block hb={c.hb} x wb={c.wb} x kv={c.kv} needs {registers} vector registers "
                        f"({c.hb * c.wb * c.kv} accumulators + {c.kv} weights + 1 broadcast); "
                        f"{target.cpu} has {target.vector_registers}")
    # Items cost their multiply-accumulates; a pixel reduction cut into blocks reads its operands per item range.
    costs = tuple(cost * unroll * c.lanes * c.elem for cost in builder.item_costs)
    per, n = len(costs), tables.batch
    # Without dimensions of its own a pass splits its items as one dimension, in item order.
    images, inner = Level(0, n, per, True), Level(0, per)
    default = (Level(0, per, n), Level(0, n, 1, True)) if blocking.order == "kn" and n > 1 else (images, inner)
    work = Work(tables.split_dims or (Dim("items", per * n, 0.0),), tables.split_levels or default, costs,
                restream=len(blocks) > 1)
    assert work.items == per * n and all(d.count for d in work.dims), "the split's levels are not the items"
    largest = max(max(src_steps, default=0), max(vec_steps, default=0), calls.largest_offset())
    if largest + max(tables.src_batch_stride, tables.dst_batch_stride) * tables.batch >= 2**31:
        # Pass.plan decides this from the spec before planning (footprint.check_offsets); kept as a guard.
        raise SizeError(f"layer {spec.name or spec.describe()} ({conv_pass.name}): offsets past 2**31: "
                        f"split the batch (largest offset {largest:,})")
    return Plan(
        spec=spec, numerics=numerics,
        blocking=Blocking(c.kv, c.wb, c.hb, tables.cpb, unroll, blocking.order, tables.rb),
        target=target, isa=c.isa, conv_pass=conv_pass, elem=c.elem, lanes=c.lanes, cpb=tables.cpb, unroll=unroll,
        src_shape=tables.src_shape, vec_shape=tables.vec_shape, dst_shape=tables.dst_shape, layout=tables.layout,
        steps=steps, src_step_offsets=tuple(src_steps), vec_step_offsets=tuple(vec_steps),
        steps_per_flush=per_flush, flush_in_registers=in_registers, flushes=flushes,
        chain=min(c.chain, per_flush * unroll) if c.chain else 0, tiles=tuple(tiles), calls=calls,
        item_starts=tuple(builder.item_starts), reduction_blocks=blocks, batch=tables.batch,
        src_batch_stride=tables.src_batch_stride, dst_batch_stride=tables.dst_batch_stride, registers=registers,
        work=work, notes=tuple(tables.notes), correction_steps=tuple(tables.correction_steps or ()),
        result_layout=tables.result_layout)
