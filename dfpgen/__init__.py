"""dfpgen: a code-generating compiler for INT16 (DFP16) convolution kernels.

The pipeline is spec -> plan -> emit -> jit -> kernel (docs/architecture.md): `ConvSpec` and
`LayerNumerics` say what to compute, a pass of `dfpgen.passes` plans it, `compile` emits and wraps
one kernel, and `Conv2d` runs a layer's three training passes on NCHW tensors.
"""

from dfpgen import passes
from dfpgen.codegen.kernel import Kernel
from dfpgen.codegen.plan import Blocking, Plan
from dfpgen.core.dfp import (ROUNDING_MODES, DFPTensor, dfp_add, dfp_mul, downconvert, downconvert_float, quantize,
                             round_shift, safe_chain)
from dfpgen.core.numerics import LayerNumerics, Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import (CatalogError, CompileError, DFPGenError, DTypeError, NonFiniteError, NumericsError,
                           PlanError, ShapeError, SpecError, TargetError)
from dfpgen.passes import BPROP, FPROP, WTGRAD, Pass
from dfpgen.runtime.conv import Conv2d, compile
from dfpgen.version import __version__

__all__ = [
    "BPROP", "Blocking", "CatalogError", "CompileError", "Conv2d", "ConvSpec", "DFPGenError", "DFPTensor", "DTypeError",
    "FPROP", "Kernel", "LayerNumerics", "NonFiniteError", "Numerics", "NumericsError", "Pass", "Plan", "PlanError",
    "ROUNDING_MODES", "ShapeError", "SpecError", "TargetError", "WTGRAD", "__version__", "compile", "dfp_add",
    "dfp_mul", "downconvert", "downconvert_float", "passes", "quantize", "round_shift", "safe_chain",
]
