"""JIT and targets: the right instruction per ISA in the assembly of any CPU, refusal of ISAs a CPU lacks,
and the on-disk object cache shared between processes."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

import dfpgen
from dfpgen import ConvSpec, Numerics, TargetError
from dfpgen.codegen.plan import Blocking
from dfpgen.core.target import ISAS, host, named

SPEC = ConvSpec(1, 32, 32, 8, 8, 3, 3, 1, 1, "small")

# (isa, cpu, must contain, must not contain)
ASM_CASES = [
    ("avx512_vnni", "sapphirerapids", ["vpdpwssd", "zmm"], ["vpmaddwd"]),
    ("avx512_vnni", "cascadelake", ["vpdpwssd", "zmm"], ["vpmaddwd"]),
    ("avx512_vnni", "znver4", ["vpdpwssd", "zmm"], ["vpmaddwd"]),
    ("avx_vnni", "alderlake", ["{vex}\tvpdpwssd", "ymm"], ["zmm", "vpmaddwd"]),
    ("avx_vnni", "sapphirerapids", ["vpdpwssd", "ymm"], ["zmm", "vpmaddwd"]),
    ("avx512", "skylake-avx512", ["vpmaddwd", "vpaddd", "zmm"], ["vpdpwssd"]),
    ("avx512", "sapphirerapids", ["vpmaddwd", "vpaddd", "zmm"], ["vpdpwssd"]),
    ("avx2", "znver3", ["vpmaddwd", "vpaddd", "ymm"], ["vpdpwssd", "zmm"]),
    ("avx2", "sapphirerapids", ["vpmaddwd", "vpaddd", "ymm"], ["vpdpwssd", "zmm"]),
    ("fp32_avx512", "skylake-avx512", ["vfmadd231ps", "zmm"], ["vpmaddwd", "vpdpwssd"]),
    ("fp32_avx2", "haswell", ["vfmadd231ps", "ymm"], ["zmm"]),
]


@pytest.mark.parametrize("isa,cpu,present,absent", ASM_CASES)
def test_cross_emitted_assembly_uses_the_isa_instruction(isa, cpu, present, absent):
    kernel = dfpgen.compile(SPEC, "fprop", Numerics(13, 13), isa=isa, cpu=cpu)
    asm = kernel.asm
    for text in present:
        assert text in asm, f"{isa} on {cpu}: {text!r} missing"
    for text in absent:
        assert text not in asm, f"{isa} on {cpu}: unexpected {text!r}"
    assert not kernel.executable


def test_vnni_multiply_accumulates_are_not_split_on_intel():
    # LLVM's machine combiner would turn vpdpwssd into vpmaddwd + vpaddd on Intel cores; every
    # multiply-accumulate of the register block must stay one vpdpwssd.
    kernel = dfpgen.compile(SPEC, "fprop", Numerics(13, 13), isa="avx512_vnni", cpu="sapphirerapids")
    plan = kernel.plan
    main_tile = plan.tiles[0]
    assert kernel.asm.count("vpdpwssd") >= main_tile.accumulators * plan.unroll


def innermost_loop(asm: str, instruction: str) -> list[str]:
    """The instructions of the single-block loop (label ... backward branch to it, no label between)
    that holds the most `instruction`s."""
    best, label, body = [], None, []
    for line in asm.splitlines():
        if re.match(r"^\.LBB\S+:", line):
            label, body = line[:-1], []
        elif line.startswith("\t") and not line.strip().startswith(("#", ".")):
            body.append(line.strip())
            if label and re.match(rf"j\w+\s+{re.escape(label)}$", line.strip()):
                if sum(instruction in x for x in body) > sum(instruction in x for x in best):
                    best = body[:]
    return best


PIN_CASES = [  # (pass, spec, blocking): the vpmaddwd defaults on Zen 3 (res3a/res4a_branch2b shapes)
    ("fprop", ConvSpec(1, 128, 128, 28, 28, 3, 3, 1, 1, "res3a"), Blocking(2, 4, 1, 32, 16, "np")),
    ("bprop", ConvSpec(1, 128, 128, 28, 28, 3, 3, 1, 1, "res3a"), Blocking(2, 4, 1, 32, 16)),
    ("wtgrad", ConvSpec(1, 256, 256, 14, 14, 3, 3, 1, 1, "res4a"), Blocking(4, 2, 1)),
    ("wtgrad", ConvSpec(1, 64, 64, 56, 56, 3, 3, 1, 1, "res2a"), Blocking(3, 3, 1)),
]


@pytest.mark.parametrize("pass_name,spec,blocking", PIN_CASES, ids=lambda v: getattr(v, "name", None))
def test_vpmaddwd_register_blocks_stay_in_registers(pass_name, spec, blocking):
    # Without the pinned accumulators (templates/conv.ll.j2) LLVM reassociates the unrolled adds and
    # these steps spill (30-48 stack references a step); every MAC of the step must stay in registers.
    kernel = dfpgen.compile(spec, pass_name, Numerics(13, 13), isa="avx2", cpu="znver3", blocking=blocking)
    plan, tile = kernel.plan, kernel.plan.tiles[0]
    loop = innermost_loop(kernel.asm, "vpmaddwd")
    assert sum("vpmaddwd" in x for x in loop) == tile.accumulators * plan.unroll
    assert sum("vpaddd" in x for x in loop) == tile.accumulators * plan.unroll
    assert not [x for x in loop if "rsp" in x], "\n".join(loop)


ASM_STEP_CASES = [  # (isa, cpu, pass): full register files, where LLVM's own schedule spilled
    ("avx512_vnni", "sapphirerapids", "fprop"), ("avx512_vnni", "sapphirerapids", "wtgrad"),
    ("avx_vnni", "alderlake", "bprop"), ("fp32_avx512", "skylake-avx512", "fprop"), ("fp32_avx2", "znver3", "fprop"),
]


@pytest.mark.parametrize("isa,cpu,pass_name", ASM_STEP_CASES)
def test_vnni_and_fma_steps_keep_the_register_block_in_registers(isa, cpu, pass_name):
    # The step is one inline-assembly block (plan.asm_steps): every multiply-accumulate of the
    # default register block, and no stack reference, in the step loop.
    spec = ConvSpec(1, 64, 64, 56, 56, 3, 3, 1, 1, "res2a")
    kernel = dfpgen.compile(spec, pass_name, Numerics(13, 13) if ISAS[isa].precision == "dfp16" else Numerics(),
                            isa=isa, cpu=cpu)
    plan, tile = kernel.plan, kernel.plan.tiles[0]
    assert plan.asm_steps and plan.registers >= named(cpu).vector_registers - 3
    loop = innermost_loop(kernel.asm, ISAS[isa].instruction)
    assert sum(ISAS[isa].instruction in x for x in loop) == tile.accumulators * plan.unroll
    assert not [x for x in loop if "rsp" in x], "\n".join(loop)


def test_vpmaddwd_steps_are_left_to_llvm():
    plan = dfpgen.compile(SPEC, "fprop", Numerics(13, 13), isa="avx2", cpu="znver3").plan
    assert not plan.asm_steps


@pytest.mark.parametrize("isa,cpu", [("avx512_vnni", "alderlake"), ("avx512", "znver3"), ("avx_vnni", "skylake-avx512"),
                                     ("fp32_avx512", "haswell")])
def test_isa_missing_on_named_cpu_is_refused_before_llvm(isa, cpu):
    with pytest.raises(TargetError, match=isa):
        dfpgen.compile(SPEC, "fprop", isa=isa, cpu=cpu)


def test_unknown_cpu_and_isa_names():
    with pytest.raises(TargetError, match="known CPUs"):
        named("pentium-pro")
    with pytest.raises(TargetError, match="must be one of"):
        dfpgen.compile(SPEC, "fprop", isa="sse2")


def test_cross_emitted_kernel_refuses_to_run():
    kernel = dfpgen.compile(SPEC, "fprop", isa="avx2", cpu="znver3")
    with pytest.raises(TargetError, match="cannot run"):
        kernel.compiled()


def test_host_target_has_an_isa_and_register_count():
    h = host()
    assert h.is_host and h.isas("dfp16") and h.isas("fp32")
    assert h.vector_registers in (16, 32)
    assert set(h.isas("dfp16")) <= set(ISAS)


_CHILD = textwrap.dedent("""
    import dfpgen, numpy as np
    k = dfpgen.compile(dfpgen.ConvSpec(1, 16, 16, 6, 6, 3, 3, 1, 1), "fprop", isa="avx2")
    print("cached" if k.compiled().from_cache else "compiled")
""")


@pytest.mark.skipif(not host().supports("avx2"), reason="host cannot run avx2 kernels")
def test_object_cache_is_shared_between_processes(tmp_path):
    env = dict(os.environ, DFPGEN_CACHE_DIR=str(tmp_path))
    run = lambda: subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                                 check=True).stdout.strip()
    assert run() == "compiled"
    assert run() == "cached"
    objects = list((tmp_path / "objects").glob("*.o"))
    assert len(objects) == 1
    # A damaged object is recompiled, never loaded.
    objects[0].write_bytes(objects[0].read_bytes()[:100])
    assert run() == "compiled"
    assert run() == "cached"


@pytest.mark.skipif(not host().supports("avx2"), reason="host cannot run avx2 kernels")
def test_disk_cache_can_be_switched_off(tmp_path):
    env = dict(os.environ, DFPGEN_CACHE_DIR=str(tmp_path), DFPGEN_NO_DISK_CACHE="1")
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "compiled"
    assert not (tmp_path / "objects").exists()
