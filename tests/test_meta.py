"""Meta-optimisers, checkpoints and the training loop, on a tiny learner and a tiny stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_meta_toy import SPEC, TOY_LEARNER, toy_evaluate, toy_objective

from vsml_bench.agents.meta import checkpoint as ckpt
from vsml_bench.agents.meta.bptt import (
    bptt_gradient,
    bptt_loss,
    remat_learner,
    truncate_learner,
)
from vsml_bench.agents.meta.es import centered_ranks, es_gradient
from vsml_bench.agents.meta.loop import RunError, TrainConfig, train
from vsml_bench.agents.meta.objective import Objective, TaskGroup, allocate

TESTS = Path(__file__).parent


# --- ES ---------------------------------------------------------------------------------------


def _quadratic_objective(centre):
    """L(θ; k) = ½‖θ − c − u_k‖² with a task offset u_k ~ N(0, 0.1²): E ∇L = θ − c."""

    def loss_fn(params, key, data):
        offset = 0.1 * jax.random.normal(key, centre.shape)
        return 0.5 * jnp.sum((params["theta"] - centre - offset) ** 2)

    return Objective.single(loss_fn)


def test_es_matches_analytic_gradient_in_expectation():
    centre = jnp.array([1.0, -2.0, 0.5, 3.0])
    params = {"theta": jnp.array([0.0, 0.0, 1.0, -1.0])}
    estimate = jax.jit(
        lambda p, k: es_gradient(_quadratic_objective(centre), p, k, n_pairs=20000, sigma=0.05)
    )(params, jax.random.key(0))
    expected = params["theta"] - centre
    # Standard error per coordinate ≈ ‖θ − c‖ / sqrt(n) ≈ 0.03.
    np.testing.assert_allclose(estimate.grad["theta"], expected, atol=0.15)
    cosine = jnp.dot(estimate.grad["theta"], expected) / (
        jnp.linalg.norm(estimate.grad["theta"]) * jnp.linalg.norm(expected)
    )
    assert cosine > 0.99


@pytest.mark.slow
def test_es_rank_shaping_points_downhill():
    centre = jnp.array([1.0, -2.0, 0.5, 3.0])
    params = {"theta": jnp.zeros(4)}
    estimate = es_gradient(
        _quadratic_objective(centre),
        params,
        jax.random.key(1),
        n_pairs=512,
        sigma=0.05,
        rank_shaping=True,
    )
    expected = params["theta"] - centre
    cosine = jnp.dot(estimate.grad["theta"], expected) / (
        jnp.linalg.norm(estimate.grad["theta"]) * jnp.linalg.norm(expected)
    )
    assert cosine > 0.9


def test_centered_ranks():
    ranks = centered_ranks(jnp.array([3.0, -1.0, 10.0, 0.0, 2.0]))
    np.testing.assert_allclose(ranks, [0.25, -0.5, 0.5, -0.25, 0.0])


@pytest.mark.slow
def test_antithetic_pairs_share_their_task_and_pairs_differ():
    # The loss depends on the task key only: a pair that shared its task has f⁺ == f⁻.
    def loss_fn(params, key, data):
        return jax.random.uniform(key) + 0.0 * params["theta"].sum()

    objective = Objective((TaskGroup("a", loss_fn, 0.5), TaskGroup("b", loss_fn, 0.5)))
    estimate = es_gradient(
        objective, {"theta": jnp.zeros(3)}, jax.random.key(0), n_pairs=16, sigma=0.1
    )
    np.testing.assert_array_equal(estimate.loss_plus, estimate.loss_minus)
    assert len(np.unique(np.asarray(estimate.loss_plus))) == 16  # each pair its own task
    np.testing.assert_array_equal(estimate.grad["theta"], 0.0)


@pytest.mark.slow
def test_es_step_on_toy_learner_lowers_the_meta_loss():
    objective = toy_objective()
    params = TOY_LEARNER.meta_init(jax.random.key(0), SPEC)
    optimizer = optax.adam(0.05)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, key):
        est = es_gradient(objective, params, key, n_pairs=32, sigma=0.05)
        updates, opt_state = optimizer.update(est.grad, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    loss = jax.jit(lambda p: bptt_loss(objective, p, jax.random.key(99), n_tasks=256))
    before = loss(params)
    for t in range(40):
        params, opt_state = step(params, opt_state, jax.random.key(t))
    assert loss(params) < before - 0.05


def test_allocate_splits_by_share_in_granules():
    assert allocate(64, [0.5, 0.5]) == [32, 32]
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(8, [0.9, 0.1], granule=2) == [6, 2]
    assert sum(allocate(7, [0.2, 0.3, 0.5])) == 7
    with pytest.raises(ValueError, match="multiple of the device count"):
        allocate(7, [1.0], granule=2)


# --- BPTT -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bptt_gradient_equals_finite_difference():
    objective = toy_objective()
    params = TOY_LEARNER.meta_init(jax.random.key(3), SPEC)
    key = jax.random.key(4)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        loss, grad = bptt_gradient(objective, params64, key, n_tasks=4)
        flat, unravel = jax.flatten_util.ravel_pytree(params64)
        flat_grad, _ = jax.flatten_util.ravel_pytree(grad)
        direction = jax.random.normal(jax.random.key(5), flat.shape, jnp.float64)
        eps = 1e-5
        f = lambda v: bptt_loss(objective, unravel(v), key, n_tasks=4)  # noqa: E731
        numeric = (f(flat + eps * direction) - f(flat - eps * direction)) / (2 * eps)
        assert np.isfinite(loss)
        np.testing.assert_allclose(jnp.dot(flat_grad, direction), numeric, rtol=1e-5)


@pytest.mark.slow
def test_remat_and_long_truncation_match_full_backprop():
    params = TOY_LEARNER.meta_init(jax.random.key(3), SPEC)
    key = jax.random.key(4)
    _, full = bptt_gradient(toy_objective(), params, key, n_tasks=4)
    _, remat = bptt_gradient(toy_objective(remat_learner(TOY_LEARNER)), params, key, n_tasks=4)
    _, long_cut = bptt_gradient(
        toy_objective(truncate_learner(TOY_LEARNER, 100)), params, key, n_tasks=4
    )
    _, short_cut = bptt_gradient(
        toy_objective(truncate_learner(TOY_LEARNER, 2)), params, key, n_tasks=4
    )
    for other in (remat, long_cut):
        for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(other), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # Cutting every 2 steps drops the long-range terms: the initial weights' gradient changes.
    assert not np.allclose(full["w0"], short_cut["w0"], rtol=1e-3)


def test_truncation_keeps_the_forward_pass():
    params = TOY_LEARNER.meta_init(jax.random.key(3), SPEC)
    key = jax.random.key(4)
    a = bptt_loss(toy_objective(), params, key, n_tasks=4)
    b = bptt_loss(toy_objective(truncate_learner(TOY_LEARNER, 3)), params, key, n_tasks=4)
    np.testing.assert_allclose(a, b, rtol=1e-6)


# --- checkpoints and the loop -----------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path):
    params = TOY_LEARNER.meta_init(jax.random.key(0), SPEC)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    opt_state = optimizer.init(params)
    _, opt_state = optimizer.update(params, opt_state, params)
    key = jax.random.key(42)
    state = {
        "step": np.int64(7),
        "key_data": jax.random.key_data(key),
        "meta_params": params,
        "opt_state": opt_state,
    }
    ckpt.save(tmp_path / "c.msgpack", state)
    target = {
        "step": np.int64(0),
        "key_data": jax.random.key_data(jax.random.key(0)),
        "meta_params": TOY_LEARNER.meta_init(jax.random.key(1), SPEC),
        "opt_state": optimizer.init(params),
    }
    restored = ckpt.load(tmp_path / "c.msgpack", target)
    assert int(restored["step"]) == 7
    assert jax.random.wrap_key_data(jnp.asarray(restored["key_data"])) == key
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(restored["opt_state"]) == jax.tree.structure(opt_state)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def _tiny_config(**kw):
    base = dict(
        method="es",
        steps=6,
        n_pairs=4,
        sigma=0.05,
        learning_rate=0.05,
        eval_every=2,
        checkpoint_every=2,
        seed=3,
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("method", ["es", "bptt"])
@pytest.mark.slow
def test_resumed_run_is_bit_identical(tmp_path, method):
    config = _tiny_config(method=method, n_tasks=4)
    kw = dict(evaluate=toy_evaluate(), progress=False)
    whole = train(TOY_LEARNER, SPEC, toy_objective(), config, tmp_path / "whole", **kw)
    # Killed after step 3 (checkpoint written at 2 and at 3), then resumed.
    train(TOY_LEARNER, SPEC, toy_objective(), config, tmp_path / "split", stop_after=3, **kw)
    split = train(TOY_LEARNER, SPEC, toy_objective(), config, tmp_path / "split", resume=True, **kw)
    assert whole["step"] == split["step"] == 6
    for a, b in zip(
        jax.tree.leaves(whole["meta_params"]), jax.tree.leaves(split["meta_params"]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    lines = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3, 4, 5, 6]
    assert [x["step"] for x in lines if "eval" in x] == [2, 4, 6]
    assert (tmp_path / "split" / "best.msgpack").exists()


def test_run_folder_errors(tmp_path):
    config = _tiny_config()
    with pytest.raises(RunError, match="no checkpoint to resume"):
        train(
            TOY_LEARNER, SPEC, toy_objective(), config, tmp_path / "a", resume=True, progress=False
        )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(RunError, match="already holds a run"):
        train(TOY_LEARNER, SPEC, toy_objective(), config, tmp_path / "b", progress=False)
    train(TOY_LEARNER, SPEC, toy_objective(), config, tmp_path / "c", progress=False, stop_after=2)
    with pytest.raises(RunError, match="different configuration"):
        train(
            TOY_LEARNER,
            SPEC,
            toy_objective(),
            _tiny_config(sigma=0.1),
            tmp_path / "c",
            resume=True,
            progress=False,
        )


_KILL_SCRIPT = """
import sys, os, signal
sys.path.insert(0, {tests!r})
from test_meta_toy import SPEC, TOY_LEARNER, toy_objective
from vsml_bench.agents.meta.loop import TrainConfig, train
config = TrainConfig(method="es", steps=int(sys.argv[2]), n_pairs=4, learning_rate=0.05,
                     eval_every=0, checkpoint_every=1, seed=5)
kill_at = int(sys.argv[3])
import vsml_bench.agents.meta.checkpoint as ckpt
original = ckpt.save
def save(path, state, **kwargs):
    original(path, state, **kwargs)
    if int(state["step"]) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # die right after a checkpoint, mid-run
ckpt.save = save
train(TOY_LEARNER, SPEC, toy_objective(), config, sys.argv[1], resume=sys.argv[4] == "1",
      progress=False)
"""


@pytest.mark.slow
def test_killed_process_resumes_bit_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(TESTS)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def run(out, kill_at, resume):
        return subprocess.run(
            [sys.executable, str(script), str(out), "5", str(kill_at), resume],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    killed = run(tmp_path / "k", 2, "0")
    assert killed.returncode == -9, killed.stderr
    assert run(tmp_path / "k", -1, "1").returncode == 0
    assert run(tmp_path / "u", -1, "0").returncode == 0
    target = {"meta_params": TOY_LEARNER.meta_init(jax.random.key(0), SPEC)}
    a = ckpt.tree_from_bytes(target, (tmp_path / "k" / "checkpoint.msgpack").read_bytes())
    b = ckpt.tree_from_bytes(target, (tmp_path / "u" / "checkpoint.msgpack").read_bytes())
    for x, y in zip(
        jax.tree.leaves(a["meta_params"]), jax.tree.leaves(b["meta_params"]), strict=True
    ):
        np.testing.assert_array_equal(x, y)


# --- devices ----------------------------------------------------------------------------------

_SHARD_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from test_meta_toy import SPEC, TOY_LEARNER, toy_objective
from vsml_bench.agents.meta.es import es_gradient, population_mesh
from vsml_bench.agents.meta.bptt import bptt_gradient
assert jax.device_count() == 2, jax.devices()
objective = toy_objective(groups=2)
params = TOY_LEARNER.meta_init(jax.random.key(0), SPEC)
key = jax.random.key(1)
mesh = population_mesh()
es = lambda m: jax.jit(lambda p, k: es_gradient(objective, p, k, n_pairs=8, sigma=0.05, mesh=m))
one, two = es(None)(params, key), es(mesh)(params, key)
for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
bp = lambda m: jax.jit(lambda p, k: bptt_gradient(objective, p, k, n_tasks=4, mesh=m))
for a, b in zip(jax.tree.leaves(bp(None)(params, key)), jax.tree.leaves(bp(mesh)(params, key))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
print("sharded ok", len(two.loss_plus.sharding.device_set))
"""


@pytest.mark.slow
def test_sharded_step_equals_one_device_step(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(textwrap.dedent(_SHARD_SCRIPT.format(tests=str(TESTS))))
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "sharded ok" in result.stdout
