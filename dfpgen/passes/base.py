"""What a training pass is. Each pass module writes one `Pass`; everything else asks it.

A pass computes one convolution-shaped product of two operands: the `src` operand is broadcast
element by element, the `vec` operand is loaded as vectors, and the `result` is accumulated in
FP32. The definition names its tensors (with their numerics kind and the axis groups split),
its planner and layouts, its float64 reference, its template, and the two facts the cost model
and the tuner ask of it: what it reduces over and which spec extents its register blocks tile.
docs/architecture.md walks through adding one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from math import prod
from typing import Callable

from dfpgen.codegen.footprint import Footprint, check_memory, check_offsets, estimate, estimate_emission
from dfpgen.codegen.plan import Blocking, ResultLayout, finish
from dfpgen.core.numerics import Kind
from dfpgen.core.spec import ConvSpec


@dataclass(frozen=True)
class Tensor:
    """One NCHW or KCRS tensor a pass reads or writes."""

    name: str                 # as the API and messages call it: x, w, dy, y, dx, dw
    dims: tuple               # the ConvSpec extents of its axes, outermost first
    group_axis: int           # the channel axis that groups split
    kind: Kind | None = None  # an operand's numerics kind; None for a result (always FP32)

    def shape(self, spec: ConvSpec) -> tuple:
        """The tensor's shape for one layer."""
        return tuple(getattr(spec, d) for d in self.dims)


X = Tensor("x", ("N", "C", "H", "W"), 1, Kind.ACT)
W = Tensor("w", ("K", "Cg", "R", "S"), 0, Kind.WEIGHT)
DY = Tensor("dy", ("N", "K", "P", "Q"), 1, Kind.GRAD)
Y = Tensor("y", ("N", "K", "P", "Q"), 1)
DX = Tensor("dx", ("N", "C", "H", "W"), 1)
DW = Tensor("dw", ("K", "Cg", "R", "S"), 0)


# The register block with the most calls: the largest call table default_blocking and the tuner plan.
SMALLEST_BLOCK = Blocking(1, 1, 1)


class Reduction(Enum):
    """What a pass sums over; the cost model and the tuner's knobs differ between the two."""

    CHANNELS = "channels x filter taps"       # channel blocks (cpb), item orders
    PIXELS = "images x output pixels"         # reduction blocks of output rows (rb)


@dataclass(frozen=True, eq=False)
class Pass:
    """One training pass: result = src (*) vec, planned, emitted and checked as its fields say."""

    name: str
    summary: str
    src: Tensor
    vec: Tensor
    result: Tensor
    reduction: Reduction
    reduced: tuple            # the ConvSpec extents summed over (their product is the reduction length)
    block_axes: tuple         # the ConvSpec extents a register block tiles: (vectors, width, height)
    planner: Callable         # (spec, numerics, blocking, target, isa_name) -> PassTables
    to_src: Callable          # (src array, plan) -> the blocked src operand
    to_vec: Callable          # (vec array, plan) -> the blocked vec operand
    from_dst: Callable        # (blocked FP32 result, plan) -> the result in NCHW / KCRS
    reference: Callable       # (src array, vec array, spec) -> the float64 result
    geometry: Callable        # (spec, numerics, blocking, target, isa_name) -> its plan's Geometry, counted
    order: int                # position in listings (FPROP, BPROP, WTGRAD)
    template: str = "conv.ll.j2"
    # The same layouts as view pairs for the generated data-movement kernels (dfpgen/codegen/views.py):
    # (source, source is blocked, operand buffer, plan) -> [(source view, buffer view)], or None for numpy.
    src_views: Callable | None = None
    vec_views: Callable | None = None
    # (vec buffer, plan): writes what the vec layout derives from its values once they are in place (the INT8
    # ISAs' corrections, dfpgen/codegen/layout.py); to_vec calls it too, so both paths end alike.
    vec_finish: Callable | None = None
    # How the FP32 result leaves the kernel: True when its layout is already the runtime's blocked
    # [N][C/L][H][W][L] (dfpgen/runtime/blocked.py); else (result buffer, KCRS array) -> view pairs or None.
    result_views: Callable | bool | None = None

    def __repr__(self) -> str:
        return f"<pass {self.name}>"

    def __reduce__(self):
        from dfpgen.passes import get  # a pass pickles as its name: there is one object per pass

        return get, (self.name,)

    @property
    def operands(self) -> tuple[Tensor, Tensor]:
        """(src, vec)."""
        return self.src, self.vec

    @property
    def entry(self) -> str:
        """The exported function name of its kernels."""
        return f"dfpgen_{self.name}"

    def reduction_length(self, spec: ConvSpec) -> int:
        """Products summed into each output element."""
        length = 1
        for extent in self.reduced:
            length *= getattr(spec, extent)
        return length

    def block_extents(self, spec: ConvSpec, lanes: int) -> tuple[int, int, int]:
        """(vector blocks, width, height) that register blocks tile for this layer."""
        vectors, width, height = (getattr(spec, a) for a in self.block_axes)
        return -(-vectors // lanes), width, height

    def reduced_channel_elements(self, spec: ConvSpec, elem: int) -> int:
        """Elements of `elem` channels along the reduced channel axis (CHANNELS passes)."""
        return -(-getattr(spec, self.reduced[0]) // elem)

    def footprint(self, spec: ConvSpec, numerics, blocking, target, isa_name: str, run: bool = False) -> Footprint:
        """The estimated memory of one kernel (dfpgen.codegen.footprint), from the spec alone; SizeError when its
        offsets pass 2**31. `blocking` None counts SMALLEST_BLOCK, the largest call table that default_blocking
        and the tuner plan; `run` adds the float operands and result (and mantissas) of the whole layer. A
        kernel for another CPU than the host only plans and emits: its step tables alone."""
        g = self.geometry(spec.per_group(), numerics, blocking or SMALLEST_BLOCK, target, isa_name)
        check_offsets(g, spec.name or spec.describe(), self.name, (self.src.name, self.vec.name, self.result.name))
        if not target.is_host:   # cross-emitted for inspection: it never runs, so no call table and no operands
            return estimate_emission(g)
        if not run:
            return estimate(g)
        operands = sum(prod(t.shape(spec)) for t in self.operands)
        return estimate(g, operands + prod(self.result.shape(spec)), operands if g.storage_bytes == 2 else 0)

    def check_size(self, spec: ConvSpec, numerics, blocking, target, isa_name: str, run: bool = False) -> Footprint:
        """The footprint, after SizeError when it exceeds the available memory (names the estimate and the limit)."""
        found = self.footprint(spec, numerics, blocking, target, isa_name, run)
        check_memory(found, spec.name or spec.describe(), self.name, "run" if run else "kernel")
        return found

    def plan(self, spec: ConvSpec, numerics, blocking, target, isa_name: str,
             result_layout: ResultLayout = ResultLayout.BLOCKED):
        """Plan one kernel of this pass, its result laid out as `result_layout` says (PlanError when the blocking
        or the layout cannot work here; SizeError, before any table is built, when its offsets would pass 2**31)."""
        check_offsets(self.geometry(spec, numerics, blocking, target, isa_name), spec.name or spec.describe(),
                      self.name, (self.src.name, self.vec.name, self.result.name))
        return finish(spec, numerics, blocking, target, self,
                      self.planner(spec, numerics, blocking, target, isa_name, result_layout))
