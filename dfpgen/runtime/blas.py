"""One BLAS thread for the quire's float64 GEMMs (dfpgen.runtime.quire).

numpy's OpenBLAS keeps worker threads that spin for a while after each call. Between the quire's GEMMs
the runtime's own kernels run on every core, and the two fight over them (docs/formats.md, The quire, has
the measurement). `one_thread()` sets numpy's OpenBLAS to one thread for a block
and restores the count after; where numpy links another BLAS, or its OpenBLAS is not found beside numpy,
it does nothing. The count is process-wide, so BLAS calls in other threads run single-threaded meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from pathlib import Path

import numpy as np

# (get, set) function names numpy's OpenBLAS builds export: scipy-openblas (numpy >= 2), then older wheels'.
_NAMES = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
          ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
          ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads"))


@functools.lru_cache(maxsize=1)
def openblas() -> tuple | None:
    """(get, set) of the thread count of the OpenBLAS numpy's wheel ships (numpy.libs, .dylibs), or None."""
    here = Path(np.__file__).parent
    for path in sorted([*here.parent.glob("numpy.libs/*openblas*"), *here.glob(".dylibs/*openblas*")]):
        try:
            lib = ctypes.CDLL(str(path))   # already loaded by numpy: the same library, not a second copy
        except OSError:
            continue
        for get, put in _NAMES:
            if hasattr(lib, get) and hasattr(lib, put):
                return getattr(lib, get), getattr(lib, put)
    return None


@contextlib.contextmanager
def one_thread():
    """Run the block with numpy's OpenBLAS on one thread (a no-op without it)."""
    found = openblas()
    if found is None:
        yield
        return
    get, put = found
    before = int(get())
    if before == 1:
        yield
        return
    put(1)
    try:
        yield
    finally:
        put(before)
