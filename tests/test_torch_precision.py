"""Precision schedules over dfpgen.torch models: set_numerics on a converted model, and PrecisionHook driving a
FixedLadder and MuPPET's policy through a small training loop (switch epochs, the gradients the policy sees,
reproducibility, resuming at a saved rung)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from dfpgen.core.numerics import LayerNumerics  # noqa: E402
from dfpgen.errors import NumericsError  # noqa: E402
from dfpgen.torch import DFPConv2d, DFPLinear, PrecisionHook, convert, gradients, set_numerics  # noqa: E402
from dfpgen.training.precision import FP32, FixedLadder, MuppetSchedule, PrecisionState  # noqa: E402

BASE = LayerNumerics()


def tiny(seed: int = 0) -> nn.Module:
    """Two convolutions and a linear layer, converted to DFP at the base numerics (one thread, seeded)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 3 * 3, 4))
    convert(model, numerics=BASE, threads=1, seed=seed)
    return model


def dfp_layers(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, (DFPConv2d, DFPLinear))]


def train(model: nn.Module, hook: PrecisionHook, epochs: int, first: int = 1) -> list:
    """A few SGD steps per epoch on fixed random data; per epoch (the rung trained at, the switch made)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 4, (32,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    out = []
    for epoch in range(first, first + epochs):
        rung = hook.rung
        assert {layer.numerics for layer in dfp_layers(model)} == {hook.numerics}
        for i in range(0, 32, 8):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 8]), y[i:i + 8]).backward()
            opt.step()
        out.append((rung, hook.end_epoch(epoch)))
    return out


def test_set_numerics_counts_the_layers_changed_and_drops_their_ops():
    model = tiny()
    model(torch.randn(2, 3, 8, 8))
    assert all(layer.ops for layer in dfp_layers(model))
    twelve = BASE.with_(bits=12)
    assert set_numerics(model, twelve) == 3
    assert all(layer.numerics == twelve and not layer.ops for layer in dfp_layers(model))
    assert set_numerics(model, twelve) == 0
    model(torch.randn(2, 3, 8, 8)).sum().backward()   # ops rebuilt lazily at the new width
    assert all(op.numerics == twelve for layer in dfp_layers(model) for op in layer.ops)
    assert set_numerics(model, LayerNumerics.fp32()) == 3
    model(torch.randn(2, 3, 8, 8)).sum().backward()   # the FP32 rung runs dfpgen's FP32 kernels


@pytest.mark.parametrize("bad", [None, 12, "fp32"])
def test_set_numerics_takes_a_layer_numerics_only(bad):
    model = tiny()
    with pytest.raises(NumericsError, match="numerics=.*must be a dfpgen.LayerNumerics"):
        set_numerics(model, bad)
    assert {layer.numerics for layer in dfp_layers(model)} == {BASE}


def test_fixed_ladder_switches_at_its_epochs():
    model = tiny()
    ladder = FixedLadder(((8, 2), (12, 1), (FP32, None)))
    hook = PrecisionHook(model, ladder, BASE)
    runs = train(model, hook, 5)
    assert [rung for rung, _ in runs] == [8, 8, 12, FP32, FP32]
    assert [(s.epoch, s.from_rung, s.to_rung) for _, s in runs if s] == [(2, 8, 12), (3, 12, FP32)]
    assert [(s.epoch, s.from_rung, s.to_rung) for s in hook.switches] == [(2, 8, 12), (3, 12, FP32)]
    # Each DFP rung rounds gradients stochastically (MuPPET's Round_Meth), keeping the base's other numerics.
    assert ladder.numerics(BASE, PrecisionState(1)) == BASE.with_(bits=12, grad_rounding="stochastic")


def test_muppet_sees_every_parameters_last_gradient():
    model, schedule = tiny(), MuppetSchedule(r=2)
    hook = PrecisionHook(model, schedule, BASE)
    state = PrecisionState()
    g = torch.Generator().manual_seed(2)
    for epoch in (1, 2):
        model.zero_grad()
        F.cross_entropy(model(torch.randn(8, 3, 8, 8, generator=g)), torch.randint(0, 4, (8,), generator=g)).backward()
        grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
        assert gradients(model).keys() == grads.keys() and len(grads) == 6   # 3 weights, 3 biases
        state, _ = schedule.observe_epoch(state, epoch, grads)
        assert hook.end_epoch(epoch) is None
        if epoch == 1:   # between checks the hook holds the same sums the schedule computes from the gradients
            assert hook.state.sum_norms == state.sum_norms
    assert hook.state == state and hook.state.last_ratio == 1.0   # the first check sets the maximum


def test_schedule_runs_are_reproducible():
    def run():
        model = tiny(3)
        hook = PrecisionHook(model, MuppetSchedule(r=2, p=1, alpha=0.0, beta=0.0), BASE)   # climbs readily
        rungs = train(model, hook, 6)
        return rungs, hook.state.to_dict(), [p.detach().clone() for p in model.parameters()]

    (rungs_a, state_a, weights_a), (rungs_b, state_b, weights_b) = run(), run()
    assert any(switch for _, switch in rungs_a)   # a zero threshold: the second check below the maximum climbs
    assert rungs_a == rungs_b and state_a["rung"] == state_b["rung"] and state_a["max_gd"] == state_b["max_gd"]
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))


def test_a_hook_resumes_at_the_saved_rung():
    model = tiny()
    ladder = FixedLadder(((8, 2), (14, 2), (16, None)))
    hook = PrecisionHook(model, ladder, BASE, state=PrecisionState(1))
    assert hook.rung == 14 and {layer.numerics.bits for layer in dfp_layers(model)} == {14}
    runs = train(model, hook, 2, first=3)
    assert [(rung, s and (s.epoch, s.to_rung)) for rung, s in runs] == [(14, None), (14, (4, 16))]


def test_sampled_gradients_carry_weight_decay_on_weights_only():
    """gradients(model, wd): p.grad + wd * p for weights (dim > 1), the bare p.grad for biases."""
    model = tiny()
    F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 4, (4,))).backward()
    sampled = gradients(model, 0.5)
    for name, p in model.named_parameters():
        want = p.grad + 0.5 * p.detach() if p.dim() > 1 else p.grad
        np.testing.assert_array_equal(sampled[name], want.numpy())
    assert any(p.dim() <= 1 for p in model.parameters())
