"""TEMPORARY numpy stand-ins for the generated pointwise kernels (same signatures)."""
import numpy as np

A = (0, 2, 3)


def _v(p):
    return p.reshape(1, -1, 1, 1, p.shape[0] // 1)[..., :] if False else p


def _ch(p, x):
    G, L = x.shape[1], x.shape[4]
    return np.asarray(p, np.float32).reshape(1, G, 1, 1, L)


def channel_sums(x, threads=None):
    x64 = x.astype(np.float64)
    return x64.sum(axis=A).reshape(-1), (x64 * x64).sum(axis=A).reshape(-1)


def affine(x, a, b, out, relu, z=None, c=None, d=None, threads=None):
    r = x * _ch(a, x) + _ch(b, x)
    if z is not None:
        r = r + (z if c is None else z * _ch(c, z) + _ch(d, z))
    if relu:
        r = np.maximum(r, 0)
    out[...] = r
    return float(np.abs(out).max()) if out.size else 0.0


def relu_grad(dy, out, dz, threads=None):
    dz[...] = np.where(out > 0, dy, 0)
    return float(np.abs(dz).max()) if dz.size else 0.0


def bn_grad_sums(dz, x, threads=None, mask=None):
    d = np.where(mask > 0, dz, 0) if mask is not None else dz
    d64 = d.astype(np.float64)
    return d64.sum(axis=A).reshape(-1), (d64 * x).sum(axis=A).reshape(-1)


def bn_grad_apply(dz, x, a, b, c, dx, threads=None, mask=None, add=None):
    d = np.where(mask > 0, dz, 0) if mask is not None else dz
    r = d * _ch(a, x) + x * _ch(b, x) + _ch(c, x)
    if add is not None:
        r = r + add
    dx[...] = r
    return float(np.abs(dx).max()) if dx.size else 0.0


def add(a, b, out, threads=None):
    np.add(a, b, out=out)
    return float(np.abs(out).max()) if out.size else 0.0


def sgd_update(w, g, v, lr, momentum, weight_decay, threads=None):
    gg = g + np.float32(weight_decay) * w if weight_decay else g
    v *= np.float32(momentum)
    v += gg
    w -= np.float32(lr) * v
    return float(np.abs(w).max()) if w.size else 0.0
