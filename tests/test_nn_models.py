"""dfpgen.nn.models: the paper's four ImageNet networks against dfpgen's layer catalogs, one training step in DFP16
against FP32, and the small networks for real training runs.

The DFP16-vs-FP32 step (slow). The brief's expectation of ~1e-3 per-layer agreement of weight gradients
does not hold for these networks at random initialization, and no DFP16 implementation could meet it.
Measured in float64 with torch (no dfpgen kernels), batch 2, seed 0:
  * an exact emulation of DFP16 (every conv/fc operand quantized per tensor, nearest, float64 arithmetic)
    differs from float64 in Conv/Linear weight gradients by, worst layer (median): AlexNet 5.0% (3.1%),
    GoogLeNet 6.2% (1.2%), VGG-16 7.8% (4.4%), ResNet-50 38% (36%);
  * FP32 alone is just as sensitive: multiplying the weights and the input by (1 + 2**-15 * noise) moves
    AlexNet's conv1 gradient by 3.2% and ResNet-50's gradients by 23% (median). Perturbations of 1e-9 and
    1e-12 move them linearly (x550), so this is not a condition number but ReLU / max-pool decisions flipping:
    these gradients are rough functions of their inputs.
So the test checks three things:
  1. every kernel call inside the real DFP16 step equals float32 torch on its own quantized operands
     (relative L2 < 1e-5): the kernels add nothing to quantization;
  2. the end-to-end per-layer weight-gradient error of DFP16 against FP32 stays within SENSITIVITY_FACTOR of
     FP32's own sensitivity, measured in the same test by re-running the FP32 network with its weights and
     input moved by half a DFP16 step (the size of DFP16's rounding), worst layer and median, and under an
     absolute ceiling per network (about 2x the emulation's worst layer);
  3. the loss agrees (relative 2e-3; the emulation's worst is ResNet-50's 7.5e-4).
Measured here (dfpgen kernels, avx2 host): DFP16 vs FP32 worst layer (median) / FP32 perturbed worst (median):
AlexNet 3.8% (2.4%) / 2.7% (1.3%); GoogLeNet 5.9% (1.2%) / 4.5% (0.8%); ResNet-50 38% (36%) / 32% (30%);
VGG-16 8.5% (4.0%) / 6.7% (3.9%): ratios 1.2-1.45; losses within 4e-4; kernels within 4e-6 of torch.
For ResNet-50 at initialization criterion 2 cannot tell right from wrong: criterion 1 carries that network.
Together they take ~9 minutes here (VGG-16 3.3, ResNet-50 2.9, GoogLeNet 1.9, AlexNet 1), mostly compiling
the FC layers' WTGRAD kernels, whose call tables run to hundreds of thousands of tiles. They are marked
`imagenet` and left out of the default run (pyproject addopts): `python -m pytest -q -m imagenet` runs them.
"""

import gc
import re
import time

import numpy as np
import pytest

from dfpgen.core import catalog
from dfpgen.core.dfp import quantize
from dfpgen.errors import CatalogError
from dfpgen.nn import BatchNorm, Conv, LayerNumerics, Linear, Residual, SoftmaxCrossEntropy, build
from dfpgen.nn import layers as layers_mod
from dfpgen.nn.models import NETWORKS, Builder, cifar_resnet
from dfpgen.runtime.blocked import Blocked, Measured
from dfpgen.training.data import load

IMAGENET = ["resnet50", "googlenet_v1", "vgg16", "alexnet"]
FP32 = LayerNumerics.fp32()
SENSITIVITY_FACTOR = 3
CEILING = {"alexnet": 0.12, "googlenet_v1": 0.15, "vgg16": 0.2, "resnet50": 0.75}
LOSS_RTOL = 2e-3


def convs_of(net):
    """The network's own convolutions: not the inner 1x1 Conv of a Linear, however layers() lists them."""
    inner = {id(layer.conv) for layer in net.layers() if isinstance(layer, Linear)}
    return [layer for layer in net.layers() if isinstance(layer, Conv) and id(layer) not in inner]


def spec_key(s):
    return (s.C, s.K, s.H, s.W, s.R, s.S, s.stride, s.pad)


def catalog_specs(net):
    specs = catalog.select(net)
    by_name = {s.name: s for s in specs}
    assert len(by_name) == len(specs), f"{net}: duplicate layer names in the catalog"
    return by_name


def record_specs(monkeypatch, run_kernels: bool):
    """Wrap Conv.forward (Linear's too: it runs an inner Conv) to record each layer's ConvSpec. Without kernels,
    the wrapper returns zeros of the right shape, so pooling, concatenation and flattening still run."""
    specs = {}
    original = Conv.forward

    def forward(self, x, train=True):
        spec = self.spec(x.shape)
        assert self.name not in specs, f"layer {self.name} ran twice in one forward pass"
        specs[self.name] = spec
        if run_kernels:
            return original(self, x, train)
        return np.zeros((spec.N, spec.K, spec.P, spec.Q), np.float32)

    monkeypatch.setattr(Conv, "forward", forward)
    return specs


def assert_specs_match_catalog(net_name, specs, batch, fc_names):
    want = catalog_specs(net_name)
    assert sorted(specs) == sorted(want), (f"{net_name}: layers only in the model: {sorted(set(specs) - set(want))}, "
                                           f"only in the catalog: {sorted(set(want) - set(specs))}")
    bad = {}
    for name, spec in specs.items():
        expected = spec_key(want[name])
        if name in fc_names:  # a Linear is a 1x1 convolution over a 1 x N "image" of the batch
            expected = expected[:3] + (batch,) + expected[4:]
            assert spec.N == 1
        else:
            assert spec.N == batch
        if spec_key(spec) != expected:
            bad[name] = (spec_key(spec), expected)
    assert not bad, f"{net_name}: (C, K, H, W, R, S, stride, pad) model vs catalog: {bad}"


@pytest.mark.parametrize("net_name", IMAGENET)
def test_layer_names_and_shapes_match_catalog(net_name, monkeypatch):
    """Every Conv/Linear of the model, by name and shape, against dfpgen.core.catalog (no kernels: shapes only)."""
    net, shape = build(net_name, FP32, seed=0)
    assert tuple(shape) == catalog.load_network(net_name).input
    specs = record_specs(monkeypatch, run_kernels=False)
    y = net.forward(np.zeros((1, *shape), np.float32), train=False)
    assert y.shape == (1, 1000)
    fc_names = {layer.name for layer in net.layers() if isinstance(layer, Linear)}
    assert_specs_match_catalog(net_name, specs, 1, fc_names)
    n_conv = len(convs_of(net))
    assert n_conv + len(fc_names) == len(catalog.select(net_name))


@pytest.mark.parametrize("net_name", IMAGENET)
def test_fp32_forward_at_batch_1_matches_catalog(net_name, monkeypatch):
    """The same check through the real FP32 kernels (5-10 s per network here)."""
    net, shape = build(net_name, FP32, seed=0)
    specs = record_specs(monkeypatch, run_kernels=True)
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    y = net.forward(x, train=False)
    assert y.shape == (1, 1000) and y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() > 0
    fc_names = {layer.name for layer in net.layers() if isinstance(layer, Linear)}
    assert_specs_match_catalog(net_name, specs, 1, fc_names)


@pytest.mark.parametrize("net_name", list(NETWORKS))
def test_parameter_and_batchnorm_names_are_unique(net_name):
    """Checkpoints key arrays by parameter and BN names: a duplicate would silently share one array."""
    net, _ = build(net_name, FP32, seed=0)
    names = [p.name for p in net.params]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    bns = [layer.name for layer in net.layers() if isinstance(layer, BatchNorm)]
    assert len(bns) == len(set(bns))
    assert all(p.data.dtype == np.float32 for p in net.params)
    firsts = convs_of(net)[:1]
    assert firsts and not firsts[0].input_grad  # the first layer computes no input gradient


def test_same_seed_same_weights_across_precisions():
    a, _ = build("resnet8", FP32, seed=3, input_shape=(3, 32, 32))
    b, _ = build("resnet8", LayerNumerics(bits=16), seed=3, input_shape=(3, 32, 32))
    c, _ = build("resnet8", FP32, seed=4, input_shape=(3, 32, 32))
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p.data, q.data)
    assert any(not np.array_equal(p.data, q.data) for p, q in zip(a.params, c.params))


# ------------------------------------------------------------------------------ one step, DFP16 vs FP32

def weight_grads(net):
    return {p.name: p.grad.copy() for p in net.params if p.name.endswith(".weight")}


def step(net, x, y):
    for p in net.params:
        p.grad[...] = 0
    loss_fn = SoftmaxCrossEntropy()
    logits = net.forward(x, train=True)
    loss = loss_fn.forward(logits, y)
    net.backward(loss_fn.backward())
    return loss, logits


def relative_errors(got, want):
    return {k: float(np.linalg.norm(got[k] - want[k]) / np.linalg.norm(want[k])) for k in want}


def half_step_noise(a, rng, bits=16):
    """Uniform noise of +-half a DFP step of this tensor: the size of a DFP `bits` nearest rounding."""
    peak = np.abs(a).max()
    if peak == 0:  # zero-initialized biases: DFP holds zero exactly
        return np.zeros_like(a)
    step = 2.0 ** (np.floor(np.log2(peak)) - (bits - 2))
    return (rng.uniform(-0.5, 0.5, a.shape) * step).astype(np.float32)


@pytest.mark.slow
@pytest.mark.imagenet
@pytest.mark.parametrize("net_name", IMAGENET)
def test_one_training_step_dfp16_agrees_with_fp32(torch, net_name, monkeypatch):
    F = torch.nn.functional
    started = time.perf_counter()
    shape = NETWORKS[net_name][1]
    data = load("synthetic", input_shape=shape, classes=1000, synthetic_size=2)
    x, y = data.train_x, data.train_y
    assert x.shape == (2, *shape)

    # FP32, with the layer shapes recorded at batch 2 through the real kernels.
    net, _ = build(net_name, FP32, seed=0)
    fc_names = {layer.name for layer in net.layers() if isinstance(layer, Linear)}
    with monkeypatch.context() as m:
        specs = record_specs(m, run_kernels=True)
        loss32, logits = step(net, x, y)
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    assert_specs_match_catalog(net_name, specs, 2, fc_names)
    g32 = weight_grads(net)
    # FP32's own sensitivity: the same network with weights and input moved by half a DFP16 step.
    rng = np.random.default_rng(99)
    for p in net.params:
        p.data += half_step_noise(p.data, rng)
    loss_pert, _ = step(net, x + half_step_noise(x, rng), y)
    e_pert = relative_errors(weight_grads(net), g32)
    del net
    gc.collect()

    # DFP16 with the same initial weights; every kernel call checked against torch on its quantized operands.
    kernel_errors = []
    original_run = layers_mod.run_blocked

    def dequantized_operand(op, tensor, a):
        """The values a kernel saw: the operand as NCHW/KCRS floats, quantized as the op's numerics say."""
        values = a.nchw(1) if isinstance(a, Blocked) else a.data if isinstance(a, Measured) else np.asarray(a)
        return torch.from_numpy(quantize(values, op.numerics.bits_of(tensor.kind)).to_float(np.float32))

    def checked_run(op, conv_pass, a, b, keys=(None, None)):
        out = original_run(op, conv_pass, a, b, keys)
        assert op.precision == "dfp16"
        s, pass_name = op.spec, conv_pass.name
        A, B = dequantized_operand(op, conv_pass.src, a), dequantized_operand(op, conv_pass.vec, b)
        got = out.nchw(1) if isinstance(out, Blocked) else out
        if pass_name == "fprop":
            ref = F.conv2d(A, B, stride=s.stride, padding=s.pad)
            assert out.maxabs == pytest.approx(float(np.abs(got).max()), rel=1e-6)
        elif pass_name == "bprop":
            ref = torch.nn.grad.conv2d_input((s.N, s.C, s.H, s.W), B, A, stride=s.stride, padding=s.pad)
        else:
            ref = torch.nn.grad.conv2d_weight(A, (s.K, s.C, s.R, s.S), B, stride=s.stride, padding=s.pad)
        ref = ref.numpy()
        kernel_errors.append((s.name, pass_name, float(np.linalg.norm(got - ref) / np.linalg.norm(ref))))
        return out

    monkeypatch.setattr(layers_mod, "run_blocked", checked_run)
    net, _ = build(net_name, LayerNumerics(bits=16), seed=0)
    loss16, _ = step(net, x, y)
    g16 = weight_grads(net)
    monkeypatch.undo()

    n_layers = len(catalog.select(net_name))
    assert len(kernel_errors) == 3 * n_layers - 1  # every pass of every layer, but no input gradient of the first
    bad_kernels = [k for k in kernel_errors if not k[2] < 1e-5]
    assert not bad_kernels, bad_kernels

    e16 = relative_errors(g16, g32)
    worst = max(e16, key=e16.get)
    worst_pert = max(e_pert.values())
    limit = min(SENSITIVITY_FACTOR * worst_pert + 1e-3, CEILING[net_name])
    print(f"\n{net_name}: loss fp32 {loss32:.6f} dfp16 {loss16:.6f} perturbed fp32 {loss_pert:.6f}; "
          f"weight-gradient rel. error DFP16 vs FP32: worst {worst} {e16[worst]:.3g}, median "
          f"{np.median(list(e16.values())):.3g}; FP32 perturbed by half a DFP16 step: worst {worst_pert:.3g}, "
          f"median {np.median(list(e_pert.values())):.3g}; kernels worst {max(k[2] for k in kernel_errors):.2g}; "
          f"limit {limit:.3g}; {time.perf_counter() - started:.0f} s")
    assert loss16 == pytest.approx(loss32, rel=LOSS_RTOL)
    assert e16[worst] <= limit, sorted(e16.items(), key=lambda kv: -kv[1])[:5]
    assert np.median(list(e16.values())) <= SENSITIVITY_FACTOR * np.median(list(e_pert.values())) + 1e-3


# ------------------------------------------------------------------------------------------ small networks

SMALL = ["lenet", "resnet8", "resnet20"]


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)], ids=["mnist", "cifar"])
@pytest.mark.parametrize("net_name", SMALL)
def test_small_networks_adapt_to_input_and_classes(net_name, input_shape):
    net, shape = build(net_name, FP32, seed=0, input_shape=input_shape, classes=10)
    assert tuple(shape) == input_shape
    x = np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32)
    loss_fn = SoftmaxCrossEntropy()
    logits = net.forward(x, train=True)
    assert logits.shape == (2, 10) and np.isfinite(logits).all()
    loss_fn.forward(logits, np.array([1, 9]))
    assert net.backward(loss_fn.backward()) is None  # the first convolution computes no input gradient
    assert all(np.isfinite(p.grad).all() for p in net.params)
    assert any(np.abs(p.grad).sum() > 0 for p in net.params if p.name.startswith("conv1"))
    convs = convs_of(net)
    fcs = [layer for layer in net.layers() if isinstance(layer, Linear)]
    assert convs[0].C == input_shape[0] and fcs[-1].K == 10
    if net_name == "lenet":
        side = ((input_shape[1] // 2) - 4) // 2
        assert (len(convs), len(fcs), fcs[0].C) == (2, 3, 16 * side * side)
    else:
        n = (int(net_name[6:]) - 2) // 6
        blocks = [layer for layer in net.layers() if isinstance(layer, Residual)]
        assert len(blocks) == 3 * n and len(fcs) == 1 and fcs[0].C == 64
        assert len(convs) == 1 + 2 * 3 * n + 2  # two projection shortcuts (16->32, 32->64)


def test_small_network_defaults():
    net, shape = build("lenet", FP32)
    assert shape == (1, 28, 28)
    assert [layer for layer in net.layers() if isinstance(layer, Linear)][-1].K == 10
    net, shape = build("resnet8", FP32, classes=7, input_shape=(2, 16, 16))
    assert shape == (2, 16, 16)
    assert net.forward(np.zeros((1, 2, 16, 16), np.float32)).shape == (1, 7)


def test_imagenet_networks_keep_their_input_shape():
    net, shape = build("alexnet", FP32, input_shape=(1, 28, 28), classes=10)
    assert shape == (3, 227, 227)
    assert [layer for layer in net.layers() if isinstance(layer, Linear)][-1].K == 10


@pytest.mark.parametrize("name,suggestion", [("resnet5", "resnet50"), ("lenett", "lenet"), ("vgg-16", "vgg16"),
                                             ("googlenet", "googlenet_v1")])
def test_unknown_network_suggests(name, suggestion):
    with pytest.raises(CatalogError, match=re.escape(repr(name)) + r".*unknown.*did you mean.*" + suggestion):
        build(name, FP32)


def test_unknown_network_lists_networks():
    with pytest.raises(CatalogError) as info:
        build("transformer", FP32)
    assert all(n in str(info.value) for n in NETWORKS)


@pytest.mark.parametrize("depth", [9, 10, 21, 0])
def test_cifar_depth_must_be_6n_plus_2(depth):
    with pytest.raises(CatalogError, match=f"depth={depth}.*6n\\+2"):
        cifar_resnet(Builder(FP32), depth)


def test_cifar_depth_14():
    net = cifar_resnet(Builder(FP32), 14, in_channels=3)
    assert sum(isinstance(layer, Residual) for layer in net.layers()) == 6
