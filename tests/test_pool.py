"""The step-buffer pool (dfpgen/runtime/pool.py): a buffer comes back only when nothing refers to it, arrays are
64-byte aligned, and the pool keeps within its limit."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen.codegen.layout import ALIGNMENT
from dfpgen.runtime.pool import BufferPool

MB = 1 << 20


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("shape, dtype", [((3, 5, 7), np.float32), ((2, 4, 16), np.uint8), ((0, 4), np.int16)])
def test_arrays_are_aligned_and_shaped(shape, dtype):
    a = BufferPool(MB).empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert _address(a) % ALIGNMENT == 0 or a.size == 0   # numpy may place an empty view anywhere


def test_a_buffer_returns_once_nothing_refers_to_it():
    pool = BufferPool(64 * MB)
    a = pool.empty((256, 1024), np.float32)
    address = _address(a)
    view = a[10:20].T
    del a
    b = pool.empty((1024, 256), np.float32)     # the same bytes, another shape: a view still holds the first
    assert _address(b) != address
    del view
    c = pool.empty((512, 512), np.float32)
    assert _address(c) == address and pool.held == 2 * (MB + ALIGNMENT)


def test_a_torch_tensor_over_a_buffer_keeps_it(torch):
    pool = BufferPool(64 * MB)
    t = torch.from_numpy(pool.empty((64, 64), np.float32))
    address = t.data_ptr()
    assert pool.empty((64, 64), np.float32).__array_interface__["data"][0] != address
    del t
    assert _address(pool.empty((64, 64), np.float32)) == address


def test_beyond_the_limit_free_buffers_go_first_then_arrays_are_not_pooled():
    pool = BufferPool(3 * MB)
    kept = pool.empty((MB,), np.uint8)
    pool.empty((MB // 2,), np.uint8)            # freed at once: dropped when room is needed
    big = pool.empty((MB + MB // 2,), np.uint8)
    assert pool.held <= 3 * MB
    outside = pool.empty((2 * MB,), np.uint8)   # no room even after dropping the free ones
    assert pool.held <= 3 * MB and outside.size == 2 * MB
    pool.clear()
    assert pool.held == kept.size + big.size + 2 * ALIGNMENT


def test_a_pool_of_no_bytes_holds_nothing():
    pool = BufferPool(0)
    arrays = [pool.empty((100,), np.float32) for _ in range(3)]
    assert pool.held == 0 and all(_address(a) % ALIGNMENT == 0 for a in arrays)


def test_threads_never_share_a_live_buffer():
    pool, live, lock = BufferPool(256 * MB), [], threading.Lock()

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine = []
        for _ in range(200):
            a = pool.empty((int(rng.integers(1, 4)) * 4096,), np.uint8)
            a[...] = seed
            mine.append(a)
            if len(mine) > 3:
                mine.pop(int(rng.integers(0, len(mine))))
            assert all((b == seed).all() for b in mine)   # no other thread wrote into a live buffer
        with lock:
            live.extend(mine)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({_address(a) for a in live}) == len(live)


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(1, 6)), max_size=40))
def test_live_arrays_never_overlap(ops):
    """Any sequence of takes and releases: the arrays alive at any moment occupy disjoint memory."""
    pool, live = BufferPool(MB), []
    for release, size in ops:
        if release and live:
            live.pop(size % len(live))
        else:
            live.append(pool.empty((size * 1000,), np.uint8))
        spans = sorted((_address(a), _address(a) + a.nbytes) for a in live)
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
