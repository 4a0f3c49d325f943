"""Absurd stream counts are refused in one line, with the bytes they would need, before anything
is allocated: in ``rollout`` (jitted or not, streams by count or by ID), in the harness that
``evaluate`` and ``verify`` run through (JAX and Python learners), and at the CLI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench import agents, cli
from vsml_bench.envs import InvalidEnvConfig, factory, make, rollout
from vsml_bench.envs.rollouts import rollout_bytes
from vsml_bench.errors import UserError

DIGITS = "vsml_bench/OnlineDigits-v0"


@pytest.fixture(scope="module")
def digits():
    env, params = make(DIGITS, stream_length=5, action_type="logits")
    learner = agents.make("sgd")
    spec = env.task_spec(params)
    return params, learner, learner.meta_init(jax.random.key(0), spec), spec


def test_rollout_bytes_counts_env_state_learner_state_and_outputs(digits):
    params, learner, meta, spec = digits
    lazy = params.replace(lazy_inputs=True)
    state = learner.init(meta, jax.random.key(0), spec)
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    assert state_bytes > 4 * spec.input_size * spec.n_classes  # SGD holds its weights
    # Per step: float32 logits (4 C), reward and label (4 + 4), scored and correct (1 + 1).
    per_stream = factory.stream_bytes(lazy) + 5 * (4 * 10 + 10) + state_bytes
    assert rollout_bytes(lazy, learner, meta, spec, 7) == 7 * per_stream


@pytest.mark.parametrize("jitted", [False, True])
def test_a_huge_rollout_is_refused_with_the_bytes_it_would_need(digits, jitted):
    params, learner, meta, _ = digits
    n = 10**9

    def run(p, m, k):
        return rollout(p, learner, m, k, n)

    with pytest.raises(InvalidEnvConfig) as err:
        (jax.jit(run) if jitted else run)(params, meta, jax.random.key(0))
    message = str(err.value)
    assert "\n" not in message and f"a rollout of {n} stream(s) of 5 steps of sgd" in message
    assert "would need" in message and "MAX_BYTES" in message and "fewer streams" in message


def test_huge_stream_ids_are_refused_without_allocating_them(digits):
    params, learner, meta, _ = digits
    # eval_shape traces with an abstract int32[10^10]: only the check can stop it, not memory.
    ids = jax.ShapeDtypeStruct((10**10,), jnp.int32)
    with pytest.raises(InvalidEnvConfig, match="a rollout of 10000000000 stream"):
        jax.eval_shape(
            lambda i: rollout(params, learner, meta, jax.random.key(0), 0, stream_ids=i), ids
        )


def test_the_limit_is_exact(digits, monkeypatch):
    params, learner, meta, spec = digits
    need = rollout_bytes(params.replace(lazy_inputs=True), learner, meta, spec, 3)
    # Jitted (one compile, not one per op); the check runs while tracing, as for any caller.
    run = jax.jit(lambda meta: rollout(params, learner, meta, jax.random.key(0), 3))
    monkeypatch.setattr(factory, "MAX_BYTES", need)
    assert run(meta).logits.shape == (3, 5, 10)
    monkeypatch.setattr(factory, "MAX_BYTES", need - 1)
    with pytest.raises(InvalidEnvConfig, match=f"{need} bytes"):
        jax.jit(lambda meta: rollout(params, learner, meta, jax.random.key(0), 3))(meta)


@pytest.mark.parametrize("n_streams", [0, -1, True, 2.0, "3", None])
def test_n_streams_must_be_a_positive_integer(digits, n_streams):
    params, learner, meta, _ = digits
    with pytest.raises(InvalidEnvConfig, match="n_streams must be a positive integer"):
        rollout(params, learner, meta, jax.random.key(0), n_streams)


@pytest.mark.parametrize("learner_name", ["sgd", "sklearn_sgd"])
def test_the_harness_refuses_huge_tasks_before_running(learner_name, monkeypatch):
    import dataclasses

    from vsml_bench.leaderboard import harness
    from vsml_bench.leaderboard.suites import get_suite

    task = dataclasses.replace(get_suite("offline-v0").task("digits"), n_streams=10**12)
    learner = agents.make(learner_name)
    # Nothing may run: neither the jitted rollout nor the Python loop.
    monkeypatch.setattr(harness, "run_jax_streams", None)
    monkeypatch.setattr(harness, "run_python_streams", None)
    with pytest.raises(UserError) as err:
        harness.run_task(learner, task, None)
    message = str(err.value)
    assert f"the results of {10**12} stream(s) of 300 steps of task digits" in message
    assert "would need 39.0 PB" in message and "--n-streams" in message


def test_evaluate_n_streams_too_large_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["evaluate", "--learner", "sgd", "--tasks", "iris", "--out", str(out)]
    assert cli.main([*args, "--n-streams", str(10**12), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "would need" in err and "--n-streams" in err
    assert not out.exists()


def test_results_bytes_formula():
    from vsml_bench.leaderboard.harness import results_bytes

    # float32 logits + their float64 copy (12 C), labels (8), flags (2), per step.
    assert results_bytes(3, 7, 10) == 3 * 7 * 130
    assert np.int64(results_bytes(10**12, 300, 10)) == 39 * 10**15
