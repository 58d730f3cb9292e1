"""ConvSpec shape arithmetic and validation; Numerics policy validation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen import passes
from dfpgen.codegen.plan import Blocking
from dfpgen.core import catalog
from dfpgen.core.numerics import LayerNumerics, Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import DFPGenError, NumericsError, SpecError
from dfpgen.runtime.conv import Conv2d

FIELDS = ("N", "C", "K", "H", "W", "R", "S", "stride")
MODES = ("nearest", "nearest_even", "stochastic", "biased", "chop")
POLICIES = ("exact", "saturate", "wrap")
INT32_MAX = 2**31 - 1


def ref_safe_chain(bits_a: int, bits_b: int) -> int:
    worst = 2 * (2 ** (bits_a - 1) - 1) * (2 ** (bits_b - 1) - 1)
    L = 1
    while (L + 1) * worst <= INT32_MAX:  # grow geometrically, then refine: the largest L that fits
        L *= 2
    lo, hi = L // 2, L
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mid * worst <= INT32_MAX:
            lo = mid
        else:
            hi = mid - 1
    return lo


def out_positions(size: int, kernel: int, stride: int, pad: int) -> int:
    """Count the kernel placements on the padded axis by enumeration."""
    return sum(1 for start in range(0, size + 2 * pad) if start % stride == 0 and start + kernel <= size + 2 * pad)


# ---------------------------------------------------------------------------------------------
# ConvSpec
# ---------------------------------------------------------------------------------------------

@st.composite
def conv_specs(draw):
    H, W = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pad = draw(st.integers(0, 4))
    R = draw(st.integers(1, H + 2 * pad))
    S = draw(st.integers(1, W + 2 * pad))
    return ConvSpec(N=draw(st.integers(1, 64)), C=draw(st.integers(1, 512)), K=draw(st.integers(1, 512)),
                    H=H, W=W, R=R, S=S, stride=draw(st.integers(1, 5)), pad=pad,
                    name=draw(st.sampled_from(("", "conv1", "res2a_branch2b"))))


@settings(max_examples=300, deadline=None)
@given(spec=conv_specs())
def test_conv_output_shape_and_macs(spec):
    P = out_positions(spec.H, spec.R, spec.stride, spec.pad)
    Q = out_positions(spec.W, spec.S, spec.stride, spec.pad)
    assert spec.P == P == (spec.H + 2 * spec.pad - spec.R) // spec.stride + 1
    assert spec.Q == Q == (spec.W + 2 * spec.pad - spec.S) // spec.stride + 1
    assert spec.P >= 1 and spec.Q >= 1
    assert spec.macs_per_image == spec.K * spec.C * spec.R * spec.S * P * Q
    assert spec.macs == spec.N * spec.K * spec.C * spec.R * spec.S * P * Q
    other = spec.with_batch(spec.N + 3)
    assert other.N == spec.N + 3 and other.macs_per_image == spec.macs_per_image
    assert other.macs == (spec.N + 3) * spec.macs_per_image
    assert spec.shape_key() == (spec.N, spec.C, spec.K, spec.H, spec.W, spec.R, spec.S, spec.stride, spec.pad)
    assert f"{spec.P}x{spec.Q}" in spec.describe()


def test_conv_known_layers():
    conv1 = ConvSpec(N=1, C=3, K=64, H=224, W=224, R=7, S=7, stride=2, pad=3, name="conv1")
    assert (conv1.P, conv1.Q) == (112, 112)
    assert conv1.macs == 64 * 3 * 7 * 7 * 112 * 112 == 118_013_952
    same = ConvSpec(N=2, C=64, K=64, H=56, W=56, R=3, S=3, stride=1, pad=1)
    assert (same.P, same.Q) == (56, 56) and same.macs == 2 * 64 * 64 * 9 * 56 * 56
    fc = ConvSpec(N=8, C=2048, K=1000, H=1, W=1, R=1, S=1)
    assert (fc.P, fc.Q) == (1, 1) and fc.macs == 8 * 2048 * 1000
    rect = ConvSpec(N=1, C=1, K=1, H=10, W=7, R=3, S=2, stride=3, pad=0)
    assert (rect.P, rect.Q) == (3, 2)


def test_conv_name_not_in_key_and_frozen():
    a = ConvSpec(1, 2, 3, 8, 8, 3, 3, name="a")
    b = ConvSpec(1, 2, 3, 8, 8, 3, 3, name="b")
    assert a.shape_key() == b.shape_key()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.N = 4  # type: ignore[misc]


BASE = dict(N=1, C=4, K=8, H=6, W=6, R=3, S=3, stride=1, pad=0)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("bad", (0, -1, 1.5, 2.0, True, "3", None))
def test_conv_invalid_positive_fields(field, bad):
    with pytest.raises(SpecError, match=f"{field}=") as info:
        ConvSpec(**{**BASE, field: bad})
    assert isinstance(info.value, DFPGenError)
    with pytest.raises(SpecError, match=f"layer 'conv9'.*{field}="):
        ConvSpec(**{**BASE, field: bad, "name": "conv9"})


@pytest.mark.parametrize("bad", (-1, 1.0, True, "0", None))
def test_conv_invalid_pad(bad):
    with pytest.raises(SpecError, match="pad="):
        ConvSpec(**{**BASE, "pad": bad})


def test_conv_kernel_larger_than_padded_input():
    ConvSpec(**{**BASE, "R": 6, "S": 6})
    ConvSpec(**{**BASE, "R": 8, "S": 8, "pad": 1})
    with pytest.raises(SpecError, match="R=7"):
        ConvSpec(**{**BASE, "R": 7})
    with pytest.raises(SpecError, match="S=9"):
        ConvSpec(**{**BASE, "S": 9, "pad": 1})
    with pytest.raises(SpecError, match="R="):
        ConvSpec(**{**BASE, "H": 2, "R": 3})


def test_conv_with_batch_validates():
    spec = ConvSpec(**BASE)
    with pytest.raises(SpecError, match="N="):
        spec.with_batch(0)


# ---------------------------------------------------------------------------------------------
# Numerics
# ---------------------------------------------------------------------------------------------

def test_ref_safe_chain_table():
    assert [ref_safe_chain(b, b) for b in (16, 15, 14, 13, 12, 8)] == [1, 4, 16, 64, 256, 66572]


def test_numerics_defaults():
    # The paper's 14-bit mantissas (two bits of headroom in the word): exact chains of 16 pair-instructions,
    # the same default as LayerNumerics, so compile(spec) builds the kernel Conv2d(spec) runs.
    n = Numerics()
    assert (n.bits_x, n.bits_w, n.rounding, n.overflow, n.chain) == (14, 14, "nearest", "exact", None)
    assert n.safe_chain == n.effective_chain == ref_safe_chain(14, 14) == 16
    assert n.key() == (14, 14, "nearest", "exact", 16)
    assert LayerNumerics().kernel_numerics(passes.FPROP) == n
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.chain = 3  # type: ignore[misc]


@pytest.mark.parametrize("bits_x", range(2, 17))
def test_numerics_default_chain_is_safe_chain(bits_x):
    for bits_w in range(2, 17):
        n = Numerics(bits_x=bits_x, bits_w=bits_w)
        want = ref_safe_chain(bits_x, bits_w)
        assert n.safe_chain == want and n.effective_chain == want
        assert n.key()[-1] == want
        Numerics(bits_x=bits_x, bits_w=bits_w, chain=want)  # the bound itself is allowed under exact
        with pytest.raises(NumericsError, match="chain"):
            Numerics(bits_x=bits_x, bits_w=bits_w, chain=want + 1)
        for policy in ("saturate", "wrap"):  # past the bound only with a non-exact policy
            n = Numerics(bits_x=bits_x, bits_w=bits_w, overflow=policy, chain=want + 1)
            assert n.effective_chain == want + 1 and n.key()[-1] == want + 1


def test_numerics_exact_chain_error_names_bound():
    with pytest.raises(NumericsError) as info:
        Numerics(bits_x=12, bits_w=12, chain=257)
    msg = str(info.value)
    assert "chain=257" in msg and "256" in msg
    assert isinstance(info.value, DFPGenError)


def test_numerics_wrap_needs_explicit_chain():
    with pytest.raises(NumericsError, match="chain"):
        Numerics(overflow="wrap")
    assert Numerics(overflow="wrap", chain=64).effective_chain == 64
    assert Numerics(overflow="saturate").effective_chain == 16  # saturate defaults to the safe chain (14 bits)
    assert Numerics(16, 16, overflow="saturate").effective_chain == 1


@pytest.mark.parametrize("policy", ("clamp", "Exact", "", None, "saturating"))
def test_numerics_unknown_overflow(policy):
    with pytest.raises(NumericsError, match="overflow") as info:
        Numerics(overflow=policy)
    for name in POLICIES:
        assert name in str(info.value)


@pytest.mark.parametrize("field", ("bits_x", "bits_w"))
@pytest.mark.parametrize("bad", (1, 17, 0, True, 8.0, None))
def test_numerics_bad_bits(field, bad):
    with pytest.raises(NumericsError, match=field):
        Numerics(**{field: bad})


@pytest.mark.parametrize("bad", ("round", "", None))
def test_numerics_bad_rounding(bad):
    with pytest.raises(NumericsError) as info:
        Numerics(rounding=bad)
    for mode in MODES:
        assert mode in str(info.value)


@pytest.mark.parametrize("bad", (0, -4, True, 2.0, "4"))
@pytest.mark.parametrize("policy", POLICIES)
def test_numerics_bad_chain(bad, policy):
    with pytest.raises(NumericsError, match="chain"):
        Numerics(bits_x=8, bits_w=8, overflow=policy, chain=bad)


def test_numerics_key_distinguishes_choices():
    keys = {Numerics(bits_x=b, rounding=r).key() for b in (8, 12, 16) for r in MODES}
    assert len(keys) == 15
    assert Numerics(bits_x=12, bits_w=12).key() == Numerics(bits_x=12, bits_w=12, chain=256).key()


# ----------------------------------------------------------------------------- numpy integers (issue 20 item 7)

NUMPY_INTS = (np.int64, np.int32, np.int16, np.uint8)


@pytest.mark.parametrize("cast", NUMPY_INTS)
def test_numpy_integer_fields_are_accepted_and_stored_as_ints(cast):
    plain = ConvSpec(N=2, C=4, K=8, H=7, W=6, R=3, S=3, stride=2, pad=1, stride_w=1, pad_w=0, pad_bottom=2)
    spec = ConvSpec(N=cast(2), C=cast(4), K=cast(8), H=cast(7), W=cast(6), R=cast(3), S=cast(3), stride=cast(2),
                    pad=cast(1), stride_w=cast(1), pad_w=cast(0), pad_bottom=cast(2))
    assert spec == plain and hash(spec) == hash(plain)
    assert all(type(getattr(spec, f.name)) in (int, type(None)) for f in dataclasses.fields(spec) if f.name != "name")
    json.dumps(dataclasses.asdict(spec))                 # what cache keys and reports do with a spec


def test_numpy_bools_and_floats_are_still_refused():
    for bad in (np.bool_(True), np.float64(2.0), 2.0, True):
        with pytest.raises(SpecError, match=r"N=.*must be an integer >= 1"):
            ConvSpec(N=bad, C=4, K=8, H=7, W=7, R=3, S=3)


def test_name_must_be_a_string():
    with pytest.raises(SpecError, match="name=3: must be a string"):
        ConvSpec(N=1, C=4, K=8, H=7, W=7, R=3, S=3, name=3)


def test_numpy_batch_and_blocking_fields_become_ints():
    assert catalog.select("resnet50:res2a_branch2a", batch=np.int64(3))[0].N == 3
    blocking = Blocking(kv=np.int64(2), wb=np.int32(3), hb=np.int8(1), cpb=np.int64(4), unroll=np.int64(2),
                        rb=np.int64(5))
    assert blocking == Blocking(kv=2, wb=3, hb=1, cpb=4, unroll=2, rb=5)
    assert json.loads(json.dumps(dataclasses.asdict(blocking)))["kv"] == 2


def test_conv2d_takes_numpy_bits_threads_and_blocking():
    spec = ConvSpec(N=np.int64(1), C=np.int64(4), K=8, H=5, W=5, R=3, S=3, pad=1)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 4, 5, 5), np.float32), rng.standard_normal((8, 4, 3, 3), np.float32)
    reference = Conv2d(spec, bits=13, threads=2, blocking=Blocking(kv=1, wb=3)).fprop(x, w)
    conv = Conv2d(spec, bits=np.int64(13), threads=np.int64(2), blocking=Blocking(kv=np.int64(1), wb=np.int32(3)))
    assert type(conv.threads) is int and type(conv.numerics.bits) is int
    np.testing.assert_array_equal(conv.fprop(x, w), reference)


@pytest.mark.parametrize("bad", ["nosuch", 3, None, "FPROP "])
def test_compile_an_unknown_pass_is_one_plan_error(bad):
    from dfpgen.errors import PlanError
    from dfpgen.runtime.conv import compile as dfpgen_compile

    with pytest.raises(PlanError, match=r"pass=.*: must be one of fprop, bprop, wtgrad") as info:
        dfpgen_compile(ConvSpec(N=1, C=4, K=4, H=5, W=5, R=3, S=3), bad)
    assert "\n" not in str(info.value)
