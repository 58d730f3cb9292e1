"""Exact sums of float64 arrays, elementwise: Shewchuk's floating-point expansions, vectorized in numpy.

An expansion is a list of float64 arrays of one shape (its components) whose elementwise sum is the exact
value. Every step is TwoSum, which returns a rounded sum and its rounding error exactly, so no bit is lost.
`grow` keeps an expansion nonoverlapping, with its nonzero components in increasing magnitude (Shewchuk,
*Adaptive Precision Floating-Point Arithmetic and Fast Robust Geometric Predicates*, 1997, Theorem 10; it
needs round-to-nearest-even, numpy's float64 arithmetic), and a nonoverlapping expansion has the sign of
its largest nonzero component, since the smaller ones together are less than its lowest set bit.
TwoSum is exact only while no sum overflows: callers keep magnitudes far below 2**1023.
"""

from __future__ import annotations

import numpy as np


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum: no ordering of a, b needed)."""
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def grow(expansion: list[np.ndarray], b: np.ndarray) -> list[np.ndarray]:
    """The expansion of (sum of `expansion`) + b, one component longer (Shewchuk's Grow-Expansion)."""
    total, out = b, []
    for component in expansion:
        total, error = two_sum(total, component)
        out.append(error)
    out.append(total)
    return out


def of_terms(terms: list[np.ndarray]) -> list[np.ndarray]:
    """The nonoverlapping expansion of the exact elementwise sum of float64 arrays `terms` (at least one)."""
    expansion = [np.asarray(terms[0], np.float64)]
    for term in terms[1:]:
        expansion = grow(expansion, np.asarray(term, np.float64))
    return expansion


def sign(expansion: list[np.ndarray]) -> np.ndarray:
    """The exact sign (-1.0, 0.0 or 1.0) of a nonoverlapping expansion's value: its largest nonzero component's."""
    result = np.zeros(np.shape(expansion[-1]))
    for component in reversed(expansion):
        result = np.where(result == 0, np.sign(component), result)
    return result


def approximate(expansion: list[np.ndarray]) -> np.ndarray:
    """The value summed in float64: close to it, but not guaranteed correctly rounded (a starting guess)."""
    return np.sum(expansion, axis=0) if len(expansion) > 1 else expansion[0]
