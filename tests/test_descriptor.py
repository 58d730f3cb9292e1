"""dfpgen.core.descriptor: benchdnn convolution descriptors <-> ConvSpec, against benchdnn's rules."""

from pathlib import Path

import pytest
from hypothesis import given, settings

from dfpgen import ConvSpec
from dfpgen.core import catalog
from dfpgen.core.descriptor import format_spec, looks_like, parse, parse_problem, read_list
from dfpgen.errors import DescriptorError, SpecError, UnsupportedError

from strategies import general_specs
from test_catalog import parse_benchdnn  # the tests' own, independent reading of benchdnn's rules

SUITES = sorted((Path(__file__).resolve().parent.parent / "specs" / "benchdnn").glob("shapes_*"))


def test_full_descriptor():
    s = parse("mb32ic64ih56oc64oh56kh3ph1")
    assert (s.N, s.C, s.K, s.H, s.W, s.R, s.S, s.stride, s.pad, s.P, s.Q) == (32, 64, 64, 56, 56, 3, 3, 1, 1, 56, 56)
    assert s.plain and s.groups == 1 and s == ConvSpec(32, 64, 64, 56, 56, 3, 3, 1, 1)


def test_defaults_and_deductions():
    s = parse("ic3ih227oc96kh11sh4")                      # no output size: deduced with pad 0
    assert (s.N, s.P, s.Q, s.pad, s.stride, s.sw) == (2, 55, 55, 0, 4, 4)
    s = parse("ic8ih14oc8oh14kh3")                        # no padding: deduced from the output
    assert (s.pt, s.pb, s.pl, s.pr) == (1, 1, 1, 1)
    s = parse("g2mb1_ic96oc256_ih27oh27kh5ph2")
    assert (s.groups, s.Cg, s.Kg, s.N) == (2, 48, 128, 1)


def test_asymmetric_padding_comes_from_the_output_size():
    s = parse('ic32oc13_ih13oh12kh3ph0_n"tails_conv:1"')   # (13 + 0 + pb - 3) + 1 = 12: pb = 1
    assert (s.pt, s.pb, s.P, s.Q, s.name) == (0, 1, 12, 12, "tails_conv:1")
    assert not s.plain


def test_anisotropic_and_dilated():
    s = parse("mb20ic4ih8iw8oc6oh8ow2kh3kw3sh1sw3ph1pw1dh0dw2")
    assert (s.sh, s.sw, s.dh, s.dw, s.P, s.Q) == (1, 3, 1, 3, 8, 2)   # dilation is zero-based in benchdnn
    assert s.S_extent == 7


def test_one_dimensional_problems_have_height_one():
    s = parse('g4ic20oc20_iw8ow4kw3pw1sw2_n"conv_basic_1d:grouped_stride_tail"')
    assert (s.H, s.R, s.P, s.W, s.S, s.Q, s.sw, s.groups) == (1, 1, 1, 8, 3, 4, 2, 4)


def test_negative_padding_crops_unread_columns():
    s = parse("mb20ic16ih1iw8oc6oh1kh1kw3sh1pw0ph0sw1dh0dw2")       # filter spans 7 of 8 columns, ow1
    assert (s.pl, s.pr, s.Q) == (0, -1, 1)


def test_names_and_repeat_counts():
    p = parse_problem('mb50ic64ih56oc64oh56kh3ph1n"resnet_50:res2a_branch2b*3"')
    assert (p.spec.name, p.repeat) == ("resnet_50:res2a_branch2b", 3)
    assert parse("ic3ih8oc4kh3_nplain_name").name == "plain_name"


@pytest.mark.parametrize("text,fragment", [
    ("mb2ic4ih8oc6xx3", "unknown entry"),
    ("mb2icih8oc6kh3", "needs an integer"),
    ("ih8oc6kh3", "missing ic"),
    ("ic4ic4ih8oc6kh3", "given twice"),
    ('ic4ih8oc6kh3n"open', "closing quote"),
    ("ic4ih8oc6kh3sh0", "sh0"),
    ("ic4ih8oc6kh9", "does not fit"),
    ("g3ic4ih8oc6kh3", "multiple of groups"),
])
def test_malformed_descriptors_name_the_entry(text, fragment):
    with pytest.raises(DescriptorError, match=fragment):
        parse(text)


def test_descriptor_errors_are_spec_errors():
    assert issubclass(DescriptorError, SpecError)


def test_three_d_problems_are_unsupported():
    with pytest.raises(UnsupportedError, match="3-D"):
        parse("ic3oc16_id5od5kd3pd1")


def test_looks_like_tells_descriptors_from_catalog_references():
    assert looks_like("mb32ic64ih56oc64oh56kh3ph1") and looks_like("ic3oc16_iw5ow5kw3pw1")
    for ref in ("resnet50", "resnet50:res2a", "alexnet", "my.toml:conv1", "vgg16:conv1_1"):
        assert not looks_like(ref)


def test_catalog_select_takes_descriptors():
    spec, = catalog.select("mb32ic64ih56oc64oh56kh3ph1", batch=None)
    assert spec.N == 32 and spec.name == "mb32ic64ih56oc64oh56kh3ph1"
    spec, = catalog.select("mb32ic64ih56oc64oh56kh3ph1", batch=4)
    assert spec.N == 4


def test_read_list_skips_comments_and_keeps_failures(tmp_path):
    path = tmp_path / "list"
    path.write_text("# a comment\n\nmb2ic4ih8oc4kh3ph1  # trailing comment\nic3oc16_id5od5kd3pd1\nmb2ic4xx\n")
    entries = read_list(path)
    assert len(entries) == 3
    assert entries[0].spec.C == 4 and entries[0].line == 3
    assert isinstance(entries[1], UnsupportedError) and entries[1].line == 4
    assert isinstance(entries[2], DescriptorError) and entries[2].line == 5


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_every_line_of_the_suites_parses_as_the_independent_reading(suite):
    """2-D lines agree with the tests' own benchdnn reading; 3-D lines are unsupported; nothing is malformed."""
    for number, raw in enumerate(suite.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        entries = line.split("n", 1)[0]     # no entry key holds an n: the rest is the name
        if any(key in entries for key in ("id", "kd", "od")):
            with pytest.raises(UnsupportedError):
                parse(line)
            continue
        spec = parse(line)
        if "ih" not in entries:     # 1-D lines: the tests' reader needs ih; the parser makes it 1
            assert (spec.H, spec.R, spec.P) == (1, 1, 1)
            continue
        d = parse_benchdnn(line)
        assert (spec.N, spec.C, spec.K, spec.groups) == (d["mb"], d["ic"], d["oc"], d["g"]), (suite.name, number)
        assert (spec.H, spec.W, spec.R, spec.S, spec.sh, spec.sw) == \
            (d["ih"], d["iw"], d["kh"], d["kw"], d["sh"], d["sw"]), (suite.name, number)
        assert (spec.pt, spec.pl, spec.dh - 1, spec.dw - 1) == (d["ph"], d["pw"], d["dh"], d["dw"]), (suite.name, number)
        assert (spec.P, spec.Q) == (d["oh"], d["ow"]), (suite.name, number)


@settings(max_examples=200, deadline=None)
@given(general_specs())
def test_format_then_parse_is_the_same_computation(spec):
    again = parse(format_spec(spec))
    assert (again.N, again.C, again.K, again.H, again.W, again.R, again.S, again.groups) == \
        (spec.N, spec.C, spec.K, spec.H, spec.W, spec.R, spec.S, spec.groups)
    assert (again.sh, again.sw, again.dh, again.dw, again.pt, again.pl, again.P, again.Q) == \
        (spec.sh, spec.sw, spec.dh, spec.dw, spec.pt, spec.pl, spec.P, spec.Q)
