"""Layers of the numpy training runtime. Convolutions and fully-connected layers run through dfpgen's
generated kernels in all three passes; batch norm, pooling, activations and the loss stay in FP32.

Activations and gradients flow between layers as `Blocked` tensors (dfpgen/runtime/blocked.py): the
convolution kernels' own FP32 layout, which batch norm, ReLU and residual adds read and write
through generated, threaded pointwise kernels that also measure max|.| for the next quantization.
NCHW arrays exist at the network's edges: the input, and from global pooling on (docs/architecture.md,
Training runtime). Every layer has `forward(x, train)` and `backward(dy)` (which returns the input
gradient, or None where nothing upstream needs it) and a list of `params`; both take and return
either kind of tensor.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dfpgen import passes
from dfpgen.codegen.launch import default_threads
from dfpgen.codegen.layout import aligned_empty
from dfpgen.core.numerics import LayerNumerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.stochastic import StreamKey
from dfpgen.errors import ShapeError
from dfpgen.runtime import pointwise
from dfpgen.runtime.blocked import Blocked, Measured, to_blocked
from dfpgen.runtime.blocked_conv import run_blocked
from dfpgen.runtime.conv import Conv2d


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


def _like(x: Blocked) -> np.ndarray:
    return aligned_empty(x.data.shape, np.float32)


def _per_lane(values: np.ndarray, x: Blocked) -> np.ndarray:
    """Per-channel float values as float32 over the blocked channels (padding channels get 0)."""
    out = np.zeros(x.data.shape[1] * x.lanes, np.float32)
    out[:len(values)] = values
    return out


class Param:
    """An FP32 master parameter and its gradient."""

    def __init__(self, name: str, data: np.ndarray, decay: bool = True):
        self.name, self.data, self.decay = name, data.astype(np.float32), decay
        self.grad = np.zeros_like(self.data)

    def measured(self) -> Measured:
        """The weights with their max|.| (measured here: a kernel then checks it was not stale)."""
        return Measured(self.data)


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


class Conv(Layer):
    """2-D convolution through generated kernels (no bias: batch norm follows, as in the paper's nets)."""

    def __init__(self, name: str, C: int, K: int, R: int, stride: int = 1, pad: int = 0, S: int | None = None,
                 numerics: LayerNumerics = LayerNumerics(), rng: np.random.Generator | None = None,
                 threads: int | None = None, input_grad: bool = True, bias: bool = False):
        self.name, self.C, self.K, self.R, self.S = name, C, K, R, R if S is None else S
        self.stride, self.pad, self.numerics, self.threads = stride, pad, numerics, threads
        self.input_grad = input_grad
        rng = rng or np.random.default_rng(0)
        fan_in = C * self.R * self.S
        self.weight = Param(f"{name}.weight", rng.standard_normal((K, C, self.R, self.S)) * np.sqrt(2.0 / fan_in))
        self.bias = Param(f"{name}.bias", np.zeros(K), decay=False) if bias else None
        self.params = [self.weight] + ([self.bias] if bias else [])
        self._ops: dict[tuple, Conv2d] = {}
        self._saved = None

    def spec(self, x_shape: tuple) -> ConvSpec:
        """The ConvSpec for an input batch of this shape."""
        N, C, H, W = x_shape
        if C != self.C:
            raise ShapeError(f"layer {self.name}: input has {C} channels, expected {self.C}")
        return ConvSpec(N, self.C, self.K, H, W, self.R, self.S, self.stride, self.pad, self.name)

    def op(self, spec: ConvSpec) -> Conv2d:
        """The Conv2d op for one batch shape (each pass compiled on first use, in DFP16 or FP32 kernels
        as the layer's numerics say)."""
        key = spec.shape_key()
        if key not in self._ops:
            self._ops[key] = Conv2d(spec, numerics=self.numerics, threads=self.threads, eager=False,
                                    seed=getattr(self, "_entropy", None))
        return self._ops[key]

    @property
    def ops(self) -> tuple[Conv2d, ...]:
        """The Conv2d ops built so far, one per batch shape (their `timings` say where the time went)."""
        return tuple(self._ops.values())

    def reseed(self, *entropy: int) -> None:
        """Seed stochastic rounding from `entropy` (the trainer passes run seed, step and layer index),
        so a resumed run rounds exactly as the uninterrupted one did."""
        for op in self._ops.values():
            op.rng = np.random.default_rng(entropy)
        self._entropy = entropy

    @staticmethod
    def _key(op: Conv2d) -> StreamKey:
        """The stochastic-rounding stream of one tensor: drawn from the op's generator, so reseeding repeats it.
        A tensor read by two passes is quantized with one key, so both see the same mantissas."""
        return StreamKey(*(int(v) for v in op.rng.integers(0, 2**32, 2)))

    def forward(self, x, train: bool = True):
        threads = self.threads or default_threads()
        xb = blocked(x, threads)
        spec = self.spec(xb.shape)
        op = self.op(spec)
        w = self.weight.measured()
        keys = (self._key(op), self._key(op))
        y = run_blocked(op, passes.FPROP, xb, w, keys)
        if self.bias is not None:
            y = Blocked(y.data, y.channels, pointwise.affine(y.data, _per_lane(np.ones(self.K), y),
                                                             _per_lane(self.bias.data, y), y.data, False,
                                                             threads=threads))
        self._saved = (spec, xb, w, keys, isinstance(x, Blocked)) if train else None
        return like(y, x, threads)

    def backward(self, dy):
        # The forward pass's quantization keys go to every pass that reads the same tensor, so WTGRAD
        # and BPROP see the mantissas FPROP saw (a mixed run with FP32 kernels uses their values).
        spec, xb, w, (key_x, key_w), was_blocked = self._saved
        threads = self.threads or default_threads()
        op = self.op(spec)
        dyb = blocked(dy, threads)
        key_dy = self._key(op)
        self.weight.grad += run_blocked(op, passes.WTGRAD, xb, dyb, (key_x, key_dy))
        if self.bias is not None:
            self.bias.grad += pointwise.channel_sums(dyb.data, threads)[0][:self.K].astype(np.float32)
        if not self.input_grad:
            return None
        return like(run_blocked(op, passes.BPROP, dyb, w, (key_dy, key_w)), dy if was_blocked else None, threads)


class Linear(Layer):
    """Fully connected layer as a 1x1 convolution whose pixels are the batch: (N, C) -> (N, K) + bias."""

    def __init__(self, name: str, C: int, K: int, numerics: LayerNumerics = LayerNumerics(),
                 rng: np.random.Generator | None = None, threads: int | None = None, input_grad: bool = True):
        self.name, self.C, self.K = name, C, K
        self.conv = Conv(name, C, K, 1, numerics=numerics, rng=rng, threads=threads, input_grad=input_grad)
        self.conv.weight.data *= np.float32(np.sqrt(0.5))  # He init for the layer's fan-in, not ReLU's gain twice
        self.bias = Param(f"{name}.bias", np.zeros(K), decay=False)
        self.params = [self.conv.weight, self.bias]

    @property
    def ops(self) -> tuple[Conv2d, ...]:
        """The inner convolution's Conv2d ops (see Conv.ops)."""
        return self.conv.ops

    def reseed(self, *entropy: int) -> None:
        """Seed the inner convolution's stochastic rounding (see Conv.reseed)."""
        self.conv.reseed(*entropy)

    def forward(self, x, train: bool = True) -> np.ndarray:
        threads = self.conv.threads or default_threads()
        x = nchw(x, threads)
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.C:
            raise ShapeError(f"layer {self.name}: input has {x.shape[1]} features, expected {self.C}")
        y = self.conv.forward(np.ascontiguousarray(x.T, dtype=np.float32)[None, :, None, :], train)  # (1, K, 1, N)
        return np.ascontiguousarray(y[0, :, 0, :].T) + self.bias.data

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        self.bias.grad += dy.sum(axis=0)
        dx = self.conv.backward(np.ascontiguousarray(dy.T, dtype=np.float32)[None, :, None, :])
        return None if dx is None else np.ascontiguousarray(dx[0, :, 0, :].T)


class BatchNorm(Layer):
    """Batch normalization over N, H, W in FP32 with running statistics for evaluation. Followed by a
    ReLU in a Sequential, it applies the ReLU in the same pass over memory (`forward(..., relu=True)`)."""

    def __init__(self, name: str, channels: int, momentum: float = 0.9, eps: float = 1e-5,
                 threads: int | None = None):
        self.name, self.momentum, self.eps, self.threads = name, momentum, eps, threads
        self.gamma = Param(f"{name}.gamma", np.ones(channels), decay=False)
        self.beta = Param(f"{name}.beta", np.zeros(channels), decay=False)
        self.params = [self.gamma, self.beta]
        self.running_mean = np.zeros(channels, np.float32)
        self.running_var = np.ones(channels, np.float32)

    def forward(self, x, train: bool = True, relu: bool = False):
        threads = self.threads or default_threads()
        given, x = x, blocked(x, threads)
        C = x.channels
        if train:
            count = x.data.shape[0] * x.data.shape[2] * x.data.shape[3]
            total, squares = pointwise.channel_sums(x.data, threads)
            mean = total[:C] / count
            var = np.maximum(squares[:C] / count - mean * mean, 0.0)
            m = self.momentum
            self.running_mean = (m * self.running_mean + (1 - m) * mean).astype(np.float32)
            self.running_var = (m * self.running_var + (1 - m) * var).astype(np.float32)
        else:
            mean, var = self.running_mean.astype(np.float64), self.running_var.astype(np.float64)
        inv = 1.0 / np.sqrt(var + self.eps)
        scale = self.gamma.data * inv
        out = _like(x)
        maxabs = pointwise.affine(x.data, _per_lane(scale, x), _per_lane(self.beta.data - mean * scale, x), out, relu,
                                  threads=threads)
        y = Blocked(out, C, maxabs)
        self._saved = (x, mean, inv, y if relu else None) if train else None
        return like(y, given, threads)

    def backward(self, dy):
        x, mean, inv, relu_out = self._saved
        threads = self.threads or default_threads()
        given, dy = dy, blocked(dy, threads)
        C, count = x.channels, x.data.shape[0] * x.data.shape[2] * x.data.shape[3]
        mask = relu_out.data if relu_out is not None else None
        total, products = pointwise.bn_grad_sums(dy.data, x.data, threads, mask=mask)
        sum_dz = total[:C]
        sum_dz_xhat = inv * (products[:C] - mean * sum_dz)   # sum dz * (x - mean) * inv
        self.gamma.grad += sum_dz_xhat.astype(np.float32)
        self.beta.grad += sum_dz.astype(np.float32)
        # dx = gamma*inv * (dz - mean(dz) - xhat * mean(dz*xhat)), as a*dz + b*x + c per channel
        a = self.gamma.data * inv
        b = -a * inv * sum_dz_xhat / count
        c = -b * mean - a * sum_dz / count
        dx = _like(x)
        maxabs = pointwise.bn_grad_apply(dy.data, x.data, _per_lane(a, x), _per_lane(b, x), _per_lane(c, x), dx,
                                         threads, mask=mask)
        return like(Blocked(dx, C, maxabs), given, threads)


class ReLU(Layer):
    """max(x, 0)."""

    def __init__(self, name: str = "relu", threads: int | None = None):
        self.name, self.threads = name, threads

    def forward(self, x, train=True):
        if not isinstance(x, Blocked):
            self._out, self._mask = None, x > 0
            return x * self._mask
        ones = _per_lane(np.ones(x.channels), x)
        out = _like(x)
        self._out = Blocked(out, x.channels, pointwise.affine(x.data, ones, np.zeros_like(ones), out, True,
                                                              threads=self.threads or default_threads()))
        return self._out

    @property
    def mask(self) -> np.ndarray:
        """Where the last forward pass's input was positive (NCHW booleans): the piece of a piecewise-linear net."""
        return self._mask if self._out is None else self._out.nchw(self.threads or default_threads()) > 0

    def backward(self, dy):
        threads = self.threads or default_threads()
        if self._out is None:
            return nchw(dy, threads) * self._mask
        dy = blocked(dy, threads)
        dz = _like(dy)
        return Blocked(dz, dy.channels, pointwise.relu_grad(dy.data, self._out.data, dz, threads))


def _pool_windows(x: np.ndarray, k: int, stride: int, pad: int, ceil_mode: bool, fill: float):
    """Windows over the last two axes (H, W) of x: (..., P, Q, k, k), and the padded shape."""
    H, W = x.shape[-2:]
    out = lambda n: -(-(n + 2 * pad - k) // stride) + 1 if ceil_mode else (n + 2 * pad - k) // stride + 1
    P, Q = out(H), out(W)
    if ceil_mode:  # Caffe: the last window must start inside the input or its left padding
        P -= (P - 1) * stride >= H + pad
        Q -= (Q - 1) * stride >= W + pad
    extra_h = max(0, (P - 1) * stride + k - H - 2 * pad)
    extra_w = max(0, (Q - 1) * stride + k - W - 2 * pad)
    xp = np.pad(x, ((0, 0),) * (x.ndim - 2) + ((pad, pad + extra_h), (pad, pad + extra_w)), constant_values=fill)
    win = sliding_window_view(xp, (k, k), axis=(-2, -1))[..., ::stride, ::stride, :, :][..., :P, :Q, :, :]
    return win, xp.shape


def _clipped_window(n: int, P: int, k: int, stride: int, pad: int) -> np.ndarray:
    """Extent of each of P pooling windows along an axis of n, clipped to the end of the padding."""
    start = np.arange(P) * stride - pad
    return np.minimum(start + k, n + pad) - start


def _spatial_last(x) -> np.ndarray:
    """A tensor with H, W as its last two axes: NCHW as it is, a Blocked one as an (N, G, L, H, W) view."""
    return x.data.transpose(0, 1, 4, 2, 3) if isinstance(x, Blocked) else x


def _like_input(values: np.ndarray, x, maxabs: float | None = None):
    """Pooling results (H, W last) in the input's kind: Blocked for a Blocked input, else NCHW."""
    if not isinstance(x, Blocked):
        return values
    data = aligned_empty((values.shape[0], values.shape[1], values.shape[3], values.shape[4], values.shape[2]),
                         np.float32)
    data[...] = values.transpose(0, 1, 3, 4, 2)
    return Blocked(data, x.channels, maxabs)


class MaxPool(Layer):
    """k x k max pooling (Caffe's ceil mode optional)."""

    def __init__(self, name: str, k: int, stride: int | None = None, pad: int = 0, ceil_mode: bool = False):
        self.name, self.k, self.stride, self.pad, self.ceil = name, k, stride or k, pad, ceil_mode

    def forward(self, x, train=True):
        v = _spatial_last(x)
        win, padded_shape = _pool_windows(v, self.k, self.stride, self.pad, self.ceil, -np.inf)
        flat = win.reshape(*win.shape[:-2], -1)
        arg = flat.argmax(axis=-1)
        if train:
            self._saved = (arg, padded_shape, v.shape, x)
        y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
        return _like_input(y, x, max(float(y.max()), -float(y.min())) if y.size else 0.0)

    def backward(self, dy):
        arg, padded_shape, x_shape, x = self._saved
        dy = _spatial_last(blocked(dy, 1) if isinstance(x, Blocked) else nchw(dy, 1))
        P, Q = dy.shape[-2:]
        k, st = self.k, self.stride
        dxp = np.zeros(padded_shape, np.float32)
        for r in range(k):  # one strided pass per window offset beats a scatter (np.add.at) by far
            for s in range(k):
                dxp[..., r:r + st * (P - 1) + 1:st, s:s + st * (Q - 1) + 1:st] += dy * (arg == r * k + s)
        p = self.pad
        dx = dxp[..., p:p + x_shape[-2], p:p + x_shape[-1]]
        return _like_input(dx, x)


class AvgPool(Layer):
    """k x k average pooling; k=None is global average pooling to 1 x 1 (its result is NCHW: the
    network's edge towards the classifier)."""

    def __init__(self, name: str, k: int | None = None, stride: int | None = None, pad: int = 0,
                 ceil_mode: bool = False):
        self.name, self.k, self.stride, self.pad, self.ceil = name, k, stride, pad, ceil_mode

    def forward(self, x, train=True):
        self._input = x
        v = _spatial_last(x)
        self._shape = v.shape
        if self.k is None:
            means = v.mean(axis=(-2, -1), dtype=np.float32)
            if isinstance(x, Blocked):
                return np.ascontiguousarray(means.reshape(means.shape[0], -1)[:, :x.channels])[:, :, None, None]
            return means[:, :, None, None]
        k, st, p = self.k, self.stride or self.k, self.pad
        win, self._padded = _pool_windows(v, k, st, p, self.ceil, 0.0)
        # As Caffe and torch (count_include_pad): padding counts, a ceil-mode window's overhang past the
        # right/bottom padding does not, so the divisor is the window clipped to H+pad, W+pad.
        rows, cols = (_clipped_window(n, P, k, st, p) for n, P in zip(v.shape[-2:], win.shape[-4:-2]))
        self._divisor = np.outer(rows, cols).astype(np.float32)
        return _like_input(win.sum(axis=(-2, -1)) / self._divisor, self._input)

    def backward(self, dy):
        x, shape = self._input, self._shape
        H, W = shape[-2:]
        if self.k is None:
            dy = nchw(dy, 1)
            if not isinstance(x, Blocked):
                return np.broadcast_to(dy / (H * W), shape).astype(np.float32)
            N, G, L = shape[:3]
            lanes = np.zeros((N, G * L), np.float32)
            lanes[:, :x.channels] = dy.reshape(N, -1) / np.float32(H * W)
            data = aligned_empty(x.data.shape, np.float32)
            data[...] = lanes.reshape(N, G, 1, 1, L)
            return Blocked(data, x.channels, float(np.abs(lanes).max()) if lanes.size else 0.0)
        dy = _spatial_last(blocked(dy, 1) if isinstance(x, Blocked) else nchw(dy, 1))
        k, st, p = self.k, self.stride or self.k, self.pad
        dxp = np.zeros(self._padded, np.float32)
        for r in range(k):
            for s in range(k):
                dxp[..., r:r + st * dy.shape[-2]:st, s:s + st * dy.shape[-1]:st] += dy / self._divisor
        return _like_input(dxp[..., p:p + H, p:p + W], x)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, name: str = "flatten"):
        self.name = name

    def forward(self, x, train=True):
        x = nchw(x, self.threads or default_threads())
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)


class Sequential(Layer):
    """Layers applied in order."""

    def __init__(self, name: str, layers: list):
        self.name, self.children = name, list(layers)

    @property
    def params(self):
        return [p for layer in self.children for p in layer.params]

    def layers(self):
        yield self
        for child in self.children:
            yield from child.layers()

    def _fuses(self, i: int, x) -> bool:
        """Whether child i is a batch norm that applies the ReLU after it in the same pass (blocked tensors)."""
        return isinstance(self.children[i], BatchNorm) and i + 1 < len(self.children) \
            and type(self.children[i + 1]) is ReLU and isinstance(x, Blocked)

    def forward(self, x, train=True):
        # An NCHW batch enters the blocked world once, here, and leaves it as the kind it came in.
        threads = self.threads or default_threads()
        self._given_blocked = isinstance(x, Blocked)
        if not self._given_blocked and getattr(x, "ndim", 0) == 4 and self._starts_blocked():
            x = to_blocked(x, threads)
        self._fused, i = set(), 0
        while i < len(self.children):
            if self._fuses(i, x):
                x = self.children[i].forward(x, train, relu=True)
                self.children[i + 1]._out = x   # as if it ran: its mask is the fused output's sign
                self._fused.add(i)
                i += 2
            else:
                x = self.children[i].forward(x, train)
                i += 1
        return x if self._given_blocked or not isinstance(x, Blocked) else x.nchw(threads)

    def _starts_blocked(self) -> bool:
        """Whether the first leaf layer works on blocked tensors (a convolution or batch norm)."""
        first = next((layer for layer in self.layers() if not isinstance(layer, Sequential)), None)
        return isinstance(first, (Conv, BatchNorm))

    def backward(self, dy):
        i = len(self.children) - 1
        while i >= 0:
            if i - 1 in self._fused:   # the batch norm's backward masks by its ReLU
                i -= 1
            dy = self.children[i].backward(dy)
            if dy is None:
                return None
            i -= 1
        return dy if self._given_blocked or not isinstance(dy, Blocked) else dy.nchw(self.threads or default_threads())


class Residual(Sequential):
    """relu(main(x) + shortcut(x)); the shortcut is the identity when None."""

    def __init__(self, name: str, main: list, shortcut: list | None = None, threads: int | None = None):
        super().__init__(name, [Sequential(f"{name}/main", main)]
                         + ([Sequential(f"{name}/shortcut", shortcut)] if shortcut else []))
        self.relu = ReLU(f"{name}/relu")
        self.threads = threads

    def forward(self, x, train=True):
        threads = self.threads or default_threads()
        given, x = x, blocked(x, threads)
        main = blocked(self.children[0].forward(x, train), threads)
        short = blocked(self.children[1].forward(x, train), threads) if len(self.children) > 1 else x
        ones = _per_lane(np.ones(main.channels), main)
        out = _like(main)
        self._out = Blocked(out, main.channels, pointwise.affine(main.data, ones, np.zeros_like(ones), out, True,
                                                                 z=short.data, threads=threads))
        self._given_blocked = isinstance(given, Blocked)
        return like(self._out, given, threads)

    def backward(self, dy):
        threads = self.threads or default_threads()
        given, dy = dy, blocked(dy, threads)
        dz = _like(dy)
        dz = Blocked(dz, dy.channels, pointwise.relu_grad(dy.data, self._out.data, dz, threads))
        dx = self.children[0].backward(dz)
        ds = self.children[1].backward(dz) if len(self.children) > 1 else dz
        as_given = given if self._given_blocked else None
        if dx is None or ds is None:
            return like(blocked(ds if dx is None else dx, threads), as_given, threads) if (dx, ds) != (None, None) \
                else None
        dx, ds = blocked(dx, threads), blocked(ds, threads)
        out = _like(dx)
        return like(Blocked(out, dx.channels, pointwise.add(dx.data, ds.data, out, threads)), as_given, threads)


class Concat(Sequential):
    """Branches applied to the same input, outputs concatenated along channels (inception blocks)."""

    def forward(self, x, train=True):
        threads = self.threads or default_threads()
        outs = [b.forward(x, train) for b in self.children]
        self._splits = np.cumsum([o.shape[1] for o in outs])[:-1]
        # Blocked outputs of whole channel blocks concatenate as they are; others meet in NCHW.
        self._blocked = all(isinstance(o, Blocked) and o.channels % o.lanes == 0 for o in outs)
        if not self._blocked:
            return np.concatenate([nchw(o, threads) for o in outs], axis=1)
        known = [o.maxabs for o in outs]
        maxabs = None if None in known else max(known)
        return Blocked(np.concatenate([o.data for o in outs], axis=1), int(sum(o.channels for o in outs)), maxabs)

    def backward(self, dy):
        threads = self.threads or default_threads()
        if self._blocked:
            dy = blocked(dy, threads)
            bounds = [0, *(int(b) // dy.lanes for b in self._splits), dy.data.shape[1]]
            parts = [Blocked(np.ascontiguousarray(dy.data[:, a:b]), (b - a) * dy.lanes)
                     for a, b in zip(bounds, bounds[1:])]
        else:
            parts = np.split(nchw(dy, threads), self._splits, axis=1)
        grads = [g for g in (b.backward(part) for b, part in zip(self.children, parts)) if g is not None]
        if not grads:
            return None
        if not all(isinstance(g, Blocked) for g in grads):
            grads = [nchw(g, threads) for g in grads]
            return sum(grads[1:], grads[0])
        total = grads[0]
        for g in grads[1:]:
            out = _like(total)
            total = Blocked(out, total.channels, pointwise.add(total.data, g.data, out, threads))
        return total


class SoftmaxCrossEntropy:
    """Mean softmax cross-entropy over the batch, in FP32 (float64 inside the softmax)."""

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The loss; remembers what backward needs."""
        z = nchw(logits, default_threads()).reshape(len(labels), -1).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self._probs, self._labels = np.exp(logp), labels
        return float(-logp[np.arange(len(labels)), labels].mean())

    def backward(self) -> np.ndarray:
        """d loss / d logits."""
        g = self._probs.copy()
        g[np.arange(len(self._labels)), self._labels] -= 1
        return (g / len(self._labels)).astype(np.float32)
