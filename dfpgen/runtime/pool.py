"""Reused memory for the arrays a training step allocates again every step: blocked activations and gradients,
kernel results, pooling's outputs, dfpgen.torch's results.

A fresh array of many megabytes costs a page fault for every 4 KiB the first time it is written (or a huge
page's compaction), every step, while the kernels wait (docs/experiments.md, section 9, has what it cost).
`empty` hands out a buffer of the same size that nothing refers to any more (no array, view or torch tensor
over it: Python's reference count says so) and allocates only when none is free; a reused buffer is often
still in cache. What an array holds when it comes back is undefined, as with np.empty.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import numpy as np

from dfpgen.codegen.layout import ALIGNMENT
from dfpgen.config import settings


def _references(buffers: list, i: int) -> int:
    """sys.getrefcount of buffers[i]; every count the pool compares is read through here, so the temporaries of
    the reading are the same in each."""
    return sys.getrefcount(buffers[i])


FREE_REFERENCES = _references([np.empty(1, np.uint8)], 0)   # held by its list alone


class BufferPool:
    """64-byte-aligned C-contiguous arrays over reused buffers, at most `limit` bytes of buffers in all (beyond
    it, buffers nothing refers to are dropped, oldest first, or the array is allocated outside the pool)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._buffers: OrderedDict[int, list] = OrderedDict()   # size in bytes -> raw uint8 buffers
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes of buffers the pool holds, in use or free."""
        return self._held

    def empty(self, shape: tuple, dtype) -> np.ndarray:
        """An uninitialized array of `shape` and `dtype` whose data starts on a 64-byte boundary."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = nbytes + ALIGNMENT
        with self._lock:
            raw = self._free(size)
            if raw is None:
                raw = self._new(size)
        start = -raw.ctypes.data % ALIGNMENT
        return raw[start:start + nbytes].view(dtype).reshape(shape)

    def clear(self) -> None:
        """Drop every buffer nothing refers to (arrays handed out stay valid)."""
        with self._lock:
            for size in list(self._buffers):
                self._drop_free(size)

    def _free(self, size: int) -> np.ndarray | None:
        buffers = self._buffers.get(size)
        if buffers is None:
            return None
        self._buffers.move_to_end(size)
        for i in range(len(buffers)):
            if _references(buffers, i) == FREE_REFERENCES:
                return buffers[i]
        return None

    def _new(self, size: int) -> np.ndarray:
        for other in list(self._buffers):   # least recently asked for first
            if self._held + size <= self.limit:
                break
            self._drop_free(other)
        raw = np.empty(size, np.uint8)
        if self._held + size <= self.limit:
            self._buffers.setdefault(size, []).append(raw)
            self._held += size
        return raw

    def _drop_free(self, size: int) -> None:
        buffers = self._buffers[size]
        in_use = [i for i in range(len(buffers)) if _references(buffers, i) > FREE_REFERENCES]
        self._held -= size * (len(buffers) - len(in_use))
        if in_use:
            self._buffers[size] = [buffers[i] for i in in_use]
        else:
            del self._buffers[size]


_POOL: BufferPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> BufferPool:
    """The process's pool, of DFPGEN_BUFFER_POOL_MB megabytes (read at its first array; 0: every array allocated
    anew)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = BufferPool(settings().buffer_pool_mb << 20)
        return _POOL


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized 64-byte-aligned array from the process's pool (see BufferPool.empty)."""
    return pool().empty(shape, dtype)
