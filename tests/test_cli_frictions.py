"""The command line as a user meets it: closed pipes, missing folders, learner configs, packaging."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vsml_bench import cli
from vsml_bench.leaderboard import cli_render, schema

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- closed pipes


def test_closed_pipe_ends_quietly_in_a_subprocess():
    """`vsml-bench envs | head -0`: the reader is gone before a byte is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsml_bench", "envs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # long before the interpreter has started, let alone printed
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-2000:]
    assert proc.returncode == cli.EXIT_BROKEN_PIPE


@pytest.mark.parametrize("command", ["envs", "learners", "leaderboard"])
def test_broken_pipe_in_any_command_returns_141(command, monkeypatch, capsys):
    module_name = cli.COMMANDS[command][0]
    module = __import__(module_name, fromlist=["run"])

    def run(args):
        print("partial")
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(module, "run", run)
    assert cli.main([command]) == cli.EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ leaderboard


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_leaderboard_refuses_a_results_dir_that_is_not_a_folder(tmp_path, capsys, kind):
    results = tmp_path / "nope"
    if kind == "file":
        results.write_text("{}")
    out = tmp_path / "board"
    code = cli.main(["leaderboard", "--results-dir", str(results), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(results) in err
    assert ("does not exist" if kind == "missing" else "is not a folder") in err
    assert not out.exists()  # nothing written


@pytest.mark.slow
def test_leaderboard_writes_under_out_in_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["leaderboard"]) == 0
    shipped = len(list(schema.RESULTS_DIR.glob("*.json")))
    assert f"{shipped} entries -> leaderboard/README.md" in capsys.readouterr().out
    assert (tmp_path / "leaderboard" / "README.md").is_file()
    assert (tmp_path / "leaderboard" / "site" / "index.html").is_file()
    assert cli.main(["leaderboard", "--out", "elsewhere"]) == 0
    assert (tmp_path / "elsewhere" / "site" / "index.html").is_file()


def test_check_results_dir_defaults_to_the_shipped_results():
    assert cli_render.check_results_dir(None) == schema.RESULTS_DIR
    assert any(schema.RESULTS_DIR.glob("*.json"))


def test_shipped_results_are_package_data():
    """Every committed results file (and content-addressed parameter file) is in the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "vsml_bench.leaderboard.results" in config["packages"]
    results = ROOT / config["package-dir"]["vsml_bench.leaderboard"] / "results"
    patterns = config["package-data"]["vsml_bench.leaderboard.results"]
    shipped = [
        p.relative_to(results).as_posix()
        for p in results.rglob("*")
        if p.is_file() and "history" not in p.parts and not p.name.startswith(".")
    ]
    assert shipped
    missing = [f for f in shipped if not any(fnmatch.fnmatchcase(f, pat) for pat in patterns)]
    assert missing == []


# -------------------------------------------------------------------------------- evaluate


def _evaluate(tmp_path, *extra: str) -> list[str]:
    args = ["evaluate", "--learner", "sgd", "--out", str(tmp_path / "r.json"), "--tasks", "iris"]
    return [*args, "--n-streams", "2", "--stream-length", "8", "--no-progress", *extra]


def test_evaluate_learner_config_reaches_the_learner(tmp_path, capsys):
    assert cli.main(_evaluate(tmp_path, "--learner-config", '{"learning_rate": 0.25}')) == 0
    doc = schema.read_results(tmp_path / "r.json")
    assert doc["learner"]["config"]["learning_rate"] == 0.25


@pytest.mark.parametrize("config", [None, '{"learning_rate": 0.25}'])
def test_evaluate_with_learner_options_is_unofficial(tmp_path, monkeypatch, config):
    """A results file's spec carries no options, so `verify` could not rebuild that learner."""
    from vsml_bench.leaderboard import harness

    seen = {}

    def evaluate(learner, suite, out, **kwargs):
        seen.update(suite=suite, learner=learner)
        return {"tasks": [], "summary": {"headline": None}}

    monkeypatch.setattr(harness, "evaluate", evaluate)
    args = ["evaluate", "--learner", "sgd", "--out", str(tmp_path / "r.json")]
    assert cli.main(args + (["--learner-config", config] if config else [])) == 0
    assert seen["suite"].official == (config is None)
    assert seen["learner"].config["learning_rate"] == (0.25 if config else 0.1)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{learning_rate: 1}", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"no_such_option": 1}', "no_such_option"),
    ],
)
def test_evaluate_learner_config_errors_are_one_sentence(tmp_path, capsys, text, needle):
    assert cli.main(_evaluate(tmp_path, "--learner-config", text)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vsml-bench evaluate: error: --learner-config") and needle in err
    assert err.count("\n") == 0
    assert not (tmp_path / "r.json").exists()
