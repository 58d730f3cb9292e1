"""Numerics: how a layer's tensors are quantized (`LayerNumerics`, one type for every front end) and
how one kernel's integer arithmetic is done (`Numerics`, which a pass derives from the layer's).

A layer's operands come in three kinds: activations, weights and gradients. Each kind is DFP (INT16
mantissas of `bits` bits with a shared exponent, quantized with its rounding) or FP32. A pass reads
two kinds (FPROP: act x weight, BPROP: grad x weight, WTGRAD: act x grad, as dfpgen.passes defines);
it runs in DFP16 kernels when both are DFP, else in FP32 kernels. docs/numerics.md has the details.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import StrEnum

import numpy as np

from dfpgen.core.dfp import DEFAULT_BITS, check_bits, check_rounding, safe_chain
from dfpgen.errors import NumericsError

OVERFLOW_POLICIES = ("exact", "saturate", "wrap")
PRECISIONS = ("dfp16", "fp32")


class Kind(StrEnum):
    """The numerics kind of a layer operand; compares equal to its name ("act", "weight", "grad")."""

    ACT = "act"
    WEIGHT = "weight"
    GRAD = "grad"

    def __repr__(self) -> str:
        return repr(self.value)   # reads as the string a user writes: dfp=('act', 'weight')


KINDS = tuple(Kind)


def _check_chain(chain) -> int | None:
    """`chain` as an int (numpy integers too), or None; NumericsError unless it is an integer >= 1."""
    if chain is None:
        return None
    if not isinstance(chain, (int, np.integer)) or isinstance(chain, (bool, np.bool_)) or chain < 1:
        raise NumericsError(f"chain={chain!r}: must be an integer >= 1")
    return int(chain)


def check_overflow(overflow) -> str:
    """Return `overflow` if it is a known policy, else raise NumericsError."""
    if overflow not in OVERFLOW_POLICIES:
        raise NumericsError(f"overflow={overflow!r}: must be one of {', '.join(OVERFLOW_POLICIES)}")
    return overflow


@dataclass(frozen=True)
class Numerics:
    """How the integer arithmetic is done: operand bits, output rounding, overflow policy, chain.

    `chain` is the number of pair-instructions accumulated in INT32 before a flush to FP32.
    None means the longest chain that cannot overflow (`safe_chain`); under `saturate` and
    `wrap` a chain is also allowed past that bound (saturate clamps, wrap relies on the data).
    """

    bits_x: int = DEFAULT_BITS   # the same default as LayerNumerics: compile(spec) builds Conv2d(spec)'s FPROP kernel
    bits_w: int = DEFAULT_BITS
    rounding: str = "nearest"
    overflow: str = "exact"
    chain: int | None = None

    def __post_init__(self) -> None:
        check_bits(self.bits_x, "bits_x")
        check_bits(self.bits_w, "bits_w")
        check_rounding(self.rounding)
        check_overflow(self.overflow)
        object.__setattr__(self, "chain", _check_chain(self.chain))
        if self.chain is not None:
            if self.overflow == "exact" and self.chain > self.safe_chain:
                raise NumericsError(
                    f"chain={self.chain}: overflow='exact' allows at most safe_chain({self.bits_x}, "
                    f"{self.bits_w}) = {self.safe_chain}; pass overflow='wrap' or 'saturate' to go past it")
        elif self.overflow == "wrap":
            raise NumericsError("overflow='wrap' needs an explicit chain= longer than the safe bound")

    @property
    def safe_chain(self) -> int:
        """The longest chain that can never overflow INT32 with these operand bits."""
        return safe_chain(self.bits_x, self.bits_w)

    @property
    def effective_chain(self) -> int:
        """The chain the kernel uses."""
        return self.chain if self.chain is not None else self.safe_chain

    def safe_chain_on(self, isa) -> int:
        """The safe chain in instructions of `isa` (a dfpgen.core.target.Isa): its products per lane and the
        offset its src operand is stored with (vpdpbusd: 4 products of x + 128 in 0..255 by w)."""
        return safe_chain(self.bits_x, self.bits_w, isa.group, isa.src_offset)

    def chain_on(self, isa) -> int:
        """The chain a kernel on `isa` uses; NumericsError when an explicit chain passes its safe bound
        under overflow='exact'."""
        safe = self.safe_chain_on(isa)
        if self.chain is None:
            return safe
        if self.overflow == "exact" and self.chain > safe:
            raise NumericsError(f"chain={self.chain}: overflow='exact' on isa={isa.name!r} allows at most "
                                f"{safe} instructions for bits x{self.bits_x}/w{self.bits_w}")
        return self.chain

    def key(self) -> tuple:
        """Everything about the numerics that changes the generated code."""
        return (self.bits_x, self.bits_w, self.rounding, self.overflow, self.effective_chain)


@dataclass(frozen=True)
class LayerNumerics:
    """A layer's numerics, for every pass and front end: per operand kind its bits and rounding,
    which kinds are DFP at all, the overflow policy and accumulate chain, and the DFP16 ISA.

    `bits` (default 14, two bits of headroom in the 16-bit word: see DEFAULT_BITS) and `rounding` apply
    to activations; `bits_w` (default: bits) to weights, `bits_grad` (default: bits) and `grad_rounding`
    (default: rounding; "stochastic" is the usual choice) to gradients. `precision="fp32"` runs every
    pass in FP32 kernels; `dfp` names the kinds that are quantized in a dfp16 layer (the others stay
    FP32). Batch norm, the loss, the update and the master weights are always FP32, as in Das et al."""

    precision: str = "dfp16"
    bits: int = DEFAULT_BITS      # 14: the paper's two bits of headroom (dfpgen.core.dfp.DEFAULT_BITS says why)
    bits_w: int | None = None
    bits_grad: int | None = None
    rounding: str = "nearest"
    grad_rounding: str | None = None
    overflow: str = "exact"
    chain: int | None = None
    dfp: tuple = KINDS
    isa: str | None = None        # the DFP16 ISA; None: DFPGEN_ISA, else the host's best

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise NumericsError(f"precision={self.precision!r}: must be one of {', '.join(PRECISIONS)}")
        for field in ("bits", "bits_w", "bits_grad"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, check_bits(value, field))   # numpy integers become ints
        check_rounding(self.rounding)
        if self.grad_rounding is not None:
            check_rounding(self.grad_rounding, "grad_rounding")
        check_overflow(self.overflow)
        object.__setattr__(self, "chain", _check_chain(self.chain))
        if self.chain is None and self.overflow == "wrap":
            raise NumericsError("overflow='wrap' needs an explicit chain= longer than the safe bound")
        if not isinstance(self.dfp, (tuple, list, set, frozenset)) or not all(isinstance(k, str) for k in self.dfp):
            raise NumericsError(f"dfp={self.dfp!r}: must be a tuple of tensor kinds among {', '.join(KINDS)}")
        unknown = set(self.dfp) - set(KINDS)
        if unknown:
            raise NumericsError(f"dfp={sorted(unknown)}: tensor kinds must be among {', '.join(KINDS)}")
        object.__setattr__(self, "dfp", tuple(Kind(k) for k in KINDS if k in self.dfp))

    @classmethod
    def fp32(cls) -> "LayerNumerics":
        """Everything FP32 (through dfpgen's FP32 kernels)."""
        return cls("fp32")

    def bits_of(self, kind: str) -> int:
        """Mantissa bits of one operand kind."""
        own = {Kind.WEIGHT: self.bits_w, Kind.GRAD: self.bits_grad}.get(Kind(kind))
        return self.bits if own is None else own

    def rounding_of(self, kind: str) -> str:
        """Rounding mode of one operand kind."""
        return (self.grad_rounding or self.rounding) if Kind(kind) is Kind.GRAD else self.rounding

    def is_dfp(self, kind: str) -> bool:
        """Whether tensors of this kind are quantized to DFP."""
        return self.precision == "dfp16" and kind in self.dfp

    def pass_precision(self, conv_pass) -> str:
        """'dfp16' or 'fp32': the kernels one pass (a dfpgen.passes.Pass) runs in."""
        return "dfp16" if all(self.is_dfp(t.kind) for t in conv_pass.operands) else "fp32"

    def kernel_numerics(self, conv_pass) -> Numerics:
        """The Numerics of one pass's kernel: the bits of its two operand kinds, the policy and the chain
        (NumericsError when the chain does not fit those bits). The kernel's rounding field is the
        activations' (it is part of tuning keys)."""
        src, vec = conv_pass.operands
        return Numerics(self.bits_of(src.kind), self.bits_of(vec.kind), self.rounding, self.overflow, self.chain)

    def describe(self) -> str:
        """One line for logs."""
        if self.precision == "fp32":
            return "fp32"
        return (f"dfp16 (act {self.bits} / weight {self.bits_of(Kind.WEIGHT)} / grad {self.bits_of(Kind.GRAD)} "
                f"bits, rounding {self.rounding}, grad rounding {self.rounding_of(Kind.GRAD)}, {self.overflow}; "
                f"DFP: {','.join(self.dfp)})")

    def arguments(self) -> str:
        """The keyword arguments that rebuild these numerics (bits, and every field off its default), e.g.
        "bits=13, grad_rounding='stochastic'": for reprs of the layers that hold them."""
        shown = [f for f in fields(self) if f.name == "bits" or getattr(self, f.name) != f.default]
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in shown)

    def with_(self, **changes) -> "LayerNumerics":
        """A copy with some fields changed."""
        return replace(self, **changes)


def layer_numerics(numerics: LayerNumerics | None = None, **fields) -> LayerNumerics:
    """A layer's numerics, given as one LayerNumerics or as its fields by keyword (fields left None take
    the defaults), not both: the one way Conv2d, the PyTorch layers and convert() take numerics."""
    given = {name: value for name, value in fields.items() if value is not None}
    if numerics is None:
        return LayerNumerics(**given)
    if not isinstance(numerics, LayerNumerics):
        raise NumericsError(f"numerics={numerics!r}: must be a dfpgen.LayerNumerics")
    if given:
        raise NumericsError(f"{', '.join(given)}: give the numerics either as numerics=LayerNumerics(...) or as "
                            f"keywords, not both")
    return numerics
