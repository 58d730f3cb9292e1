"""Lane sums of the INT8 ISAs' vec operands: per output lane, the sum of its signed bytes over a run of
vectors, in a generated kernel (templates/lanesum.ll.j2). The corrections -offset x sum(vec) of each pass
(dfpgen/codegen/layout.py) start from these sums; numpy's int8 reductions over the blocked layouts took
longer than the kernels they serve on small layers."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dfpgen.codegen import emit, jit
from dfpgen.core.target import Isa, Target
from dfpgen.errors import ShapeError
from dfpgen.version import __version__

# (src, out, vectors per row, row stride in bytes, first row, end row)
LANESUM_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_int64)
GROUP = 4   # bytes per lane and vector: vpdpbusd's quads
WAYS = 2    # independent accumulators per row: two vectors in flight per iteration


@dataclass(frozen=True)
class LaneSumPlan:
    """One lane-sum kernel: `lanes` 32-bit lanes of `GROUP` signed bytes per vector, `ways` accumulators."""

    target: Target
    isa: Isa
    lanes: int
    ways: int = WAYS

    template = "lanesum.ll.j2"
    entry = "dfpgen_lanesums"

    def summary(self) -> list[str]:
        """Comment lines for the IR header."""
        return [f"lane sums: {self.lanes} lanes of {GROUP} signed bytes per vector, {self.ways} accumulators, "
                f"{self.target.cpu} {self.isa.name}"]


def render(plan: LaneSumPlan) -> str:
    """The IR of a lane-sum kernel (for inspection and tests)."""
    return emit.environment().get_template(plan.template).render(plan=plan, entry=plan.entry, version=__version__)


@lru_cache(maxsize=None)
def _compiled(plan: LaneSumPlan) -> jit.Compiled:
    return jit.jit(render(plan), plan.entry, plan.target, plan.isa, signature=LANESUM_SIGNATURE)


def lane_sums(view: np.ndarray, target: Target, isa: Isa) -> np.ndarray:
    """int64 (rows, lanes) sums over axes 1 and 3 of an int8 view (rows, count, lanes, 4) whose rows are
    C-contiguous (the rows themselves any positive stride apart): in the generated kernel on the host, else
    in numpy."""
    if view.dtype != np.int8 or view.ndim != 4 or view.shape[3] != GROUP:
        raise ShapeError(f"lane sums: expected an int8 (rows, count, lanes, {GROUP}) view, got {view.dtype} "
                         f"{view.shape}")
    rows, count, lanes, _ = view.shape
    inner = view[0] if rows else view.reshape(count, lanes, GROUP)
    if not target.is_host or rows == 0 or view.strides[0] <= 0 or not inner.flags.c_contiguous:
        return view.sum(axis=(1, 3), dtype=np.int64)
    out = np.empty((rows, lanes), np.int32)
    # Each sum has at most count * 4 terms of |b| <= 128: within int32 for any layout whose corrections fit it.
    _compiled(LaneSumPlan(target, isa, lanes)).function(view.ctypes.data, out.ctypes.data, count, view.strides[0],
                                                        0, rows)
    return out.astype(np.int64)
