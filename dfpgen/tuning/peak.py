"""Measured peak multiply-accumulate rates of this machine, one core, per ISA (register-only loops).

These are the denominators of every "% of peak" that dfpgen reports. Results are cached per CPU in the
user cache directory; `dfpgen peak --remeasure` refreshes them.
"""

from __future__ import annotations

import ctypes
import json
import time
from dataclasses import dataclass

import numpy as np

from dfpgen.codegen import jit
from dfpgen.codegen.emit import environment, ir_types
from dfpgen.codegen.layout import aligned_zeros
from dfpgen.config import settings
from dfpgen.core.target import Target, get_isa, host
from dfpgen.errors import TargetError
from dfpgen.files import atomic_write
from dfpgen.version import __version__

PEAK_FORMAT = 1
_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


@dataclass(frozen=True)
class Peak:
    """One ISA's measured single-core rate."""

    isa: str
    instruction: str
    gmacs: float           # billions of multiply-accumulates per second (an INT16 pair counts two, an INT8 quad four)
    accumulators: int


def probe_ir(isa_name: str, accumulators: int) -> str:
    """IR of the register-only probe loop for one ISA."""
    types = ir_types(get_isa(isa_name))
    return environment().get_template("peak.ll.j2").render(
        isa=get_isa(isa_name), t=types, accumulators=accumulators, version=__version__)


def _accumulators(target: Target, isa_name: str) -> int:
    # Enough independent chains to cover latency x issue width, leaving registers for the operands.
    return 24 if target.vector_registers == 32 else 12


def probe(isa_name: str, target: Target | None = None, seconds: float = 0.2):
    """(run, macs): a no-argument callable running the register-only probe loop of `isa_name` for
    about `seconds` / 8, and the multiply-accumulates one run does."""
    target = target or host()
    target.check_isa(isa_name)
    isa = get_isa(isa_name)
    acc = _accumulators(target, isa_name)
    compiled = jit.jit(probe_ir(isa_name, acc), "dfpgen_peak", target, isa)
    fn = ctypes.cast(compiled.address, _SIGNATURE)
    a = aligned_zeros((64,), np.int32)
    b = aligned_zeros((64,), np.int32)
    sink = aligned_zeros((acc * isa.lanes,), np.int32)
    macs_per_iter = acc * isa.lanes * isa.group
    iters = 1 << 16
    while True:  # grow until one run takes a measurable time
        dt = _timed(fn, a, b, sink, iters)
        if dt > seconds / 8 or iters > 1 << 34:
            break
        iters *= 4
    run = lambda: fn(a.ctypes.data, b.ctypes.data, sink.ctypes.data, iters)
    run.keepalive = (compiled, a, b, sink)    # the buffers and the code must outlive the callable
    return run, macs_per_iter * iters


def measure(isa_name: str, target: Target | None = None, seconds: float = 0.2) -> Peak:
    """Run the probe for `isa_name` on this core and return its rate (best of several timed runs)."""
    run, macs = probe(isa_name, target, seconds)
    best = min(_timed_call(run) for _ in range(5))
    return Peak(isa_name, get_isa(isa_name).instruction, macs / best / 1e9,
                _accumulators(target or host(), isa_name))


def _timed_call(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def _timed(fn, a, b, sink, iters) -> float:
    t0 = time.perf_counter()
    fn(a.ctypes.data, b.ctypes.data, sink.ctypes.data, iters)
    return time.perf_counter() - t0


def _cache_path(target: Target):
    return settings().cache_dir / f"peaks-{target.cpu}.json"


def peaks(remeasure: bool = False, target: Target | None = None) -> dict[str, Peak]:
    """Peak rates of every ISA this machine runs, from the cache unless `remeasure`."""
    target = target or host()
    if not target.is_host:
        raise TargetError(f"peaks can only be measured on the host, not {target.cpu!r}")
    path = _cache_path(target)
    key = {"format": PEAK_FORMAT, "dfpgen": __version__, "cpu": target.cpu, "features": target.key()[1]}
    names = target.all_isas()
    if not remeasure and path.exists():
        try:
            cached = _from_cache(json.loads(path.read_text()), key, names)
        except (OSError, ValueError):
            cached = None
        if cached is not None:
            return cached
        # Anything else (old key, damaged or wrong-shaped file) is stale: measured again and rewritten below.
    found = {name: measure(name, target) for name in names}
    payload = {"key": key, "peaks": {n: p.__dict__ for n, p in found.items()}}
    atomic_write(path, json.dumps(payload, indent=1).encode())
    return found


def _from_cache(data, key: dict, names: list[str]) -> dict[str, Peak] | None:
    """The peaks a cache file holds if it is for `key` and well formed with one entry per ISA in `names`, else None."""
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("peaks"), dict):
        return None
    peaks_ = data["peaks"]
    if sorted(peaks_) != sorted(names):
        return None
    found = {}
    for name, p in peaks_.items():
        if not isinstance(p, dict) or set(p) != {"isa", "instruction", "gmacs", "accumulators"}:
            return None
        gmacs, acc = p["gmacs"], p["accumulators"]
        if (p["isa"] != name or not isinstance(p["instruction"], str)
                or not isinstance(gmacs, (int, float)) or isinstance(gmacs, bool) or not 0 < gmacs < float("inf")
                or not isinstance(acc, int) or isinstance(acc, bool) or acc < 1):
            return None
        found[name] = Peak(name, p["instruction"], float(gmacs), acc)
    return found
