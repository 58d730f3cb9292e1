"""Which tensors of a training run are DFP, with what bits and rounding; the rest of training is FP32."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dfpgen.core.dfp import check_bits, check_rounding
from dfpgen.errors import NumericsError
from dfpgen.core.spec import OVERFLOW_POLICIES

KINDS = ("act", "weight", "grad")
PRECISIONS = ("dfp16", "fp32")


@dataclass(frozen=True)
class Precision:
    """A run's numerics. A convolution pass runs in DFP16 kernels when both of its operands are DFP
    kinds (fprop: act x weight, bprop: grad x weight, wtgrad: act x grad), else in FP32 kernels.
    Batch norm, the loss, the update and the master weights are always FP32, as in Das et al."""

    name: str = "dfp16"
    bits: int = 16
    bits_w: int | None = None
    bits_grad: int | None = None
    rounding: str = "nearest"
    grad_rounding: str | None = None
    overflow: str = "exact"
    chain: int | None = None
    dfp: tuple = KINDS            # which of act, weight, grad are DFP (dfp16 runs only)
    isa: str | None = None

    def __post_init__(self) -> None:
        if self.name not in PRECISIONS:
            raise NumericsError(f"precision={self.name!r}: must be one of {', '.join(PRECISIONS)}")
        check_bits(self.bits)
        for field in ("bits_w", "bits_grad"):
            if getattr(self, field) is not None:
                check_bits(getattr(self, field), field)
        check_rounding(self.rounding)
        if self.grad_rounding is not None:
            check_rounding(self.grad_rounding)
        if self.overflow not in OVERFLOW_POLICIES:
            raise NumericsError(f"overflow={self.overflow!r}: must be one of {', '.join(OVERFLOW_POLICIES)}")
        unknown = set(self.dfp) - set(KINDS)
        if unknown:
            raise NumericsError(f"dfp={sorted(unknown)}: tensor kinds must be among {', '.join(KINDS)}")

    @classmethod
    def fp32(cls) -> "Precision":
        """Everything FP32 (through dfpgen's FP32 kernels)."""
        return cls("fp32")

    def is_dfp(self, kind: str) -> bool:
        """Whether tensors of this kind are quantized to DFP."""
        return self.name == "dfp16" and kind in self.dfp

    def pass_precision(self, pass_name: str) -> str:
        """'dfp16' or 'fp32' for one convolution pass."""
        kinds = {"fprop": ("act", "weight"), "bprop": ("grad", "weight"), "wtgrad": ("act", "grad")}[pass_name]
        return "dfp16" if all(self.is_dfp(k) for k in kinds) else "fp32"

    def conv_options(self) -> dict:
        """Keyword arguments for dfpgen.Conv2d."""
        return dict(bits=self.bits, bits_w=self.bits_w, bits_grad=self.bits_grad, rounding=self.rounding,
                    grad_rounding=self.grad_rounding, overflow=self.overflow, chain=self.chain)

    def describe(self) -> str:
        """One line for logs."""
        if self.name == "fp32":
            return "fp32"
        bw = self.bits if self.bits_w is None else self.bits_w
        bg = self.bits if self.bits_grad is None else self.bits_grad
        return (f"dfp16 (act {self.bits} / weight {bw} / grad {bg} bits, rounding {self.rounding}, "
                f"grad rounding {self.grad_rounding or self.rounding}, {self.overflow}; DFP: {','.join(self.dfp)})")

    def with_(self, **changes) -> "Precision":
        """A copy with some fields changed."""
        return replace(self, **changes)
