"""The tiling planner: spec + numerics + blocking + target -> a Plan with every loop, bound, offset and
flush point precomputed. Templates only loop over a Plan's fields; all index arithmetic lives here."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

from .errors import PlanError
from .spec import ConvSpec, Numerics
from .target import Isa, Target, get_isa

PASSES = ("fprop",)
ORDERS = ("nk", "kn")
PLAN_FORMAT = 1   # bump when the meaning of a Plan or Blocking field changes (goes into cache keys)


@dataclass(frozen=True)
class Blocking:
    """The tuner's knobs for one kernel. None picks the planner's choice for that knob.

    kv: output-channel vectors per register block; wb x hb: output pixels per register block
    (width x rows); cpb: input-channel elements (INT16 pairs, or FP32 channels) per channel block of
    the input and weight layouts; unroll: channel elements per inner-loop step (divides cpb);
    order: work-item order, "nk" (image-major) or "kn" (filter-block-major, weights stay in cache).
    """

    kv: int = 2
    wb: int = 4
    hb: int = 1
    cpb: int | None = None
    unroll: int | None = None
    order: str = "nk"

    def describe(self) -> str:
        """Compact text form, e.g. 'kv4 w6 h1 cpb16 u16 nk'."""
        return (f"kv{self.kv} w{self.wb} h{self.hb} cpb{self.cpb if self.cpb else '-'} "
                f"u{self.unroll if self.unroll else '-'} {self.order}")


@dataclass(frozen=True)
class Segment:
    """A run of `count` equal register blocks of `size` output columns; offsets of the first block and
    the step between blocks, in input and output elements."""

    count: int
    size: int
    in_start: int
    in_step: int
    out_start: int
    out_step: int


@dataclass(frozen=True)
class Case:
    """One (row block, channel group) combination: its tile height and vectors, and its dispatch code
    (2 for the tail row block + 1 for the tail channel group; 0 is the common case)."""

    code: int
    h: int
    v: int


@dataclass(frozen=True)
class Tile:
    """One register-block shape h x w pixels x v vectors, with every constant offset it needs.

    bcast[p][k]: input offset (elements) of channel element p for pixel k, relative to the tile base;
    weights[p][v]: weight offset of element p for vector v; out[k][v]: output offset of pixel k, vector v.
    """

    h: int
    w: int
    v: int
    bcast: tuple
    weights: tuple
    out: tuple

    @property
    def name(self) -> str:
        """The LLVM function name of this tile."""
        return f"tile_h{self.h}_w{self.w}_v{self.v}"

    @property
    def accumulators(self) -> int:
        """Vector accumulators this tile keeps in registers."""
        return self.h * self.w * self.v


@dataclass(frozen=True)
class Plan:
    """Everything the emitter needs, precomputed. Sizes are in elements of the kernel's storage type."""

    spec: ConvSpec
    numerics: Numerics
    blocking: Blocking
    target: Target
    isa: Isa
    pass_name: str
    # channel blocking and layouts
    elem: int                 # channels per broadcast element: 2 (INT16 pair) or 1 (FP32)
    lanes: int
    cpb: int
    unroll: int
    CB: int                   # input-channel blocks
    KB: int                   # output-channel vectors (blocks of `lanes` channels)
    KG: int                   # output-channel groups of kv vectors (the last may have fewer)
    Hp: int
    Wp: int
    in_shape: tuple           # blocked, physically padded input [N][CB][Hp][Wp][cpb*elem]
    w_shape: tuple            # blocked weights [KB][CB][R][S][cpb][lanes][elem]
    out_shape: tuple          # blocked FP32 output [N][KB][P][Q][lanes]
    in_strides: tuple         # (n, cb, h, w) element strides of the input
    w_kb_stride: int
    out_strides: tuple        # (n, kb, p, q)
    # reduction: the step tables and the INT32 -> FP32 flush points
    steps: int                # T: inner-loop steps over (cb, r, s, element group)
    in_step_offsets: tuple    # T input offsets
    w_step_offsets: tuple     # T weight offsets
    steps_per_flush: int      # steps accumulated in INT32 before a flush; == steps for one flush
    flushes: int              # flushes per output tile (chunks of the reduction)
    chain: int                # pair-instructions per accumulator between flushes (<= numerics chain)
    # work decomposition: items are (n, kg, row block) in `order`
    row_blocks: int           # register-block rows per image (the last may be a tail)
    items: int
    row_tail: int             # rows of the last row block (== hb when no tail)
    kv_tail: int              # vectors of the last channel group (== kv when no tail)
    col_segments: tuple       # Segments along the output width
    cases: tuple              # Cases the work-item loop dispatches on
    row_in_step: int          # input offset of one register-block row step (hb * stride rows)
    row_out_step: int
    group_w_step: int         # weight offset of one channel group (kv vectors)
    group_out_step: int
    tiles: tuple              # every Tile shape the kernel instantiates
    registers: int            # vector registers the largest tile needs
    notes: tuple = field(default=())

    @property
    def int_accumulate(self) -> bool:
        """INT16 pairs into INT32 (with flushes), as opposed to FP32 FMAs."""
        return self.isa.precision == "dfp16"

    @property
    def storage(self) -> str:
        """numpy dtype name of the input and weight layouts."""
        return "int16" if self.int_accumulate else "float32"

    def tile(self, h: int, w: int, v: int) -> Tile:
        """The Tile of one shape."""
        for t in self.tiles:
            if (t.h, t.w, t.v) == (h, w, v):
                return t
        raise KeyError((h, w, v))

    def summary(self) -> list[str]:
        """Human-readable lines describing the plan (used as comments in emitted IR and assembly)."""
        s, n = self.spec, self.numerics
        lines = [
            f"layer {s.name or '-'}: {s.describe()}",
            f"pass {self.pass_name}, isa {self.isa.name} ({self.isa.instruction}, {self.lanes} lanes), "
            f"cpu {self.target.cpu}",
            f"blocking {self.blocking.describe()}",
            f"register block {self.blocking.hb}x{self.blocking.wb} pixels x {self.blocking.kv} vectors: "
            f"{self.registers} of {self.target.vector_registers} vector registers",
            f"layouts: input {list(self.in_shape)} weights {list(self.w_shape)} output {list(self.out_shape)}",
            f"reduction: {self.steps} steps of {self.unroll} channel elements",
        ]
        if self.int_accumulate:
            lines.append(
                f"numerics: bits x{n.bits_x}/w{n.bits_w}, overflow {n.overflow}, chain {self.chain} "
                f"pair-instructions (safe {n.safe_chain}), flush INT32->FP32 every {self.steps_per_flush} "
                f"steps, {self.flushes} flushes per tile")
        lines.append(f"work items: {self.items} = N {s.N} x groups {self.KG} x row blocks {self.row_blocks}, "
                     f"order {self.blocking.order}")
        return lines + list(self.notes)


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _segments(extent: int, block: int, in_col: int, out_col: int) -> tuple:
    full, tail = divmod(extent, block)
    segs = []
    if full:
        segs.append(Segment(full, block, 0, block * in_col, 0, block * out_col))
    if tail:
        start = full * block
        segs.append(Segment(1, tail, start * in_col, tail * in_col, start * out_col, tail * out_col))
    return tuple(segs)


def register_need(h: int, w: int, v: int) -> int:
    """Vector registers a register block needs: accumulators, weight vectors and one broadcast.

    FP32 partial sums never take registers: flushes add into the output tile in memory (L1), which
    keeps the whole register file for INT32 accumulators (DESIGN.md, measured)."""
    return h * w * v + v + 1


def make_plan(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str,
              pass_name: str = "fprop") -> Plan:
    """Plan one kernel; raises PlanError when the blocking cannot work for this spec and target."""
    if pass_name not in PASSES:
        raise PlanError(f"pass={pass_name!r}: must be one of {', '.join(PASSES)}")
    isa = get_isa(isa_name)
    target.check_isa(isa_name)
    b = blocking
    if b.order not in ORDERS:
        raise PlanError(f"order={b.order!r}: must be one of {', '.join(ORDERS)}")
    for name in ("kv", "wb", "hb"):
        if not isinstance(getattr(b, name), int) or getattr(b, name) < 1:
            raise PlanError(f"{name}={getattr(b, name)!r}: must be an integer >= 1")
    int_acc = isa.precision == "dfp16"
    if numerics.overflow == "saturate" and int_acc and not isa.saturating:
        raise PlanError(f"overflow='saturate' needs a saturating multiply-accumulate (vpdpwssds); "
                        f"isa={isa.name!r} has none: use avx512_vnni or avx_vnni, or overflow='exact'")
    elem = 2 if int_acc else 1
    lanes = isa.lanes
    s = spec
    channel_elems = ceil(s.C / elem)
    cpb = b.cpb if b.cpb is not None else min(lanes, channel_elems)
    if not 1 <= cpb <= 64:
        raise PlanError(f"cpb={cpb}: must be in 1..64 channel elements")
    chain = numerics.effective_chain if int_acc else 0
    unroll = b.unroll if b.unroll is not None else cpb
    if int_acc and b.unroll is None and unroll > chain:
        unroll = _largest_divisor_at_most(cpb, chain)
    if not 1 <= unroll <= cpb or cpb % unroll:
        raise PlanError(f"unroll={unroll}: must divide cpb={cpb}")
    if int_acc and unroll > chain:
        raise PlanError(f"unroll={unroll}: a step of {unroll} pair-instructions exceeds the accumulate chain "
                        f"{chain} (bits x{numerics.bits_x}/w{numerics.bits_w}, {numerics.overflow}); use unroll <= {chain}")

    CB = ceil(channel_elems / cpb)
    KB = ceil(s.K / lanes)
    kv = min(b.kv, KB)
    KG = ceil(KB / kv)
    kv_tail = KB - (KG - 1) * kv
    P, Q = s.P, s.Q
    hb, wb = min(b.hb, P), min(b.wb, Q)
    row_blocks = ceil(P / hb)
    row_tail = P - (row_blocks - 1) * hb
    Hp, Wp = s.H + 2 * s.pad, s.W + 2 * s.pad

    # Layouts, all strides in storage elements.
    ce = cpb * elem
    in_shape = (s.N, CB, Hp, Wp, ce)
    in_w, in_h = ce, Wp * ce
    in_cb = Hp * in_h
    in_n = CB * in_cb
    w_shape = (KB, CB, s.R, s.S, cpb, lanes, elem)
    w_s = cpb * lanes * elem
    w_r, w_cb = s.S * w_s, s.R * s.S * w_s
    w_kb = CB * w_cb
    out_shape = (s.N, KB, P, Q, lanes)
    out_q, out_p = lanes, Q * lanes
    out_kb = P * out_p
    out_n = KB * out_kb

    groups = cpb // unroll
    in_steps, w_steps = [], []
    for cb in range(CB):
        for r in range(s.R):
            for c in range(s.S):
                for g in range(groups):
                    in_steps.append(cb * in_cb + r * in_h + c * in_w + g * unroll * elem)
                    w_steps.append(cb * w_cb + r * w_r + c * w_s + g * unroll * lanes * elem)
    steps = len(in_steps)
    per_flush = steps if not int_acc else min(steps, chain // unroll)
    flushes = ceil(steps / per_flush)
    if max(in_steps[-1] + in_n * (s.N - 1) + in_n, w_steps[-1] + w_kb * KB) >= 2**31:
        raise PlanError("tensor too large: offsets exceed 32 bits; split the batch")

    row_sizes = {hb, row_tail}
    col_segments = _segments(Q, wb, s.stride * in_w, out_q)
    cases = tuple(Case(2 * (h != hb) + (v != kv), h, v)
                  for h in sorted(row_sizes, reverse=True) for v in sorted({kv, kv_tail}, reverse=True))
    tiles, registers = [], 0
    for h in sorted(row_sizes, reverse=True):
        for seg in col_segments:
            for v in sorted({kv, kv_tail}, reverse=True):
                pixels = [(i, j) for i in range(h) for j in range(seg.size)]
                bcast = tuple(tuple(i * s.stride * in_h + j * s.stride * in_w + p * elem for i, j in pixels)
                              for p in range(unroll))
                weights = tuple(tuple(vv * w_kb + p * lanes * elem for vv in range(v)) for p in range(unroll))
                out = tuple(tuple(vv * out_kb + i * out_p + j * out_q for vv in range(v)) for i, j in pixels)
                tiles.append(Tile(h, seg.size, v, bcast, weights, out))
                registers = max(registers, register_need(h, seg.size, v))
    budget = target.vector_registers
    if registers > budget:
        raise PlanError(f"register block hb={hb} x wb={wb} x kv={kv} needs {registers} vector registers "
                        f"({hb * wb * kv} accumulators + {kv} weights + 1 broadcast); {target.cpu} has {budget}")
    notes = []
    if b.kv > KB or b.wb > Q or b.hb > P:
        notes.append(f"note: blocking clipped to the layer (kv {kv}, wb {wb}, hb {hb})")
    return Plan(
        spec=s, numerics=numerics, blocking=Blocking(kv, wb, hb, cpb, unroll, b.order), target=target,
        isa=isa, pass_name=pass_name, elem=elem, lanes=lanes, cpb=cpb, unroll=unroll, CB=CB, KB=KB, KG=KG,
        Hp=Hp, Wp=Wp, in_shape=in_shape, w_shape=w_shape, out_shape=out_shape,
        in_strides=(in_n, in_cb, in_h, in_w), w_kb_stride=w_kb, out_strides=(out_n, out_kb, out_p, out_q),
        steps=steps, in_step_offsets=tuple(in_steps), w_step_offsets=tuple(w_steps),
        steps_per_flush=per_flush, flushes=flushes, chain=min(chain, per_flush * unroll) if int_acc else 0,
        row_blocks=row_blocks, items=s.N * KG * row_blocks, row_tail=row_tail, kv_tail=kv_tail,
        col_segments=col_segments, cases=cases, row_in_step=hb * s.stride * in_h, row_out_step=hb * out_p,
        group_w_step=kv * w_kb, group_out_step=kv * out_kb, tiles=tuple(tiles), registers=registers, notes=tuple(notes),
    )
