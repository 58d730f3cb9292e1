"""dfpgen.config: the environment variables dfpgen reads (torchrun's rank and world size here)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from dfpgen.config import World, settings, torchrun_world
from dfpgen.errors import DFPGenError
from dfpgen.frontends.cli import main

TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")


@pytest.fixture
def env(monkeypatch):
    for name in TORCHRUN:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_torchrun_a_process_is_rank_0_of_1(env):
    assert torchrun_world() == World(0, 1, 1)


def test_torchrun_variables(env):
    env.setenv("RANK", "3")
    env.setenv("WORLD_SIZE", "4")
    assert torchrun_world() == World(3, 4, 4)  # LOCAL_WORLD_SIZE defaults to all ranks on this machine
    env.setenv("LOCAL_WORLD_SIZE", "2")
    assert torchrun_world() == World(3, 4, 2)


@pytest.mark.parametrize("values, names", [
    ({"RANK": "x"}, "RANK='x'"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0'"),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK='-1'"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2"),
    ({"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "3"}, "LOCAL_WORLD_SIZE=3"),
])
def test_bad_torchrun_variables_name_the_value(env, values, names):
    for name, value in values.items():
        env.setenv(name, value)
    with pytest.raises(DFPGenError, match=names) as info:
        torchrun_world()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["abc", "-4", "0", "2.5"])
def test_bad_dfpgen_threads_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("DFPGEN_THREADS", value)
    with pytest.raises(DFPGenError, match=rf"DFPGEN_THREADS='{re.escape(value)}': expected an integer >= 1") as info:
        settings()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value, threads", [("3", 3), (" 2 ", 2), ("", None), ("  ", None)])
def test_dfpgen_threads(monkeypatch, value, threads):
    monkeypatch.setenv("DFPGEN_THREADS", value)
    assert settings().threads == threads


@pytest.mark.parametrize("value, megabytes", [("", 4096), ("0", 0), (" 512 ", 512)])
def test_dfpgen_buffer_pool_mb(monkeypatch, value, megabytes):
    monkeypatch.setenv("DFPGEN_BUFFER_POOL_MB", value)
    assert settings().buffer_pool_mb == megabytes


@pytest.mark.parametrize("value", ["lots", "-1", "1.5"])
def test_bad_dfpgen_buffer_pool_mb_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("DFPGEN_BUFFER_POOL_MB", value)
    with pytest.raises(DFPGenError, match=rf"DFPGEN_BUFFER_POOL_MB='{re.escape(value)}': expected an integer >= 0 "
                                          r"\(megabytes") as info:
        settings()
    assert "\n" not in str(info.value)


def test_bad_dfpgen_threads_in_the_cli_is_one_line(monkeypatch):
    monkeypatch.setenv("DFPGEN_THREADS", "abc")
    result = CliRunner().invoke(main, ["bench", "--layer", "mb1ic4oc4ih4kh3"])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == ["Error: DFPGenError: DFPGEN_THREADS='abc': expected an integer >= 1; "
                                          "unset it to use every core"]


def test_a_cache_dir_under_a_file_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    for under in ("file", "file/deeper/dfpgen"):
        monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path / under))
        with pytest.raises(DFPGenError, match=r"^DFPGEN_CACHE_DIR='.*': .*file is a file, not a folder"):
            settings()
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path / "new" / "folder"))
    assert settings().cache_dir == tmp_path / "new" / "folder"     # missing folders are made when used


def test_cli_commands_say_so_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("DFPGEN_CACHE_DIR", str(tmp_path / "file" / "cache"))
    result = CliRunner().invoke(main, ["peak"])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0 and "DFPGEN_CACHE_DIR" in result.output


def test_passive_openmp_is_a_default_the_user_can_override(monkeypatch):
    from dfpgen.config import openmp_wait_policy, prefer_passive_openmp

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert openmp_wait_policy() is None
    prefer_passive_openmp()
    assert openmp_wait_policy() == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prefer_passive_openmp()
    assert openmp_wait_policy() == "ACTIVE"
