"""Emulated number formats in the training passes (docs/formats.md, Training with formats).

A pass with an operand kind in an emulated format (LayerNumerics.formats: posits, FP8, bf16/fp16, MX)
runs in FP32 kernels on its operands' rounded values. The rounding is done per pass, because MX blocks
run along each pass's reduction axis (dfpgen.formats.BLOCK_AXES): one tensor read by two passes may be
blocked two ways. Posits accumulate in a quire (exact sum, one rounding): the FP32 kernel's sum stands in
for the exact one, and the pass result is rounded once to the posit of the kind it becomes.
"""

from __future__ import annotations

import numpy as np

from dfpgen.core.numerics import Kind, LayerNumerics
from dfpgen.errors import NumericsError
from dfpgen.formats import BLOCK_AXES, MX
from dfpgen.passes import Pass, Tensor
from dfpgen.runtime.blocked import Blocked


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
    """The format a pass's result is rounded to once, the quire's final rounding: the format of the kind
    the result becomes when that format accumulates in a quire (posits); else None (the result stays FP32)."""
    fmt = numerics.format_of(result_kind(conv_pass))
    return fmt if fmt is not None and fmt.accumulation == "quire" else None


def round_result(numerics: LayerNumerics, conv_pass: Pass, result):
    """A pass result (a Blocked tensor or a float32 array) rounded once to `result_format`; the result
    itself when there is none. A Blocked result is rounded in place."""
    fmt = result_format(numerics, conv_pass)
    if fmt is None:
        return result
    if isinstance(result, Blocked):
        result.data[...] = fmt.quantize(result.data)   # channel padding holds zeros, which stay zeros
        # Posit rounding is monotone and odd, so the rounded max|.| is the rounding of max|.|.
        maxabs = None if result.maxabs is None else float(fmt.quantize(result.maxabs))
        return Blocked(result.data, result.channels, maxabs)
    return fmt.quantize(result).astype(np.float32)
