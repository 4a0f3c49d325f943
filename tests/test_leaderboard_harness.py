"""The evaluation harness on real envs and learners (tiny resized suites), resume, verify, CLI."""

import dataclasses
import json

import numpy as np
import pytest

from vsml_bench import agents
from vsml_bench.leaderboard import harness, schema
from vsml_bench.leaderboard.suites import SUITES, Suite, get_suite

TINY = dict(n_streams=4, stream_length=24)


def tiny_suite(suite_id="offline-v0", tasks=("iris", "sum_sign", "digits")) -> Suite:
    suite = get_suite(suite_id).resized(**TINY)
    return dataclasses.replace(suite, tasks=tuple(t for t in suite.tasks if t.task_id in tasks))


def test_suites_are_well_formed():
    assert {"offline-v0", "ood-v0", "fewshot-v0"} <= set(SUITES)
    for suite in SUITES.values():
        assert suite.official
        assert len({t.task_id for t in suite.tasks}) == len(suite.tasks)
        for task in suite.tasks:
            if task.episodes is not None:  # the published runs: all of them, once each
                assert task.n_streams == 20
            elif "FewShot" in task.env_id:
                assert task.n_streams >= 256
            else:
                assert task.n_streams >= 64 and task.stream_length >= 100
    assert [t.dataset for t in SUITES["offline-v0"].tasks] == [
        "digits",
        "iris",
        "wine",
        "breast_cancer",
        "sum_sign",
        "random",
    ]
    assert len(SUITES["ood-v0"].tasks) == 11
    assert not get_suite("offline-v0").resized(n_streams=2).official
    from vsml_bench.leaderboard.suites import UnknownSuite

    with pytest.raises(UnknownSuite, match="offline-v0"):
        get_suite("nope")


def test_every_suite_env_id_is_registered():
    from vsml_bench.envs.registration import all_env_ids

    ids = {i for i, _, _ in all_env_ids()}
    for suite in SUITES.values():
        assert {t.env_id for t in suite.tasks} <= ids


@pytest.mark.slow
def test_evaluate_writes_a_valid_file_and_verify_agrees(tmp_path):
    learner = agents.make("nearest_mean")
    out = tmp_path / "r.json"
    doc = harness.evaluate(learner, tiny_suite(), out, progress=False)
    assert schema.read_results(out) == doc
    assert [t["task_id"] for t in doc["tasks"]] == ["digits", "iris", "sum_sign"]
    assert all(t["status"] == "ok" for t in doc["tasks"])
    assert doc["tasks"][0]["raw"]["n_scored"] == TINY["stream_length"]
    assert doc["learner"]["meta_params_sha256"] is None
    assert doc["provenance"]["hardware"]["n_cpus"] >= 1
    # nearest class mean separates sum-sign well above chance (0.5) even in 24 steps.
    assert doc["tasks"][2]["metrics"]["accuracy"]["value"] > 0.6
    spec = json.loads(doc["tasks"][1]["env_spec"])
    assert spec["id"] == "vsml_bench/OnlineIris-v0" and spec["kwargs"]["stream_length"] == 24
    with pytest.raises(schema.ResultsError, match="cannot be submitted"):
        schema.submit(out, tmp_path / "results")  # resized runs are unofficial
    records = harness.rerun_streams(doc, learner, n_streams=5, seed=3)
    assert len(records) == 5 and all(r["agree"] for r in records)


def test_verify_detects_a_doctored_stream(tmp_path):
    learner = agents.make("nearest_mean")
    doc = harness.evaluate(learner, tiny_suite(tasks=("iris",)), None, progress=False)
    raw = doc["tasks"][0]["raw"]
    from vsml_bench.leaderboard import metrics

    correct, ce = metrics.decode_task_raw(raw)
    correct[:] = True  # claim perfect accuracy on every stream
    doc["tasks"][0]["raw"] = metrics.encode_task_raw(correct, ce)
    records = harness.rerun_streams(doc, learner, n_streams=4)
    assert not any(r["agree"] for r in records)


@pytest.mark.slow
def test_resume_after_interruption_gives_the_same_file(tmp_path):
    learner = agents.make("sgd")
    suite = tiny_suite()
    full = harness.evaluate(learner, suite, tmp_path / "a.json", progress=False)

    calls = []

    def stop_after_two(task, status):
        calls.append(task.task_id)
        if len(calls) == 2:
            raise KeyboardInterrupt

    out = tmp_path / "b.json"
    with pytest.raises(KeyboardInterrupt):
        harness.evaluate(learner, suite, out, progress=False, on_task=stop_after_two)
    partial = tmp_path / "b.json.partial"
    assert not out.exists() and partial.exists()
    assert len(json.loads(partial.read_text())["tasks"]) == 1  # written after the first task
    resumed_calls = []
    doc = harness.evaluate(
        learner, suite, out, progress=False, on_task=lambda t, s: resumed_calls.append(t.task_id)
    )
    assert resumed_calls == ["iris", "sum_sign"]  # digits was not run again
    assert not partial.exists()
    assert [t["raw"] for t in doc["tasks"]] == [t["raw"] for t in full["tasks"]]


@pytest.mark.slow
def test_python_learner_path_matches_the_jitted_rollout():
    jax_learner = agents.make("sgd")
    py_learner = dataclasses.replace(jax_learner, config={**jax_learner.config, "python": True})
    task = tiny_suite(tasks=("iris",)).tasks[0]
    meta = harness._task_meta_params(jax_learner, task, None)
    c1, ce1 = harness.run_task(jax_learner, task, meta, np.array([0, 2]))
    c2, ce2 = harness.run_task(py_learner, task, meta, np.array([0, 2]))
    assert np.array_equal(c1, c2)
    np.testing.assert_allclose(ce1, ce2, rtol=1e-4)


def test_missing_data_is_recorded(tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("VSML_BENCH_DATA", str(empty))
    suite = tiny_suite("ood-v0", tasks=("kmnist", "sum_sign"))
    doc = harness.evaluate(agents.make("chance"), suite, None, progress=False)
    status = {t["task_id"]: t["status"] for t in doc["tasks"]}
    assert status == {"kmnist": "not run: data missing", "sum_sign": "ok"}
    assert doc["summary"]["n_tasks_missing"] == 1


def test_scores_from_logits_handles_non_finite_predictions():
    logits = np.array([[[2.0, 0.0], [np.nan, 0.0], [0.0, 0.0]]])
    labels = np.array([[0, 0, 1]])
    correct, ce = harness._scores_from_logits(logits, labels, np.ones((1, 3), bool))
    assert correct.tolist() == [[True, False, False]]
    expected = (np.log1p(np.exp(-2.0)) + harness.INVALID_CE + np.log(2.0)) / 3
    assert ce[0] == pytest.approx(expected)


def test_learner_spec_parsing():
    assert harness.parse_learner_spec("vsml:mnist") == ("vsml", "mnist")
    assert harness.parse_learner_spec("sgd") == ("sgd", None)
    with pytest.raises(harness.LearnerSpecError):
        harness.parse_learner_spec(":x")


def test_python_learner_runs_through_the_gymnasium_env(tmp_path):
    from vsml_bench.agents.adapter import sklearn_sgd

    learner = sklearn_sgd()
    assert harness.is_python_learner(learner)
    suite = tiny_suite(tasks=("sum_sign",))
    doc = harness.evaluate(learner, suite, tmp_path / "py.json", progress=False)
    assert schema.read_results(tmp_path / "py.json") == doc
    assert doc["tasks"][0]["metrics"]["accuracy"]["value"] > 0.6  # learns sum-sign online
    records = harness.rerun_streams(doc, learner, n_streams=2)
    assert all(r["agree"] for r in records)  # seeded from the same per-stream keys


@pytest.mark.slow
def test_learner_from_a_meta_parameter_file(tmp_path):
    import hashlib

    import jax
    from flax import serialization

    from vsml_bench.protocol import TaskSpec

    base = agents.make("hebbian")
    meta = base.meta_init(jax.random.key(0), TaskSpec((4,), 3))
    meta = jax.tree.map(lambda v: v + 0.5, meta)  # not the defaults
    data = serialization.msgpack_serialize(jax.tree.map(np.asarray, meta))
    path = tmp_path / "theta.msgpack"
    path.write_bytes(data)
    card = {"meta_trained_on": ["iris"], "sha256": hashlib.sha256(data).hexdigest(), "config": {}}
    path.with_suffix(".json").write_text(json.dumps(card))

    learner = harness.build_learner(f"hebbian:{path}")
    assert learner.meta_trained_on == ("iris",)
    assert harness.meta_params_sha256(learner.meta_params) == harness.meta_params_sha256(meta)
    assert learner.config["meta_params_file"] == "theta.msgpack"
    doc = harness.evaluate(learner, tiny_suite(tasks=("iris", "wine")), None, progress=False)
    assert [t["distribution"] for t in doc["tasks"]] == ["in-distribution", "ood"]
    assert doc["learner"]["meta_params_sha256"] == harness.meta_params_sha256(meta)
    overridden = harness.build_learner(f"hebbian:{path}", meta_trained_on=("wine",))
    assert overridden.meta_trained_on == ("wine",)

    card["sha256"] = "0" * 64
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(harness.LearnerSpecError, match="does not match the sha256"):
        harness.build_learner(f"hebbian:{path}")
    path.with_suffix(".json").unlink()
    path.write_bytes(b"\xc1 not msgpack")
    with pytest.raises(harness.LearnerSpecError, match="not a Flax msgpack"):
        harness.build_learner(f"hebbian:{path}")
    with pytest.raises(harness.LearnerSpecError, match="cannot read"):
        harness.build_learner(f"hebbian:{tmp_path / 'absent.msgpack'}")
