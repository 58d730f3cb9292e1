"""Measuring helpers (dfpgen/tuning/measure.py): turn-taking, per-round medians and argument errors.

A fake clock stands in for time.perf_counter, so the medians are exact and nothing here depends on
how fast the machine is."""

import numpy as np
import pytest

from dfpgen.tuning import measure


class FakeClock:
    """perf_counter replacement: time moves only when a fake callable says it ran."""

    def __init__(self):
        self.now = 0.0
        self.log = []

    def __call__(self):
        return self.now

    def callable(self, name, durations):
        """A callable that logs its name and advances the clock by the next of `durations` (cycled)."""
        count = [0]

        def run():
            self.log.append(name)
            self.now += durations[count[0] % len(durations)]
            count[0] += 1
        return run


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter", fake)
    return fake


def test_interleaved_takes_turns_call_by_call(clock):
    calls = {"a": clock.callable("a", [0.001]), "b": clock.callable("b", [0.003]), "c": clock.callable("c", [0.002])}
    times = measure.interleaved(calls, rounds=4, min_seconds=0.2)
    log = clock.log[3:]                     # after one warm-up call each
    assert clock.log[:3] == ["a", "b", "c"]
    assert log == ["a", "b", "c"] * (len(log) // 3) and len(log) % 3 == 0
    assert {name: len(t) for name, t in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert times == {"a": pytest.approx([0.001] * 4), "b": pytest.approx([0.003] * 4), "c": pytest.approx([0.002] * 4)}


def test_interleaved_round_length_and_equal_counts(clock):
    calls = {"fast": clock.callable("fast", [0.001]), "slow": clock.callable("slow", [0.010])}
    measure.interleaved(calls, rounds=2, min_seconds=0.1)
    runs = clock.log[2:]
    assert runs.count("fast") == runs.count("slow")
    # each round lasts about min_seconds / rounds per callable: 0.1 s in all, 0.011 s per turn
    per_round = len(runs) // 2 // 2
    assert per_round * 0.011 >= 0.1 / 2 * 2 - 1e-12
    assert (per_round - 1) * 0.011 < 0.1 / 2 * 2


def test_interleaved_per_round_median_ignores_an_outlier(clock):
    # b's third call of each round-ish is 20x slower; the round's median is still its usual time
    calls = {"a": clock.callable("a", [0.002]), "b": clock.callable("b", [0.004, 0.004, 0.080])}
    times = measure.interleaved(calls, rounds=3, min_seconds=0.0, min_reps=5)
    assert times["b"] == pytest.approx([0.004] * 3)
    assert len(clock.log) == 2 + 3 * 5 * 2


def test_interleaved_min_reps_without_time(clock):
    calls = {"a": clock.callable("a", [0.5])}
    times = measure.interleaved(calls, rounds=2, min_seconds=0.0, min_reps=3)
    assert times == {"a": pytest.approx([0.5, 0.5])} and len(clock.log) == 1 + 2 * 3


@pytest.mark.parametrize("kwargs, field", [({"rounds": 0}, "rounds=0"), ({"min_reps": 0}, "min_reps=0")])
def test_interleaved_rejects_bad_counts(clock, kwargs, field):
    with pytest.raises(ValueError, match=field):
        measure.interleaved({"a": clock.callable("a", [0.001])}, **kwargs)


def test_interleaved_of_nothing(clock):
    assert measure.interleaved({}, rounds=3) == {}


def test_median_time_warms_up_then_takes_the_median(clock):
    fn = clock.callable("f", [9.0, 0.001, 0.002, 0.003, 0.002, 0.001])
    seconds, reps = measure.median_time(fn, min_seconds=0.0, min_reps=5)
    assert reps == 5 and seconds == pytest.approx(0.002) and clock.log.count("f") == 6   # the 9 s warm-up is not counted


def test_random_operands_shapes_and_reproducibility():
    from dfpgen.core.spec import ConvSpec
    spec = ConvSpec(N=2, C=3, K=5, H=6, W=7, R=3, S=2)
    shapes = {p: tuple(a.shape for a in measure.random_operands(spec, p)) for p in ("fprop", "bprop", "wtgrad")}
    x, w, dy = (2, 3, 6, 7), (5, 3, 3, 2), (2, 5, spec.P, spec.Q)
    assert shapes == {"fprop": (x, w), "bprop": (dy, w), "wtgrad": (x, dy)}
    a1, b1 = measure.random_operands(spec, "fprop", seed=3)
    a2, b2 = measure.random_operands(spec, "fprop", seed=3)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
