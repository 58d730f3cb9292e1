"""Running a compiled kernel's work items on threads: contiguous item ranges, one per thread.

Every generated kernel (convolutions, data movement, pointwise) takes `(..., first item, end item)`
and computes items independently, so a thread count only decides who runs which items, never what
an item computes: results do not depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable


@lru_cache(maxsize=8)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dfpgen")


def default_threads() -> int:
    """Threads to use when the caller does not say: DFPGEN_THREADS, else every core we may run on."""
    from dfpgen.config import settings

    configured = settings().threads
    if configured:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def split_items(items: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal [begin, end) ranges covering 0..items (empty ranges dropped)."""
    parts = max(1, min(parts, items))
    bounds = [items * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def run_ranges(call: Callable[[int, int, int], object], ranges: list[tuple[int, int]]) -> None:
    """call(slot, begin, end) for each range, on threads when there are several (ctypes releases the
    GIL for the foreign call, so they run in parallel); `slot` numbers the range."""
    if len(ranges) == 1:
        call(0, *ranges[0])
        return
    # The caller runs the first range itself: one thread handoff fewer per call, which short kernels feel.
    futures = [_pool(len(ranges) - 1).submit(call, i, b, e) for i, (b, e) in enumerate(ranges) if i]
    call(0, *ranges[0])
    for f in futures:
        f.result()


def run_shares(call: Callable[[int, int, int], object], shares) -> None:
    """call(slot, begin, end) for each range of each share, a share's ranges in order on one thread (a
    share per thread when there are several); `slot` numbers the ranges of all shares in order."""
    slots, at = [], 0
    for share in shares:
        slots.append(range(at, at + len(share)))
        at += len(share)

    def work(i: int) -> None:
        for slot, (b, e) in zip(slots[i], shares[i]):
            call(slot, b, e)

    if len(shares) <= 1:
        for i in range(len(shares)):
            work(i)
        return
    futures = [_pool(len(shares) - 1).submit(work, i) for i in range(1, len(shares))]
    work(0)
    for f in futures:
        f.result()
