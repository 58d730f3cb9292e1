"""Training with emulated number formats per tensor kind (issue 23 item 2): LayerNumerics.formats, the
per-pass operand rounding (MX blocked along each pass's reduction axis), the posit result rounding, FP32
accumulation bounds, `dfpgen train --format` and its errors, and exact resume."""

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dfpgen import Conv2d, ConvSpec, formats, passes
from dfpgen.core.numerics import KINDS, LayerNumerics, parse_formats
from dfpgen.errors import FormatError, NumericsError
from dfpgen.frontends.cli import main
from dfpgen.runtime.blocked import to_blocked
from dfpgen.runtime.blocked_conv import convert_operand
from dfpgen.runtime.emulated import result_kind
from dfpgen.training.data import load
from dfpgen.training.train import TrainConfig, Trainer

# C and K above 32 and not multiples of it, so MX blocks are full and partial along every reduction axis.
SPEC = ConvSpec(N=2, C=40, K=36, H=6, W=6, R=3, S=3, stride=1, pad=1)
FORMAT_CASES = ["posit8_1", "fp8_e4m3", "mxint8"]
EVERY = ("act", "weight", "grad")


def all_kinds(name: str) -> LayerNumerics:
    return LayerNumerics(formats={k: name for k in EVERY})


def operands(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    shapes = {"x": (2, 40, 6, 6), "w": (36, 40, 3, 3), "dy": (2, 36, 6, 6)}
    # Magnitudes over several binades, so FP8's scale and MX's per-block scales differ from block to block.
    return {n: (rng.standard_normal(s) * np.exp(rng.uniform(-3, 3, s))).astype(np.float32) for n, s in shapes.items()}


def reference_rounding(name: str, conv_pass, tensor, a: np.ndarray) -> np.ndarray:
    """The operand as the format's own quantize rounds it, MX blocked along the axes the issue names."""
    fmt = formats.get(name)
    if isinstance(fmt, formats.MX):
        axes = {"fprop": {"x": 1, "w": 1}, "bprop": {"dy": 1, "w": 0}, "wtgrad": {"x": (0, 2, 3), "dy": (0, 2, 3)}}
        return fmt.quantize(a, axes[conv_pass.name][tensor.name])
    return fmt.quantize(a)


# ------------------------------------------------------------------------------------------ LayerNumerics

def test_the_default_numerics_have_no_formats_and_read_as_before():
    n = LayerNumerics()
    assert n.formats == () and all(n.is_dfp(k) and n.format_of(k) is None for k in KINDS)
    assert "formats" not in n.arguments() and "emulated" not in n.describe()
    assert "formats" not in TrainConfig().to_json()["numerics"]   # earlier checkpoints still match


def test_formats_are_normalized_shown_and_rebuildable():
    n = LayerNumerics(formats={"grad": "posit16_1", "act": "posit8_1", "weight": "posit8_1"})
    assert n.formats == (("act", "posit8_1"), ("weight", "posit8_1"), ("grad", "posit16_1"))
    assert n == LayerNumerics(formats=parse_formats("act=posit8_1,weight=posit8_1,grad=posit16_1"))
    assert n.describe() == ("emulated act=posit8_1, weight=posit8_1, grad=posit16_1 (FP32 kernels; posit results "
                            "summed exactly, as a quire)")
    assert eval(f"LayerNumerics({n.arguments()})") == n and hash(n) == hash(eval(f"LayerNumerics({n.arguments()})"))
    assert [n.pass_precision(p) for p in passes.ALL] == ["fp32"] * 3 and not any(n.is_dfp(k) for k in KINDS)
    mixed = LayerNumerics(formats={"grad": "fp8_e5m2"})
    assert mixed.is_dfp("act") and not mixed.is_dfp("grad") and mixed.format_of("grad") is formats.get("fp8_e5m2")
    assert [mixed.pass_precision(p) for p in passes.ALL] == ["dfp16", "fp32", "fp32"]
    assert mixed.describe().endswith("DFP: act,weight); emulated grad=fp8_e5m2 (FP32 kernels)")
    assert parse_formats("posit8_0") == tuple((k, "posit8_0") for k in EVERY)


@pytest.mark.parametrize("value,message", [
    ({"act": "posit9_9"}, r"unknown number format 'posit9_9': valid formats are posit<n>_<es>.*mxfp4"),
    ({"bias": "bf16"}, r"tensor kind 'bias' is not one of act, weight, grad; .*valid formats are"),
    ("posit8_1", r"must be a dict"),
    ((("act", "bf16"), ("act", "fp16")), r"'act' is given twice"),
])
def test_bad_formats_raise_format_errors_listing_what_is_valid(value, message):
    with pytest.raises(FormatError, match=message):
        LayerNumerics(formats=value)


def test_formats_conflict_with_fp32_and_with_dfp_bits_of_the_same_kind():
    with pytest.raises(NumericsError, match=r"precision='fp32' keeps every kind FP32"):
        LayerNumerics("fp32", formats={"act": "bf16"})
    with pytest.raises(NumericsError, match=r"^bits_w=8: weight tensors have the format posit8_1"):
        LayerNumerics(bits_w=8, formats={"weight": "posit8_1"})
    assert LayerNumerics(bits_w=8, formats={"grad": "bf16"}).bits_of("weight") == 8


# ------------------------------------------------------------------------------------------ operand rounding

@pytest.mark.parametrize("name", FORMAT_CASES)
@pytest.mark.parametrize("conv_pass", passes.ALL, ids=lambda p: p.name)
def test_each_pass_rounds_its_operands_exactly_as_the_format_does(name, conv_pass):
    """Both runtimes (blocked, Conv2d.run) feed the FP32 kernel exactly quantize's values: for MX, blocked along
    this pass's own reduction axis, so x and dy are blocked differently in WTGRAD than in FPROP and BPROP."""
    ops = operands()
    emulated, plain = (Conv2d(SPEC, numerics=n, threads=1, eager=False) for n in (all_kinds(name), LayerNumerics.fp32()))
    for role, tensor in (("src", conv_pass.src), ("vec", conv_pass.vec)):
        a = ops[tensor.name]
        want = reference_rounding(name, conv_pass, tensor, a)
        got, exp = emulated._operand(a, conv_pass, tensor, False)
        assert exp == 0 and got.dtype == np.float32 and np.array_equal(got, want)
        operand = to_blocked(a, 1) if tensor.kind != "weight" else a
        mine, _ = convert_operand(emulated, conv_pass, role, operand, None)
        theirs, _ = convert_operand(plain, conv_pass, role, want.astype(np.float32), None)
        assert np.array_equal(mine, theirs)


def test_mx_blocks_follow_the_reduction_axis_so_one_tensor_is_rounded_two_ways():
    x = operands()["x"]
    op = Conv2d(SPEC, numerics=all_kinds("mxfp4"), threads=1, eager=False)
    fprop, _ = op._operand(x, passes.FPROP, passes.X, False)
    wtgrad, _ = op._operand(x, passes.WTGRAD, passes.X, False)
    assert not np.array_equal(fprop, wtgrad)


def fp32_bound(conv_pass, xq: np.ndarray, wq: np.ndarray) -> np.ndarray:
    """|FP32 sum - exact sum| <= gamma_n * sum |products| for any order of n additions (Higham, Thm 3.1)."""
    n = np.prod([getattr(SPEC, d) for d in conv_pass.reduced])
    u = 2.0 ** -24
    return n * u / (1 - n * u) * conv_pass.reference(np.abs(xq), np.abs(wq), SPEC)


@pytest.mark.parametrize("name", ["fp8_e4m3", "mxfp8_e4m3", "bf16", "mxint8"])
@pytest.mark.parametrize("conv_pass", passes.ALL, ids=lambda p: p.name)
def test_fp32_kernel_on_rounded_operands_meets_the_float64_reference_within_the_fp32_bound(name, conv_pass):
    ops = operands(1)
    op = Conv2d(SPEC, numerics=all_kinds(name), threads=1, eager=False)
    a, b = ops[conv_pass.src.name], ops[conv_pass.vec.name]
    qa = reference_rounding(name, conv_pass, conv_pass.src, a)
    qb = reference_rounding(name, conv_pass, conv_pass.vec, b)
    ref = conv_pass.reference(qa, qb, SPEC)
    got = op.run(conv_pass, a, b)[0]
    assert np.all(np.abs(got - ref) <= fp32_bound(conv_pass, qa, qb))
    assert not np.array_equal(conv_pass.reference(a.astype(np.float64), b.astype(np.float64), SPEC), ref)


@pytest.mark.parametrize("conv_pass", passes.ALL, ids=lambda p: p.name)
def test_posit_results_are_rounded_once_to_the_kind_they_become(conv_pass):
    """The quire's one rounding: FPROP's y to the activations' posit, BPROP's dx and WTGRAD's dw to the
    gradients', of the exact sum (tests/test_quire.py checks it against Fractions on harder data). Here the
    operands are multiples of 2**-19 below 2**6, so the float64 reference is exact; the FP32 kernels' sum is
    not, and rounding it gives other posits in a few elements."""
    numerics = LayerNumerics(formats={"act": "posit8_1", "weight": "posit8_1", "grad": "posit16_1"})
    ops = operands(2)
    a, b = ops[conv_pass.src.name], ops[conv_pass.vec.name]
    qa = reference_rounding(numerics.format_name(conv_pass.src.kind), conv_pass, conv_pass.src, a)
    qb = reference_rounding(numerics.format_name(conv_pass.vec.kind), conv_pass, conv_pass.vec, b)
    exact = conv_pass.reference(qa, qb, SPEC)
    op = Conv2d(SPEC, numerics=numerics, threads=1, eager=False)
    got, maxabs = op.run(conv_pass, a, b)
    result = formats.get("posit8_1" if conv_pass is passes.FPROP else "posit16_1")
    assert np.array_equal(got, result.quantize(exact)) and maxabs == np.abs(got).max()
    plain = Conv2d(SPEC, numerics=LayerNumerics.fp32(), threads=1, eager=False).run(
        conv_pass, qa.astype(np.float32), qb.astype(np.float32))[0]
    assert np.all(np.abs(plain - exact) <= fp32_bound(conv_pass, qa, qb))
    assert np.mean(result.quantize(plain) == got) > 0.99


def test_result_kinds_come_from_the_pass_definition_and_a_new_pass_runs_with_formats():
    assert [result_kind(p) for p in passes.ALL] == ["act", "grad", "grad"]
    custom = dataclasses.replace(passes.FPROP, name="fprop_again", order=99)
    ops = operands()
    op = Conv2d(SPEC, numerics=all_kinds("posit8_1"), threads=1, eager=False)
    assert np.array_equal(op.run(custom, ops["x"], ops["w"])[0], op.run(passes.FPROP, ops["x"], ops["w"])[0])
    mx = Conv2d(SPEC, numerics=all_kinds("mxint8"), threads=1, eager=False)
    with pytest.raises(NumericsError, match=r"^mxint8: pass 'fprop_again' has no MX blocking axes"):
        mx.run(custom, ops["x"], ops["w"])


# ------------------------------------------------------------------------------------------ training

@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> str:
    """A small MNIST-shaped .npz (32 training and 16 test images of 10 noisy prototypes)."""
    rng = np.random.default_rng(0)
    protos = rng.uniform(0, 255, (10, 28, 28))

    def sample(n):
        y = rng.integers(0, 10, n)
        return np.clip(protos[y] + rng.normal(0, 60, (n, 28, 28)), 0, 255).astype(np.uint8), y

    (tx, ty), (vx, vy) = sample(32), sample(16)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=tx, y_train=ty, x_test=vx, y_test=vy)
    return str(path)


@pytest.fixture(scope="module")
def data32(digits):
    return load(digits)


FP8 = LayerNumerics(formats={"act": "fp8_e4m3", "weight": "fp8_e4m3", "grad": "fp8_e5m2"})


@pytest.mark.parametrize("numerics", [FP8, all_kinds("mxint8"), LayerNumerics(formats={"grad": "posit16_1"})],
                         ids=["fp8", "mxint8", "dfp-with-posit-grads"])
def test_resume_with_formats_is_bit_identical(numerics, digits, data32, tmp_path):
    cfg = TrainConfig("lenet", digits, numerics, epochs=2, batch=16, limit=32, schedule="step")
    whole = Trainer(cfg, dataset=data32, threads=1)
    whole.train_epoch()
    whole.save(tmp_path / "c.npz")
    whole.train_epoch()
    resumed = Trainer(cfg, dataset=data32, threads=2)
    resumed.restore(tmp_path / "c.npz")
    resumed.train_epoch()
    a, b = whole.state(), resumed.state()
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    other = TrainConfig("lenet", digits, all_kinds("posit8_1"), epochs=2, batch=16, limit=32, schedule="step")
    assert other.matches(json.loads(json.dumps(cfg.to_json()))) == ["numerics"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_train_with_formats_runs_end_to_end_and_resumes(digits, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--net", "lenet", "--data", digits, "--limit", 32, "--batch", 16, "--out", out,
              "--format", "act=posit8_1,weight=posit8_1,grad=posit16_1"]
    first = invoke(*common, "--epochs", 1)
    assert first.exit_code == 0, first.output
    assert "emulated act=posit8_1, weight=posit8_1, grad=posit16_1" in first.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["numerics"]["formats"] == [["act", "posit8_1"], ["weight", "posit8_1"],
                                                        ["grad", "posit16_1"]]
    second = invoke(*common, "--epochs", 2, "--resume")
    assert second.exit_code == 0 and "after epoch 1" in second.output, second.output
    other = invoke(*common[:-1], "posit8_0", "--epochs", 3, "--resume")
    assert other.exit_code != 0 and "another configuration (differs in numerics)" in other.output


BAD_FORMATS = [
    (["--format", "posit9_9"], "Invalid value for --format: unknown number format 'posit9_9': valid formats are"),
    (["--format", "act=posit8_1,bias=bf16"], "tensor kind 'bias' is not one of act, weight, grad"),
    (["--format", "act="], "item 'act=' is not KIND=NAME; expected NAME (every kind) or KIND=NAME"),
    (["--format", "act:posit8_1,grad=bf16"], "item 'act:posit8_1' is not KIND=NAME"),
    (["--format", "posit8_0", "--bits", 12], "--bits also sets act: drop one of them"),
    (["--format", "grad=bf16", "--bits-grad", 12], "--bits-grad also sets grad"),
    (["--format", "grad=bf16", "--grad-rounding", "stochastic"], "--grad-rounding also sets grad"),
    (["--format", "act=bf16", "--precision", "fp32"], "--precision fp32 also sets act"),
    (["--format", "act=bf16", "--dfp", "act,weight"], "--dfp names act, which it gives a format"),
    (["--format", "posit8_0", "--precision-ladder", "8:1,16:*"], "precision schedules climb DFP bits"),
]


@pytest.mark.parametrize("args,message", BAD_FORMATS, ids=[" ".join(map(str, a)) for a, _ in BAD_FORMATS])
def test_cli_rejects_bad_formats_and_conflicts_in_one_line(args, message, tmp_path):
    result = invoke("train", "--net", "lenet", "--data", "synthetic", "--limit", 16, "--epochs", 1,
                    "--out", tmp_path / "o", *args)
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0], result.output
    if "Invalid value" in error[0]:
        assert "posit<n>_<es>" in error[0] and "mxfp4" in error[0]   # the valid formats are listed
    assert not (tmp_path / "o").exists()


def test_cli_format_compatible_options_are_accepted(digits, tmp_path):
    result = invoke("train", "--net", "lenet", "--data", digits, "--limit", 16, "--batch", 16, "--epochs", 1,
                    "--out", tmp_path / "o", "--format", "grad=fp8_e5m2", "--bits", 12, "--precision", "dfp16")
    assert result.exit_code == 0, result.output
    assert "DFP: act,weight); emulated grad=fp8_e5m2" in result.output


def test_help_says_the_formats_are_emulated():
    text = invoke("train", "--help").output
    assert "--format" in text and "Emulated" in text
