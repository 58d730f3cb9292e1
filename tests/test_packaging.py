"""The wheel carries the templates and the layer catalogs; the installed package finds them."""

import shutil
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


SUBPACKAGES = ["core", "passes", "codegen", "runtime", "tuning", "training", "nn", "frontends", "verification", "formats"]


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="not a source checkout")
def test_wheel_contains_templates_and_specs(tmp_path):
    # Built as README's install builds: with pip's build isolation, which fetches the build backend that
    # pyproject.toml names (a fresh venv has no `wheel` for --no-build-isolation). From a clean copy: an
    # in-tree build would reuse a stale build/ and hide a package that pyproject.toml no longer lists.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                                ".venv", ".hypothesis", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel, = tmp_path.glob("dfpgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "dfpgen").rglob("*.py") if "__pycache__" not in p.parts}
    assert {f"dfpgen/{sub}/__init__.py" for sub in SUBPACKAGES} <= sources
    missing = sorted(sources - names)      # every module of every subpackage, __init__.py included
    assert not missing, f"the wheel lacks {missing}"
    for template in (ROOT / "templates").glob("*.j2"):
        assert f"dfpgen/templates/{template.name}" in names
    for catalog in (ROOT / "specs").glob("*.toml"):
        assert f"dfpgen/specs/{catalog.name}" in names
    for suite in (ROOT / "specs" / "benchdnn").iterdir():      # the conformance lists and their provenance
        assert f"dfpgen/specs/benchdnn/{suite.name}" in names
    assert any(n.endswith("entry_points.txt") for n in names)
