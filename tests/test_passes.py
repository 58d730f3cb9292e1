"""The pass definitions (dfpgen/passes/): the registry, the tensors, and that everything downstream asks
the pass object, so a new pass is one definition."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

import dfpgen
from dfpgen import passes
from dfpgen.core.numerics import LayerNumerics, Numerics
from dfpgen.core.spec import ConvSpec
from dfpgen.core.target import host
from dfpgen.errors import PlanError
from dfpgen.tuning.cost import default_blocking
from dfpgen.tuning.tune import Measurer, Task, knob_space
from dfpgen.verification import conformance

SPEC = ConvSpec(2, 6, 20, 7, 6, 3, 3, 2, 1, groups=2)


def test_the_registry_holds_each_pass_once_in_pipeline_order():
    assert passes.NAMES == ("fprop", "bprop", "wtgrad")
    assert passes.ALL == (passes.FPROP, passes.BPROP, passes.WTGRAD)
    assert all(passes.get(p.name) is p and passes.get(p) is p for p in passes.ALL)


@pytest.mark.parametrize("bad", ["forward", "", None, 3, "FPROP"])
def test_an_unknown_pass_is_one_line_naming_the_choices(bad):
    with pytest.raises(PlanError, match=r"pass=.*must be one of fprop, bprop, wtgrad$"):
        passes.get(bad)


def test_a_pass_pickles_as_the_registered_object():
    assert all(pickle.loads(pickle.dumps(p)) is p for p in passes.ALL)


def test_tensor_shapes_and_group_axes():
    s = SPEC
    assert passes.X.shape(s) == (2, 6, 7, 6) and passes.W.shape(s) == (20, 3, 3, 3)
    assert passes.DY.shape(s) == (2, 20, s.P, s.Q) == passes.Y.shape(s)
    assert passes.DX.shape(s) == passes.X.shape(s) and passes.DW.shape(s) == passes.W.shape(s)
    for p in passes.ALL:   # the group axis of every tensor is its channel axis of a group's slice
        for t in (p.src, p.vec, p.result):
            assert t.shape(s)[t.group_axis] % s.groups == 0


def test_reduction_lengths():
    s = SPEC.per_group()
    assert passes.FPROP.reduction_length(s) == s.C * s.R * s.S
    assert passes.BPROP.reduction_length(s) == s.K * s.R * s.S
    assert passes.WTGRAD.reduction_length(s) == s.N * s.P * s.Q


def test_a_new_pass_runs_through_every_consumer_from_its_definition_alone():
    """A pass the registry does not know (FPROP's planner under another name) compiles, runs in
    Conv2d, passes conformance's check, plans the tuner's space and is measured and checked by it."""
    custom = dataclasses.replace(passes.FPROP, name="fprop_again", order=99)
    isa = host().best_isa("dfp16")
    numerics = Numerics(13, 13)
    kernel = dfpgen.compile(SPEC, custom, numerics, isa=isa)
    assert kernel.entry == "dfpgen_fprop_again" and "@dfpgen_fprop_again(" in kernel.ir
    assert kernel.plan.conv_pass is custom

    op = dfpgen.Conv2d(SPEC, numerics=LayerNumerics(bits=13), eager=False)
    rng = np.random.default_rng(5)
    x = conformance.random_mantissas(passes.X.shape(SPEC), 13, rng)
    w = conformance.random_mantissas(passes.W.shape(SPEC), 13, rng)
    assert conformance.check_pass(op, custom, x, w) == ""
    np.testing.assert_array_equal(op.run(custom, x, w)[0], op.fprop(x, w))

    one_group = SPEC.per_group()
    assert knob_space(one_group, custom, numerics, host(), isa)
    task = Task(one_group, custom, numerics, isa, 1, host())
    record = Measurer(task, min_seconds=0.01).measure(default_blocking(one_group, numerics, host(), isa, custom))
    assert record.ok and record.key.pass_name == "fprop_again"
