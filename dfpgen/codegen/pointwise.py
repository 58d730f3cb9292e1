"""Pointwise kernels: one expression per output element over FP32 tensors, with per-channel float64 sums
and max|result|, planned into a frozen plan and rendered by templates/pointwise.ll.j2.

An op is one `Op`: a name and a `body` function that builds its `Body` (what is stored, summed and
maxed) from `Expr` nodes for one variant (keyword flags). The planner lowers the expressions to
straight-line SSA instructions (equal subexpressions once); the template loops over them.

Two geometries:
  * blocked: tensors `[N][CB][H][W][L]`; a work item is one (image, channel block), its H*W pixels
    one <L x float> each; `Channel` operands are per-channel vectors of CB*L floats, one vector per
    channel block; each item writes its sums to `slots[item][sum][L]` (float64). A blocked kernel may
    also *pack* a result: quantize it to INT16 mantissas (scale, clamp, round as a conversion kernel does,
    templates/quantize.ll.j2) and store it into another layout, element (item, pixel, lane) at
    `items[item] + pixels[pixel] + lane * stride` (stride 1 or 2: lanes adjacent, or every other INT16
    as in a VNNI pair). That is how a producer writes a convolution's operand layout directly
    (docs/architecture.md, Training runtime).
  * flat: arrays of any length; a work item is `chunk` elements; the last vector is masked.
The extent (pixels of an item, or the flat length) and the channel blocks are run-time arguments, so
one compiled kernel serves every shape. Kernel signature:
`void entry(ptr operands, ptr slots, ptr maxabs, i64 extent, i64 channel_blocks, i64 begin, i64 end)`,
`operands` being the table of operand addresses in `plan.operands` order.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from dfpgen.codegen import jit
from dfpgen.codegen.emit import render_kind
from dfpgen.codegen.launch import default_threads, run_ranges, split_items
from dfpgen.codegen.move import ROUND_INTRINSIC
from dfpgen.core.dfp import check_rounding
from dfpgen.core.stochastic import DRAW_BITS
from dfpgen.core.target import Isa, Target, get_isa, host
from dfpgen.errors import PlanError

SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                             ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
FLAT_CHUNK_VECTORS = 256   # a flat item: 16 KiB at 16 lanes, small enough to balance threads
# Accumulators per per-channel sum, taking turns pixel by pixel: independent chains cover a float64
# FMA's latency (4 cycles on Zen 4); channel_sums on an L2-resident (2, 4, 28, 28, 16) tensor went
# from 15 to 20 GB/s (from DRAM the conversions to float64, not the chains, set its rate).
SUM_WAYS = 4
PREDICATES = ("ogt", "ugt")  # fcmp predicates `Where` may test with
PACK_STRIDES = (1, 2)        # INT16 between a packed vector's lanes: adjacent, or every other (VNNI pairs)


# ------------------------------------------------------------------ expressions


class Expr:
    """A pointwise expression; `+`, `-` and `*` build FP32 (or, under `Wide`, float64) arithmetic."""

    def __add__(self, other: Expr) -> Expr:
        return Bin("fadd", self, other)

    def __sub__(self, other: Expr) -> Expr:
        return Bin("fsub", self, other)

    def __mul__(self, other: Expr) -> Expr:
        return Bin("fmul", self, other)


@dataclass(frozen=True, eq=True)
class Tensor(Expr):
    """A tensor operand: one vector per pixel (blocked) or per `lanes` elements (flat)."""

    name: str


@dataclass(frozen=True, eq=True)
class Channel(Expr):
    """A per-channel operand of CB*L floats: one vector per channel block (blocked kernels only)."""

    name: str


@dataclass(frozen=True, eq=True)
class Scalar(Expr):
    """A float32 scalar operand (a 1-element array), broadcast to every lane."""

    name: str


@dataclass(frozen=True, eq=True)
class Bin(Expr):
    """`a op b` with op fadd, fsub or fmul."""

    op: str
    a: Expr
    b: Expr


@dataclass(frozen=True, eq=True)
class Where(Expr):
    """`value` where `test pred 0` holds, else +0 (pred ogt: NaN tests give 0; ugt: NaN tests keep value)."""

    pred: str
    test: Expr
    value: Expr


@dataclass(frozen=True, eq=True)
class Wide(Expr):
    """`a` converted to float64 (exactly), for sums and products that must not round in FP32."""

    a: Expr


def relu(e: Expr) -> Expr:
    """max(e, 0), keeping NaN (so max|out| still reports it)."""
    return Where("ugt", e, e)


def masked(e: Expr, mask: Expr | None) -> Expr:
    """`e` where `mask > 0`, else 0 (`e` itself without a mask)."""
    return e if mask is None else Where("ogt", mask, e)


@dataclass(frozen=True)
class Body:
    """What a kernel computes per element: tensors stored, float64 per-channel sums, and max|maxabs|."""

    stores: tuple = ()            # (tensor name, FP32 Expr)
    sums: tuple = ()              # float64 Exprs (Wide) summed per channel
    maxabs: Expr | None = None    # FP32 Expr whose max |.| over the run is returned
    packs: tuple = ()             # (INT16 layout name, FP32 Expr): quantized and stored where its tables say


@dataclass(frozen=True)
class Op:
    """One pointwise op: its kernel body for a variant, `body(**flags) -> Body`, and its geometry."""

    name: str
    summary: str
    body: Callable[..., Body]
    flat: bool = False       # flat arrays of any length instead of blocked tensors
    contract: bool = True    # allow FMA contraction (False: the exact FP32 operation order of numpy)


# ------------------------------------------------------------------ plan


@dataclass(frozen=True)
class Operand:
    """An entry of the kernel's operand table."""

    name: str
    kind: str        # tensor, channel, scalar; of a pack: packed (INT16), items (int64), pixels (int32);
                     # of the packs' quantizer: scale (float), top (float), keys (2 x uint32)
    written: bool


@dataclass(frozen=True)
class Instr:
    """One SSA value: `value = form(args)`; `wide` values are <L x double>."""

    value: str
    form: str        # load (args: operand index), fadd/fsub/fmul, where (pred; args test, value), wide
    args: tuple
    wide: bool = False
    pred: str = ""


@dataclass(frozen=True)
class Pack:
    """One packed result: the SSA value, its INT16 destination and position tables, the lane stride."""

    value: str
    dst: int         # operand indices
    items: int
    pixels: int
    stride: int


@dataclass(frozen=True)
class PointwisePlan:
    """Everything the template needs for one op variant on one ISA; hashable, so it keys the kernel cache."""

    op: Op
    variant: tuple             # sorted (flag, value) pairs given to op.body
    target: Target
    isa: Isa
    operands: tuple            # Operand, in operand-table order
    scalars: tuple             # Instr(form load) of Scalar operands: once per call
    channels: tuple            # Instr(form load) of Channel operands: once per item
    loads: tuple               # Instr(form load) of Tensor operands: once per vector
    instrs: tuple              # arithmetic Instrs, in dependency order
    stores: tuple              # (operand index, value)
    sums: tuple                # float64 values summed per item
    maxabs: str | None         # value whose max |.| is written to the range's slot
    chunk: int                 # flat: elements per work item
    sum_ways: int              # accumulators per sum, taking turns pixel by pixel
    packs: tuple = ()          # Pack, in body order
    quantizer: tuple = ()      # operand indices of the packs' scale, top and keys
    rounding: str | None = None   # the packs' rounding mode
    template: str = "pointwise.ll.j2"
    draw_bits = DRAW_BITS
    draw_unit = "0x3E70000000000000"   # 2**-24, as LLVM spells a float constant

    @property
    def round_intrinsic(self) -> str:
        """The LLVM rounding intrinsic the packs' rounding mode starts from."""
        return ROUND_INTRINSIC[self.rounding]

    @property
    def lanes(self) -> int:
        """FP32 lanes per vector."""
        return self.isa.lanes

    @property
    def flat(self) -> bool:
        """Whether the kernel walks flat arrays (else blocked tensors)."""
        return self.op.flat

    @property
    def contract(self) -> bool:
        """Whether multiplies and adds may fuse into FMAs."""
        return self.op.contract

    @property
    def entry(self) -> str:
        """The kernel's exported function."""
        return f"dfpgen_pw_{self.op.name}"

    def items(self, extent: int, outer: int) -> int:
        """Work items: `outer` (N*CB) for blocked tensors, chunks of the `extent` elements for flat ones."""
        return -(-extent // self.chunk) if self.flat else outer

    def summary(self) -> list[str]:
        """Human-readable lines describing the plan (comments at the top of the IR)."""
        flags = ", ".join(f"{k}={v}" for k, v in self.variant) or "-"
        ops = ", ".join(f"{o.name} ({o.kind}{', written' if o.written else ''})" for o in self.operands)
        return [f"pointwise {self.op.name}: {self.op.summary}; variant {flags}",
                f"isa {self.isa.name} ({self.lanes} lanes), cpu {self.target.cpu}, "
                f"{'flat, ' + str(self.chunk) + ' elements an item' if self.flat else 'blocked, one item per (n, cb)'}",
                f"operands: {ops}",
                f"{len(self.instrs)} instructions per vector, {len(self.sums)} sums, "
                f"max|{'result' if self.maxabs else '-'}|, FMA contraction {'on' if self.contract else 'off'}"] + \
            ([f"packs: {', '.join(self.operands[k.dst].name + ' (lane stride ' + str(k.stride) + ')' for k in self.packs)}"
              f", INT16, rounding {self.rounding}"] if self.packs else [])


class _Lowering:
    """Expressions -> operands and SSA instructions, each distinct subexpression once."""

    def __init__(self, op: Op):
        self.op, self.operands, self.values = op, [], {}
        self.scalars, self.channels, self.loads, self.instrs = [], [], [], []
        self.count = 0

    def fresh(self) -> str:
        self.count += 1
        return f"e{self.count}"

    def operand(self, name: str, kind: str, written: bool = False) -> int:
        for i, o in enumerate(self.operands):
            if o.name == name:
                if o.kind != kind:
                    raise PlanError(f"op {self.op.name}: operand {name!r} used as {o.kind} and {kind}")
                if written and not o.written:
                    self.operands[i] = Operand(name, kind, True)
                return i
        self.operands.append(Operand(name, kind, written))
        return len(self.operands) - 1

    def value(self, e: Expr) -> tuple[str, bool]:
        """(SSA name, is float64) of `e`, emitting its instructions on first use."""
        if e in self.values:
            return self.values[e]
        name = self.fresh()
        if isinstance(e, (Tensor, Channel, Scalar)):
            kind = type(e).__name__.lower()
            if kind == "channel" and self.op.flat:
                raise PlanError(f"op {self.op.name}: channel operand {e.name!r}: flat kernels take only "
                                f"tensor and scalar operands")
            into = {"tensor": self.loads, "channel": self.channels, "scalar": self.scalars}[kind]
            into.append(Instr(name, "load", (self.operand(e.name, kind),)))
            wide = False
        elif isinstance(e, Bin):
            if e.op not in ("fadd", "fsub", "fmul"):
                raise PlanError(f"op {self.op.name}: operation {e.op!r}: must be fadd, fsub or fmul")
            (a, wa), (b, wb) = self.value(e.a), self.value(e.b)
            if wa != wb:
                raise PlanError(f"op {self.op.name}: {e.op} of float32 and float64 values; widen both with Wide")
            self.instrs.append(Instr(name, e.op, (a, b), wa))
            wide = wa
        elif isinstance(e, Where):
            if e.pred not in PREDICATES:
                raise PlanError(f"op {self.op.name}: predicate {e.pred!r}: must be one of {', '.join(PREDICATES)}")
            (test, wt), (val, wide) = self.value(e.test), self.value(e.value)
            if wt or wide:
                raise PlanError(f"op {self.op.name}: Where takes float32 operands")
            self.instrs.append(Instr(name, "where", (test, val), False, e.pred))
        elif isinstance(e, Wide):
            a, wa = self.value(e.a)
            if wa:
                raise PlanError(f"op {self.op.name}: Wide of a float64 value")
            self.instrs.append(Instr(name, "wide", (a,), True))
            wide = True
        else:
            raise PlanError(f"op {self.op.name}: {e!r} is not an expression")
        self.values[e] = (name, wide)
        return name, wide

    def fp32(self, e: Expr, what: str) -> str:
        name, wide = self.value(e)
        if wide:
            raise PlanError(f"op {self.op.name}: {what} must be a float32 expression")
        return name


def plan(op: Op, isa: str | Isa | None = None, target: Target | None = None, *, rounding: str | None = None,
         pack_strides: tuple = (), **flags) -> PointwisePlan:
    """Plan one variant of `op` for an ISA (default: the target's best DFP ISA; its lanes set L). A body with
    packs takes their `rounding` mode and one lane stride each (`pack_strides`, each in PACK_STRIDES)."""
    target = target or host()
    isa = get_isa(isa or target.best_isa("dfp16")) if not isinstance(isa, Isa) else isa
    target.check_isa(isa.name)
    body = op.body(**flags)
    low = _Lowering(op)
    stored = [(name, low.fp32(e, f"store {name!r}")) for name, e in body.stores]
    packed = [(name, low.fp32(e, f"pack {name!r}")) for name, e in body.packs]
    sums = []
    for e in body.sums:
        name, wide = low.value(e)
        if not wide:
            raise PlanError(f"op {op.name}: a sum must be a float64 (Wide) expression")
        sums.append(name)
    if sums and op.flat:
        raise PlanError(f"op {op.name}: flat kernels have no channels to sum over")
    maxabs = low.fp32(body.maxabs, "maxabs") if body.maxabs is not None else None
    stores = tuple((low.operand(name, "tensor", written=True), value) for name, value in stored)
    packs, quantizer = _packs(op, low, packed, rounding, tuple(pack_strides))
    variant = tuple(sorted(flags.items())) + ((("rounding", rounding), ("pack_strides", tuple(pack_strides)))
                                              if packs else ())
    return PointwisePlan(op, variant, target, isa, tuple(low.operands), tuple(low.scalars),
                         tuple(low.channels), tuple(low.loads), tuple(low.instrs), stores, tuple(sums), maxabs,
                         FLAT_CHUNK_VECTORS * isa.lanes, SUM_WAYS, packs, quantizer, rounding if packs else None)


def _packs(op: Op, low: _Lowering, packed: list, rounding: str | None, strides: tuple) -> tuple[tuple, tuple]:
    """The body's packs and the operands of their quantizer, after checking the rounding mode and strides."""
    if len(strides) != len(packed):
        raise PlanError(f"op {op.name}: pack_strides={strides!r}: must give one lane stride per pack "
                        f"({len(packed)})")
    if not packed:
        return (), ()
    if op.flat:
        raise PlanError(f"op {op.name}: flat kernels have no pixels to pack")
    check_rounding(rounding)
    for stride in strides:
        if stride not in PACK_STRIDES:
            raise PlanError(f"op {op.name}: pack stride {stride!r}: must be one of {PACK_STRIDES}")
    packs = tuple(Pack(value, low.operand(name, "packed", written=True), low.operand(f"{name}.items", "items"),
                       low.operand(f"{name}.pixels", "pixels"), stride)
                  for (name, value), stride in zip(packed, strides))
    return packs, tuple(low.operand(name, kind) for name, kind in (("scale", "scale"), ("top", "top"),
                                                                      ("keys", "keys")))


def render(p: PointwisePlan) -> str:
    """LLVM IR text of the kernel for a pointwise plan."""
    lanes = p.lanes
    types = {"fvec": f"<{lanes} x float>", "dvec": f"<{lanes} x double>", "ivec": f"<{lanes} x i32>",
             "mvec": f"<{lanes} x i1>", "lvec": f"<{lanes} x i64>", "fsuffix": f"v{lanes}f32",
             "isuffix": f"v{lanes}i32", "align": 4 * lanes}
    return render_kind(p, t=types)


# ------------------------------------------------------------------ compiled kernels


@dataclass
class PointwiseKernel:
    """A compiled pointwise kernel: its plan, IR and callable."""

    plan: PointwisePlan
    ir: str
    compiled: jit.Compiled

    def run(self, arrays: dict, extent: int, outer: int, channel_blocks: int, threads: int | None = None):
        """Run every item on threads; returns (slots [items][sums][L] float64 or None, max|result|, NaN if any).

        `arrays` maps every operand name to its array (scalars: 1-element float32 arrays); `extent` is an
        item's pixels (blocked) or the flat length, `outer` the blocked items N*CB."""
        p = self.plan
        table = np.array([arrays[o.name].ctypes.data for o in p.operands], dtype=np.uintp)
        items = p.items(extent, outer)
        slots = np.empty((items, len(p.sums), p.lanes), np.float64) if p.sums else np.empty(1, np.float64)
        ranges = split_items(items, threads or default_threads())
        maxabs = np.zeros(len(ranges), np.uint32)   # |x| bit patterns: their integer order is |x|'s, NaN last
        fn, base, slot, m = self.compiled.function, table.ctypes.data, slots.ctypes.data, maxabs.ctypes.data
        run_ranges(lambda i, b, e: fn(base, slot, m + 4 * i, extent, channel_blocks, b, e), ranges)
        return (slots if p.sums else None), np.uint32(maxabs.max()).view(np.float32)


@lru_cache(maxsize=None)
def kernel(p: PointwisePlan) -> PointwiseKernel:
    """The compiled kernel for a plan, once per process (the object cache spares LLVM across processes)."""
    ir = render(p)
    return PointwiseKernel(p, ir, jit.jit_on_host(p, ir, SIGNATURE, f"pointwise {p.op.name}"))
