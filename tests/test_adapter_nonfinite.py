"""A learner that predicts NaN is scored wrong on those steps; the evaluation goes on.

The functional env scores non-finite logits as wrong; the Gymnasium env refuses them. A Python
learner runs through the Gymnasium env, so the adapter and the harness must keep its NaN
predictions (scored wrong) and give the env a stand-in, as the JAX path would have scored them.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench.agents.adapter import python_learner, run_episodes
from vsml_bench.envs import INVALID_LOG_PROB
from vsml_bench.leaderboard import harness
from vsml_bench.leaderboard.suites import Task
from vsml_bench.protocol import Learner


class SometimesNaN:
    """Predicts the first C inputs as logits, but NaN (or inf) on every third step."""

    def reset(self, spec, seed):
        self.c = spec.n_classes
        self.t = 0

    def predict(self, x):
        self.t += 1
        if self.t % 3 == 2:
            return np.full(self.c, np.nan if self.t % 2 else np.inf, np.float32)
        return np.asarray(x[: self.c], np.float32)

    def update(self, x, y):
        pass


@pytest.mark.parametrize("action_type", ["logits", "discrete"])
def test_run_episodes_scores_nan_predictions_wrong_and_goes_on(action_type):
    learner = python_learner(SometimesNaN, "sometimes_nan", "test learner")
    out = run_episodes(
        "vsml_bench/OnlineIris-v0", learner, n_streams=2, stream_length=12, action_type=action_type
    )
    assert out.logits.shape == (2, 12, 3)
    bad = ~np.isfinite(out.logits).all(axis=-1)
    assert bad[:, 1::3].all() and bad.sum() == 2 * 4  # steps 1, 4, 7, 10 of each stream
    assert not out.correct[bad].any()
    wrong_reward = INVALID_LOG_PROB if action_type == "logits" else 0.0
    assert (out.rewards[bad] == np.float32(wrong_reward)).all()
    good = out.correct[~bad] == (out.logits[~bad].argmax(-1) == out.labels[~bad])
    assert good.all()


def _jax_sometimes_nan() -> Learner:
    """The same predictions as :class:`SometimesNaN`, as a pure JAX learner."""

    def meta_init(key, spec):
        return {}

    def init(meta_params, key, spec):
        return jnp.int32(0)

    def step(meta_params, t, obs):
        t = t + 1
        c = 3
        bad = jnp.where(t % 2 == 1, jnp.nan, jnp.inf)
        logits = jnp.where(t % 3 == 2, jnp.full(c, bad), obs["x"][:c])
        return t, logits

    return Learner(
        name="jax_sometimes_nan",
        meta_init=meta_init,
        init=init,
        step=step,
        config={},
        description="test learner",
        has_meta_params=False,
    )


def test_harness_scores_a_python_learners_nan_like_the_jax_path():
    task = Task(
        task_id="iris",
        dataset="iris",
        env_id="vsml_bench/OnlineIris-v0",
        n_streams=3,
        stream_length=12,
    )
    jax_learner = _jax_sometimes_nan()
    py_learner = dataclasses.replace(jax_learner, config={"python": True})
    assert harness.is_python_learner(py_learner)
    ids = np.arange(3)
    c_jax, ce_jax = harness.run_task(jax_learner, task, {}, ids)
    c_py, ce_py = harness.run_task(py_learner, task, {}, ids)  # used to raise InvalidActionError
    assert np.array_equal(c_jax, c_py)
    np.testing.assert_allclose(ce_jax, ce_py, rtol=1e-5)
    assert not c_py[:, 1::3].any()  # every NaN/inf step is wrong
    assert (ce_py > -np.log(1e-8) / 12).all()  # each stream pays the invalid-prediction loss
