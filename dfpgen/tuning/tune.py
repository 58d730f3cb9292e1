"""The autotuner: candidate blockings per pass, pruned by the register budget and ranked by the cost
model, measured (warm-up, median, answer checked once against the float64 reference), and stored in
the tuning database. A candidate that fails to plan, compile or answer correctly becomes a record
with an error kind and infinite time; it never ends the run.

The fastest few candidates and the default are then timed again, taking turns, and those times
decide. The search sees only blockings and times: `search(space, measure, ...)` is exhaustive for small
spaces and guided (cost-model seeded, neighbourhood moves from the best so far) for large ones,
bounded by trials and seconds, and reproducible with a seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from itertools import product
from typing import Callable

import numpy as np

from dfpgen.codegen.emit import template_hash
from dfpgen.codegen.kernel import Kernel, build
from dfpgen.codegen.plan import Blocking
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target, get_isa, host
from dfpgen.errors import CompileError, DFPGenError, PlanError
from dfpgen.passes import Pass, Reduction, get
from dfpgen.runtime.execute import Prepared, output_buffer, prepare, quantized_operands
from dfpgen.tuning.cost import block_shapes, predicted_cycles
from dfpgen.tuning.db import Record, TuningDB, TuningDBError, TuningDBWarning, TuningKey, default_path
from dfpgen.tuning.measure import interleaved, median_time, random_operands
from dfpgen.verification.reference import flush_bound, fp32_bound

# After the search the fastest CONFIRM_FINALISTS candidates and the default are timed again in
# CONFIRM_ROUNDS rounds of turns: on a shared machine single short measurements can rank two
# blockings the wrong way round.
CONFIRM_FINALISTS = 3
CONFIRM_ROUNDS = 3


# ----------------------------------------------------------------------------------- the space

def knob_space(spec: ConvSpec, conv_pass: Pass | str, numerics: Numerics, target: Target,
               isa_name: str) -> list[Blocking]:
    """Every blocking worth planning for one kernel: register blocks that fit, channel blocks, unrolls,
    orders (passes reducing over channels), reduction blocks (passes reducing over pixels)."""
    conv_pass, isa = get(conv_pass), get_isa(isa_name)
    lanes, elem = isa.lanes, isa.group
    chain = numerics.chain_on(isa) if isa.precision != "fp32" else 1 << 30
    rbs = [None]
    if conv_pass.reduction is Reduction.PIXELS:
        cpbs, unrolls, orders = [None], [None] + [u for u in (2, 4, 8, 16) if u <= chain], ["nk"]
        rbs = [None] + [rb for rb in (2, 8, 32) if rb < spec.N * spec.P]
    else:
        elems = conv_pass.reduced_channel_elements(spec, elem)
        cpbs = sorted({min(m * lanes, elems) for m in (1, 2, 4)} | {max(1, min(lanes, elems) // 2)})
        unrolls, orders = [None, "half"], ["nk", "kn", "np"] if spec.N > 1 else ["nk", "np"]
    space = []
    for kv, wb, hb in block_shapes(spec, conv_pass, target, isa_name):
        for cpb, unroll, order, rb in product(cpbs, unrolls, orders, rbs):
            if unroll == "half":
                if cpb is None or cpb < 2 or cpb % 2 or cpb // 2 > chain:
                    continue
                unroll = cpb // 2
            space.append(Blocking(kv, wb, hb, cpb, unroll, order, rb))
    return space


def rank_by_cost(space: list[Blocking], spec: ConvSpec, conv_pass: Pass | str, numerics: Numerics, target: Target,
                 isa_name: str, limit: int = 160) -> list[tuple[float, Blocking]]:
    """Plannable blockings with their predicted cycles, best first (PlanErrors dropped).

    Planning every point is the costly part, so only register-block shapes are ranked first, and the
    best `limit` of them are expanded over their channel-block, unroll and order variants."""
    conv_pass = get(conv_pass)
    shapes: dict[tuple, list[Blocking]] = {}
    for b in space:
        shapes.setdefault((b.kv, b.wb, b.hb), []).append(b)
    scored_shapes = []
    for shape, variants in shapes.items():
        cycles = _cycles(variants[0], spec, conv_pass, numerics, target, isa_name)
        if cycles is not None:
            scored_shapes.append((cycles, shape))
    scored_shapes.sort()
    ranked = []
    for _, shape in scored_shapes[:max(1, limit // 4)]:
        for b in shapes[shape]:
            cycles = _cycles(b, spec, conv_pass, numerics, target, isa_name)
            if cycles is not None:
                ranked.append((cycles, b))
    ranked.sort(key=lambda cb: (cb[0], cb[1].describe()))
    return ranked[:limit]


def _cycles(b, spec, conv_pass, numerics, target, isa_name) -> float | None:
    try:
        return predicted_cycles(conv_pass.plan(spec, numerics, b, target, isa_name))
    except PlanError:
        return None


# ---------------------------------------------------------------------------------- the search

@dataclass
class SearchResult:
    """What a search measured, in order, and the best point."""

    history: list[tuple[Blocking, float]] = field(default_factory=list)

    @property
    def best(self) -> tuple[Blocking, float] | None:
        """The fastest measured point (time inf when everything failed)."""
        finite = [h for h in self.history if math.isfinite(h[1])]
        return min(finite, key=lambda h: h[1]) if finite else None


def _neighbours(b: Blocking, values: dict[str, list]) -> list[Blocking]:
    out = []
    for name, options in values.items():
        current = getattr(b, name)
        i = options.index(current)
        for j in (i - 1, i + 1):
            if 0 <= j < len(options):
                out.append(dataclasses.replace(b, **{name: options[j]}))
    return out


def search(space: list[Blocking], measure: Callable[[Blocking], float], *, trials: int = 64,
           budget: float = math.inf, seed: int = 0, ranked: list[Blocking] | None = None,
           start: tuple[Blocking, ...] = (), clock: Callable[[], float] = time.monotonic,
           progress: Callable[[int], None] | None = None) -> SearchResult:
    """Measure points of `space` (smaller times are better) within `trials` and `budget` seconds.

    Exhaustive when the space fits in the trials; otherwise guided: the `start` points, then the
    best-ranked points, then neighbours (one knob one step) of the best points found so far, with a
    ranked or random point whenever a neighbourhood is exhausted. `seed` makes every choice repeatable.
    """
    rng = random.Random(seed)
    members = set(space)
    order = [b for b in (ranked or []) if b in members]
    rest = [b for b in space if b not in set(order)]
    rng.shuffle(rest)
    queue = list(dict.fromkeys([b for b in start if b in members] + order + rest))
    result, seen = SearchResult(), set()
    deadline = clock() + budget

    def run(b: Blocking) -> None:
        seen.add(b)
        result.history.append((b, measure(b)))
        if progress:
            progress(len(result.history))

    if len(space) <= trials:
        for b in queue:
            if clock() >= deadline:
                break
            run(b)
        return result
    values = {name: sorted({getattr(b, name) for b in space}, key=lambda v: (v is None, v if v is not None else 0))
              for name in ("kv", "wb", "hb", "cpb", "unroll", "order", "rb")}
    values = {k: v for k, v in values.items() if len(v) > 1}
    seeds = max(1, trials // 4)
    for b in [b for b in queue if b in set(start)] + [b for b in queue if b not in set(start)][:seeds]:
        if len(result.history) >= trials or clock() >= deadline:
            return result
        if b not in seen:
            run(b)
    while len(result.history) < trials and clock() < deadline and len(seen) < len(members):
        measured = sorted((h for h in result.history if math.isfinite(h[1])), key=lambda h: h[1])
        parents = [h[0] for h in measured[:3]] or [rng.choice(space)]
        parent = parents[min(int(rng.expovariate(1.0)), len(parents) - 1)]
        fresh = [n for n in _neighbours(parent, values) if n in members and n not in seen]
        if not fresh:
            for p in parents:  # widen to the other good points' neighbourhoods before jumping away
                fresh = [n for n in _neighbours(p, values) if n in members and n not in seen]
                if fresh:
                    break
        if not fresh:
            fresh = [next(b for b in queue if b not in seen)]
        run(rng.choice(fresh))
    return result


# ----------------------------------------------------------------------------- real measurement

@dataclass(frozen=True)
class Task:
    """One tuning task: a layer's pass under fixed numerics, ISA and thread count."""

    spec: ConvSpec
    conv_pass: Pass
    numerics: Numerics
    isa: str
    threads: int
    target: Target

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_pass", get(self.conv_pass))   # a pass name is accepted too

    @property
    def key(self) -> TuningKey:
        """Its database key."""
        return tuning_key(self.spec, self.conv_pass, self.numerics, self.threads, self.target, self.isa)


def tuning_key(spec: ConvSpec, conv_pass: Pass, numerics: Numerics, threads: int, target: Target,
               isa: str) -> TuningKey:
    """The database key of one kernel: its template's hash makes a changed template retune."""
    return TuningKey.make(spec, conv_pass.name, numerics, threads, target, isa, template_hash(conv_pass.template))


class Measurer:
    """Times candidates of one task on fixed random operands, checking each answer once."""

    def __init__(self, task: Task, min_seconds: float = 0.1, seed: int = 0):
        self.task, self.min_seconds = task, min_seconds
        s, p = task.spec, task.conv_pass
        a, b = random_operands(s, p, seed)
        integer = get_isa(task.isa).precision == "dfp16"
        self.a, self.b, self.scale = quantized_operands(a, b, task.numerics if integer else None)
        self.exact = p.reference(self.a, self.b, s) * self.scale
        self.magnitude = p.reference(np.abs(self.a), np.abs(self.b), s)   # the sum of |products|, unscaled
        self._blocked: dict[tuple, tuple] = {}

    def kernel(self, blocking: Blocking) -> Kernel:
        """Plan and emit one candidate."""
        t = self.task
        return build(t.conv_pass.plan(t.spec, t.numerics, blocking, t.target, t.isa))

    def prepared(self, kernel: Kernel) -> Prepared:
        """The kernel with the task's operands in its layouts (the last layout's blocks are reused)."""
        plan = kernel.plan
        layout_key = (plan.src_shape, plan.vec_shape, plan.layout)
        if layout_key not in self._blocked:
            ready = prepare(kernel, self.a, self.b)
            self._blocked = {layout_key: (ready.src, ready.vec)}  # keep one layout
        return Prepared(kernel, *self._blocked[layout_key], output_buffer(kernel))

    def check(self, kernel: Kernel, result: np.ndarray) -> None:
        """Raise ValueError if a result is not within the kernel's derived error bound of the reference."""
        plan = kernel.plan
        if plan.int_accumulate:
            bound = flush_bound(self.magnitude, plan.flushes) * self.scale
        else:
            bound = fp32_bound(self.magnitude, plan.conv_pass.reduction_length(self.task.spec))
        excess = np.abs(result - self.exact) - bound
        if not np.all(np.isfinite(result)) or excess.max(initial=0) > 1e-30:
            raise ValueError(f"answer off by up to {float(np.nanmax(np.abs(result - self.exact))):.3g} "
                             f"(bound {float(bound.max(initial=0)):.3g})")

    def measure(self, blocking: Blocking) -> Record:
        """One candidate's record: timed and checked, or an error kind."""
        t, key = self.task, self.task.key
        fail = lambda kind, exc: Record(key, blocking, math.inf, 0.0, kind, f"{type(exc).__name__}: {exc}",
                                        time.time(), t.spec.name)
        try:
            kernel = self.kernel(blocking)
        except PlanError as exc:
            return fail("plan", exc)
        try:
            kernel.compiled()
        except (CompileError, RuntimeError) as exc:
            return fail("compile", exc)
        try:
            ready = self.prepared(kernel)
            ready.run(self.scale, t.threads)
            self.check(kernel, ready.result())
        except ValueError as exc:
            return fail("wrong_answer", exc)
        except DFPGenError as exc:
            return fail("runtime", exc)
        seconds, _ = median_time(lambda: ready.run(1.0, t.threads), self.min_seconds, min_reps=3)
        return Record(key, kernel.plan.blocking, seconds, t.spec.macs / seconds / 1e9, None, None, time.time(),
                      t.spec.name)

    def confirm(self, finalists: list[Record], rounds: int = CONFIRM_ROUNDS) -> list[Record]:
        """The finalists timed again, taking turns over `rounds` rounds: new records with those times.

        One short measurement per candidate is at the mercy of a shared machine's moment; the
        finalists' medians over rounds they share are what the choice between them rests on."""
        runs = {}
        for record in finalists:
            ready = self.prepared(self.kernel(record.blocking))
            runs[record.blocking] = (lambda r=ready: r.run(1.0, self.task.threads))
        times = interleaved(runs, rounds, self.min_seconds * rounds)
        macs = self.task.spec.macs
        return [dataclasses.replace(r, seconds=float(np.median(times[r.blocking])), created=time.time(),
                                    gmacs=macs / float(np.median(times[r.blocking])) / 1e9) for r in finalists]


@dataclass
class Outcome:
    """A finished tuning task: the best and the default records, and whether the database answered."""

    task: Task
    best: Record | None
    default: Record | None
    from_db: bool
    measured: int = 0         # candidates measured
    failures: int = 0
    confirmed: int = 0        # finalists timed again (each one more record)
    reused: int = 0           # candidates an interrupted search had measured, taken from the database


def tune(task: Task, db: TuningDB, *, trials: int = 64, budget: float = 30.0, seed: int = 0,
         retune: bool = False, progress: Callable[[int], None] | None = None) -> Outcome:
    """Tune one task (or answer from the database unless `retune`); every measurement is recorded.

    Only a completed search answers from the database (its choice, stored last). A search that was
    interrupted resumes: the candidates it measured are taken from their records, not measured again,
    and the search goes on to its trials and its confirmation rounds."""
    from dfpgen.tuning.cost import default_blocking

    key = task.key
    earlier: dict[Blocking, Record] = {}
    if not retune:
        best = db.best(key)
        if best is not None:
            saved = db.baseline(key, "default")
            default = Record(key, Blocking(**json.loads(saved[1])), saved[0], task.spec.macs / saved[0] / 1e9,
                             layer=task.spec.name) if saved and saved[1] else None
            return Outcome(task, best, default, True)
        # No choice: whatever this key's records hold is an unfinished search's (the latest per blocking).
        earlier = {r.blocking: r for r in db.records(key)}
    # Operands, results and the candidates' tables must fit before anything is planned or allocated.
    task.conv_pass.check_size(task.spec, task.numerics, None, task.target, task.isa, run=True)
    default = default_blocking(task.spec, task.numerics, task.target, task.isa, task.conv_pass, task.threads)
    started = time.monotonic()
    measurer = Measurer(task)
    space = knob_space(task.spec, task.conv_pass, task.numerics, task.target, task.isa)
    ranked = [b for _, b in rank_by_cost(space, task.spec, task.conv_pass, task.numerics, task.target, task.isa)]
    records: dict[Blocking, Record] = {}
    # An interrupted search's correct candidates compete for the finals even where this search does not
    # visit them again (another seed); those it visits again are not measured again.
    records.update({b: r for b, r in earlier.items() if r.ok})
    reused: set[Blocking] = set()
    fresh: list[Record] = []

    def measure(b: Blocking) -> float:
        record = _earlier_record(task, earlier, b)
        if record is not None:
            reused.add(b)
        else:
            record = measurer.measure(b)
            db.add(record)
            fresh.append(record)
        records[b] = record
        return record.seconds

    remaining = max(0.0, budget - (time.monotonic() - started))
    # The default blocking is always a candidate, so the tuned choice is never slower than it.
    start = (default,) if default in set(space) else ()
    if not start:
        measure(default)
        trials -= 1
    if trials > 0:
        search(space, measure, trials=trials, budget=remaining, seed=seed, ranked=ranked, start=start,
               progress=progress)
    ok = [r for r in records.values() if r.ok]
    default_record = records.get(default) or _earlier_record(task, earlier, default)
    default_record = default_record if default_record is not None and default_record.ok else None
    # The fastest few and the default are timed again side by side, and those times decide; the
    # database keeps the choice, which its best() answers until a faster record is added.
    # Two knob settings can plan the same kernel (rb or unroll None and the value it resolves to):
    # each kernel is a finalist once, with its fastest record.
    fastest: dict[Blocking, Record] = {}
    for record in sorted(ok, key=lambda r: r.seconds):
        fastest.setdefault(record.blocking, record)
    finalists = list(fastest.values())[:CONFIRM_FINALISTS]
    if default_record is not None and default_record.blocking not in {r.blocking for r in finalists}:
        finalists.append(default_record)
    confirmed = measurer.confirm(finalists) if len(finalists) > 1 else finalists
    for after in confirmed:
        if all(after is not before for before in finalists):
            db.add(after)
        if default_record is not None and after.blocking == default_record.blocking:
            default_record = after
    if default_record is not None:
        db.add_baseline(key, "default", default_record.seconds, json.dumps(dataclasses.asdict(default_record.blocking)))
    best = min(confirmed, key=lambda r: r.seconds) if confirmed else None
    if best is not None:
        db.add_choice(best)
    return Outcome(task, best, default_record, False, measured=len(fresh), failures=sum(not r.ok for r in fresh),
                   confirmed=len(confirmed) if len(confirmed) > 1 else 0, reused=len(reused))


def _earlier_record(task: Task, earlier: dict[Blocking, Record], b: Blocking) -> Record | None:
    """An interrupted search's record of candidate `b`: stored under `b` when it failed, under the blocking
    it plans to when it ran."""
    if not earlier:
        return None
    if b in earlier:
        return earlier[b]
    try:
        planned = task.conv_pass.plan(task.spec, task.numerics, b, task.target, task.isa).blocking
    except PlanError:
        return None
    return earlier.get(planned)


def lookup(spec: ConvSpec, conv_pass: Pass | str, numerics: Numerics, isa: str, threads: int,
           target: Target | None = None, db: TuningDB | None = None) -> tuple[Blocking | None, str]:
    """The tuned blocking for a kernel from the database, and where it came from: 'tuned', 'tuned at
    batch B, T threads' (the nearest tuned configuration of the same layer) or 'default' (none).
    The one place that consults the tuning database for a kernel (without `db`: the user's own).

    Only completed, confirmed searches answer. The user's own database is an optimization: when it is
    unreadable, kernels take their default blockings, with one warning per process and file."""
    target = target or host()
    key = tuning_key(spec, get(conv_pass), numerics, threads, target, isa)
    if db is None:
        own = None
        try:
            own = TuningDB(create=False)
            best = own.best(key, nearest=True)
        except TuningDBError:
            _warn_unreadable()
            return None, "default"
        finally:
            if own is not None:
                own.close()
    else:
        best = db.best(key, nearest=True)
    if best is None:
        return None, "default"
    if (best.key.threads, best.key.batch) == (threads, spec.N):
        return best.blocking, "tuned"
    return best.blocking, f"tuned at batch {best.key.batch}, {best.key.threads} threads"


_WARNED: set[str] = set()   # the unreadable databases this process has warned about


def _warn_unreadable() -> None:
    """Warn, once per process and file, that the user's tuning database is unreadable and ignored."""
    path = str(default_path())
    if path in _WARNED:
        return
    _WARNED.add(path)
    warnings.warn(f"{path}: not a readable dfpgen tuning database; the tuning database is ignored and kernels use "
                  f"their default blockings (move the file away to tune again)", TuningDBWarning, stacklevel=3)
