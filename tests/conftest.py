"""Shared pytest setup: an isolated kernel cache per test session, the golden-file switch, and PyTorch for the
tests that cross-check against it (each marked `torch`, so CI runs them alone once torch is installed)."""

import os
import tempfile

import pytest

# Kernels compiled by the tests must not land in (or come from) the user's cache.
os.environ.setdefault("DFPGEN_CACHE_DIR", tempfile.mkdtemp(prefix="dfpgen-test-cache-"))
# Test modules import torch before dfpgen.torch; idle torch threads must not spin on the cores the DFP layers use.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true",
                     help="Rewrite tests/golden/*.ll from the current templates (only on purpose).")


@pytest.fixture
def regen_golden(request) -> bool:
    return request.config.getoption("--regen-golden")


@pytest.fixture(scope="session")
def torch():
    """PyTorch; the test skips without it (pip install 'dfpgen[torch]')."""
    return pytest.importorskip("torch")


@pytest.hookimpl(tryfirst=True)   # before -m selects on the marks
def pytest_collection_modifyitems(config, items):
    """Mark `torch` every test that needs PyTorch: those using the `torch` fixture, and those of a module
    that imports it at the top (`torch = pytest.importorskip("torch")`; without torch it collects nothing)."""
    for item in items:
        module_torch = getattr(getattr(item, "module", None), "torch", None)
        if "torch" in getattr(item, "fixturenames", ()) or getattr(module_torch, "__name__", None) == "torch":
            item.add_marker(pytest.mark.torch)
