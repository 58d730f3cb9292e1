"""The autotuner (dfpgen.tuning.tune): search quality on fake deterministic measurements, real tuning of tiny
layers in every pass, failed candidates as records, and the database lookup behind compile().

Timing is noisy on a shared machine: no test asserts a speedup. Search-quality tests use fake
measurements; real-kernel tests only check bookkeeping (what was measured, stored and chosen), and
"best <= default" holds by construction (the best is the minimum over a set that contains the default).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from itertools import product

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfpgen.codegen.plan import Blocking
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import host
from dfpgen.errors import PlanError, TargetError
from dfpgen.passes import make_plan
from dfpgen.runtime.conv import Conv2d
from dfpgen.runtime.conv import compile as dfpgen_compile
from dfpgen.tuning.cost import default_blocking
from dfpgen.tuning.db import Record, TuningDB
from dfpgen.tuning.tune import Measurer, Task, knob_space, lookup, rank_by_cost, search, tune

TINY = ConvSpec(2, 16, 16, 8, 8, 3, 3, 1, 1, name="tiny")
PASSES = ("fprop", "bprop", "wtgrad")
# Needs 4*8*4 (clipped) accumulators at least: more than any x86 register file holds.
UNPLANNABLE = Blocking(kv=6, wb=28, hb=4)


# ------------------------------------------------------------------------------- fake measurements

def synthetic_space() -> list[Blocking]:
    """824 blockings: a product of knob values, filtered by a 32-register budget, with unroll tied to cpb
    (as in knob_space, so one-knob moves are not always possible)."""
    points = []
    for kv, wb, hb, cpb, order in product(range(1, 5), range(1, 15), range(1, 5), (4, 8), ("nk", "kn")):
        if kv * wb * hb + kv + 1 <= 32:
            for unroll in (None, cpb // 2):
                points.append(Blocking(kv, wb, hb, cpb, unroll, order))
    return points


def fake_seconds(b: Blocking, seed: int = 0) -> float:
    """A deterministic stand-in for a kernel's time on a 14x14 output with 4 channel vectors: per-MAC
    cost of a register block (loads vs accumulators), times the edge waste of blocks that do not divide
    the output (which makes ~20 one-knob local minima), small effects of order/cpb/unroll, and 1%
    seeded noise."""
    acc = b.kv * b.wb * b.hb
    waste = (math.ceil(14 / b.wb) * b.wb / 14) * (math.ceil(14 / b.hb) * b.hb / 14) \
        * (math.ceil(4 / b.kv) * b.kv / 4)
    step = max(acc / 2, (b.kv + b.wb * b.hb) / 2) + 2
    t = waste * step / acc
    t *= 0.95 if b.order == "kn" else 1.0
    t *= 1.0 if b.cpb == 8 else 1.03
    t *= 0.98 if b.unroll else 1.0
    t *= 1 + 0.01 * random.Random(f"{seed}:{b.describe()}").random()
    return t * 1e-4


def loosely_ranked(space: list[Blocking], seed: int) -> list[Blocking]:
    """A cost-model stand-in only loosely correlated with fake_seconds (log-normal noise, sigma 0.5)."""
    rng = random.Random(1000 + seed)
    noisy = {b: fake_seconds(b) * math.exp(rng.gauss(0.0, 0.5)) for b in space}
    return sorted(space, key=noisy.__getitem__)


class FakeClock:
    """A clock that advances one 'second' per measurement, never by sleeping."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def measure(self, fn):
        def timed(b):
            self.now += 1.0
            return fn(b)
        return timed


@pytest.fixture(scope="module")
def space():
    return synthetic_space()


@pytest.fixture(scope="module")
def exhaustive_best(space):
    return min(fake_seconds(b) for b in space)


def test_synthetic_space_is_a_few_hundred_points_with_local_minima(space):
    # Guard the premise of the quality tests: a real search problem, not a convex bowl.
    assert 300 <= len(space) <= 1000
    assert len(set(space)) == len(space)
    values = {n: sorted({getattr(b, n) for b in space}, key=lambda v: (v is None, v or 0))
              for n in ("kv", "wb", "hb", "cpb", "unroll", "order")}
    members = set(space)

    def neighbours(b):
        for name, options in values.items():
            i = options.index(getattr(b, name))
            for j in (i - 1, i + 1):
                if 0 <= j < len(options):
                    n = dataclasses.replace(b, **{name: options[j]})
                    if n in members:
                        yield n
    minima = [b for b in space if all(fake_seconds(n) >= fake_seconds(b) for n in neighbours(b))]
    assert len(minima) >= 5
    # The stand-in cost model is only loosely right: Spearman's rho of its order with the truth.
    truth = {b: i for i, b in enumerate(sorted(space, key=fake_seconds))}
    n = len(space)
    for seed in range(8):
        d2 = sum((i - truth[b]) ** 2 for i, b in enumerate(loosely_ranked(space, seed)))
        assert 0.2 < 1 - 6 * d2 / (n * (n * n - 1)) < 0.7


@pytest.mark.parametrize("seed", range(8))
def test_guided_search_with_a_loose_ranking_gets_within_5pct_of_exhaustive_best(space, exhaustive_best, seed):
    trials = 60  # about 7% of the space
    result = search(space, fake_seconds, trials=trials, seed=seed, ranked=loosely_ranked(space, seed))
    assert len(result.history) == trials
    measured = [b for b, _ in result.history]
    assert len(set(measured)) == trials and set(measured) <= set(space)
    best_blocking, best_seconds = result.best
    assert best_seconds == fake_seconds(best_blocking)
    assert best_seconds <= 1.05 * exhaustive_best, (best_blocking, best_seconds / exhaustive_best)


@pytest.mark.parametrize("seed", range(4))
def test_guided_search_without_a_ranking_still_gets_within_5pct(space, exhaustive_best, seed):
    # No cost model at all: random seeds plus neighbourhood moves, a quarter of the space.
    result = search(space, fake_seconds, trials=200, seed=seed)
    assert len(result.history) == 200
    assert result.best[1] <= 1.05 * exhaustive_best


def test_guided_search_beats_the_ranking_it_was_given(space):
    # The search improves on the cost model's own top pick (the ranking is only loosely right).
    for seed in range(4):
        ranked = loosely_ranked(space, seed)
        result = search(space, fake_seconds, trials=60, seed=seed, ranked=ranked)
        assert result.best[1] <= fake_seconds(ranked[0])


def test_exhaustive_when_the_space_fits_in_the_trials():
    small = [Blocking(kv, wb, 1) for kv in (1, 2, 3) for wb in range(1, 7)]
    ranked = sorted(small, key=fake_seconds)[:5]
    result = search(small, fake_seconds, trials=len(small), seed=3, ranked=ranked)
    measured = [b for b, _ in result.history]
    assert sorted(measured, key=Blocking.describe) == sorted(small, key=Blocking.describe)
    assert measured[:5] == ranked   # the ranked points first
    assert result.best == min(((b, fake_seconds(b)) for b in small), key=lambda h: h[1])
    # Far more trials than points: still every point exactly once.
    assert len(search(small, fake_seconds, trials=1000).history) == len(small)


@pytest.mark.parametrize("trials", [8, 60])   # exhaustive (small space) and guided
def test_same_seed_same_history_and_seeds_matter(trials):
    space = synthetic_space() if trials == 60 else synthetic_space()[:8]
    runs = {seed: search(space, fake_seconds, trials=trials, seed=seed).history for seed in range(5)}
    again = {seed: search(space, fake_seconds, trials=trials, seed=seed).history for seed in range(5)}
    assert runs == again
    orders = {tuple(b for b, _ in h) for h in runs.values()}
    assert len(orders) > 1  # different seeds explore differently


def test_same_seed_same_history_with_a_ranking(space):
    ranked = loosely_ranked(space, 0)
    a = search(space, fake_seconds, trials=40, seed=7, ranked=ranked)
    b = search(space, fake_seconds, trials=40, seed=7, ranked=list(ranked))
    assert a.history == b.history


@pytest.mark.parametrize("trials", [10_000, 64], ids=["exhaustive", "guided"])
def test_budget_stops_the_search(space, trials):
    clock = FakeClock()
    result = search(space, clock.measure(fake_seconds), trials=trials, budget=10.0, clock=clock)
    # Each measurement takes one fake second: no measurement starts at or after the deadline.
    assert len(result.history) == 10
    assert clock.now == 10.0
    clock = FakeClock()
    assert search(space, clock.measure(fake_seconds), trials=trials, budget=0.0, clock=clock).history == []


@pytest.mark.parametrize("trials", [10_000, 30], ids=["exhaustive", "guided"])
def test_start_points_are_measured_first(space, trials):
    worst = sorted(space, key=fake_seconds)[-3:]   # even the worst points, when asked
    ranked = loosely_ranked(space, 1)
    result = search(space, fake_seconds, trials=trials, seed=1, ranked=ranked, start=tuple(worst))
    assert [b for b, _ in result.history[:3]] == worst
    assert len({b for b, _ in result.history}) == len(result.history)


@pytest.mark.parametrize("trials", [10_000, 40], ids=["exhaustive", "guided"])
def test_failures_never_become_the_best(space, exhaustive_best, trials):
    good = sorted(space, key=fake_seconds)
    failing = set(good[:20]) | set(space[::3])   # the 20 fastest points fail, and a third of the rest

    def measure(b):
        return math.inf if b in failing else fake_seconds(b)
    result = search(space, measure, trials=trials, seed=2, ranked=good)  # a ranking that favours failures
    assert any(math.isinf(t) for _, t in result.history)
    best_blocking, best_seconds = result.best
    assert math.isfinite(best_seconds) and best_blocking not in failing
    assert best_seconds == min(t for _, t in result.history if math.isfinite(t))


def test_all_failures_give_no_best_and_nan_is_a_failure(space):
    result = search(space, lambda b: math.inf, trials=25, seed=0)
    assert len(result.history) == 25 and result.best is None
    result = search(space, lambda b: math.nan if b.kv == 1 else fake_seconds(b), trials=50, seed=0)
    assert result.best is not None and result.best[0].kv != 1


def test_progress_reports_the_count_measured(space):
    counts = []
    search(space, fake_seconds, trials=12, seed=0, progress=counts.append)
    assert counts == list(range(1, 13))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(1, 40), trials=st.integers(1, 50), seed=st.integers(0, 2**16),
       inf_every=st.integers(0, 4))
def test_search_invariants(data, n, trials, seed, inf_every):
    space = [Blocking(kv, wb, hb) for kv in range(1, 5) for wb in range(1, 6) for hb in range(1, 3)][:n]
    times = {b: (math.inf if inf_every and i % inf_every == 0 else fake_seconds(b)) for i, b in enumerate(space)}
    start = tuple(data.draw(st.lists(st.sampled_from(space), max_size=3, unique=True)))
    result = search(space, times.__getitem__, trials=trials, seed=seed, start=start)
    measured = [b for b, _ in result.history]
    assert len(measured) == min(trials, n)
    assert len(set(measured)) == len(measured) and set(measured) <= set(space)
    assert measured[:len(start)] == list(start)[:len(measured)]
    finite = [t for _, t in result.history if math.isfinite(t)]
    assert (result.best is None) == (not finite)
    if finite:
        assert result.best[1] == min(finite)


def test_search_tolerates_duplicate_points_in_the_space():
    space = [Blocking(kv=k) for k in range(1, 6)] * 2
    result = search(space, lambda b: float(b.kv), trials=8)
    assert {b for b, _ in result.history} == set(space[:5])


# ---------------------------------------------------------------------------------- real tuning

@pytest.fixture(scope="module")
def isa():
    try:
        return host().best_isa("dfp16")
    except TargetError as exc:
        pytest.skip(f"no DFP16 ISA on this host: {exc}")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def task_of(isa, pass_name="fprop", spec=TINY, threads=1, numerics=None):
    return Task(spec, pass_name, numerics or Numerics(), isa, threads, host())


def planned(task, blocking):
    return make_plan(task.spec, task.numerics, blocking, task.target, task.isa, task.conv_pass).blocking


def test_knob_space_and_ranking_of_a_tiny_layer(isa):
    target = host()
    for pass_name in PASSES:
        space = knob_space(TINY, pass_name, Numerics(), target, isa)
        assert space and len(set(space)) == len(space)
        ranked = rank_by_cost(space, TINY, pass_name, Numerics(), target, isa)
        assert ranked and all(b in set(space) for _, b in ranked)
        assert [c for c, _ in ranked] == sorted(c for c, _ in ranked)


@pytest.mark.parametrize("pass_name", PASSES)
def test_tune_records_measures_the_default_and_answers_from_the_db(isa, cache, pass_name):
    db = TuningDB(cache / "t.sqlite")
    task = task_of(isa, pass_name)
    outcome = tune(task, db, trials=6, budget=20)
    records = db.records(task.key)
    assert not outcome.from_db
    assert 1 <= outcome.measured <= 6
    assert len(records) == outcome.measured + outcome.confirmed        # the finalists' second timings
    assert outcome.failures == sum(not r.ok for r in records)
    assert outcome.confirmed == 0 or 2 <= outcome.confirmed <= 4
    assert all(r.key == task.key and r.layer == "tiny" for r in records)

    default = planned(task, default_blocking(TINY, Numerics(), task.target, isa, pass_name))
    assert default in {r.blocking for r in records}
    assert outcome.default is not None and outcome.default.blocking == default
    assert outcome.best is not None and outcome.best.ok
    assert outcome.best.seconds <= outcome.default.seconds        # min over finalists containing the default
    if outcome.confirmed:
        assert outcome.best in records[-outcome.confirmed:] and outcome.default in records[-outcome.confirmed:]
    assert outcome.best == db.best(task.key)

    again = tune(task, db, trials=6, budget=20)
    assert again.from_db and again.measured == 0
    assert len(db.records(task.key)) == len(records)
    assert again.best == outcome.best
    assert again.default is not None and again.default.seconds == outcome.default.seconds

    retuned = tune(task, db, trials=3, budget=20, retune=True, seed=1)
    assert not retuned.from_db and retuned.measured >= 1
    assert len(db.records(task.key)) == len(records) + retuned.measured + retuned.confirmed
    db.close()


def test_default_record_from_the_db_describes_the_default_blocking(isa, cache, distinct_blocking):
    db = TuningDB(cache / "t.sqlite")
    task = task_of(isa)
    first = tune(task, db, trials=4, budget=20)
    default = planned(task, default_blocking(TINY, Numerics(), task.target, isa))
    assert first.default.blocking == default
    # Make the best deterministically another blocking than the default's (as a later search would).
    fake_choice(db, task, distinct_blocking, first.best.seconds / 10)
    again = tune(task, db, trials=4, budget=20)
    assert again.from_db and again.best.blocking == distinct_blocking
    assert again.default.seconds == first.default.seconds
    assert again.default.blocking == default


def test_tune_never_measures_more_than_the_trials(isa, cache):
    db = TuningDB(cache / "t.sqlite")
    outcome = tune(task_of(isa), db, trials=1, budget=20)
    assert outcome.measured <= 1 and len(db.records()) <= 1


@pytest.mark.parametrize("pass_name", ["fprop", "bprop"])
def test_knob_space_only_offers_blockings_that_plan(isa, pass_name):
    from dfpgen.errors import PlanError

    task = task_of(isa, pass_name)
    failing = []
    for b in knob_space(TINY, pass_name, Numerics(), task.target, isa):
        try:
            planned(task, b)
        except PlanError as exc:
            failing.append((b.describe(), str(exc)))
    assert not failing, f"{len(failing)} unplannable points, e.g. {failing[0]}"


def test_unplannable_candidate_is_a_plan_record_not_an_exception(isa, cache):
    task = task_of(isa)
    record = Measurer(task).measure(UNPLANNABLE)
    assert record.error_kind == "plan" and math.isinf(record.seconds) and not record.ok
    assert record.error.startswith("PlanError") and record.key == task.key


def test_tune_records_failed_candidates_and_goes_on(isa, cache, monkeypatch):
    import dfpgen.tuning.tune as tune_mod

    plannable = [b for _, b in rank_by_cost(knob_space(TINY, "fprop", Numerics(), host(), isa), TINY, "fprop",
                                            Numerics(), host(), isa)][:3]
    monkeypatch.setattr(tune_mod, "knob_space", lambda *a, **k: [UNPLANNABLE] + plannable)
    db = TuningDB(cache / "t.sqlite")
    task = task_of(isa)
    outcome = tune(task, db, trials=10, budget=20)   # 4 points + the default: exhaustive
    records = db.records(task.key)
    assert outcome.measured == len(records) - outcome.confirmed == 5
    assert outcome.failures == 1 and outcome.confirmed in (3, 4)     # the 3 fastest, and the default
    failed = [r for r in records if not r.ok]
    assert len(failed) == 1 and failed[0].error_kind == "plan" and math.isinf(failed[0].seconds)
    assert failed[0].blocking == UNPLANNABLE
    assert outcome.best.ok and db.best(task.key) == outcome.best


@pytest.mark.parametrize("pass_name", PASSES)
def test_wrong_answer_is_detected(isa, cache, pass_name):
    task = task_of(isa, pass_name)
    measurer = Measurer(task)
    blocking = planned(task, default_blocking(TINY, Numerics(), task.target, isa, pass_name))
    assert measurer.measure(blocking).ok
    measurer.exact = measurer.exact + 1e-3 * float(abs(measurer.exact).max())   # a wrong reference
    record = measurer.measure(blocking)
    assert record.error_kind == "wrong_answer" and math.isinf(record.seconds) and record.gmacs == 0.0
    assert "ValueError" in record.error


def test_tune_with_every_answer_wrong_stores_failures_and_finds_nothing(isa, cache, monkeypatch):
    original = Measurer.__init__

    def wrong_reference(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.exact = self.exact * 1.01 + 1.0
    monkeypatch.setattr(Measurer, "__init__", wrong_reference)
    db = TuningDB(cache / "t.sqlite")
    task = task_of(isa)
    outcome = tune(task, db, trials=3, budget=20)
    assert outcome.best is None and outcome.default is None and not outcome.from_db
    assert outcome.measured == outcome.failures == len(db.records(task.key)) >= 1
    assert {r.error_kind for r in db.records(task.key)} == {"wrong_answer"}
    assert db.best(task.key) is None
    # Nothing usable was stored, so compile() still says it used the default.
    assert lookup(TINY, "fprop", Numerics(), isa, 1, db=db) == (None, "default")


# ------------------------------------------------------------------------- lookup and compile()

def fake_record(task, blocking, seconds=1e-5):
    return Record(task.key, blocking, seconds, task.spec.macs / seconds / 1e9, created=1.0, layer="tiny")


def fake_choice(db, task, blocking, seconds=1e-5):
    """A record and the choice of a completed search for it."""
    record = fake_record(task, blocking, seconds)
    db.add(record)
    db.add_choice(record)
    return record


@pytest.fixture
def distinct_blocking(isa):
    """A plannable blocking (as the planner normalizes it) that is not the default. Only a candidate the
    planner rejects (PlanError) is passed over; any other exception, or no such blocking, fails the test."""
    task = task_of(isa)
    default = planned(task, default_blocking(TINY, Numerics(), task.target, isa))
    for b in knob_space(TINY, "fprop", Numerics(), task.target, isa):
        try:
            p = planned(task, b)
        except PlanError:
            continue
        if p != default:
            return p
    pytest.fail(f"the tiny layer's knob space on {isa} plans to nothing but the default blocking")


def test_compile_uses_the_exact_tuned_record(isa, cache, distinct_blocking):
    db = TuningDB(cache / "tuning.sqlite")   # the default database of DFPGEN_CACHE_DIR
    task = task_of(isa)
    db.add(fake_record(task, planned(task, default_blocking(TINY, Numerics(), task.target, isa)), 2e-5))
    fake_choice(db, task, distinct_blocking)
    assert lookup(TINY, "fprop", Numerics(), isa, 1, db=db) == (distinct_blocking, "tuned")
    assert lookup(TINY, "fprop", Numerics(), isa, 1) == (distinct_blocking, "tuned")  # default path
    kernel = dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1, tuned=True)
    assert kernel.source == "tuned"
    assert kernel.plan.blocking == distinct_blocking


def test_compile_falls_back_to_the_nearest_batch_and_threads_and_says_so(isa, cache, distinct_blocking):
    db = TuningDB(cache / "tuning.sqlite")
    fake_choice(db, task_of(isa), distinct_blocking)           # batch 2, 1 thread
    bigger = dataclasses.replace(TINY, N=4)
    blocking, source = lookup(bigger, "fprop", Numerics(), isa, 1, db=db)
    assert blocking == distinct_blocking and source == "tuned at batch 2, 1 threads"
    kernel = dfpgen_compile(bigger, "fprop", Numerics(), isa=isa, threads=2, tuned=True)
    assert kernel.plan.blocking == distinct_blocking
    assert kernel.source == "tuned at batch 2, 1 threads"
    # Another pass, other numerics or another layer shape are other tasks: no fallback across them.
    assert dfpgen_compile(TINY, "bprop", Numerics(), isa=isa, threads=1, tuned=True).source == "default"
    assert dfpgen_compile(TINY, "fprop", Numerics(bits_x=12, bits_w=12), isa=isa, threads=1, tuned=True).source == "default"
    other = ConvSpec(2, 32, 16, 8, 8, 3, 3, 1, 1)
    assert dfpgen_compile(other, "fprop", Numerics(), isa=isa, threads=1, tuned=True).source == "default"


def test_compile_says_default_without_a_db_and_untuned_ignores_it(isa, cache, distinct_blocking):
    path = cache / "tuning.sqlite"
    kernel = dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1, tuned=True)
    assert kernel.source == "default"
    assert kernel.plan.blocking == planned(task_of(isa), default_blocking(TINY, Numerics(), host(), isa))
    assert not path.exists()   # looking up never creates a database
    assert lookup(TINY, "fprop", Numerics(), isa, 1) == (None, "default")
    db = TuningDB(path)
    fake_choice(db, task_of(isa), distinct_blocking)
    assert dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1, tuned=True).source == "tuned"
    assert dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1).source == "default"   # untuned: never asks
    given = dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1, blocking=Blocking(1, 2, 1), tuned=True)
    assert given.source == "given"


def test_tuned_blocking_reaches_compile_end_to_end(isa, cache):
    db = TuningDB(cache / "tuning.sqlite")
    task = task_of(isa, "wtgrad")
    outcome = tune(task, db, trials=4, budget=20)
    kernel = dfpgen_compile(TINY, "wtgrad", Numerics(), isa=isa, threads=1, tuned=True)
    assert kernel.source == "tuned"
    assert kernel.plan.blocking == outcome.best.blocking


def test_confirmation_retimes_the_finalists_and_the_db_keeps_the_choice(isa, cache):
    """A candidate whose first measurement was lucky loses to the finalists' shared rounds: the
    confirmed times are stored and db.best answers only with the tuner's choice."""
    task = task_of(isa)
    measurer = Measurer(task)
    first = measurer.measure(default_blocking(TINY, Numerics(), task.target, isa))
    lucky = dataclasses.replace(first, seconds=first.seconds / 1000)
    (again,) = measurer.confirm([lucky])
    assert again.blocking == lucky.blocking and again.seconds > lucky.seconds and again.ok
    db = TuningDB(cache / "t.sqlite")
    db.add(lucky)
    db.add(again)
    assert db.best(task.key) is None             # no choice recorded: an unfinished search answers nothing
    db.add_choice(again)
    assert db.best(task.key) == again            # the tuner's choice outranks the lucky first time
    faster = dataclasses.replace(again, seconds=again.seconds / 2, created=time.time() + 1)
    db.add(faster)
    assert db.best(task.key) == again            # an unconfirmed record added since (a killed retune) does not


def test_conv2d_asks_the_tuning_database_and_says_so(isa, cache, distinct_blocking):
    """Conv2d is where a layer's kernels consult the database: a tuned record reaches its kernel."""
    db = TuningDB(cache / "tuning.sqlite")
    fake_choice(db, task_of(isa), distinct_blocking)
    op = Conv2d(TINY, isa=isa, threads=1)
    assert op.kernel("fprop").source == "tuned" and op.kernel("fprop").plan.blocking == distinct_blocking
    assert op.kernel("bprop").source == "default"


# ------------------------------------------------------------------------- interrupted searches

def counting_measure(monkeypatch, interrupt_after=None):
    """Measurer.measure, recording each candidate it measures; with `interrupt_after`, the next call after
    that many raises KeyboardInterrupt (a Ctrl-C or kill mid-search)."""
    measured = []
    original = Measurer.measure

    def measure(self, blocking):
        if interrupt_after is not None and len(measured) >= interrupt_after:
            raise KeyboardInterrupt
        measured.append(blocking)
        return original(self, blocking)
    monkeypatch.setattr(Measurer, "measure", measure)
    return measured


def test_a_search_killed_mid_way_resumes_with_its_records_and_confirms(isa, cache, monkeypatch):
    db = TuningDB(cache / "tuning.sqlite")   # the default database, which Conv2d reads
    task = task_of(isa)
    with monkeypatch.context() as m:
        first = counting_measure(m, interrupt_after=3)
        with pytest.raises(KeyboardInterrupt):
            tune(task, db, trials=6, budget=60)
    assert len(first) == 3 and len(db.records(task.key)) == 3
    # Nothing of the unfinished search answers: not tune's database path, not lookup, not Conv2d.
    assert db.best(task.key) is None and db.best(task.key, nearest=True) is None
    assert lookup(TINY, "fprop", Numerics(), isa, 1) == (None, "default")
    assert Conv2d(TINY, isa=isa, threads=1).kernel("fprop").source == "default"

    with monkeypatch.context() as m:
        second = counting_measure(m)
        resumed = tune(task, db, trials=6, budget=60)
    assert not resumed.from_db
    assert resumed.reused >= 3          # the same seed replays the first 3 points (another may plan to one of them)
    assert not set(second) & set(first)                           # which are not measured again
    assert resumed.measured == len(second) <= 3
    assert len(db.records(task.key)) == 3 + resumed.measured + resumed.confirmed
    assert resumed.default is not None and resumed.best.seconds <= resumed.default.seconds
    assert resumed.confirmed >= 2                                 # the default and at least one other finalist
    assert db.best(task.key) == resumed.best
    assert lookup(TINY, "fprop", Numerics(), isa, 1) == (resumed.best.blocking, "tuned")
    again = tune(task, db, trials=6, budget=60)
    assert again.from_db and again.best == resumed.best and again.default.seconds == resumed.default.seconds


def test_unconfirmed_records_are_confirmed_before_they_answer(isa, cache, distinct_blocking, monkeypatch):
    """A search killed before its choice left an impossibly fast record: lookup ignores it, and the next
    tune takes it into the confirmation rounds, whose times replace its lucky one."""
    db = TuningDB(cache / "tuning.sqlite")
    task = task_of(isa)
    lucky = fake_record(task, distinct_blocking, 1e-12)
    db.add(lucky)
    assert lookup(TINY, "fprop", Numerics(), isa, 1) == (None, "default")
    assert dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1, tuned=True).source == "default"
    measured = counting_measure(monkeypatch)
    outcome = tune(task, db, trials=4, budget=60)
    assert not outcome.from_db and outcome.default is not None
    assert distinct_blocking not in {planned(task, b) for b in measured}     # reused, not measured
    assert outcome.confirmed >= 2
    confirmed = db.records(task.key)[-outcome.confirmed:]
    assert lucky.blocking in {r.blocking for r in confirmed}      # it was a finalist, timed again
    assert outcome.best in confirmed and outcome.best.seconds > 1e-12
    assert outcome.best.seconds <= outcome.default.seconds
    assert db.best(task.key) == outcome.best


# ----------------------------------------------------------------------- an unreadable database

def test_a_corrupt_default_database_is_ignored_with_one_warning(isa, cache):
    import warnings

    from dfpgen.tuning.db import TuningDBError

    path = cache / "tuning.sqlite"
    path.write_bytes(random.Random(0).randbytes(8192))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")     # the once-per-file rule must be dfpgen's, not the warnings filter's
        op = Conv2d(TINY, isa=isa, threads=1)
        assert {op.kernel(p).source for p in PASSES} == {"default"}
        assert dfpgen_compile(TINY, "fprop", Numerics(), isa=isa, threads=1, tuned=True).source == "default"
        assert lookup(TINY, "bprop", Numerics(), isa, 2) == (None, "default")
    ours = [w for w in caught if w.category.__name__ == "TuningDBWarning"]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert str(path) in message and "tuning database is ignored" in message and "\n" not in message
    assert "--db" not in message                 # advice for `dfpgen tune`, not for a layer
    assert path.read_bytes() == random.Random(0).randbytes(8192)   # left as it was
    with pytest.raises(TuningDBError):           # tuning itself still refuses it
        tune(task_of(isa), TuningDB(path), trials=2, budget=10)
    with pytest.raises(TuningDBError):           # and so does a lookup in a database given on purpose
        lookup(TINY, "fprop", Numerics(), isa, 1, db=TuningDB(path, create=False))


def test_dfpconv2d_runs_with_a_corrupt_default_database(cache, torch):
    import warnings

    from dfpgen.torch import DFPConv2d

    path = cache / "tuning.sqlite"
    path.write_bytes(random.Random(1).randbytes(8192))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = DFPConv2d(8, 16, 3, padding=1)
        x = torch.randn(2, 8, 8, 8, requires_grad=True)
        layer(x).sum().backward()
        DFPConv2d(8, 8, 3, padding=1)(x)
    assert x.grad is not None and torch.isfinite(x.grad).all()
    ours = [w for w in caught if w.category.__name__ == "TuningDBWarning"]
    assert len(ours) == 1 and str(path) in str(ours[0].message)
