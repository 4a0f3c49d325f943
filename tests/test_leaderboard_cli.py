"""The evaluate / submit / verify / leaderboard commands, and their one-sentence errors."""

import sys
from pathlib import Path

from vsml_bench import cli
from vsml_bench.leaderboard import schema

sys.path.insert(0, str(Path(__file__).parent))
from test_leaderboard_schema import make_doc


def test_submit_and_render_commands(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(schema.dump_results(make_doc(name="cli test")))
    results = tmp_path / "results"
    assert cli.main(["submit", str(path), "--results-dir", str(results)]) == 0
    assert "accepted 'cli test' on offline-v0" in capsys.readouterr().out
    md, page = tmp_path / "README.md", tmp_path / "site" / "index.html"
    args = [
        "leaderboard",
        "--results-dir",
        str(results),
        "--markdown",
        str(md),
        "--html",
        str(page),
    ]
    assert cli.main(args) == 0
    assert "cli test" in md.read_text() and "cli test" in page.read_text()


def test_submit_rejects_with_one_sentence(tmp_path, capsys):
    doc = make_doc()
    doc["tasks"][0]["metrics"]["accuracy"]["value"] = 0.99
    path = tmp_path / "r.json"
    path.write_text(schema.dump_results(doc))
    assert cli.main(["submit", str(path), "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "disagrees with its raw scores" in err
    assert not (tmp_path / "results").exists()
    assert cli.main(["submit", str(tmp_path / "absent.json")]) == 2
    assert "cannot read results file" in capsys.readouterr().err


def test_evaluate_and_verify_commands(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["evaluate", "--learner", "nearest_mean", "--suite", "offline-v0", "--out", str(out)]
    args += ["--n-streams", "2", "--stream-length", "16", "--no-progress", "--name", "nm"]
    args += ["--tasks", "wine,iris"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "headline IQM (OOD)" in printed and "wrote" in printed
    doc = schema.read_results(out)
    assert doc["learner"]["name"] == "nm" and not doc["suite"]["official"]
    assert [t["task_id"] for t in doc["tasks"]] == ["iris", "wine"]
    assert cli.main(["verify", str(out), "--streams", "3"]) == 0
    assert "3/3 streams agree" in capsys.readouterr().out


def test_evaluate_user_errors(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    assert cli.main(["evaluate", "--learner", "sgd", "--suite", "bogus-v1", "--out", out]) == 2
    assert "unknown suite 'bogus-v1'" in capsys.readouterr().err
    assert (
        cli.main(["evaluate", "--learner", "no_such", "--suite", "offline-v0", "--out", out]) == 2
    )
    assert "no_such" in capsys.readouterr().err
    args = ["evaluate", "--learner", "sgd", "--out", out, "--tasks", "iris,mnist"]
    assert cli.main(args) == 2
    assert "has no task 'mnist'" in capsys.readouterr().err
