"""The dfpgen.nn catalog as torch modules: `translate` turns a numpy layer tree into the equivalent torch
module tree with the same initial weights, and `build_model` does so for a catalog network.

Batch norms can be SyncBatchNorm2d, whose statistics span every rank's shard of a data-parallel batch
(dfpgen.frontends.distributed trains these models).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dfpgen.core.numerics import LayerNumerics
from dfpgen.errors import UnsupportedError
from dfpgen.nn import layers as L
from dfpgen.nn.models import build


class Residual(nn.Module):
    """relu(main(x) + shortcut(x)); the shortcut is the identity when None (dfpgen.nn.layers.Residual)."""

    def __init__(self, main: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.main, self.shortcut, self.relu = main, shortcut, nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(main(x) + shortcut(x))."""
        return self.relu(self.main(x) + (x if self.shortcut is None else self.shortcut(x)))


class Concat(nn.Module):
    """Branches on the same input, concatenated along channels (dfpgen.nn.layers.Concat)."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every branch's output, concatenated along channels."""
        return torch.cat([b(x) for b in self.branches], dim=1)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum shared by every rank is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are all-reduced over every rank's shard, so a data-parallel
    step normalizes exactly as one process over the global batch does (torch's SyncBatchNorm is GPU-only).
    The all-reduce is differentiable, so the backward also sums its statistics' gradients over ranks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Batch norm of this rank's shard with the global batch's statistics (plain BatchNorm2d alone or in eval)."""
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # Each rank's count, mean and centred sum of squares, gathered by a sum over rows only this rank
        # fills, then combined as Chan et al. do: no E[x^2] - mean^2 cancellation.
        rank, world, C = dist.get_rank(), dist.get_world_size(), self.num_features
        n_r = x.shape[0] * x.shape[2] * x.shape[3]
        mean_r = x.mean(dim=(0, 2, 3))
        m2_r = ((x - mean_r.view(1, -1, 1, 1)) ** 2).sum(dim=(0, 2, 3))
        rows = torch.zeros(world, 2 * C + 1, dtype=x.dtype)
        rows = rows.index_copy(0, torch.tensor([rank]), torch.cat([mean_r, m2_r, x.new_tensor([n_r])]).unsqueeze(0))
        rows = _AllReduceSum.apply(rows)
        counts = rows[:, -1:]
        n = counts.sum()
        mean = (counts * rows[:, :C]).sum(0) / n
        var = (rows[:, C:2 * C].sum(0) + (counts * (rows[:, :C] - mean) ** 2).sum(0)) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean)
            self.running_var.mul_(1 - m).add_(m * var * n / max(float(n) - 1, 1.0))  # unbiased, as torch
            self.num_batches_tracked.add_(1)
        inv = torch.rsqrt(var + self.eps)
        return ((x - mean.view(1, -1, 1, 1)) * (inv * self.weight).view(1, -1, 1, 1)
                + self.bias.view(1, -1, 1, 1))


def _param(a: np.ndarray, shape=None) -> nn.Parameter:
    """A float32 torch Parameter holding a copy of `a` (reshaped to `shape` if given)."""
    t = torch.from_numpy(np.array(a, dtype=np.float32))
    return nn.Parameter(t.reshape(shape) if shape is not None else t)


def translate(layer: L.Layer, sync_bn: bool = False) -> nn.Module:
    """The torch module tree equivalent to a dfpgen.nn layer tree, starting from the same weights.

    Sequential children are named after the numpy layers ('/' and '.' become '_'), so state_dict keys
    read like the catalog's layer names. `sync_bn` makes batch norms SyncBatchNorm2d."""
    if isinstance(layer, L.Residual):
        main = translate(layer.children[0], sync_bn)
        short = translate(layer.children[1], sync_bn) if len(layer.children) > 1 else None
        return Residual(main, short)
    if isinstance(layer, L.Concat):
        return Concat([translate(c, sync_bn) for c in layer.children])
    if isinstance(layer, L.Sequential):
        named: OrderedDict[str, nn.Module] = OrderedDict()
        for child in layer.children:
            key = child.name.replace("/", "_").replace(".", "_") or type(child).__name__.lower()
            key = key if key not in named else f"{key}_{len(named)}"
            named[key] = translate(child, sync_bn)
        return nn.Sequential(named)
    if isinstance(layer, L.Conv):
        m = nn.Conv2d(layer.C, layer.K, (layer.R, layer.S), layer.stride, layer.pad, bias=layer.bias is not None)
        m.weight = _param(layer.weight.data)
        if layer.bias is not None:
            m.bias = _param(layer.bias.data)
        return m
    if isinstance(layer, L.Linear):
        m = nn.Linear(layer.C, layer.K)
        m.weight, m.bias = _param(layer.conv.weight.data, (layer.K, layer.C)), _param(layer.bias.data)
        return m
    if isinstance(layer, L.BatchNorm):
        # numpy keeps `momentum` of the old statistics, torch weighs the new batch by its momentum.
        m = (SyncBatchNorm2d if sync_bn else nn.BatchNorm2d)(len(layer.gamma.data), eps=layer.eps,
                                                            momentum=1 - layer.momentum)
        m.weight, m.bias = _param(layer.gamma.data), _param(layer.beta.data)
        m.running_mean.copy_(torch.from_numpy(layer.running_mean))
        m.running_var.copy_(torch.from_numpy(layer.running_var))
        return m
    if isinstance(layer, L.ReLU):
        return nn.ReLU()
    if isinstance(layer, L.MaxPool):
        # torch's ceil_mode drops a last window that starts in the right padding, as Caffe's rule does.
        return nn.MaxPool2d(layer.k, layer.stride, layer.pad, ceil_mode=layer.ceil)
    if isinstance(layer, L.AvgPool):
        if layer.k is None:
            return nn.AdaptiveAvgPool2d(1)
        # Like torch, the numpy layer counts padding but not a ceil-mode window's overhang past it.
        return nn.AvgPool2d(layer.k, layer.stride or layer.k, layer.pad, ceil_mode=layer.ceil,
                            count_include_pad=True)
    if isinstance(layer, L.Flatten):
        return nn.Flatten()
    raise UnsupportedError(f"layer {layer.name!r}: no torch translation for {type(layer).__name__}")


def build_model(net: str, seed: int, input_shape: tuple, classes: int,
                sync_bn: bool = False) -> tuple[nn.Module, tuple]:
    """(torch model, the input shape it takes) of a catalog network, with the numpy runtime's seeded initial weights."""
    numpy_net, shape = build(net, LayerNumerics.fp32(), seed, 1, input_shape, classes)
    return translate(numpy_net, sync_bn), tuple(shape)
