"""dfpgen.torch: DFPConv2d / DFPLinear against torch's FP32 layers and against their own DFP definition,
unsupported options, and convert() on a torchvision-style ResNet-50.

Error bounds (derived here)
---------------------------
Quantizing a to b bits picks e = floor(log2 max|a|) - (b - 2) and rounds a / 2**e to an integer,
saturated to +-(2**(b-1) - 1). Rounding to nearest is off by at most 2**(e-1); only max|a| itself can
round up to 2**(b-1) and saturate, which costs less than 2**e. So |Q(a) - a| <= 2**e =: da elementwise.

Every pass is a bilinear map f with non-negative coefficients (forward conv, input gradient, weight
gradient; zero padding is exact in both operands). With a' = a + ea, b' = b + eb:

    f(a', b') - f(a, b) = f(ea, b) + f(a, eb) + f(ea, eb)
    |.| <= f(da*1, |b|) + f(|a|, db*1) + f(da*1, db*1)                                  (quantization)

The kernel computes f(a', b') exactly in INT32 chunks and flushes them into FP32: within
gamma_{F+1} * f(|a'|, |b'|) with F = the plan's flushes per output (tests/oracle_fprop.py). torch's FP32
layer sums n = the reduction length of products, in any order: within gamma_n * f(|a|, |b|). The sum of
the three terms bounds |DFP - torch FP32|; the first (quantization) term dominates at 13 bits, the FP32
terms at 16. Against the DFP definition itself (float64 autograd on the quantized operands, dy quantized
the same way) only the flush term remains (plus float64's own gamma_n, negligible).
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import dfpgen  # noqa: E402
from dfpgen.core.target import ISAS, host  # noqa: E402
from dfpgen.errors import DTypeError, NumericsError, PlanError, ShapeError, SpecError, TargetError  # noqa: E402
from dfpgen.runtime import quire  # noqa: E402
from dfpgen.runtime.blocked_conv import run_blocked  # noqa: E402
from dfpgen.torch import ConversionReport, DFPConv2d, DFPLinear, convert  # noqa: E402

U32, U64 = 2.0**-24, 2.0**-53


def gamma(n: int, u: float = U32) -> float:
    """Higham's gamma_n = n u / (1 - n u)."""
    return n * u / (1 - n * u)


def ulp(a: torch.Tensor, bits: int) -> float:
    """2**e of a's DFP quantization: a bound on |Q(a) - a| (module docstring)."""
    return dfpgen.quantize(a.detach().numpy(), bits).scale


def dequantized(a: torch.Tensor, bits: int) -> torch.Tensor:
    """Q(a) as float64 (nearest rounding, as the layers use by default)."""
    return torch.from_numpy(dfpgen.quantize(a.detach().numpy(), bits).to_float(np.float64))


# The three passes of a layer as bilinear maps of (a, b), in float64, for a DFPConv2d's geometry.
def conv_passes(g: dict, x_shape, vec_shape):
    pads = (g["pad_w"], g["pad_right"], g["pad"], g["pad_bottom"])
    N, C, H, W = x_shape
    padded_shape = (N, C, H + pads[2] + pads[3], W + pads[0] + pads[1])
    geo = dict(stride=(g["stride"], g["stride_w"]), dilation=(g["dilation"], g["dilation_w"]), groups=g["groups"])
    crop = lambda t: t[:, :, pads[2]:pads[2] + H, pads[0]:pads[0] + W]
    return {
        "fprop": lambda x, w: F.conv2d(F.pad(x, pads), w, **geo),
        "bprop": lambda dy, w: crop(torch.nn.grad.conv2d_input(padded_shape, w, dy, **geo)),
        "wtgrad": lambda x, dy: torch.nn.grad.conv2d_weight(F.pad(x, pads), vec_shape, dy, **geo),
    }


LINEAR_PASSES = {"fprop": lambda x, w: x @ w.T, "bprop": lambda dy, w: dy @ w, "wtgrad": lambda x, dy: dy.T @ x}


def quant_bound(f, a, b, da: float, db: float) -> torch.Tensor:
    """f(da, |b|) + f(|a|, db) + f(da, db): how far f moves when a and b are quantized."""
    a, b = a.double().abs(), b.double().abs()
    ones_a, ones_b = torch.ones_like(a), torch.ones_like(b)
    return f(ones_a * da, b) + f(a, ones_b * db) + f(ones_a * da, ones_b * db)


def flushes(layer, x_shape, pass_name: str) -> int:
    return layer.op(tuple(x_shape)).kernel(pass_name).plan.flushes


def pair(module: nn.Module, dfp: nn.Module) -> nn.Module:
    """Give `dfp` the FP32 module's parameters (as convert does)."""
    dfp.weight = module.weight
    if module.bias is not None:
        dfp.bias = module.bias
    return dfp


CONV_CASES = [  # (N, C, K, H, W, kernel, stride, pad, other nn.Conv2d options)
    (2, 3, 5, 9, 9, 3, 1, 1, {}),
    (2, 4, 6, 10, 7, (3, 1), 2, 1, {}),
    (2, 6, 4, 11, 9, 3, (1, 2), (2, 1), dict(dilation=(2, 1), groups=2)),
    (1, 8, 8, 7, 8, (2, 4), 1, "same", dict(groups=8)),                  # depthwise, asymmetric 'same'
]


def _conv_run(case, bits, seed=0):
    N, C, K, H, W, ks, stride, pad, options = case
    torch.manual_seed(seed)
    ref = nn.Conv2d(C, K, ks, stride, pad, **options)
    layer = pair(ref, DFPConv2d(C, K, ks, stride, pad, bits=bits, **options))
    x = torch.randn(N, C, H, W, requires_grad=True)
    y, y_ref = layer(x), ref(x)
    dy = torch.randn_like(y_ref)
    grads = torch.autograd.grad(y, (x, layer.weight, layer.bias), dy)
    grads_ref = torch.autograd.grad(y_ref, (x, ref.weight, ref.bias), dy)
    return layer, x, dy, (y, *grads), (y_ref, *grads_ref)


@pytest.mark.parametrize("bits", [16, 13])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_fp32_within_dfp_bound(case, bits):
    layer, x, dy, got, want = _conv_run(case, bits)
    w = layer.weight.detach()
    R, S = layer.kernel_size
    passes = conv_passes(layer.geometry, x.shape, w.shape)
    operands = {"fprop": (x, w), "bprop": (dy, w), "wtgrad": (x, dy)}
    terms = {"fprop": w.shape[1] * R * S, "bprop": w.shape[0] * R * S, "wtgrad": dy.shape[0] * dy.shape[2] * dy.shape[3]}
    for (name, f), g, g_ref in zip(passes.items(), got[:3], want[:3]):
        a, b = operands[name]
        qa, qb = dequantized(a, bits), dequantized(b, bits)
        bound = (quant_bound(f, a, b, ulp(a, bits), ulp(b, bits))
                 + gamma(flushes(layer, x.shape, name) + 1) * f(qa.abs(), qb.abs())
                 + gamma(terms[name]) * f(a.double().abs(), b.double().abs()))
        err = (g.double() - g_ref.double()).abs()
        assert torch.all(err <= bound), f"{name}: worst excess {(err - bound).max():.3g}"
        assert err.max() > 0  # the DFP path really quantized
    # The bias is added in FP32 by torch on both sides: its gradient is a sum of dy.
    db, db_ref = got[3], want[3]
    assert torch.allclose(db, db_ref, rtol=0, atol=gamma(dy.numel()) * float(dy.abs().sum()))


@pytest.mark.parametrize("bits", [16, 13])
def test_linear_matches_fp32_within_dfp_bound(bits):
    torch.manual_seed(1)
    ref = nn.Linear(37, 11)
    layer = pair(ref, DFPLinear(37, 11, bits=bits))
    x = torch.randn(2, 3, 37, requires_grad=True)  # leading axes are flattened into the batch, as nn.Linear
    y, y_ref = layer(x), ref(x)
    assert y.shape == y_ref.shape == (2, 3, 11)
    dy = torch.randn_like(y_ref)
    got = (y, *torch.autograd.grad(y, (x, layer.weight, layer.bias), dy))
    want = (y_ref, *torch.autograd.grad(y_ref, (x, ref.weight, ref.bias), dy))
    x2, dy2, w = x.detach().reshape(-1, 37), dy.reshape(-1, 11), layer.weight.detach()
    operands = {"fprop": (x2, w), "bprop": (dy2, w), "wtgrad": (x2, dy2)}
    terms = {"fprop": 37, "bprop": 11, "wtgrad": 6}
    for (name, f), g, g_ref in zip(LINEAR_PASSES.items(), got[:3], want[:3]):
        a, b = operands[name]
        qa, qb = dequantized(a, bits), dequantized(b, bits)
        bound = (quant_bound(f, a, b, ulp(a, bits), ulp(b, bits))
                 + gamma(flushes(layer, (1, 37, 1, 6), name) + 1) * f(qa.abs(), qb.abs())
                 + gamma(terms[name]) * f(a.double().abs(), b.double().abs()))
        err = (g.double().reshape(bound.shape) - g_ref.double().reshape(bound.shape)).abs()
        assert torch.all(err <= bound), f"{name}: worst excess {(err - bound).max():.3g}"
    assert torch.allclose(got[3], want[3], rtol=0, atol=gamma(6) * float(dy.abs().sum()))


@pytest.mark.parametrize("bits", [16, 13])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_is_float64_autograd_on_quantized_operands(case, bits):
    """The DFP function's definition: y = conv(Q(x), Q(w)), dx and dw = float64 autograd of that with Q(dy)."""
    layer, x, dy, got, _ = _conv_run(case, bits, seed=2)
    qx = dequantized(x, bits).requires_grad_()
    qw = dequantized(layer.weight, bits).requires_grad_()
    qdy = dequantized(dy, bits)
    passes = conv_passes(layer.geometry, x.shape, qw.shape)
    y64 = passes["fprop"](qx, qw)
    dx64, dw64 = torch.autograd.grad(y64, (qx, qw), qdy)
    with torch.no_grad():
        absolute = {"fprop": passes["fprop"](qx.abs(), qw.abs()), "bprop": passes["bprop"](qdy.abs(), qw.abs()),
                    "wtgrad": passes["wtgrad"](qx.abs(), qdy.abs())}
    # torch adds the FP32 bias to the DFP output: one more rounding, relative to |y| + |bias|.
    bias = layer.bias.detach().double().view(1, -1, 1, 1)
    y64, absolute["fprop"] = y64 + bias, absolute["fprop"] + bias.abs()
    for name, g, g64 in zip(("fprop", "bprop", "wtgrad"), got[:3], (y64, dx64, dw64)):
        bound = (gamma(flushes(layer, x.shape, name) + 2) + gamma(10**4, U64)) * absolute[name]
        err = (g.double() - g64.detach()).abs()
        assert torch.all(err <= bound), f"{name}: worst excess {(err - bound).max():.3g}"


def test_linear_backward_is_float64_autograd_on_quantized_operands():
    torch.manual_seed(3)
    layer = DFPLinear(19, 7, bias=False, bits=14)
    x = torch.randn(5, 19, requires_grad=True)
    y = layer(x)
    dy = torch.randn_like(y)
    dx, dw = torch.autograd.grad(y, (x, layer.weight), dy)
    qx, qw, qdy = (dequantized(t, 14).requires_grad_() for t in (x, layer.weight, dy))
    y64 = qx @ qw.T
    dx64, dw64 = torch.autograd.grad(y64, (qx, qw), qdy)
    pairs = {"fprop": (y, y64, qx.abs() @ qw.abs().T), "bprop": (dx, dx64, qdy.abs() @ qw.abs()),
             "wtgrad": (dw, dw64, qdy.abs().T @ qx.abs())}
    for name, (g, g64, absolute) in pairs.items():
        bound = (gamma(flushes(layer, (1, 19, 1, 5), name) + 1) + gamma(100, U64)) * absolute.detach()
        assert torch.all((g.double() - g64.detach()).abs() <= bound), name


def forward_within_dfp_bound(layer, x: torch.Tensor) -> torch.Tensor:
    """layer(x), checked against torch's FP32 layer on the layer's current weights within the fprop bound
    of test_conv_matches_fp32_within_dfp_bound (quantization + flush + FP32 terms) at the layer's own bits."""
    bits, bits_w = layer.numerics.bits_of("act"), layer.numerics.bits_of("weight")
    w = layer.weight.detach()
    if isinstance(layer, DFPConv2d):
        f, xs, op_shape = conv_passes(layer.geometry, x.shape, w.shape)["fprop"], x, tuple(x.shape)
        ref = F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
    else:
        xs = x.reshape(-1, x.shape[-1])
        f, op_shape = LINEAR_PASSES["fprop"], (1, xs.shape[1], 1, xs.shape[0])
        ref = F.linear(x, layer.weight, layer.bias).reshape(-1, w.shape[0])
    terms = w[0].numel()   # products summed per output: C/groups x R x S, or in_features
    y = layer(x)
    qx, qw = dequantized(xs, bits), dequantized(w, bits_w)
    bound = (quant_bound(f, xs, w, ulp(xs, bits), ulp(w, bits_w))
             + gamma(flushes(layer, op_shape, "fprop") + 1) * f(qx.abs(), qw.abs())
             + gamma(terms) * f(xs.double().abs(), w.double().abs()))
    err = (y.detach().double().reshape(bound.shape) - ref.detach().double().reshape(bound.shape)).abs()
    assert torch.all(err <= bound), f"worst excess {(err - bound).max():.3g}, worst error {err.max():.3g}"
    return y.detach()


def change_through_data(weight: nn.Parameter, how: str) -> None:
    """The updates that bypass autograd's version counter (issue 20 item 1)."""
    if how == "mul_":
        weight.data.mul_(2)
    else:
        weight.data[...] = torch.randn_like(weight)


@pytest.mark.parametrize("how", ["mul_", "setitem"])
@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_weights_changed_through_data_are_not_stale(kind, how):
    """Issue 20 item 1: y2 used to equal y1, computed with the weights before the update."""
    torch.manual_seed(7)
    if kind == "conv":
        layer, x = DFPConv2d(8, 16, 3, padding=1), torch.randn(2, 8, 6, 6)
    else:
        layer, x = DFPLinear(24, 10), torch.randn(5, 24)
    y1 = forward_within_dfp_bound(layer, x)
    change_through_data(layer.weight, how)
    y2 = forward_within_dfp_bound(layer, x)
    assert not torch.equal(y1, y2)
    with torch.no_grad():   # evaluation reads the current weights too
        change_through_data(layer.weight, how)
        forward_within_dfp_bound(layer, x)


def test_hand_written_sgd_loop_tracks_fp32():
    """Issue 20 item 1: p.data.add_(-lr * p.grad) for 3 steps, DFP16 against FP32 torch on the same data.

    The model is smooth (tanh, no ReLU kink that a quantization error can flip), so the DFP run stays
    within 2**-10 of the FP32 run's weight change: seeds 0..6 give at most 7e-5; stale weights give ~1."""
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    dfp = convert(ref, inplace=False).model
    assert isinstance(dfp[0], DFPConv2d) and isinstance(dfp[3], DFPLinear)
    x, target = torch.randn(4, 3, 6, 6), torch.randn(4, 4)
    start = [p.detach().clone() for p in ref.parameters()]
    for _ in range(3):
        for model in (ref, dfp):
            model.zero_grad()
            F.mse_loss(model(x), target).backward()
            for p in model.parameters():
                p.data.add_(-0.1 * p.grad)
    for (name, p), p_ref, p0 in zip(dfp.named_parameters(), ref.parameters(), start):
        drift = float((p.detach() - p_ref.detach()).norm() / (p_ref.detach() - p0).norm())
        assert drift <= 2**-10, f"{name}: {drift:.3g} of the FP32 update"


def test_first_layer_skips_the_input_gradient_pass():
    layer = DFPConv2d(3, 4, 3, padding=1, bias=False)
    x = torch.randn(1, 3, 6, 5)  # no requires_grad: the first layer of a network
    layer(x).sum().backward()
    op = layer.op(tuple(x.shape))
    assert set(op.kernels) == {"fprop", "wtgrad"}
    assert layer.weight.grad is not None
    frozen = DFPConv2d(3, 4, 3, padding=1, bias=False)
    frozen.weight.requires_grad_(False)
    xg = torch.randn(1, 3, 6, 5, requires_grad=True)  # same shape and numerics: shares the op
    frozen(xg).sum().backward()
    assert xg.grad is not None and frozen.weight.grad is None


@pytest.mark.parametrize("kwargs, option", [
    (dict(dilation=0), "dilation"),
    (dict(padding_mode="reflect"), "padding_mode"),
    (dict(stride=(1, 2, 3)), "stride"),
    (dict(padding=(0, -1)), "padding"),
    (dict(padding="same", stride=2), "padding='same'"),
    (dict(padding="full"), "padding"),
])
def test_unsupported_conv_options_raise_at_construction(kwargs, option):
    args = dict(in_channels=4, out_channels=4, kernel_size=3) | kwargs
    with pytest.raises(SpecError, match=option.replace("(", r"\(")):
        DFPConv2d(**args)


@pytest.mark.parametrize("kwargs, error, option", [
    (dict(bits=17), NumericsError, "bits"),
    (dict(rounding="up"), NumericsError, "rounding"),
    (dict(grad_rounding="up"), NumericsError, "rounding"),
    (dict(overflow="clip"), NumericsError, "overflow"),
    (dict(threads=0), TargetError, "threads"),
    (dict(dtype=torch.float64), DTypeError, "dtype"),
])
def test_bad_numerics_raise_at_construction(kwargs, error, option):
    with pytest.raises(error, match=option):
        DFPConv2d(4, 4, 3, **kwargs)


def conv2d_error(**options) -> str:
    """The one-line message dfpgen.Conv2d gives for these options (what the torch layers must say too)."""
    with pytest.raises(dfpgen.DFPGenError) as info:
        dfpgen.Conv2d(dfpgen.ConvSpec(1, 4, 4, 5, 5, 3, 3), **options)
    return str(info.value)


LAYERS_AND_CONVERT = {
    "DFPConv2d": lambda **options: DFPConv2d(4, 4, 3, **options),
    "DFPLinear": lambda **options: DFPLinear(4, 4, **options),
    "convert": lambda **options: convert(nn.Sequential(nn.Conv2d(4, 4, 3)), **options),
    "convert nothing": lambda **options: convert(nn.Sequential(nn.ReLU()), **options),   # no layer to build
}


@pytest.mark.parametrize("isa", [i for i in host().isas("dfp16") if not ISAS[i].saturating])
@pytest.mark.parametrize("build", LAYERS_AND_CONVERT.values(), ids=LAYERS_AND_CONVERT.keys())
def test_saturate_without_vpdpwssds_fails_at_construction(build, isa):
    """Issue 20 item 10: it used to be accepted and to fail at the first batch."""
    with pytest.raises(PlanError) as info:
        build(overflow="saturate", isa=isa)
    assert str(info.value) == conv2d_error(overflow="saturate", isa=isa) and "\n" not in str(info.value)
    assert "vpdpwssd" in str(info.value)


@pytest.mark.parametrize("threads", [-1, 0, True, 2.5, "2"])
@pytest.mark.parametrize("build", LAYERS_AND_CONVERT.values(), ids=LAYERS_AND_CONVERT.keys())
def test_bad_threads_fail_at_construction_as_conv2d_says(build, threads):
    """Issue 20 item 10: one check (runtime.conv's) and one message for Conv2d, the torch layers and convert()."""
    with pytest.raises(TargetError) as info:
        build(threads=threads)
    assert str(info.value) == conv2d_error(threads=threads) and "\n" not in str(info.value)


def test_numpy_integer_threads_are_taken():
    layer = DFPConv2d(4, 4, 3, threads=np.int64(2))
    assert layer.threads == 2 and type(layer.threads) is int
    assert layer(torch.randn(1, 4, 5, 5)).shape == (1, 4, 3, 3)


def test_supported_padding_forms():
    g = DFPConv2d(2, 2, 3, padding="same").geometry
    assert (g["R"], g["pad"], g["pad_bottom"], g["pad_w"], g["pad_right"]) == (3, 1, 1, 1, 1)
    g = DFPConv2d(2, 2, (4, 2), padding="same", dilation=(1, 3)).geometry   # torch puts the odd pixel last
    assert (g["pad"], g["pad_bottom"], g["pad_w"], g["pad_right"], g["dilation_w"]) == (1, 2, 1, 2, 3)
    g = DFPConv2d(2, 2, (5, 3), padding="valid").geometry
    assert (g["R"], g["S"], g["pad"], g["pad_right"]) == (5, 3, 0, 0)
    g = DFPConv2d(4, 2, 3, stride=(2, 1), padding=(1, 0), groups=2).geometry
    assert (g["stride"], g["stride_w"], g["pad"], g["pad_w"], g["groups"]) == (2, 1, 1, 0, 2)


def test_only_float32_cpu_tensors():
    layer = DFPConv2d(2, 2, 1)
    with pytest.raises(DTypeError, match="float32"):
        layer(torch.randn(1, 2, 3, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match="expected"):
        layer(torch.randn(1, 3, 3, 3))
    lin = DFPLinear(4, 2)
    with pytest.raises(DTypeError, match="float32"):
        lin(torch.randn(3, 4).half())


def test_unbatched_and_noncontiguous_inputs():
    torch.manual_seed(4)
    ref = nn.Conv2d(3, 2, 3, padding=1)
    layer = pair(ref, DFPConv2d(3, 2, 3, padding=1))
    x = torch.randn(5, 5, 3).permute(2, 0, 1)  # (C, H, W), not contiguous
    assert layer(x).shape == ref(x).shape == (2, 5, 5)
    assert torch.allclose(layer(x), ref(x), atol=1e-3)


# ------------------------------------------------------------------------------------------- convert


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 block (v1.5: the stride sits in the 3x3 convolution)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet50(nn.Module):
    """torchvision.models.resnet50's structure and module names."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, 3)
        self.layer2 = self._layer(128, 4, 2)
        self.layer3 = self._layer(256, 6, 2)
        self.layer4 = self._layer(512, 3, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes)

    def _layer(self, planes, blocks, stride=1):
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_convert_resnet50_batch1_trains_one_step():
    torch.manual_seed(0)
    model = ResNet50(classes=10)
    params = dict(model.named_parameters())
    keys = list(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # built before convert: must keep working
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    report = convert(model, seed=0)
    assert isinstance(report, ConversionReport) and report.model is model
    assert len(convs) == 53 and report.converted == convs + ["fc"] and report.kept == []
    assert all(isinstance(m, DFPConv2d) for n, m in model.named_modules() if n in convs)
    assert isinstance(model.fc, DFPLinear) and model.layer2[0].downsample[0].stride == (2, 2)
    assert list(model.state_dict()) == keys
    assert all(p is params[n] for n, p in model.named_parameters()) and len(params) == len(list(model.parameters()))
    text = str(report)
    assert "converted 54 layer(s)" in text and "layer4.2.conv3" in text and "kept 0 layer(s)" in text

    x = torch.randn(1, 3, 48, 48)  # batch 1; 48 x 48 keeps layer4 at 2 x 2, enough for batch norm statistics
    before = model.fc.weight.detach().clone()
    loss = F.cross_entropy(model(x), torch.tensor([3]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(float(params[f"{n}.weight"].grad.abs().max()) > 0 for n in convs + ["fc"])
    opt.step()
    assert not torch.equal(model.fc.weight, before)  # the optimizer updated the very tensor the DFP layer reads
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()  # the next forward reads the updated weights (requantized)


def test_convert_keeps_incompatible_layers_with_reasons():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=4),
                          nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"),
                          nn.Flatten(), nn.Linear(8 * 5 * 5, 6), nn.LazyLinear(3))
    model[5].to(torch.float64)
    report = convert(model)
    kept = dict(report.kept)
    assert report.converted == ["0", "1", "2"]             # grouped and dilated layers run in DFP too
    assert "padding_mode" in kept["3"]
    assert "float64" in kept["5"] and "lazy" in kept["6"]
    assert type(model[3]) is nn.Conv2d and isinstance(model[1], DFPConv2d)
    text = str(report)
    assert "kept 3 layer(s) in FP32" in text and "3: padding_mode" in text


def test_convert_shares_parameters_and_state_dict_round_trips():
    torch.manual_seed(5)
    shared = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    ref = copy.deepcopy(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = convert(model, inplace=True)
    assert report.converted == ["0", "4"] and model[0] is model[2]  # a shared module stays one module
    assert model.state_dict().keys() == state.keys()
    model.load_state_dict(state)
    ref.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(model(x), ref(x), atol=1e-3)
    clone = convert(ref, inplace=False).model
    assert isinstance(clone[0], DFPConv2d) and type(ref[0]) is nn.Conv2d
    assert clone[0].weight is not ref[0].weight
    # Copies and pickles drop the compiled kernels and rebuild them on use.
    again = pickle.loads(pickle.dumps(copy.deepcopy(model)))
    assert torch.equal(again(x), model(x))


def test_stochastic_rounding_is_seeded():
    torch.manual_seed(6)
    base = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(4, 2, 6, 6)
    outs = []
    for seed in (0, 0, 1):
        model = convert(base, rounding="stochastic", bits=8, seed=seed, inplace=False).model
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


def test_core_package_never_imports_torch():
    import subprocess
    import sys
    code = ("import sys, dfpgen, dfpgen.frontends.cli, dfpgen.training.train, dfpgen.training.data, dfpgen.nn.models, dfpgen.tuning.tune; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def run_layer(layer, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y, dx and dw of one forward and backward pass of a bias-free layer."""
    xt = torch.from_numpy(x.copy()).requires_grad_()
    layer.weight.grad = None
    y = layer(xt)
    y.backward(torch.from_numpy(dy))
    return y.detach().numpy(), xt.grad.numpy(), layer.weight.grad.numpy().reshape(layer.weight.shape)


def conv2d_passes(layer, x, w, dy, numerics, x_shape=None):
    """y, dx and dw from dfpgen.Conv2d on the same operands (quantized or not as it decides, with numpy)."""
    op = dfpgen.Conv2d(layer.op(tuple(x_shape or x.shape)).spec, numerics=numerics, eager=False)
    return op.fprop(x, w), op.bprop(dy, w), op.wtgrad(x, dy)


@pytest.mark.parametrize("dfp", [("act", "weight"), ("weight", "grad"), ("grad",), ()],
                         ids=["act+weight", "weight+grad", "grad", "none"])
def test_mixed_numerics_run_every_pass_on_the_forward_operands(dfp):
    """A mixed layer (some kinds FP32) quantizes its DFP kinds once, and every pass reads those values: an
    FP32-kernel pass reads a DFP operand's quantized values, as Conv2d does on shared DFPTensors."""
    from dfpgen.core.numerics import LayerNumerics

    numerics = LayerNumerics(bits=10, dfp=dfp)
    rng = np.random.default_rng(3)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 6, 6), (4, 3, 3, 3), (2, 4, 6, 6)))
    layer = DFPConv2d(3, 4, 3, padding=1, bias=False, numerics=numerics)
    layer.weight.data = torch.from_numpy(w)
    q = lambda a, kind: dfpgen.quantize(a, 10) if kind in dfp else a   # noqa: E731
    want = conv2d_passes(layer, q(x, "act"), q(w, "weight"), q(dy, "grad"), numerics)
    for got, expected in zip(run_layer(layer, x, dy), want):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rounding", ["nearest", "chop"])
def test_dfp_layer_matches_the_numpy_runtime(rounding):
    """One LayerNumerics drives both runtimes: a DFPConv2d and a dfpgen.nn.Conv give the same bits in all
    three passes. (Stochastic rounding numbers elements by position in the array quantized: NCHW here,
    the blocked layout there, so the two draw alike only for plain arrays.)"""
    from dfpgen.core.numerics import LayerNumerics

    layer, results, expected, _ = torch_and_numpy_runtime(LayerNumerics(bits=10, rounding=rounding), 20, 4, seed=3)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def torch_and_numpy_runtime(numerics, C: int, K: int, seed: int):
    """A bias-free 3x3 DFPConv2d and dfpgen.nn.Conv with the same weights and numerics, run on the same x and dy:
    (the torch layer, its y/dx/dw, the numpy runtime's y/dx/dw, the operands x/w/dy)."""
    from dfpgen.nn import Conv

    rng = np.random.default_rng(seed)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in ((2, C, 6, 6), (K, C, 3, 3), (2, K, 6, 6)))
    ours = Conv("c", C, K, 3, pad=1, numerics=numerics)
    ours.weight.data = w.copy()
    y = ours.forward(x)
    dx = ours.backward(dy)
    layer = DFPConv2d(C, K, 3, padding=1, bias=False, numerics=numerics)
    layer.weight.data = torch.from_numpy(w)
    return layer, run_layer(layer, x, dy), (y, dx, ours.weight.grad), (x, w, dy)


@pytest.mark.parametrize("formats", ["posit8_1", "act=fp8_e4m3,weight=fp8_e4m3,grad=fp8_e5m2", "mxint8",
                                     "grad=posit16_1"])
def test_format_layer_matches_the_numpy_runtime(formats):
    """Emulated formats (issue 23): a DFPConv2d with LayerNumerics(formats=...) gives the bits of dfpgen.nn.Conv
    in all three passes (Conv2d.run there, run_blocked here: the same per-pass rounding, MX blocked along each
    pass's reduction axis, and the same posit quire results), and its forward pass is the FP32 kernel (for a
    posit result, the exact sum rounded once: tests/test_quire.py) on the operands as the formats' own
    quantize rounds them."""
    from dfpgen.core.numerics import LayerNumerics, parse_formats

    numerics = LayerNumerics(formats=parse_formats(formats))
    layer, results, expected, (x, w, dy) = torch_and_numpy_runtime(numerics, 40, 36, seed=4)
    assert "formats=" in repr(layer)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    rounded = [numerics.format_of(k) for k in ("act", "weight")]
    if all(rounded) and not isinstance(rounded[0], dfpgen.formats.MX):
        spec = layer.op(x.shape).spec
        xq, wq = (f.quantize(a).astype(np.float32) for f, a in zip(rounded, (x, w)))
        if numerics.format_of("act").accumulation == "quire":
            want = quire.run(dfpgen.passes.FPROP, spec, xq, wq, rounded[0])
        else:
            want = dfpgen.Conv2d(spec, numerics=LayerNumerics.fp32(), eager=False).fprop(xq, wq)
        np.testing.assert_array_equal(results[0], want)


BLOCKED_CASES = [  # (N, C, K, H, W, kernel, stride, pad, other nn.Conv2d options): ungrouped, run by run_blocked
    (2, 3, 5, 9, 9, 3, 1, 1, {}),
    (2, 4, 6, 10, 7, (3, 1), 2, 1, {}),
    (2, 20, 36, 8, 8, 1, 2, 0, {}),                                        # channels across lane blocks
    (1, 6, 4, 11, 9, 3, (1, 2), (2, 1), dict(dilation=(2, 1))),
    (1, 8, 8, 7, 8, (2, 4), 1, "same", {}),
    (2, 32, 64, 12, 12, 3, 1, 1, {}),
]


def blocked_case(case, rounding, seed=0, threads=None):
    """A bias-free DFPConv2d for a case at 12 bits, and x, w, dy for it."""
    N, C, K, H, W, ks, stride, pad, options = case
    torch.manual_seed(seed)
    layer = DFPConv2d(C, K, ks, stride, pad, bias=False, bits=12, rounding=rounding, threads=threads,
                      seed=(seed,), **options)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    y_shape = F.conv2d(torch.from_numpy(x), layer.weight, None, layer.stride, layer.padding, layer.dilation).shape
    return layer, x, layer.weight.detach().numpy().copy(), rng.standard_normal(tuple(y_shape)).astype(np.float32)


@pytest.mark.parametrize("rounding", ["nearest", "nearest_even", "chop", "biased"])
@pytest.mark.parametrize("case", BLOCKED_CASES)
def test_blocked_path_gives_the_conv2d_results(case, rounding, monkeypatch):
    """Quantizing with the generated kernels straight into each pass's layout (run_blocked) gives bit for bit
    what Conv2d.fprop/bprop/wtgrad give on the same float operands (numpy quantization)."""
    from dfpgen.frontends import torch as frontend

    calls = []
    monkeypatch.setattr(frontend, "run_blocked", lambda *a: calls.append(a[1].name) or run_blocked(*a))
    layer, x, w, dy = blocked_case(case, rounding)
    got = run_layer(layer, x, dy)
    assert calls == ["fprop", "bprop", "wtgrad"]
    for g, want in zip(got, conv2d_passes(layer, x, w, dy, layer.numerics)):
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", [BLOCKED_CASES[0], BLOCKED_CASES[2], BLOCKED_CASES[5]])
def test_channels_last_tensors_stay_channels_last_with_the_same_values(case, threads):
    """A channels-last model (x, dy and the weight) is read in place; y and dx come back channels-last, as
    nn.Conv2d keeps the memory format, and dw in the weight's; the values are the NCHW run's bit for bit."""
    layer, x, w, dy = blocked_case(case, "nearest", threads=threads)
    want = run_layer(layer, x, dy)
    layer.to(memory_format=torch.channels_last)
    assert layer.weight.is_contiguous(memory_format=torch.channels_last)
    xt = torch.from_numpy(x).to(memory_format=torch.channels_last).requires_grad_()
    layer.weight.grad = None
    y = layer(xt)
    assert y.is_contiguous(memory_format=torch.channels_last) or y.shape[1] == 1
    y.backward(torch.from_numpy(dy).to(memory_format=torch.channels_last))
    assert xt.grad.is_contiguous(memory_format=torch.channels_last) or x.shape[1] == 1
    assert layer.weight.grad.is_contiguous(memory_format=torch.channels_last)
    for got, expected in zip((y.detach().numpy(), xt.grad.numpy(), layer.weight.grad.numpy()), want):
        np.testing.assert_array_equal(got, expected)


def test_stochastic_rounding_numbers_elements_by_memory_position():
    """Stochastic draws go by an element's position in memory: a channels-last x rounds as dfpgen.quantize
    rounds its NHWC array under the same key."""
    from dfpgen.core.stochastic import StreamKey

    layer, x, w, dy = blocked_case(BLOCKED_CASES[2], "stochastic", seed=4)
    rng = np.random.default_rng((4,))
    kx, kw, kdy = (StreamKey(*(int(v) for v in rng.integers(0, 2**32, 2))) for _ in range(3))
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))   # noqa: E731
    q = lambda a, key: dfpgen.quantize(a, 12, "stochastic", seed=key)   # noqa: E731
    xq = q(nhwc(x), kx).to_float().transpose(0, 3, 1, 2)
    dyq = q(nhwc(dy), kdy).to_float().transpose(0, 3, 1, 2)
    want = conv2d_passes(layer, xq, q(w, kw), dyq, layer.numerics, x.shape)
    xt = torch.from_numpy(x).to(memory_format=torch.channels_last).requires_grad_()
    y = layer(xt)
    y.backward(torch.from_numpy(dy).to(memory_format=torch.channels_last))
    for got, expected in zip((y.detach().numpy(), xt.grad.numpy(), layer.weight.grad.numpy()), want):
        np.testing.assert_array_equal(got, expected)


def test_torch_imported_first_warns_once_about_spinning_threads(monkeypatch):
    """With torch loaded before dfpgen.torch and OMP_WAIT_POLICY unset, a multi-threaded DFP layer says once
    how to stop torch's OpenMP threads from spinning on its cores; a single thread never warns."""
    from dfpgen.frontends import torch as frontend

    monkeypatch.setattr(frontend, "_TORCH_SPINS", True)
    monkeypatch.setattr(frontend, "_spin_warned", False)
    layer, x, w, dy = blocked_case(BLOCKED_CASES[0], "nearest", threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_layer(layer, x, dy)
    layer, x, w, dy = blocked_case(BLOCKED_CASES[0], "nearest", threads=2)
    with pytest.warns(RuntimeWarning, match="OMP_WAIT_POLICY=PASSIVE") as caught:
        run_layer(layer, x, dy)
    assert len(caught) == 1


def test_stochastic_rounding_draws_one_key_per_tensor():
    """x and w are rounded with the first two keys of the layer's generator, dy with the third; every pass
    that reads a tensor sees the same mantissas (dfpgen.quantize with the same StreamKey)."""
    from dfpgen.core.stochastic import StreamKey

    layer, x, w, dy = blocked_case(BLOCKED_CASES[2], "stochastic", seed=4)
    rng = np.random.default_rng((4,))
    kx, kw, kdy = (StreamKey(*(int(v) for v in rng.integers(0, 2**32, 2))) for _ in range(3))
    q = lambda a, key: dfpgen.quantize(a, 12, "stochastic", seed=key)   # noqa: E731
    want = conv2d_passes(layer, q(x, kx), q(w, kw), q(dy, kdy), layer.numerics, x.shape)
    for g, expected in zip(run_layer(layer, x, dy), want):
        np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("case", [BLOCKED_CASES[5], (4, 64, 64, 16, 16, 3, 1, 1, {})])
def test_results_do_not_depend_on_the_thread_count(case, rounding):
    results = []
    for threads in (1, 2, 3):
        layer, x, w, dy = blocked_case(case, rounding, seed=1, threads=threads)
        assert layer.op(x.shape).threads == threads
        results.append(run_layer(layer, x, dy))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_linear_results_do_not_depend_on_the_thread_count():
    results = []
    for threads in (1, 2):
        torch.manual_seed(0)
        layer = DFPLinear(300, 70, bits=12, rounding="stochastic", seed=3, threads=threads)
        x = torch.randn(40, 300, requires_grad=True)
        y = layer(x)
        y.backward(torch.ones_like(y))
        results.append((y.detach(), x.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("groups", [1, 2])
def test_non_finite_inputs_name_the_layer(groups):
    layer = DFPConv2d(4, 4, 3, groups=groups)
    layer.dfp_name = "features.3"
    x = torch.randn(1, 4, 5, 5)
    x[0, 1, 2, 3] = float("nan")
    message = r"features.3 input: 1 NaN/Inf value\(s\), the first at index \(0, 1, 2, 3\)"
    with pytest.raises(dfpgen.DFPGenError, match=message):
        layer(x)


def test_guessed_maxima_give_the_results_of_measured_ones():
    """A layer guesses each tensor's max|.| from its last step (skipping torch's pass over the tensor); tensors
    whose max moved by less or more than a binade, or whose weights changed, still give a fresh layer's bits."""
    layer, x, w, dy = blocked_case(BLOCKED_CASES[5], "nearest")
    for scale in (1.0, 1.1, 3.0, 0.2, 0.2):
        with torch.no_grad():
            layer.weight.mul_(1.5)
        fresh, _, _, _ = blocked_case(BLOCKED_CASES[5], "nearest")
        fresh.load_state_dict(layer.state_dict())
        got, want = run_layer(layer, x * scale, dy / scale), run_layer(fresh, x * scale, dy / scale)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert {what for what, _ in layer._max_hints} == {"input", "weight", "output gradient"}


def test_non_finite_input_after_a_guess_names_the_layer():
    layer, x, _, dy = blocked_case(BLOCKED_CASES[5], "nearest")
    layer.dfp_name = "features.3"
    run_layer(layer, x, dy)
    x[0, 1, 2, 3] = float("inf")
    with pytest.raises(dfpgen.DFPGenError, match=r"features.3 input: 1 NaN/Inf value\(s\), the first at index"):
        layer(torch.from_numpy(x))


def test_layers_sharing_an_op_run_from_two_threads():
    """Layers of one shape share an op and its operand buffers; concurrent calls still give each its own result."""
    from concurrent.futures import ThreadPoolExecutor

    layers, inputs = [], []
    for seed in range(4):
        layer, x, _, dy = blocked_case(BLOCKED_CASES[5], "nearest", seed=seed, threads=1)
        layers.append(layer)
        inputs.append((x, dy))
    alone = [run_layer(layer, x, dy) for layer, (x, dy) in zip(layers, inputs)]
    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda i: run_layer(layers[i], *inputs[i]), range(4)))
        for a, b in zip(alone, together):
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)


def test_inputs_changed_in_place_before_backward_fail_as_in_torch():
    """x and w are read again by the backward passes: an in-place change in between is an error, as for nn.Conv2d."""
    layer = DFPConv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 5, 5, requires_grad=True)
    h = x * 1
    y = layer(h)
    h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_numerics_are_given_once():
    from dfpgen.core.numerics import LayerNumerics

    with pytest.raises(NumericsError, match="bits: give the numerics either"):
        DFPConv2d(3, 4, 3, bits=12, numerics=LayerNumerics())
    with pytest.raises(NumericsError, match="numerics=12"):
        convert(nn.Conv2d(3, 4, 3), numerics=12)
