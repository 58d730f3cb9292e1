"""dfpgen: a code-generating compiler for INT16 (DFP16) convolution kernels."""

from .dfp import (DFPTensor, ROUNDING_MODES, dfp_add, dfp_mul, downconvert, downconvert_float,
                  quantize, round_shift, safe_chain)
from .errors import (CatalogError, CompileError, DFPGenError, DTypeError, NonFiniteError, NumericsError,
                     PlanError, ShapeError, SpecError, TargetError)
from .spec import ConvSpec, Numerics
from .plan import Blocking, Plan
from .conv import Conv2d, compile
from .kernel import Kernel

from .version import __version__

__all__ = [
    "Blocking", "CatalogError", "CompileError", "Conv2d", "ConvSpec", "Kernel", "Plan", "compile", "DFPGenError", "DFPTensor", "DTypeError", "NonFiniteError",
    "Numerics", "NumericsError", "PlanError", "ROUNDING_MODES", "ShapeError", "SpecError", "TargetError",
    "__version__", "dfp_add", "dfp_mul", "downconvert", "downconvert_float", "quantize", "round_shift",
    "safe_chain",
]
