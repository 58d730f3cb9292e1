"""The counter-based generator behind stochastic rounding: a uniform draw is a pure function of a
stream key and an element's index, so the generated quantizers and `dfpgen.quantize` round alike,
whichever thread rounds which element, and a resumed run redraws exactly what it drew before.

draw(key, i) = fmix32(fmix32(i ^ k0) ^ k1) >> 8, a 24-bit integer; the uniform is draw * 2**-24.
fmix32 is MurmurHash3's finalizer (a bijection on 32 bits). Indices must be below 2**32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfpgen.errors import NumericsError

DRAW_BITS = 24
INDEX_LIMIT = 2**32
_MASK64 = (1 << 64) - 1


def _splitmix64(state: int) -> int:
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@dataclass(frozen=True)
class StreamKey:
    """Two 32-bit words naming one stream of draws, e.g. one tensor's rounding at one training step."""

    k0: int
    k1: int

    def __post_init__(self) -> None:
        for name in ("k0", "k1"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**32:
                raise NumericsError(f"StreamKey.{name}={value!r}: must be an integer in 0..2**32-1")
            object.__setattr__(self, name, int(value))

    @classmethod
    def of(cls, *parts: int) -> StreamKey:
        """The key of a tuple of non-negative integers (run seed, step, layer, tensor role, ...)."""
        state = 0x6466706765E6  # any constant: keys of different tuples differ through the chain below
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or part < 0:
                raise NumericsError(f"StreamKey.of: parts must be non-negative integers, got {part!r}")
            state = _splitmix64(state ^ (int(part) & _MASK64))
        state = _splitmix64(state)
        return cls(state & 0xFFFFFFFF, state >> 32)

    @classmethod
    def drawn(cls, rng: np.random.Generator) -> StreamKey:
        """A key drawn from a generator (a layer's, reseeded per step): the same seed draws the same keys."""
        return cls(*(int(v) for v in rng.integers(0, 2**32, 2)))

    def child(self, *parts: int) -> StreamKey:
        """A key derived from this one and more parts (e.g. one tensor role of a layer's step key)."""
        return StreamKey.of(self.k0, self.k1, *parts)


def _fmix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def draws(key: StreamKey, index: np.ndarray) -> np.ndarray:
    """The 24-bit draws (uint32) of elements `index` (integers in 0..2**32-1) of the stream `key`."""
    index = np.asarray(index)
    if index.size and (int(index.min()) < 0 or int(index.max()) >= INDEX_LIMIT):
        raise NumericsError(f"stochastic rounding indexes elements below 2**32, got {int(index.max())}")
    with np.errstate(over="ignore"):
        x = _fmix32(index.astype(np.uint32) ^ np.uint32(key.k0))
        x = _fmix32(x ^ np.uint32(key.k1))
    return x >> np.uint32(32 - DRAW_BITS)


def uniforms(key: StreamKey, shape: tuple) -> np.ndarray:
    """Uniform float64 values in [0, 1) on a 2**-24 grid, one per element of a C-ordered array of `shape`."""
    count = int(np.prod(shape, dtype=np.int64))
    return np.ldexp(draws(key, np.arange(count, dtype=np.int64)).astype(np.float64), -DRAW_BITS).reshape(shape)
