"""Networks: the paper's four at their ImageNet shapes (layer names and shapes as in dfpgen's catalogs)
and small CPU-sized networks for real training runs (LeNet, CIFAR-style ResNet-8/20)."""

from __future__ import annotations

import numpy as np

from dfpgen.core.numerics import LayerNumerics
from dfpgen.errors import CatalogError
from dfpgen.nn.layers import AvgPool, BatchNorm, Concat, Conv, Flatten, Linear, MaxPool, ReLU, Residual, Sequential


class Builder:
    """Creates layers that share a run's numerics, random generator and thread count."""

    def __init__(self, numerics: LayerNumerics, seed: int = 0, threads: int | None = None):
        self.numerics, self.rng, self.threads = numerics, np.random.default_rng(seed), threads
        self.first = True

    def conv(self, name, C, K, R, stride=1, pad=0, bias=False) -> Conv:
        """A convolution; the network's first one computes no input gradient."""
        layer = Conv(name, C, K, R, stride, pad, numerics=self.numerics, rng=self.rng, threads=self.threads,
                     input_grad=not self.first, bias=bias)
        self.first = False
        return layer

    def fc(self, name, C, K) -> Linear:
        """A fully-connected layer."""
        layer = Linear(name, C, K, numerics=self.numerics, rng=self.rng, threads=self.threads,
                       input_grad=not self.first)
        self.first = False
        return layer

    def conv_bn_relu(self, name, C, K, R, stride=1, pad=0, bn_name=None) -> list:
        """conv -> batch norm -> ReLU."""
        return [self.conv(name, C, K, R, stride, pad), BatchNorm(bn_name or f"bn_{name}", K), ReLU()]

    def conv_relu(self, name, C, K, R, stride=1, pad=0) -> list:
        """conv (with bias) -> ReLU, for the networks without batch norm."""
        return [self.conv(name, C, K, R, stride, pad, bias=True), ReLU()]


def lenet(b: Builder, in_channels: int = 1, classes: int = 10, size: int = 28) -> Sequential:
    """LeNet-5 style: two 5x5 convolutions with max pooling, three fully-connected layers."""
    side = ((size + 4 - 4) // 2 - 4) // 2
    return Sequential("lenet", [
        *b.conv_relu("conv1", in_channels, 6, 5, pad=2), MaxPool("pool1", 2),
        *b.conv_relu("conv2", 6, 16, 5), MaxPool("pool2", 2), Flatten(),
        b.fc("fc1", 16 * side * side, 120), ReLU(), b.fc("fc2", 120, 84), ReLU(), b.fc("fc3", 84, classes)])


def cifar_resnet(b: Builder, depth: int = 8, in_channels: int = 1, classes: int = 10, width: int = 16) -> Sequential:
    """He et al.'s CIFAR ResNet (depth 6n+2): three stages of n basic blocks, widths w, 2w, 4w."""
    if (depth - 2) % 6:
        raise CatalogError(f"depth={depth}: CIFAR ResNets have depth 6n+2 (8, 14, 20, 32, ...)")
    n = (depth - 2) // 6
    layers = b.conv_bn_relu("conv1", in_channels, width, 3, pad=1)
    C = width
    for stage, K in enumerate((width, 2 * width, 4 * width)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            name = f"res{stage + 2}{chr(ord('a') + i)}"
            main = [*b.conv_bn_relu(f"{name}_branch2a", C, K, 3, stride, 1),
                    b.conv(f"{name}_branch2b", K, K, 3, 1, 1), BatchNorm(f"bn{name[3:]}_branch2b", K)]
            short = [b.conv(f"{name}_branch1", C, K, 1, stride), BatchNorm(f"bn{name[3:]}_branch1", K)] \
                if stride != 1 or C != K else None
            layers.append(Residual(name, main, short))
            C = K
    return Sequential(f"resnet{depth}", [*layers, AvgPool("pool"), Flatten(), b.fc("fc", C, classes)])


def resnet50(b: Builder, classes: int = 1000) -> Sequential:
    """ResNet-50 v1 (stride 2 in the 1x1 resXa_branch2a), names as Caffe's."""
    layers = [*b.conv_bn_relu("conv1", 3, 64, 7, 2, 3, "bn_conv1"), MaxPool("pool1", 3, 2, 1)]
    C = 64
    for stage, (blocks, mid) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        K = 4 * mid
        for i in range(blocks):
            name = f"res{stage}{chr(ord('a') + i)}"
            stride = 2 if i == 0 and stage > 2 else 1
            main = [*b.conv_bn_relu(f"{name}_branch2a", C, mid, 1, stride, 0, f"bn{stage}{name[4:]}_branch2a"),
                    *b.conv_bn_relu(f"{name}_branch2b", mid, mid, 3, 1, 1, f"bn{stage}{name[4:]}_branch2b"),
                    b.conv(f"{name}_branch2c", mid, K, 1), BatchNorm(f"bn{stage}{name[4:]}_branch2c", K)]
            short = [b.conv(f"{name}_branch1", C, K, 1, stride), BatchNorm(f"bn{stage}{name[4:]}_branch1", K)] \
                if i == 0 else None
            layers.append(Residual(name, main, short))
            C = K
    return Sequential("resnet50", [*layers, AvgPool("pool5"), Flatten(), b.fc("fc1000", 2048, classes)])


# GoogLeNet v1 inception widths: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj.
_INCEPTION = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
              "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
              "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
              "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
              "5b": (384, 192, 384, 48, 128, 128)}


def googlenet_v1(b: Builder, classes: int = 1000) -> Sequential:
    """GoogLeNet v1 without the auxiliary classifiers and LRN (Caffe's layer names and ceil-mode pools)."""
    layers = [*b.conv_relu("conv1/7x7_s2", 3, 64, 7, 2, 3), MaxPool("pool1/3x3_s2", 3, 2, ceil_mode=True),
              *b.conv_relu("conv2/3x3_reduce", 64, 64, 1), *b.conv_relu("conv2/3x3", 64, 192, 3, 1, 1),
              MaxPool("pool2/3x3_s2", 3, 2, ceil_mode=True)]
    C = 192
    for name, (o1, r3, o3, r5, o5, pp) in _INCEPTION.items():
        n = f"inception_{name}"
        layers.append(Concat(n, [
            Sequential(f"{n}/b1", b.conv_relu(f"{n}/1x1", C, o1, 1)),
            Sequential(f"{n}/b3", [*b.conv_relu(f"{n}/3x3_reduce", C, r3, 1), *b.conv_relu(f"{n}/3x3", r3, o3, 3, 1, 1)]),
            Sequential(f"{n}/b5", [*b.conv_relu(f"{n}/5x5_reduce", C, r5, 1), *b.conv_relu(f"{n}/5x5", r5, o5, 5, 1, 2)]),
            Sequential(f"{n}/bp", [MaxPool(f"{n}/pool", 3, 1, 1), *b.conv_relu(f"{n}/pool_proj", C, pp, 1)])]))
        C = o1 + o3 + o5 + pp
        if name in ("3b", "4e"):
            layers.append(MaxPool(f"pool{name[0]}/3x3_s2", 3, 2, ceil_mode=True))
    return Sequential("googlenet_v1", [*layers, AvgPool("pool5/7x7_s1"), Flatten(),
                                       b.fc("loss3/classifier", 1024, classes)])


def vgg16(b: Builder, classes: int = 1000) -> Sequential:
    """VGG-16 (configuration D)."""
    layers, C = [], 3
    for block, (K, count) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(1, count + 1):
            layers += b.conv_relu(f"conv{block}_{i}", C, K, 3, 1, 1)
            C = K
        layers.append(MaxPool(f"pool{block}", 2))
    return Sequential("vgg16", [*layers, Flatten(), b.fc("fc6", 512 * 7 * 7, 4096), ReLU(),
                                b.fc("fc7", 4096, 4096), ReLU(), b.fc("fc8", 4096, classes)])


def alexnet(b: Builder, classes: int = 1000) -> Sequential:
    """AlexNet, one tower (Caffe bvlc_alexnet shapes, no groups, no LRN), for 227x227 inputs."""
    return Sequential("alexnet", [
        *b.conv_relu("conv1", 3, 96, 11, 4), MaxPool("pool1", 3, 2),
        *b.conv_relu("conv2", 96, 256, 5, 1, 2), MaxPool("pool2", 3, 2),
        *b.conv_relu("conv3", 256, 384, 3, 1, 1), *b.conv_relu("conv4", 384, 384, 3, 1, 1),
        *b.conv_relu("conv5", 384, 256, 3, 1, 1), MaxPool("pool5", 3, 2), Flatten(),
        b.fc("fc6", 256 * 6 * 6, 4096), ReLU(), b.fc("fc7", 4096, 4096), ReLU(), b.fc("fc8", 4096, classes)])


# name -> (builder, input shape C x H x W, whether it fits small data sets)
NETWORKS = {
    "lenet": (lenet, None), "resnet8": (lambda b, **kw: cifar_resnet(b, 8, **kw), None),
    "resnet20": (lambda b, **kw: cifar_resnet(b, 20, **kw), None),
    "resnet50": (resnet50, (3, 224, 224)), "googlenet_v1": (googlenet_v1, (3, 224, 224)),
    "vgg16": (vgg16, (3, 224, 224)), "alexnet": (alexnet, (3, 227, 227)),
}


def build(name: str, numerics: LayerNumerics, seed: int = 0, threads: int | None = None,
          input_shape: tuple | None = None, classes: int | None = None) -> tuple[Sequential, tuple]:
    """A network by name and the input shape (C, H, W) it takes. Small networks adapt to the data's
    channels, size and classes; the ImageNet networks have fixed inputs."""
    if name not in NETWORKS:
        import difflib
        close = difflib.get_close_matches(name, NETWORKS, n=3)
        raise CatalogError(f"network {name!r} unknown; networks: {', '.join(NETWORKS)}"
                           + (f" (did you mean {', '.join(close)}?)" if close else ""))
    builder, fixed = NETWORKS[name]
    b = Builder(numerics, seed, threads)
    if fixed is not None:
        net, shape = builder(b, classes=classes or 1000), fixed
    else:
        C, H, W = shape = input_shape or (1, 28, 28)
        net = lenet(b, C, classes or 10, H) if name == "lenet" else builder(b, in_channels=C, classes=classes or 10)
    for layer in net.layers():   # batch norm, ReLU and the containers run threaded kernels too
        layer.threads = threads
    return net, tuple(shape)
