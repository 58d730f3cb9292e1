"""Generated max pooling (dfpgen/codegen/maxpool.py, dfpgen/runtime/pooling.py) against a loop reference
written from the definition, and against the numpy pooling of dfpgen/nn/pooling.py bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen.codegen import maxpool
from dfpgen.codegen.layout import aligned_empty
from dfpgen.errors import DTypeError, PlanError, ShapeError
from dfpgen.nn import MaxPool
from dfpgen.nn.pooling import _extents
from dfpgen.runtime.blocked import Blocked
from dfpgen.runtime.pointwise import host_lanes
from dfpgen.runtime.pooling import maxpool_backward, maxpool_forward


def blocked_array(values: np.ndarray) -> np.ndarray:
    out = aligned_empty(values.shape, np.float32)
    out[...] = values
    return out


def reference(x: np.ndarray, dy_of, k: int, stride: int, pad: int, P: int, Q: int):
    """Max pooling by its definition, one window at a time in float64: the first maximum in offset order
    (r*k + s) over the positions inside the input wins; dx sums, per input element in offset order, dy of
    the windows that chose it. `dy_of(y)` gives dy for the pooled y."""
    N, CB, H, W, L = x.shape
    y = np.full((N, CB, P, Q, L), -np.inf)
    choice = np.full(y.shape, maxpool.NONE, np.uint8)
    for n, c, p, q, lane in np.ndindex(*y.shape):
        for r in range(k):
            for s in range(k):
                h, w = p * stride - pad + r, q * stride - pad + s
                if 0 <= h < H and 0 <= w < W:
                    v = x[n, c, h, w, lane]
                    if choice[n, c, p, q, lane] == maxpool.NONE or v > y[n, c, p, q, lane]:
                        y[n, c, p, q, lane], choice[n, c, p, q, lane] = v, r * k + s
    dy = dy_of(y)
    dx = np.zeros(x.shape, np.float32)
    for n, c, h, w, lane in np.ndindex(*x.shape):
        total = np.float32(0)
        for r in range(k):
            for s in range(k):
                hp, wq = h + pad - r, w + pad - s
                if hp % stride or wq % stride:
                    continue
                p, q = hp // stride, wq // stride
                if 0 <= p < P and 0 <= q < Q and choice[n, c, p, q, lane] == r * k + s:
                    total = np.float32(total + dy[n, c, p, q, lane])
        dx[n, c, h, w, lane] = total
    return y.astype(np.float32), choice, dy, dx


@st.composite
def pools(draw):
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k))
    ceil = draw(st.booleans())
    H, W = draw(st.integers(max(1, k - 2 * pad), 9)), draw(st.integers(max(1, k - 2 * pad), 9))
    lanes = draw(st.sampled_from(host_lanes()))
    return k, stride, pad, ceil, draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W, lanes, draw(st.integers(0, 2**31))


@settings(max_examples=40, deadline=None)
@given(pools())
def test_matches_the_definition_with_ties(case):
    k, stride, pad, ceil, N, CB, H, W, lanes, seed = case
    rng = np.random.default_rng(seed)
    P, Q, _, _ = _extents(H, W, k, stride, pad, ceil)
    x = blocked_array(rng.integers(-2, 3, (N, CB, H, W, lanes)))   # few values: many ties
    y, choice, maxabs = maxpool_forward(x, k, stride, pad, P, Q, threads=2)
    ref_y, ref_choice, dy, ref_dx = reference(x, lambda yy: blocked_array(rng.standard_normal(yy.shape)), k, stride,
                                              pad, P, Q)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(choice, ref_choice)
    assert maxabs == np.abs(ref_y).max()
    dx, dx_max = maxpool_backward(dy, choice, k, stride, pad, H, W, threads=2)
    np.testing.assert_array_equal(dx, ref_dx)
    assert dx_max == np.abs(ref_dx).max()


@pytest.mark.parametrize("k,stride,pad,ceil,H,W", [(3, 2, 1, False, 112, 112), (3, 2, 0, True, 15, 15),
                                                  (3, 1, 1, False, 7, 7), (2, 2, 1, True, 5, 5)])
def test_same_bits_as_the_numpy_pooling(k, stride, pad, ceil, H, W):
    """The layer on a Blocked tensor (generated) and on the same array (numpy), forward and backward."""
    rng = np.random.default_rng(k * 100 + H)
    lanes = host_lanes()[0]
    x = blocked_array(rng.standard_normal((2, 2, H, W, lanes)) * 3)
    x[0, 0, :2, :2] = 1.5   # a tie
    generated, numpy_pool = MaxPool("g", k, stride, pad, ceil), MaxPool("n", k, stride, pad, ceil)
    y = generated.forward(Blocked(x, 2 * lanes, None))
    ref = numpy_pool.forward(np.array(x))
    np.testing.assert_array_equal(y.data, ref)
    np.testing.assert_array_equal(generated.choice, numpy_pool.choice)
    dy = blocked_array(rng.standard_normal(ref.shape))
    dx = generated.backward(Blocked(dy, 2 * lanes, None))
    np.testing.assert_array_equal(dx.data, numpy_pool.backward(np.array(dy)))
    assert dx.maxabs == np.abs(dx.data).max()


def test_nan_wins_and_stays():
    lanes = host_lanes()[0]
    x = blocked_array(np.zeros((1, 1, 4, 4, lanes)))
    x[0, 0, 1, 1, 0], x[0, 0, 0, 0, 0], x[0, 0, 1, 0, 0] = np.nan, 5.0, 9.0
    y, choice, maxabs = maxpool_forward(x, 2, 2, 0, 2, 2, threads=1)
    assert np.isnan(y[0, 0, 0, 0, 0]) and choice[0, 0, 0, 0, 0] == 3 and math.isnan(maxabs)
    assert y[0, 0, 0, 0, 1] == 0 and choice[0, 0, 0, 0, 1] == 0


def test_window_in_padding_only_chooses_none_and_passes_no_gradient():
    lanes = host_lanes()[0]
    x = blocked_array(np.ones((1, 1, 1, 1, lanes)))
    y, choice, _ = maxpool_forward(x, 2, 1, 2, 4, 4, threads=1)   # pad 2 > k - 1: corner windows see no input
    assert y[0, 0, 0, 0, 0] == -np.inf and choice[0, 0, 0, 0, 0] == maxpool.NONE
    assert choice[0, 0, 1, 1, 0] == 3
    dx, _ = maxpool_backward(blocked_array(np.ones(y.shape)), choice, 2, 1, 2, 1, 1, threads=1)
    assert dx[0, 0, 0, 0, 0] == 4   # the four windows that hold the only input element


def test_thread_count_does_not_change_bits():
    lanes = host_lanes()[0]
    x = blocked_array(np.random.default_rng(3).standard_normal((3, 5, 17, 13, lanes)))
    results = [maxpool_forward(x, 3, 2, 1, 9, 7, threads=t) for t in (1, 2, 3, 7)]
    for y, choice, m in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(choice, results[0][1])
        assert m == results[0][2]
    dy = blocked_array(np.random.default_rng(4).standard_normal(results[0][0].shape))
    grads = [maxpool_backward(dy, results[0][1], 3, 2, 1, 17, 13, threads=t)[0] for t in (1, 2, 5)]
    for dx in grads[1:]:
        np.testing.assert_array_equal(dx, grads[0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(direction="sideways"), "direction 'sideways'"), (dict(k=0), "k=0"), (dict(k=16), "k=16"),
    (dict(stride=0), "stride=0"), (dict(pad=-1), "pad=-1")])
def test_plan_rejects_bad_windows(kwargs, message):
    args = dict(direction="forward", k=3, stride=2, pad=1) | kwargs
    with pytest.raises(PlanError, match=message):
        maxpool.plan(**args)


def test_runtime_rejects_bad_arguments():
    lanes = host_lanes()[0]
    x = blocked_array(np.zeros((1, 1, 4, 4, lanes)))
    with pytest.raises(ShapeError, match="x: shape"):
        maxpool_forward(np.zeros((4, 4), np.float32), 2, 2, 0, 2, 2)
    with pytest.raises(ShapeError, match="lanes"):
        maxpool_forward(blocked_array(np.zeros((1, 1, 4, 4, 3))), 2, 2, 0, 2, 2)
    with pytest.raises(ShapeError, match="output 0x2"):
        maxpool_forward(x, 2, 2, 0, 0, 2)
    y, choice, _ = maxpool_forward(x, 2, 2, 0, 2, 2)
    with pytest.raises(DTypeError, match="choice: int64"):
        maxpool_backward(y, choice.astype(np.int64), 2, 2, 0, 4, 4)


def test_ir_names_the_window_and_unrolls_its_offsets():
    p = maxpool.plan("forward", 3, 2, 1, isa="avx2")
    ir = maxpool.render(p)
    assert "3x3 window, stride 2, pad 1, 8 lanes" in ir
    assert ir.count("; offset ") == 9 and "<8 x float>" in ir
    back = maxpool.render(maxpool.plan("backward", 2, 2, 0, isa="avx2"))
    assert back.count("; offset ") == 4 and "sdiv i64" in back
