"""The baseline learners on real env streams: numerically safe on long streams, and learning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsml_bench.agents as agents
import vsml_bench.envs as envs
from vsml_bench.agents.baselines.common import run_stream
from vsml_bench.protocol import TaskSpec

BASELINES = (
    "sgd",
    "adam",
    "meta_rnn",
    "hebbian",
    "fast_weights",
    "transformer",
    "nearest_mean",
    "knn",
    "chance",
)
# Every dataset that needs no files.
EMBEDDED_ENVS = (
    "vsml_bench/OnlineDigits-v0",
    "vsml_bench/OnlineIris-v0",
    "vsml_bench/OnlineWine-v0",
    "vsml_bench/OnlineBreastCancer-v0",
    "vsml_bench/OnlineSumSign-v0",
    "vsml_bench/OnlineRandom-v0",
)


def _rollout(env_id: str, learner, n_streams: int, stream_length: int, seed: int = 0, **kwargs):
    _, params = envs.make(env_id, stream_length=stream_length, action_type="logits", **kwargs)
    spec = envs.env_for(params).task_spec(params)
    key = jax.random.key(seed)
    meta_params = learner.meta_init(jax.random.fold_in(key, 1), spec)
    # The learner is closed over (its config dict makes it unhashable as a static argument).
    run = jax.jit(lambda p, m, k: envs.rollout(p, learner, m, k, n_streams))
    return run(params, meta_params, key)


@pytest.fixture(scope="module")
def long_streams() -> dict[str, tuple[TaskSpec, jax.Array, jax.Array]]:
    """Two 2,000-step streams of every embedded dataset, drawn by the real online envs."""
    streams = {}
    for env_id in EMBEDDED_ENVS:
        env, params = envs.make(env_id, stream_length=2000)
        keys = jax.random.split(jax.random.key(0), 2)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        streams[env_id] = (env.task_spec(params), state.xs, state.labels)
    return streams


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.slow
def test_no_nan_or_inf_over_2000_steps_on_every_embedded_dataset(
    name: str, long_streams: dict[str, tuple[TaskSpec, jax.Array, jax.Array]]
) -> None:
    """Default configs (un-meta-trained meta-parameters), 2 streams of 2,000 steps per dataset.

    The streams are the envs' own (normalised inputs, permuted labels); the learner runs under
    ``jit`` + ``vmap`` over streams + ``lax.scan`` over time, on input sizes 4 to 64 and 2 to 10
    classes. All datasets go through one ``jit`` call to pay one compilation per learner.
    """
    learner = agents.make(name)
    key = jax.random.key(1)
    meta_params = {
        env_id: learner.meta_init(key, spec) for env_id, (spec, _, _) in long_streams.items()
    }
    data = {env_id: (xs, labels) for env_id, (_, xs, labels) in long_streams.items()}

    @jax.jit
    def run_all(meta_params, data):
        out = {}
        for env_id, (xs, labels) in data.items():
            spec = long_streams[env_id][0]
            keys = jax.random.split(key, xs.shape[0])
            out[env_id] = jax.vmap(
                lambda k, x, y, m=meta_params[env_id], s=spec: run_stream(learner, m, k, s, x, y)
            )(keys, xs, labels)
        return out

    for env_id, logits in run_all(meta_params, data).items():
        spec = long_streams[env_id][0]
        assert logits.shape == (2, 2000, spec.n_classes), env_id
        assert bool(jnp.all(jnp.isfinite(logits))), f"{name} produced NaN/Inf logits on {env_id}"
        log_probs = jax.nn.log_softmax(logits)  # the env's logits reward
        assert bool(jnp.all(jnp.isfinite(log_probs))), f"{name}: infinite log-probs on {env_id}"


@pytest.mark.parametrize(
    "name,config,min_accuracy",
    [
        ("sgd", {"learning_rate": 0.1}, 0.55),
        ("sgd", {"learning_rate": 0.05, "hidden": 64}, 0.45),
        ("adam", {"learning_rate": 0.01}, 0.55),
        ("nearest_mean", {}, 0.7),
        ("knn", {}, 0.7),
        ("hebbian", {}, 0.45),
        ("fast_weights", {}, 0.45),
    ],
)
@pytest.mark.slow
def test_learns_digits_online(name: str, config: dict, min_accuracy: float) -> None:
    """Online accuracy over examples 50-100 of digits streams (10 classes: chance is 0.1)."""
    result = _rollout("vsml_bench/OnlineDigits-v0", agents.make(name, **config), 32, 100)
    accuracy = float(jnp.mean(result.correct[:, 50:]))
    assert accuracy > min_accuracy, f"{name} {config}: accuracy {accuracy:.3f}"
    early = float(jnp.mean(result.correct[:, :10]))
    assert accuracy > early + 0.2, f"{name} did not improve along the stream ({early:.3f})"


def test_chance_stays_at_chance() -> None:
    result = _rollout("vsml_bench/OnlineDigits-v0", agents.make("chance"), 32, 100)
    assert abs(float(jnp.mean(result.correct)) - 0.1) < 0.05
    # Uniform logits: every reward is exactly log(1/10).
    np.testing.assert_allclose(result.rewards, np.log(0.1), rtol=1e-6)


def test_registry_builds_every_baseline() -> None:
    for name in BASELINES:
        learner = agents.make(name)
        assert learner.name == name
        assert learner.description


@pytest.mark.slow
def test_learning_rate_sweep_ranks_rates() -> None:
    from vsml_bench.agents.baselines.tune import best, sweep_learning_rate

    rows = sweep_learning_rate(
        "vsml_bench/OnlineDigits-v0", "sgd", (1e-5, 0.1), n_streams=64, stream_length=50
    )
    assert [row["learning_rate"] for row in rows] == [1e-5, 0.1]
    for row in rows:
        assert 0.0 <= row["acc_at_last"] <= 1.0 and 0.0 <= row["acc_online"] <= 1.0
    # A learning rate of 1e-5 barely moves the initial weights: near chance (0.1).
    assert rows[0]["acc_last10"] < 0.25 < rows[1]["acc_last10"]
    assert best(rows)["learning_rate"] == 0.1
