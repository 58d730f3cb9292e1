"""Numerics: how a layer's tensors are quantized (`LayerNumerics`, one type for every front end) and
how one kernel's integer arithmetic is done (`Numerics`, which a pass derives from the layer's).

A layer's operands come in three kinds: activations, weights and gradients. Each kind is DFP (INT16
mantissas of `bits` bits with a shared exponent, quantized with its rounding) or FP32. A pass reads
two kinds (FPROP: act x weight, BPROP: grad x weight, WTGRAD: act x grad, as dfpgen.passes defines);
it runs in DFP16 kernels when both are DFP, else in FP32 kernels. A kind may instead hold an emulated
number format (`formats`: posits, FP8, bf16/fp16, MX; dfpgen.formats): its passes run in FP32 kernels on
the operands' rounded values. docs/numerics.md and docs/formats.md have the details.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import StrEnum

import numpy as np

from dfpgen import formats as number_formats
from dfpgen.core.dfp import DEFAULT_BITS, check_bits, check_rounding, safe_chain
from dfpgen.errors import FormatError, NumericsError
from dfpgen.formats.registry import PATTERNS

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
FORMATS_FORM = "NAME (every kind) or KIND=NAME,... (KIND: act, weight, grad)"
_FORMS = f"expected {FORMATS_FORM}; valid formats are {', '.join(PATTERNS)}"


def _check_formats(formats) -> tuple:
    """`formats` ({kind: name} or (kind, name) pairs) as ((Kind, name), ...) in KINDS order; FormatError
    naming the bad kind or name (and listing the valid formats) otherwise."""
    pairs = formats.items() if isinstance(formats, dict) else formats
    if isinstance(pairs, str) or not isinstance(pairs, (tuple, list, type({}.items()))) or \
            not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise FormatError(f"formats={formats!r}: must be a dict {{kind: format name}} or (kind, name) pairs, "
                          f"kinds among {', '.join(KINDS)}")
    chosen = {}
    for kind, name in pairs:
        if kind not in KINDS:
            raise FormatError(f"formats: tensor kind {kind!r} is not one of {', '.join(KINDS)}; {_FORMS}")
        if Kind(kind) in chosen:
            raise FormatError(f"formats: tensor kind {kind!r} is given twice; {_FORMS}")
        number_formats.get(name)   # FormatError listing the valid names
        chosen[Kind(kind)] = name
    return tuple((k, chosen[k]) for k in KINDS if k in chosen)


def parse_formats(text: str) -> tuple:
    """--format's value, NAME or KIND=NAME,..., as LayerNumerics.formats; FormatError naming the bad item
    (and listing the valid formats) otherwise."""
    items = [item.strip() for item in str(text).split(",")]
    if len(items) == 1 and "=" not in items[0]:
        return _check_formats({k: items[0] for k in KINDS})
    pairs = []
    for item in items:
        kind, sep, name = (part.strip() for part in item.partition("="))
        if not sep or not kind or not name:
            raise FormatError(f"{text!r}: item {item!r} is not KIND=NAME; {_FORMS}")
        pairs.append((kind, name))
    return _check_formats(pairs)


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
    FP32). `formats` ({kind: name} or (kind, name) pairs, names as dfpgen.formats.get takes them) gives
    kinds an emulated number format instead of DFP: a pass reading one runs in FP32 kernels on the operands
    rounded to their formats (docs/formats.md, Training with formats). Batch norm, the loss, the update and
    the master weights are always FP32, as in Das et al."""

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
    formats: tuple = ()           # ((kind, format name), ...): kinds held in an emulated format, not DFP

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
        object.__setattr__(self, "formats", _check_formats(self.formats))
        if self.formats and self.precision == "fp32":
            raise NumericsError(f"formats={self.formats!r}: precision='fp32' keeps every kind FP32; drop one of them")
        for kind, field in ((Kind.WEIGHT, "bits_w"), (Kind.GRAD, "bits_grad")):
            if self.format_name(kind) and getattr(self, field) is not None:
                raise NumericsError(f"{field}={getattr(self, field)}: {kind} tensors have the format "
                                    f"{self.format_name(kind)}, not DFP bits; drop one of them")

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

    def format_name(self, kind: str) -> str | None:
        """The emulated format of one operand kind, by name, or None (DFP or FP32, as `dfp` says)."""
        return dict(self.formats).get(Kind(kind))

    def format_of(self, kind: str):
        """The emulated format object of one operand kind (dfpgen.formats.get), or None."""
        name = self.format_name(kind)
        return None if name is None else number_formats.get(name)

    def is_dfp(self, kind: str) -> bool:
        """Whether tensors of this kind are quantized to DFP (not FP32, not an emulated format)."""
        return self.precision == "dfp16" and kind in self.dfp and self.format_name(kind) is None

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
        quire = any(self.format_of(k).accumulation == "quire" for k, _ in self.formats)
        engine = "FP32 kernels; posit results summed exactly, as a quire" if quire else "FP32 kernels"
        emulated = f"emulated {', '.join(f'{k}={name}' for k, name in self.formats)} ({engine})"
        if len(self.formats) == len(KINDS):
            return emulated
        dfp = ','.join(k for k in self.dfp if self.is_dfp(k))
        return (f"dfp16 (act {self.bits} / weight {self.bits_of(Kind.WEIGHT)} / grad {self.bits_of(Kind.GRAD)} "
                f"bits, rounding {self.rounding}, grad rounding {self.rounding_of(Kind.GRAD)}, {self.overflow}; "
                f"DFP: {dfp})" + (f"; {emulated}" if self.formats else ""))

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
