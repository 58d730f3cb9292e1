"""Shared pytest setup: an isolated kernel cache per test session, and the golden-file switch."""

import os
import tempfile

import pytest

# Kernels compiled by the tests must not land in (or come from) the user's cache.
os.environ.setdefault("DFPGEN_CACHE_DIR", tempfile.mkdtemp(prefix="dfpgen-test-cache-"))


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true",
                     help="Rewrite tests/golden/*.ll from the current templates (only on purpose).")


@pytest.fixture
def regen_golden(request) -> bool:
    return request.config.getoption("--regen-golden")
