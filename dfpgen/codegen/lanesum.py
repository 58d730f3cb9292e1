"""The INT8 ISAs' corrections in a generated kernel (templates/lanesum.ll.j2): each output lane's INT32
-offset x sum(vec), summed from the vec bytes already in the layout and written into it. A pass plans a
`CorrectionTable` per layout (which vectors each correction sums, where it goes: dfpgen/codegen/layout.py);
one kernel call then writes every correction of the operand. numpy's int8 reductions over the blocked layouts
and its indexing took longer than the convolution kernels they serve on small layers."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dfpgen.codegen import emit, jit
from dfpgen.core.target import Isa, Target, get_isa, host
from dfpgen.errors import ShapeError

# (buffer, outputs, segments, number of outputs, factor)
CORRECTIONS_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int32)
GROUP = 4   # bytes per lane and vector: vpdpbusd's quads


@dataclass(frozen=True)
class LaneSumPlan:
    """The corrections kernel for vectors of `lanes` 32-bit lanes of `GROUP` signed bytes."""

    target: Target
    isa: Isa
    lanes: int

    template = "lanesum.ll.j2"
    entry = "dfpgen_corrections"

    def summary(self) -> list[str]:
        """Comment lines for the IR header."""
        return [f"INT8 corrections: lane sums of {self.lanes} lanes x {GROUP} signed bytes per vector, times a "
                f"factor, {self.target.cpu} {self.isa.name}"]


@dataclass(frozen=True, eq=False)
class CorrectionTable:
    """Where each correction of a vec layout goes and what it sums, in vectors of `lanes` x 4 bytes from the
    layout's start: `outputs` [n, 3] (destination vector, first segment, segments) and `segments` [m, 2]
    (first vector, vectors); the kernel reads them with the vectors as byte offsets (`kernel_outputs`,
    `kernel_segments`), and `extent` is the vectors a layout needs for the table to stay inside it."""

    lanes: int
    outputs: np.ndarray
    segments: np.ndarray
    kernel_outputs: np.ndarray
    kernel_segments: np.ndarray
    extent: int

    @staticmethod
    def of(lanes: int, outputs: list) -> CorrectionTable:
        """A table from [(destination vector, [(first vector, vectors), ...]), ...]."""
        rows, segments = [], []
        for dst, parts in outputs:
            rows.append((dst, len(segments), len(parts)))
            segments += parts
        rows = np.array(rows, np.int64).reshape(-1, 3)
        segments = np.array(segments, np.int64).reshape(-1, 2)
        V = lanes * GROUP
        extent = max([int(rows[:, 0].max()) + 1 if len(rows) else 0] +
                     ([int((segments[:, 0] + segments[:, 1]).max())] if len(segments) else []))
        return CorrectionTable(lanes, rows, segments, np.ascontiguousarray(rows * np.array([V, 1, 1], np.int64)),
                               np.ascontiguousarray(segments * np.array([V, 1], np.int64)), extent)


def render(plan: LaneSumPlan) -> str:
    """The IR of a corrections kernel (for inspection and tests)."""
    return emit.render_kind(plan)


@lru_cache(maxsize=None)
def _compiled(plan: LaneSumPlan) -> jit.Compiled:
    return jit.jit_on_host(plan, render(plan), CORRECTIONS_SIGNATURE, "INT8 corrections")


@lru_cache(maxsize=None)
def _host_function(isa_name: str, lanes: int):
    """The host's corrections kernel, looked up by name: plans unpickled from the plan cache each carry their own
    Target, and comparing those (feature sets of hundreds of names) took longer than the kernel on small layers."""
    return _compiled(LaneSumPlan(host(), get_isa(isa_name), lanes)).function


def write_corrections(buf: np.ndarray, table: CorrectionTable, factor: int, target: Target, isa: Isa) -> None:
    """buf (a C-contiguous int8 layout) gets, at each output of `table`, factor x the lane sums of its segments
    as `lanes` INT32s: in the generated kernel on the host, else in numpy."""
    if buf.dtype != np.int8 or not buf.flags.c_contiguous or not buf.flags.writeable:
        raise ShapeError(f"corrections: expected a writeable C-contiguous int8 layout, got {buf.dtype}")
    if table.extent * table.lanes * GROUP > buf.nbytes:
        raise ShapeError(f"corrections: the table reaches past the layout's {buf.nbytes} bytes")
    if target.is_host:
        _host_function(isa.name, table.lanes)(buf.ctypes.data, table.kernel_outputs.ctypes.data,
                                              table.kernel_segments.ctypes.data, len(table.kernel_outputs),
                                              int(factor))
        return
    vectors = buf.reshape(-1, table.lanes, GROUP)
    words = buf.reshape(-1, table.lanes * GROUP).view(np.int32)
    for dst, first, count in table.outputs:
        total = np.zeros(table.lanes, np.int64)
        for start, n in table.segments[first:first + count]:
            total += vectors[start:start + n].sum(axis=(0, 2), dtype=np.int64)
        words[dst] = (factor * total).astype(np.int32)
