"""`dfpgen layers`: the network list, the layer table, --json, and clean errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dfpgen.core.catalog import load_network, networks
from dfpgen.frontends.cli import main

LAYER_KEYS = {"name", "N", "C", "K", "H", "W", "R", "S", "stride", "pad", "P", "Q", "macs_per_image", "groups",
              "strides", "dilations", "pads"}


def run(*args: str):
    return CliRunner().invoke(main, ["layers", *args])


def test_no_ref_lists_the_networks():
    result = run()
    assert result.exit_code == 0, result.output
    for name in networks():
        assert name in result.output
    assert "3.858" in result.output               # ResNet-50 GMAC per image
    assert "ResNet-50 v1" in result.output


def test_no_ref_json():
    result = run("--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [n["name"] for n in data["networks"]] == networks()
    resnet = next(n for n in data["networks"] if n["name"] == "resnet50")
    assert resnet["layers"] == 54 and resnet["macs_per_image"] == load_network("resnet50").macs_per_image


def test_table_for_one_layer():
    result = run("resnet50:res2a_branch2b", "--batch", "8")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("layer"))
    assert header.split() == ["layer", "C", "K", "HxW", "RxS", "stride", "pad", "PxQ", "MMAC/img"]
    row = next(line for line in lines if line.startswith("res2a_branch2b"))
    assert row.split() == ["res2a_branch2b", "64", "64", "56x56", "3x3", "1", "1", "56x56", "115.61"]
    total = lines[-1]
    assert "1 of 54 layers" in total and "0.116 GMAC per image" in total
    assert "0.925 GMAC for batch 8" in total


def test_table_for_a_whole_network_by_alias():
    result = run("vgg-16")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("vgg16: VGG-16")
    assert sum(1 for line in result.output.splitlines() if line.startswith(("conv", "fc"))) == 16
    assert "total: 16 layers, 15.470 GMAC per image" in result.output


def test_json_for_a_prefix():
    result = run("resnet50:res2a", "--json", "-N", "4")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["network"] == "resnet50" and data["batch"] == 4
    assert [layer["name"] for layer in data["layers"]] == \
        ["res2a_branch1", "res2a_branch2a", "res2a_branch2b", "res2a_branch2c"]
    for layer in data["layers"]:
        assert set(layer) == LAYER_KEYS
        assert layer["N"] == 4
        assert layer["macs_per_image"] == (layer["K"] * layer["C"] * layer["R"] * layer["S"]
                                           * layer["P"] * layer["Q"])
    per_image = sum(layer["macs_per_image"] for layer in data["layers"])
    assert data["total_macs_per_image"] == per_image
    assert data["total_macs"] == 4 * per_image


def test_user_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[network]\nname = "mine"\ninput = [8, 10, 10]\n'
                    '[[layer]]\nname = "c1"\nC = 8\nK = 16\nH = 10\nR = 3\n')
    result = run(f"{path}:c1", "--json")
    assert result.exit_code == 0, result.output
    (layer,) = json.loads(result.output)["layers"]
    assert (layer["P"], layer["Q"], layer["pad"], layer["stride"]) == (8, 8, 0, 1)


@pytest.mark.parametrize("args,expect", [
    (["resnet5"], "did you mean 'resnet50'"),
    (["resnet50:res2z"], "did you mean 'res2a'"),
    (["nowhere/absent.toml"], "no such catalog file"),
    (["alexnet", "--json", "--batch", "0"], "--batch"),
])
def test_errors_exit_2_without_traceback(args, expect):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert expect in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def error_lines(output: str) -> list[str]:
    """The lines of a failed command's output that are not click's usage preamble."""
    return [line for line in output.splitlines() if line.strip() and not line.startswith(("Usage:", "Try '"))]


@pytest.mark.parametrize("ref,code,expect", [
    ("ic3oc3ih0", 2, "ih0: must be >= 1"),
    ("ic3oc3", 2, "missing ih, kh"),
    ("mb2ic-3oc3ih5kh3", 2, "ic-3: must be >= 1"),
    ("mb2ic3oc3ih5kh3sh0", 2, "sh0: must be >= 1"),
    ("mb0ic3oc3ih5kh3", 2, "mb0: must be >= 1"),
    ("mb2ic3oc3id5ih5kh3", 1, "3-D problem"),
])
def test_malformed_descriptor_is_one_line(ref, code, expect):
    result = run(ref)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = error_lines(result.output)
    assert len(lines) == 1 and expect in lines[0], result.output


def test_malformed_file_error_names_the_field(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[network]\nname = "b"\ninput = [3, 8, 8]\n[[layer]]\nname = "c1"\nC = 3\nH = 8\nR = 3\n')
    result = run(str(path))
    assert result.exit_code == 2
    assert "broken.toml" in result.output and "'c1'" in result.output and "missing field 'K'" in result.output


def test_help():
    result = run("--help")
    assert result.exit_code == 0
    for word in ("NET:NAME", "--batch", "--json", "total_macs_per_image", "resnet50:res2a"):
        assert word in result.output


def test_descriptor_reference_lists_its_geometry():
    result = run('mb2_g2ic96oc96_ih57oh26kh5sh2ph1dh1_n"dilated_conv:20"', "--json")
    assert result.exit_code == 0, result.output
    layer, = json.loads(result.output)["layers"]
    assert (layer["name"], layer["N"], layer["groups"], layer["dilations"], layer["P"]) == \
        ("dilated_conv:20", 2, 2, [2, 2], 26)
    assert layer["pads"] == [1, 1, 1, 1] and layer["strides"] == [2, 2]
    table = run("g4ic20ih5oc20oh5kh3ph1").output
    assert "groups" in table and "dilation" in table
