"""The NumPy/Python learner adapter, through the real Gymnasium envs."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import vsml_bench.agents as agents
import vsml_bench.envs as envs
from vsml_bench.agents.adapter import (
    CLASS_CONFIDENCE,
    PythonLearner,
    SklearnSGDLearner,
    class_to_logits,
    python_learner,
    run_episodes,
    sklearn_sgd,
)
from vsml_bench.protocol import TaskSpec


class RecordingLearner:
    """Predicts the last label it was taught (a hard class) and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def reset(self, spec: TaskSpec, seed: int) -> None:
        self.spec, self.seed, self.last = spec, seed, 0
        self.calls.append(("reset", spec, seed))

    def predict(self, x: np.ndarray) -> int:
        self.calls.append(("predict", x.copy()))
        return self.last

    def update(self, x: np.ndarray, y: int) -> None:
        self.calls.append(("update", x.copy(), y))
        self.last = y


@pytest.mark.slow
def test_sklearn_sgd_through_the_gymnasium_env_learns() -> None:
    result = run_episodes(
        "vsml_bench/OnlineDigits-v0",
        sklearn_sgd(),
        n_streams=3,
        seed=0,
        stream_length=80,
        action_type="logits",
    )
    assert result.logits.shape == (3, 80, 10)
    assert result.labels.shape == result.rewards.shape == result.scored.shape == (3, 80)
    assert result.scored.all()
    assert np.isfinite(result.logits).all()
    # The env's reward for logits actions is log softmax(z)[y]: recompute it from the record.
    log_probs = jax.nn.log_softmax(result.logits)
    expected = np.take_along_axis(np.asarray(log_probs), result.labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(result.rewards, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result.correct, np.argmax(result.logits, -1) == result.labels)
    # 10 classes: chance is 0.1; one-example partial_fit steps learn well above it.
    assert result.correct[:, 40:].mean() > 0.35
    assert isinstance(SklearnSGDLearner(), PythonLearner)


@pytest.mark.slow
def test_jax_learner_gives_the_same_record_as_the_jitted_rollout() -> None:
    """Same stream keys: the Gymnasium path reproduces ``vsml_bench.envs.rollout``."""
    learner = agents.make("sgd", learning_rate=0.1)
    kwargs = {"stream_length": 30, "action_type": "logits"}
    via_gym = run_episodes("vsml_bench/OnlineIris-v0", learner, 3, seed=5, **kwargs)
    _, params = envs.make("vsml_bench/OnlineIris-v0", **kwargs)
    via_jax = envs.rollout(params, learner, {}, jax.random.key(5), 3)
    np.testing.assert_array_equal(via_gym.labels, via_jax.labels)
    np.testing.assert_array_equal(via_gym.scored, via_jax.scored)
    np.testing.assert_allclose(via_gym.logits, via_jax.logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(via_gym.rewards, via_jax.rewards, rtol=1e-4, atol=1e-5)


def test_update_order_and_hard_class_predictions() -> None:
    made: list[RecordingLearner] = []

    def make() -> RecordingLearner:
        made.append(RecordingLearner())
        return made[-1]

    learner = python_learner(make, "recording", "test learner")
    assert learner.config["python"] is True
    result = run_episodes(
        "vsml_bench/OnlineWine-v0", learner, 2, seed=1, stream_length=6, action_type="logits"
    )
    assert len(made) == 2
    calls = made[0].calls
    assert calls[0][0] == "reset" and calls[0][1] == TaskSpec((13,), 3)
    kinds = [c[0] for c in calls[1:]]
    # No label at t = 0, then update(x_{t-1}, y_{t-1}) before each predict(x_t).
    assert kinds == ["predict"] + ["update", "predict"] * 5
    predicted_x = [c[1] for c in calls if c[0] == "predict"]
    updates = [c for c in calls if c[0] == "update"]
    for t, (_, x, y) in enumerate(updates):
        np.testing.assert_array_equal(x, predicted_x[t])
        assert y == result.labels[0, t]
    # Hard classes become logits giving the predicted class probability CLASS_CONFIDENCE.
    probs = np.asarray(jax.nn.softmax(result.logits[0]))
    np.testing.assert_allclose(
        probs[np.arange(6), np.argmax(probs, -1)], CLASS_CONFIDENCE, rtol=1e-5
    )
    np.testing.assert_array_equal(np.argmax(result.logits[0, 1:], -1), result.labels[0, :-1])
    # Different streams get different seeds.
    assert made[0].seed != made[1].seed


def test_few_shot_query_labels_are_never_taught() -> None:
    made: list[RecordingLearner] = []
    learner = python_learner(lambda: made.append(RecordingLearner()) or made[-1], "rec", "test")
    result = run_episodes(
        "vsml_bench/FewShotDigits-v0",
        learner,
        1,
        seed=0,
        n_way=3,
        k_shot=2,
        n_query=2,
        action_type="discrete",
    )
    n_support = 3 * 2
    assert result.scored.shape == (1, 12)
    assert not result.scored[0, :n_support].any() and result.scored[0, n_support:].all()
    updates = [c for c in made[0].calls if c[0] == "update"]
    # Exactly the support labels are taught (each at the step after its example).
    assert [u[2] for u in updates] == list(result.labels[0, :n_support])
    # Discrete actions: the reward is 1 for a correct class, 0 otherwise, on scored steps.
    np.testing.assert_array_equal(result.rewards[0], result.correct[0].astype(np.float32))


def test_bad_predictions_are_reported() -> None:
    class Bad(RecordingLearner):
        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.zeros(7)

    with pytest.raises(ValueError, match="shape"):
        run_episodes(
            "vsml_bench/OnlineIris-v0", python_learner(Bad, "bad", "bad"), 1, stream_length=3
        )


def test_class_to_logits() -> None:
    z = class_to_logits(2, 5, confidence=0.8)
    p = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(p, [0.05, 0.05, 0.8, 0.05, 0.05], rtol=1e-6)
