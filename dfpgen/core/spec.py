"""What to compute: a convolution's shape (`ConvSpec`). Its numerics are in dfpgen.core.numerics; no ISA here."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dfpgen.errors import SpecError


@dataclass(frozen=True)
class ConvSpec:
    """One 2-D convolution layer: N images of C x H x W, K filters of C/groups x R x S.

    `stride` and `pad` are the vertical stride and the top padding, and also every other direction
    unless `stride_w` (horizontal stride), `pad_w` (left), `pad_bottom` and `pad_right` say otherwise;
    `pad_bottom` and `pad_right` may be negative (benchdnn's deduced padding): the last input rows or
    columns are then never read. `dilation` (and `dilation_w`) follows PyTorch: 1 is an ordinary convolution, 2 skips one pixel
    between taps. A field equal to the value it defaults to is stored as None, so equal layers
    compare equal however they were written. Fully-connected layers are 1x1 convolutions on 1x1 inputs.
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
    groups: int = 1
    dilation: int = 1
    stride_w: int | None = None
    dilation_w: int | None = None
    pad_w: int | None = None
    pad_bottom: int | None = None
    pad_right: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise SpecError(f"name={self.name!r}: must be a string")
        for field in ("N", "C", "K", "H", "W", "R", "S", "stride", "groups", "dilation"):
            _check_int(self, field, getattr(self, field), 1)
        _check_int(self, "pad", self.pad, 0)
        for field, minimum, same_as in (("stride_w", 1, self.stride), ("dilation_w", 1, self.dilation),
                                        ("pad_w", 0, self.pad)):
            self._canonical(field, minimum, same_as)
        # A negative bottom/right pad crops: the last input rows/columns lie past every window.
        self._canonical("pad_bottom", 1 - self.H, self.pad)
        self._canonical("pad_right", 1 - self.W, self.pl)
        for channels in ("C", "K"):
            if getattr(self, channels) % self.groups:
                raise SpecError(f"{self._label()}{channels}={getattr(self, channels)}: must be a multiple of "
                                f"groups={self.groups}")
        for taps, extent, size, pads, axis in (("R", self.R_extent, "H", self.pt + self.pb, "height"),
                                               ("S", self.S_extent, "W", self.pl + self.pr, "width")):
            room = getattr(self, size) + pads
            if extent > room:
                what = f"{taps}={getattr(self, taps)}:" + (f" the dilated filter {axis} {extent}"
                                                           if extent != getattr(self, taps) else "")
                raise SpecError(f"{self._label()}{what} must be <= {size} + 2*pad = {room}" if self.plain else
                                f"{self._label()}{what} must be <= {size} + pads = {room}")

    def _canonical(self, field: str, minimum: int, same_as: int) -> None:
        value = getattr(self, field)
        if value is None:
            return
        _check_int(self, field, value, minimum)
        if getattr(self, field) == same_as:
            object.__setattr__(self, field, None)  # frozen: canonical form, so equal layers compare equal

    def _label(self) -> str:
        return f"layer {self.name!r}: " if self.name else ""

    @property
    def sh(self) -> int:
        """Vertical stride."""
        return self.stride

    @property
    def sw(self) -> int:
        """Horizontal stride."""
        return self.stride if self.stride_w is None else self.stride_w

    @property
    def dh(self) -> int:
        """Vertical dilation (1: ordinary)."""
        return self.dilation

    @property
    def dw(self) -> int:
        """Horizontal dilation (1: ordinary)."""
        return self.dilation if self.dilation_w is None else self.dilation_w

    @property
    def pt(self) -> int:
        """Top padding."""
        return self.pad

    @property
    def pb(self) -> int:
        """Bottom padding."""
        return self.pad if self.pad_bottom is None else self.pad_bottom

    @property
    def pl(self) -> int:
        """Left padding."""
        return self.pad if self.pad_w is None else self.pad_w

    @property
    def pr(self) -> int:
        """Right padding."""
        return self.pl if self.pad_right is None else self.pad_right

    @property
    def R_extent(self) -> int:
        """Rows one filter spans in the input, dilation included."""
        return (self.R - 1) * self.dh + 1

    @property
    def S_extent(self) -> int:
        """Columns one filter spans in the input, dilation included."""
        return (self.S - 1) * self.dw + 1

    @property
    def P(self) -> int:
        """Output height."""
        return (self.H + self.pt + self.pb - self.R_extent) // self.sh + 1

    @property
    def Q(self) -> int:
        """Output width."""
        return (self.W + self.pl + self.pr - self.S_extent) // self.sw + 1

    @property
    def plain(self) -> bool:
        """Square stride, symmetric padding, no dilation, no groups: the shape every kernel pass began with."""
        return (self.groups, self.dilation) == (1, 1) and all(
            getattr(self, f) is None for f in ("stride_w", "dilation_w", "pad_w", "pad_bottom", "pad_right"))

    @property
    def Cg(self) -> int:
        """Input channels per group."""
        return self.C // self.groups

    @property
    def Kg(self) -> int:
        """Output channels per group."""
        return self.K // self.groups

    def per_group(self) -> "ConvSpec":
        """The convolution of one group (groups=1): what one generated kernel computes."""
        return replace(self, C=self.Cg, K=self.Kg, groups=1) if self.groups > 1 else self

    @property
    def macs_per_image(self) -> int:
        """Multiply-accumulates of one image's forward pass."""
        return self.K * self.Cg * self.R * self.S * self.P * self.Q

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the whole batch's forward pass (each pass costs the same)."""
        return self.N * self.macs_per_image

    def with_batch(self, N: int) -> "ConvSpec":
        """The same layer with another batch size."""
        return replace(self, N=N)

    def shape_key(self) -> tuple:
        """Everything that determines the computation (the name does not); plain layers keep a 9-tuple."""
        key = (self.N, self.C, self.K, self.H, self.W, self.R, self.S, self.stride, self.pad)
        if self.plain:
            return key
        return key + (self.groups, self.dilation, self.sw, self.dw, self.pl, self.pb, self.pr)

    def describe(self) -> str:
        """A one-line human summary."""
        text = (f"N={self.N} C={self.C} K={self.K} {self.H}x{self.W} -> {self.P}x{self.Q} "
                f"kernel {self.R}x{self.S} stride {_pair(self.sh, self.sw)} pad {self._pads()}")
        if (self.dh, self.dw) != (1, 1):
            text += f" dilation {_pair(self.dh, self.dw)}"
        return text + (f" groups {self.groups}" if self.groups > 1 else "")

    def _pads(self) -> str:
        if self.pt == self.pb and self.pl == self.pr:
            return _pair(self.pt, self.pl)
        return f"t{self.pt} b{self.pb} l{self.pl} r{self.pr}"


def _pair(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


def _check_int(spec: ConvSpec, field: str, value, minimum: int) -> None:
    """Check an integer field; a numpy integer is stored as a Python int (it would break JSON keys and hashing)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < minimum:
        raise SpecError(f"{spec._label()}{field}={value!r}: must be an integer >= {minimum}")
    if type(value) is not int:
        object.__setattr__(spec, field, int(value))   # frozen: normalize before anything reads the field
