"""Assertions that several pass test modules share: what a kernel refuses."""

import numpy as np
import pytest

from dfpgen.core.dfp import DFPTensor, max_mantissa
from dfpgen.errors import NumericsError


def assert_wider_operands_refused(run, shapes: dict, kinds: dict) -> None:
    """`run` is a pass of an op built for 13 bits. A 16-bit DFPTensor could wrap its INT32 chain, so either
    operand at 16 bits is refused with a NumericsError naming that operand and both widths."""
    for wide in shapes:
        operands = [DFPTensor(np.full(shape, max_mantissa(bits), np.int16), 0, bits)
                    for name, shape in shapes.items() for bits in [16 if name == wide else 13]]
        with pytest.raises(NumericsError, match=rf"^{wide}: a 16-bit DFPTensor, but this op's {kinds[wide]} "
                                                rf"operands have 13 bits"):
            run(*operands)
