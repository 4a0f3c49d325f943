"""The options the experiments share (:mod:`vsml_bench.experiments.options`)."""

from __future__ import annotations

import argparse
import json

import pytest

from vsml_bench.errors import UserError
from vsml_bench.experiments import clone_backprop, introspection, invariance, options

EXPERIMENTS = {
    "clone-backprop": clone_backprop,
    "introspection": introspection,
    "invariance": invariance,
}
SHARED = {"--out", "--paper", "--datasets", "--seed", "--split", "--no-progress"}
LINEUP = {"--learners", "--streams", "--length", "--tune-split", "--render-only"}


def _parser(module) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_has_the_shared_flags(name):
    module = EXPERIMENTS[name]
    parser = _parser(module)
    assert _flags(parser) >= SHARED
    assert (_flags(parser) >= LINEUP) == (module is not clone_backprop)
    defaults = parser.parse_args([])
    assert defaults.out == f"docs/results/{name}" and defaults.no_progress is False
    # Every Config field but the fixed ones has a flag of its own name.
    fields = set(module.CPU.to_dict()) - {"checkpoint_every", "held_out_streams"}
    assert fields <= set(vars(defaults)), fields - set(vars(defaults))


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_flags_override_the_preset_and_lists_become_tuples(name):
    module = EXPERIMENTS[name]
    parser = _parser(module)
    args = parser.parse_args(["--paper", "--seed", "7", "--datasets", "digits", "iris"])
    config = options.config_from_args(args, module.CPU, module.PAPER)
    assert config.seed == 7 and config.datasets == ("digits", "iris")
    untouched = {"seed", "datasets"}
    assert {k: v for k, v in config.to_dict().items() if k not in untouched} == {
        k: v for k, v in module.PAPER.to_dict().items() if k not in untouched
    }
    assert options.config_from_args(parser.parse_args([]), module.CPU, module.PAPER) == module.CPU


def test_config_records_read_back_from_a_results_file():
    record = json.loads(json.dumps(invariance.PAPER.to_dict()))
    assert record["class_counts"] == [2, 3, 4, 5, 6, 7, 8, 9]  # JSON lists, not tuples
    assert invariance.Config.from_dict(record) == invariance.PAPER
    with pytest.raises(UserError, match=r"unknown invariance config field\(s\) streamz"):
        invariance.Config.from_dict({**record, "streamz": 3})
    del record["margin"]
    with pytest.raises(UserError, match="the invariance config record lacks margin"):
        invariance.Config.from_dict(record)
    # Fields with defaults may be left out (a record of an older version).
    short = {k: v for k, v in introspection.CPU.to_dict().items() if k != "tune_split"}
    assert introspection.Config.from_dict(short) == introspection.CPU


@pytest.mark.parametrize("text", ["0", "-3"])
def test_a_count_flag_refuses_zero_and_negatives(text, capsys):
    with pytest.raises(SystemExit):
        _parser(introspection).parse_args(["--streams", text])
    assert f"must be a positive integer, not {text}" in capsys.readouterr().err
