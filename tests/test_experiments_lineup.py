"""The lineup of the paper experiments: default learners, tuned SGD/Adam, tuning data."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench import agents, envs
from vsml_bench.agents import pretrained
from vsml_bench.experiments import lineup


def test_default_specs_are_every_shipped_set_vsml_first_then_tuned_baselines():
    specs = lineup.default_specs()
    shipped = [f"{name}:{s}" for name, sets in pretrained.shipped().items() for s in sets]
    assert specs[0].startswith("vsml:") and "vsml:mnist" in specs
    assert sorted(specs[:-2]) == sorted(shipped)
    assert specs[-2:] == ["sgd", "adam"]


def test_build_refuses_duplicates_python_learners_and_missing_meta_params():
    with pytest.raises(lineup.LineupError, match="twice"):
        lineup.build(["sgd", "sgd"])
    with pytest.raises(lineup.LineupError, match="Python learner"):
        lineup.build(["sklearn_sgd"])
    with pytest.raises(lineup.LineupError, match="meta_rnn:mnist"):
        lineup.build(["meta_rnn"])
    with pytest.raises(lineup.LineupError, match="empty"):
        lineup.build([])
    sgd, nearest = lineup.build(["sgd", "nearest_mean"])
    assert sgd.tuned == "sgd" and sgd.learner is None
    assert nearest.tuned is None and nearest.meta_params == {}
    assert sgd.describe()["grid"] == list(lineup.tuning_grid("sgd"))


def _observations(n_steps: int, dim: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n_steps, dim)).astype(np.float32)
    labels = rng.integers(0, n_classes, n_steps)
    prev = np.concatenate([[n_classes], labels[:-1]])  # "none" at the first step
    return [
        {"x": jnp.asarray(x), "prev_label": jnp.int32(p)} for x, p in zip(xs, prev, strict=True)
    ]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_gradient_learner_with_an_array_rate_is_the_registered_learner(kind):
    """The traced-rate learner the grid uses predicts what agents.make(kind, lr) predicts."""
    spec = agents.TaskSpec(input_shape=(5,), n_classes=3)
    observations = _observations(6, 5, 3)
    rates = (0.003, 0.3)

    def logits_of(learner):
        state = learner.init({}, jax.random.key(7), spec)
        out = []
        for obs in observations:
            state, logits = learner.step({}, state, obs)
            out.append(logits)
        return np.stack(out)

    for rate in rates:
        registered = logits_of(agents.make(kind, learning_rate=rate))
        traced = logits_of(lineup.gradient_learner(kind, jnp.float32(rate)))
        np.testing.assert_allclose(traced, registered, rtol=1e-5, atol=1e-6)
    # Different rates learn differently (the rate really reaches the update).
    assert not np.allclose(
        logits_of(lineup.gradient_learner(kind, jnp.float32(rates[0]))),
        logits_of(lineup.gradient_learner(kind, jnp.float32(rates[1]))),
    )


@pytest.fixture(scope="module")
def digits_params():
    _, params = envs.make("vsml_bench/OnlineDigits-v0", stream_length=12, permute_labels=False)
    return params


def _smaller_split(params, per_class: int):
    """Params whose split keeps the first ``per_class`` examples of each class (a fake test split)."""
    from vsml_bench.data import transforms

    y = np.asarray(params.y)
    rows = np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)]))
    table, counts = transforms.class_index_table(y[rows], 10)
    return params.replace(
        x=params.x[rows],
        y=jnp.asarray(y[rows]),
        class_index=jnp.asarray(table),
        class_count=jnp.asarray(counts),
        split="test",
    )


def test_tuning_params_draw_train_examples_into_the_test_task_shape(digits_params):
    test = _smaller_split(digits_params, 20)
    tune = lineup.tuning_params(digits_params, test, seed=3)
    # The test task's configuration and array shapes (so one compiled program serves both) ...
    for name in ("x", "y", "class_index", "class_count"):
        assert getattr(tune, name).shape == getattr(test, name).shape
        assert getattr(tune, name).dtype == getattr(test, name).dtype
    static = [f.name for f in dataclasses.fields(test) if f.metadata.get("static")]
    assert [getattr(tune, n) for n in static] == [getattr(test, n) for n in static]
    np.testing.assert_array_equal(tune.class_count, test.class_count)
    # ... holding train rows only, a seeded draw, not simply the first rows of each class.
    train_rows = {bytes(row) for row in np.asarray(digits_params.x)}
    assert all(bytes(row) in train_rows for row in np.asarray(tune.x))
    x_train, y_train = np.asarray(digits_params.x), np.asarray(digits_params.y)
    for i in range(0, 200, 17):  # labels stay with their images
        match = np.flatnonzero((x_train == np.asarray(tune.x)[i]).all(axis=1))
        assert int(tune.y[i]) in set(y_train[match].tolist())
    again = lineup.tuning_params(digits_params, test, seed=3)
    np.testing.assert_array_equal(again.x, tune.x)
    other = lineup.tuning_params(digits_params, test, seed=4)
    assert not np.array_equal(other.x, tune.x)
    assert not np.array_equal(np.asarray(tune.x), np.asarray(test.x))


def test_tuning_params_fall_back_to_the_train_split_when_it_is_too_small(digits_params):
    small_train = _smaller_split(digits_params, 5)
    test = _smaller_split(digits_params, 20)
    assert lineup.tuning_params(small_train, test, seed=0) is small_train


def _outputs(accuracy: float) -> lineup.StreamOutputs:
    correct = np.zeros((4, 10), bool)
    correct.flat[: round(accuracy * correct.size)] = True
    zeros = np.zeros((4, 10), np.float32)
    return lineup.StreamOutputs(np.zeros((4, 10), np.int32), correct, zeros, zeros, zeros)


def test_tune_and_run_chooses_on_the_tuning_streams_and_reports_the_test_streams(monkeypatch):
    grid = (0.1, 0.2, 0.3)
    monkeypatch.setattr(lineup, "tuning_grid", lambda kind: grid)
    by_params = {
        "tune": [_outputs(0.2), _outputs(0.9), _outputs(0.5)],  # rate 0.2 is best on tuning
        "test": [_outputs(0.1), _outputs(0.4), _outputs(0.8)],  # rate 0.3 would win on test
    }

    def fake_grid(rates, env_params, key, n_streams):
        return {kind: by_params[env_params] for kind in rates}

    monkeypatch.setattr(lineup, "run_gradient_grid", fake_grid)
    (tuned,) = lineup.tune_and_run(["sgd"], "tune", "test", None, None, 4).values()
    assert tuned.learning_rate == 0.2
    assert tuned.outputs is by_params["test"][1]
    assert tuned.train_scores == {"0.1": 0.2, "0.2": 0.9, "0.3": 0.5}
    assert tuned.test_scores["0.3"] == 0.8


def test_run_lineup_reports_a_learner_that_cannot_take_the_task_as_not_run(
    monkeypatch, digits_params
):
    from vsml_bench.envs.adaptation import AdaptationError

    def refuse(*args, **kwargs):
        raise AdaptationError("the task has 12 classes but the learner has 10 outputs")

    monkeypatch.setattr(lineup, "run_learner", refuse)
    (entrant,) = lineup.build(["nearest_mean"])
    results = lineup.run_lineup(
        [entrant], digits_params, lambda: pytest.fail("no tuning"), jax.random.key(0), 2
    )
    assert isinstance(results["nearest_mean"], lineup.NotRun)
    assert "12 classes" in results["nearest_mean"].reason
    assert lineup.outputs_of(results["nearest_mean"]) is None


def test_online_env_id():
    assert lineup.online_env_id("fashion_mnist") == "vsml_bench/OnlineFashionMNIST-v0"


@pytest.mark.slow
def test_grid_program_matches_the_registered_learners_on_env_streams(digits_params):
    """One compiled grid over rates gives each registered learner's own rollout, stream for stream."""
    key = jax.random.key(5)
    rates = {"sgd": (0.01, 0.1), "adam": (0.001, 0.01)}
    grid = lineup.run_gradient_grid(rates, digits_params, key, 3)
    for kind, kind_rates in rates.items():
        for rate, outputs in zip(kind_rates, grid[kind], strict=True):
            learner = agents.make(kind, learning_rate=rate)
            alone = lineup.run_learner(learner, {}, digits_params, key, 3)
            np.testing.assert_array_equal(outputs.labels, alone.labels)
            np.testing.assert_array_equal(outputs.correct, alone.correct)
            np.testing.assert_allclose(outputs.p_true, alone.p_true, rtol=1e-5, atol=1e-6)
    # p_true and p_pred are probabilities, p_pred the largest one.
    out = grid["sgd"][0]
    assert np.all((out.p_true > 0) & (out.p_true <= out.p_pred + 1e-6) & (out.p_pred <= 1))
    np.testing.assert_allclose(out.first_probs.sum(-1), 1.0, rtol=1e-5)
