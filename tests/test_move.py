"""The generated data-movement kernels (dfpgen/codegen/move.py): quantizing moves equal dfpgen.quantize
bit for bit in every rounding mode and width, through contiguous and strided views, at any thread count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen.codegen.move import MovePlan, move, plan_geometry, render
from dfpgen.core.dfp import MAX_BITS, MIN_BITS, ROUNDING_MODES, quantize
from dfpgen.core.stochastic import StreamKey, draws, uniforms
from dfpgen.core.target import get_isa, resolve
from dfpgen.errors import DTypeError, NumericsError, PlanError, ShapeError

TARGET = resolve(None)
ISAS = [get_isa(name) for name in TARGET.isas("dfp16")]   # every width the host runs (16 and 8 lanes on AVX-512)


def _quantized_move(x, view, dst, bits, rounding, key, isa, threads, origin=None):
    ref = quantize(origin if origin is not None else x, bits, rounding, seed=key)
    maxabs = move(view, dst, TARGET, isa, threads, scale=2.0 ** -ref.exp, bits=bits, rounding=rounding, key=key,
                  origin=origin)
    return ref, maxabs


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: i.name)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("bits", [MIN_BITS, 8, 13, 14, MAX_BITS])
def test_contiguous_quantize_equals_reference(isa, rounding, bits):
    x = (np.random.default_rng(bits).standard_normal((3, 2, 5, 4, isa.lanes)) * 5).astype(np.float32)
    x.flat[:6] = [0.5, -2.5, 1.25, -1.75, 0.0, 3.5]   # ties and quarter fractions: where the modes differ
    dst = np.full(x.shape, 7, np.int16)
    key = StreamKey.of(bits, 3)
    ref, maxabs = _quantized_move(x, x, dst, bits, rounding, key, isa, 2)
    np.testing.assert_array_equal(dst, ref.mant)
    assert maxabs == np.abs(x).max()


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_strided_view_into_padded_blocked_layout(rounding, threads):
    """NCHW -> [N][CB][H+2][W+2][16] with a zero margin: the transposing, strided path."""
    N, C, H, W = 2, 32, 6, 5
    x = np.random.default_rng(threads).standard_normal((N, C, H, W)).astype(np.float32)
    dst = np.zeros((N, C // 16, H + 2, W + 2, 16), np.int16)
    view = x.reshape(N, C // 16, 16, H, W).transpose(0, 1, 3, 4, 2)
    key = StreamKey.of(threads)
    ref, _ = _quantized_move(x, view, dst[:, :, 1:H + 1, 1:W + 1], 14, rounding, key, ISAS[0], threads, origin=x)
    expect = np.zeros_like(dst)
    expect[:, :, 1:H + 1, 1:W + 1] = ref.mant.reshape(N, C // 16, 16, H, W).transpose(0, 1, 3, 4, 2)
    np.testing.assert_array_equal(dst, expect)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=6), threads=st.integers(1, 4),
       rounding=st.sampled_from(ROUNDING_MODES), bits=st.integers(MIN_BITS, MAX_BITS), seed=st.integers(0, 2**32 - 1))
def test_any_permutation_any_threads(shape, threads, rounding, bits, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(np.float32)
    perm = np.random.default_rng(seed + 1).permutation(len(shape))
    view = x.transpose(perm)
    dst = np.empty(view.shape, np.int16)
    key = StreamKey.of(seed)
    ref, _ = _quantized_move(x, view, dst, bits, rounding, key, ISAS[0], threads, origin=x)
    np.testing.assert_array_equal(dst, ref.mant.transpose(perm))


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=2, max_size=5).filter(lambda s: int(np.prod(s)) <= 60_000),
       threads=st.integers(1, 3), rounding=st.sampled_from(ROUNDING_MODES), seed=st.integers(0, 2**32 - 1),
       isa=st.sampled_from(ISAS), floats=st.booleans())
def test_large_permutations_through_tiles_and_gathers(shape, threads, rounding, seed, isa, floats):
    """Permutations with extents of up to 40, so that transposed tiles (both sides at least 8, edge tiles
    partial) and the other accesses all occur: mantissas as the reference's, floats copied exactly."""
    x = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(np.float32)
    perm = np.random.default_rng(seed + 1).permutation(len(shape))
    view = x.transpose(perm)
    if floats:
        dst = np.empty(view.shape, np.float32)
        assert move(view, dst, TARGET, isa, threads, origin=x) == np.abs(x).max()
        np.testing.assert_array_equal(dst, view)
        return
    dst = np.empty(view.shape, np.int16)
    ref, _ = _quantized_move(x, view, dst, 12, rounding, StreamKey.of(seed), isa, threads, origin=x)
    np.testing.assert_array_equal(dst, ref.mant.transpose(perm))


def test_fp32_copy_and_nan_in_maxabs():
    x = np.random.default_rng(0).standard_normal((4, 16, 3, 3)).astype(np.float32)
    out = np.empty((4, 3, 3, 16), np.float32)
    assert move(x.transpose(0, 2, 3, 1), out, TARGET, ISAS[0], 2) == np.abs(x).max()
    np.testing.assert_array_equal(out, x.transpose(0, 2, 3, 1))
    x[1, 2, 0, 0] = np.nan
    assert np.isnan(move(x, np.empty_like(x), TARGET, ISAS[0], 2))


def test_geometry_merges_contiguous_dimensions_and_puts_unit_strides_innermost():
    x = np.zeros((2, 3, 4, 5), np.float32)
    g = plan_geometry(x, np.zeros((2, 3, 4, 5), np.int16))
    assert g.extents == (1, 1, 1, 1, 1, 120) and g.src_strides[-1] == 1 and g.items("contiguous") == 1
    g = plan_geometry(x.transpose(0, 2, 3, 1), np.zeros((2, 4, 5, 3), np.float32))
    assert int(np.prod(g.extents)) == x.size and g.extents[-1] in (3, 20)
    assert min(g.src_strides[-1], g.dst_strides[-1]) == 1


def test_stochastic_stream_is_fixed():
    """The stream's definition is part of --resume's contract: these values may never change."""
    key = StreamKey.of(1, 2, 3)
    assert (key.k0, key.k1) == (941948066, 108327172)
    assert draws(key, np.arange(3)).tolist() == [8199105, 9085177, 5236551]
    u = uniforms(StreamKey.of(7), (200_000,))
    assert abs(u.mean() - 0.5) < 0.005 and u.min() >= 0 and u.max() < 1
    assert StreamKey.of(1, 2) != StreamKey.of(2, 1) and key.child(0) != key.child(1)


def test_rounding_ir_names_its_intrinsic():
    ir = render(MovePlan(TARGET, ISAS[0], True, "nearest_even", ISAS[0].lanes))
    assert "llvm.roundeven" in ir and "fptosi" in ir


@pytest.mark.parametrize("call, error, words", [
    (lambda: move(np.zeros(4, np.float64), np.zeros(4, np.int16), TARGET, ISAS[0], 1, bits=8), DTypeError, "source"),
    (lambda: move(np.zeros(4, np.float32), np.zeros(4, np.float32), TARGET, ISAS[0], 1, bits=8), DTypeError,
     "destination"),
    (lambda: move(np.zeros(4, np.float32), np.zeros(5, np.int16), TARGET, ISAS[0], 1, bits=8), ShapeError, "differ"),
    (lambda: move(np.zeros(4, np.float32), np.zeros(4, np.int16), TARGET, ISAS[0], 1, bits=8,
                  rounding="stochastic"), PlanError, "StreamKey"),
    (lambda: move(np.zeros(4, np.float32), np.zeros(4, np.int16), TARGET, ISAS[0], 1, bits=8, rounding="up"),
     NumericsError, "rounding='up'"),
    (lambda: StreamKey(-1, 0), NumericsError, "k0=-1"),
])
def test_errors_name_the_bad_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: i.name)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("layout, access", [
    ("transpose", "gather"),    # NCHW into channels-innermost blocks, 3 pixels: too few for a transposed tile
    ("pairs", "run"),           # KCRS weights into [..][lanes][elem], 3 channel pairs: likewise
    ("qpairs", "interleave"),   # channels-innermost rows into [..][lanes][elem]: two interleaved vectors
    ("qquads", "interleave"),   # the same in quads ([..][lanes][4], the INT8 ISAs' WTGRAD layouts)
    ("qquads_rows", "interleave"),   # quads whose lanes merge with the columns: several vectors per row
    ("seven", "run"),           # more dimensions than a geometry holds: one move per outermost index
])
def test_vector_accesses_equal_reference(isa, rounding, layout, access):
    L, rng = isa.lanes, np.random.default_rng(5)
    if layout == "transpose":
        x = rng.standard_normal((2, 2 * L, 1, 3)).astype(np.float32)
        view = x.reshape(2, 2, L, 1, 3).transpose(0, 1, 3, 4, 2)
    elif layout == "pairs":
        x = rng.standard_normal((2 * L, 6, 1, 1)).astype(np.float32)
        view = x.reshape(2, L, 3, 2).transpose(0, 2, 1, 3)           # [KB][cpb][lanes][elem]
    elif layout == "qpairs":
        x = rng.standard_normal((3, 6, L)).astype(np.float32)          # [rows][q][lanes]
        view = x.reshape(3, 3, 2, L).transpose(0, 1, 3, 2)              # [rows][q/2][lanes][2]
    elif layout == "qquads_rows":
        x = rng.standard_normal((3, 4, 3, L)).astype(np.float32)       # [q][rows][cols][lanes]
        view = x.reshape(1, 4, 3 * 3 * L).transpose(0, 2, 1)            # [1][rows*cols*lanes][4 q]
    elif layout == "qquads":
        x = rng.standard_normal((3, 8, L)).astype(np.float32)          # [rows][q][lanes]
        view = x.reshape(3, 2, 4, L).transpose(0, 1, 3, 2)              # [rows][q/4][lanes][4]
    else:
        x = rng.standard_normal((2 * L, 8, 3, 3)).astype(np.float32)
        view = x.reshape(2, L, 2, 2, 2, 3, 3).transpose(0, 2, 5, 6, 3, 1, 4)
    dst = np.empty(view.shape, np.int16)
    key = StreamKey.of(len(layout))
    ref, _ = _quantized_move(x, view, dst, 13, rounding, key, isa, 2, origin=x)
    np.testing.assert_array_equal(dst, _through(ref.mant, view))
    if layout != "seven":
        assert plan_geometry(view, dst).access(L)[0] == access


def _transposing_view(layout: str, L: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(origin, view in the destination's order) of the layouts the transposing tiles move, with edge tiles:
    extents that are no multiple of the lanes."""
    if layout == "kcrs_pairs":      # 1x1 weights into [KB][C/2][lanes k][2 c]: pairs of source neighbours
        x = rng.standard_normal((2 * L, 2 * L + 6, 1, 1)).astype(np.float32)
        return x, x[:, :, 0, 0].reshape(2, L, L + 3, 2).transpose(0, 2, 1, 3)
    if layout == "kcrs3_pairs":     # 3x3 weights into [KB][C/2][RS][lanes k][2 c]: pairs 9 apart, A = RS
        x = rng.standard_normal((2 * L, 2 * L + 2, 3, 3)).astype(np.float32)
        return x, x.reshape(2, L, L + 1, 2, 9).transpose(0, 2, 4, 1, 3)
    if layout == "blocked_kc":      # WTGRAD's 1x1 result [KB][C][lanes k] into [K][C]
        x = rng.standard_normal((3, 2 * L + 5, L)).astype(np.float32)
        return x, x.transpose(0, 2, 1)
    if layout == "blocked_krsc":    # WTGRAD's 3x3 result [KB][RS][C][lanes k] into [K][C][RS]: runs of 9
        x = rng.standard_normal((2, 9, L + 5, L)).astype(np.float32)
        return x, x.transpose(0, 3, 2, 1)
    x = rng.standard_normal((2, 2 * L, 5, 7)).astype(np.float32)   # "nchw": into [N][CB][H][W][lanes]
    return x, x.reshape(2, 2, L, 5, 7).transpose(0, 1, 3, 4, 2)


TRANSPOSING = ["kcrs_pairs", "kcrs3_pairs", "blocked_kc", "blocked_krsc", "nchw"]


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: i.name)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("layout", TRANSPOSING)
@pytest.mark.parametrize("threads", [1, 3])
def test_transposing_tiles_quantize_like_the_reference(isa, rounding, layout, threads):
    """Where the destination runs across the source's contiguous dimension, whole tiles are loaded along the
    source, transposed in registers and stored along the destination (edge tiles under masks): the mantissas
    are dfpgen.quantize's, stochastic draws numbered by source position, max|.| over every element."""
    x, view = _transposing_view(layout, isa.lanes, np.random.default_rng(len(layout) + threads))
    dst = np.full(view.shape, 7, np.int16)
    geometry = plan_geometry(view, dst)
    assert geometry.access(isa.lanes)[0] == "transpose" and geometry.src_strides[3] in (1, 2)
    ref, maxabs = _quantized_move(x, view, dst, 13, rounding, StreamKey.of(threads), isa, threads, origin=x)
    np.testing.assert_array_equal(dst, _through(ref.mant, view))
    assert maxabs == np.abs(x).max()


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: i.name)
@pytest.mark.parametrize("layout", TRANSPOSING)
@pytest.mark.parametrize("dequantize", [False, True])
def test_transposing_tiles_copy_floats_bit_for_bit(isa, layout, dequantize):
    """FP32 copies through transposed tiles keep every bit (-0.0 included), and the values an FP32 kernel
    reads of a DFP tensor equal quantize(...).to_float()."""
    x, view = _transposing_view(layout, isa.lanes, np.random.default_rng(3))
    x.flat[:3] = [-0.0, 0.0, -1.5]
    out = np.full(view.shape, np.nan, np.float32)
    if dequantize:
        ref = quantize(x, 11, "nearest")
        move(view, out, TARGET, isa, 2, scale=2.0 ** -ref.exp, bits=11, origin=x, dequantize=True)
        expect = ref.to_float(np.float32)
    else:
        assert move(view, out, TARGET, isa, 2, origin=x) == np.abs(x).max()
        expect = x
    through = np.ascontiguousarray(np.lib.stride_tricks.as_strided(expect, view.shape, view.strides))
    np.testing.assert_array_equal(out if dequantize else out.view(np.int32), through if dequantize
                                  else through.view(np.int32))


def test_transposing_kernels_load_and_store_whole_vectors():
    """No gathers in a transposing kernel: its source is read in vector loads, then shuffled."""
    isa = ISAS[0]
    for group, adjacent, quantize_ in [(2, True, True), (2, False, True), (1, False, False)]:
        plan = MovePlan(TARGET, isa, quantize_, "nearest" if quantize_ else None, isa.lanes, "transpose",
                        interleave=group, adjacent=adjacent)
        ir = render(plan)
        assert "gather" not in ir and ir.count("shufflevector") >= 2 * isa.lanes * (isa.lanes.bit_length() - 1)


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: i.name)
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize("layout", ["blocks", "qpairs"])
@pytest.mark.parametrize("threads", [1, 3])
def test_a_channels_last_source_is_read_in_its_own_order(isa, rounding, layout, threads):
    """NHWC x into 32-channel blocks (FPROP's x) and NHWC dy into q-pairs per 16-channel block (WTGRAD's dy):
    the destination takes whole cache lines per row, so the channel-block dimension, which continues the
    source's contiguous run, becomes the row loop and the pixel the work item; the mantissas are the same."""
    rng = np.random.default_rng(9)
    if layout == "blocks":
        x = rng.standard_normal((2, 5, 7, 128)).astype(np.float32)            # NHWC, 4 blocks of 32 channels
        view = x.reshape(2, 35, 4, 32).transpose(0, 2, 1, 3)                    # [N][CB][HW][32]
        row, run = 4, 32
    else:
        x = rng.standard_normal((2, 3, 8, 64)).astype(np.float32)             # NHWC, 4 blocks of 16 channels
        view = x.reshape(2, 3, 4, 2, 4, 16).transpose(0, 4, 1, 2, 5, 3)        # [N][KB][P][Q/2][16][2]
        row, run = 3, 16
    dst = np.empty(view.shape, np.int16)
    geometry = plan_geometry(view, dst)
    assert geometry.src_strides[row] == run and geometry.extents[row] == 4   # the channel blocks are the rows
    key = StreamKey.of(11)
    ref, _ = _quantized_move(x, view, dst, 12, rounding, key, isa, threads, origin=x)
    np.testing.assert_array_equal(dst, _through(ref.mant, view))
    if layout == "blocks":   # 16-channel runs of INT16 are half a cache line: the destination's order stays
        narrow = plan_geometry(view[..., :16], np.empty(view.shape[:-1] + (16,), np.int16))
        assert narrow.src_strides[row] == 128 and narrow.dst_strides[row] == 16


def _through(mant: np.ndarray, view: np.ndarray) -> np.ndarray:
    """The int16 mantissas of a C-contiguous float32 array, seen through the same view as the floats."""
    return np.lib.stride_tricks.as_strided(mant, view.shape, tuple(s // 2 for s in view.strides))


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_dequantized_values_for_fp32_kernels(rounding):
    """The values a DFP tensor represents, laid out for an FP32 kernel: quantize(...).to_float(), exactly."""
    x = (np.random.default_rng(9).standard_normal((2, 3, 5, ISAS[0].lanes)) * 7).astype(np.float32)
    key = StreamKey.of(9)
    ref = quantize(x, 10, rounding, seed=key)
    out = np.empty_like(x)
    move(x, out, TARGET, ISAS[0], 2, scale=2.0 ** -ref.exp, bits=10, rounding=rounding, key=key, dequantize=True)
    np.testing.assert_array_equal(out, ref.to_float(np.float32))


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("dtype, offset", [(np.int8, 0), (np.uint8, 128)])
@pytest.mark.parametrize("layout", ["contiguous", "quads"])
def test_byte_mantissas_with_the_int8_offset(rounding, dtype, offset, layout):
    """Bytes for the INT8 ISAs: mantissa + offset (vpdpbusd's unsigned operand holds mant + 128), exactly
    dfpgen.quantize's mantissas, through contiguous and interleaved (quad) accesses."""
    L, rng = ISAS[0].lanes, np.random.default_rng(3)
    x = (rng.standard_normal((3, 8, L)) * 4).astype(np.float32)
    view = x if layout == "contiguous" else x.reshape(3, 2, 4, L).transpose(0, 1, 3, 2)
    dst = np.zeros(view.shape, dtype)
    key = StreamKey.of(4)
    ref = quantize(x, 7, rounding, seed=key)
    maxabs = move(view, dst, TARGET, ISAS[0], 2, scale=2.0 ** -ref.exp, bits=7, rounding=rounding, key=key, origin=x,
                  offset=offset)
    want = ref.mant.astype(np.int16) + offset
    np.testing.assert_array_equal(dst.astype(np.int16), want if layout == "contiguous" else
                                  want.reshape(3, 2, 4, L).transpose(0, 1, 3, 2))
    assert maxabs == float(np.abs(x).max())


def test_byte_destinations_refuse_what_they_cannot_hold():
    x = np.ones((4, 16), np.float32)
    with pytest.raises(DTypeError, match=r"uint8 holds 0..255; 9-bit mantissas plus offset 128 need -127..383"):
        move(x, np.zeros((4, 16), np.uint8), TARGET, ISAS[0], 1, bits=9, offset=128)
    with pytest.raises(DTypeError, match="only byte destinations take an offset"):
        move(x, np.zeros((4, 16), np.int16), TARGET, ISAS[0], 1, bits=8, offset=128)
    with pytest.raises(DTypeError, match="expected a int16 or int8 or uint8 array"):
        move(x, np.zeros((4, 16), np.int32), TARGET, ISAS[0], 1, bits=8)


def _windows(x: np.ndarray, cols: int, group: int, stride: int = 1) -> np.ndarray:
    """[rows][cols][L][group] view of x [rows][..][L]: element e at column j reads x's column (j + e) * stride,
    as WTGRAD's x layout does at stride 1, and along one column phase at a larger stride."""
    return np.lib.stride_tricks.as_strided(x, (x.shape[0], cols, x.shape[2], group),
                                           (x.strides[0], stride * x.strides[1], x.strides[2], stride * x.strides[1]))


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: i.name)
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("dtype, offset, group", [(np.uint8, 128, 4), (np.int8, 0, 4), (np.int16, 0, 2)])
@pytest.mark.parametrize("threads", [1, 3])
def test_packed_sliding_windows_equal_reference(isa, rounding, dtype, offset, group, threads):
    """Overlapping runs packed into INT8 quads or INT16 pairs, each source run quantized once and reused by the
    next vector: the mantissas dfpgen.quantize gives each source element, wherever it lands."""
    L, bits = isa.lanes, 7 if dtype != np.int16 else 12
    x = (np.random.default_rng(group).standard_normal((5, 9 + group - 1, L)) * 6).astype(np.float32)
    view = _windows(x, 9, group)
    dst = np.zeros(view.shape, dtype)
    geometry = plan_geometry(view, dst)
    assert geometry.access(L) == ("interleave", group * L) and geometry.slides(group * L) == "lanes"
    assert MovePlan(TARGET, isa, True, rounding, group * L, "interleave", storage_bits=8 * dst.itemsize,
                    interleave=group).packed
    key = StreamKey.of(group, threads)
    ref = quantize(x, bits, rounding, seed=key)
    maxabs = move(view, dst, TARGET, isa, threads, scale=2.0 ** -ref.exp, bits=bits, rounding=rounding, key=key,
                  origin=x, offset=offset)
    want = _windows(ref.mant.astype(np.int32) + offset, 9, group)
    np.testing.assert_array_equal(dst.astype(np.int32), want)
    assert maxabs == float(np.abs(x).max())


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("dtype, offset, group, bits", [(np.uint8, 128, 4, 8), (np.int8, 0, 4, 6),
                                                         (np.int16, 0, 2, 13), (np.float32, 0, 4, None)])
def test_spread_writes_one_element_of_each_group(rounding, dtype, offset, group, bits):
    """A contiguous source run into every group-th element (the edge columns of WTGRAD's layouts): masked
    vector stores, exact, the other elements left as they were."""
    L = ISAS[0].lanes
    x = (np.random.default_rng(1).standard_normal((3, 4, 2 * L)) * 3).astype(np.float32)
    full = np.full((3, 4, 2 * L, group), 77, dtype)
    view = full[..., group - 1]
    assert plan_geometry(x, view).access(L) == ("spread", L)
    key = StreamKey.of(group)
    if bits is None:
        move(x, view, TARGET, ISAS[0], 2)
        want = x
    else:
        ref = quantize(x, bits, rounding, seed=key)
        move(x, view, TARGET, ISAS[0], 2, scale=2.0 ** -ref.exp, bits=bits, rounding=rounding, key=key, offset=offset)
        want = ref.mant.astype(np.int32) + offset
    np.testing.assert_array_equal(full[..., group - 1], want)
    assert np.all(full[..., :group - 1] == 77)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("dtype, offset, group", [(np.uint8, 128, 4), (np.int16, 0, 2)])
@pytest.mark.parametrize("threads", [1, 3])
def test_packed_windows_sliding_across_rows(rounding, dtype, offset, group, threads):
    """A column phase of WTGRAD's x at stride 2: one vector per row, each row the previous one shifted by a run,
    so the runs carry from row to row within an item; exact, at any thread count."""
    L, bits = ISAS[0].lanes, 7 if dtype != np.int16 else 12
    x = (np.random.default_rng(7).standard_normal((3, 2, 2 * (6 + group), L)) * 6).astype(np.float32)
    view = _windows(x.reshape(6, -1, L), 6, group, stride=2).reshape(3, 2, 6, L, group)
    dst = np.zeros(view.shape, dtype)
    assert plan_geometry(view, dst).slides(group * L) == "rows"
    key = StreamKey.of(group, threads, 2)
    ref = quantize(x, bits, rounding, seed=key)
    move(view, dst, TARGET, ISAS[0], threads, scale=2.0 ** -ref.exp, bits=bits, rounding=rounding, key=key, origin=x,
         offset=offset)
    want = _windows((ref.mant.astype(np.int32) + offset).reshape(6, -1, L), 6, group, stride=2)
    np.testing.assert_array_equal(dst.astype(np.int32), want.reshape(view.shape))


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("dtype, offset, group, runs, first", [(np.uint8, 128, 4, 3, 1), (np.uint8, 128, 4, 2, 0),
                                                               (np.int8, 0, 4, 3, 0), (np.int16, 0, 2, 1, 0),
                                                               (np.float32, 0, 4, 2, 1)])
def test_partial_groups_fill_their_first_elements(rounding, dtype, offset, group, runs, first):
    """`runs` contiguous source runs into elements first..first+runs of each group (WTGRAD's edge columns and last
    q's): packed and stored under a mask into mantissas, element by element into FP32; the rest untouched."""
    L = ISAS[0].lanes
    x = (np.random.default_rng(runs).standard_normal((3, runs, 2 * L)) * 5).astype(np.float32)
    full = np.full((3, 2 * L, group), 77, dtype)
    view = full[..., first:first + runs]
    src = x.transpose(0, 2, 1)
    # one run has no run axis left: one element of each group, a "spread"
    assert plan_geometry(src, view).access(L) == (("partial", group * L) if runs > 1 else ("spread", L))
    key = StreamKey.of(runs, first)
    if dtype == np.float32:
        move(src, view, TARGET, ISAS[0], 2)
        want = src
    else:
        bits = 7 if dtype != np.int16 else 12
        ref = quantize(x, bits, rounding, seed=key)
        move(src, view, TARGET, ISAS[0], 2, scale=2.0 ** -ref.exp, bits=bits, rounding=rounding, key=key, origin=x,
             offset=offset)
        want = ref.mant.astype(np.int32).transpose(0, 2, 1) + offset
    np.testing.assert_array_equal(full[..., first:first + runs], want)
    untouched = np.ones(group, bool)
    untouched[first:first + runs] = False
    assert np.all(full[..., untouched] == 77)
