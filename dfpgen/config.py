"""The one place where dfpgen reads environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Process-wide settings taken from the environment once."""

    cache_dir: Path
    isa: str | None
    threads: int | None
    disk_cache: bool


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dfpgen"


def settings() -> Settings:
    """Read DFPGEN_* variables: DFPGEN_CACHE_DIR, DFPGEN_ISA, DFPGEN_THREADS, DFPGEN_NO_DISK_CACHE."""
    threads = os.environ.get("DFPGEN_THREADS")
    return Settings(
        cache_dir=Path(os.environ.get("DFPGEN_CACHE_DIR") or _default_cache_dir()),
        isa=os.environ.get("DFPGEN_ISA") or None,
        threads=int(threads) if threads else None,
        disk_cache=os.environ.get("DFPGEN_NO_DISK_CACHE", "") in ("", "0"),
    )
