"""The one place where dfpgen reads environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dfpgen.errors import DFPGenError


@dataclass(frozen=True)
class Settings:
    """Process-wide settings taken from the environment once."""

    cache_dir: Path
    isa: str | None
    threads: int | None
    disk_cache: bool
    buffer_pool_mb: int = 4096


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dfpgen"


def _cache_dir() -> Path:
    """DFPGEN_CACHE_DIR (default: the user cache folder); one line if a file stands where a folder must be."""
    given = os.environ.get("DFPGEN_CACHE_DIR")
    path = Path(given) if given else _default_cache_dir()
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                name = "DFPGEN_CACHE_DIR" if given else "the cache folder"
                raise DFPGenError(f"{name}={str(path)!r}: {ancestor} is a file, not a folder; point "
                                  f"DFPGEN_CACHE_DIR at a folder")
            break
    return path


def settings() -> Settings:
    """Read DFPGEN_* variables: DFPGEN_CACHE_DIR, DFPGEN_ISA, DFPGEN_THREADS, DFPGEN_NO_DISK_CACHE,
    DFPGEN_BUFFER_POOL_MB."""
    return Settings(
        cache_dir=_cache_dir(),
        isa=os.environ.get("DFPGEN_ISA") or None,
        threads=_env_int("DFPGEN_THREADS", None, 1, "; unset it to use every core"),
        disk_cache=os.environ.get("DFPGEN_NO_DISK_CACHE", "") in ("", "0"),
        buffer_pool_mb=_env_int("DFPGEN_BUFFER_POOL_MB", Settings.buffer_pool_mb, 0,
                                " (megabytes of reused step buffers; 0 turns reuse off)"),
    )


def openmp_wait_policy() -> str | None:
    """OMP_WAIT_POLICY as set now (None when unset): how idle OpenMP threads (PyTorch's) wait."""
    return os.environ.get("OMP_WAIT_POLICY") or None


def prefer_passive_openmp() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless a policy is set: an OpenMP runtime loaded afterwards (PyTorch's) then
    lets its idle threads sleep instead of spinning on the cores dfpgen's kernel threads need."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun job: its rank, the number of ranks, and the ranks on this machine."""

    rank: int
    size: int
    local_size: int


def torchrun_world() -> World:
    """RANK, WORLD_SIZE and LOCAL_WORLD_SIZE as torchrun sets them; rank 0 of 1 without them."""
    size = _env_int("WORLD_SIZE", 1, 1)
    world = World(_env_int("RANK", 0, 0), size, _env_int("LOCAL_WORLD_SIZE", size, 1))
    if world.rank >= world.size or world.local_size > world.size:
        raise DFPGenError(f"RANK={world.rank}, WORLD_SIZE={world.size}, LOCAL_WORLD_SIZE={world.local_size}: "
                          f"need RANK < WORLD_SIZE and LOCAL_WORLD_SIZE <= WORLD_SIZE")
    return world


def _env_int(name: str, default: int | None, minimum: int, hint: str = "") -> int | None:
    """The integer in environment variable `name` (at least `minimum`), or `default` when unset or blank."""
    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise DFPGenError(f"{name}={text!r}: expected an integer >= {minimum}{hint}")
    return value
