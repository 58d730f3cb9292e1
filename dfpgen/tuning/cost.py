"""A simple cost model: predicted core cycles of a plan. Ranks blockings (the default heuristic and the
tuner's pruning); it never decides correctness and is never a substitute for measuring."""

from __future__ import annotations

from itertools import product

import numpy as np

from dfpgen.errors import PlanError
from dfpgen.codegen.plan import Blocking, Plan, block_steps, common, largest_divisor_at_most, register_need
from dfpgen.passes import FPROP, Pass, Reduction, get
from dfpgen.core.spec import ConvSpec
from dfpgen.core.numerics import Numerics
from dfpgen.core.target import Target, get_isa

# Multiply-accumulate instructions retired per cycle: VNNI and FMA issue on two ports; the
# vpmaddwd + vpaddd pair costs two vector ops (docs/experiments.md: measured Zen 3 peaks put it at ~0.8x of FMA).
MAC_RATE = {"vnni": 2.0, "fma": 2.0, "pmadd": 1.6}
LOADS_PER_CYCLE = 2.0
STEP_OVERHEAD = 2.0      # table loads, pointer arithmetic and the loop branch of one reduction step
FLUSH_CYCLES = {False: 2.0, True: 1.0}  # per accumulator and flush: into the output tile (convert, load,
                                        # fma, store: store-bound) or into FP32 registers (convert, fma)
# The vpmaddwd ISAs' FPROP and BPROP, as measured on Zen 3 (avx2, ResNet-50 3x3 layers, bits 13):
# vpmaddwd writes a product register that vpaddd then adds, and LLVM hoists the unrolled steps' loads
# and products ahead, so blocks needing more than 11 of the 16 ymm registers spill (kv1 x 7x2: 31-37
# GMAC/s); and broadcasts issue at about one a cycle, so blocks that reuse each broadcast across
# vectors win (kv2 x 3x1: 41-47, kv1 x 2x4: 32-35). With the accumulators pinned (templates/conv.ll.j2)
# blocks of 13 registers (kv2 x 5x1, kv3 x 3x1) no longer spill, but they measured level with kv2 x 4x1
# (0.97-1.03x, paired), so the limit stays at 11. WTGRAD has its own rule (below).
PMADD_TEMPORARIES = 5
SPILL_PENALTY = 1.6
PMADD_LOADS_PER_CYCLE = 1.0
# WTGRAD on the vpmaddwd ISAs, measured on Zen 3 with reduction blocks and pinned accumulators (same
# layers and bits, time relative to kv4 x 2x1 on res2a / res4a_branch2b): a step loads dy vectors
# (two a cycle) and broadcasts x, at a little under one a cycle (kv3 x 3x1: 0.96 / 1.05, kv2 x 5x1:
# 0.94 / 1.16, kv6 x 1x1: 1.55 / 1.17); and blocks that need more than 13 of the 16 registers spill
# (kv2 x 2x3, 15 registers: 46 stack references a step, 1.05 / 1.30; kv5 x 2x1, 16: 1.12 / 1.22).
# Where blocks price alike, the one with the most vectors wins: each broadcast then feeds more MACs.
WTGRAD_VECTOR_LOADS_PER_CYCLE = 2.0
WTGRAD_BROADCASTS_PER_CYCLE = 0.8
WTGRAD_TEMPORARIES = 3
# Items that take all filter blocks of an image before its next output rows (orders "nk", "kn") read
# the whole image once per filter block, from L3 once it outgrows L2; order "np" keeps the rows in
# cache. Measured with vpmaddwd on Zen 3, res2a_branch2b (430 KB a DFP image): "np" 9% faster.
L2_IMAGE_BYTES = 256 * 1024
STREAMING_PENALTY = 1.1
# The vpdpwssd FPROP/BPROP steps (inline assembly, templates/conv.ll.j2) on a 32-register target: the
# loads and broadcasts cost issue slots, so of two blocks with the same accumulators per cycle the one
# with fewer loads per multiply-accumulate wins. Measured on a 2-core AVX-512 VNNI Xeon: loops of
# the steps' instructions with operands in L1 ran at 97% of the probe for kv4 x 6 (10 loads per 24
# vpdpwssd) and kv3 x 8, 86-92% for kv2 x 14 (16 per 28); ResNet-50 3x3 FPROP layers (bits 13, side
# by side with PyTorch as in benchmarks/bench_conv.py) took 0.95-0.97x the time at kv4 x 3x2 than at
# kv2 x 7x2. At this rate kv4 x 3x2 prices below kv2 x 7x2 and kv3 x 8x1.
VNNI_LOADS_PER_CYCLE = 0.9
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
    if not len(plan.call_table):
        return 0.0
    tiles, counts = plan.call_table[:, 0], block_steps(plan.call_table, plan.reduction_blocks)
    step = np.array([t[0] for t in per_tile])[tiles][:, None]
    flush = np.array([t[1] for t in per_tile])[tiles][:, None]
    flushes = np.maximum(1, -(-counts // plan.steps_per_flush))
    streaming = pmadd and plan.blocking.order != "np" and \
        plan.src_batch_stride * np.dtype(plan.storage).itemsize > L2_IMAGE_BYTES
    return float((counts * step + flushes * flush).sum()) * plan.batch * (STREAMING_PENALTY if streaming else 1.0)


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
                     conv_pass: Pass | str = FPROP) -> Blocking:
    """The blocking the cost model ranks best: good speed without tuning."""
    conv_pass = get(conv_pass)
    common(numerics, Blocking(), target, isa_name, spec)  # ISA and policy errors say what is wrong
    best, best_key = None, None
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
        key = (round(predicted_cycles(plan), 6),) + tie
        if best_key is None or key < best_key:
            best, best_key = blocking, key
    if best is None:
        raise PlanError(f"no register blocking fits {spec.describe()} ({conv_pass.name}) on {isa_name}")
    if _pmadd_channel_reduction(get_isa(isa_name), conv_pass):
        best = _pmadd_refined(best, spec, numerics, target, isa_name, conv_pass)
    return best


def _pmadd_refined(shape: Blocking, spec: ConvSpec, numerics: Numerics, target: Target, isa_name: str,
                   conv_pass: Pass) -> Blocking:
    """The best channel block and item order for a vpmaddwd FPROP/BPROP register block.

    Measured on Zen 3 (ResNet-50 3x3 layers, bits 13): channel blocks of 2-4 vectors' worth of pairs
    beat one vector's worth (kv2 x 4x1: 45-54 GMAC/s at cpb 32, u16 against 43 at cpb 8, u8); the
    model prices their steps alike, so ties go to the larger block. Steps of one vector's worth of
    pairs (`STEP_VECTORS`) beat two: cpb 32 u8 against u16, paired, in either order, 1.4-3.6% less
    median time on res2a/res3a/res4a FPROP and res2a/res4a BPROP, though the fastest single calls
    were 0.5-3% slower; u32 was 7.7% slower, u4 level with u16. The smaller step loop holds up
    better while the shared host is in its slow state, which is most of the time. The AVX-512
    vpmaddwd path takes the same rule by analogy (not measured: the AVX-512 machine of 2026-12-03
    timed only the vpdpwssd and FMA kernels)."""
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
