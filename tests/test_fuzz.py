"""Random junk into the command line's layer references and the Python constructors (issue 20): a user mistake
is one line (CLI: a non-zero exit, no traceback) or a DFPGenError subclass (Python), never another exception.

Shapes stay tiny (every integer a descriptor or a spec can be planned with is small), so nothing big is built."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfpgen.codegen.plan import Blocking
from dfpgen.core import descriptor
from dfpgen.core.dfp import quantize
from dfpgen.core.numerics import LayerNumerics
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import DFPGenError
from dfpgen.frontends.cli import main
from dfpgen.training.train import TrainConfig

# Printable text: a newline (or \x85, \u2028) typed into an argument would be echoed inside the one-line message.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs")), max_size=20)
FUZZ = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])

# Values a user might pass by mistake: negatives, zero, huge, floats, NaN, bools, None, text, numpy scalars.
JUNK = st.one_of(
    st.integers(-3, 40), st.integers(2**31, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=6), st.integers(-2, 20).map(np.int64), st.integers(0, 9).map(np.uint8),
    st.sampled_from([np.float64(2.0), np.bool_(True), np.nan, [1, 2], (3,), {}, b"7", 1j, object()]),
)
KEYS = descriptor.KEYS_2D + descriptor.KEYS_3D + ("n", "_", "x", "")


@st.composite
def descriptor_texts(draw):
    """Descriptor-like text: known and unknown keys with small (sometimes negative or missing) values."""
    parts = []
    for _ in range(draw(st.integers(0, 9))):
        key = draw(st.sampled_from(KEYS))
        value = draw(st.one_of(st.integers(-2, 7).map(str), st.just(""), st.sampled_from(["a", '"q"', "*2", "1.5"])))
        parts.append(key + value)
    return "".join(parts)


@st.composite
def near_valid_descriptors(draw):
    """Small descriptors that are often valid (so emit plans and renders them), with extra entries that may not be."""
    small = st.integers(1, 6)
    text = f"mb{draw(st.integers(1, 2))}ic{draw(small)}oc{draw(small)}ih{draw(small)}kh{draw(st.integers(1, 3))}"
    for key in draw(st.lists(st.sampled_from(["g", "iw", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "oh", "ow"]),
                             max_size=3, unique=True)):
        text += f"{key}{draw(st.integers(-1, 4))}"
    return text


REFS = st.one_of(descriptor_texts(), near_valid_descriptors(), TEXT,
                 st.sampled_from(["resnet50:", "resnet50:zz", ":", "x.toml", "x.toml:a", "alexnet:conv9", " "]))


def check_cli(result) -> None:
    """Success, or a non-zero exit with one error line (click's Usage/Try preamble aside) and no traceback."""
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 0:
        return
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith(("Usage:", "Try '"))]
    assert len(lines) == 1, result.output


def check_python(call) -> None:
    """The call succeeds or raises a DFPGenError subclass with a one-line message."""
    try:
        call()
    except DFPGenError as exc:
        assert "\n" not in str(exc), str(exc)


@FUZZ
@given(ref=REFS, as_json=st.booleans())
def test_cli_layers_reference(ref, as_json):
    check_cli(CliRunner().invoke(main, ["layers", ref] + (["--json"] if as_json else [])))


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(ref=st.one_of(near_valid_descriptors(), near_valid_descriptors(), descriptor_texts(), TEXT))
def test_cli_emit_reference(ref):
    # emit only plans and renders IR for a cross CPU (no JIT): cheap for the small shapes descriptor_texts makes.
    check_cli(CliRunner().invoke(main, ["emit", "--layer", ref, "--cpu", "znver3", "--ir"]))


@FUZZ
@given(fields=st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(ConvSpec)]), JUNK))
def test_convspec_fields(fields):
    base = dict(N=1, C=2, K=2, H=3, W=3, R=1, S=1)
    check_python(lambda: ConvSpec(**{**base, **fields}))


@FUZZ
@given(fields=st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(LayerNumerics)]), JUNK),
       dfp=st.one_of(st.none(), st.lists(JUNK, max_size=3), st.lists(st.sampled_from(["act", "weight", "grad", "w"]))))
def test_layer_numerics_fields(fields, dfp):
    # `fields` may hold junk for dfp too (None, numbers); `dfp` adds lists of kinds and near-kinds.
    if dfp is not None:
        fields["dfp"] = dfp
    check_python(lambda: LayerNumerics(**fields))


@FUZZ
@given(fields=st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(Blocking)]), JUNK))
def test_blocking_fields(fields):
    check_python(lambda: Blocking(**fields))


@FUZZ
@given(value=st.one_of(JUNK, st.lists(JUNK, max_size=4), st.lists(st.lists(st.floats(), max_size=3), max_size=3)),
       bits=st.one_of(st.integers(0, 18), JUNK), rounding=st.one_of(st.sampled_from(["nearest", "stochastic"]), JUNK))
def test_quantize_junk(value, bits, rounding):
    check_python(lambda: quantize(value, bits=bits, rounding=rounding, seed=0))


@FUZZ
@given(text=st.one_of(descriptor_texts(), near_valid_descriptors(), st.text(max_size=30)))
def test_descriptor_parse(text):
    check_python(lambda: descriptor.parse(text))


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["lr", "momentum", "weight_decay"]), JUNK))
def test_train_config_rates(fields):
    check_python(lambda: TrainConfig(**fields))


@pytest.mark.parametrize("fields, field", [
    ({"lr": float("nan")}, "lr"), ({"lr": float("inf")}, "lr"), ({"weight_decay": -1.0}, "weight_decay"),
    ({"weight_decay": float("nan")}, "weight_decay"), ({"momentum": 1.0}, "momentum"),
])
def test_train_config_refuses_non_finite_rates(fields, field):
    with pytest.raises(DFPGenError, match=rf"^{field}="):
        TrainConfig(**fields)
