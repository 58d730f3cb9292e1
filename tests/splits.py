"""The thread-split checks that the three pass test modules share (dfpgen/codegen/split.py)."""

import numpy as np

from dfpgen import Blocking, Conv2d
from dfpgen.runtime.execute import prepare

# Besides each thread count's default: two vector blocks of 64 channels, which 3 and 5 threads split by
# channel chunks in WTGRAD (a share of several item ranges), or FPROP and BPROP by rows.
SPLIT_BLOCKING = Blocking(kv=2, wb=13, hb=1)
SPLIT_THREADS = (1, 2, 3, 5)


def assert_split_bit_identical(spec, isa: str, pass_name: str, src: np.ndarray, vec: np.ndarray, check) -> None:
    """The pass at 1, 2, 3 and 5 threads, with each thread count's default blocking and SPLIT_BLOCKING, on
    mantissas src and vec scaled by 2**-12: every run writes every output (a NaN-filled buffer), passes
    `check(result, flushes, what)`, and gives the same bits."""
    results = []
    for threads in SPLIT_THREADS:
        for blocking in (None, SPLIT_BLOCKING):
            kernel = Conv2d(spec, bits=14, isa=isa, threads=threads, blocking={pass_name: blocking},
                            eager=False).kernel(pass_name)
            assert (len(kernel.plan.split(threads).shares) > 1) == (threads > 1)
            ready = prepare(kernel, src.astype(np.int16), vec.astype(np.int16))
            ready.out.fill(np.nan)                          # an output no share writes stays NaN
            ready.run(2.0**-12, threads)
            assert not np.isnan(ready.result()).any()     # (the bound checks let NaN through)
            check(ready.result(), kernel.plan.flushes, f"{threads} threads, {blocking}")
            results.append(ready.result())
    assert all(r.tobytes() == results[0].tobytes() for r in results[1:])


def assert_some_share_has_several_ranges(specs, isa: str, pass_name: str) -> None:
    """The cases run shares of several item ranges (boxes that are not contiguous in item order)."""
    ranges = [len(share) for spec in specs for t in SPLIT_THREADS[1:] for b in (None, SPLIT_BLOCKING)
              for share in Conv2d(spec, bits=14, isa=isa, threads=t, blocking={pass_name: b},
                                  eager=False).kernel(pass_name).plan.split(t).shares]
    assert max(ranges) > 1
