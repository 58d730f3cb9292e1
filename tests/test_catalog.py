"""The layer catalogs: shapes, totals, network structure, benchdnn agreement, references, user files."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfpgen.core import catalog
from dfpgen.core.catalog import load_network, networks, select
from dfpgen.core.spec import ConvSpec
from dfpgen.errors import CatalogError

BUILTIN = ("alexnet", "alexnet_2tower", "googlenet_v1", "resnet50", "vgg16")


def by_name(net) -> dict[str, ConvSpec]:
    return {layer.name: layer for layer in net.layers}


def macs(C, K, H, R, stride=1, pad=0) -> int:
    """Forward MACs of a square layer, written out here so the totals are checked independently."""
    P = (H + 2 * pad - R) // stride + 1
    return K * C * R * R * P * P


def pooled(p: int) -> set[int]:
    """Sizes a pool may produce from p: none, 2x2/2, 3x3/2 floor (AlexNet) and ceil (Caffe GoogLeNet/ResNet)."""
    return {p, p // 2, (p - 3) // 2 + 1, math.ceil((p - 3) / 2) + 1}


# ----------------------------------------------------------------------------- built-in list


def test_networks_lists_the_shipped_catalogs():
    assert networks() == sorted(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_loads_with_batch_one_and_unique_names(name):
    net = load_network(name)
    assert net.name == name and net.title
    assert len(net.input) == 3
    assert all(layer.N == 1 for layer in net.layers)
    assert len(set(net.layer_names)) == len(net.layers)
    first = net.layers[0]
    assert (first.C, first.H, first.W) == net.input


def test_network_is_frozen():
    net = load_network("alexnet")
    with pytest.raises(FrozenInstanceError):
        net.name = "other"
    assert isinstance(net.layers, tuple) and isinstance(net.input, tuple)


# ----------------------------------------------------------------------------- ResNet-50


def test_resnet50_has_53_convs_and_fc1000():
    net = load_network("resnet50")
    names = net.layer_names
    assert len(names) == 54
    assert names[0] == "conv1" and names[-1] == "fc1000"
    fc = net.layers[-1]
    assert (fc.C, fc.K, fc.H, fc.W, fc.R, fc.S) == (2048, 1000, 1, 1, 1, 1)
    convs = [n for n in names if n != "fc1000"]
    assert len(convs) == 53
    assert sum(1 for n in convs if n.endswith("_branch1")) == 4


def test_resnet50_res2a_branch2b_shape():
    layer = by_name(load_network("resnet50"))["res2a_branch2b"]
    assert (layer.C, layer.K, layer.H, layer.W, layer.R, layer.S, layer.stride, layer.pad) == \
        (64, 64, 56, 56, 3, 3, 1, 1)
    assert (layer.P, layer.Q) == (56, 56)


def test_resnet50_total_is_3_86_gmac():
    total = load_network("resnet50").macs_per_image
    assert total == pytest.approx(3.86e9, rel=0.01)


_RES = re.compile(r"^res(\d)([a-f])_branch(1|2a|2b|2c)$")


def test_resnet50_block_structure_chains():
    net = load_network("resnet50")
    layers = by_name(net)
    blocks: dict[str, dict[str, ConvSpec]] = {}
    for layer in net.layers[1:-1]:
        m = _RES.match(layer.name)
        assert m, layer.name
        blocks.setdefault(f"res{m[1]}{m[2]}", {})[m[3]] = layer
    per_stage = Counter(name[3] for name in blocks)
    assert per_stage == {"2": 3, "3": 4, "4": 6, "5": 3}

    conv1 = layers["conv1"]
    channels, size = conv1.K, None
    for name, block in blocks.items():           # dicts keep network order
        a, b, c = block["2a"], block["2b"], block["2c"]
        if size is None:
            assert a.H in pooled(conv1.P)        # 3x3/2 max pool after conv1
        else:
            assert a.H == size
        assert a.C == channels
        assert b.C == a.K and c.C == b.K
        assert b.H == a.P and c.H == b.P
        assert a.R == 1 and b.R == 3 and c.R == 1 and b.pad == 1
        assert b.stride == 1                     # v1: the 3x3 never strides
        first = name.endswith("a")
        assert ("1" in block) == first           # projection shortcut only where shapes change
        if first:
            short = block["1"]
            assert short.C == channels and short.K == c.K
            assert (short.P, short.Q) == (c.P, c.Q)  # the residual add needs equal shapes
            assert short.stride == a.stride == (1 if name == "res2a" else 2)
        else:
            assert a.stride == 1 and c.K == channels  # identity shortcut
        channels, size = c.K, c.P
    assert layers["fc1000"].C == channels == 2048


# ----------------------------------------------------------------------------- GoogLeNet


_BRANCHES = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")


def test_googlenet_structure_chains():
    net = load_network("googlenet_v1")
    layers = by_name(net)
    assert net.layer_names[:3] == ("conv1/7x7_s2", "conv2/3x3_reduce", "conv2/3x3")
    assert net.layer_names[-1] == "loss3/classifier"
    assert not any(n.startswith(("loss1", "loss2")) for n in net.layer_names)  # aux heads omitted
    conv1, red, conv2 = (layers[n] for n in net.layer_names[:3])
    assert red.C == conv1.K and red.H in pooled(conv1.P)
    assert conv2.C == red.K and conv2.H == red.P

    modules = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
    assert len(net.layers) == 3 + 6 * len(modules) + 1
    channels, size = conv2.K, conv2.P
    for m in modules:
        br = {b: layers[f"inception_{m}/{b}"] for b in _BRANCHES}
        h = br["1x1"].H
        assert h in pooled(size)
        for b in ("1x1", "3x3_reduce", "5x5_reduce", "pool_proj"):
            assert br[b].C == channels and br[b].R == 1
        assert br["3x3"].C == br["3x3_reduce"].K and br["3x3"].R == 3
        assert br["5x5"].C == br["5x5_reduce"].K and br["5x5"].R == 5
        assert all(x.H == h and x.P == h for x in br.values())  # "same" convs: concat needs equal sizes
        channels = br["1x1"].K + br["3x3"].K + br["5x5"].K + br["pool_proj"].K
        size = h
    assert channels == 1024
    cls = layers["loss3/classifier"]
    assert (cls.C, cls.K, cls.H) == (1024, 1000, 1)


def test_googlenet_total_matches_formula():
    # (in, 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj, size) of Szegedy et al. Table 1
    table = [(192, 64, 96, 128, 16, 32, 32, 28), (256, 128, 128, 192, 32, 96, 64, 28),
             (480, 192, 96, 208, 16, 48, 64, 14), (512, 160, 112, 224, 24, 64, 64, 14),
             (512, 128, 128, 256, 24, 64, 64, 14), (512, 112, 144, 288, 32, 64, 64, 14),
             (528, 256, 160, 320, 32, 128, 128, 14), (832, 256, 160, 320, 32, 128, 128, 7),
             (832, 384, 192, 384, 48, 128, 128, 7)]
    expected = 64 * 3 * 49 * 112 * 112 + 64 * 64 * 56 * 56 + 192 * 64 * 9 * 56 * 56 + 1024 * 1000
    for cin, o1, r3, o3, r5, o5, pp, h in table:
        expected += h * h * (cin * (o1 + r3 + r5 + pp) + 9 * r3 * o3 + 25 * r5 * o5)
    total = load_network("googlenet_v1").macs_per_image
    assert total == expected
    assert 1.5e9 < total < 1.6e9


# ----------------------------------------------------------------------------- VGG-16, AlexNet


def _check_sequential(net, fc_first: str):
    layers = net.layers
    for prev, cur in zip(layers, layers[1:]):
        if cur.name == fc_first:
            # the first fc flattens the pooled K x s x s map of the last conv
            side = math.isqrt(cur.C // prev.K)
            assert cur.C == prev.K * side * side and side in pooled(prev.P), cur.name
            assert cur.H == 1
        else:
            assert cur.C == prev.K, cur.name
            assert cur.H in pooled(prev.P), cur.name


def test_vgg16_chains_and_total():
    net = load_network("vgg16")
    names = net.layer_names
    assert names == tuple(f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3))
                          for i in range(1, n + 1)) + ("fc6", "fc7", "fc8")
    _check_sequential(net, "fc6")
    assert by_name(net)["fc6"].C == 25088 == 512 * 7 * 7
    expected = (macs(3, 64, 224, 3, 1, 1) + macs(64, 64, 224, 3, 1, 1)
                + macs(64, 128, 112, 3, 1, 1) + macs(128, 128, 112, 3, 1, 1)
                + macs(128, 256, 56, 3, 1, 1) + 2 * macs(256, 256, 56, 3, 1, 1)
                + macs(256, 512, 28, 3, 1, 1) + 2 * macs(512, 512, 28, 3, 1, 1)
                + 3 * macs(512, 512, 14, 3, 1, 1)
                + 25088 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert net.macs_per_image == expected
    assert expected == pytest.approx(15.5e9, rel=0.01)


def test_alexnet_one_tower_chains_and_total():
    net = load_network("alexnet")
    assert net.layer_names == ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    assert net.input == (3, 227, 227)
    _check_sequential(net, "fc6")
    assert by_name(net)["conv1"].P == 55
    # by hand: K*C*R*S*P*Q for each layer, no groups (a two-tower g2 conv would cost half)
    expected = (96 * 3 * 11 * 11 * 55 * 55 + 256 * 96 * 5 * 5 * 27 * 27 + 384 * 256 * 3 * 3 * 13 * 13
                + 384 * 384 * 3 * 3 * 13 * 13 + 256 * 384 * 3 * 3 * 13 * 13
                + 256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert net.macs_per_image == expected
    assert expected == pytest.approx(1.1e9, rel=0.05)


# ----------------------------------------------------------------------------- benchdnn agreement

_ROOT = Path(__file__).resolve().parents[1]
_BENCHDNN_DIRS = [_ROOT / "conformance" / "benchdnn", _ROOT.parent / "shared" / "conformance" / "benchdnn"]
_BENCHDNN = next((d for d in _BENCHDNN_DIRS if d.is_dir()), None)
needs_benchdnn = pytest.mark.skipif(_BENCHDNN is None, reason="benchdnn shape lists not found")

_KEY = re.compile(r"([a-z]+)(\d+)")


def parse_benchdnn(line: str) -> dict | None:
    """One benchdnn conv descriptor (the 2-D subset: g mb ic ih iw oc oh ow kh kw sh sw ph pw dh dw n)."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    d: dict = {}
    pos, name = 0, ""
    while pos < len(line):
        if line[pos] == "_":
            pos += 1
        elif line[pos] == "n":
            name = line[pos + 1:].strip().strip('"')
            break
        else:
            m = _KEY.match(line, pos)
            assert m, f"cannot parse {line!r} at {pos}"
            d[m[1]] = int(m[2])
            pos = m.end()
    assert not {"id", "kd", "od"} & d.keys(), "3-D problem"
    repeat = 1
    if (m := re.fullmatch(r"(.*)\*(\d+)", name)):
        name, repeat = m[1], int(m[2])
    d.setdefault("g", 1)
    d.setdefault("mb", 2)
    d.setdefault("sh", 1)
    d.setdefault("dh", 0)
    for h, w in (("ih", "iw"), ("kh", "kw"), ("sh", "sw"), ("dh", "dw"), ("ph", "pw"), ("oh", "ow")):
        if w not in d and h in d:
            d[w] = d[h]
    for x in "hw":
        extent = (d[f"k{x}"] - 1) * (d[f"d{x}"] + 1) + 1   # dilation is zero-based
        if f"o{x}" not in d:
            d.setdefault(f"p{x}", 0)
            d[f"o{x}"] = (d[f"i{x}"] - extent + 2 * d[f"p{x}"]) // d[f"s{x}"] + 1
        elif f"p{x}" not in d:
            twice = (d[f"o{x}"] - 1) * d[f"s{x}"] - d[f"i{x}"] + extent
            d[f"p{x}"] = int(twice / 2)          # benchdnn is C: integer division truncates toward zero
    d["name"], d["repeat"] = name, repeat
    return d


def benchdnn_entries(suite: str) -> list[dict]:
    lines = (_BENCHDNN / f"shapes_{suite}").read_text().splitlines()
    return [d for d in map(parse_benchdnn, lines) if d is not None]


def test_benchdnn_parser_defaults():
    d = parse_benchdnn('mb50ic64ih56oc64oh56kh3ph1n"resnet_50:res2a_branch2b*3"')
    assert d["name"] == "resnet_50:res2a_branch2b" and d["repeat"] == 3
    assert (d["iw"], d["kw"], d["sw"], d["pw"], d["ow"], d["g"]) == (56, 3, 1, 1, 56, 1)
    d = parse_benchdnn("ic3ih227oc96kh11sh4nconv1")        # no output size: deduced, pad 0
    assert (d["oh"], d["ow"], d["ph"], d["mb"], d["name"]) == (55, 55, 0, 2, "conv1")
    d = parse_benchdnn("ic8ih14oc8oh14kh3")                 # no padding: deduced from the output
    assert d["ph"] == d["pw"] == 1
    assert parse_benchdnn("# only a comment") is None


def _shape(d: dict) -> tuple:
    return (d["ic"], d["oc"], d["ih"], d["iw"], d["kh"], d["kw"], d["sh"], d["sw"], d["ph"], d["pw"], d["oh"], d["ow"])


def _ours(s: ConvSpec) -> tuple:
    return (s.C, s.K, s.H, s.W, s.R, s.S, s.stride, s.stride, s.pad, s.pad, s.P, s.Q)


@needs_benchdnn
@pytest.mark.parametrize("suite,network,skip", [
    ("resnet_50", "resnet50", ()),
    ("googlenet_v1", "googlenet_v1", ("loss1/conv", "loss2/conv")),   # auxiliary classifiers
])
def test_same_named_layers_agree_with_benchdnn(suite, network, skip):
    layers = by_name(load_network(network))
    entries = [d for d in benchdnn_entries(suite) if d["name"].split(":", 1)[1] not in skip]
    assert entries
    for d in entries:
        net, name = d["name"].split(":", 1)
        assert net == suite and d["g"] == 1
        assert name in layers, name
        assert _ours(layers[name]) == _shape(d), name
    # benchdnn lists each distinct shape once with `*N` = how often it occurs in the network, so
    # the whole multiset of conv shapes (fc layers aside) must match too.
    theirs = Counter()
    for d in entries:
        theirs[_shape(d)] += d["repeat"]
    ours = Counter(_ours(s) for s in layers.values() if s.H > 1)
    assert ours == theirs


@needs_benchdnn
def test_alexnet_agrees_with_benchdnn_two_tower_totals():
    layers = by_name(load_network("alexnet"))
    entries = benchdnn_entries("alexnet")
    assert [d["name"] for d in entries] == [f"alexnet:conv{i}" for i in range(1, 6)]
    for d in entries:
        ours = layers[d["name"].split(":", 1)[1]]
        # benchdnn keeps Caffe's two towers (g2 on conv2/4/5); its ic/oc are totals over groups,
        # each group seeing ic/g inputs, so the totals match our one-tower C and K directly.
        assert _ours(ours) == _shape(d)
        assert d["g"] == (2 if d["name"] in ("alexnet:conv2", "alexnet:conv4", "alexnet:conv5") else 1)
        grouped_macs = (d["oc"] * (d["ic"] // d["g"]) * d["kh"] * d["kw"] * d["oh"] * d["ow"])
        assert ours.macs_per_image == d["g"] * grouped_macs


@needs_benchdnn
def test_vgg16_shapes_are_those_of_benchdnn_vgg19():
    layers = by_name(load_network("vgg16"))
    entries = benchdnn_entries("vgg_19")
    for d in entries:
        name = d["name"].split(":", 1)[1]
        assert _ours(layers[name]) == _shape(d), name
    convs = {_ours(s) for s in layers.values() if s.H > 1}
    assert convs == {_shape(d) for d in entries}


# ----------------------------------------------------------------------------- references


def test_prefix_selection_takes_the_block():
    names = [s.name for s in select("resnet50:res2a")]
    assert names == ["res2a_branch1", "res2a_branch2a", "res2a_branch2b", "res2a_branch2c"]
    assert [s.name for s in select("vgg16:conv3")] == ["conv3_1", "conv3_2", "conv3_3"]
    assert len(select("googlenet_v1:inception_4")) == 5 * 6
    assert len(select("resnet50:res4")) == 19


def test_exact_name_wins_over_prefix(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text('[network]\nname = "two"\ninput = [8, 8, 8]\n'
                    '[[layer]]\nname = "conv1"\nC = 8\nK = 8\nH = 8\nR = 3\npad = 1\n'
                    '[[layer]]\nname = "conv10"\nC = 8\nK = 8\nH = 8\nR = 1\n')
    assert [s.name for s in select(f"{path}:conv1")] == ["conv1"]
    assert [s.name for s in select(f"{path}:conv")] == ["conv1", "conv10"]


def test_select_batch_and_bare_names():
    specs = select("alexnet", batch=32)
    assert [s.name for s in specs] == list(load_network("alexnet").layer_names)
    assert all(s.N == 32 for s in specs)
    assert specs[0].macs == 32 * specs[0].macs_per_image
    (one,) = select("resnet50:res2a_branch2b", batch=4)
    assert one.name == "res2a_branch2b" and one.N == 4
    with pytest.raises(CatalogError, match="batch"):
        select("alexnet", batch=0)


@pytest.mark.parametrize("alias,name", [("resnet_50", "resnet50"), ("resnet-50", "resnet50"),
                                        ("ResNet50", "resnet50"), ("googlenet", "googlenet_v1"),
                                        ("vgg_16", "vgg16"), ("vgg-16", "vgg16")])
def test_aliases(alias, name):
    assert load_network(alias) == load_network(name)
    assert select(f"{alias}:conv1") == select(f"{name}:conv1")


@pytest.mark.parametrize("ref,hint", [
    ("resnet5", "resnet50"),
    ("vgg", "vgg16"),
    ("googlenet_v2", "googlenet_v1"),
    ("resnet50:res2z", "res2a"),
    ("resnet50:res2a_branch2d", "res2a_branch2a"),
    ("googlenet:inception_3a/3x3_redcue", "inception_3a/3x3_reduce"),
    ("alexnet:fc9", "fc8"),
])
def test_unknown_names_suggest_the_closest(ref, hint):
    with pytest.raises(CatalogError, match="did you mean") as info:
        select(ref)
    assert repr(hint) in str(info.value)
    assert isinstance(info.value, LookupError)


def test_unknown_without_close_match_lists_the_choices():
    with pytest.raises(CatalogError) as info:
        select("zzzzzz")
    assert all(n in str(info.value) for n in BUILTIN)
    with pytest.raises(CatalogError, match="conv1"):
        select("resnet50:qqqqqq")
    with pytest.raises(CatalogError, match="empty layer name"):
        select("vgg16:")


def test_split_ref():
    assert catalog.split_ref("resnet50") == ("resnet50", None)
    assert catalog.split_ref("googlenet:inception_3a/1x1") == ("googlenet", "inception_3a/1x1")
    assert catalog.split_ref("dir/my.toml") == ("dir/my.toml", None)
    assert catalog.split_ref("dir/my.toml:conv1") == ("dir/my.toml", "conv1")


# ----------------------------------------------------------------------------- user files

GOOD = """\
[network]
name = "tiny"
title = "a tiny test net"
input = [16, 32, 32]

[[layer]]
name = "stem"
C = 16
K = 32
H = 32
R = 3
pad = 1

[[layer]]
name = "down"
C = 32
K = 64
H = 32
W = 16
R = 3
S = 1
stride = 2
"""


def test_user_file_works_with_defaults(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(GOOD)
    net = load_network(path)                     # a Path
    assert load_network(str(path)) == net        # or a string
    assert (net.name, net.title, net.input) == ("tiny", "a tiny test net", (16, 32, 32))
    stem, down = net.layers
    assert stem == ConvSpec(N=1, C=16, K=32, H=32, W=32, R=3, S=3, stride=1, pad=1, name="stem")
    assert down == ConvSpec(N=1, C=32, K=64, H=32, W=16, R=3, S=1, stride=2, pad=0, name="down")
    assert select(f"{path}:down", batch=3) == [down.with_batch(3)]
    assert len(select(str(path), batch=2)) == 2


def _bad(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CatalogError) as info:
        load_network(path)
    message = str(info.value)
    assert "bad.toml" in message                 # every message names the file
    return message


@pytest.mark.parametrize("old,new,expect", [
    ("K = 64\n", "", ["'down'", "missing field 'K'"]),
    ("C = 32\n", 'C = "32"\n', ["'down'", "C='32'", "integer"]),
    ("stride = 2\n", "stride = 0\n", ["'down'", "stride=0", ">= 1"]),
    ("stride = 2\n", "stride = true\n", ["'down'", "stride=True"]),
    ("stride = 2\n", "strides = 2\n", ["'down'", "unknown field 'strides'", "did you mean 'stride'"]),
    ("R = 3\npad = 1\n", "R = 40\npad = 1\n", ["'stem'", "R=40", "<= H + 2*pad = 34"]),
    ('name = "down"', 'name = "stem"', ["layer 2", "duplicate of layer 1"]),
    ('name = "down"', 'name = "a:b"', ["layer 2", "without ':'"]),
    ("input = [16, 32, 32]", "input = [16, 32]", ["input", "[C, H, W]"]),
    ('name = "tiny"\n', "", ["[network]", "missing field 'name'"]),
    ("[network]", "[net]", ["unknown top-level key 'net'"]),
    ("H = 32\nW = 16", "H = 32\nW = 16.5", ["'down'", "W=16.5"]),
    ("pad = 1\n", "pad = 1\npad = 2\n", ["not valid TOML"]),
])
def test_malformed_user_file_names_the_field(tmp_path, old, new, expect):
    assert old in GOOD
    message = _bad(tmp_path, GOOD.replace(old, new, 1))
    for part in expect:
        assert part in message, (part, message)


def test_file_without_layers_or_missing(tmp_path):
    head = GOOD.split("[[layer]]")[0]
    assert "no [[layer]]" in _bad(tmp_path, head)
    with pytest.raises(CatalogError, match="no such catalog file"):
        load_network(tmp_path / "absent.toml")
    with pytest.raises(CatalogError, match="no such catalog file"):
        select(f"{tmp_path}/absent.toml:conv1")


_layer = st.fixed_dictionaries({
    "C": st.integers(1, 2048), "K": st.integers(1, 2048), "H": st.integers(1, 64),
    "stride": st.integers(1, 4), "pad": st.integers(0, 3),
}).flatmap(lambda d: st.builds(lambda R, S, W: {**d, "R": R, "S": S, "W": W},
                               st.integers(1, d["H"] + 2 * d["pad"]),
                               st.integers(1, 8 + 2 * d["pad"]), st.integers(8, 64)))


@settings(max_examples=40, deadline=None)
@given(st.lists(_layer, min_size=1, max_size=5))
def test_user_file_round_trip(tmp_path_factory, layers):
    # Whatever valid shapes a file states come back unchanged as ConvSpecs, in order.
    lines = ['[network]\nname = "gen"\ninput = [1, 1, 1]\n']
    for i, L in enumerate(layers):
        lines.append(f'[[layer]]\nname = "l{i}"\n' + "".join(f"{k} = {v}\n" for k, v in L.items()))
    path = tmp_path_factory.mktemp("rt") / "gen.toml"
    path.write_text("\n".join(lines))
    got = load_network(path).layers
    assert got == tuple(ConvSpec(N=1, name=f"l{i}", **L) for i, L in enumerate(layers))


def _benchdnn_specs(suite: str) -> list:
    """Every problem of a benchdnn list as dfpgen.core.descriptor reads it (name without the network, N=1)."""
    from dfpgen.core.descriptor import read_list

    problems = read_list(_BENCHDNN / f"shapes_{suite}")
    assert problems and not any(isinstance(p, Exception) for p in problems)
    return [(p.spec.name.split(":", 1)[1], p.spec.with_batch(1), p.repeat) for p in problems]


@needs_benchdnn
@pytest.mark.parametrize("suite,network,skip", [
    ("resnet_50", "resnet50", ()),
    ("googlenet_v1", "googlenet_v1", ("loss1/conv", "loss2/conv")),
    ("alexnet", "alexnet_2tower", ()),
])
def test_catalog_layers_equal_the_descriptors_benchdnn_lists(suite, network, skip):
    layers = by_name(load_network(network))
    shared = [(name, spec) for name, spec, _ in _benchdnn_specs(suite) if name not in skip]
    assert shared
    for name, spec in shared:
        assert layers[name].shape_key() == spec.shape_key(), name     # groups, strides and pads included


def test_two_tower_alexnet_is_the_grouped_one():
    two, one = by_name(load_network("alexnet_2tower")), by_name(load_network("alexnet"))
    assert [n for n, s in two.items() if s.groups == 2] == ["conv2", "conv4", "conv5"]
    for name in ("conv2", "conv4", "conv5"):
        assert two[name].macs_per_image * 2 == one[name].macs_per_image
    assert load_network("bvlc_alexnet").name == "alexnet_2tower"
    assert abs(load_network("alexnet_2tower").macs_per_image / 1e9 - 0.724) < 0.001


def test_catalog_files_take_groups_and_dilation(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('[network]\nname = "mine"\ninput = [8, 9, 9]\n[[layer]]\nname = "a"\nC = 8\nK = 4\nH = 9\n'
                    'R = 3\ngroups = 2\ndilation = 2\npad = 2\n')
    spec, = select(f"{path}:a")
    assert (spec.groups, spec.dilation, spec.P) == (2, 2, 9)
    path.write_text('[network]\nname = "mine"\ninput = [8, 9, 9]\n[[layer]]\nname = "a"\nC = 8\nK = 5\nH = 9\n'
                    'R = 3\ngroups = 2\n')
    with pytest.raises(CatalogError, match="K=5: must be a multiple of groups=2"):
        select(str(path))
