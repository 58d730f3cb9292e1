"""Layers of the numpy training runtime. Convolutions and fully-connected layers run through dfpgen's
generated kernels in all three passes; batch norm, pooling, activations and the loss stay in FP32.

Every layer has `forward(x, train)` and `backward(dy)` (which returns the input gradient, or None
where nothing upstream needs it) and a list of `params`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dfpgen.core.numerics import LayerNumerics
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import ShapeError
from dfpgen.runtime.conv import Conv2d


class Param:
    """An FP32 master parameter and its gradient."""

    def __init__(self, name: str, data: np.ndarray, decay: bool = True):
        self.name, self.data, self.decay = name, data.astype(np.float32), decay
        self.grad = np.zeros_like(self.data)


class Layer:
    """Base: no parameters; subclasses override forward/backward."""

    name = ""
    params: list = []

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

    def _operand(self, op: Conv2d, a: np.ndarray, kind: str, name: str):
        return op.quantize(a, kind, name) if self.numerics.is_dfp(kind) else a

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        spec = self.spec(x.shape)
        op = self.op(spec)
        xq = self._operand(op, x, "act", f"{self.name} input")
        wq = self._operand(op, self.weight.data, "weight", f"{self.name} weights")
        y = op.fprop(xq, wq)
        if self.bias is not None:
            y += self.bias.data[None, :, None, None]
        self._saved = (spec, xq, wq) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        # Quantized operands go to every pass: DFP kernels use them as they are, FP32 kernels use their
        # values, so a mixed run (say FP32 gradients) still sees the activations the forward pass saw.
        spec, xq, wq = self._saved
        op = self.op(spec)
        dyq = self._operand(op, dy, "grad", f"{self.name} gradient")
        self.weight.grad += op.wtgrad(xq, dyq)
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=(0, 2, 3))
        if not self.input_grad:
            return None
        return op.bprop(dyq, wq)


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

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.C:
            raise ShapeError(f"layer {self.name}: input has {x.shape[1]} features, expected {self.C}")
        y = self.conv.forward(np.ascontiguousarray(x.T)[None, :, None, :], train)  # (1, K, 1, N)
        return np.ascontiguousarray(y[0, :, 0, :].T) + self.bias.data

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        self.bias.grad += dy.sum(axis=0)
        dx = self.conv.backward(np.ascontiguousarray(dy.T)[None, :, None, :])
        return None if dx is None else np.ascontiguousarray(dx[0, :, 0, :].T)


class BatchNorm(Layer):
    """Batch normalization over N, H, W in FP32 with running statistics for evaluation."""

    def __init__(self, name: str, channels: int, momentum: float = 0.9, eps: float = 1e-5):
        self.name, self.momentum, self.eps = name, momentum, eps
        self.gamma = Param(f"{name}.gamma", np.ones(channels), decay=False)
        self.beta = Param(f"{name}.beta", np.zeros(channels), decay=False)
        self.params = [self.gamma, self.beta]
        self.running_mean = np.zeros(channels, np.float32)
        self.running_var = np.ones(channels, np.float32)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        axes = (0, 2, 3)
        if train:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            m = self.momentum
            self.running_mean = (m * self.running_mean + (1 - m) * mean).astype(np.float32)
            self.running_var = (m * self.running_var + (1 - m) * var).astype(np.float32)
        else:
            mean, var = self.running_mean, self.running_var
        inv = (1.0 / np.sqrt(var + self.eps)).astype(np.float32)
        xhat = (x - mean[None, :, None, None]) * inv[None, :, None, None]
        if train:
            self._saved = (xhat, inv)
        return xhat * self.gamma.data[None, :, None, None] + self.beta.data[None, :, None, None]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv = self._saved
        axes = (0, 2, 3)
        self.gamma.grad += (dy * xhat).sum(axis=axes)
        self.beta.grad += dy.sum(axis=axes)
        g = dy * self.gamma.data[None, :, None, None]
        return (inv[None, :, None, None]
                * (g - g.mean(axis=axes)[None, :, None, None] - xhat * (g * xhat).mean(axis=axes)[None, :, None, None]))


class ReLU(Layer):
    """max(x, 0)."""

    def __init__(self, name: str = "relu"):
        self.name = name

    def forward(self, x, train=True):
        self._mask = x > 0
        return x * self._mask

    def backward(self, dy):
        return dy * self._mask


def _pool_windows(x: np.ndarray, k: int, stride: int, pad: int, ceil_mode: bool, fill: float):
    N, C, H, W = x.shape
    out = lambda n: -(-(n + 2 * pad - k) // stride) + 1 if ceil_mode else (n + 2 * pad - k) // stride + 1
    P, Q = out(H), out(W)
    if ceil_mode:  # Caffe: the last window must start inside the input or its left padding
        P -= (P - 1) * stride >= H + pad
        Q -= (Q - 1) * stride >= W + pad
    extra_h = max(0, (P - 1) * stride + k - H - 2 * pad)
    extra_w = max(0, (Q - 1) * stride + k - W - 2 * pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad + extra_h), (pad, pad + extra_w)), constant_values=fill)
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :P, :Q]
    return win, xp.shape


def _clipped_window(n: int, P: int, k: int, stride: int, pad: int) -> np.ndarray:
    """Extent of each of P pooling windows along an axis of n, clipped to the end of the padding."""
    start = np.arange(P) * stride - pad
    return np.minimum(start + k, n + pad) - start


class MaxPool(Layer):
    """k x k max pooling (Caffe's ceil mode optional)."""

    def __init__(self, name: str, k: int, stride: int | None = None, pad: int = 0, ceil_mode: bool = False):
        self.name, self.k, self.stride, self.pad, self.ceil = name, k, stride or k, pad, ceil_mode

    def forward(self, x, train=True):
        win, padded_shape = _pool_windows(x, self.k, self.stride, self.pad, self.ceil, -np.inf)
        flat = win.reshape(*win.shape[:4], -1)
        arg = flat.argmax(axis=-1)
        if train:
            self._saved = (arg, padded_shape, x.shape)
        return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]

    def backward(self, dy):
        arg, padded_shape, x_shape = self._saved
        P, Q = dy.shape[2:]
        k, st = self.k, self.stride
        dxp = np.zeros(padded_shape, np.float32)
        for r in range(k):  # one strided pass per window offset beats a scatter (np.add.at) by far
            for s in range(k):
                dxp[:, :, r:r + st * (P - 1) + 1:st, s:s + st * (Q - 1) + 1:st] += dy * (arg == r * k + s)
        p = self.pad
        return dxp[:, :, p:p + x_shape[2], p:p + x_shape[3]]


class AvgPool(Layer):
    """k x k average pooling; k=None is global average pooling to 1 x 1."""

    def __init__(self, name: str, k: int | None = None, stride: int | None = None, pad: int = 0,
                 ceil_mode: bool = False):
        self.name, self.k, self.stride, self.pad, self.ceil = name, k, stride, pad, ceil_mode

    def forward(self, x, train=True):
        self._shape = x.shape
        if self.k is None:
            return x.mean(axis=(2, 3), keepdims=True)
        k, st, p = self.k, self.stride or self.k, self.pad
        win, self._padded = _pool_windows(x, k, st, p, self.ceil, 0.0)
        # As Caffe and torch (count_include_pad): padding counts, a ceil-mode window's overhang past the
        # right/bottom padding does not, so the divisor is the window clipped to H+pad, W+pad.
        rows, cols = (_clipped_window(n, P, k, st, p) for n, P in zip(x.shape[2:], win.shape[2:4]))
        self._divisor = np.outer(rows, cols).astype(x.dtype)
        return win.sum(axis=(-2, -1)) / self._divisor

    def backward(self, dy):
        N, C, H, W = self._shape
        if self.k is None:
            return np.broadcast_to(dy / (H * W), self._shape).astype(np.float32)
        k, st, p = self.k, self.stride or self.k, self.pad
        dxp = np.zeros(self._padded, np.float32)
        for r in range(k):
            for s in range(k):
                dxp[:, :, r:r + st * dy.shape[2]:st, s:s + st * dy.shape[3]:st] += dy / self._divisor
        return dxp[:, :, p:p + H, p:p + W]


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, name: str = "flatten"):
        self.name = name

    def forward(self, x, train=True):
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

    def forward(self, x, train=True):
        for layer in self.children:
            x = layer.forward(x, train)
        return x

    def backward(self, dy):
        for layer in reversed(self.children):
            dy = layer.backward(dy)
            if dy is None:
                return None
        return dy


class Residual(Sequential):
    """relu(main(x) + shortcut(x)); the shortcut is the identity when None."""

    def __init__(self, name: str, main: list, shortcut: list | None = None):
        super().__init__(name, [Sequential(f"{name}/main", main)]
                         + ([Sequential(f"{name}/shortcut", shortcut)] if shortcut else []))
        self.relu = ReLU(f"{name}/relu")

    def forward(self, x, train=True):
        main = self.children[0].forward(x, train)
        short = self.children[1].forward(x, train) if len(self.children) > 1 else x
        return self.relu.forward(main + short, train)

    def backward(self, dy):
        dy = self.relu.backward(dy)
        dx = self.children[0].backward(dy)
        ds = self.children[1].backward(dy) if len(self.children) > 1 else dy
        return ds if dx is None else dx + ds


class Concat(Sequential):
    """Branches applied to the same input, outputs concatenated along channels (inception blocks)."""

    def forward(self, x, train=True):
        outs = [b.forward(x, train) for b in self.children]
        self._splits = np.cumsum([o.shape[1] for o in outs])[:-1]
        return np.concatenate(outs, axis=1)

    def backward(self, dy):
        grads = [b.backward(g) for b, g in zip(self.children, np.split(dy, self._splits, axis=1))]
        grads = [g for g in grads if g is not None]
        return sum(grads[1:], grads[0]) if grads else None


class SoftmaxCrossEntropy:
    """Mean softmax cross-entropy over the batch, in FP32 (float64 inside the softmax)."""

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The loss; remembers what backward needs."""
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self._probs, self._labels = np.exp(logp), labels
        return float(-logp[np.arange(len(labels)), labels].mean())

    def backward(self) -> np.ndarray:
        """d loss / d logits."""
        g = self._probs.copy()
        g[np.arange(len(self._labels)), self._labels] -= 1
        return (g / len(self._labels)).astype(np.float32)
