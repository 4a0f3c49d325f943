"""The public API at ``vsml_bench``: deliberate names, loaded lazily, the subpackages' objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vsml_bench
from vsml_bench.cli import COMMANDS, main


def test_all_lists_exactly_the_exports():
    assert set(vsml_bench.__all__) == {"__version__", *vsml_bench._EXPORTS}
    assert len(vsml_bench.__all__) == len(set(vsml_bench.__all__))


@pytest.mark.parametrize("name", sorted(vsml_bench._EXPORTS))
def test_each_name_is_its_home_object(name):
    import importlib

    module, attribute = vsml_bench._EXPORTS[name]
    assert getattr(vsml_bench, name) is getattr(importlib.import_module(module), attribute)
    assert name in dir(vsml_bench)


def test_the_api_matches_the_subpackages():
    from vsml_bench import agents, envs, protocol

    assert vsml_bench.make_env is envs.make and vsml_bench.rollout is envs.rollout
    assert vsml_bench.make_learner is agents.make
    assert vsml_bench.TaskSpec is protocol.TaskSpec is agents.TaskSpec
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vsml_bench.nope  # noqa: B018


def test_import_is_light():
    """``import vsml_bench`` registers the env IDs without importing JAX or the learners."""
    code = (
        "import sys, gymnasium, vsml_bench\n"
        "assert 'vsml_bench/OnlineDigits-v0' in gymnasium.registry\n"
        "heavy = [m for m in ('jax', 'flax', 'vsml_bench.agents', 'vsml_bench.leaderboard')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("command", ["tune", "compare", "export"])
def test_former_scripts_are_subcommands(command, capsys):
    assert command in COMMANDS
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: vsml-bench {command}")
