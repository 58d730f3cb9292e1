"""Independent float64 references for the backward passes (BPROP and WTGRAD); no dfpgen code here.

Definitions (PyTorch conv2d semantics, square stride `st` and zero padding `pad`):

    BPROP   dx[n,c,h,w] = sum_{k,r,s} dy[n,k,p,q] * w[k,c,r,s]   over h = p*st + r - pad, w = q*st + s - pad
    WTGRAD  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n,c,p*st + r - pad, q*st + s - pad]

`bprop_f64` computes dx by scatter-add: for every tap (r, s) the (C x K) @ (K x N*P*Q) product of the
tap's weights with dy is added into a zero-padded dx at rows p*st + r, columns q*st + s, and the
padding is cropped. `wtgrad_f64` computes dw by direct correlation: for every tap the strided window of
the zero-padded x is contracted with dy over (n, p, q). Neither shares code with the kernels' planners
(which split BPROP into stride phases and reduce WTGRAD over q-pairs), and tests/test_*.py check both
against torch autograd as well.

Exactness of the references on integer mantissas
------------------------------------------------
Every product of two mantissas is an integer of magnitude < 2**30 (16-bit mantissas: 32767**2 < 2**30),
exact in float64. If, in addition, sum |a*b| < 2**53 over the terms of every output (checked as
max|a| * max|b| * terms < 2**53, terms = K*R*S for BPROP, N*P*Q for WTGRAD), every partial sum in any
order (BLAS blocking and FMAs included) is an integer of magnitude < 2**53, hence exact. The `*_int`
functions assert both preconditions; the `*_abs` versions (|a|, |b|) give the magnitude the error
bounds are relative to, exactly.

Error bound of a DFP kernel (derived here; docs/numerics.md "The flush error bound")
-------------------------------------------------------------------------------------------
The kernel multiplies INT16 mantissas a (exponent ea) and b (exponent eb) and accumulates the pair
products in INT32 for plan.steps_per_flush steps (one "chunk"), then flushes
    out = fma(float32(chunk), 2**(ea+eb), first chunk ? 0 : out).
Let F = plan.flushes (the most chunks of any output), c_1..c_F the chunk sums of one output (exact
integers: under overflow='exact' no chunk can leave INT32), S = sum_k |c_k| <= abs_ref (the
triangle inequality inside each chunk), scale = 2**(ea+eb) (a power of two: multiplying by it is
exact while results stay normal). With u = 2**-24:
    s_1 = fl(c_1) * scale                       (sitofp rounds once; the fma adds an exact 0)
    s_k = fl(fl(c_k) * scale + s_{k-1})          (sitofp rounding + one fma rounding)
c_1 and c_2 pass through F roundings, c_k (k >= 3) through F - k + 2, so (Higham, "Accuracy and
Stability of Numerical Algorithms", thm 4.4, recursive summation with perturbed summands)
    |s_F - scale * sum_k c_k| <= gamma_F * S * scale,      gamma_n = n u / (1 - n u).
When 2**(ea+eb) is no normal float32, Conv2d runs the kernel with scale 1 and multiplies in float64
afterwards, one more rounding to float32. So in all cases

    |result - exact| <= gamma_{F+1} * abs_ref * 2**(ea+eb)  ~=  (F + 1) * u * abs_ref * 2**(ea+eb)

(`dfp_bound` uses the rigorous gamma form; to first order in u it is the (F + 1) u form).

Exactness: where abs_ref < 2**24 every chunk sum and every partial FP32 sum of that output is an
integer of magnitude < 2**24, representable in FP32, so nothing rounds and the result equals the
exact integer sum times the power-of-two scale, bit for bit (`exact_to_f32`).

FP32 kernels (precision='fp32') accumulate n products with one fma each (one rounding per term; a
zero-padded term adds an exact 0), then store with an exact fma(acc, 1, 0): |y - exact| <=
gamma_n * abs_ref for n = the reduction length (K*R*S for BPROP, N*P*Q for WTGRAD), whatever the
order; the float64 reference adds at most gamma64_n * abs_ref (`fp32_bound`).
"""

from __future__ import annotations

import math

import numpy as np

U32 = 2.0**-24          # FP32 unit roundoff
U64 = 2.0**-53          # FP64 unit roundoff
INT32_MAX = 2**31 - 1


# ------------------------------------------------------------------------------------ basics


def max_mant(bits: int) -> int:
    """Largest DFP mantissa magnitude of a `bits`-bit tensor."""
    return 2 ** (bits - 1) - 1


def safe_chain_ref(bits_a: int, bits_b: int) -> int:
    """safe_chain (docs/numerics.md "The accumulate chain"): pair-instructions (2 products each) that
    can never overflow INT32."""
    return INT32_MAX // (2 * max_mant(bits_a) * max_mant(bits_b))


def gamma(n: int, u: float = U32) -> float:
    """Higham's gamma_n = n u / (1 - n u)."""
    assert n * u < 1, n
    return n * u / (1 - n * u)


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def random_mant(rng: np.random.Generator, shape, limit: int) -> np.ndarray:
    """Uniform int16 mantissas in [-limit, limit]."""
    return rng.integers(-limit, limit + 1, size=shape, dtype=np.int64).astype(np.int16)


def small_mant_limit(terms: int) -> int:
    """The largest m with terms * m*m < 2**24: mantissas in [-m, m] make every output exact."""
    m = math.isqrt((2**24 - 1) // terms)
    while terms * m * m >= 2**24:
        m -= 1
    return max(1, min(m, max_mant(16)))


def bprop_terms(K: int, R: int, S: int) -> int:
    """An upper bound on the products summed into one dx element."""
    return K * R * S


def wtgrad_terms(N: int, P: int, Q: int) -> int:
    """The products summed into one dw element."""
    return N * P * Q


def _windows(x: np.ndarray, R: int, S: int, stride: int, pad: int):
    """Yield (r, s, xs) with xs[n, c, p, q] = xpad[n, c, p*stride + r, q*stride + s] (float64)."""
    N, C, H, W = x.shape
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), np.float64)
    xp[:, :, pad:pad + H, pad:pad + W] = x
    for r in range(R):
        for s in range(S):
            yield r, s, xp[:, :, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]


# ------------------------------------------------------------------------------ float64 passes


def conv_f64(x: np.ndarray, w: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Forward cross-correlation NCHW x KCRS -> NKPQ in float64 (for the loss of the finite differences)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    y = np.zeros((N, K, P, Q), np.float64)
    for r, s, xs in _windows(x, R, S, stride, pad):
        y += np.einsum("kc,ncpq->nkpq", w[:, :, r, s], xs, optimize=True)
    return y


def bprop_f64(dy: np.ndarray, w: np.ndarray, H: int, W: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """dx (N, C, H, W) by scatter-add over the taps, in float64."""
    dy = np.asarray(dy, np.float64)
    w = np.asarray(w, np.float64)
    N, K, P, Q = dy.shape
    K2, C, R, S = w.shape
    assert K == K2 and (P, Q) == (out_size(H, R, stride, pad), out_size(W, S, stride, pad)), (dy.shape, w.shape)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), np.float64)
    cols = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(K, N * P * Q)
    for r in range(R):
        for s in range(S):
            contrib = (w[:, :, r, s].T @ cols).reshape(C, N, P, Q).transpose(1, 0, 2, 3)
            dxp[:, :, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride] += contrib
    return np.ascontiguousarray(dxp[:, :, pad:pad + H, pad:pad + W])


def wtgrad_f64(x: np.ndarray, dy: np.ndarray, R: int, S: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """dw (K, C, R, S) by direct correlation of x's windows with dy, in float64."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    N, C, H, W = x.shape
    N2, K, P, Q = dy.shape
    assert N == N2 and (P, Q) == (out_size(H, R, stride, pad), out_size(W, S, stride, pad)), (x.shape, dy.shape)
    dw = np.zeros((K, C, R, S), np.float64)
    g = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(K, N * P * Q)
    for r, s, xs in _windows(x, R, S, stride, pad):
        dw[:, :, r, s] = g @ np.ascontiguousarray(xs.transpose(0, 2, 3, 1)).reshape(N * P * Q, C)
    return dw


def loss_f64(x: np.ndarray, w: np.ndarray, G: np.ndarray, stride: int, pad: int) -> float:
    """L = sum(conv(x, w) * G) in float64: dL/dx = bprop(G, w), dL/dw = wtgrad(x, G)."""
    return float(np.sum(conv_f64(x, w, stride, pad) * np.asarray(G, np.float64)))


# --------------------------------------------------------------------- exact integer versions


def _check_exact(a: np.ndarray, b: np.ndarray, terms: int) -> None:
    assert np.asarray(a).dtype.kind in "iu" and np.asarray(b).dtype.kind in "iu", "integer mantissas only"
    pa = int(np.max(np.abs(np.asarray(a, np.int64)))) if np.size(a) else 0
    pb = int(np.max(np.abs(np.asarray(b, np.int64)))) if np.size(b) else 0
    assert pa * pb < 2**30, f"a product {pa}*{pb} must be < 2**30 (exact in float64)"
    assert pa * pb * terms < 2**53, f"sums of {terms} products of {pa}*{pb} must stay < 2**53"


def bprop_int(dym: np.ndarray, wm: np.ndarray, H: int, W: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Exact integer dx of integer mantissas (float64 holding integers)."""
    _check_exact(dym, wm, bprop_terms(*np.shape(wm)[:1], *np.shape(wm)[2:]))
    return bprop_f64(dym, wm, H, W, stride, pad)


def bprop_abs(dym: np.ndarray, wm: np.ndarray, H: int, W: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """bprop(|dy|, |w|): exact for integers, float64 otherwise."""
    a, b = np.abs(np.asarray(dym)), np.abs(np.asarray(wm))
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return bprop_int(a.astype(np.int64), b.astype(np.int64), H, W, stride, pad)
    return bprop_f64(a, b, H, W, stride, pad)


def wtgrad_int(xm: np.ndarray, dym: np.ndarray, R: int, S: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Exact integer dw of integer mantissas (float64 holding integers)."""
    N, _, P, Q = np.shape(dym)
    _check_exact(xm, dym, wtgrad_terms(N, P, Q))
    return wtgrad_f64(xm, dym, R, S, stride, pad)


def wtgrad_abs(xm: np.ndarray, dym: np.ndarray, R: int, S: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """wtgrad(|x|, |dy|): exact for integers, float64 otherwise."""
    a, b = np.abs(np.asarray(xm)), np.abs(np.asarray(dym))
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return wtgrad_int(a.astype(np.int64), b.astype(np.int64), R, S, stride, pad)
    return wtgrad_f64(a, b, R, S, stride, pad)


# --------------------------------------------------------------------------------- the bounds


def dfp_bound(abs_ref: np.ndarray, flushes: int, scale_exp: int = 0) -> np.ndarray:
    """|result - exact| <= gamma_{F+1} * abs_ref * 2**scale_exp (module docstring)."""
    return gamma(flushes + 1) * np.ldexp(np.asarray(abs_ref, np.float64), scale_exp)


def fp32_bound(abs_ref: np.ndarray, terms: int) -> np.ndarray:
    """|y - ref64| of an FP32 kernel reducing `terms` products per output, plus the reference's own error."""
    return (gamma(terms) + gamma(terms, U64)) * np.asarray(abs_ref, np.float64)


def exact_to_f32(exact: np.ndarray, scale_exp: int = 0) -> np.ndarray:
    """The correctly rounded float32 of exact * 2**scale_exp (exact: float64 holding integers)."""
    return np.ldexp(exact, scale_exp).astype(np.float32)


def flush_sum(chunks, scale_exp: int = 0) -> np.ndarray:
    """Bit-exact model of the kernel's flushes: out = fma(float32(c_k), 2**scale_exp, out) in chunk
    order (out = 0 before the first). float32(c_k) * 2**e is exact, and the sum of two such values
    (integers below 2**53 times 2**e) is exact in float64, so one cast to float32 is the fma's single
    rounding."""
    out = None
    for c in chunks:
        c = np.asarray(c, np.int64)
        assert np.all(np.abs(c) <= INT32_MAX + 1), "a chunk sum must fit INT32"
        term = np.ldexp(c.astype(np.float32).astype(np.float64), scale_exp)
        total = term if out is None else term + out.astype(np.float64)
        assert np.all(np.abs(np.ldexp(total, -scale_exp)) < 2.0**53)
        out = total.astype(np.float32)
    return out


# --------------------------------------------------------------------------- quantization


def quantize_ref(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """DFP quantization (docs/numerics.md "DFP tensors") with rounding 'nearest' (ties away from zero): exp =
    floor(log2 max|x|) - (bits - 2), mant = round(x / 2**exp), saturated to +-(2**(bits-1) - 1)."""
    x = np.asarray(x, np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0:
        return np.zeros(x.shape, np.int16), 0
    exp = math.frexp(peak)[1] - 1 - (bits - 2)   # peak = m 2**e, m in [0.5, 1): floor(log2 peak) = e - 1
    v = np.ldexp(x, -exp)                         # exact
    mag = np.floor(np.abs(v) + 0.5)               # exact: |v| < 2**15, so adding 0.5 does not round
    top = max_mant(bits)
    return np.clip(np.copysign(mag, v), -top, top).astype(np.int16), exp


def quant_exp(x: np.ndarray, bits: int) -> int:
    """The exponent quantize_ref picks (the same for every rounding mode)."""
    return quantize_ref(x, bits)[1]


def dequant(mant: np.ndarray, exp: int) -> np.ndarray:
    return np.ldexp(np.asarray(mant, np.float64), exp)


# ------------------------------------------------------------------------------ test shapes

# (N, C, K, H, W, R, S, stride, pad). Strides 1..4, pads 0..3, R and S 1..11 (non-square too), channel
# counts 1, 2, 3, 5, 17, 100, 130 off the 8/16 multiples, N = 1 and 3, P = 1 and Q = 1, odd Q (a zero
# q-pair in WTGRAD), R < stride (BPROP phases without taps), pad >= R, inputs smaller than the
# register block, rows and columns of x that no window reaches (zero dx there).
SWEEP_SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0),
    (3, 3, 5, 7, 9, 3, 3, 1, 1),
    (1, 16, 16, 8, 8, 3, 3, 1, 1),
    (1, 17, 17, 9, 10, 3, 3, 2, 1),
    (3, 5, 96, 11, 11, 1, 1, 2, 0),
    (1, 100, 3, 13, 13, 5, 5, 2, 2),
    (1, 3, 16, 23, 23, 11, 11, 4, 0),
    (1, 5, 17, 12, 15, 11, 7, 4, 3),
    (1, 17, 5, 5, 3, 1, 7, 1, 3),
    (1, 3, 1, 4, 17, 2, 9, 1, 0),
    (3, 16, 33, 2, 3, 2, 2, 1, 0),
    (1, 7, 96, 1, 1, 1, 1, 1, 0),
    (1, 96, 16, 7, 7, 7, 7, 1, 0),
    (3, 17, 100, 9, 9, 3, 3, 2, 0),
    (1, 5, 5, 3, 3, 3, 3, 1, 3),
    (1, 16, 16, 17, 19, 5, 3, 4, 2),
    (1, 3, 3, 2, 2, 5, 5, 1, 2),
    (1, 100, 17, 14, 14, 1, 1, 2, 0),
    (1, 1, 100, 10, 10, 4, 4, 2, 1),
    (3, 1, 16, 6, 31, 1, 11, 1, 0),
    (1, 5, 3, 33, 2, 11, 1, 1, 0),
    (1, 17, 96, 19, 1, 3, 1, 4, 1),
    (1, 96, 5, 1, 9, 1, 3, 1, 1),
    (1, 3, 17, 8, 8, 8, 8, 2, 3),
    (1, 100, 100, 4, 4, 2, 2, 4, 0),
    (3, 3, 3, 5, 5, 6, 6, 1, 1),
    (1, 2, 130, 3, 5, 3, 3, 1, 1),
    (1, 130, 2, 6, 6, 10, 2, 1, 2),
    (1, 5, 17, 9, 9, 3, 3, 3, 0),
    (3, 17, 5, 10, 10, 2, 2, 3, 1),
    (1, 3, 5, 13, 13, 1, 1, 4, 0),
    (1, 5, 3, 7, 7, 3, 3, 3, 3),
    (1, 17, 3, 8, 9, 4, 3, 4, 2),
    (3, 1, 5, 5, 7, 5, 5, 2, 2),
    (1, 3, 2, 2, 2, 1, 1, 3, 1),
    (1, 5, 17, 11, 12, 9, 10, 2, 1),
    (3, 17, 3, 10, 9, 10, 9, 3, 0),
]


def shape_id(spec) -> str:
    return "N{}C{}K{}_{}x{}_r{}s{}_st{}p{}".format(spec.N, spec.C, spec.K, spec.H, spec.W, spec.R, spec.S,
                                                 spec.stride, spec.pad)
