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
from typing import Callable

from dfpgen.codegen.plan import finish
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
    order: int                # position in listings (FPROP, BPROP, WTGRAD)
    template: str = "conv.ll.j2"

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

    def plan(self, spec: ConvSpec, numerics, blocking, target, isa_name: str):
        """Plan one kernel of this pass (PlanError when the blocking cannot work here)."""
        return finish(spec, numerics, blocking, target, self, self.planner(spec, numerics, blocking, target, isa_name))
