"""Layout conversions as view pairs (dfpgen/codegen/views.py): the pairs of a blocked weight layout cover
every element once, for any channel count (partial blocks) and any source strides; WTGRAD's x layout is
filled wherever its kernel reads and only there."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen import passes
from dfpgen.codegen.layout import expand_input_pairs
from dfpgen.codegen.views import radix_pairs
from dfpgen.core.dfp import quantize_with_exp
from dfpgen.core.spec import ConvSpec
from dfpgen.runtime.blocked import Measured
from dfpgen.runtime.blocked_conv import convert_operand
from dfpgen.runtime.conv import Conv2d

from strategies import HOST_INT8, INT8_ISAS, general_specs


def _moved(plain: np.ndarray, blocked_shape: tuple, order: tuple, digits: tuple) -> np.ndarray:
    """A zeroed blocked array filled through radix_pairs, viewed with plain's axes expanded to digits."""
    blocked = np.zeros(blocked_shape, np.float32)
    view = blocked.transpose(order)
    for src, dst in radix_pairs(plain, view, digits):
        assert src.shape == dst.shape
        assert np.all(dst == 0), "an element is written twice"
        dst[...] = src
    return view


@settings(max_examples=60, deadline=None)
@given(K=st.integers(1, 40), C=st.integers(1, 40), lanes=st.sampled_from([4, 8, 16]), cpb=st.integers(1, 3),
       channels_last=st.booleans())
def test_fprop_weight_pairs_cover_every_element_once(K, C, lanes, cpb, channels_last):
    """FPROP's [KB][CB][R][S][cpb][lanes][2] from KCRS weights (or KRSC memory, a channels-last tensor):
    every weight lands at channel (kb*lanes + l, (cb*cpb + j)*2 + e); padding stays zero."""
    R, S, elem = 2, 3, 2
    w = np.arange(1, K * C * R * S + 1, dtype=np.float32).reshape(K, C, R, S)
    if channels_last:
        w = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    KB, CB = -(-K // lanes), -(-C // (cpb * elem))
    view = _moved(w, (KB, CB, R, S, cpb, lanes, elem), (0, 5, 1, 4, 6, 2, 3), (2, 3, 1, 1))
    padded = np.zeros((KB * lanes, CB * cpb * elem, R, S), np.float32)
    padded[:K, :C] = w
    np.testing.assert_array_equal(view.reshape(padded.shape), padded)


@pytest.mark.parametrize("K, C", [(1000, 2048), (3, 5), (64, 3)])
def test_weight_gradient_pairs_fill_kcrs_from_the_blocked_result(K, C):
    """WTGRAD's [KB][R][S][C][lanes] result into KCRS: the blocked side is the source (plain_first=False)."""
    lanes, R, S = 16, 1, 1
    KB = -(-K // lanes)
    dw = np.arange(1, KB * R * S * C * lanes + 1, dtype=np.float32).reshape(KB, R, S, C, lanes)
    kcrs = np.zeros((K, C, R, S), np.float32)
    for src, dst in radix_pairs(kcrs, dw.transpose(0, 4, 3, 1, 2), (2, 1, 1, 1), plain_first=False):
        dst[...] = src
    want = dw.transpose(0, 4, 3, 1, 2).reshape(KB * lanes, C, R, S)[:K]
    np.testing.assert_array_equal(kcrs, want)


def _wtgrad_src_through_views(spec: ConvSpec, isa: str | None = None):
    """WTGRAD's x layout as the blocked runtime fills it, the numpy layout of the same mantissas, the plan and
    the elements the conversion moved."""
    op = Conv2d(spec, bits=8 if isa in INT8_ISAS else None, isa=isa, threads=1, eager=False)
    x = np.random.default_rng(0).standard_normal((spec.N, spec.C, spec.H, spec.W)).astype(np.float32)
    filled, exp = convert_operand(op, passes.WTGRAD, "src", Measured(x), None)
    plan = op.kernel(passes.WTGRAD).plan
    full = expand_input_pairs(quantize_with_exp(x, exp, op.numerics.bits_of("act")).mant, plan)
    moved = sum(step.size for program in op.move_programs.values() if program for step in program.steps)
    return filled, full, plan, moved


def _read_by_definition(spec: ConvSpec, elem: int) -> tuple:
    """Index arrays (row, column, element) of the pair-expanded x that dw's definition reads: for output (p, q)
    and tap (r, s), padded x (p*sh + r*dh, q*sw + s*dw), which column (q // elem)*elem*sw + s*dw holds as
    element q % elem."""
    p, q, r, s = np.ix_(range(spec.P), range(spec.Q), range(spec.R), range(spec.S))
    rows = p * spec.sh + r * spec.dh
    columns = (q // elem) * elem * spec.sw + s * spec.dw
    return np.broadcast_arrays(rows, columns, q % elem + 0 * rows)


@settings(max_examples=40, deadline=None)
@given(spec=general_specs(max_size=14, groups=(1,)))
def test_wtgrad_x_views_fill_every_element_the_definition_reads(spec):
    """The blocked runtime skips rows and columns of WTGRAD's x layout that its kernel never reads; every element
    that dw's definition reads equals the numpy layout's (which fills everything)."""
    filled, full, plan, _ = _wtgrad_src_through_views(spec)
    rows, columns, elements = _read_by_definition(spec, plan.src_shape[4])
    np.testing.assert_array_equal(filled[:, rows, columns, :, elements], full[:, rows, columns, :, elements])


@pytest.mark.parametrize("isa", [None] + HOST_INT8[:1])
def test_a_strided_1x1_layer_moves_only_the_x_it_reads(isa):
    """ResNet-50 v1's downsampling 1x1 at stride 2 reads every other row and column of x: a quarter is moved."""
    spec = ConvSpec(2, 32, 16, 16, 16, 1, 1, 2, 0)
    filled, full, plan, moved = _wtgrad_src_through_views(spec, isa)
    rows, columns, elements = _read_by_definition(spec, plan.src_shape[4])
    np.testing.assert_array_equal(filled[:, rows, columns, :, elements], full[:, rows, columns, :, elements])
    assert moved == spec.N * spec.C * spec.P * spec.Q
