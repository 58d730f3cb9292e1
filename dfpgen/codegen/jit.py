"""JIT: llvmlite parse -> verify -> optimize -> MCJIT -> ctypes callable, with an on-disk object cache.

Compiled objects are cached under the user cache directory keyed by the IR's hash, the CPU name and
feature string, and the llvmlite and dfpgen versions, so a second process loads a kernel without
running LLVM's optimizer or code generator again, or parsing the IR: the object file goes straight into MCJIT.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from dfpgen.config import settings
from dfpgen.core.target import Isa, Target, ensure_llvm
from dfpgen.errors import CompileError, TargetError
from dfpgen.files import atomic_write
from dfpgen.version import __version__

CACHE_FORMAT = 1
# (src, vec, dst, call table, scale, max|dst| slot, first item, end item)
KERNEL_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_float, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_LOCK = threading.Lock()  # LLVM's global state is not re-entrant across our threads


def llvm_features(target: Target, isa: Isa) -> str:
    """The LLVM feature string for `target` with the features `isa` must not use turned off."""
    parts = [f for f in (target.llvm_features, isa.llvm_features) if f]
    return ",".join(parts)


def target_machine(target: Target, isa: Isa) -> llvm.TargetMachine:
    """An optimizing LLVM target machine for a CPU, restricted to one ISA."""
    ensure_llvm()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()   # the x86 kernels' inline-assembly steps
    triple = llvm.get_process_triple() if target.is_host else "x86_64-unknown-linux-gnu"
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=target.cpu, features=llvm_features(target, isa), opt=3, codemodel="jitdefault")


def cache_key(ir: str, target: Target, isa: Isa) -> str:
    """The object-cache key: IR, CPU, features and every version that can change the object code."""
    text = "\n".join([f"format={CACHE_FORMAT}", f"dfpgen={__version__}", f"llvmlite={llvmlite.__version__}",
                      f"llvm={llvm.llvm_version_info}", f"cpu={target.cpu}",
                      f"features={llvm_features(target, isa)}", ir])
    return hashlib.sha256(text.encode()).hexdigest()


def _parse(ir: str) -> llvm.ModuleRef:
    try:
        module = llvm.parse_assembly(ir)
        module.verify()
    except RuntimeError as exc:
        raise CompileError(f"LLVM rejected the emitted IR (a dfpgen bug): {exc}") from None
    return module


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """Run LLVM's O3 pipeline on `module` in place."""
    tuning = llvm.create_pipeline_tuning_options(speed_level=3)
    builder = llvm.create_pass_builder(tm, tuning)
    builder.getModulePassManager().run(module, builder)


@dataclass
class Compiled:
    """A JIT-compiled kernel: its engine (kept alive as long as the callable), the callable and its address."""

    engine: llvm.ExecutionEngine
    function: ctypes._CFuncPtr
    address: int
    from_cache: bool


_DIGEST = 32  # a cached object file starts with the sha256 of the rest


def _read_cached_object(path: Path) -> bytes | None:
    """The object code cached at `path`, or None if absent or damaged (a damaged object would crash MCJIT)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, payload = data[:_DIGEST], data[_DIGEST:]
    return payload if payload and hashlib.sha256(payload).digest() == digest else None


def jit_on_host(plan, ir: str, signature, what: str) -> Compiled:
    """jit() for a plan of the other kernel kinds (its target, isa and entry); TargetError, naming `what`, unless
    the plan's ISA runs on this host."""
    if not (plan.target.is_host and plan.target.supports(plan.isa.name)):
        raise TargetError(f"{what}: isa {plan.isa.name!r} on cpu {plan.target.cpu!r} cannot run here")
    return jit(ir, plan.entry, plan.target, plan.isa, signature=signature)


def jit(ir: str, entry: str, target: Target, isa: Isa, use_disk_cache: bool | None = None,
        signature=KERNEL_SIGNATURE) -> Compiled:
    """Compile IR for the host and return the `entry` function as a ctypes callable of `signature`
    (default: the convolution kernels')."""
    use_disk_cache = settings().disk_cache if use_disk_cache is None else use_disk_cache
    path = settings().cache_dir / "objects" / f"{cache_key(ir, target, isa)}.o"
    cached = _read_cached_object(path) if use_disk_cache else None
    with _LOCK:
        tm = target_machine(target, isa)
        if cached is not None:
            engine = _load_object(cached, tm)
        else:
            module = _parse(ir)
            optimize(module, tm)
            engine = llvm.create_mcjit_compiler(module, tm)

            def notify(_module, data: bytes) -> None:
                if use_disk_cache:
                    try:
                        atomic_write(path, hashlib.sha256(data).digest() + data)
                    except OSError:
                        pass  # a read-only or full cache directory only costs a recompile next time

            engine.set_object_cache(notify)
            engine.finalize_object()
        address = engine.get_function_address(entry)
    if not address:
        raise CompileError(f"compiled module has no function {entry!r}")
    return Compiled(engine, signature(address), address, cached is not None)


def _load_object(data: bytes, tm: llvm.TargetMachine) -> llvm.ExecutionEngine:
    """An engine running a cached object file. MCJIT wants a module to start from: an empty one, so the kernel's
    IR is never parsed (parsing was most of a cached kernel's load); the object is linked as the ones MCJIT
    compiles are."""
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(data))
    engine.finalize_object()
    return engine


def assembly(ir: str, target: Target, isa: Isa) -> str:
    """Optimized assembly of the IR for any CPU (cross-emission: nothing is executed)."""
    with _LOCK:
        tm = target_machine(target, isa)
        module = _parse(ir)
        optimize(module, tm)
        return tm.emit_assembly(module)


def optimized_ir(ir: str, target: Target, isa: Isa) -> str:
    """The IR after LLVM's O3 pipeline for a CPU."""
    with _LOCK:
        tm = target_machine(target, isa)
        module = _parse(ir)
        optimize(module, tm)
        return str(module)
