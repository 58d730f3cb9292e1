"""WTGRAD planner: dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl].

The reduction runs over N x P x Q, the longest of the three passes, so the INT16 pairs are taken
along q: each broadcast element is the pair (x at q, x at q+1) of one input channel, and each vector
element is (dy at q, dy at q+1) for `lanes` output channels.

src = x as pairs [N][pt+H+pb][Wx][C][elem] (element e holds the padded x at column w + e*sw),
vec = dy as pairs [N][KB][P][Qe][lanes][elem], dst = dw [KB][R][S][C][lanes].
A tile is hb filter columns (s) x wb input channels x kv vectors of output channels; one work item
is one tile (every item owns its outputs: threads never race and need no reduction).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from .errors import PlanError
from .plan import Blocking, CallsBuilder, Plan, clip_block, common, finish, split
from .spec import ConvSpec, Numerics
from .target import Target


@dataclass(frozen=True)
class WtgradLayout:
    """Facts dfpgen.layout needs: top/left padding, the pair-expanded width of x, dy's padded element count."""

    top: int
    left: int
    x_width: int
    q_elems: int
    elem: int


def plan(spec: ConvSpec, numerics: Numerics, blocking: Blocking, target: Target, isa_name: str) -> Plan:
    """Plan a WTGRAD kernel."""
    c = common(numerics, blocking, target, isa_name, "wtgrad", spec)
    s, elem, lanes, st = spec, c.elem, c.lanes, spec.sw
    q_elems = ceil(s.Q / elem)
    unroll = blocking.unroll if blocking.unroll is not None else min(8, q_elems)
    if c.chain:
        unroll = min(unroll, c.chain) if blocking.unroll is None else unroll
        if unroll > c.chain:
            raise PlanError(f"unroll={unroll}: a step of {unroll} pair-instructions exceeds the accumulate chain "
                            f"{c.chain} (bits x{numerics.bits_x}/w{numerics.bits_w}, {numerics.overflow})")
    if not 1 <= unroll <= 64:
        raise PlanError(f"unroll={unroll}: must be in 1..64")
    Qe = ceil(q_elems / unroll) * unroll          # dy is zero-padded to whole steps
    KB = ceil(s.K / lanes)
    c = clip_block(c, KB, s.S, s.C)
    kv, hb, wb = c.kv, c.hb, c.wb
    Hp = s.pt + s.H + s.pb
    Wx = (Qe - 1) * elem * st + s.S_extent
    x_c, x_w = elem, s.C * elem
    x_h = Wx * x_w
    x_n = Hp * x_h
    dy_q = lanes * elem
    dy_p = Qe * dy_q
    dy_kb = s.P * dy_p
    dy_n = KB * dy_kb
    out_s = s.C * lanes
    out_r = s.S * out_s
    out_kb = s.R * out_r

    src_steps, vec_steps = [], []
    for n in range(s.N):
        for p in range(s.P):
            for g in range(Qe // unroll):
                src_steps.append(n * x_n + p * s.sh * x_h + g * unroll * elem * st * x_w)
                vec_steps.append(n * dy_n + p * dy_p + g * unroll * dy_q)
    all_steps = (0, len(src_steps))
    builder = CallsBuilder()
    # Rows are the (r, s-block) pairs, so calls run in (vector block, r, s, c) order in one grid.
    rows = [(r, s0, h) for r in range(s.R) for s0, h in split(s.S, hb)]
    builder.grid(split(KB, kv), [(0, h) for _, _, h in rows], split(s.C, wb),
                 src=(0, [r * s.dh * x_h + s0 * s.dw * x_w for r, s0, _ in rows], x_c, 0),
                 vec=(dy_kb, 0, 0, 0), dst=(out_kb, [r * out_r + s0 * out_s for r, s0, _ in rows], lanes, 0),
                 steps=all_steps, item_per_call=True)

    def tile_offsets(h: int, w: int, v: int):
        pixels = [(i, j) for i in range(h) for j in range(w)]
        bcast = tuple(tuple(i * s.dw * x_w + j * x_c + p * elem * st * x_w for i, j in pixels) for p in range(unroll))
        weights = tuple(tuple(vv * dy_kb + p * dy_q for vv in range(v)) for p in range(unroll))
        out = tuple(tuple(vv * out_kb + i * out_s + j * lanes for vv in range(v)) for i, j in pixels)
        return bcast, weights, out

    notes = [f"reduction over N x P x Q = {s.N} x {s.P} x {s.Q} as {len(src_steps)} steps of {unroll} "
             f"{'q-pairs' if elem == 2 else 'columns'}"]
    return finish(spec, numerics, blocking, target, c, "wtgrad", cpb=1, unroll=unroll,
                  in_shape=(s.N, Hp, Wx, s.C, elem), w_shape=(s.N, KB, s.P, Qe, lanes, elem),
                  out_shape=(KB, s.R, s.S, s.C, lanes), layout=WtgradLayout(s.pt, s.pl, Wx, Qe, elem),
                  src_steps=src_steps, vec_steps=vec_steps, tile_offsets=tile_offsets, builder=builder,
                  batch=1, in_batch_stride=0, out_batch_stride=0, notes=notes)
