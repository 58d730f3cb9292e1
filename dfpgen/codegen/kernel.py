"""A compiled kernel: its plan, IR and assembly for inspection, and a threaded call over work items."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from dfpgen.codegen import emit, jit
from dfpgen.codegen.launch import default_threads, run_shares
from dfpgen.codegen.plan import Plan
from dfpgen.errors import ShapeError, TargetError


@dataclass
class Kernel:
    """One generated kernel. `ir` is the emitted IR; `asm` is produced on first access."""

    plan: Plan
    ir: str
    entry: str
    source: str = "given"     # where the blocking came from: given, tuned, default
    _compiled: jit.Compiled | None = field(default=None, repr=False)

    @cached_property
    def asm(self) -> str:
        """Optimized assembly for the plan's CPU."""
        return jit.assembly(self.ir, self.plan.target, self.plan.isa)

    @cached_property
    def optimized_ir(self) -> str:
        """The IR after LLVM's O3 pipeline."""
        return jit.optimized_ir(self.ir, self.plan.target, self.plan.isa)

    @property
    def executable(self) -> bool:
        """Whether this kernel may run here: emitted for the host, whose CPU has the kernel's ISA."""
        return self.plan.target.is_host and self.plan.target.supports(self.plan.isa.name)

    def compiled(self) -> jit.Compiled:
        """JIT-compile (or load from the object cache) on first use."""
        if not self.executable:
            raise TargetError(f"kernel for cpu {self.plan.target.cpu!r}, isa {self.plan.isa.name!r} was emitted "
                              f"for inspection and cannot run on this machine")
        if self._compiled is None:
            self._compiled = jit.jit(self.ir, self.entry, self.plan.target, self.plan.isa)
        return self._compiled

    def _check(self, name: str, a: np.ndarray, shape: tuple, dtype: str) -> None:
        if a.dtype != np.dtype(dtype) or a.shape != shape or not a.flags.c_contiguous:
            raise ShapeError(f"{name}: expected a C-contiguous {dtype} "
                             f"array of shape {shape}, got {a.dtype} {a.shape}"
                             f"{'' if a.flags.c_contiguous else ' (not contiguous)'}")

    def run(self, blocked_in: np.ndarray, blocked_w: np.ndarray, out: np.ndarray, scale: float = 1.0,
            threads: int | None = None) -> float:
        """Run every work item on blocked operands, writing `out`; returns max|out| (the fused epilogue)."""
        self._check("input", blocked_in, self.plan.src_shape, self.plan.src_storage)
        self._check("weights", blocked_w, self.plan.vec_shape, self.plan.vec_storage)
        self._check("out", out, self.plan.dst_shape, "float32")
        fn = self.compiled().function
        split = self.plan.split(threads or default_threads())   # each thread's boxes of rows and filter blocks
        maxabs = np.zeros(max(1, split.ranges), dtype=np.float32)
        args = (blocked_in.ctypes.data, blocked_w.ctypes.data, out.ctypes.data, self.plan.call_words.ctypes.data,
                float(scale))
        slot = maxabs.ctypes.data
        run_shares(lambda i, b, e: fn(*args, slot + 4 * i, b, e), split.shares)
        return float(maxabs.max())


def build(plan: Plan) -> Kernel:
    """Emit the IR for a plan and wrap it in a Kernel (compilation happens on first run)."""
    return Kernel(plan, emit.render(plan), plan.entry)
