"""Layout conversions as view pairs (dfpgen/codegen/views.py): the pairs of a blocked weight layout cover
every element once, for any channel count (partial blocks) and any source strides."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen.codegen.views import radix_pairs


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
