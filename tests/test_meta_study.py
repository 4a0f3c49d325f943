"""``vsml-bench study``: arms compared at equal CPU time from their metrics.jsonl."""

import hashlib
import json

import pytest

from vsml_bench.agents.meta import study
from vsml_bench.cli import main


def _write_run(folder, evals, *, method="bptt", polarity=False, cpu_per_step=60.0):
    folder.mkdir(parents=True)
    kwargs = {"invert_inputs": True} if polarity else {}
    config = {
        "train": {"method": method, "learning_rate": 0.01, "n_tasks": 8, "n_pairs": 4},
        "families": [{"env_id": "vsml_bench/OnlineDigits-v0", "kwargs": kwargs}],
        "command": f"vsml-bench train --out {folder}",
    }
    (folder / "config.json").write_text(json.dumps(config))
    lines = []
    for step in range(1, 11):
        lines.append({"step": step, "loss": 1.0, "wall_s": step, "cpu_s": step * cpu_per_step})
        if step in evals:
            score = evals[step]
            lines.append({"step": step, "eval": {"a": score, "b": score}, "eval_mean": score})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_best_within_a_budget_only_sees_evaluations_made_by_then(tmp_path):
    _write_run(tmp_path / "fast", {2: 0.3, 5: 0.6, 10: 0.5})
    arm = study.read_arm(tmp_path / "fast")
    assert study.best_within(arm, 4.0)["eval_mean"] == 0.3  # step 5 is at 5 CPU-minutes
    assert study.best_within(arm, 5.0)["eval_mean"] == 0.6
    assert study.best_within(arm, 1.0) is None
    assert arm["recipe"]["method"] == "bptt" and arm["recipe"]["batch"] == 8


def test_table_and_files(tmp_path, capsys):
    _write_run(tmp_path / "a", {5: 0.4, 10: 0.7})
    _write_run(tmp_path / "b", {5: 0.5, 10: 0.55}, method="es", polarity=True)
    out = tmp_path / "out"
    assert (
        main(
            [
                "study",
                str(tmp_path / "a"),
                str(tmp_path / "b"),
                "--out",
                str(out),
                "--budgets",
                "5,10,20",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    row_a = next(line for line in printed.splitlines() if line.startswith("| a |"))
    row_b = next(line for line in printed.splitlines() if line.startswith("| b |"))
    # ≤5: 0.4 vs 0.5; ≤10: 0.7 vs 0.55; ≤20: neither run got that far.
    assert "| 0.400 | 0.700 | — |" in row_a
    assert "| 0.500 | 0.550 | — |" in row_b and "polarity" in row_b and "batch 4" in row_b
    saved = json.loads((out / "study.json").read_text())
    assert [arm["name"] for arm in saved["arms"]] == ["a", "b"]
    assert (out / "study.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_without_cpu_time_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "wall_s": 1}) + "\n")
    assert main(["study", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "no CPU time" in capsys.readouterr().err
    with pytest.raises(Exception, match="no CPU time"):
        study.read_arm(folder)


def test_a_warm_started_arm_is_charged_its_source_run(tmp_path):
    _write_run(tmp_path / "base", {10: 0.5})
    _write_run(tmp_path / "next", {2: 0.6})
    config = json.loads((tmp_path / "next" / "config.json").read_text())
    config["init_from"] = {"path": "elsewhere/base/best.msgpack", "sha256": "0" * 64}
    (tmp_path / "next" / "config.json").write_text(json.dumps(config))
    arms = study.chain_warm_starts([study.read_arm(tmp_path / n) for n in ("base", "next")])
    assert arms[1]["cpu_min_before"] == 10.0
    assert arms[1]["curve"][0]["cpu_min"] == 12.0  # its step 2 at 2 CPU-minutes, plus 10
    assert study.best_within(arms[1], 11.0) is None


def test_warm_starts_chain_through_a_shipped_copy_matched_by_sha256(tmp_path):
    _write_run(tmp_path / "first", {10: 0.5})
    _write_run(tmp_path / "second", {5: 0.6}, cpu_per_step=30.0)
    _write_run(tmp_path / "third", {2: 0.7})
    (tmp_path / "first" / "best.msgpack").write_bytes(b"first")
    (tmp_path / "second" / "best.msgpack").write_bytes(b"second")
    for child, parent in (("second", "first"), ("third", "second")):
        config = json.loads((tmp_path / child / "config.json").read_text())
        sha = hashlib.sha256(parent.encode()).hexdigest()
        # a copy under another name, e.g. the shipped set: only the sha256 links it
        config["init_from"] = {"path": "agents/pretrained/x.msgpack", "sha256": sha}
        (tmp_path / child / "config.json").write_text(json.dumps(config))
    names = ("third", "second", "first")  # order does not matter
    arms = study.chain_warm_starts([study.read_arm(tmp_path / n) for n in names])
    third, second, first = arms
    assert "cpu_min_before" not in first
    assert second["cpu_min_before"] == 10.0
    assert third["cpu_min_before"] == 10.0 + 5.0  # second ran 10 steps at 0.5 CPU-min
    assert third["curve"][0]["cpu_min"] == 17.0
