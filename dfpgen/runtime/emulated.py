"""Emulated number formats in the training passes (docs/formats.md, Training with formats).

A pass with an operand kind in an emulated format (LayerNumerics.formats: posits, FP8, bf16/fp16, MX)
computes on its operands' rounded values. The rounding is done per pass, because MX blocks run along each
pass's reduction axis (dfpgen.formats.BLOCK_AXES): one tensor read by two passes may be blocked two ways.
A pass whose result kind is a posit accumulates in a quire: dfpgen.runtime.quire computes its exact result
and rounds it once to that posit (`result_format`). Every other pass runs in the FP32 kernels.
"""

from __future__ import annotations

import numpy as np

from dfpgen.core.numerics import Kind, LayerNumerics
from dfpgen.errors import NumericsError
from dfpgen.formats import BLOCK_AXES, MX
from dfpgen.passes import Pass, Tensor


def operand_values(numerics: LayerNumerics, conv_pass: Pass, tensor: Tensor, values: np.ndarray) -> np.ndarray:
    """Operand `tensor` of `conv_pass` (NCHW or KCRS values) rounded to its kind's format, as float32."""
    fmt = numerics.format_of(tensor.kind)
    if isinstance(fmt, MX):   # a block format: 32 elements along the pass's reduction axis share a scale
        if conv_pass.name not in BLOCK_AXES:
            raise NumericsError(f"{fmt.name}: pass {conv_pass.name!r} has no MX blocking axes in "
                                f"dfpgen.formats.BLOCK_AXES (passes: {', '.join(BLOCK_AXES)})")
        rounded = fmt.quantize(values, BLOCK_AXES[conv_pass.name][tensor.name])
    else:
        rounded = fmt.quantize(values)
    # Every value of every format here (posits up to 16 bits, FP8, bf16/fp16, MX) is exact in float32.
    return rounded.astype(np.float32)


def result_kind(conv_pass: Pass) -> Kind:
    """The kind a pass's result becomes: a pass that reads gradients makes gradients (BPROP's dx, WTGRAD's
    dw), one that does not makes the next layer's activations (FPROP's y)."""
    return Kind.GRAD if any(t.kind == Kind.GRAD for t in conv_pass.operands) else Kind.ACT


def result_format(numerics: LayerNumerics, conv_pass: Pass):
    """The format whose quire a pass accumulates in, its exact result then rounded once to it: the format of
    the kind the result becomes when that format has a quire (posits); else None (an FP32 kernel's result)."""
    fmt = numerics.format_of(result_kind(conv_pass))
    return fmt if fmt is not None and fmt.accumulation == "quire" else None
