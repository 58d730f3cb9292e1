"""The numpy training runtime: layers over dfpgen's kernels, networks, SGD, numerics per tensor kind."""

from dfpgen.core.numerics import LayerNumerics
from dfpgen.nn.layers import (AvgPool, BatchNorm, Concat, Conv, Flatten, Layer, Linear, MaxPool, Param, ReLU, Residual,
                              Sequential, SoftmaxCrossEntropy, set_numerics)
from dfpgen.nn.models import NETWORKS, build
from dfpgen.nn.optim import SGD, learning_rate

__all__ = ["AvgPool", "BatchNorm", "Concat", "Conv", "Flatten", "Layer", "Linear", "MaxPool", "NETWORKS", "Param",
           "LayerNumerics", "ReLU", "Residual", "SGD", "Sequential", "SoftmaxCrossEntropy", "build", "learning_rate",
           "set_numerics"]
