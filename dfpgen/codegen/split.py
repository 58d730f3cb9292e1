"""Which thread runs which work items: each thread owns a box of whole units along a plan's split
dimensions (FPROP and BPROP: image rows x filter blocks; WTGRAD: input-channel blocks x filter blocks x
filter taps), so its operand rows and weights are its own, and no output is shared.

A planner describes its items as a `Work`: the split dimensions (units, and the operand bytes that only
one unit reads), the nesting of the item order over them (`Level`s, outermost first) and the cost of each
item. `shares(work, threads)` picks how many parts each dimension is cut into (at most `threads` boxes in
all) and where, by cost, so that the largest share of work plus the operand bytes it reads is smallest;
each thread then runs the contiguous item ranges of its box, in item order.

Every item computes the same outputs in the same order whoever runs it, so results never depend on the
thread count; the split only decides who runs what. The kernel reads nothing of it (the template loops
over plan fields only): `Kernel.run` calls the compiled function once per range.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import prod

import numpy as np

# Multiply-accumulates a core could have done in the time it reads one operand byte that is not its own
# (from L3, which all cores share): the exchange rate between a share's work and its traffic. Only which split
# wins depends on it, never a result (a Zen 4 core: ~116 GMAC/s of vpdpwssd against ~30 GB/s from L3).
MACS_PER_BYTE = 4.0
# What one more kernel call of a share costs (a ctypes call and the kernel's entry: a few microseconds), in
# multiply-accumulates: boxes cut into many item ranges lose to whole ones.
RANGE_MACS = 2.0e5


@dataclass(frozen=True)
class Dim:
    """One split dimension: `count` units; `unit_bytes` operand bytes read by the items of one unit only
    (e.g. FPROP's filter blocks: one block's weights; its image rows: one row block's input)."""

    name: str
    count: int
    unit_bytes: float


@dataclass(frozen=True)
class Level:
    """One nesting level of the item order: `extent` values, each adding `scale` units to the coordinate
    along dimension `dim`; `batch` marks the level that walks the images (items repeat over it)."""

    dim: int
    extent: int
    scale: int = 1
    batch: bool = False


@dataclass(frozen=True)
class Work:
    """A plan's items: item i is the mixed-radix number of its level values (`levels`, outermost first);
    `costs` holds the multiply-accumulates of each item of one batch entry (its index over the levels that
    are not `batch`); `restream`: every item range reads its operands again (a pixel reduction walks all
    its reduction blocks per range), so a unit's bytes count once per range that reaches it."""

    dims: tuple
    levels: tuple
    costs: tuple
    restream: bool = False

    @property
    def items(self) -> int:
        """Items in all (the product of the level extents)."""
        return prod(level.extent for level in self.levels)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(units, costs): each item's unit along every dimension (dims x items) and its cost, in item order."""
        values = np.indices([level.extent for level in self.levels], dtype=np.int64).reshape(len(self.levels), -1)
        units = np.zeros((len(self.dims), values.shape[1]), dtype=np.int64)
        index = np.zeros(values.shape[1], dtype=np.int64)
        for level, value in zip(self.levels, values):
            units[level.dim] += value * level.scale
            if not level.batch:
                index = index * level.extent + value
        return units, np.asarray(self.costs, dtype=np.float64)[index]


@dataclass(frozen=True)
class Split:
    """How threads share a Work: `parts` per dimension, each thread's item ranges [begin, end), and `load`,
    the score of the busiest thread's box in multiply-accumulates (its work, ranges and traffic; `score`)."""

    parts: tuple
    shares: tuple
    load: float = 0.0

    @property
    def ranges(self) -> int:
        """Kernel calls in all (each share runs its ranges in order, on its own thread)."""
        return sum(len(share) for share in self.shares)


def _bounds(weights: np.ndarray, parts: int) -> list[int]:
    """parts + 1 unit boundaries cutting units 0..len(weights) into contiguous, non-empty runs of nearly
    equal weight (a unit goes where its middle falls)."""
    count, total = len(weights), float(weights.sum())
    if total > 0:
        middle = np.cumsum(weights) - weights / 2
        cuts = np.searchsorted(middle, total * np.arange(1, parts) / parts).tolist()
    else:
        cuts = [count * i // parts for i in range(1, parts)]
    bounds = [0]
    for i, cut in enumerate(cuts, 1):
        bounds.append(min(max(int(cut), bounds[-1] + 1), count - parts + i))
    return bounds + [count]


def _owners(units: np.ndarray, costs: np.ndarray, work: Work, parts: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Each item's box (mixed radix over the dimensions' parts, the first dimension outermost) and each
    box's units along every dimension (dims x boxes)."""
    owner = np.zeros(units.shape[1], dtype=np.int64)
    sizes = []
    for dim, (axis, n) in enumerate(zip(work.dims, parts)):
        bounds = _bounds(np.bincount(units[dim], weights=costs, minlength=axis.count), n)
        owner = owner * n + np.searchsorted(bounds, units[dim], side="right") - 1
        sizes.append(np.diff(bounds))
    return owner, np.array(np.meshgrid(*sizes, indexing="ij")).reshape(len(parts), -1)


def _runs(items: np.ndarray) -> tuple:
    """Contiguous [begin, end) runs of ascending item indices."""
    if not len(items):
        return ()
    breaks = np.flatnonzero(np.diff(items) != 1) + 1
    begins, ends = [0] + breaks.tolist(), breaks.tolist() + [len(items)]
    return tuple((int(items[b]), int(items[e - 1]) + 1) for b, e in zip(begins, ends))


def candidates(work: Work, threads: int) -> list[tuple]:
    """Parts per dimension (each dimension cut at most into its units) making at most `threads` boxes and
    more than half as many as the most that can be made."""
    most = min(threads, prod(d.count for d in work.dims))
    ranges = [range(1, min(d.count, threads) + 1) for d in work.dims]
    return [parts for parts in product(*ranges) if most // 2 < prod(parts) <= threads]


def score(work: Work, parts: tuple, units: np.ndarray, costs: np.ndarray) -> tuple[float, np.ndarray]:
    """What a split costs, and each item's box: the largest box's multiply-accumulates, plus RANGE_MACS per
    kernel call (item range), plus MACS_PER_BYTE x the operand bytes it reads: each unit of its box once, or
    when the work restreams, each unit once per range that reaches it."""
    owner, sizes = _owners(units, costs, work, parts)
    boxes = prod(parts)
    starts = np.concatenate([[True], owner[1:] != owner[:-1]])
    ranges = np.bincount(owner[starts], minlength=boxes)
    unit_bytes = np.array([d.unit_bytes for d in work.dims], dtype=np.float64)
    if work.restream:
        run = np.cumsum(starts) - 1
        run_owner = owner[starts]
        traffic = np.zeros(boxes)
        for dim, d in enumerate(work.dims):
            reached = np.unique(run * d.count + units[dim]) // d.count
            traffic += d.unit_bytes * np.bincount(run_owner[reached], minlength=boxes)
    else:
        traffic = unit_bytes @ sizes
    total = np.bincount(owner, weights=costs, minlength=boxes) + RANGE_MACS * ranges + MACS_PER_BYTE * traffic
    return float(total.max()), owner


def shares(work: Work, threads: int) -> Split:
    """The split of `work` among at most `threads` threads that `score` ranks best (ties: fewer boxes, then
    the earlier dimensions cut more), and each thread's item ranges."""
    items = work.items
    if threads <= 1 or items <= 1:   # one box: all the work, one kernel call, every unit's bytes once
        load = sum(work.costs) * (items // max(1, len(work.costs))) + RANGE_MACS + \
            MACS_PER_BYTE * sum(d.unit_bytes * d.count for d in work.dims)
        return Split((1,) * len(work.dims), (((0, items),),) if items else (), float(load))
    units, costs = work.coordinates()
    best = None
    for parts in candidates(work, threads):
        value, owner = score(work, parts, units, costs)
        key = (round(value, 3), prod(parts), tuple(-p for p in parts))
        if best is None or key < best[0]:
            best = (key, parts, owner, value)
    return _split(best[1], best[2], best[3])


def partition(work: Work, parts: tuple) -> Split:
    """The split of `work` into the boxes of `parts` (parts per dimension), whatever the score says."""
    units, costs = work.coordinates()
    value, owner = score(work, tuple(parts), units, costs)
    return _split(tuple(parts), owner, value)


def _split(parts: tuple, owner: np.ndarray, load: float) -> Split:
    found = (_runs(np.flatnonzero(owner == box)) for box in range(prod(parts)))
    return Split(parts, tuple(share for share in found if share), load)


def batched(order: str, images: int, rows: int, groups: int, row_bytes: float, group_bytes: float) -> tuple:
    """(dims, levels) of a pass whose items are (image, output-vector group, row block) of each image, in
    one of the orders "nk" (image, group, rows), "np" (image, rows, group) or "kn" (group, rows, image):
    dimensions image rows (images x rows, one row block's src bytes) and filter blocks (one group's vec bytes)."""
    dims = (Dim("rows", images * rows, row_bytes), Dim("filters", groups, group_bytes))
    image = Level(0, images, rows, batch=True)
    levels = {"nk": (image, Level(1, groups), Level(0, rows)),
              "np": (image, Level(0, rows), Level(1, groups)),
              "kn": (Level(1, groups), Level(0, rows), image)}[order if images > 1 or order != "kn" else "nk"]
    return dims, levels
