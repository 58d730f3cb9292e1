"""The prepare -> run -> unblock path (dfpgen/runtime/execute.py) that Conv2d, the tuner, the
measurements and conformance share."""

from __future__ import annotations

import numpy as np
import pytest

import dfpgen
from dfpgen import passes
from dfpgen.core.numerics import Numerics
from dfpgen.core.target import host
from dfpgen.runtime.execute import prepare, prepare_float, quantized_operands
from dfpgen.tuning.measure import random_operands
from dfpgen.verification.reference import flush_bound

SPEC = dfpgen.ConvSpec(2, 10, 12, 6, 7, 3, 3, 1, 1)


@pytest.mark.parametrize("conv_pass", passes.ALL, ids=passes.NAMES)
def test_prepared_kernel_gives_conv2d_result(conv_pass):
    """The same kernel through execute and through Conv2d.run gives the same bits, within the flush
    bound of the float64 reference scaled by the exponents."""
    isa = host().best_isa("dfp16")
    numerics = Numerics(12, 12)
    kernel = dfpgen.compile(SPEC, conv_pass, numerics, isa=isa)
    a, b = random_operands(SPEC, conv_pass, seed=3)
    src, vec, scale = quantized_operands(a, b, numerics)
    ready = prepare(kernel, src, vec)
    ready.out.fill(np.nan)
    ready.run(scale, threads=2)
    got = ready.result()
    assert got.shape == conv_pass.result.shape(SPEC) and not np.isnan(got).any()
    exact = conv_pass.reference(src, vec, SPEC)
    bound = flush_bound(conv_pass.reference(np.abs(src), np.abs(vec), SPEC), kernel.plan.flushes)
    assert np.all(np.abs(got / scale - exact) <= bound)
    op = dfpgen.Conv2d(SPEC, bits=12, isa=isa, blocking={conv_pass: kernel.plan.blocking}, eager=False)
    np.testing.assert_array_equal(op.run(conv_pass, a, b)[0], got)


def test_fp32_kernels_take_the_floats_as_they_are():
    a, b = random_operands(SPEC, passes.FPROP)
    src, vec, scale = quantized_operands(a, b, None)
    assert src is a and vec is b and scale == 1.0
    kernel = dfpgen.compile(SPEC, passes.FPROP, isa=host().best_isa("fp32"))
    ready = prepare_float(kernel, a, b)
    ready.run()
    np.testing.assert_allclose(ready.result(), passes.FPROP.reference(a, b, SPEC), rtol=1e-5, atol=1e-5)
