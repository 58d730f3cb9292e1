"""The plan cache: a kernel's plan and IR on disk, beside the object cache, so a new process rebuilds a kernel it
has built before without the cost model's search, the planner or the template (ResNet-50's 162 kernels at start-up).

An entry is found by a key over everything that decides the plan and the IR: the spec (its name is in the IR's
comments), the pass, the kernel numerics, the ISA, the target (CPU, features, host or not), the blocking asked for
("default" for the cost model's), the plan format, the pass's template hash, the dfpgen version, a hash of the
source of every module and template that plans or emits (so editing a planner in a checkout misses), and the
versions of the libraries that take part (Python, numpy, jinja2). Tuned kernels are keyed on the blocking the
tuning database returned, so a re-tune never meets an entry of the old choice. Entries are written atomically and
start with the sha256 of the rest; a damaged or unreadable entry is rebuilt, never served.

Entries are pickles: the cache folder is trusted as the object cache beside it is, whose files are machine code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from dfpgen import passes
from dfpgen.codegen.emit import template_hash
from dfpgen.codegen.kernel import Kernel
from dfpgen.codegen.plan import PLAN_FORMAT, Blocking, Plan, ResultLayout
from dfpgen.config import settings
from dfpgen.core.numerics import Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import Target
from dfpgen.errors import CacheEntryError, PlanError
from dfpgen.files import atomic_write
from dfpgen.passes import Pass
from dfpgen.version import __version__

ENTRY_FORMAT = 1   # bump when what an entry holds changes
_DIGEST = 32       # an entry starts with the sha256 of the rest

# What plans and emits, relative to the dfpgen package: the planners, the plan and its helpers, the emitter, the
# spec, numerics and target they read, and the cost model that picks the default blocking. Whole folders, so a
# module added to one of them is hashed too.
SOURCE_FOLDERS = ("core", "codegen", "passes")
SOURCE_FILES = ("tuning/cost.py", "version.py")


@dataclass(frozen=True)
class PlanKey:
    """One kernel's entry: its digest, and what a loaded plan must match (a file under a wrong name is refused)."""

    digest: str
    spec: ConvSpec
    conv_pass: Pass
    numerics: Numerics
    target: Target
    isa: str
    result_layout: ResultLayout = ResultLayout.BLOCKED

    @property
    def path(self) -> Path:
        """Where the entry lives (under the cache folder read now, as the object cache does)."""
        return settings().cache_dir / "plans" / f"{self.digest}.plan"


@lru_cache(maxsize=1)
def source_hash() -> str | None:
    """`hash_sources` of this dfpgen and its templates, computed once per process, at import."""
    try:
        templates = resources.files("dfpgen.templates")
    except ModuleNotFoundError:
        return None
    return hash_sources(Path(__file__).resolve().parent.parent, templates)


def hash_sources(package: Path, templates) -> str | None:
    """The sha256 of the modules and templates that plan and emit (SOURCE_FOLDERS, SOURCE_FILES, templates' *.j2);
    None when some cannot be read (then nothing is cached: a plan of unknown source could be stale)."""
    digest = hashlib.sha256()
    try:
        for folder in SOURCE_FOLDERS:
            files = sorted((package / folder).glob("*.py"))
            if not files:
                return None   # an install of bytecode alone
            for path in files:
                digest.update(f"{folder}/{path.name}\n".encode() + path.read_bytes())
        for name in SOURCE_FILES:
            digest.update(f"{name}\n".encode() + (package / name).read_bytes())
        for entry in sorted(templates.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".j2"):
                digest.update(f"templates/{entry.name}\n".encode() + entry.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


# Hashed when the modules it covers have just been imported, so the hash is of the code this process runs, even if
# a checkout is edited while it runs.
source_hash()


def key(spec: ConvSpec, conv_pass: Pass, numerics: Numerics, blocking: Blocking | None, target: Target,
        isa: str, threads: int, result_layout: ResultLayout = ResultLayout.BLOCKED) -> PlanKey | None:
    """The cache key of one kernel (`blocking` None: the cost model's default for `threads`, on which WTGRAD's
    depends), or None when it must not be cached."""
    try:
        registered = passes.get(conv_pass.name) is conv_pass
    except PlanError:
        registered = False
    sources = source_hash()
    if not registered or sources is None:
        # A pass the registry does not know (a test's variant of one) has no definition a later process could
        # look up, so its plans are not cached.
        return None
    cpu, features = target.key()
    text = "\n".join([
        f"entry={ENTRY_FORMAT}", f"plan={PLAN_FORMAT}", f"dfpgen={__version__}", f"sources={sources}",
        f"template={conv_pass.template}:{template_hash(conv_pass.template)}",
        f"python={sys.version}", f"numpy={np.__version__}", f"jinja2={jinja2.__version__}",
        f"pass={conv_pass.name}", f"spec={spec!r}", f"numerics={numerics!r}", f"isa={isa}",
        f"target={cpu}|{features}|{target.is_host}|{target.llvm_features}",
        f"blocking={f'default for {threads} threads' if blocking is None else repr(blocking)}",
        f"result={result_layout.value}"])
    return PlanKey(hashlib.sha256(text.encode()).hexdigest(), spec, conv_pass, numerics, target, isa, result_layout)


def load(plan_key: PlanKey | None) -> Kernel | None:
    """The kernel stored under `plan_key`, or None when there is none, it is damaged, or caching is off."""
    if plan_key is None or not settings().disk_cache:
        return None
    try:
        data = plan_key.path.read_bytes()
    except OSError:
        return None
    try:
        return _decode(data, plan_key)
    except CacheEntryError:
        return None   # rebuilt by the caller and stored again over it


def store(plan_key: PlanKey | None, kernel: Kernel) -> None:
    """Store a freshly built kernel's plan and IR under `plan_key` (nothing when it is None or caching is off)."""
    if plan_key is None or not settings().disk_cache:
        return
    try:
        payload = _encode(kernel)
    except (pickle.PicklingError, TypeError, AttributeError):
        return   # a plan holding something pickle cannot write (a pass's layout object, say) is only not cached
    try:
        atomic_write(plan_key.path, hashlib.sha256(payload).digest() + payload)
    except OSError:
        pass   # a read-only or full cache folder only costs a rebuild next time


def _encode(kernel: Kernel) -> bytes:
    # The Plan's fields alone: the pass goes by name (the loader attaches the registered object, since passes
    # compare by identity), and values built on first use (the call table, thread splits) stay out.
    plan = kernel.plan
    fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(Plan) if f.init and f.name != "conv_pass"}
    return pickle.dumps((ENTRY_FORMAT, plan.conv_pass.name, fields, kernel.ir, kernel.entry),
                        protocol=pickle.HIGHEST_PROTOCOL)


def _decode(data: bytes, plan_key: PlanKey) -> Kernel:
    digest, payload = data[:_DIGEST], data[_DIGEST:]
    if not payload or hashlib.sha256(payload).digest() != digest:
        raise CacheEntryError(f"{plan_key.path}: checksum mismatch")
    try:
        entry_format, pass_name, fields, ir, entry = pickle.loads(payload)
        plan = Plan(conv_pass=plan_key.conv_pass, **fields)
    except Exception as exc:   # noqa: BLE001 - any failure to rebuild the objects means the entry cannot be served
        raise CacheEntryError(f"{plan_key.path}: unreadable ({type(exc).__name__}: {exc})") from None
    if (entry_format, pass_name) != (ENTRY_FORMAT, plan_key.conv_pass.name) or plan.spec != plan_key.spec \
            or plan.numerics != plan_key.numerics or plan.target != plan_key.target or plan.isa.name != plan_key.isa \
            or plan.result_layout is not plan_key.result_layout or not isinstance(ir, str) \
            or entry != plan_key.conv_pass.entry:
        raise CacheEntryError(f"{plan_key.path}: holds another kernel")
    return Kernel(plan, ir, entry)
