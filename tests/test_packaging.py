"""The wheel carries the templates and the layer catalogs; the installed package finds them."""

import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_resources_are_found_through_the_package():
    assert resources.files("dfpgen.templates").joinpath("conv.ll.j2").is_file()
    assert resources.files("dfpgen.specs").joinpath("resnet50.toml").is_file()
    assert resources.files("dfpgen.specs").joinpath("benchdnn", "shapes_resnet_50").is_file()


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="not a source checkout")
def test_wheel_contains_templates_and_specs(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True)
    wheel, = tmp_path.glob("dfpgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").glob("*.j2"):
        assert f"dfpgen/templates/{template.name}" in names
    for catalog in (ROOT / "specs").glob("*.toml"):
        assert f"dfpgen/specs/{catalog.name}" in names
    for suite in (ROOT / "specs" / "benchdnn").iterdir():      # the conformance lists and their provenance
        assert f"dfpgen/specs/benchdnn/{suite.name}" in names
    assert any(n.endswith("entry_points.txt") for n in names)
