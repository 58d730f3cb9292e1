"""Size limits decided from the spec before anything is planned or allocated.

Each pass counts its `Geometry` (blocked shapes, steps, calls, reduction blocks) with the same arithmetic as
its planner, without building a table; `estimate` turns that into bytes, and `check` refuses a kernel whose
offsets would pass 2**31 or whose estimate exceeds the memory this machine has available (`SizeError`).

How close the estimate is: the blocked operands, the output and the call table (calls x 6 int64 and its
int32 copy) are counted exactly; the step tables as two tuples of Python ints at STEP_BYTES a step, which
over-counts the small ints Python shares (tests/test_limits.py checks, on small layers of every pass, that
tables + blocked is at least the real allocation and at most 1.25 times it). The call table is only built
when a kernel runs (or something reads `Plan.call_table`): planning, pricing and emitting IR describe the
calls by their grids, which take memory for the grids and items only. `working` adds what building the
table holds besides it (Calls.table writes it in place; its check that no two calls share a dst sorts a
copy of that column, with a mask and the unique values), and `floats` the float32 operands and result and
the INT16 mantissas a run holds; those are upper bounds of peaks, not measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import prod

from dfpgen.errors import SizeError

GIB = 2.0**30
OFFSET_LIMIT = 2**31
CALL_FIELDS = 6                 # = plan.CALL_FIELDS (plan imports nothing from here)
STEP_BYTES = 2 * (8 + 32)       # two tables; per step a tuple slot and an int object (28 bytes, 32 allocated)
TABLE_HEADERS = 2 * 64          # the two tuples' headers


@dataclass(frozen=True)
class Geometry:
    """What a pass planner's tables and layouts will hold for one (spec, numerics, blocking, ISA), counted
    without building them. Shapes are the blocked operands' (src, vec) and FP32 dst's, in elements."""

    src_shape: tuple
    vec_shape: tuple
    dst_shape: tuple
    storage_bytes: int    # bytes of a src/vec element: 2 (INT16), 1 (INT8) or 4 (FP32)
    steps: int            # length of the step tables
    calls: int            # rows of the call table
    blocks: int           # reduction blocks
    batch: int            # times the items repeat (the batch), 1 when the pass reduces over it
    batched: bool         # src and dst are [N]-outermost and the items repeat over images (not WTGRAD)

    def largest_offset(self) -> int:
        """An upper bound of what finish() checks against 2**31: the largest table offset (within a tensor,
        one image's for batched passes) plus the batch stride times the batch."""
        src, vec, dst = (prod(s) for s in (self.src_shape, self.vec_shape, self.dst_shape))
        if self.batched:
            per = (src // self.batch, vec, dst // self.batch)
            return max(per) + max(per[0], per[2]) * self.batch
        return max(src, vec, dst)


@dataclass(frozen=True)
class Footprint:
    """Estimated bytes of one kernel's plan tables, planning transients, blocked operands and float data."""

    tables: int      # call table (int64 and int32 copy, once built for a run) and step tables, as the Plan holds them
    working: int     # transients of building the call table (its dst check)
    blocked: int     # blocked src, vec and FP32 dst
    floats: int      # float32 operands and result, and INT16 mantissas (0 when only emitting)

    @property
    def total(self) -> int:
        """All of it, in bytes."""
        return self.tables + self.working + self.blocked + self.floats

    def describe(self) -> str:
        """E.g. '3.1 GiB (tables 1.0, blocked 2.1)': the parts over 0.05 GiB."""
        parts = [(n, getattr(self, n)) for n in ("tables", "working", "blocked", "floats")]
        shown = ", ".join(f"{n} {gib(v)}" for n, v in parts if v >= 0.05 * GIB)
        return f"{gib(self.total)} GiB" + (f" ({shown})" if shown else "")


def gib(nbytes: int) -> str:
    """Bytes in GiB for messages: one decimal, or two significant digits below 1 GiB."""
    value = nbytes / GIB
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def estimate(g: Geometry, float_elements: int = 0, mantissa_elements: int = 0) -> Footprint:
    """Bytes a kernel of geometry g needs; `float_elements` float32 and `mantissa_elements` INT16 values
    of user-side operands and results (bench, tune and Conv2d hold them; emit and compile do not)."""
    table = g.calls * CALL_FIELDS * 8
    blocked = (prod(g.src_shape) + prod(g.vec_shape)) * g.storage_bytes + prod(g.dst_shape) * 4
    return Footprint(tables=table + table // 2 + g.steps * STEP_BYTES + TABLE_HEADERS,
                     working=g.calls * (2 * 8 + 1),
                     blocked=blocked, floats=4 * float_elements + 2 * mantissa_elements)


def estimate_emission(g: Geometry) -> Footprint:
    """Bytes planning and emitting a kernel need when it will not run (cross-emission): the step tables;
    the calls are described, not built (dfpgen.codegen.plan.Calls)."""
    return Footprint(tables=g.steps * STEP_BYTES + TABLE_HEADERS, working=0, blocked=0, floats=0)


def available_memory() -> int:
    """Bytes this machine can still give: MemAvailable of /proc/meminfo, else all physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 1 << 62   # no way to tell: refuse nothing


def check_offsets(g: Geometry, layer: str, pass_name: str, names: tuple[str, str, str]) -> None:
    """SizeError when some offset of the kernel would pass 2**31 (the tables hold int32 offsets)."""
    if g.largest_offset() < OFFSET_LIMIT:
        return
    shapes = (g.src_shape, g.vec_shape, g.dst_shape)
    name, shape = max(zip(names, shapes), key=lambda ns: prod(ns[1]))
    raise SizeError(f"layer {layer} ({pass_name}): offsets past 2**31: split the batch ({name} blocked "
                    f"{list(shape)} holds {prod(shape):,} elements)")


def check_memory(f: Footprint, layer: str, pass_name: str, what: str = "kernel") -> None:
    """SizeError naming the estimate and the limit when f does not fit in the available memory."""
    limit = available_memory()
    if f.total > limit:
        raise SizeError(f"layer {layer} ({pass_name}): the {what} needs about {f.describe()}, more than the "
                        f"{gib(limit)} GiB of memory available: use a smaller batch or layer")
