"""Format names: every valid name, and the one lookup that turns a name into a format object."""

from __future__ import annotations

import functools

from dfpgen.core import dfp
from dfpgen.errors import FormatError
from dfpgen.formats.dfp import Dfp
from dfpgen.formats.minifloat import BF16, FP8_E4M3, FP8_E5M2, FP16
from dfpgen.formats.mx import MXFP4, MXFP6_E2M3, MXFP6_E3M2, MXFP8_E4M3, MXFP8_E5M2, MXINT8
from dfpgen.formats.posit import MAX_ES, MAX_N, MIN_N, Posit

FIXED = (FP8_E4M3, FP8_E5M2, BF16, FP16, MXINT8, MXFP8_E4M3, MXFP8_E5M2, MXFP6_E2M3, MXFP6_E3M2, MXFP4)
PATTERNS = (f"posit<n>_<es> (n {MIN_N}..{MAX_N}, es 0..{MAX_ES})", *(f.name for f in FIXED),
            f"dfp<bits> (bits {dfp.MIN_BITS}..{dfp.MAX_BITS})")


@functools.lru_cache(maxsize=None)
def _all() -> dict:
    formats = [Posit(n, es) for n in range(MIN_N, MAX_N + 1) for es in range(MAX_ES + 1)]
    formats += FIXED
    formats += [Dfp(bits) for bits in range(dfp.MIN_BITS, dfp.MAX_BITS + 1)]
    return {f.name: f for f in formats}


def names() -> list[str]:
    """Every valid format name."""
    return list(_all())


def get(name):
    """The format object named `name`; FormatError, listing the valid names, for anything else."""
    if isinstance(name, str) and name in _all():
        return _all()[name]
    what = f"unknown number format {name!r}" if isinstance(name, str) else \
        f"a number format name must be a string, got {name!r} ({type(name).__name__})"
    raise FormatError(f"{what}: valid formats are {', '.join(PATTERNS)}")
