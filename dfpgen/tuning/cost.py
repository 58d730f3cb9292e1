"""A simple cost model: predicted core cycles of a plan. Ranks blockings (the default heuristic and the
tuner's pruning); it never decides correctness and is never a substitute for measuring."""

from __future__ import annotations

from itertools import product

import numpy as np

from dfpgen.codegen.calls import CALL_FIELDS, block_steps
from dfpgen.codegen.plan import Blocking, Plan, common, largest_divisor_at_most, register_need
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target, get_isa
from dfpgen.errors import PlanError
from dfpgen.passes import FPROP, Pass, Reduction, get

# Multiply-accumulate instructions retired per cycle: VNNI and FMA issue on two ports; the
# vpmaddwd + vpaddd pair costs two vector ops, so it retires slower (docs/experiments.md §1).
# Rates are in instructions, and an instruction does Isa.group products per lane: vpdpbusd issues like
# vpdpwssd (kind "vnni") with four products instead of two, so its plans need half the steps and the
# model prices them at twice the MAC rate (the probes measured 234 vs 117 GMAC/s on one Zen 4 core).
MAC_RATE = {"vnni": 2.0, "fma": 2.0, "pmadd": 1.6}
LOADS_PER_CYCLE = 2.0
STEP_OVERHEAD = 2.0      # table loads, pointer arithmetic and the loop branch of one reduction step
FLUSH_CYCLES = {False: 2.0, True: 1.0}  # per accumulator and flush: into the output tile (convert, load,
                                        # fma, store: store-bound) or into FP32 registers (convert, fma)
# vpmaddwd FPROP/BPROP: products wait in registers for their vpaddd and LLVM hoists the steps' loads, so blocks
# needing over 11 of the 16 ymm registers spill (13 fit with pinned sums but ran no faster); broadcasts issue
# about one a cycle, so blocks reusing each broadcast across vectors win (docs/experiments.md §3).
PMADD_TEMPORARIES = 5
SPILL_PENALTY = 1.6
PMADD_LOADS_PER_CYCLE = 1.0
# vpmaddwd WTGRAD: a step loads dy vectors two a cycle and broadcasts x a little under one a cycle, and blocks
# needing over 13 of the 16 registers spill (docs/experiments.md §3). Where blocks price alike, the one with the
# most vectors wins: each broadcast then feeds more MACs.
WTGRAD_VECTOR_LOADS_PER_CYCLE = 2.0
WTGRAD_BROADCASTS_PER_CYCLE = 0.8
WTGRAD_TEMPORARIES = 3
# Items that take all filter blocks of an image before its next output rows (orders "nk", "kn") read the
# whole image once per filter block, from L3 once it outgrows L2; order "np" keeps the rows in cache
# (docs/experiments.md §3).
L2_IMAGE_BYTES = 256 * 1024
STREAMING_PENALTY = 1.1
# The inline-assembly vpdpwssd FPROP/BPROP steps on a 32-register target: loads and broadcasts cost issue slots,
# so of two blocks with the same accumulators per cycle the one with fewer loads per multiply-accumulate wins;
# at this rate kv4 x 3x2 prices below kv2 x 7x2 and kv3 x 8x1 (docs/experiments.md §3).
VNNI_LOADS_PER_CYCLE = 0.9
# WTGRAD defaults for several threads: the blocks within this fraction of the fastest one-thread prediction are
# ranked again by their busiest thread (threaded_cycles).
THREADED_MARGIN = 0.25
# Reduction elements per step of the vpmaddwd FPROP/BPROP defaults, in vectors' worth of pairs (_pmadd_refined).
STEP_VECTORS = 1


# The rule families below are chosen by what the pass reduces over (Pass.reduction) and the ISA's kind.

def _pmadd_rules(plan: Plan) -> bool:
    return _pmadd_channel_reduction(plan.isa, plan.conv_pass)


def _pmadd_channel_reduction(isa, conv_pass: Pass) -> bool:
    return isa.kind == "pmadd" and conv_pass.reduction is Reduction.CHANNELS


def _vnni_wide_fprop_bprop(plan: Plan) -> bool:
    return plan.isa.kind == "vnni" and plan.conv_pass.reduction is Reduction.CHANNELS \
        and plan.target.vector_registers == 32


def _pmadd_wtgrad(plan: Plan) -> bool:
    return plan.isa.kind == "pmadd" and plan.conv_pass.reduction is Reduction.PIXELS


def predicted_cycles(plan: Plan) -> float:
    """Cycles the whole kernel should take on one core, from instruction counts and issue rates."""
    rate, pmadd, pmadd_wtgrad = MAC_RATE[plan.isa.kind], _pmadd_rules(plan), _pmadd_wtgrad(plan)
    loads_per_cycle = PMADD_LOADS_PER_CYCLE if pmadd else \
        VNNI_LOADS_PER_CYCLE if _vnni_wide_fprop_bprop(plan) else LOADS_PER_CYCLE
    spill_free = plan.target.vector_registers - (WTGRAD_TEMPORARIES if pmadd_wtgrad else PMADD_TEMPORARIES)
    per_tile = []
    for tile in plan.tiles:
        acc, broadcasts = tile.accumulators, tile.h * tile.w
        if pmadd_wtgrad:
            loads = tile.v / WTGRAD_VECTOR_LOADS_PER_CYCLE + broadcasts / WTGRAD_BROADCASTS_PER_CYCLE
        else:
            loads = (tile.v + broadcasts) / loads_per_cycle
        step = max(plan.unroll * acc / rate, plan.unroll * loads)
        if (pmadd or pmadd_wtgrad) and register_need(tile.h, tile.w, tile.v, plan.flush_in_registers) > spill_free:
            step *= SPILL_PENALTY
        per_tile.append((step + STEP_OVERHEAD, acc * FLUSH_CYCLES[plan.flush_in_registers] + 2 * acc))
    if not plan.call_count:
        return 0.0
    # Calls of one group (plan.calls.groups(): a tile and a step slice) cost alike: count steps and flushes
    # per tile over the groups, from their descriptions rather than the call table.
    groups = list(plan.calls.groups())
    tiles = np.array([t for t, *_ in groups])
    calls = np.array([n for _, n, *_ in groups], dtype=np.int64)[:, None]
    counts = block_steps(np.array([(0, 0, 0, 0, b, n) for *_, b, n in groups], dtype=np.int64).reshape(-1, CALL_FIELDS),
                         plan.reduction_blocks)
    step_totals, flush_totals = np.zeros(len(per_tile), dtype=np.int64), np.zeros(len(per_tile), dtype=np.int64)
    np.add.at(step_totals, tiles, (calls * counts).sum(axis=1))
    np.add.at(flush_totals, tiles, (calls * np.maximum(1, -(-counts // plan.steps_per_flush))).sum(axis=1))
    streaming = pmadd and plan.blocking.order != "np" and \
        plan.src_batch_stride * np.dtype(plan.src_storage).itemsize > L2_IMAGE_BYTES
    total = sum(int(s) * step + int(f) * flush for (step, flush), s, f in zip(per_tile, step_totals, flush_totals))
    return float(total) * plan.batch * (STREAMING_PENALTY if streaming else 1.0)


def threaded_cycles(plan: Plan, threads: int) -> float:
    """Predicted cycles of the busiest of `threads` threads: predicted_cycles scaled by the part of the work,
    kernel calls and operand traffic that its box of the plan's thread split carries (dfpgen.codegen.split)."""
    cycles = predicted_cycles(plan)
    if threads <= 1:
        return cycles
    total = plan.split(1).load
    return cycles * plan.split(threads).load / total if total > 0 else cycles


def efficiency(plan: Plan) -> float:
    """Useful MACs per predicted cycle, as a fraction of the instruction's peak."""
    useful = plan.spec.macs / (plan.lanes * plan.elem)   # instructions if nothing were padded or stalled
    return useful / MAC_RATE[plan.isa.kind] / predicted_cycles(plan)


def block_shapes(spec: ConvSpec, conv_pass: Pass | str, target: Target, isa_name: str, max_kv: int = 6,
                 max_wb: int = 28, max_hb: int = 4) -> list[tuple[int, int, int]]:
    """Register-block shapes (kv, wb, hb) of a pass that fit the register file: kv vectors over the
    extents the pass names in `block_axes` (e.g. FPROP: output channels, wb columns and hb rows of
    output pixels; WTGRAD: output channels, wb input channels, hb filter columns)."""
    vectors, width, height = get(conv_pass).block_extents(spec, get_isa(isa_name).lanes)
    return [(kv, wb, hb) for kv, wb, hb in product(range(1, min(vectors, max_kv) + 1),
                                                   range(1, min(width, max_wb) + 1),
                                                   range(1, min(height, max_hb) + 1))
            if register_need(hb, wb, kv) <= target.vector_registers]


def default_blocking(spec: ConvSpec, numerics: Numerics, target: Target, isa_name: str,
                     conv_pass: Pass | str = FPROP, threads: int = 1) -> Blocking:
    """The blocking the cost model ranks best: good speed without tuning (SizeError, before any plan, when
    the layer's offsets pass 2**31 or the candidates' tables would not fit in memory).

    For a pass that reduces over pixels (WTGRAD) the ranking is of the busiest of `threads` threads
    (threaded_cycles): its register block decides how many vector blocks dw has, so whether threads can
    own dw by vector blocks or must share the input by channel chunks. Its result does not depend on the
    register block (the flushes follow the unroll and reduction blocks), so neither on the thread count.
    A channel-reducing pass keeps its one-thread ranking: its threads split image rows for every register
    block alike, and on the vpmaddwd ISAs its channel block, which decides the flushes, follows the shape."""
    conv_pass = get(conv_pass)
    common(numerics, Blocking(), target, isa_name, spec)  # ISA and policy errors say what is wrong
    conv_pass.check_size(spec, numerics, None, target, isa_name)   # not "no register blocking fits" below
    ranked = []
    for kv, wb, hb in block_shapes(spec, conv_pass, target, isa_name):
        blocking = Blocking(kv, wb, hb)
        try:
            plan = conv_pass.plan(spec, numerics, blocking, target, isa_name)
        except PlanError:
            continue
        # Under the vpmaddwd and wide vpdpwssd rules ties go to wide, flat blocks (the broadcasts of
        # one row share cache lines), in vpmaddwd WTGRAD to the most vectors, then accumulators;
        # elsewhere to the first block found, as the other defaults were measured.
        tie = (hb, -wb) if _pmadd_rules(plan) or _vnni_wide_fprop_bprop(plan) else \
            (-kv, -kv * wb * hb) if _pmadd_wtgrad(plan) else ()
        ranked.append(((round(predicted_cycles(plan), 6),) + tie, len(ranked), blocking, plan))
    best = min(ranked)[2] if ranked else None
    if ranked and threads > 1 and conv_pass.reduction is Reduction.PIXELS:
        fastest = min(ranked)[0][0]
        best = min(((round(threaded_cycles(plan, threads), 6),) + key[1:], i, blocking)
                   for key, i, blocking, plan in ranked if key[0] <= fastest * (1 + THREADED_MARGIN))[2]
    if best is None:
        raise PlanError(f"no register blocking fits {spec.describe()} ({conv_pass.name}) on {isa_name}")
    if _pmadd_channel_reduction(get_isa(isa_name), conv_pass):
        best = _pmadd_refined(best, spec, numerics, target, isa_name, conv_pass)
    return best


def _pmadd_refined(shape: Blocking, spec: ConvSpec, numerics: Numerics, target: Target, isa_name: str,
                   conv_pass: Pass) -> Blocking:
    """The best channel block and item order for a vpmaddwd FPROP/BPROP register block.

    Channel blocks of 2-4 vectors' worth of pairs beat one, but the model prices their steps alike, so ties
    go to the larger block. Steps take `STEP_VECTORS` vectors' worth of pairs: the smaller step loop holds up
    better while a shared host is slow. The AVX-512 vpmaddwd path follows by analogy (docs/experiments.md §3)."""
    lanes = get_isa(isa_name).lanes
    elems = conv_pass.reduced_channel_elements(spec, 2)
    best, best_key = shape, None
    for cpb in sorted({min(m * lanes, elems) for m in (1, 2, 4)}):
        for order in ("nk", "np"):
            b = Blocking(shape.kv, shape.wb, shape.hb, cpb, largest_divisor_at_most(cpb, STEP_VECTORS * lanes), order)
            try:
                key = (round(predicted_cycles(conv_pass.plan(spec, numerics, b, target, isa_name)), 6), -cpb)
            except PlanError:
                continue
            if best_key is None or key < best_key:
                best, best_key = b, key
    return best
