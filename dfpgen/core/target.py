"""Which CPU and ISA a kernel is emitted for: host detection through LLVM, or a named CPU for cross-emission."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from dfpgen.errors import TargetError


@dataclass(frozen=True)
class Isa:
    """One instruction-set path: how a kernel multiplies and accumulates, and on which vector width."""

    name: str
    precision: str            # "dfp16" (DFP mantissas into INT32: INT16 pairs, or INT8 quads) or "fp32"
    lanes: int                # 32-bit lanes per vector
    instruction: str          # what to look for in the assembly
    requires: tuple           # alternatives: the CPU must have every feature of at least one tuple
    saturating: bool = False  # has a saturating multiply-accumulate (vpdpwssds)
    llvm_features: str = ""   # LLVM feature changes that make the kernel keep exactly this instruction
    group: int = 2            # reduction elements per 32-bit lane and instruction: 2 INT16, 4 INT8, 1 FP32
    max_bits: int = 16        # widest DFP mantissa (sign included) its operands may hold
    src_offset: int = 0       # added to every src (broadcast) element so it fits the unsigned operand
    src_storage: str = "int16"   # numpy dtype of the blocked src (broadcast) operand
    vec_storage: str = "int16"   # numpy dtype of the blocked vec (vector) operand

    @property
    def kind(self) -> str:
        """How it multiplies: "vnni" (vpdpwssd, vpdpbusd), "pmadd" (vpmaddwd + vpaddd) or "fma" (FP32)."""
        if self.precision == "fp32":
            return "fma"
        return "vnni" if self.instruction in VNNI_INSTRUCTIONS else "pmadd"

    @property
    def storage_bytes(self) -> int:
        """Bytes of one operand element in the blocked layouts."""
        return 4 // self.group

    def accepts_bits(self, bits: int) -> bool:
        """Whether DFP mantissas of `bits` bits fit this ISA's operands."""
        return bits <= self.max_bits

    @property
    def vector_bits(self) -> int:
        """Vector register width in bits."""
        return 32 * self.lanes


# On Intel CPUs LLVM's machine combiner splits vpdpwssd into vpmaddwd + vpaddd to shorten dependency
# chains; our register blocks keep many independent chains in flight, so that split only halves the
# multiply-accumulate rate. "+fast-dpwssd" keeps vpdpwssd (checked in tests/test_jit.py).
_KEEP_DPWSSD = "+fast-dpwssd"
# The accumulate-in-place VNNI instructions: INT16 pairs (vpdpwssd) and unsigned x signed bytes (vpdpbusd).
VNNI_INSTRUCTIONS = ("vpdpwssd", "vpdpbusd")
# vpdpbusd multiplies unsigned by signed bytes: the src (activations in FPROP, the broadcast side) is stored
# as x + 128 in 0..255 and the kernel subtracts 128 x the sum of the vec operand (docs/numerics.md, INT8).
_UNSIGNED_OFFSET = 128
# Without VNNI turned off, LLVM fuses vpmaddwd + vpaddd into vpdpwssd on CPUs that have it.
_NO_VNNI = "-avx512vnni,-avxvnni"

# The order is the preference when choosing for a host: fastest first. The INT8 ISAs take operands of
# at most 8 bits, so they are chosen only for such numerics (Target.isas(bits=)). vpdpbusds exists, but
# saturating the offset sum would not saturate the true sum, so they are not `saturating`.
ISAS = {
    "avx512_vnni_int8": Isa("avx512_vnni_int8", "dfp16", 16, "vpdpbusd", (("avx512f", "avx512bw", "avx512vnni"),),
                            group=4, max_bits=8, src_offset=_UNSIGNED_OFFSET, src_storage="uint8", vec_storage="int8"),
    "avx_vnni_int8": Isa("avx_vnni_int8", "dfp16", 8, "vpdpbusd", (("avxvnni",), ("avx512vl", "avx512vnni")),
                         group=4, max_bits=8, src_offset=_UNSIGNED_OFFSET, src_storage="uint8", vec_storage="int8"),
    "avx512_vnni": Isa("avx512_vnni", "dfp16", 16, "vpdpwssd", (("avx512f", "avx512bw", "avx512vnni"),), True,
                       _KEEP_DPWSSD),
    "avx_vnni": Isa("avx_vnni", "dfp16", 8, "vpdpwssd", (("avxvnni",), ("avx512vl", "avx512vnni")), True,
                    _KEEP_DPWSSD),
    "avx512": Isa("avx512", "dfp16", 16, "vpmaddwd", (("avx512f", "avx512bw"),), llvm_features=_NO_VNNI),
    "avx2": Isa("avx2", "dfp16", 8, "vpmaddwd", (("avx2",),), llvm_features=_NO_VNNI),
    "fp32_avx512": Isa("fp32_avx512", "fp32", 16, "vfmadd231ps", (("avx512f",),), group=1,
                       src_storage="float32", vec_storage="float32"),
    "fp32_avx2": Isa("fp32_avx2", "fp32", 8, "vfmadd231ps", (("avx2", "fma"),), group=1,
                     src_storage="float32", vec_storage="float32"),
}
DFP_ISAS = tuple(n for n, i in ISAS.items() if i.precision == "dfp16")
FP32_ISAS = tuple(n for n, i in ISAS.items() if i.precision == "fp32")

_V3 = ("avx", "avx2", "fma", "f16c", "bmi2")
_V4 = _V3 + ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd")
# LLVM knows every CPU's features but llvmlite exposes them only for the host: this table covers the
# CPUs people cross-emit for. Only the features that pick an ISA or a register count matter here.
NAMED_CPU_FEATURES = {
    "haswell": _V3, "broadwell": _V3, "skylake": _V3, "znver1": _V3, "znver2": _V3, "znver3": _V3,
    "x86-64-v3": _V3, "x86-64-v4": _V4,
    "skylake-avx512": _V4, "cascadelake": _V4 + ("avx512vnni",), "cooperlake": _V4 + ("avx512vnni",),
    "icelake-server": _V4 + ("avx512vnni",), "tigerlake": _V4 + ("avx512vnni",),
    "sapphirerapids": _V4 + ("avx512vnni", "avxvnni"), "emeraldrapids": _V4 + ("avx512vnni", "avxvnni"),
    "graniterapids": _V4 + ("avx512vnni", "avxvnni"),
    "alderlake": _V3 + ("avxvnni",), "raptorlake": _V3 + ("avxvnni",), "meteorlake": _V3 + ("avxvnni",),
    "znver4": _V4 + ("avx512vnni",), "znver5": _V4 + ("avx512vnni", "avxvnni"),
}


@dataclass(frozen=True)
class Target:
    """A CPU to emit for: its LLVM name, its feature set, and whether it is the machine we run on."""

    cpu: str
    features: frozenset
    is_host: bool
    llvm_features: str = ""   # the exact feature string handed to LLVM ("" lets LLVM derive it from cpu)

    @property
    def vector_registers(self) -> int:
        """Architectural vector registers: 32 with AVX-512 (zmm0-31, and ymm16-31 via VL), else 16."""
        return 32 if "avx512f" in self.features else 16

    def supports(self, isa: str) -> bool:
        """Whether this CPU can execute `isa`."""
        return any(all(f in self.features for f in alt) for alt in get_isa(isa).requires)

    def isas(self, precision: str = "dfp16", bits: int = 16) -> list[str]:
        """The ISAs of one precision this CPU can run for operands of `bits` bits, best first (the INT8
        ISAs only when bits <= 8, so a caller that names no bits keeps the INT16 kernels)."""
        return [n for n, i in ISAS.items()
                if i.precision == precision and (precision == "fp32" or i.accepts_bits(bits)) and self.supports(n)]

    def all_isas(self) -> list[str]:
        """Every ISA this CPU can run, of any precision and operand width, in preference order."""
        return [n for n in ISAS if self.supports(n)]

    def best_isa(self, precision: str = "dfp16", bits: int = 16) -> str:
        """The preferred ISA of one precision for this CPU (for operands of `bits` bits)."""
        found = self.isas(precision, bits)
        if not found:
            raise TargetError(f"CPU {self.cpu!r} has none of the {precision} ISAs "
                              f"({', '.join(n for n, i in ISAS.items() if i.precision == precision)})")
        return found[0]

    def key(self) -> tuple:
        """What identifies this target in cache keys and tuning records."""
        return (self.cpu, ",".join(sorted(self.features)))

    def check_isa(self, isa: str) -> None:
        """Raise TargetError if this CPU cannot run (or be emitted for with) `isa`."""
        info = get_isa(isa)
        if not self.supports(isa):
            need = " or ".join("+".join(alt) for alt in info.requires)
            where = "this machine" if self.is_host else f"--cpu {self.cpu}"
            raise TargetError(f"isa={isa!r} needs {need}, which {where} ({self.cpu}) lacks; "
                              f"it has {', '.join(self.isas('dfp16') + self.isas('fp32')) or 'no supported ISA'}")


def get_isa(name: str) -> Isa:
    """The Isa record for `name`, or TargetError listing the known names."""
    try:
        return ISAS[name]
    except KeyError:
        raise TargetError(f"isa={name!r}: must be one of {', '.join(ISAS)}") from None


def ensure_llvm() -> None:
    """Initialize LLVM's native target once, on first use (never at import time)."""
    _init_llvm()


@lru_cache(maxsize=1)
def _init_llvm() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@lru_cache(maxsize=1)
def host() -> Target:
    """The machine we run on, as LLVM sees it."""
    import llvmlite.binding as llvm

    ensure_llvm()
    feature_map = llvm.get_host_cpu_features()
    enabled = frozenset(name for name, on in feature_map.items() if on)
    return Target(llvm.get_host_cpu_name(), enabled, True, feature_map.flatten())


def named(cpu: str) -> Target:
    """A target for a CPU by its LLVM name, for emitting IR and assembly (never for running)."""
    if cpu in ("host", "native"):
        return host()
    if cpu not in NAMED_CPU_FEATURES:
        raise TargetError(f"cpu={cpu!r}: unknown; known CPUs are {', '.join(sorted(NAMED_CPU_FEATURES))}")
    return Target(cpu, frozenset(NAMED_CPU_FEATURES[cpu]), False)


def resolve(cpu: str | None = None) -> Target:
    """The host when `cpu` is None, else the named CPU."""
    return host() if cpu is None else named(cpu)
