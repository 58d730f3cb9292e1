"""Number formats beside DFP: posits, OCP FP8, bfloat16/FP16 and OCP MX block formats (docs/formats.md).

`get(name)` returns a frozen format object with quantize(), encode()/decode(), values(), bits and
describe(); `names()` lists every valid name. BLOCK_AXES says along which axes of each pass's NCHW/KCRS
operands MX blocks run: each pass's reduction axis.
"""

from dfpgen.errors import FormatError
from dfpgen.formats.dfp import Dfp
from dfpgen.formats.minifloat import BF16, FP8_E4M3, FP8_E5M2, FP16, MiniFloat
from dfpgen.formats.mx import MX, IntElement
from dfpgen.formats.posit import Posit
from dfpgen.formats.registry import get, names

# FPROP reduces over input channels (x: N C H W, w: K C R S), BPROP over output channels (dy: N K P Q,
# w: K C R S), WTGRAD over batch and output positions (x and dy: N, H/P, W/Q, taken together).
BLOCK_AXES = {
    "fprop": {"x": 1, "w": 1},
    "bprop": {"dy": 1, "w": 0},
    "wtgrad": {"x": (0, 2, 3), "dy": (0, 2, 3)},
}

__all__ = ["BF16", "BLOCK_AXES", "Dfp", "FP16", "FP8_E4M3", "FP8_E5M2", "FormatError", "IntElement", "MX",
           "MiniFloat", "Posit", "get", "names"]
