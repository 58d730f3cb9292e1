"""Pointwise kernels (dfpgen/runtime/pointwise.py, dfpgen/codegen/pointwise.py): each op against a float64
numpy reference within its derived bound, bit-identical results for 1, 2 and 3 threads, odd shapes, both
16 and 8 lanes, NaN in max|result|, SGD bit for bit against dfpgen.nn.optim.SGD, and one-line refusals.

Bounds: u = 2**-24. A float32 result whose terms t_i each pass through at most k roundings (FMA
contraction only removes roundings) is within gamma_k * sum|t_i|, gamma_k = k*u / (1 - k*u). Float64
sums of n float32 values (squares and products of two float32 values are exact in float64) are within
gamma_n(2**-53) * sum|t_i| of the exact sum, for the kernel and for numpy's reference alike.
"""

import numpy as np
import pytest

from dfpgen.codegen import pointwise as cp
from dfpgen.codegen.layout import aligned_empty
from dfpgen.errors import DTypeError, NumericsError, PlanError, ShapeError
from dfpgen.nn.optim import SGD
from dfpgen.runtime import pointwise as pw

U32, U64 = 2.0 ** -24, 2.0 ** -53
LANES = [pytest.param(L, marks=pytest.mark.skipif(L not in pw.host_lanes(), reason=f"no {L}-lane DFP ISA here"))
         for L in (16, 8)]
SHAPES = [(1, 1, 1, 1), (2, 3, 7, 7), (3, 5, 2, 3), (1, 2, 5, 1), (4, 4, 1, 1)]   # (N, CB, H, W)
THREADS = (1, 2, 3)


def gamma(k: int, u: float = U32) -> float:
    return k * u / (1 - k * u)


def blocked(shape: tuple, rng, zeros: float = 0.1) -> np.ndarray:
    """A 64-byte-aligned float32 tensor of normal values with some exact zeros."""
    a = aligned_empty(shape, np.float32)
    a[...] = rng.standard_normal(shape, dtype=np.float32) * np.float32(3)
    a[rng.random(shape) < zeros] = 0
    return a


def per_channel(shape: tuple, rng) -> np.ndarray:
    return rng.standard_normal(shape[1] * shape[4], dtype=np.float32)


def bc(v: np.ndarray, shape: tuple) -> np.ndarray:
    """A per-channel vector broadcast over a blocked tensor, as float64."""
    return v.astype(np.float64).reshape(1, shape[1], 1, 1, shape[4])


def channel_total(t: np.ndarray) -> np.ndarray:
    """float64 per-channel sums of a blocked float64 tensor, as (CB*L,)."""
    return t.sum(axis=(0, 2, 3)).reshape(-1)


def same_bits(results: list) -> bool:
    return all(np.asarray(r).tobytes() == np.asarray(results[0]).tobytes() for r in results)


def each_thread_count(run) -> list:
    """run(threads) for 1, 2, 3 threads; checks the results are bit-identical and returns the first."""
    results = [run(t) for t in THREADS]
    for part in zip(*results):
        assert same_bits(list(part)), "result depends on the thread count"
    return results[0]


@pytest.fixture(params=LANES, ids=lambda L: f"L{L}")
def lanes(request):
    return request.param


@pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def shape(request, lanes):
    return request.param + (lanes,)


# ------------------------------------------------------------------ ops 1-6 against float64


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("residual", [None, "identity", "scaled"])
def test_affine(shape, relu, residual):
    rng = np.random.default_rng(1)
    x, z = blocked(shape, rng), blocked(shape, rng)
    a, b, c, d = (per_channel(shape, rng) for _ in range(4))
    kw = {} if residual is None else {"z": z} if residual == "identity" else {"z": z, "c": c, "d": d}

    def run(threads):
        out = aligned_empty(shape, np.float32)
        m = pw.affine(x, a, b, out, relu, threads=threads, **kw)
        return out.copy(), np.float32(m)

    out, m = each_thread_count(run)
    terms = [bc(a, shape) * x, bc(b, shape) + 0 * x]
    if residual == "identity":
        terms.append(z.astype(np.float64))
    elif residual == "scaled":
        terms += [bc(c, shape) * z, bc(d, shape) + 0 * z]
    ref = sum(terms)
    ref = np.maximum(ref, 0) if relu else ref
    bound = gamma(3) * sum(np.abs(t) for t in terms)
    assert np.all(np.abs(out - ref) <= bound)
    assert m == np.abs(out).max()


def test_relu_grad(shape):
    rng = np.random.default_rng(2)
    dy, out = blocked(shape, rng), blocked(shape, rng, zeros=0.3)

    def run(threads):
        dz = aligned_empty(shape, np.float32)
        return dz, np.float32(pw.relu_grad(dy, out, dz, threads))

    dz, m = each_thread_count(run)
    np.testing.assert_array_equal(dz, np.where(out > 0, dy, 0))
    assert m == np.abs(dz).max()


def test_channel_sums(shape):
    rng = np.random.default_rng(3)
    x = blocked(shape, rng)
    s, ss = each_thread_count(lambda t: pw.channel_sums(x, t))
    x64 = x.astype(np.float64)
    n = shape[0] * shape[2] * shape[3]
    assert s.dtype == ss.dtype == np.float64 and s.shape == ss.shape == (shape[1] * shape[4],)
    assert np.all(np.abs(s - channel_total(x64)) <= 2 * gamma(n, U64) * channel_total(np.abs(x64)))
    assert np.all(np.abs(ss - channel_total(x64 ** 2)) <= 2 * gamma(n, U64) * channel_total(x64 ** 2))


@pytest.mark.parametrize("with_mask", [False, True])
def test_bn_grad_sums(shape, with_mask):
    rng = np.random.default_rng(4)
    dz, x, mask = blocked(shape, rng), blocked(shape, rng), blocked(shape, rng, zeros=0.3)
    kw = {"mask": mask} if with_mask else {}
    s, sx = each_thread_count(lambda t: pw.bn_grad_sums(dz, x, t, **kw))
    d = np.where(mask > 0, dz, 0).astype(np.float64) if with_mask else dz.astype(np.float64)
    n = shape[0] * shape[2] * shape[3]
    prod = d * x
    assert np.all(np.abs(s - channel_total(d)) <= 2 * gamma(n, U64) * channel_total(np.abs(d)))
    assert np.all(np.abs(sx - channel_total(prod)) <= 2 * gamma(n, U64) * channel_total(np.abs(prod)))


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_add", [False, True])
def test_bn_grad_apply(shape, with_mask, with_add):
    rng = np.random.default_rng(5)
    dz, x, mask, extra = (blocked(shape, rng, zeros=0.3) for _ in range(4))
    a, b, c = (per_channel(shape, rng) for _ in range(3))
    kw = ({"mask": mask} if with_mask else {}) | ({"add": extra} if with_add else {})

    def run(threads):
        dx = aligned_empty(shape, np.float32)
        return dx, np.float32(pw.bn_grad_apply(dz, x, a, b, c, dx, threads, **kw))

    dx, m = each_thread_count(run)
    d = np.where(mask > 0, dz, 0) if with_mask else dz
    terms = [bc(a, shape) * d, bc(b, shape) * x, bc(c, shape) + 0 * x]
    terms += [extra.astype(np.float64)] if with_add else []
    bound = gamma(4) * sum(np.abs(t) for t in terms)
    assert np.all(np.abs(dx - sum(terms)) <= bound)
    assert m == np.abs(dx).max()


def test_add(shape):
    rng = np.random.default_rng(6)
    a, b = blocked(shape, rng), blocked(shape, rng)

    def run(threads):
        out = aligned_empty(shape, np.float32)
        return out, np.float32(pw.add(a, b, out, threads))

    out, m = each_thread_count(run)
    np.testing.assert_array_equal(out, a + b)   # one correctly rounded float32 add, as numpy's
    assert m == np.abs(out).max()


def test_in_place_output(lanes):
    rng = np.random.default_rng(7)
    shape = (2, 3, 4, 5, lanes)
    x = blocked(shape, rng)
    a, b = per_channel(shape, rng), per_channel(shape, rng)
    expected = aligned_empty(shape, np.float32)
    pw.affine(x, a, b, expected, relu=True)
    pw.affine(x, a, b, x, relu=True)      # out is x: each vector is read before it is written
    np.testing.assert_array_equal(x, expected)


# ------------------------------------------------------------------ op 7: SGD bit for bit


class _Param:
    def __init__(self, data, grad, decay):
        self.name, self.data, self.grad, self.decay = "p", data, grad, decay


SIZES = [1, 7, 15, 16, 17, 255, 4096, 4097, 3 * 4096 + 5, 30011]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("decay", [True, False])
def test_sgd_matches_numpy_bit_for_bit(lanes, size, decay):
    rng = np.random.default_rng(size)
    w0, g = (rng.standard_normal(size, dtype=np.float32) for _ in range(2))
    v0 = rng.standard_normal(size, dtype=np.float32) * np.float32(0.1)
    lr, momentum, wd = 0.0123, 0.9, 5e-4
    ref = _Param(w0.copy(), g.copy(), decay)
    opt = SGD([ref], lr=lr, momentum=momentum, weight_decay=wd)
    opt.velocity[0][...] = v0
    opt.step()

    def run(threads):
        w, v = w0.copy(), v0.copy()
        m = pw.sgd_update(w, g, v, lr, momentum, wd if decay else 0.0, threads, lanes=lanes)
        return w, v, np.float32(m)

    w, v, m = each_thread_count(run)
    np.testing.assert_array_equal(w, ref.data)
    np.testing.assert_array_equal(v, opt.velocity[0])
    assert m == np.abs(ref.data).max()


def test_sgd_takes_any_shape():
    rng = np.random.default_rng(8)
    w, g, v = (rng.standard_normal((5, 3, 3, 3), dtype=np.float32) for _ in range(3))
    w2, v2 = w.copy(), v.copy()
    pw.sgd_update(w, g, v, 0.1, 0.9, 1e-4)
    pw.sgd_update(w2.reshape(-1), g.reshape(-1), v2.reshape(-1), 0.1, 0.9, 1e-4)
    np.testing.assert_array_equal(w, w2)
    assert pw.sgd_update(np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                         0.1, 0.9, 0.0) == 0.0


# ------------------------------------------------------------------ NaN and infinity in max|result|


def test_max_reports_nan_and_inf_wherever_they_are(lanes):
    rng = np.random.default_rng(9)
    shape = (3, 2, 3, 3, lanes)
    _, z = blocked(shape, rng), blocked(shape, rng)   # the first draw keeps the generator where it was
    a, b = per_channel(shape, rng), per_channel(shape, rng)
    out = aligned_empty(shape, np.float32)
    for where in [(0, 0, 0, 0, 0), (2, 1, 2, 2, lanes - 1)]:   # first and last item: first and last range
        x2 = blocked(shape, rng)
        x2[where] = np.nan
        for relu in (False, True):
            for threads in THREADS:
                assert np.isnan(pw.affine(x2, a, b, out, relu, threads=threads))
        assert np.isnan(pw.add(x2, z, out, 3))
        assert np.isnan(pw.bn_grad_apply(z, x2, a, b, a, out, 2))
        x2[where] = -np.inf
        assert pw.add(x2, z, out, 3) == np.inf
    dy, pos = blocked(shape, rng), blocked(shape, rng)
    pos[...] = np.abs(pos) + np.float32(1)
    dy[1, 1, 1, 1, 1] = np.nan
    assert np.isnan(pw.relu_grad(dy, pos, out, 2))


@pytest.mark.parametrize("size", [1, 17, 4096 + 3])
def test_sgd_max_reports_nan_in_the_tail(lanes, size):
    w, g, v = np.ones(size, np.float32), np.ones(size, np.float32), np.zeros(size, np.float32)
    g[-1] = np.nan
    assert np.isnan(pw.sgd_update(w, g, v, 0.1, 0.9, 0.0, 2, lanes=lanes))


# ------------------------------------------------------------------ plans, kernels, definitions


def test_avx2_plan_has_eight_lanes_and_runs_here():
    p = cp.plan(pw.ADD, isa="avx2")
    assert p.lanes == 8 and "<8 x float>" in cp.render(p) and "<16 x" not in cp.render(p)
    rng = np.random.default_rng(10)
    shape = (2, 3, 5, 5, 8)
    a, b, out = blocked(shape, rng), blocked(shape, rng), aligned_empty(shape, np.float32)
    _, m = cp.kernel(p).run({"a": a, "b": b, "out": out}, 25, 6, 3, threads=2)
    np.testing.assert_array_equal(out, a + b)
    assert float(m) == np.abs(out).max()


def test_each_kernel_compiles_once():
    first = cp.kernel(cp.plan(pw.AFFINE, relu=True, residual=False, scale=False, shift=False))
    again = cp.kernel(cp.plan(pw.AFFINE, relu=True, residual=False, scale=False, shift=False))
    assert first is again


def test_sgd_kernel_never_contracts_and_max_never_uses_maxnum():
    sgd = cp.render(cp.plan(pw.SGD, decay=True))
    assert " contract " not in sgd and "@llvm.fma" not in sgd and " fmul " in sgd
    for op, flags in [(pw.SGD, {"decay": True}), (pw.ADD, {})]:
        ir = cp.render(cp.plan(op, **flags))
        assert "maxnum" not in ir and "llvm.umax" in ir


def test_an_op_is_one_definition():
    # An op the module does not know: y = x*x + s, with sum y per channel, planned and run from its
    # definition alone.
    op = cp.Op("square_shift", "y = x*x + s", lambda: cp.Body(
        stores=(("y", cp.Tensor("x") * cp.Tensor("x") + cp.Channel("s")),),
        sums=(cp.Wide(cp.Tensor("x") * cp.Tensor("x") + cp.Channel("s")),),
        maxabs=cp.Tensor("x") * cp.Tensor("x") + cp.Channel("s")))
    p = cp.plan(op)
    assert len(p.instrs) == 3    # x*x, + s, widen: each subexpression once
    rng = np.random.default_rng(11)
    L = p.lanes
    shape = (2, 2, 3, 1, L)
    x, y, s = blocked(shape, rng), aligned_empty(shape, np.float32), per_channel(shape, rng)
    slots, m = cp.kernel(p).run({"x": x, "y": y, "s": s}, 3, 4, 2)
    ref = x.astype(np.float64) ** 2 + bc(s, shape)
    assert np.allclose(y, ref, rtol=4 * U32, atol=4 * U32 * np.abs(ref).max())
    assert slots.shape == (4, 1, L) and float(m) == np.abs(y).max()


@pytest.mark.parametrize("body, match", [
    (lambda: cp.Body(sums=(cp.Tensor("x"),)), "sum must be a float64"),
    (lambda: cp.Body(stores=(("y", cp.Wide(cp.Tensor("x"))),)), "store 'y' must be a float32"),
    (lambda: cp.Body(stores=(("y", cp.Wide(cp.Tensor("x")) + cp.Tensor("x")),)), "Wide"),
    (lambda: cp.Body(stores=(("y", cp.Tensor("x") + cp.Channel("x")),)), "operand 'x' used as tensor and channel"),
    (lambda: cp.Body(stores=(("y", cp.Where("olt", cp.Tensor("x"), cp.Tensor("x"))),)), "predicate 'olt'"),
])
def test_malformed_definitions_are_refused(body, match):
    with pytest.raises(PlanError, match=match):
        cp.plan(cp.Op("bad", "-", body))


def test_flat_ops_take_no_channels():
    with pytest.raises(PlanError, match="flat kernels take only tensor and scalar"):
        cp.plan(cp.Op("bad", "-", lambda: cp.Body(stores=(("y", cp.Channel("c")),)), flat=True))


# ------------------------------------------------------------------ refusals: one line, naming the argument


def _refusal(call, error, *words):
    with pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_refusals(lanes):
    rng = np.random.default_rng(12)
    shape = (2, 2, 3, 3, lanes)
    x, out = blocked(shape, rng), aligned_empty(shape, np.float32)
    a, b = per_channel(shape, rng), per_channel(shape, rng)
    unaligned = np.empty(x.size + 1, np.float32)[1:].reshape(shape)
    if unaligned.ctypes.data % 64 == 0:
        unaligned = np.empty(x.size + 2, np.float32)[2:].reshape(shape)
    _refusal(lambda: pw.affine(x.astype(np.float64), a, b, out), DTypeError, "affine", "x", "float64", "float32")
    _refusal(lambda: pw.affine(x, a, b, out[:1]), ShapeError, "out", "must be (2, 2, 3, 3")
    _refusal(lambda: pw.affine(x, a[:-1], b, out), ShapeError, "a:", f"({2 * lanes},)")
    _refusal(lambda: pw.affine(x, a, b.astype(np.float16), out), DTypeError, "b:", "float16")
    _refusal(lambda: pw.affine(x, a, b, unaligned), ShapeError, "out", "64-byte aligned", "aligned_empty")
    _refusal(lambda: pw.add(x, np.asfortranarray(x), out), ShapeError, "b:", "C-contiguous")
    _refusal(lambda: pw.add(x, [1.0], out), DTypeError, "b:", "list")
    five = aligned_empty(shape[:4] + (5,), np.float32)
    _refusal(lambda: pw.relu_grad(five, five, five), ShapeError, "dy", "lanes", "is 5")
    _refusal(lambda: pw.channel_sums(x[0]), ShapeError, "x:", "(N, CB, H, W, L)")
    _refusal(lambda: pw.affine(x, a, b, out, c=a), ShapeError, "c and d", "z")
    readonly = blocked(shape, rng)
    readonly.flags.writeable = False
    _refusal(lambda: pw.add(x, x, readonly), ShapeError, "out", "read-only")
    w = np.zeros(10, np.float32)
    _refusal(lambda: pw.sgd_update(w, np.zeros(9, np.float32), w.copy(), 0.1, 0.9, 0.0), ShapeError, "g:", "(10,)")
    _refusal(lambda: pw.sgd_update(w, w.copy(), w.astype(np.float64), 0.1, 0.9, 0.0), DTypeError, "v:", "float32")
    _refusal(lambda: pw.sgd_update(w, w.copy(), w.copy(), 0.1, 0.9, 0.0, lanes=4), ShapeError, "lanes", "is 4")


# ------------------------------------------------------------------ packs: quantized stores into other layouts

ROUNDINGS = ("nearest", "nearest_even", "chop", "biased", "stochastic")


def _pack_reference(values: np.ndarray, exp: int, bits: int, rounding: str, key) -> np.ndarray:
    """The INT16 mantissas a generated conversion writes for a blocked tensor (identity layout)."""
    from dfpgen.runtime.blocked import fill
    ref = np.zeros(values.shape, np.int16)
    fill(ref, [(values, ref)], values, None, 1, exp=exp, bits=bits, rounding=rounding, key=key)
    return ref


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("stride", cp.PACK_STRIDES)
@pytest.mark.parametrize("bits", [8, 13, 16])
def test_packs_quantize_exactly_as_the_conversion_kernels(lanes, rounding, stride, bits):
    from dfpgen.core.dfp import exponent_for_max
    from dfpgen.core.stochastic import StreamKey
    rng = np.random.default_rng(13)
    shape = (2, 3, 5, 3, lanes)
    x, out = blocked(shape, rng), aligned_empty(shape, np.float32)
    a, b = per_channel(shape, rng), per_channel(shape, rng)
    m = pw.affine(x, a, b, out, True)
    key = StreamKey(5, 9) if rounding == "stochastic" else None
    exp = exponent_for_max(m, bits)
    ref = _pack_reference(out, exp, bits, rounding, key)
    N, CB, H, W, L = shape
    # items in reverse order and pixels spread apart: positions need not follow the blocked order
    pixels = (np.arange(H * W) * L * stride)[::-1].astype(np.int32)
    items = (np.arange(N * CB) * H * W * L * stride).astype(np.int64)[::-1].copy()

    def run(threads):
        dst = np.full(out.size * stride, 7, np.int16)
        target = pw.PackTarget(dst, items, pixels.copy(), stride)
        got = pw.affine(x, a, b, aligned_empty(shape, np.float32), True, threads=threads, packs=(target,),
                        quantizer=pw.Quantizer(exp, bits, rounding, key))
        return dst, np.float32(got)

    dst, got = each_thread_count(run)
    assert got == np.float32(m)
    lanes_at = items[:, None, None] + pixels[None, :, None] + stride * np.arange(L)
    assert np.array_equal(dst[lanes_at].reshape(shape), ref)
    if stride == 2:
        assert (dst[1::2] == 7).all(), "a stride-2 pack wrote between its lanes"


def test_bn_grad_apply_packs_without_storing_fp32(lanes):
    from dfpgen.core.dfp import exponent_for_max
    rng = np.random.default_rng(14)
    shape = (2, 2, 3, 4, lanes)
    dz, x, dx = blocked(shape, rng), blocked(shape, rng), aligned_empty(shape, np.float32)
    a, b, c = (per_channel(shape, rng) for _ in range(3))
    m = pw.bn_grad_apply(dz, x, a, b, c, dx, 1)
    exp = exponent_for_max(m, 14)
    N, CB, H, W, L = shape
    target = pw.PackTarget(np.zeros(dz.size, np.int16), (np.arange(N * CB) * H * W * L).astype(np.int64),
                           (np.arange(H * W) * L).astype(np.int32), 1)
    got = pw.bn_grad_apply(dz, x, a, b, c, None, 2, packs=(target,), quantizer=pw.Quantizer(exp, 14, "nearest"))
    assert got == m and np.array_equal(target.dst.reshape(shape), _pack_reference(dx, exp, 14, "nearest", None))


def test_pack_refusals(lanes):
    rng = np.random.default_rng(15)
    shape = (1, 2, 2, 2, lanes)
    x, out = blocked(shape, rng), aligned_empty(shape, np.float32)
    a, b = per_channel(shape, rng), per_channel(shape, rng)
    items, pixels = np.array([0, 4 * lanes], np.int64), (np.arange(4) * lanes).astype(np.int32)
    q = pw.Quantizer(0, 14, "nearest")
    short = pw.PackTarget(np.zeros(8 * lanes - 1, np.int16), items, pixels, 1)
    _refusal(lambda: pw.affine(x, a, b, out, packs=(short,), quantizer=q), ShapeError, "pack", "positions")
    wrong = pw.PackTarget(np.zeros(8 * lanes, np.int16), items[:1], pixels, 1)
    _refusal(lambda: pw.affine(x, a, b, out, packs=(wrong,), quantizer=q), ShapeError, "pack", "items")
    floats = pw.PackTarget(np.zeros(8 * lanes, np.float32), items, pixels, 1)
    _refusal(lambda: pw.affine(x, a, b, out, packs=(floats,), quantizer=q), ShapeError, "pack", "int16")
    target = pw.PackTarget(np.zeros(8 * lanes, np.int16), items, pixels, 1)
    _refusal(lambda: pw.affine(x, a, b, out, packs=(target,)), ShapeError, "affine", "quantizer")
    _refusal(lambda: pw.affine(x, a, b, out, packs=(target,), quantizer=pw.Quantizer(0, 14, "stochastic")),
             PlanError, "stochastic", "StreamKey")
    with pytest.raises(NumericsError, match="exp=200"):
        pw.Quantizer(200, 14, "nearest")
    with pytest.raises(PlanError, match="pack stride 3"):
        cp.plan(pw.AFFINE, relu=False, residual=False, scale=False, shift=False, packed=1, rounding="nearest",
                pack_strides=(3,))
    with pytest.raises(PlanError, match="one lane stride per pack"):
        cp.plan(pw.AFFINE, relu=False, residual=False, scale=False, shift=False, packed=1, rounding="nearest")
