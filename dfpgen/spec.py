"""What to compute: a convolution's shape (`ConvSpec`) and its numerics (`Numerics`). No ISA here."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .dfp import ROUNDING_MODES, check_bits, check_rounding, safe_chain
from .errors import NumericsError, SpecError

OVERFLOW_POLICIES = ("exact", "saturate", "wrap")


@dataclass(frozen=True)
class ConvSpec:
    """One 2-D convolution layer: N images of C x H x W, K filters of C x R x S, square stride and pad.

    Fully-connected layers are 1x1 convolutions on 1x1 inputs.
    """

    N: int
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    stride: int = 1
    pad: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        for field in ("N", "C", "K", "H", "W", "R", "S", "stride"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{self._label()}{field}={value!r}: must be an integer >= 1")
        if not isinstance(self.pad, int) or isinstance(self.pad, bool) or self.pad < 0:
            raise SpecError(f"{self._label()}pad={self.pad!r}: must be an integer >= 0")
        if self.R > self.H + 2 * self.pad:
            raise SpecError(f"{self._label()}R={self.R}: must be <= H + 2*pad = {self.H + 2 * self.pad}")
        if self.S > self.W + 2 * self.pad:
            raise SpecError(f"{self._label()}S={self.S}: must be <= W + 2*pad = {self.W + 2 * self.pad}")

    def _label(self) -> str:
        return f"layer {self.name!r}: " if self.name else ""

    @property
    def P(self) -> int:
        """Output height."""
        return (self.H + 2 * self.pad - self.R) // self.stride + 1

    @property
    def Q(self) -> int:
        """Output width."""
        return (self.W + 2 * self.pad - self.S) // self.stride + 1

    @property
    def macs_per_image(self) -> int:
        """Multiply-accumulates of one image's forward pass."""
        return self.K * self.C * self.R * self.S * self.P * self.Q

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole batch's forward pass (each pass costs the same)."""
        return self.N * self.macs_per_image

    def with_batch(self, N: int) -> "ConvSpec":
        """The same layer with another batch size."""
        return replace(self, N=N)

    def shape_key(self) -> tuple:
        """Everything that determines the computation (the name does not)."""
        return (self.N, self.C, self.K, self.H, self.W, self.R, self.S, self.stride, self.pad)

    def describe(self) -> str:
        """A one-line human summary."""
        return (f"N={self.N} C={self.C} K={self.K} {self.H}x{self.W} -> {self.P}x{self.Q} "
                f"kernel {self.R}x{self.S} stride {self.stride} pad {self.pad}")


@dataclass(frozen=True)
class Numerics:
    """How the integer arithmetic is done: operand bits, output rounding, overflow policy, chain.

    `chain` is the number of pair-instructions accumulated in INT32 before a flush to FP32.
    None means the longest chain that cannot overflow (`safe_chain`); under `saturate` and
    `wrap` a chain is also allowed past that bound (saturate clamps, wrap relies on the data).
    """

    bits_x: int = 16
    bits_w: int = 16
    rounding: str = "nearest"
    overflow: str = "exact"
    chain: int | None = None

    def __post_init__(self) -> None:
        check_bits(self.bits_x, "bits_x")
        check_bits(self.bits_w, "bits_w")
        check_rounding(self.rounding)
        if self.overflow not in OVERFLOW_POLICIES:
            raise NumericsError(f"overflow={self.overflow!r}: must be one of {', '.join(OVERFLOW_POLICIES)}")
        if self.chain is not None:
            if not isinstance(self.chain, int) or isinstance(self.chain, bool) or self.chain < 1:
                raise NumericsError(f"chain={self.chain!r}: must be an integer >= 1")
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

    def key(self) -> tuple:
        """Everything about the numerics that changes the generated code."""
        return (self.bits_x, self.bits_w, self.rounding, self.overflow, self.effective_chain)
