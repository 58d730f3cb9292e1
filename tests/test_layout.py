"""Blocked layouts (dfpgen/codegen/layout.py) against explicit index formulas (docs/architecture.md "Layouts").

Input  blocked[n, cb, h+pad, w+pad, p*elem + e]   == x[n, (cb*cpb + p)*elem + e, h, w], zero elsewhere
Weight blocked[kb, cb, r, s, p, l, e]             == w[kb*lanes + l, (cb*cpb + p)*elem + e, r, s], zero elsewhere
Output y[n, kb*lanes + l, p, q]                   == blocked[n, kb, p, q, l] for kb*lanes + l < K
"""

from __future__ import annotations

import numpy as np
import pytest

from dfpgen import Blocking, Conv2d, ConvSpec, DFPTensor, Numerics
from dfpgen.codegen.layout import ALIGNMENT, aligned_empty, aligned_zeros, block_input, block_weights, unblock_output
from dfpgen.core.target import ISAS, host, named
from dfpgen.passes import make_plan

import oracle_fprop as ref

EMIT = named("sapphirerapids")          # has every ISA: layouts need a plan, never a runnable kernel
HOST = host()

SPECS = [ConvSpec(1, 1, 1, 1, 1, 1, 1), ConvSpec(2, 3, 5, 4, 6, 3, 3, 1, 1), ConvSpec(1, 17, 33, 5, 3, 2, 1, 2, 2),
         ConvSpec(3, 32, 16, 3, 3, 3, 3, 1, 0), ConvSpec(1, 100, 17, 2, 7, 1, 3, 1, 3),
         ConvSpec(2, 33, 8, 6, 5, 3, 2, 2, 0)]
CPBS = [None, 1, 3, 16, 7]
# The ISAs whose operands are plain INT16 or FP32 arrays (the INT8 ones are checked in tests/test_int8.py).
WIDE_ISAS = EMIT.isas("dfp16") + EMIT.isas("fp32")


def _plan(spec, isa, cpb):
    return make_plan(spec, Numerics(), Blocking(kv=1, wb=1, hb=1, cpb=cpb, unroll=1), EMIT, isa)


def _id(spec):
    return "N{}C{}K{}_{}x{}_r{}s{}_st{}p{}".format(*spec.shape_key())


def _values(rng, shape, storage):
    if storage == "int16":
        return rng.integers(-32767, 32768, size=shape).astype(np.int16)
    return rng.standard_normal(shape).astype(np.float32)


def _check_buffer(a: np.ndarray, shape, dtype):
    assert a.shape == tuple(shape) and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous
    assert a.ctypes.data % ALIGNMENT == 0 and ALIGNMENT == 64


@pytest.mark.parametrize("cpb", CPBS)
@pytest.mark.parametrize("isa", WIDE_ISAS)
@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_block_input_formula(spec, isa, cpb):
    plan = _plan(spec, isa, cpb)
    elem, cpb_ = plan.elem, plan.cpb
    assert elem == (2 if ISAS[isa].precision == "dfp16" else 1)
    CB = -(-spec.C // (cpb_ * elem))
    assert plan.src_shape == (spec.N, CB, spec.H + 2 * spec.pad, spec.W + 2 * spec.pad, cpb_ * elem)
    x = _values(np.random.default_rng(1), (spec.N, spec.C, spec.H, spec.W), plan.storage)
    b = block_input(x, plan)
    _check_buffer(b, plan.src_shape, plan.storage)
    want = np.zeros(plan.src_shape, plan.storage)
    p0 = spec.pad
    for c in range(spec.C):
        cb, rem = divmod(c, cpb_ * elem)                    # rem = p*elem + e
        want[:, cb, p0:p0 + spec.H, p0:p0 + spec.W, rem] = x[:, c]
    np.testing.assert_array_equal(b, want)
    # spot-check the formula written out element by element
    rng = np.random.default_rng(2)
    for _ in range(50):
        n, c, h, w = (int(rng.integers(d)) for d in x.shape)
        e, p = c % elem, (c // elem) % cpb_
        cb = c // elem // cpb_
        assert b[n, cb, h + p0, w + p0, p * elem + e] == x[n, (cb * cpb_ + p) * elem + e, h, w]
    # padding (spatial border, padded channels) is zero, and the data round-trips back
    inner = b[:, :, p0:p0 + spec.H, p0:p0 + spec.W, :]
    assert np.count_nonzero(b) == np.count_nonzero(inner)
    back = inner.transpose(0, 1, 4, 2, 3).reshape(spec.N, -1, spec.H, spec.W)
    np.testing.assert_array_equal(back[:, :spec.C], x)
    assert not back[:, spec.C:].any()


@pytest.mark.parametrize("cpb", CPBS)
@pytest.mark.parametrize("isa", WIDE_ISAS)
@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_block_weights_formula(spec, isa, cpb):
    plan = _plan(spec, isa, cpb)
    elem, cpb_, lanes = plan.elem, plan.cpb, plan.lanes
    KB, CB = -(-spec.K // lanes), -(-spec.C // (cpb_ * elem))
    assert plan.vec_shape == (KB, CB, spec.R, spec.S, cpb_, lanes, elem)
    w = _values(np.random.default_rng(3), (spec.K, spec.C, spec.R, spec.S), plan.storage)
    b = block_weights(w, plan)
    _check_buffer(b, plan.vec_shape, plan.storage)
    want = np.zeros(plan.vec_shape, plan.storage)
    for k in range(spec.K):
        kb, l = divmod(k, lanes)
        for c in range(spec.C):
            cb, rem = divmod(c, cpb_ * elem)
            p, e = divmod(rem, elem)
            want[kb, cb, :, :, p, l, e] = w[k, c]
    np.testing.assert_array_equal(b, want)
    back = b.transpose(0, 5, 1, 4, 6, 2, 3).reshape(KB * lanes, CB * cpb_ * elem, spec.R, spec.S)
    np.testing.assert_array_equal(back[:spec.K, :spec.C], w)
    assert not back[spec.K:].any() and not back[:, spec.C:].any()


@pytest.mark.parametrize("isa", WIDE_ISAS)
@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_unblock_output_formula(spec, isa):
    plan = _plan(spec, isa, None)
    lanes = plan.lanes
    KB = -(-spec.K // lanes)
    assert plan.dst_shape == (spec.N, KB, spec.P, spec.Q, lanes)
    out = aligned_empty(plan.dst_shape, np.float32)
    out[...] = np.random.default_rng(4).standard_normal(plan.dst_shape)
    y = unblock_output(out, plan)
    assert y.shape == (spec.N, spec.K, spec.P, spec.Q) and y.dtype == np.float32 and y.flags.c_contiguous
    for k in range(spec.K):
        np.testing.assert_array_equal(y[:, k], out[:, k // lanes, :, :, k % lanes])


@pytest.mark.parametrize("shape", [(1,), (3, 5), (7, 3, 2), (2, 3, 4, 5, 6), (1, 1, 1, 1, 1), (4099,)])
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.int32, np.uint8, np.float64])
def test_aligned_buffers(shape, dtype):
    for _ in range(4):           # several allocations: the alignment must not be luck
        z = aligned_zeros(shape, dtype)
        _check_buffer(z, shape, dtype)
        assert not z.any()
        e = aligned_empty(shape, dtype)
        _check_buffer(e, shape, dtype)


@pytest.mark.parametrize("isa", HOST.isas("dfp16") + HOST.isas("fp32"))
@pytest.mark.parametrize("spec", [ConvSpec(2, 37, 37, 5, 7, 1, 1), ConvSpec(1, 3, 3, 4, 4, 1, 1),
                                  ConvSpec(1, 20, 20, 3, 9, 1, 1, 1, 2)], ids=_id)
def test_identity_conv_round_trips(spec, isa):
    """block_input -> kernel (1x1 conv with identity weights) -> unblock_output gives back x: the three
    layouts agree with each other and with the kernel."""
    precision = ISAS[isa].precision
    rng = np.random.default_rng(5)
    xm = ref.random_mant(rng, (spec.N, spec.C, spec.H, spec.W), 32767)
    eye = np.eye(spec.K, spec.C, dtype=np.int16).reshape(spec.K, spec.C, 1, 1)
    op = Conv2d(spec, bits=16, isa=isa, threads=2, precision=precision)   # full-range 16-bit mantissas
    y = op.fprop(DFPTensor(xm, 0), DFPTensor(eye, 0))
    want = np.zeros((spec.N, spec.K, spec.P, spec.Q), np.float32)
    p = spec.pad
    want[:, :, p:p + spec.H, p:p + spec.W] = xm
    np.testing.assert_array_equal(y, want)
