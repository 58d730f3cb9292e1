"""Max-pooling kernels on blocked FP32 tensors `[N][CB][H][W][L]`, planned here and rendered by
templates/maxpool.ll.j2 (docs/architecture.md, Training runtime).

A plan fixes the window (k, stride, padding) and the direction; the extents H, W, P, Q are run-time
arguments, so one compiled kernel serves every layer with that window. A work item is one (image, channel
block) plane, so a result never depends on the thread count.

* forward: y[p][q] is the maximum over the window's offsets r*k + s that fall inside the input, taken in
  offset order with the first maximum winning (a NaN, once met, stays); the winning offset is stored as
  a byte per lane (`NONE` where the window holds no input element).
* backward: each dx element gathers, in offset order, dy of every window that chose it, the order in
  which the numpy reference (dfpgen/nn/pooling.py) adds them, so both give the same bits.

Kernel signature: `void entry(ptr src, ptr choice, ptr dst, ptr maxabs_slot, i64 H, i64 W, i64 P, i64 Q,
i64 begin, i64 end)`; forward reads x and writes the choices and y, backward reads dy and the choices and
writes dx. Both return max|written result| as float bits in the slot (NaN above every number).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dfpgen.codegen import jit
from dfpgen.codegen.emit import render_kind
from dfpgen.codegen.launch import run_ranges, split_items
from dfpgen.core.target import Isa, Target, get_isa, host
from dfpgen.errors import PlanError

SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_int64)
NONE = 255          # the stored choice of a window without an input element
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class MaxPoolPlan:
    """One max-pooling kernel: a k x k window moving by `stride` over an input padded by `pad`."""

    target: Target
    isa: Isa
    direction: str
    k: int
    stride: int
    pad: int

    template = "maxpool.ll.j2"
    none = NONE

    @property
    def lanes(self) -> int:
        """Channels per vector: the blocked tensors' last axis."""
        return self.isa.lanes

    @property
    def entry(self) -> str:
        """The kernel function's name."""
        return f"dfpgen_maxpool_{self.direction}"

    @property
    def offsets(self) -> tuple[tuple[int, int, int], ...]:
        """(offset r*k + s, r, s) for every window position, in the order the maximum is taken."""
        return tuple((r * self.k + s, r, s) for r in range(self.k) for s in range(self.k))

    def summary(self) -> list[str]:
        """Comment lines for the IR header."""
        return [f"max pooling {self.direction}: {self.k}x{self.k} window, stride {self.stride}, pad {self.pad}, "
                f"{self.lanes} lanes, {self.target.cpu} {self.isa.name}"]


def plan(direction: str, k: int, stride: int, pad: int, isa: str | Isa | None = None,
         target: Target | None = None) -> MaxPoolPlan:
    """Plan a max-pooling kernel (default ISA: the target's best DFP ISA, whose lanes the tensors have)."""
    if direction not in DIRECTIONS:
        raise PlanError(f"max pooling: direction {direction!r}; must be one of {', '.join(DIRECTIONS)}")
    if not 1 <= k or k * k >= NONE:
        raise PlanError(f"max pooling: k={k}; must be 1..15 (a window offset is stored in a byte)")
    if stride < 1:
        raise PlanError(f"max pooling: stride={stride}; must be >= 1")
    if pad < 0:
        raise PlanError(f"max pooling: pad={pad}; must be >= 0")
    target = target or host()
    isa = get_isa(isa or target.best_isa("dfp16")) if not isinstance(isa, Isa) else isa
    target.check_isa(isa.name)
    return MaxPoolPlan(target, isa, direction, int(k), int(stride), int(pad))


def render(p: MaxPoolPlan) -> str:
    """LLVM IR text of a max-pooling kernel."""
    return render_kind(p)


@dataclass
class MaxPoolKernel:
    """A compiled max-pooling kernel: its plan, IR and callable."""

    plan: MaxPoolPlan
    ir: str
    compiled: jit.Compiled

    def run(self, src: np.ndarray, choice: np.ndarray, dst: np.ndarray, H: int, W: int, P: int, Q: int,
            planes: int, threads: int) -> float:
        """Run the kernel over `planes` (image, channel block) planes on threads; returns max|dst|
        (NaN if any). The caller has checked the arrays' shapes, types and alignment."""
        ranges = split_items(planes, threads)
        slots = np.zeros(len(ranges), np.uint32)
        fn = self.compiled.function
        args = (src.ctypes.data, choice.ctypes.data, dst.ctypes.data)
        run_ranges(lambda i, b, e: fn(*args, slots.ctypes.data + 4 * i, H, W, P, Q, b, e), ranges)
        return float(np.uint32(slots.max()).view(np.float32))


@lru_cache(maxsize=None)
def kernel(p: MaxPoolPlan) -> MaxPoolKernel:
    """The compiled kernel for a plan, once per process (the object cache spares LLVM across processes)."""
    ir = render(p)
    return MaxPoolKernel(p, ir, jit.jit_on_host(p, ir, SIGNATURE, "max pooling"))
