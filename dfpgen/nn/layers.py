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

from dfpgen import passes
from dfpgen.codegen.launch import default_threads
from dfpgen.codegen.layout import aligned_empty
from dfpgen.core.numerics import LayerNumerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.stochastic import StreamKey
from dfpgen.errors import ShapeError
from dfpgen.nn.base import Layer, Param, blocked, empty_like, like, nchw, per_lane
from dfpgen.nn.pooling import AvgPool, MaxPool
from dfpgen.runtime import pointwise
from dfpgen.runtime.blocked import Blocked, to_blocked
from dfpgen.runtime.blocked_conv import Converted, Produced, convert_ahead, convert_in_producer, run_blocked
from dfpgen.runtime.conv import Conv2d

__all__ = ["AvgPool", "BatchNorm", "Concat", "Conv", "Flatten", "Layer", "Linear", "MaxPool", "Param", "ReLU",
           "Residual", "Sequential", "SoftmaxCrossEntropy"]


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
        self._x_exp = self._dy_exp = None   # the exponents x and dy had last step: guesses for their producers

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
        return StreamKey.drawn(op.rng)

    def produce_input(self, shape: tuple, produce) -> Produced | None:
        """x of blocked `shape` for a training forward pass, which `produce` is about to compute, written straight
        into FPROP's and WTGRAD's operand layouts where it can, as well as FP32 (see produce_gradient)."""
        N, CB, H, W, L = shape
        if self.C != CB * L:
            return None
        op = self.op(self.spec((N, self.C, H, W)))
        key = self._key(op)   # the draw forward would make first
        converted, fp32 = convert_in_producer(op, ((passes.FPROP, "src"), (passes.WTGRAD, "src")), shape, key,
                                              self._x_exp, produce, keep_fp32=True)
        return Produced(converted, fp32, key)

    def forward(self, x, train: bool = True):
        threads = self.threads or default_threads()
        produced = x if isinstance(x, Produced) else None
        if produced:
            x = produced.fp32
        xb = blocked(x, threads)
        spec = self.spec(xb.shape)
        op = self.op(spec)
        w = self.weight.measured()
        keys = (produced.key if produced else self._key(op), self._key(op))
        # In training, WTGRAD's x is converted now, right after FPROP's, while x is still in cache: by
        # backward it would come from memory again. Both read the same key, so the mantissas agree. BPROP's
        # weights likewise go right before FPROP's, which run_blocked converts.
        # (Or none of that: the producer of x wrote the layouts it could.)
        packed = produced.converted if produced else {}
        x_fprop, x_wtgrad = (packed.get((conv_pass, "src")) or convert_ahead(op, conv_pass, "src", xb, keys[0])
                             if train else xb for conv_pass in (passes.FPROP, passes.WTGRAD))
        if isinstance(x_fprop, Converted):
            self._x_exp = x_fprop.exp   # the next step's guess
        w_bprop = convert_ahead(op, passes.BPROP, "vec", w, keys[1]) if train and self.input_grad else w
        y = run_blocked(op, passes.FPROP, x_fprop, w, keys)
        if self.bias is not None:
            y = Blocked(y.data, y.channels, pointwise.affine(y.data, per_lane(np.ones(self.K), y),
                                                             per_lane(self.bias.data, y), y.data, False,
                                                             threads=threads))
        self._saved = (spec, x_wtgrad, w_bprop, keys, isinstance(x, Blocked)) if train else None
        return like(y, x, threads)

    def _dy_operands(self) -> tuple:
        """The (pass, role) operands dy feeds in backward: WTGRAD's, and BPROP's when the input gradient is wanted."""
        return ((passes.WTGRAD, "vec"),) + (((passes.BPROP, "src"),) if self.input_grad else ())

    def produce_gradient(self, shape: tuple, produce) -> Produced | None:
        """dy of blocked `shape`, which `produce` (a pointwise kernel's run, see convert_in_producer) is about to
        compute, written straight into this layer's backward operand layouts; None where the layer takes dy
        as an FP32 tensor only (no forward pass saved, a bias to sum dy for)."""
        if self._saved is None or self.bias is not None:
            return None
        op = self.op(self._saved[0])
        key = self._key(op)   # the draw backward would make, in the same order
        converted, fp32 = convert_in_producer(op, self._dy_operands(), shape, key, self._dy_exp, produce)
        return Produced(converted, fp32, key)

    def backward(self, dy):
        # The forward pass's quantization keys go to every pass that reads the same tensor, so WTGRAD
        # and BPROP see the mantissas FPROP saw (a mixed run with FP32 kernels uses their values).
        spec, x, w, (key_x, key_w), was_blocked = self._saved
        threads = self.threads or default_threads()
        op = self.op(spec)
        produced = dy if isinstance(dy, Produced) else Produced({}, blocked(dy, threads), self._key(op))
        dyb, key_dy = produced.fp32, produced.key
        # dy's two conversions back to back, before WTGRAD's kernel streams through memory and evicts dy (or
        # none: its producer wrote both layouts).
        dy_wtgrad, dy_bprop = [produced.converted.get(target) or convert_ahead(op, *target, dyb, key_dy)
                               for target in self._dy_operands()] + [None] * (not self.input_grad)
        if isinstance(dy_wtgrad, Converted):
            self._dy_exp = dy_wtgrad.exp   # the next step's guess
        self.weight.grad += run_blocked(op, passes.WTGRAD, x, dy_wtgrad, (key_x, key_dy))
        if self.bias is not None:
            self.bias.grad += pointwise.channel_sums(dyb.data, threads)[0][:self.K].astype(np.float32)
        if not self.input_grad:
            return None
        dx = run_blocked(op, passes.BPROP, dy_bprop, w, (key_dy, key_w))
        return dx if was_blocked and isinstance(dy, (Blocked, Produced)) else like(dx, None, threads)


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

    def normalization(self, x: Blocked, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """The per-lane (scale, shift) that apply this batch norm to x: batch statistics in training
        (and the running ones updated), running statistics in evaluation. Remembers what backward needs."""
        threads = self.threads or default_threads()
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
        self._saved = (x, mean, inv, None) if train else None
        return per_lane(scale, x), per_lane(self.beta.data - mean * scale, x)

    def forward(self, x, train: bool = True, relu: bool = False, consumer: Conv | None = None):
        """The normalized x (and ReLU'd, with `relu`); with `consumer` (the convolution after it, in training)
        also written straight into its FPROP and WTGRAD operand layouts where it can take them
        (Conv.produce_input)."""
        threads = self.threads or default_threads()
        given, x = x, blocked(x, threads)
        scale, shift = self.normalization(x, train)

        def produce(packs, quantizer, out):
            return pointwise.affine(x.data, scale, shift, out, relu, threads=threads, packs=packs, quantizer=quantizer)

        produced = consumer.produce_input(x.data.shape, produce) if consumer is not None and train \
            and isinstance(given, Blocked) else None
        if produced is None:
            out = empty_like(x)
            y = Blocked(out, x.channels, produce((), None, out))
        else:
            y = produced.fp32
        if train and relu:
            self._saved = self._saved[:3] + (y,)
        return produced or like(y, given, threads)

    def backward(self, dy, consumer: Conv | None = None):
        """The input gradient; with `consumer` (the convolution before this layer) written straight into its
        backward operands' layouts where it can take them (Conv.produce_gradient)."""
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
        a, b, c = per_lane(a, x), per_lane(b, x), per_lane(c, x)

        def produce(packs, quantizer, out):
            return pointwise.bn_grad_apply(dy.data, x.data, a, b, c, out, threads, mask=mask, packs=packs,
                                           quantizer=quantizer)

        if consumer is not None and isinstance(given, Blocked):
            produced = consumer.produce_gradient(x.data.shape, produce)
            if produced is not None:
                return produced
        dx = empty_like(x)
        return like(Blocked(dx, C, produce((), None, dx)), given, threads)


class ReLU(Layer):
    """max(x, 0)."""

    def __init__(self, name: str = "relu", threads: int | None = None):
        self.name, self.threads = name, threads

    def forward(self, x, train=True):
        if not isinstance(x, Blocked):
            self._out, self._mask = None, x > 0
            return x * self._mask
        ones = per_lane(np.ones(x.channels), x)
        out = empty_like(x)
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
        dz = empty_like(dy)
        return Blocked(dz, dy.channels, pointwise.relu_grad(dy.data, self._out.data, dz, threads))


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

    def _fuses(self, i: int, x, end: int) -> bool:
        """Whether child i is a batch norm that applies the ReLU after it in the same pass (blocked tensors)."""
        return isinstance(self.children[i], BatchNorm) and i + 1 < end \
            and type(self.children[i + 1]) is ReLU and isinstance(x, Blocked)

    def forward(self, x, train=True, stop: int | None = None):
        """The children applied in order (those before index `stop` only, when given: a Residual applies
        a branch's closing batch norm itself)."""
        # An NCHW batch enters the blocked world once, here, and leaves it as the kind it came in.
        threads = self.threads or default_threads()
        self._given_blocked = isinstance(x, (Blocked, Produced))
        if not self._given_blocked and getattr(x, "ndim", 0) == 4 and self._starts_blocked():
            x = to_blocked(x, threads)
        self._fused, i = set(), 0
        end = len(self.children) if stop is None else range(len(self.children))[stop]
        while i < end:
            if self._fuses(i, x, end):
                # The convolution after them, if any, gets x in its operand layouts from the same kernel.
                after = self.children[i + 2] if i + 2 < end and type(self.children[i + 2]) is Conv else None
                x = self.children[i].forward(x, train, relu=True, consumer=after)
                self.children[i + 1]._out = x.fp32 if isinstance(x, Produced) else x   # its mask: the output's sign
                self._fused.add(i)
                i += 2
            elif isinstance(self.children[i], Residual) and i + 1 < end and isinstance(self.children[i + 1], Residual):
                x = self.children[i].forward(x, train, consumer=self.children[i + 1].first_conv())
                i += 1
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
            child, before = self.children[i], self.children[i - 1] if i else None
            # A batch norm after a convolution writes its input gradient into the convolution's operand layouts.
            dy = child.backward(dy, consumer=before) if isinstance(child, BatchNorm) and isinstance(before, Conv) \
                else child.backward(dy)
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

    def forward(self, x, train=True, consumer: Conv | None = None):
        """relu(main(x) + shortcut(x)); with `consumer` (the next block's first convolution, in training) also
        written straight into its operand layouts where it can take them (Conv.produce_input). x may come
        so from the block before: the main branch's first convolution takes it as it is."""
        threads = self.threads or default_threads()
        produced = x if isinstance(x, Produced) else None
        given = x = produced.fp32 if produced else x
        x = blocked(x, threads)
        branches = [self.children[0]] + ([self.children[1]] if len(self.children) > 1 else [])
        # Each branch's closing batch norm is applied inside the join, relu(a*y + b + c*z + d): the
        # normalized branches are never written to memory.
        ends = [branch.children[-1] if isinstance(branch.children[-1], BatchNorm) else None for branch in branches]
        joined = []
        for k, (branch, end) in enumerate(zip(branches, ends)):
            y = blocked(branch.forward(produced if produced and k == 0 else x, train, stop=-1 if end else None),
                        threads)
            a, b = end.normalization(y, train) if end else (None, None)
            joined.append((y, a, b))
        if len(joined) == 1:
            joined.append((x, None, None))
        (y, a, b), (z, c, d) = joined
        if a is None:
            a, b = per_lane(np.ones(y.channels), y), np.zeros(y.data.shape[1] * y.lanes, np.float32)

        def produce(packs, quantizer, out):
            return pointwise.affine(y.data, a, b, out, True, z=z.data, c=c, d=d, threads=threads, packs=packs,
                                    quantizer=quantizer)

        result = consumer.produce_input(y.data.shape, produce) if consumer is not None and train \
            and isinstance(given, Blocked) else None
        if result is None:
            out = empty_like(y)
            self._out = Blocked(out, y.channels, produce((), None, out))
        else:
            self._out = result.fp32
        self._given_blocked = isinstance(given, Blocked)
        return result or like(self._out, given, threads)

    def first_conv(self) -> Conv | None:
        """The convolution the main branch starts with, if it does: it may take x in its own layouts."""
        first = self.children[0].children[0] if self.children[0].children else None
        return first if type(first) is Conv else None

    def backward(self, dy):
        threads = self.threads or default_threads()
        given, dy = dy, blocked(dy, threads)
        dz = empty_like(dy)
        dz = Blocked(dz, dy.channels, pointwise.relu_grad(dy.data, self._out.data, dz, threads))
        dx = self.children[0].backward(dz)
        ds = self.children[1].backward(dz) if len(self.children) > 1 else dz
        as_given = given if self._given_blocked else None
        if dx is None or ds is None:
            return like(blocked(ds if dx is None else dx, threads), as_given, threads) if (dx, ds) != (None, None) \
                else None
        dx, ds = blocked(dx, threads), blocked(ds, threads)
        out = empty_like(dx)
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
        data = aligned_empty((outs[0].data.shape[0], sum(o.data.shape[1] for o in outs)) + outs[0].data.shape[2:],
                             np.float32)
        np.concatenate([o.data for o in outs], axis=1, out=data)
        return Blocked(data, int(sum(o.channels for o in outs)), maxabs)

    def backward(self, dy):
        threads = self.threads or default_threads()
        if self._blocked:
            dy = blocked(dy, threads)
            bounds = [0, *(int(b) // dy.lanes for b in self._splits), dy.data.shape[1]]
            parts = [Blocked(_aligned_copy(dy.data[:, a:b]), (b - a) * dy.lanes) for a, b in zip(bounds, bounds[1:])]
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
            out = empty_like(total)
            total = Blocked(out, total.channels, pointwise.add(total.data, g.data, out, threads))
        return total


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, 64-byte-aligned copy (what the generated kernels take)."""
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


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


def set_numerics(net: Layer, numerics: LayerNumerics) -> int:
    """Switch every convolution and fully connected layer in `net` to `numerics` (a precision schedule's next rung);
    their kernels are rebuilt on next use, from the plan cache when built before. Returns the layers changed."""
    changed = 0
    for layer in net.layers():
        conv = layer.conv if isinstance(layer, Linear) else layer   # layers() does not list a Linear's inner Conv
        if isinstance(conv, Conv) and conv.numerics != numerics:
            conv.numerics = numerics
            conv._ops.clear()   # ops hold compiled kernels for the old numerics; op() rebuilds them lazily
            changed += 1
    return changed
