"""Max pooling on blocked FP32 tensors through the generated, threaded kernels of dfpgen/codegen/maxpool.py.

The forward pass returns the pooled tensor, the offset each output took its maximum from (one byte per
element, what the backward pass reads instead of the input) and max|y|; the backward pass returns dx and
max|dx|. Both match the numpy pooling of dfpgen/nn/pooling.py bit for bit on finite values.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dfpgen.codegen import maxpool
from dfpgen.codegen.launch import default_threads
from dfpgen.errors import DTypeError, ShapeError
from dfpgen.runtime import pool
from dfpgen.runtime.pointwise import check_blocked, isa_for


@lru_cache(maxsize=None)
def _kernel(direction: str, k: int, stride: int, pad: int, isa: str) -> maxpool.MaxPoolKernel:
    return maxpool.kernel(maxpool.plan(direction, k, stride, pad, isa))


def maxpool_forward(x: np.ndarray, k: int, stride: int, pad: int, P: int, Q: int,
                    threads: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Max-pool a blocked x [N][CB][H][W][L] to P x Q; returns (y, the chosen window offsets as uint8, max|y|)."""
    check_blocked("maxpool_forward", "x", x)
    N, CB, H, W, L = x.shape
    if P < 1 or Q < 1:
        raise ShapeError(f"maxpool_forward: output {P}x{Q}; both extents must be >= 1")
    kern = _kernel("forward", k, stride, pad, isa_for("maxpool_forward", "x", L))
    y = pool.empty((N, CB, P, Q, L), np.float32)
    choice = pool.empty((N, CB, P, Q, L), np.uint8)
    maxabs = kern.run(x, choice, y, H, W, P, Q, N * CB, threads or default_threads())
    return y, choice, maxabs


def maxpool_backward(dy: np.ndarray, choice: np.ndarray, k: int, stride: int, pad: int, H: int, W: int,
                     threads: int | None = None) -> tuple[np.ndarray, float]:
    """The input gradient [N][CB][H][W][L] of a max pooling, from dy and the forward pass's choices; returns
    (dx, max|dx|)."""
    check_blocked("maxpool_backward", "dy", dy)
    if not isinstance(choice, np.ndarray) or choice.dtype != np.uint8 or choice.shape != dy.shape \
            or not choice.flags.c_contiguous:
        got = f"{choice.dtype} {choice.shape}" if isinstance(choice, np.ndarray) else type(choice).__name__
        raise DTypeError(f"maxpool_backward: choice: {got}; must be the forward pass's C-contiguous uint8 array "
                         f"of shape {dy.shape}")
    N, CB, P, Q, L = dy.shape
    if H < 1 or W < 1:
        raise ShapeError(f"maxpool_backward: input {H}x{W}; both extents must be >= 1")
    kern = _kernel("backward", k, stride, pad, isa_for("maxpool_backward", "dy", L))
    dx = pool.empty((N, CB, H, W, L), np.float32)
    maxabs = kern.run(dy, choice, dx, H, W, P, Q, N * CB, threads or default_threads())
    return dx, maxabs
