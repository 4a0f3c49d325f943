"""The board's OOD gap, results-file v2 (class-limited tasks, the gap in the summary), v1 files
upgraded on load, and untrained entries superseded by meta-trained ones."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from vsml_bench import agents
from vsml_bench.leaderboard import harness, metrics, render, schema, suites, verify
from vsml_bench.protocol import TaskSpec

sys.path.insert(0, str(Path(__file__).parent))
from test_leaderboard_schema import PROVENANCE

SHA = "ab" * 32
#: A results-file spec naming a parameter file (content-addressed, so any sha256 parses).
META_RNN_FILE = f"meta_rnn:params/{SHA}.msgpack"


#: Suites at a test size (unofficial: they validate, never submittable); same tasks and seeds.
SMALL_OOD = suites.get_suite("ood-v0").resized(n_streams=16, stream_length=40)
SMALL_OFFLINE = suites.get_suite("offline-v0").resized(n_streams=16, stream_length=40)


def _ood(name, p, seed, trained_on=(), spec="chance", sha=None, suite=SMALL_OOD):
    """A valid small document with synthetic scores (accuracy about ``p``)."""
    rng = np.random.default_rng(seed)
    results = {
        task.task_id: {
            "correct": rng.random((task.n_streams, task.stream_length)) < p,
            "ce": rng.random(task.n_streams),
            "env_spec": None,
        }
        for task in suite.tasks
    }
    learner = {
        "name": name,
        "spec": spec,
        "config": {},
        "meta_trained_on": list(trained_on),
        "meta_params_sha256": sha,
    }
    return schema.build_document(
        suite=suite, learner=learner, provenance=PROVENANCE, task_results=results
    )


def _v1(doc):
    """``doc`` as the v1 harness wrote it: no gap fields, schema_version 1."""
    old = copy.deepcopy(doc)
    old["schema_version"] = 1
    del old["summary"]["in_distribution"], old["summary"]["ood_gap"]
    return old


# --- metrics ------------------------------------------------------------------------------


def test_gap_is_in_minus_ood_with_a_ci_that_covers_it():
    rng = np.random.default_rng(0)
    in_dist = [rng.random(64) * 0.2 + 0.7]
    ood = [rng.random(64) * 0.2 + 0.4, rng.random(32) * 0.2 + 0.5]
    est_in, est_ood, gap = metrics.stratified_bootstrap_gap(in_dist, ood, statistic="mean")
    assert est_in.value == pytest.approx(in_dist[0].mean())
    assert est_ood.value == pytest.approx((ood[0].mean() + ood[1].mean()) / 2)  # per task
    assert gap.value == pytest.approx(est_in.value - est_ood.value)
    assert gap.low < gap.value < gap.high and gap.low > 0.2
    iqm_in, iqm_ood, iqm_gap = metrics.stratified_bootstrap_gap(in_dist, ood)
    assert iqm_ood.value == pytest.approx(metrics.iqm(np.concatenate(ood)))  # pooled streams
    assert iqm_gap.value == pytest.approx(iqm_in.value - iqm_ood.value)
    # No difference between the groups: the CI straddles zero.
    same = metrics.stratified_bootstrap_gap([ood[0]], [ood[0][::-1]], statistic="mean")[2]
    assert same.low < 0 < same.high
    with pytest.raises(ValueError, match="at least one"):
        metrics.stratified_bootstrap_gap([], ood)


# --- schema v2 ----------------------------------------------------------------------------


def test_summary_carries_in_distribution_and_the_gap():
    doc = _ood("saw mnist", 0.7, 1, trained_on=("mnist",))
    summary = doc["summary"]
    scores = schema.stream_accuracies(doc)
    assert summary["in_distribution"]["value"] == pytest.approx(metrics.iqm(scores["mnist"]))
    gap = summary["ood_gap"]
    assert gap["value"] == pytest.approx(
        summary["in_distribution"]["value"] - summary["headline"]["value"], abs=2e-6
    )
    assert gap["low"] <= gap["value"] <= gap["high"]
    zero_shot = _ood("zero", 0.7, 2)["summary"]
    assert zero_shot["in_distribution"] is None and zero_shot["ood_gap"] is None
    # A forged gap is caught by the recomputation.
    forged = copy.deepcopy(doc)
    forged["summary"]["ood_gap"]["value"] = -0.5
    with pytest.raises(schema.ResultsError, match=r"summary\.ood_gap\.value"):
        schema.validate_results(forged)


def test_v1_files_still_load_and_are_upgraded(tmp_path):
    doc = _ood("saw mnist", 0.7, 1, trained_on=("mnist",))
    old = _v1(doc)
    assert schema.validate_results(copy.deepcopy(old)) == old  # validated as v1
    with pytest.raises(schema.ResultsError, match="results-v2 schema"):
        schema.validate_results({**old, "schema_version": 2})  # v2 needs the gap fields
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    loaded = schema.read_results(path)
    assert loaded["schema_version"] == schema.SCHEMA_VERSION
    assert loaded["summary"] == doc["summary"]
    assert schema.validate_results(copy.deepcopy(loaded)) == loaded
    # A shipped entry (written as v1 before the bump) still loads and gains its gap.
    shipped = sorted(schema.RESULTS_DIR.glob("vsml-pretrained-mnist__ood-v0__*.json"))
    assert shipped, "the shipped VSML ood-v0 entry is missing from leaderboard/results"
    entry = schema.read_results(shipped[0])
    assert entry["summary"]["ood_gap"] is not None  # mnist is in-distribution for it


def _fewshot_doc(limited: dict[str, int], spec=META_RNN_FILE, sha=SHA):
    """A fewshot-v0 document whose tasks ``limited`` (task_id -> C) are class-limited."""
    suite = suites.get_suite("fewshot-v0")
    rng = np.random.default_rng(0)
    results = {}
    for task in suite.tasks:
        if task.task_id in limited:
            results[task.task_id] = {"status": schema.too_many_classes(limited[task.task_id])}
        else:
            results[task.task_id] = {
                "correct": rng.random((task.n_streams, task.n_scored)) < 0.5,
                "ce": rng.random(task.n_streams),
                "env_spec": None,
            }
    learner = {
        "name": "meta rnn",
        "spec": spec,
        "config": {},
        "meta_trained_on": ["mnist"],
        "meta_params_sha256": sha,
    }
    return schema.build_document(
        suite=suite, learner=learner, provenance=PROVENANCE, task_results=results
    )


def test_v1_has_no_class_limited_status():
    doc = _fewshot_doc({"omniglot_runs_20way_1shot": 10})
    with pytest.raises(schema.ResultsError, match="results-v1 schema"):
        schema.validate_results(_v1(doc))


def _class_limited(doc, task_id, limit):
    doc = copy.deepcopy(doc)
    for task in doc["tasks"]:
        if task["task_id"] == task_id:
            for key in ("raw", "metrics", "curve"):
                task.pop(key, None)
            task.update(status=schema.too_many_classes(limit), env_spec=None, wall_time_s=0.0)
    doc["summary"] = schema.summary(doc["tasks"], schema.stream_accuracies(doc))
    return doc


def test_class_limited_tasks_validate_only_when_the_task_has_more_classes():
    doc = _fewshot_doc({"omniglot_runs_20way_1shot": 10})
    task = doc["tasks"][0]
    assert task["status"] == "not run: learner supports at most 10 classes"
    assert schema.max_classes_of(task["status"]) == 10
    assert schema.max_classes_of(schema.MISSING) is None
    schema.validate_results(copy.deepcopy(doc), require_official=True)
    assert doc["summary"]["n_tasks_run"] == 3 and doc["summary"]["n_tasks_missing"] == 1
    # A 5-way task is within a 10-class learner's reach: the status would hide it.
    hiding = _fewshot_doc({"omniglot_5way_1shot": 10})
    with pytest.raises(schema.ResultsError, match="has only 5"):
        schema.validate_results(hiding)
    # Embedded datasets can be class-limited too (never "data missing").
    offline = _ood("x", 0.5, 0, suite=SMALL_OFFLINE)
    digits = _class_limited(offline, "digits", 5)
    schema.validate_results(digits)
    with pytest.raises(schema.ResultsError, match="results-v2 schema"):
        schema.validate_results(_class_limited(offline, "digits", 0))


def _fixed_meta_rnn(n_classes: int):
    learner = agents.make("meta_rnn", hidden=8)
    meta_params = learner.meta_init(jax.random.key(0), TaskSpec((49,), n_classes))
    return dataclasses.replace(learner, meta_params=meta_params)


def _with_outputs(n_classes: int):
    """A learner whose (attached) meta-parameters fix ``n_classes`` outputs, as a Meta-RNN's do."""
    fixed = TaskSpec((49,), n_classes)
    return dataclasses.replace(agents.make("chance"), meta_params={}, task_spec_of=lambda _: fixed)


def test_a_class_limit_must_be_the_learners_own():
    doc = _fewshot_doc({"omniglot_runs_20way_1shot": 10})
    assert schema.class_limit_problem(doc, _with_outputs(10)) is None
    problem = schema.class_limit_problem(doc, _with_outputs(12))
    assert "has 12 outputs" in problem
    assert "runs any number of classes" in schema.class_limit_problem(doc, agents.make("sgd"))
    with pytest.raises(verify.Refusal) as refusal:
        verify.check_class_limits(doc, _with_outputs(12))
    assert refusal.value.code == verify.Exit.CLASS_LIMIT


@pytest.mark.slow
def test_the_harness_records_a_class_limited_task_instead_of_failing(tmp_path):
    """The bug: a learner with fewer outputs than a task's classes crashed the whole run."""
    suite = suites.get_suite("offline-v0").subset(["digits", "iris"]).resized(2, 6)
    seen = []
    out = tmp_path / "r.json"
    doc = harness.evaluate(
        _fixed_meta_rnn(5), suite, out, progress=False, on_task=lambda t, s: seen.append(s)
    )
    by_id = {t["task_id"]: t for t in doc["tasks"]}
    assert by_id["digits"]["status"] == "not run: learner supports at most 5 classes"
    assert by_id["iris"]["status"] == "ok" and "adaptation" in by_id["iris"]
    assert seen[0] == by_id["digits"]["status"]
    assert schema.read_results(out)["tasks"][0]["status"] == by_id["digits"]["status"]
    # A resumed run keeps the status rather than turning it into "data missing".
    done = harness._load_partial(out, {"suite": doc["suite"], "learner": doc["learner"]})
    assert done["digits"] == {"status": by_id["digits"]["status"]}


# --- the board ----------------------------------------------------------------------------


def test_board_shows_the_gap_and_a_reference_split_for_zero_shot_entries():
    board = [
        _ood("saw mnist", 0.7, 1, trained_on=("mnist",)),
        _ood("sgd", 0.6, 2, spec="sgd"),
    ]
    rows = {r.name: r for r in render.rank_entries(board)["ood-v0"]}
    own = rows["saw mnist"].split
    assert own.tasks == ("mnist",) and not own.reference
    assert own.gap.value == board[0]["summary"]["ood_gap"]["value"]
    ref = rows["sgd"].split
    assert ref.reference and ref.tasks == ("mnist",)
    scores = schema.stream_accuracies(board[1])
    rest = np.concatenate([v for k, v in scores.items() if k != "mnist"])
    assert ref.outside.value == pytest.approx(metrics.iqm(rest))
    md = render.render_markdown(board)
    gap = board[0]["summary"]["ood_gap"]
    assert f"\\{gap['value']:+.3f} \\[\\{gap['low']:+.3f}, \\{gap['high']:+.3f}\\]" in md
    assert f"ref. \\{ref.gap.value:+.3f} \\(mnist vs rest\\)" in md
    assert "**OOD gap**" in md
    page = render.render_html(board)
    assert "In-distribution vs OOD (ood-v0)" in page and page.count("<rect") >= 4
    # Two meta-trained entries with different in-distribution sets: no common reference.
    board.append(_ood("saw fashion", 0.7, 3, trained_on=("fashion_mnist",)))
    rows = {r.name: r for r in render.rank_entries(board)["ood-v0"]}
    assert rows["sgd"].split is None and rows["saw fashion"].split.tasks == ("fashion_mnist",)


def test_untrained_entries_give_way_to_a_trained_entry_of_the_same_learner():
    untrained = _ood("meta_rnn (untrained)", 0.1, 1, spec="meta_rnn")
    others = [_ood("sgd", 0.5, 2, spec="sgd"), _ood("chance", 0.1, 3)]
    rows = render.rank_entries([untrained, *others])["ood-v0"]
    assert {r.name: r.rank for r in rows}["meta_rnn (untrained)"] is not None
    trained = _ood("meta_rnn (pretrained: toy)", 0.8, 4, trained_on=("mnist",), sha=SHA)
    trained["learner"]["spec"] = META_RNN_FILE
    rows = render.rank_entries([untrained, *others, trained])["ood-v0"]
    by_name = {r.name: r for r in rows}
    gone = by_name["meta_rnn (untrained)"]
    assert gone.rank is None and gone.superseded_by == ("meta_rnn (pretrained: toy)",)
    assert gone.group == render.SUPERSEDED and rows[-1] is gone  # listed last, unranked
    assert by_name["sgd"].rank == 1 and by_name["meta_rnn (pretrained: toy)"].rank == 1
    assert all(r.p_better_than_next is None for r in rows if r.group == render.SUPERSEDED)
    md = render.render_markdown([untrained, *others, trained])
    assert "### reference, not ranked" in md
    # Only entries of the same learner, and only those without meta-parameters, give way.
    other_trained = _ood("vsml x", 0.8, 5, trained_on=("mnist",), sha=SHA, spec="vsml:mnist")
    rows = render.rank_entries([untrained, *others, other_trained])["ood-v0"]
    assert all(r.rank is not None for r in rows)


def test_board_cells_name_the_class_limit():
    doc = _fewshot_doc({"omniglot_runs_20way_1shot": 10})
    md = render.render_markdown([doc])
    assert "≤10 classes" in md
    page = render.render_html([doc])
    assert 'title="not run: learner supports at most 10 classes">≤10 classes</td>' in page
