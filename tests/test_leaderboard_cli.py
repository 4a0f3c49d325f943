"""The evaluate / submit / verify / leaderboard commands, and their one-sentence errors."""

import re
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow
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


# --- verify: refusals, exit codes, the unpredictable draw -----------------------------------

CHANCE_OFFLINE = schema.RESULTS_DIR / "chance__offline-v0__6cb09fe72a.json"
CHANCE_OOD = schema.RESULTS_DIR / "chance__ood-v0__6cb09fe72a.json"
SGD_OFFLINE = schema.RESULTS_DIR / "sgd__offline-v0__9449634518.json"
SGD_CONFIG = {"learning_rate": 0.1, "hidden": 0}


def rebuilt(path, learner=(), missing=()):
    """A committed file re-assembled (all aggregates recomputed, so it validates) with edits."""
    from vsml_bench.leaderboard import metrics
    from vsml_bench.leaderboard.suites import get_suite

    doc = schema.read_results(path)
    results = {}
    for task in doc["tasks"]:
        if task["status"] != "ok" or task["task_id"] in missing:
            results[task["task_id"]] = {"status": schema.MISSING}
            continue
        correct, ce = metrics.decode_task_raw(task["raw"])
        results[task["task_id"]] = {"correct": correct, "ce": ce, "env_spec": task["env_spec"]}
    return schema.build_document(
        suite=get_suite(doc["suite"]["id"]),
        learner={**doc["learner"], **dict(learner)},
        provenance=doc["provenance"],
        task_results=results,
    )


def _no_reruns(*args, **kwargs):
    raise AssertionError("a refused file must not get as far as re-running streams")


@pytest.mark.parametrize(
    "source, learner, missing, code, message",
    [
        (CHANCE_OFFLINE, {"meta_trained_on": ["digits"]}, (), 3, r"chance declares \[\]"),
        (CHANCE_OOD, {"meta_trained_on": ["mnist", "omniglot"]}, (), 3, "which decides the OOD"),
        (CHANCE_OOD, {}, ("mnist",), 4, "task mnist is marked 'not run: data missing'"),
        (CHANCE_OFFLINE, {"meta_params_sha256": "0" * 64}, (), 5, "hash to None"),
        # learner.config: another value, a whole-number float for an integer, an extra option.
        (
            SGD_OFFLINE,
            {"config": {**SGD_CONFIG, "learning_rate": 0.5}},
            (),
            7,
            "learner.config 'learning_rate' is 0.5 but sgd builds 0.1",
        ),
        (SGD_OFFLINE, {"config": {**SGD_CONFIG, "hidden": 0.0}}, (), 7, "'hidden' is 0.0 but"),
        (CHANCE_OFFLINE, {"config": {"temperature": 2}}, (), 7, "chance builds absent"),
    ],
)
def test_verify_refusals_have_their_own_exit_codes(
    tmp_path, capsys, monkeypatch, source, learner, missing, code, message
):
    from vsml_bench.leaderboard import harness

    doc = rebuilt(source, learner, missing)
    path = tmp_path / "doctored.json"
    path.write_text(schema.dump_results(doc))
    schema.read_results(path)  # the doctored file itself is valid: only verify can tell
    monkeypatch.setattr(harness, "rerun_picked", _no_reruns)
    # mnist's files are present in a full install; make that so here whatever the machine has.
    real = harness.task_available
    monkeypatch.setattr(
        harness, "task_available", lambda task, d=None: task.dataset == "mnist" or real(task, d)
    )
    assert cli.main(["verify", str(path)]) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("vsml-bench verify: refused: ")
    assert re.search(message, err)


def test_verify_exit_codes_are_documented():
    from vsml_bench.leaderboard import cli_verify, verify

    for status in verify.Exit:
        assert f"{status.value} " in cli_verify.EPILOG
    assert [s.value for s in verify.Exit] == list(range(len(verify.Exit)))


def test_verify_draws_from_fresh_randomness_and_states_its_guarantee(capsys, monkeypatch):
    from vsml_bench.leaderboard import harness

    picked = []

    def fake_rerun(doc, learner, picks, data_dir=None):
        picked.append(picks)
        return [
            {"task_id": t, "stream": i, "agree": True, "recorded_accuracy": 0.0}
            | {"rerun_accuracy": 0.0, "recorded_ce": 0.0, "rerun_ce": 0.0}
            for t, ids in picks.items()
            for i in ids
        ]

    monkeypatch.setattr(harness, "rerun_picked", fake_rerun)
    seeds = []
    for _ in range(2):
        assert cli.main(["verify", str(CHANCE_OFFLINE)]) == 0
        out = capsys.readouterr().out
        seeds.append(int(re.search(r"repeat with --seed (\d+)", out)[1]))
        assert "re-running 53 of 384 streams" in out
        assert (
            "a file with >= 5% forged streams (>= 20 of 384) is caught with probability >= 95."
            in out
        )
        assert "53/53 streams agree" in out
    assert seeds[0] != seeds[1] and picked[0] != picked[1]
    # --seed repeats a run exactly.
    assert cli.main(["verify", str(CHANCE_OFFLINE), "--seed", str(seeds[0])]) == 0
    assert picked[2] == picked[0]
    assert cli.main(["verify", str(CHANCE_OFFLINE), "--streams", "8", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "re-running 8 of 384 streams" in out and "probability >= 35." in out


def test_verify_catches_a_doctored_stream_with_exit_1(tmp_path, capsys):
    from vsml_bench.leaderboard import metrics

    out = tmp_path / "r.json"
    args = ["evaluate", "--learner", "nearest_mean", "--out", str(out), "--tasks", "iris"]
    assert cli.main([*args, "--n-streams", "3", "--stream-length", "12", "--no-progress"]) == 0
    doc = schema.read_results(out)
    task = doc["tasks"][0]
    correct, ce = metrics.decode_task_raw(task["raw"])
    correct[1] = ~correct[1]  # one forged stream, aggregates recomputed below
    doc = schema.build_document(
        suite=schema.SUITES["offline-v0"].subset(["iris"]).resized(3, 12),
        learner=doc["learner"],
        provenance=doc["provenance"],
        task_results={"iris": {"correct": correct, "ce": ce}},
    )
    out.write_text(schema.dump_results(doc))
    capsys.readouterr()
    assert cli.main(["verify", str(out), "--streams", "3"]) == 1
    printed = capsys.readouterr().out
    assert "DIFF iris           stream    1" in printed and "2/3 streams agree" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "--seed must be an integer from 0"),
        (["--seed", str(2**63)], "--seed must be an integer from 0"),
        (["--streams", "0"], "--streams must be a positive integer"),
    ],
)
def test_verify_option_errors(capsys, args, message):
    assert cli.main(["verify", str(CHANCE_OFFLINE), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def _one_line_error(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_hostile_paths_are_one_line_errors(tmp_path, capsys, monkeypatch):
    import os

    from vsml_bench.leaderboard import harness

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for command in ("submit", "verify"):
        _one_line_error(capsys, [command, "/dev/zero"], "not a regular file")
        _one_line_error(capsys, [command, str(fifo)], "not a regular file")
        _one_line_error(capsys, [command, str(tmp_path)], "is a folder")
        _one_line_error(
            capsys, [command, str(CHANCE_OFFLINE), "--results-dir", str(a_file)], "is a file"
        )
    doc = rebuilt(CHANCE_OFFLINE)
    doc["learner"]["spec"] = "vsml:/dev/zero"
    path = tmp_path / "spec.json"
    path.write_text(schema.dump_results(doc))
    _one_line_error(capsys, ["verify", str(path)], "learner.spec 'vsml:/dev/zero' must be NAME")
    # evaluate --out that is a folder, or under a file, fails before anything runs.
    monkeypatch.setattr(harness, "evaluate", _no_reruns)
    base = ["evaluate", "--learner", "chance", "--no-progress", "--out"]
    _one_line_error(capsys, [*base, str(tmp_path)], "is a folder")
    _one_line_error(capsys, [*base, str(a_file / "r.json")], "which is a file, not a folder")


def test_submit_replace_keeps_the_old_file(tmp_path, capsys):
    results = tmp_path / "results"
    path = tmp_path / "r.json"
    path.write_text(schema.dump_results(make_doc(name="mine", spec="sgd")))
    assert cli.main(["submit", str(path), "--results-dir", str(results)]) == 0
    path.write_text(schema.dump_results(make_doc(name="mine")))
    _one_line_error(capsys, ["submit", str(path), "--results-dir", str(results)], "pass --replace")
    assert cli.main(["submit", str(path), "--results-dir", str(results), "--replace"]) == 0
    assert "kept the replaced file as" in capsys.readouterr().out
    assert len(list((results / "history").iterdir())) == 1
