"""A simple cost model: predicted core cycles of a plan. Ranks blockings (the default heuristic and the
tuner's pruning); it never decides correctness and is never a substitute for measuring."""

from __future__ import annotations

from itertools import product

import numpy as np

from .errors import PlanError
from .plan import Blocking, Plan, common, make_plan, register_need
from .spec import ConvSpec, Numerics
from .target import Target, get_isa

# Multiply-accumulate instructions retired per cycle: VNNI and FMA issue on two ports; the
# vpmaddwd + vpaddd pair costs two vector ops (DESIGN.md's Zen 3 peaks put it at ~0.8x of FMA).
MAC_RATE = {"vnni": 2.0, "fma": 2.0, "pmadd": 1.6}
LOADS_PER_CYCLE = 2.0
STEP_OVERHEAD = 2.0      # table loads, pointer arithmetic and the loop branch of one reduction step
FLUSH_CYCLES = {False: 2.0, True: 1.0}  # per accumulator and flush: into the output tile (convert, load,
                                        # fma, store: store-bound) or into FP32 registers (convert, fma)
# The vpmaddwd ISAs' FPROP and BPROP, as measured on Zen 3 (avx2, ResNet-50 3x3 layers, bits 13):
# vpmaddwd writes a product register that vpaddd then adds, and LLVM hoists the unrolled steps' loads
# and products ahead, so blocks needing more than 10 of the 16 ymm registers spill (kv1 x 7x2: 31-37
# GMAC/s); and broadcasts issue at about one a cycle, so blocks that reuse each broadcast across
# vectors win (kv2 x 3x1: 41-47, kv1 x 2x4: 32-35). WTGRAD's steps did not follow either rule.
PMADD_TEMPORARIES = 6
SPILL_PENALTY = 1.6
PMADD_LOADS_PER_CYCLE = 1.0


def _pmadd_rules(plan: Plan) -> bool:
    return _kind(plan) == "pmadd" and plan.pass_name != "wtgrad"


def _kind(plan: Plan) -> str:
    if plan.isa.precision == "fp32":
        return "fma"
    return "vnni" if "vnni" in plan.isa.name else "pmadd"


def predicted_cycles(plan: Plan) -> float:
    """Cycles the whole kernel should take on one core, from instruction counts and issue rates."""
    rate, pmadd = MAC_RATE[_kind(plan)], _pmadd_rules(plan)
    loads_per_cycle = PMADD_LOADS_PER_CYCLE if pmadd else LOADS_PER_CYCLE
    spill_free = plan.target.vector_registers - PMADD_TEMPORARIES
    per_tile = []
    for tile in plan.tiles:
        acc = tile.accumulators
        step = max(plan.unroll * acc / rate, plan.unroll * (tile.v + tile.h * tile.w) / loads_per_cycle)
        if pmadd and register_need(tile.h, tile.w, tile.v, plan.flush_in_registers) > spill_free:
            step *= SPILL_PENALTY
        per_tile.append((step + STEP_OVERHEAD, acc * FLUSH_CYCLES[plan.flush_in_registers] + 2 * acc))
    if not len(plan.call_table):
        return 0.0
    tiles, counts = plan.call_table[:, 0], plan.call_table[:, 5]
    step = np.array([t[0] for t in per_tile])[tiles]
    flush = np.array([t[1] for t in per_tile])[tiles]
    flushes = np.maximum(1, -(-counts // plan.steps_per_flush))
    return float((counts * step + flushes * flush).sum()) * plan.batch


def efficiency(plan: Plan) -> float:
    """Useful MACs per predicted cycle, as a fraction of the instruction's peak."""
    useful = plan.spec.macs / (plan.lanes * plan.elem)   # instructions if nothing were padded or stalled
    return useful / MAC_RATE[_kind(plan)] / predicted_cycles(plan)


def block_shapes(spec: ConvSpec, pass_name: str, target: Target, isa_name: str, max_kv: int = 6,
                 max_wb: int = 28, max_hb: int = 4) -> list[tuple[int, int, int]]:
    """Register-block shapes (kv, wb, hb) of a pass that fit the register file.

    fprop/bprop block output pixels (wb along a row, hb rows) x kv vectors of output channels;
    wtgrad blocks input channels (wb) x filter columns (hb) x kv vectors of output channels."""
    lanes = get_isa(isa_name).lanes
    if pass_name == "wtgrad":
        vectors, width, height = -(-spec.K // lanes), spec.C, spec.S
    elif pass_name == "bprop":
        vectors, width, height = -(-spec.C // lanes), spec.W, spec.H
    else:
        vectors, width, height = -(-spec.K // lanes), spec.Q, spec.P
    return [(kv, wb, hb) for kv, wb, hb in product(range(1, min(vectors, max_kv) + 1),
                                                   range(1, min(width, max_wb) + 1),
                                                   range(1, min(height, max_hb) + 1))
            if register_need(hb, wb, kv) <= target.vector_registers]


def default_blocking(spec: ConvSpec, numerics: Numerics, target: Target, isa_name: str,
                     pass_name: str = "fprop") -> Blocking:
    """The blocking the cost model ranks best: good speed without tuning."""
    common(numerics, Blocking(), target, isa_name, pass_name, spec)  # ISA and policy errors say what is wrong
    best, best_key = None, None
    for kv, wb, hb in block_shapes(spec, pass_name, target, isa_name):
        blocking = Blocking(kv, wb, hb)
        try:
            plan = make_plan(spec, numerics, blocking, target, isa_name, pass_name)
        except PlanError:
            continue
        # Under the vpmaddwd rules ties go to wide, flat blocks (the broadcasts of one row share cache
        # lines); elsewhere to the first block found, as the VNNI and FP32 defaults were measured.
        key = (round(predicted_cycles(plan), 6),) + ((hb, -wb) if _pmadd_rules(plan) else ())
        if best_key is None or key < best_key:
            best, best_key = blocking, key
    if best is None:
        raise PlanError(f"no register blocking fits {spec.describe()} ({pass_name}) on {isa_name}")
    return best
