"""LayerNumerics (dfpgen/core/numerics.py): one numerics type per layer, and the kernel numerics each
pass derives from it through its operand kinds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen import Conv2d, ConvSpec, passes, quantize
from dfpgen.core.dfp import DEFAULT_BITS
from dfpgen.core.numerics import KINDS, Kind, LayerNumerics, Numerics, layer_numerics
from dfpgen.errors import NumericsError

# The operand kinds of each pass, written out here independently of the pass definitions.
KINDS_OF = {"fprop": ("act", "weight"), "bprop": ("grad", "weight"), "wtgrad": ("act", "grad")}


def test_each_pass_reads_the_kinds_its_definition_names():
    for p in passes.ALL:
        assert tuple(t.kind for t in p.operands) == KINDS_OF[p.name]


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 16), bits_w=st.none() | st.integers(2, 16), bits_grad=st.none() | st.integers(2, 16))
def test_kernel_numerics_take_the_bits_of_the_pass_operands(bits, bits_w, bits_grad):
    n = LayerNumerics(bits=bits, bits_w=bits_w, bits_grad=bits_grad)
    own = {"act": bits, "weight": bits if bits_w is None else bits_w, "grad": bits if bits_grad is None else bits_grad}
    for p in passes.ALL:
        src, vec = KINDS_OF[p.name]
        assert n.kernel_numerics(p) == Numerics(own[src], own[vec], "nearest", "exact", None)


def test_the_default_is_the_papers_14_bits_with_exact_chains_of_16():
    # LIBXSMM's int16 quantizer (add_shift=2) kept two bits of headroom in the 16-bit word; with them the
    # longest chain that cannot overflow INT32 is (2**31 - 1) // (2 * 8191**2) = 16 pair-instructions.
    n = LayerNumerics()
    assert n.bits == DEFAULT_BITS == 14 and (n.overflow, n.chain, n.precision) == ("exact", None, "dfp16")
    assert [n.bits_of(k) for k in KINDS] == [14, 14, 14]
    for p in passes.ALL:
        k = n.kernel_numerics(p)
        assert (k.bits_x, k.bits_w, k.effective_chain) == (14, 14, (2**31 - 1) // (2 * 8191**2)) == (14, 14, 16)
    assert Numerics() == n.kernel_numerics(passes.FPROP)   # compile(spec)'s default kernel is Conv2d(spec)'s
    q = quantize(np.array([3.0, -1.0, 0.5]))
    assert q.bits == 14 and int(np.abs(q.mant).max()) <= 8191
    assert layer_numerics().bits == 14 and layer_numerics(bits=None).bits == 14   # None keywords: the default


@pytest.mark.parametrize("bits", range(2, 17))
def test_every_width_stays_selectable(bits):
    n = LayerNumerics(bits=bits)
    assert n.bits == bits and n.kernel_numerics(passes.FPROP) == Numerics(bits, bits)
    assert Numerics(bits, bits).effective_chain == (2**31 - 1) // (2 * (2 ** (bits - 1) - 1) ** 2)


@pytest.mark.parametrize("bits", [1, 17, 0])
def test_a_width_off_the_word_names_the_field_and_the_range(bits):
    for field in ("bits", "bits_w", "bits_grad"):
        with pytest.raises(NumericsError, match=rf"^{field}={bits}: must be an integer in 2\.\.16$"):
            LayerNumerics(**{field: bits})


def test_rounding_per_kind():
    n = LayerNumerics(rounding="nearest_even", grad_rounding="stochastic")
    assert [n.rounding_of(k) for k in KINDS] == ["nearest_even", "nearest_even", "stochastic"]
    assert LayerNumerics(rounding="chop").rounding_of("grad") == "chop"


def test_kinds_compare_equal_to_their_names():
    assert Kind.ACT == "act" and Kind("grad") is Kind.GRAD
    assert LayerNumerics(dfp=("weight", "act")).dfp == (Kind.ACT, Kind.WEIGHT)   # canonical order


def test_numpy_integers_are_accepted_as_bits_and_chain():
    n = LayerNumerics(bits=np.int64(13), bits_w=np.int16(12), chain=np.int32(8))
    assert (n.bits, n.bits_w, n.chain) == (13, 12, 8) and type(n.bits) is int and type(n.chain) is int
    assert type(Numerics(13, 13, chain=np.int64(4)).chain) is int


@pytest.mark.parametrize("bad,field", [
    (dict(precision="bf16"), "precision"), (dict(dfp=("act", "bias")), "dfp"), (dict(dfp="act"), "dfp"),
    (dict(rounding="up"), "rounding"), (dict(grad_rounding="up"), "grad_rounding"), (dict(overflow="clip"), "overflow"),
    (dict(bits=1), "bits"), (dict(bits_w=17), "bits_w"), (dict(bits_grad=2.5), "bits_grad"), (dict(chain=0), "chain"),
    (dict(chain=True), "chain"), (dict(overflow="wrap"), "overflow"), (dict(dfp=None), "dfp"), (dict(dfp=3), "dfp"), (dict(rounding=None), "rounding")])
def test_bad_numerics_name_the_field(bad, field):
    with pytest.raises(NumericsError, match=f"^{field}|{field}="):
        LayerNumerics(**bad)


def test_a_chain_too_long_for_one_pass_is_reported_when_a_layer_is_built():
    # 16-bit weights and gradients, 8-bit activations: FPROP's bound is longer than BPROP's.
    numerics = LayerNumerics(bits=8, bits_w=16, bits_grad=16, chain=Numerics(8, 16).safe_chain)
    assert numerics.kernel_numerics(passes.FPROP).chain == Numerics(8, 16).safe_chain
    with pytest.raises(NumericsError, match=r"chain=\d+: overflow='exact' allows at most safe_chain\(16, 16\)"):
        passes.kernel_numerics(numerics)
    with pytest.raises(NumericsError, match="chain"):
        Conv2d(ConvSpec(1, 4, 4, 5, 5, 3, 3), numerics=numerics, eager=False)
    fp32_grads = numerics.with_(dfp=("act", "weight"))   # BPROP and WTGRAD then run in FP32 kernels
    assert set(passes.kernel_numerics(fp32_grads)) == {passes.FPROP}


def test_mixed_layers_run_fp32_passes_where_a_kind_is_fp32():
    n = LayerNumerics(dfp=("act", "weight"))
    assert [n.pass_precision(p) for p in passes.ALL] == ["dfp16", "fp32", "fp32"]
    assert all(LayerNumerics.fp32().pass_precision(p) == "fp32" for p in passes.ALL)


def test_arguments_rebuild_the_numerics():
    for n in (LayerNumerics(), LayerNumerics(bits=13, grad_rounding="stochastic"), LayerNumerics.fp32(),
              LayerNumerics(bits=12, bits_w=10, dfp=("act", "weight"), overflow="saturate", chain=300)):
        assert eval(f"LayerNumerics({n.arguments()})") == n
    assert LayerNumerics(bits=13, grad_rounding="stochastic").arguments() == "bits=13, grad_rounding='stochastic'"
