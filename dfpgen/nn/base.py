"""What every layer of the numpy runtime shares: parameters, the Layer interface, and moving tensors
between the blocked layout the layers keep (dfpgen/runtime/blocked.py) and NCHW at the network's edges."""

from __future__ import annotations

import numpy as np

from dfpgen.codegen.launch import run_ranges, split_items
from dfpgen.runtime import pool
from dfpgen.runtime.blocked import Blocked, Measured, to_blocked


def blocked(x, threads: int) -> Blocked:
    """x as a Blocked tensor (an NCHW array is converted: the network's input)."""
    return x if isinstance(x, Blocked) else to_blocked(x, threads)


def nchw(x, threads: int) -> np.ndarray:
    """x as an NCHW array (a Blocked tensor is converted: the network's edges)."""
    return x.nchw(threads) if isinstance(x, Blocked) else x


def like(result: Blocked, x, threads: int):
    """A Blocked result in the kind of the layer's input: Blocked for Blocked, else NCHW. Layers given NCHW
    arrays answer in NCHW; networks convert their input once (Sequential) and stay blocked inside."""
    return result if isinstance(x, Blocked) or result is None else result.nchw(threads)


def empty_like(x: Blocked) -> np.ndarray:
    """An uninitialized aligned buffer of x's blocked shape (reused memory: dfpgen/runtime/pool.py)."""
    return pool.empty(x.data.shape, np.float32)


def per_lane(values: np.ndarray, x: Blocked) -> np.ndarray:
    """Per-channel float values as float32 over the blocked channels (padding channels get 0)."""
    out = np.zeros(x.data.shape[1] * x.lanes, np.float32)
    out[:len(values)] = values
    return out


class Param:
    """An FP32 master parameter and its gradient."""

    def __init__(self, name: str, data: np.ndarray, decay: bool = True):
        self.name, self.data, self.decay = name, data.astype(np.float32), decay
        self.grad = np.zeros_like(self.data)
        self.maxabs: float | None = None   # max|data| as the last SGD update measured it: a hint, checked

    def measured(self) -> Measured:
        """The data with the max|.| hint; quantizing it checks the hint against the values moved."""
        return Measured(self.data, self.maxabs, hint=True)


class Layer:
    """Base: no parameters; subclasses override forward/backward."""

    name = ""
    params: list = []
    threads: int | None = None   # None: every core (default_threads()); networks set it on every layer

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """The layer's output."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """Accumulate parameter gradients; return the input gradient."""
        raise NotImplementedError

    def layers(self):
        """This layer and every layer inside it, depth first."""
        yield self


def per_images(work, images: int, threads: int) -> None:
    """work(begin, end) over contiguous ranges of images on `threads` threads (numpy releases the GIL in
    its loops; each range writes only its own images, so the result does not depend on the split)."""
    run_ranges(lambda _slot, begin, end: work(begin, end), split_items(images, threads))
