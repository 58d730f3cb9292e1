"""The emitter: renders a Plan into LLVM IR text through the jinja2 templates in templates/."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

import jinja2

from dfpgen.codegen.plan import Plan
from dfpgen.core.target import Isa
from dfpgen.version import __version__


def _read_template(name: str) -> str:
    return resources.files("dfpgen.templates").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The jinja2 environment over the packaged templates; undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (_read_template(name), None, lambda: True)),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


@lru_cache(maxsize=None)
def template_hash(template: str) -> str:
    """A short hash of a template's source: part of tuning keys (a new template retunes)."""
    return hashlib.sha256(_read_template(template).encode()).hexdigest()[:16]


def ir_types(isa: Isa, saturating: bool = False, vex_only: bool = False) -> dict:
    """LLVM IR type names, the multiply-accumulate intrinsic of an ISA, and the mnemonics of its
    inline-assembly steps (`vex_only`: the target has no AVX-512, so only VEX encodings run)."""
    lanes = isa.lanes
    fvec = f"<{lanes} x float>"
    types = {"fvec": fvec, "fsuffix": f"v{lanes}f32", "asm_load": "vmovups", "kind": isa.kind}
    if isa.kind == "fma":
        return types | {"elem": "float", "scalar": "float", "acc": fvec, "wvec": fvec,
                        "bvec": fvec, "mac_intrinsic": "", "elem_bytes": 4, "asm_broadcast": "vbroadcastss",
                        "asm_mac": "vfmadd231ps"}
    acc = f"<{lanes} x i32>"
    saturate = "s" if saturating else ""
    # Without {vex} the assembler picks the EVEX (AVX512-VNNI) form, which AVX-VNNI-only CPUs lack.
    vex = "{vex}\\09" if vex_only else ""
    if isa.instruction == "vpdpbusd":
        # Always inline-assembly steps (ASM_STEP_INSTRUCTIONS), so no intrinsic: bytes, four per lane.
        return types | {"elem": "i8", "scalar": "i32", "acc": acc, "wvec": f"<{4 * lanes} x i8>", "bvec": acc,
                        "mac_intrinsic": "", "elem_bytes": 1, "asm_broadcast": "vpbroadcastd",
                        "asm_mac": vex + "vpdpbusd"}
    wvec = f"<{2 * lanes} x i16>"
    asm_mac = ""
    if isa.kind == "vnni":
        name = f"llvm.x86.avx512.vpdpwssd{saturate}.{32 * lanes}"
        decl = f"{acc} @{name}({acc}, {wvec}, {wvec})"
        asm_mac = vex + f"vpdpwssd{saturate}"
    else:
        name = "llvm.x86.avx512.pmaddw.d.512" if lanes == 16 else "llvm.x86.avx2.pmadd.wd"
        decl = f"{acc} @{name}({wvec}, {wvec})"
    return types | {"elem": "i16", "scalar": "i32", "acc": acc, "wvec": wvec,
                    "bvec": acc, "mac_intrinsic": name, "mac_decl": decl, "elem_bytes": 2,
                    "asm_broadcast": "vpbroadcastd", "asm_mac": asm_mac}


def render_kind(plan, **values) -> str:
    """LLVM IR text of a plan of the other kernel kinds (data movement, pointwise, max pooling, corrections): its
    template rendered with the plan, its entry and dfpgen's version, plus `values`."""
    return environment().get_template(plan.template).render(plan=plan, entry=plan.entry, version=__version__,
                                                            **values)


def render(plan: Plan) -> str:
    """LLVM IR text of the kernel for `plan`."""
    template = environment().get_template(plan.template)
    types = ir_types(plan.isa, plan.numerics.overflow == "saturate", plan.target.vector_registers == 16)
    return template.render(plan=plan, t=types, entry=plan.entry, version=__version__)
