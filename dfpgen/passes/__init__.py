"""The training passes (FPROP, BPROP, WTGRAD): one definition each, which everything else asks.

Every module of this package except `base` defines one pass as its `DEFINITION`; the registry below
collects them, so adding a pass is adding a module (docs/architecture.md). Front ends turn a user's
pass name into the object with `get`; nothing outside the definitions selects behaviour by name.
"""

from __future__ import annotations

import importlib
import pkgutil

from dfpgen.core.numerics import LayerNumerics, Numerics
from dfpgen.errors import PlanError
from dfpgen.passes.base import DW, DX, DY, Pass, Reduction, Tensor, W, X, Y


def _discover() -> tuple[Pass, ...]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            found.append(importlib.import_module(f"{__name__}.{module.name}").DEFINITION)
    return tuple(sorted(found, key=lambda p: p.order))


ALL: tuple[Pass, ...] = _discover()
NAMES: tuple[str, ...] = tuple(p.name for p in ALL)
_BY_NAME = {p.name: p for p in ALL}
FPROP, BPROP, WTGRAD = (_BY_NAME[n] for n in ("fprop", "bprop", "wtgrad"))   # the public handles


def get(conv_pass: Pass | str) -> Pass:
    """The pass object for a pass or its name; PlanError names the allowed ones."""
    if isinstance(conv_pass, Pass):
        return conv_pass
    try:
        return _BY_NAME[conv_pass]
    except (KeyError, TypeError):
        raise PlanError(f"pass={conv_pass!r}: must be one of {', '.join(NAMES)}") from None


def kernel_numerics(numerics: LayerNumerics) -> dict[Pass, Numerics]:
    """The kernel numerics of every pass that runs in DFP16 kernels under a layer's numerics; raises
    NumericsError (naming the chain and the bound) when one does not fit, so layers report it when built."""
    return {p: numerics.kernel_numerics(p) for p in ALL if numerics.pass_precision(p) == "dfp16"}


def make_plan(spec, numerics, blocking, target, isa_name: str, conv_pass: Pass | str = "fprop"):
    """Plan one kernel of a pass; raises PlanError when the blocking cannot work for this spec and target."""
    return get(conv_pass).plan(spec, numerics, blocking, target, isa_name)


__all__ = ["ALL", "BPROP", "DW", "DX", "DY", "FPROP", "NAMES", "Pass", "Reduction", "Tensor", "W", "WTGRAD", "X", "Y",
           "get", "kernel_numerics", "make_plan"]
