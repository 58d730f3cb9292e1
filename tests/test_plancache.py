"""The plan cache (dfpgen/runtime/plancache.py): a cached kernel is the kernel a fresh build gives, every field of
the key decides a hit, damaged entries are rebuilt, DFPGEN_NO_DISK_CACHE turns it off, passes the registry does not
know are never cached, and a new process builds a cached kernel without planning or parsing IR."""

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dfpgen
from dfpgen import ConvSpec, Numerics, passes
from dfpgen.codegen import kernel as kernel_mod
from dfpgen.codegen.calls import Calls
from dfpgen.codegen.plan import Blocking, Plan, ResultLayout
from dfpgen.core.target import host, named
from dfpgen.runtime import conv as conv_mod
from dfpgen.runtime import plancache

SPEC = ConvSpec(2, 16, 32, 6, 6, 3, 3, 1, 1, "cached")
NUMERICS = Numerics(bits_x=14, bits_w=14)
ISA = "avx2"
CPU = "znver3"   # cross-emitted, so the tests plan and emit on any host without running LLVM
runs_avx2 = pytest.mark.skipif(not host().supports("avx2"), reason="host cannot run avx2 kernels")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """A cache folder of the test's own, with the disk cache on."""
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DFPGEN_NO_DISK_CACHE", raising=False)
    return tmp_path


@pytest.fixture
def builds(monkeypatch):
    """Counts the kernels compile() plans and emits, and the cost model's default searches."""
    counts = {"build": 0, "default": 0}
    real_build, real_default = kernel_mod.build, conv_mod.default_blocking

    def build(plan):
        counts["build"] += 1
        return real_build(plan)

    def default_blocking(*args, **kwargs):
        counts["default"] += 1
        return real_default(*args, **kwargs)

    monkeypatch.setattr(kernel_mod, "build", build)
    monkeypatch.setattr(conv_mod, "default_blocking", default_blocking)
    return counts


def compile(**changes):
    return dfpgen.compile(**(dict(spec=SPEC, conv_pass=passes.FPROP, numerics=NUMERICS, isa=ISA, cpu=CPU) | changes))


def entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "plans").glob("*.plan"))


def assert_same_plan(a: Plan, b: Plan) -> None:
    for f in dataclasses.fields(Plan):
        if not f.init:   # built on first use
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, Calls):
            assert np.array_equal(x.table(), y.table()) and x.count == y.count, f.name
        else:
            assert x == y, f.name
    assert b.conv_pass is a.conv_pass
    assert np.array_equal(a.call_words, b.call_words) and a.summary() == b.summary()


@pytest.mark.parametrize("conv_pass", passes.ALL, ids=lambda p: p.name)
@pytest.mark.parametrize("blocking", [None, Blocking(2, 3, 1)], ids=["default", "given"])
def test_a_cached_kernel_is_the_kernel_a_fresh_build_gives(conv_pass, blocking, builds, cache_dir):
    fresh = compile(conv_pass=conv_pass, blocking=blocking)
    assert builds["build"] == 1 and len(entries(cache_dir)) == 1
    cached = compile(conv_pass=conv_pass, blocking=blocking)
    assert builds == {"build": 1, "default": int(blocking is None)}   # neither planned nor searched again
    assert cached.ir == fresh.ir and cached.entry == fresh.entry and cached.source == fresh.source
    assert "call_table" not in cached.plan.__dict__   # built on first use, as a fresh plan's
    assert_same_plan(fresh.plan, cached.plan)
    assert cached.plan.conv_pass is passes.get(conv_pass.name)


def key(**changes):
    args = dict(spec=SPEC, conv_pass=passes.FPROP, numerics=NUMERICS, blocking=None, cpu=CPU, isa=ISA, threads=2) | changes
    return plancache.key(target=named(args.pop("cpu")), **args)


KEY_CHANGES = {
    "bits": dict(numerics=Numerics(bits_x=13, bits_w=14)),
    "rounding": dict(numerics=Numerics(bits_x=14, bits_w=14, rounding="stochastic")),
    "chain": dict(numerics=Numerics(bits_x=14, bits_w=14, chain=4)),
    "given blocking": dict(blocking=Blocking(2, 3, 1)),
    "threads of a default blocking": dict(threads=3),
    "another blocking": dict(blocking=Blocking(2, 3, 1, unroll=2)),
    "batch": dict(spec=dataclasses.replace(SPEC, N=3)),
    "layer name": dict(spec=dataclasses.replace(SPEC, name="other")),   # the name is in the IR's comments
    "padding": dict(spec=dataclasses.replace(SPEC, pad_right=0)),
    "pass": dict(conv_pass=passes.BPROP),
    "result layout": dict(result_layout=ResultLayout.CHANNELS_LAST),
    "isa": dict(isa="avx512_vnni", cpu="znver4"),
    "cpu": dict(cpu="haswell"),
}


@pytest.mark.parametrize("change", KEY_CHANGES, ids=list(KEY_CHANGES))
def test_every_field_of_the_key_decides_a_hit(change, builds):
    assert key().digest == key().digest   # the same kernel, the same key
    assert key(**KEY_CHANGES[change]).digest != key().digest
    compile()
    compile(**KEY_CHANGES[change])
    assert builds["build"] == 2   # the changed kernel missed and was built
    compile(**KEY_CHANGES[change])
    assert builds["build"] == 2   # and is cached under its own key


@pytest.mark.parametrize("patched", ["template_hash", "source_hash"])
def test_a_changed_template_or_planner_source_misses(patched, builds, monkeypatch):
    compile()
    before = key().digest
    real = getattr(plancache, patched)
    monkeypatch.setattr(plancache, patched, lambda *a: "edited" + str(real(*a)))
    assert key().digest != before
    compile()
    assert builds["build"] == 2


def test_versions_and_formats_are_in_the_key(monkeypatch):
    before = key().digest
    for name, value in (("__version__", "9.9.9"), ("PLAN_FORMAT", -1), ("ENTRY_FORMAT", -1)):
        with monkeypatch.context() as m:
            m.setattr(plancache, name, value)
            assert key().digest != before, name


def test_a_tuned_kernel_is_keyed_on_the_blocking_the_database_returns(monkeypatch, builds):
    """A re-tune (the database answering another blocking) never meets the entry of the old choice."""
    answer = {"blocking": Blocking(2, 3, 1)}
    monkeypatch.setattr(conv_mod, "lookup", lambda *a, **k: (answer["blocking"],
                                                             "tuned" if answer["blocking"] else "default"))
    kernel = compile(cpu=None, tuned=True)
    assert kernel.source == "tuned" and (kernel.plan.blocking.kv, kernel.plan.blocking.wb) == (2, 3)
    assert compile(cpu=None, tuned=True).plan.blocking == kernel.plan.blocking and builds["build"] == 1
    answer["blocking"] = Blocking(1, 4, 1)
    retuned = compile(cpu=None, tuned=True)
    assert builds["build"] == 2 and (retuned.plan.blocking.kv, retuned.plan.blocking.wb) == (1, 4)
    answer["blocking"] = None   # the tuned record is gone: the default, under the default's key
    assert compile(cpu=None, tuned=True).source == "default" and builds["build"] == 3 and builds["default"] == 1


def _flip_a_bit_of_the_ir(data: bytes) -> bytes:
    at = data.index(b"define ") + 1   # still a well-formed pickle: only the checksum tells
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def _rechecksummed_junk(data: bytes) -> bytes:
    import hashlib
    junk = b"not a pickle"
    return hashlib.sha256(junk).digest() + junk


DAMAGES = {
    "truncated": lambda data: data[:100],
    "empty": lambda data: b"",
    "a bit of the IR flipped": _flip_a_bit_of_the_ir,
    "valid checksum, junk inside": _rechecksummed_junk,
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_entry_is_rebuilt(damage, builds, cache_dir):
    fresh = compile()
    [path] = entries(cache_dir)
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    rebuilt = compile()
    assert builds["build"] == 2 and rebuilt.ir == fresh.ir
    compile()   # and stored again, whole
    assert builds["build"] == 2


def test_an_entry_holding_another_kernel_is_not_served(builds, cache_dir):
    """A file under another kernel's name (copied by hand, say) is refused by what the plan must match."""
    compile()
    [first] = entries(cache_dir)
    other = dataclasses.replace(SPEC, C=32)
    shutil.copy(first, key(spec=other).path)
    assert compile(spec=other).plan.spec == other and builds["build"] == 2


def test_no_disk_cache_turns_it_off(monkeypatch, builds, cache_dir):
    monkeypatch.setenv("DFPGEN_NO_DISK_CACHE", "1")
    compile()
    compile()
    assert builds["build"] == 2 and not (cache_dir / "plans").exists()


def test_a_pass_the_registry_does_not_know_is_not_cached(builds, cache_dir):
    for unknown in (dataclasses.replace(passes.FPROP, name="fprop_again", order=99),
                    dataclasses.replace(passes.FPROP)):   # same name, another object: not the registered pass
        assert key(conv_pass=unknown) is None
        kernel = compile(conv_pass=unknown)
        assert kernel.plan.conv_pass is unknown
    compile(conv_pass=dataclasses.replace(passes.FPROP, name="fprop_again", order=99))
    assert builds["build"] == 3 and not entries(cache_dir)


def _copy_sources(root: Path) -> Path:
    package = Path(plancache.__file__).resolve().parent.parent
    for folder in plancache.SOURCE_FOLDERS:
        shutil.copytree(package / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in plancache.SOURCE_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(package / name, root / name)
    templates = root / "templates"
    templates.mkdir()
    (templates / "conv.ll.j2").write_text("template")
    return templates


def test_the_source_hash_covers_planners_emitter_cost_model_and_templates(tmp_path):
    templates = _copy_sources(tmp_path)
    digest = plancache.hash_sources(tmp_path, templates)
    assert digest and digest == plancache.hash_sources(tmp_path, templates)
    for edited in ("passes/fprop.py", "codegen/plan.py", "codegen/emit.py", "core/numerics.py", "tuning/cost.py",
                   "templates/conv.ll.j2"):
        path = tmp_path / edited
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        assert plancache.hash_sources(tmp_path, templates) != digest, edited
        path.write_bytes(original)
    (tmp_path / "passes" / "mypass.py").write_text("DEFINITION = None\n")   # a new pass module counts too
    assert plancache.hash_sources(tmp_path, templates) != digest
    for source in (tmp_path / "passes").glob("*.py"):   # bytecode alone: nothing to hash, nothing cached
        source.unlink()
    assert plancache.hash_sources(tmp_path, templates) is None


def test_the_source_hash_is_computed_once_per_process_at_import():
    code = "from dfpgen.runtime import plancache as p; print(p.source_hash.cache_info().currsize)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
    digest = plancache.source_hash()
    plancache.source_hash.cache_clear()
    assert digest is not None
    assert plancache.source_hash() == digest and plancache.source_hash() == digest
    assert plancache.source_hash.cache_info().misses == 1


_CHILD = textwrap.dedent("""
    import numpy as np
    import dfpgen
    from dfpgen.codegen import jit
    from dfpgen.runtime import conv

    searched, parsed = [], []
    real_default, real_parse = conv.default_blocking, jit._parse
    conv.default_blocking = lambda *a, **k: searched.append(1) or real_default(*a, **k)
    jit._parse = lambda ir: parsed.append(1) or real_parse(ir)
    op = dfpgen.Conv2d(dfpgen.ConvSpec(2, 16, 32, 6, 6, 3, 3, 1, 1, "child"), bits=14, isa="avx2", threads=1)
    rng = np.random.default_rng(0)
    y = op.fprop(rng.standard_normal((2, 16, 6, 6)), rng.standard_normal((32, 16, 3, 3)))
    print(len(searched), len(parsed), op.kernel("fprop").compiled().from_cache, float(np.abs(y).sum()))
""")


@runs_avx2
def test_a_new_process_builds_a_cached_kernel_without_planning_or_parsing_ir(cache_dir):
    env = dict(os.environ, DFPGEN_CACHE_DIR=str(cache_dir))
    run = lambda: subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()
    first, second = run(), run()
    assert first[:3] == ["1", "1", "False"]    # searched, planned, parsed and compiled
    assert second[:3] == ["0", "0", "True"]    # from the plan cache and the object file alone
    assert first[3] == second[3]               # and the loaded object computes the same result
