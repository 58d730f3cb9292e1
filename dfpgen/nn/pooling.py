"""Max and average pooling for the numpy runtime, on NCHW arrays and Blocked tensors alike: both keep H
and W on axes 2 and 3 ([N][C][H][W] and [N][C/L][H][W][L]), so one strided pass per window offset
serves both, and images split across threads. Max pooling of Blocked tensors runs in generated kernels
instead (dfpgen/runtime/pooling.py), which give the same bits."""

from __future__ import annotations

import numpy as np

from dfpgen.codegen.launch import default_threads
from dfpgen.codegen.layout import aligned_empty
from dfpgen.codegen.maxpool import NONE
from dfpgen.nn.base import Layer, blocked, nchw, per_images
from dfpgen.runtime.blocked import Blocked
from dfpgen.runtime.pooling import maxpool_backward, maxpool_forward


def _extents(H: int, W: int, k: int, stride: int, pad: int, ceil_mode: bool) -> tuple[int, int, int, int]:
    """Output rows and columns, and the extra bottom/right padding the last windows read."""
    out = lambda n: -(-(n + 2 * pad - k) // stride) + 1 if ceil_mode else (n + 2 * pad - k) // stride + 1
    P, Q = out(H), out(W)
    if ceil_mode:  # Caffe: the last window must start inside the input or its left padding
        P -= (P - 1) * stride >= H + pad
        Q -= (Q - 1) * stride >= W + pad
    return P, Q, max(0, (P - 1) * stride + k - H - 2 * pad), max(0, (Q - 1) * stride + k - W - 2 * pad)


def _padded(a: np.ndarray, pad: int, extra_h: int, extra_w: int, fill: float) -> np.ndarray:
    widths = ((0, 0), (0, 0), (pad, pad + extra_h), (pad, pad + extra_w)) + ((0, 0),) * (a.ndim - 4)
    return np.pad(a, widths, constant_values=fill)


def _clipped_window(n: int, P: int, k: int, stride: int, pad: int) -> np.ndarray:
    """Extent of each of P pooling windows along an axis of n, clipped to the end of the padding."""
    start = np.arange(P) * stride - pad
    return np.minimum(start + k, n + pad) - start


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Blocked) else x


def _result(values: np.ndarray, x, maxabs: float | None = None):
    """Pooled values in the input's kind."""
    return Blocked(values, x.channels, maxabs) if isinstance(x, Blocked) else values


def _window(a: np.ndarray, r: int, s: int, stride: int, P: int, Q: int) -> np.ndarray:
    """The inputs at window offset (r, s) of every output pixel: a strided view on axes 2, 3."""
    return a[:, :, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]


class _Pool(Layer):
    def __init__(self, name: str, k: int | None, stride: int | None = None, pad: int = 0, ceil_mode: bool = False):
        self.name, self.k, self.stride, self.pad, self.ceil = name, k, stride or k, pad, ceil_mode

    def _threads(self) -> int:
        return self.threads or default_threads()

    def _gradient(self, dy) -> np.ndarray:
        """dy as an array of the forward input's kind."""
        return _array(blocked(dy, self._threads()) if isinstance(self._input, Blocked) else nchw(dy, self._threads()))


class MaxPool(_Pool):
    """k x k max pooling (Caffe's ceil mode optional); the gradient goes to the first window offset
    holding the maximum."""

    def forward(self, x, train=True):
        a, k, st = _array(x), self.k, self.stride
        P, Q, eh, ew = _extents(a.shape[2], a.shape[3], k, st, self.pad, self.ceil)
        if isinstance(x, Blocked):   # the generated kernels keep each output's chosen offset, not the input
            out, choice, maxabs = maxpool_forward(a, k, st, self.pad, P, Q, self._threads())
            self._input, self._padded_input, self._out = x, None, out
            self._choice = choice if train else None
            return _result(out, x, maxabs)
        self._choice = None
        out = aligned_empty(a.shape[:2] + (P, Q) + a.shape[4:], np.float32)
        padded = np.empty((a.shape[0], a.shape[1], a.shape[2] + 2 * self.pad + eh, a.shape[3] + 2 * self.pad + ew)
                          + a.shape[4:], np.float32)

        def work(b, e):
            padded[b:e] = _padded(a[b:e], self.pad, eh, ew, -np.inf)
            o = out[b:e]
            o[...] = _window(padded[b:e], 0, 0, st, P, Q)
            for offset in range(1, k * k):   # elementwise maxima: no masked copies (slow on strided views)
                np.maximum(o, _window(padded[b:e], offset // k, offset % k, st, P, Q), out=o)

        per_images(work, a.shape[0], self._threads())
        self._input, self._padded_input, self._out = x, padded if train else None, out
        return _result(out, x, max(float(out.max()), -float(out.min())) if out.size else 0.0)

    def backward(self, dy):
        dy, x, padded, k, st, p = self._gradient(dy), self._input, self._padded_input, self.k, self.stride, self.pad
        a = _array(x)
        if self._choice is not None:
            dx, maxabs = maxpool_backward(dy, self._choice, k, st, p, a.shape[2], a.shape[3], self._threads())
            return _result(dx, x, maxabs)
        out = self._out
        dx = aligned_empty(a.shape, np.float32)
        P, Q = dy.shape[2:4]

        def work(b, e):
            dxp = np.zeros(padded[b:e].shape, np.float32)
            taken = np.zeros(out[b:e].shape, bool)
            for offset in range(k * k):  # one strided pass per window offset beats a scatter (np.add.at) by far
                hit = np.equal(_window(padded[b:e], offset // k, offset % k, st, P, Q), out[b:e])
                hit &= ~taken
                taken |= hit
                _window(dxp, offset // k, offset % k, st, P, Q)[...] += dy[b:e] * hit
            dx[b:e] = dxp[:, :, p:p + a.shape[2], p:p + a.shape[3]]

        per_images(work, a.shape[0], self._threads())
        return _result(dx, x)

    @property
    def choice(self) -> np.ndarray:
        """Which window offset (r*k + s) holds each output's maximum in the last training forward pass
        (the first, on ties; k*k where a window holds only padding): the piece of a piecewise-linear net."""
        if self._choice is not None:
            return np.where(self._choice == NONE, self.k * self.k, self._choice).astype(np.uint8)
        padded, out, k, st = self._padded_input, self._out, self.k, self.stride
        P, Q = out.shape[2:4]
        found = np.full(out.shape, k * k, np.uint8)
        for offset in reversed(range(k * k)):
            found[np.equal(_window(padded, offset // k, offset % k, st, P, Q), out)] = offset
        return found


class AvgPool(_Pool):
    """k x k average pooling; k=None is global average pooling to 1 x 1, whose result is NCHW (the
    network's edge towards the classifier)."""

    def __init__(self, name: str, k: int | None = None, stride: int | None = None, pad: int = 0,
                 ceil_mode: bool = False):
        super().__init__(name, k, stride, pad, ceil_mode)

    def forward(self, x, train=True):
        a = _array(x)
        self._input = x
        if self.k is None:
            means = a.mean(axis=(2, 3), dtype=np.float32)   # (N, C) or (N, C/L, L)
            return np.ascontiguousarray(means.reshape(a.shape[0], -1)[:, :x.shape[1]])[:, :, None, None]
        k, st, p = self.k, self.stride, self.pad
        P, Q, eh, ew = _extents(a.shape[2], a.shape[3], k, st, p, self.ceil)
        # As Caffe and torch (count_include_pad): padding counts, a ceil-mode window's overhang past the
        # right/bottom padding does not, so the divisor is the window clipped to H+pad, W+pad.
        rows, cols = _clipped_window(a.shape[2], P, k, st, p), _clipped_window(a.shape[3], Q, k, st, p)
        self._divisor = np.outer(rows, cols).astype(np.float32).reshape((P, Q) + (1,) * (a.ndim - 4))
        self._padded_shape = (a.shape[2] + 2 * p + eh, a.shape[3] + 2 * p + ew)
        out = aligned_empty(a.shape[:2] + (P, Q) + a.shape[4:], np.float32)

        def work(b, e):
            xp = _padded(a[b:e], p, eh, ew, 0.0)
            total = np.zeros(out[b:e].shape, np.float32)
            for offset in range(k * k):
                total += _window(xp, offset // k, offset % k, st, P, Q)
            out[b:e] = total / self._divisor

        per_images(work, a.shape[0], self._threads())
        return _result(out, x, max(float(out.max()), -float(out.min())) if out.size else 0.0)

    def backward(self, dy):
        x, a = self._input, _array(self._input)
        H, W = a.shape[2:4]
        if self.k is None:
            dy = nchw(dy, self._threads()).reshape(a.shape[0], -1) / np.float32(H * W)
            if not isinstance(x, Blocked):
                return np.broadcast_to(dy[:, :, None, None], a.shape).astype(np.float32)
            N, G, _, _, L = a.shape
            lanes = np.zeros((N, G * L), np.float32)
            lanes[:, :x.channels] = dy
            data = aligned_empty(a.shape, np.float32)
            data[...] = lanes.reshape(N, G, 1, 1, L)
            return Blocked(data, x.channels, float(np.abs(lanes).max()) if lanes.size else 0.0)
        dy, k, st, p = self._gradient(dy), self.k, self.stride, self.pad
        P, Q = dy.shape[2:4]
        dx = aligned_empty(a.shape, np.float32)

        def work(b, e):
            dxp = np.zeros((e - b, a.shape[1]) + self._padded_shape + a.shape[4:], np.float32)
            share = dy[b:e] / self._divisor
            for offset in range(k * k):
                _window(dxp, offset // k, offset % k, st, P, Q)[...] += share
            dx[b:e] = dxp[:, :, p:p + H, p:p + W]

        per_images(work, a.shape[0], self._threads())
        return _result(dx, x)
