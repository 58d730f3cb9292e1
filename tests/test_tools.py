"""tools/vnni_check.sh: the one-call VNNI check for a lent machine is well-formed, names files that
exist, and refuses a host that lacks the ISAs it checks (its full run is a dry run, ISAS=avx2,
that takes minutes: README says how)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dfpgen.core.target import DFP_ISAS, host

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "vnni_check.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None or not SCRIPT.exists(), reason="needs bash and a source checkout")


def test_script_parses_and_is_executable():
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


def test_every_named_test_file_and_benchmark_exists():
    text = SCRIPT.read_text()
    named = set(re.findall(r"\b(tests/test_\w+\.py|benchmarks/\w+\.py)\b", text))
    assert len(named) >= 10
    missing = [n for n in sorted(named) if not (ROOT / n).is_file()]
    assert not missing, f"vnni_check.sh names files that do not exist: {missing}"


def test_refuses_a_host_without_the_isas(tmp_path):
    absent = [isa for isa in DFP_ISAS if not host().supports(isa)]
    if not absent:
        pytest.skip("this host has every DFP ISA: the script would run in full")
    env = dict(os.environ, ISAS=absent[0], PYTHONPATH=str(ROOT))
    run = subprocess.run([BASH, str(SCRIPT), str(tmp_path / "out")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert summary.startswith("vnni_check ") and f"lacks {absent[0]}" in summary
