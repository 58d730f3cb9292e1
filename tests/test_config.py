"""dfpgen.config: the environment variables dfpgen reads (torchrun's rank and world size here)."""

from __future__ import annotations

import pytest

from dfpgen.config import World, torchrun_world
from dfpgen.errors import DFPGenError

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
