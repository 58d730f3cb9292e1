"""dfpgen: a code-generating compiler for INT16 (DFP16) convolution kernels."""

from dfpgen.core.dfp import (DFPTensor, ROUNDING_MODES, dfp_add, dfp_mul, downconvert, downconvert_float,
                  quantize, round_shift, safe_chain)
from dfpgen.errors import (CatalogError, CompileError, DFPGenError, DTypeError, NonFiniteError, NumericsError,
                     PlanError, ShapeError, SpecError, TargetError)
from dfpgen.core.spec import ConvSpec
from dfpgen.core.numerics import Numerics
from dfpgen.codegen.plan import Blocking, Plan
from dfpgen.runtime.conv import Conv2d, compile
from dfpgen.codegen.kernel import Kernel

from dfpgen.version import __version__

__all__ = [
    "Blocking", "CatalogError", "CompileError", "Conv2d", "ConvSpec", "Kernel", "Plan", "compile", "DFPGenError", "DFPTensor", "DTypeError", "NonFiniteError",
    "Numerics", "NumericsError", "PlanError", "ROUNDING_MODES", "ShapeError", "SpecError", "TargetError",
    "__version__", "dfp_add", "dfp_mul", "downconvert", "downconvert_float", "quantize", "round_shift",
    "safe_chain",
]
