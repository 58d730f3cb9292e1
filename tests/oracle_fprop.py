"""Independent reference arithmetic for the kernel tests (no dfpgen code is imported here).

What the FPROP kernels compute (docs/numerics.md "DFP tensors", "The accumulate chain", "Flushes to FP32"):
with INT16 mantissas xm (NCHW, exponent ex) and wm (KCRS, exponent ew) the output is

    y ~= conv(xm, wm) * 2**(ex + ew)

where conv is the exact integer cross-correlation with zero padding `pad` and stride `stride`
(PyTorch conv2d semantics). The kernel accumulates INT16 pair products in INT32 for at most one
"chunk" of the reduction (plan.steps_per_flush steps), then flushes: out = fma(float32(chunk),
scale, out), in chunk order, F = plan.flushes flushes per output.

Error bound of the flushed sum (derived here, used by every DFP test)
--------------------------------------------------------------------
Let c_1..c_F be the exact integer chunk sums (exact under overflow='exact': no chunk can leave
INT32) and S = sum |c_k| <= conv(|xm|, |wm|) (the triangle inequality per chunk). With u = 2**-24
(unit roundoff of FP32, round to nearest) and a power-of-two scale (multiplying by it is exact
unless the result leaves the normal range, which the tests avoid):

    s_1 = fl(c_1)                      (sitofp: one rounding; the fma with base 0 is exact)
    s_k = fl(fl(c_k) * scale + s_{k-1})  (sitofp rounding + one fma rounding)

Unrolling, c_1 and c_2 each pass through F roundings, c_k (k >= 3) through F - k + 2 of them, so
by the standard recursive-summation argument (Higham, Accuracy and Stability, thm 4.4)

    |s_F - sum c_k| <= gamma_F * S,     gamma_n = n*u / (1 - n*u).

Conv2d may also scale once more in float64 and round to float32 (when 2**(ex+ew) is no normal
float32), one more rounding: the total stays within gamma_{F+1} * S, which to first order is the
(F + 1) * u * conv(|xm|, |wm|) * 2**(ex+ew) of the brief; `dfp_bound` uses the rigorous gamma form.

Exactness: if conv(|xm|, |wm|) < 2**24 at an output, every INT32 chunk and every partial FP32
sum there is an integer of magnitude < 2**24, representable in FP32, so no rounding happens and
y equals the exact integer result (times the power-of-two scale) bit for bit.

FP32 kernels (precision='fp32') accumulate n = C*R*S products x*w with one fma each (the product
inside an fma is exact, so each step rounds once; zero-padded terms add an exact 0). The same
recursive-summation argument gives |y - conv(x, w)| <= gamma_n * conv(|x|, |w|), whatever the
summation order; the float64 reference itself is off by at most gamma64_n * conv(|x|, |w|).

The reference conv: the per-tap im2col + matmul below in float64. Every product of two int16
mantissas is an integer < 2**30 (exact in float64), and as long as sum |x*w| < 2**53 every
partial sum, in any order (BLAS blocking and FMA included), is an integer < 2**53 and so exact.
`conv_int` asserts that precondition.
"""

from __future__ import annotations

import math

import numpy as np

U32 = 2.0**-24          # FP32 unit roundoff
U64 = 2.0**-53          # FP64 unit roundoff
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def max_mant(bits: int) -> int:
    """Largest DFP mantissa magnitude of a `bits`-bit tensor."""
    return 2 ** (bits - 1) - 1


def safe_chain_ref(bits_x: int, bits_w: int) -> int:
    """safe_chain (docs/numerics.md "The accumulate chain"): pair-instructions (2 products each) that
    can never overflow INT32."""
    return INT32_MAX // (2 * max_mant(bits_x) * max_mant(bits_w))


def gamma(n: int, u: float = U32) -> float:
    """Higham's gamma_n = n u / (1 - n u) (n roundings of relative size <= u)."""
    assert n * u < 1, n
    return n * u / (1 - n * u)


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def _taps(x: np.ndarray, R: int, S: int, stride: int, pad: int):
    """Yield (r, s, xs) with xs[n, c, p, q] = xpad[n, c, p*stride + r, q*stride + s] (float64)."""
    N, C, H, W = x.shape
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), np.float64)
    xp[:, :, pad:pad + H, pad:pad + W] = x
    for r in range(R):
        for s in range(S):
            yield r, s, xp[:, :, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]


def conv_f64(x: np.ndarray, w: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Cross-correlation in float64 (NCHW x KCRS -> NKPQ), im2col one tap at a time + matmul."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    K, C2, R, S = w.shape
    assert C == C2, (x.shape, w.shape)
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    y = np.zeros((N, K, P, Q), np.float64)
    for r, s, xs in _taps(x, R, S, stride, pad):
        # (K, C) @ (C, N*P*Q): the im2col column block of tap (r, s)
        cols = np.ascontiguousarray(xs.transpose(1, 0, 2, 3)).reshape(C, N * P * Q)
        y += (w[:, :, r, s] @ cols).reshape(K, N, P, Q).transpose(1, 0, 2, 3)
    return y


def _check_exact_precondition(xm: np.ndarray, wm: np.ndarray) -> None:
    C, R, S = wm.shape[1:]
    px = int(np.max(np.abs(xm.astype(np.int64)))) if xm.size else 0
    pw = int(np.max(np.abs(wm.astype(np.int64)))) if wm.size else 0
    assert px * pw < 2**31, "a product must be exact in float64 (and fit the INT32 argument)"
    assert px * pw * C * R * S < 2**53, "sums must stay below 2**53 for float64 to be exact"


def conv_int(xm: np.ndarray, wm: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Exact integer cross-correlation of integer mantissas, as float64 holding integers."""
    assert np.asarray(xm).dtype.kind in "iu" and np.asarray(wm).dtype.kind in "iu"
    _check_exact_precondition(xm, wm)
    return conv_f64(xm, wm, stride, pad)


def conv_abs(xm: np.ndarray, wm: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """conv(|x|, |w|): the magnitude every error bound is relative to (exact for integers)."""
    ax, aw = np.abs(np.asarray(xm).astype(np.int64)), np.abs(np.asarray(wm).astype(np.int64))
    if np.asarray(xm).dtype.kind in "iu" and np.asarray(wm).dtype.kind in "iu":
        return conv_int(ax, aw, stride, pad)
    return conv_f64(np.abs(np.asarray(xm, np.float64)), np.abs(np.asarray(wm, np.float64)), stride, pad)


def dfp_bound(absconv: np.ndarray, flushes: int, scale: float = 1.0) -> np.ndarray:
    """|y - exact| bound of a DFP kernel output (module docstring): gamma_{F+1} * conv(|x|,|w|) * scale."""
    return gamma(flushes + 1) * absconv * scale


def fp32_bound(absconv: np.ndarray, terms: int) -> np.ndarray:
    """|y - conv64(x, w)| bound of an FP32 kernel with `terms` = C*R*S products per output, plus the
    float64 reference's own error."""
    return (gamma(terms) + gamma(terms, U64)) * absconv


def exact_to_f32(exact: np.ndarray, scale_exp: int = 0) -> np.ndarray:
    """The correctly rounded float32 of exact * 2**scale_exp (exact is float64 holding integers)."""
    return np.ldexp(exact, scale_exp).astype(np.float32)


def small_mant_limit(C: int, R: int, S: int) -> int:
    """The largest m with C*R*S*m*m < 2**24: mantissas in [-m, m] give an exact kernel result."""
    m = math.isqrt((2**24 - 1) // (C * R * S))
    while C * R * S * m * m >= 2**24:
        m -= 1
    return max(1, min(m, max_mant(16)))


def random_mant(rng: np.random.Generator, shape, limit: int) -> np.ndarray:
    """Uniform int16 mantissas in [-limit, limit]."""
    return rng.integers(-limit, limit + 1, size=shape, dtype=np.int64).astype(np.int16)


# ------------------------------------------------------------------------ quantization reference

def quantize_ref(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """DFP quantization (docs/numerics.md "DFP tensors") with rounding 'nearest' (ties away from zero): exp =
    floor(log2 max|x|) - (bits - 2), mant = round(x / 2**exp), saturated. Returns (mant, exp)."""
    x = np.asarray(x, np.float64)
    peak = float(np.max(np.abs(x)))
    if peak == 0:
        return np.zeros(x.shape, np.int16), 0
    e = math.frexp(peak)[1] - 1            # peak = m * 2**e', m in [0.5, 1): floor(log2 peak) = e' - 1
    exp = e - (bits - 2)
    v = np.ldexp(x, -exp)                   # exact
    mag = np.floor(np.abs(v) + 0.5)         # exact: |v| < 2**15 so +0.5 does not round
    top = max_mant(bits)
    return np.clip(np.copysign(mag, v), -top, top).astype(np.int16), exp


# ------------------------------------------------------------------------ flush-chunk emulation

def chunk_of_channels(C: int, R: int, S: int, cpb: int, unroll: int, steps_per_flush: int,
                      elem: int = 2) -> np.ndarray:
    """chunk[c, r, s]: which flush chunk the product of input channel c at tap (r, s) falls in.

    The reduction runs over steps t = ((cb*R + r)*S + s)*G + g with G = cpb/unroll, each step doing
    `unroll` pair-instructions on channel elements cb*cpb + g*unroll + p (an element is `elem`
    channels); chunk = t // steps_per_flush (docs/numerics.md "The accumulate chain": flush every chain)."""
    assert cpb % unroll == 0
    G = cpb // unroll
    e = np.arange(C) // elem
    cb, g = e // cpb, (e % cpb) // unroll
    r = np.arange(R)[None, :, None]
    s = np.arange(S)[None, None, :]
    t = ((cb[:, None, None] * R + r) * S + s) * G + g[:, None, None]
    return t // steps_per_flush


def instruction_order(C: int, R: int, S: int, cpb: int, unroll: int, elem: int = 2):
    """The pair-instructions of one output in issue order: yields (channels, r, s) per instruction."""
    CB = -(-((C + elem - 1) // elem) // cpb)
    for cb in range(CB):
        for r in range(R):
            for s in range(S):
                for g in range(cpb // unroll):
                    for p in range(unroll):
                        e = cb * cpb + g * unroll + p
                        chans = [c for c in range(e * elem, (e + 1) * elem) if c < C]
                        if chans:
                            yield chans, r, s


def _wrap32(v: np.ndarray) -> np.ndarray:
    return (v.astype(np.int64) + 2**31) % 2**32 - 2**31


def _flush_sum(chunks: list[np.ndarray], scale_exp: int) -> np.ndarray:
    """out = fma(float32(chunk_k), 2**scale_exp, out) in chunk order, emulated exactly: the chunk is
    rounded to float32 (sitofp, round to nearest even), the product by a power of two is exact, and
    the sum of two such values (integers * scale below 2**53 * scale) is exact in float64, so one
    cast to float32 is the fma's single rounding."""
    out = None
    for c in chunks:
        assert np.all(np.abs(c) < 2**40)
        term = np.ldexp(c.astype(np.float32).astype(np.float64), scale_exp)
        out = term.astype(np.float32) if out is None else (term + out.astype(np.float64)).astype(np.float32)
        assert np.all(np.abs(out.astype(np.float64)) < 2.0**(53 + scale_exp) * 2**-13)
    return out


def emulate_flushes(xm: np.ndarray, wm: np.ndarray, stride: int, pad: int, *, cpb: int, unroll: int,
                    steps_per_flush: int, policy: str = "exact", scale_exp: int = 0) -> np.ndarray:
    """Bit-exact model of a DFP kernel's output (float32 NKPQ) for an overflow policy.

    exact: each chunk's integer sum as is; wrap: each chunk's sum mod 2**32 as a signed INT32 (the
    VNNI / vpmaddwd+vpaddd lanes wrap, and modular addition is associative so the order of the
    instructions does not matter); saturate: vpdpwssds, acc = clamp(acc + p0 + p1) per instruction
    in issue order (see `instruction_order`)."""
    xm = np.asarray(xm)
    wm = np.asarray(wm)
    C, R, S = wm.shape[1:]
    _check_exact_precondition(xm, wm)
    chunk = chunk_of_channels(C, R, S, cpb, unroll, steps_per_flush)
    F = int(chunk.max()) + 1
    if policy in ("exact", "wrap"):
        chunks = []
        for k in range(F):
            mask = (chunk == k)
            if not mask.any():
                chunks.append(None)
                continue
            part = conv_int(xm, (wm * mask[None]).astype(np.int16), stride, pad).astype(np.int64)
            chunks.append(_wrap32(part) if policy == "wrap" else part)
        shape = next(c for c in chunks if c is not None).shape
        chunks = [np.zeros(shape, np.int64) if c is None else c for c in chunks]
        return _flush_sum(chunks, scale_exp)
    if policy != "saturate":
        raise ValueError(policy)
    taps = {(r, s): xs for r, s, xs in _taps(xm, R, S, stride, pad)}
    N, K = xm.shape[0], wm.shape[0]
    P, Q = taps[0, 0].shape[2:]
    acc = np.zeros((N, K, P, Q), np.int64)
    chunks = []
    prev_chunk = 0
    for chans, r, s in instruction_order(C, R, S, cpb, unroll):
        k = int(chunk[chans[0], r, s])
        while prev_chunk < k:       # a chunk boundary: flush and restart the INT32 accumulators
            chunks.append(acc)
            acc = np.zeros_like(acc)
            prev_chunk += 1
        xs = taps[r, s][:, chans].astype(np.int64)           # N, c, P, Q
        ws = wm[:, chans, r, s].astype(np.int64)            # K, c
        pair = np.einsum("ncpq,kc->nkpq", xs, ws)
        acc = np.clip(acc + pair, INT32_MIN, INT32_MAX)
    chunks.append(acc)
    return _flush_sum(chunks, scale_exp)
