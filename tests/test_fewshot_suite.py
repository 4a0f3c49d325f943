"""The few-shot suite: Lake et al.'s one-shot runs as data, fixed-episode rollouts, fewshot-v0."""

from __future__ import annotations

import dataclasses
import os
import zipfile

import jax
import numpy as np
import pytest
from fixtures_data import use_files, write_omniglot_runs_zip

from vsml_bench import agents, data, envs
from vsml_bench.data import registry
from vsml_bench.data.formats import FormatError
from vsml_bench.envs.rollouts import rollout_episodes
from vsml_bench.leaderboard import harness, schema, suites

N_RUNS, N_WAY, SIZE = 3, 4, 12


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def runs_zip(tmp_path, rng, monkeypatch):
    """A small all_runs.zip in the upstream layout, swapped into the registry."""
    spec, true_class, images = write_omniglot_runs_zip(
        tmp_path / "omniglot", N_RUNS, N_WAY, rng, size=SIZE
    )
    use_files(monkeypatch, "omniglot", spec)
    monkeypatch.setitem(
        registry.REGISTRY,
        "omniglot",
        dataclasses.replace(
            registry.REGISTRY["omniglot"],
            input_shape=(SIZE, SIZE, 1),
            n_classes={**registry.REGISTRY["omniglot"].n_classes, "all_runs": N_RUNS * N_WAY},
        ),
    )
    return tmp_path, true_class, images


def test_all_runs_reader_lays_each_run_out_as_one_episode(runs_zip):
    data_dir, true_class, images = runs_zip
    ds = data.load("omniglot", "all_runs", data_dir=data_dir)
    assert ds.x.shape == (N_RUNS * 2 * N_WAY, SIZE, SIZE, 1) and ds.n_classes == N_RUNS * N_WAY
    assert ds.info["episodes"] == {"n_runs": N_RUNS, "n_way": N_WAY}
    assert ds.info["classes"][:2] == ["run01/class01", "run01/class02"]
    for r in range(N_RUNS):
        block = ds.y[r * 2 * N_WAY : (r + 1) * 2 * N_WAY] - r * N_WAY
        np.testing.assert_array_equal(block[:N_WAY], np.arange(N_WAY))  # training, class order
        np.testing.assert_array_equal(block[N_WAY:], true_class[r])  # test items, item order
    np.testing.assert_array_equal(ds.x[0, ..., 0], images["run01/training/class01.png"])
    np.testing.assert_array_equal(ds.x[N_WAY, ..., 0], images["run01/test/item01.png"])


def test_all_runs_reader_rejects_a_run_whose_labels_do_not_match(tmp_path, rng, monkeypatch):
    spec, _, _ = write_omniglot_runs_zip(tmp_path / "omniglot", 1, 3, rng, size=SIZE)
    path = tmp_path / "omniglot" / "all_runs.zip"
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["run01/class_labels.txt"] = (
        b"run01/test/item01.png run01/training/class01.png\n"
        b"run01/test/item02.png run01/training/class01.png\n"
        b"run01/test/item03.png run01/training/class02.png\n"
    )  # class03 has no test item, class01 two
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    spec = {"all_runs.zip": dataclasses.replace(spec["all_runs.zip"], sha256=_sha(path))}
    use_files(monkeypatch, "omniglot", spec)
    with pytest.raises(FormatError, match="exactly one test item"):
        data.load("omniglot", "all_runs", data_dir=tmp_path)


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _runs_task(n_streams: int = N_RUNS) -> suites.Task:
    task = suites.get_suite("fewshot-v0").task("omniglot_runs_20way_1shot")
    kwargs = {**task.env_kwargs, "n_way": N_WAY, "image_size": 6}
    return dataclasses.replace(
        task, env_kwargs=kwargs, n_streams=n_streams, stream_length=2 * N_WAY
    )


@pytest.mark.slow
def test_fixed_episodes_run_the_published_runs_one_per_stream(runs_zip):
    data_dir, true_class, _ = runs_zip
    task = _runs_task()
    env, params = envs.make(task.env_id, data_dir=data_dir, **task.make_kwargs())
    indices, labels = harness.fixed_episodes(task, params)
    assert indices.shape == labels.shape == (N_RUNS, 2 * N_WAY)
    np.testing.assert_array_equal(labels[:, :N_WAY], np.tile(np.arange(N_WAY), (N_RUNS, 1)))
    np.testing.assert_array_equal(labels[:, N_WAY:], true_class)

    learner = agents.make("nearest_mean")
    out = rollout_episodes(params, learner, {}, jax.random.key(0), indices, labels)
    scored = np.asarray(out.scored)
    assert not scored[:, :N_WAY].any() and scored[:, N_WAY:].all()  # support, then queries
    np.testing.assert_array_equal(np.asarray(out.labels), labels)
    # 1-shot nearest class mean = nearest support image (in the env's normalised inputs).
    x = np.asarray(env.normalise(params.x, params))[indices]  # [R, 2W, D]
    dist = ((x[:, N_WAY:, None, :] - x[:, None, :N_WAY, :]) ** 2).sum(-1)
    expected = dist.argmin(-1) == true_class
    np.testing.assert_array_equal(np.asarray(out.correct)[:, N_WAY:], expected)

    # The harness scores the same thing, and a subset of streams re-runs identically.
    correct, _ = harness.run_task(learner, task, {}, data_dir=data_dir)
    np.testing.assert_array_equal(correct, expected)
    again, _ = harness.run_task(learner, task, {}, np.array([2]), data_dir=data_dir)
    np.testing.assert_array_equal(again, expected[2:])


def test_python_learners_run_the_same_episodes(runs_zip):
    data_dir, _, _ = runs_zip
    task = _runs_task(2)
    jax_correct, _ = harness.run_task(agents.make("nearest_mean"), task, {}, data_dir=data_dir)
    sk = agents.make("sklearn_sgd")
    correct, ce = harness.run_task(sk, task, {}, data_dir=data_dir)
    assert correct.shape == jax_correct.shape == (2, N_WAY) and np.isfinite(ce).all()


def test_fewshot_suite_definition():
    suite = suites.get_suite("fewshot-v0")
    ids = [t.task_id for t in suite.tasks]
    assert ids == [
        "omniglot_runs_20way_1shot",
        "omniglot_5way_1shot",
        "omniglot_5way_5shot",
        "fashion_mnist_5way_5shot",
    ]
    runs = suite.task("omniglot_runs_20way_1shot")
    assert (runs.n_streams, runs.stream_length, runs.n_scored) == (20, 40, 20)
    assert runs.episodes == "omniglot_all_runs" and runs.episodes in suites.EPISODES
    assert dict(runs.env_kwargs)["split"] == "all_runs"
    five = suite.task("omniglot_5way_5shot")
    assert dict(five.env_kwargs)["split"] == "evaluation"  # alphabets outside background
    assert (five.stream_length, five.n_scored) == (5 * (5 + 15), 5 * 15)
    assert "stream_length" not in five.make_kwargs()
    # A resized copy keeps episode lengths and never asks for more runs than published.
    small = suite.resized(n_streams=64, stream_length=7)
    assert small.task("omniglot_runs_20way_1shot").n_streams == 20
    assert small.task("omniglot_5way_5shot").stream_length == 100
    # Adding the suite changed no existing fingerprint (stored results stay valid).
    assert suites.get_suite("offline-v0").fingerprint() == (
        "c0561f6b608cb2d65329dba748657111c67a9946defef966cd22b738bc14dbd3"
    )
    assert suites.get_suite("ood-v0").fingerprint() == (
        "6d6782a72c6723979c42174cfa588c407c71f6a2e07d3903a2d953e8bdbd0f30"
    )


@pytest.mark.skipif(
    not os.environ.get("VSML_BENCH_DATA"),
    reason="VSML_BENCH_DATA is not set (point it at the shared data folder to run real-data tests)",
)
def test_real_runs_end_to_end(tmp_path):
    """Nearest mean and chance on the 20 published runs: a valid, official-shaped document."""
    suite = suites.get_suite("fewshot-v0").subset(["omniglot_runs_20way_1shot"])
    for name, low, high in (("chance", 0.05, 0.05), ("nearest_mean", 0.1, 0.4)):
        out = tmp_path / f"{name}.json"
        doc = harness.evaluate(harness.build_learner(name), suite, out, progress=False)
        (task,) = doc["tasks"]
        assert task["status"] == "ok" and task["episodes"] == "omniglot_all_runs"
        assert low <= task["metrics"]["accuracy"]["value"] <= high
        schema.read_results(out)  # validates against the JSON Schema and recomputes
