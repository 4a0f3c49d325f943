"""Unit tests of the baseline learners: exact update rules, determinism, jit/vmap/scan shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench.agents.baselines import (
    fast_weights,
    gradient,
    hebbian,
    meta_rnn,
    nonparametric,
    transformer,
)
from vsml_bench.agents.baselines.common import run_stream
from vsml_bench.protocol import Learner, TaskSpec

# Small configs keep compilation and run time low; the factories' defaults are exercised in
# the stream tests.
LEARNERS: dict[str, Learner] = {
    "sgd": gradient.sgd(learning_rate=0.1),
    "sgd_hidden": gradient.sgd(learning_rate=0.05, hidden=16),
    "adam": gradient.adam(learning_rate=0.01),
    "adam_hidden": gradient.adam(learning_rate=0.003, hidden=16),
    "meta_rnn": meta_rnn.meta_rnn(hidden=16),
    "meta_rnn_error": meta_rnn.meta_rnn(hidden=16, feedback="error"),
    "hebbian": hebbian.hebbian(),
    "fast_weights": fast_weights.fast_weights(key_size=16, value_size=8),
    "transformer": transformer.transformer(context=8, d_model=16, n_layers=2, n_heads=2),
    "nearest_mean": nonparametric.nearest_mean(),
    "knn": nonparametric.knn(k=3, capacity=16),
    "chance": nonparametric.chance(),
}
# Learners whose initial state or meta-parameters are drawn from the key.
KEYED = ("sgd", "sgd_hidden", "adam", "adam_hidden", "meta_rnn", "fast_weights", "transformer")


def _stream(seed: int, length: int, input_size: int, n_classes: int) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(length, input_size)).astype(np.float32)
    labels = rng.integers(0, n_classes, size=length).astype(np.int32)
    return jnp.asarray(xs), jnp.asarray(labels)


def _obs(x: np.ndarray, prev_label: int) -> dict[str, jax.Array]:
    return {"x": jnp.asarray(x, jnp.float32), "prev_label": jnp.asarray(prev_label, jnp.int32)}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


# --- exact update rules -------------------------------------------------------------------------


def test_linear_sgd_step_equals_hand_computed() -> None:
    spec = TaskSpec((5,), 3)
    learner = gradient.sgd(learning_rate=0.3)
    state = learner.init({}, jax.random.key(7), spec)
    w0, b0 = np.asarray(state.params["w"], np.float64), np.asarray(state.params["b"], np.float64)
    rng = np.random.default_rng(0)
    x0, x1 = rng.normal(size=5), rng.normal(size=5)

    state, z0 = learner.step({}, state, _obs(x0, spec.n_classes))  # no label yet: no update
    np.testing.assert_allclose(z0, x0 @ w0 + b0, rtol=1e-5, atol=1e-6)
    state, z1 = learner.step({}, state, _obs(x1, 2))  # label of x0 arrives: one SGD step

    err = _softmax(x0 @ w0 + b0) - np.eye(3)[2]  # dL/dz for cross-entropy
    w1 = w0 - 0.3 * np.outer(x0, err)
    b1 = b0 - 0.3 * err
    np.testing.assert_allclose(state.params["w"], w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.params["b"], b1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z1, x1 @ w1 + b1, rtol=1e-5, atol=1e-5)


def test_hidden_layer_sgd_step_equals_hand_computed() -> None:
    spec = TaskSpec((4,), 3)
    learner = gradient.sgd(learning_rate=0.2, hidden=6)
    state = learner.init({}, jax.random.key(3), spec)
    p = {k: np.asarray(v, np.float64) for k, v in state.params.items()}
    rng = np.random.default_rng(1)
    x0, x1 = rng.normal(size=4), rng.normal(size=4)
    state, _ = learner.step({}, state, _obs(x0, spec.n_classes))
    state, z1 = learner.step({}, state, _obs(x1, 0))

    pre = x0 @ p["w1"] + p["b1"]
    h = np.maximum(pre, 0.0)
    dz = _softmax(h @ p["w2"] + p["b2"]) - np.eye(3)[0]
    dpre = (p["w2"] @ dz) * (pre > 0)
    new = {
        "w1": p["w1"] - 0.2 * np.outer(x0, dpre),
        "b1": p["b1"] - 0.2 * dpre,
        "w2": p["w2"] - 0.2 * np.outer(h, dz),
        "b2": p["b2"] - 0.2 * dz,
    }
    for name, value in new.items():
        np.testing.assert_allclose(state.params[name], value, rtol=1e-5, atol=1e-6)
    z_expected = np.maximum(x1 @ new["w1"] + new["b1"], 0.0) @ new["w2"] + new["b2"]
    np.testing.assert_allclose(z1, z_expected, rtol=1e-5, atol=1e-5)


def test_first_adam_step_equals_hand_computed() -> None:
    spec = TaskSpec((3,), 2)
    lr, eps = 0.05, 1e-8
    learner = gradient.adam(learning_rate=lr, eps=eps)
    state = learner.init({}, jax.random.key(11), spec)
    w0, b0 = np.asarray(state.params["w"], np.float64), np.asarray(state.params["b"], np.float64)
    x0 = np.array([0.5, -1.0, 2.0])
    state, _ = learner.step({}, state, _obs(x0, spec.n_classes))
    state, _ = learner.step({}, state, _obs(np.zeros(3), 1))
    g_w = np.outer(x0, _softmax(x0 @ w0 + b0) - np.eye(2)[1])
    # Bias-corrected first step: m̂ = g, v̂ = g², so Δ = −lr · g / (|g| + eps).
    np.testing.assert_allclose(
        state.params["w"], w0 - lr * g_w / (np.abs(g_w) + eps), rtol=1e-5, atol=1e-6
    )
    assert int(state.opt_state[0].count) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sgd", "adam_hidden", "hebbian", "fast_weights", "nearest_mean"])
def test_unlabelled_step_learns_nothing(name: str) -> None:
    """prev_label == n_classes ("none", e.g. a few-shot query) leaves the learned state as is."""
    learner = LEARNERS[name]
    spec = TaskSpec((6,), 4)
    key = jax.random.key(0)
    meta_params = learner.meta_init(key, spec)
    state = learner.init(meta_params, key, spec)
    x = np.linspace(-1, 1, 6)
    state, _ = learner.step(meta_params, state, _obs(x, spec.n_classes))
    before = jax.tree.leaves(state)
    state, z_a = learner.step(meta_params, state, _obs(x, spec.n_classes))
    after = jax.tree.leaves(state)
    # Only the remembered input (identical here) may change; everything learned must not.
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    _, z_b = learner.step(meta_params, state, _obs(x, spec.n_classes))
    np.testing.assert_array_equal(z_a, z_b)


def test_hebbian_oja_rule_by_hand() -> None:
    spec = TaskSpec((3,), 2)
    learner = hebbian.hebbian(learning_rate=0.25, decay=0.1, scale=2.0)
    meta_params = learner.meta_init(jax.random.key(0), spec)
    state = learner.init(meta_params, jax.random.key(0), spec)
    x0, x1, x2 = np.array([1.0, 2.0, -1.0]), np.array([0.0, 1.0, 1.0]), np.array([2.0, 0.0, 1.0])
    state, _ = learner.step(meta_params, state, _obs(x0, 2))
    state, _ = learner.step(meta_params, state, _obs(x1, 1))
    state, z = learner.step(meta_params, state, _obs(x2, 1))
    w = np.zeros((2, 3))
    for x_prev in (x0, x1):  # both labelled 1
        u = np.eye(2)[1]
        w = 0.9 * w + 0.25 * (np.outer(u, x_prev) - (u * u)[:, None] * w)
    np.testing.assert_allclose(state.w, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, 2.0 * (w @ x2) / 3, rtol=1e-5, atol=1e-6)


def test_fast_weight_delta_rule_overwrites_a_key() -> None:
    """With write strength β the memory's answer for a key moves a fraction β to the new value."""
    spec = TaskSpec((5,), 3)
    learner = fast_weights.fast_weights(key_size=8, value_size=4, write_strength=0.75)
    meta_params = learner.meta_init(jax.random.key(1), spec)
    state = learner.init(meta_params, jax.random.key(1), spec)
    x = np.array([0.3, -0.2, 1.0, 0.5, -1.5])
    key = fast_weights.input_key(meta_params, jnp.asarray(x, jnp.float32))
    for prev_label in (spec.n_classes, 2, 2):  # x seen three times, labelled 2 twice
        state, _ = learner.step(meta_params, state, _obs(x, prev_label))
    # Two delta-rule writes of (k, v₂) into an empty memory with a unit-norm key leave
    # M k = (1 − (1 − β)²) v₂ = 0.9375 v₂.
    value = np.asarray(meta_params["values"][2])
    np.testing.assert_allclose(state.memory @ key, 0.9375 * value, rtol=1e-4, atol=1e-5)


def test_knn_and_nearest_mean_by_hand() -> None:
    spec = TaskSpec((2,), 3)
    points = [([0.0, 0.0], 0), ([0.2, 0.0], 0), ([5.0, 5.0], 1), ([5.2, 5.0], 1), ([0.1, 0.1], 0)]
    query = [4.9, 5.1]
    xs = np.array([p for p, _ in points] + [query], np.float32)
    labels = np.array([y for _, y in points] + [0], np.int32)
    for learner in (nonparametric.knn(k=3, capacity=8), nonparametric.nearest_mean()):
        logits = run_stream(learner, {}, jax.random.key(0), spec, jnp.asarray(xs), labels)
        assert int(jnp.argmax(logits[-1])) == 1
        assert bool(jnp.all(jnp.isfinite(logits)))
    knn_logits = run_stream(
        nonparametric.knn(k=3, capacity=8), {}, jax.random.key(0), spec, jnp.asarray(xs), labels
    )
    # 3 nearest of the query: two of class 1, one of class 0; the nearest one is class 1.
    np.testing.assert_allclose(knn_logits[-1], [1.0, 2.0 + 0.5 / 3, 0.0], atol=1e-6)
    np.testing.assert_allclose(knn_logits[0], 0.0)  # nothing stored yet: uniform
    # Fewer than k stored: only the stored examples vote (t=1: one, t=2: two, both class 0).
    np.testing.assert_allclose(knn_logits[1], [1.0 + 0.5 / 3, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(knn_logits[2], [2.0 + 0.5 / 3, 0.0, 0.0], atol=1e-6)


def test_knn_ring_buffer_keeps_the_latest_examples() -> None:
    spec = TaskSpec((1,), 2)
    learner = nonparametric.knn(k=1, capacity=2)
    # Class 0 at x=0 is seen first, then overwritten by two class-1 examples far away.
    xs = jnp.asarray([[0.0], [10.0], [11.0], [0.0]], jnp.float32)
    labels = jnp.asarray([0, 1, 1, 0], jnp.int32)
    logits = run_stream(learner, {}, jax.random.key(0), spec, xs, labels)
    assert int(jnp.argmax(logits[-1])) == 1


@pytest.mark.slow
def test_transformer_cache_size_does_not_change_results_within_context() -> None:
    """While t < context the KV ring buffer is full causal attention: its size is irrelevant."""
    spec = TaskSpec((5,), 3)
    small = transformer.transformer(context=12, d_model=16, n_heads=2)
    large = transformer.transformer(context=40, d_model=16, n_heads=2)
    meta_params = small.meta_init(jax.random.key(0), spec)
    xs, labels = _stream(0, 12, 5, 3)
    a = run_stream(small, meta_params, jax.random.key(1), spec, xs, labels)
    b = run_stream(large, meta_params, jax.random.key(1), spec, xs, labels)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # Past the context the oldest steps are forgotten, so the results differ.
    xs, labels = _stream(0, 20, 5, 3)
    a = run_stream(small, meta_params, jax.random.key(1), spec, xs, labels)
    b = run_stream(large, meta_params, jax.random.key(1), spec, xs, labels)
    assert not np.allclose(a[-1], b[-1])


# A context shorter than the stream covers the banded mask; the full one is slow-only.
@pytest.mark.parametrize("context", [8, pytest.param(40, marks=pytest.mark.slow)])
def test_transformer_unroll_equals_stepping(context: int) -> None:
    """The whole-stream forward ``rollout`` uses gives the step-by-step logits and scores,
    within the context (full causal attention) and past it (the last ``context`` steps)."""
    import dataclasses

    from vsml_bench import envs
    from vsml_bench.envs import rollout

    env, env_params = envs.make("vsml_bench/OnlineDigits-v0", stream_length=20, n_classes=4)
    parallel = transformer.transformer(context=context, d_model=16, n_heads=2)
    stepped = dataclasses.replace(parallel, unroll=None)
    spec = env.task_spec(env_params)
    # Jitted as every caller of ``rollout`` does: eagerly, Flax's init and the unrolled forward
    # dispatch (and compile) op by op.
    meta_params = jax.jit(lambda key: parallel.meta_init(key, spec))(jax.random.key(0))
    a = jax.jit(lambda mp: rollout(env_params, parallel, mp, jax.random.key(3), 3))(meta_params)
    b = jax.jit(lambda mp: rollout(env_params, stepped, mp, jax.random.key(3), 3))(meta_params)
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.rewards, b.rewards, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.correct, b.correct)


# --- determinism, shapes, meta-gradients --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_deterministic_given_key(name: str) -> None:
    learner = LEARNERS[name]
    spec = TaskSpec((7,), 4)
    xs, labels = _stream(1, 12, 7, 4)

    def run(seed: jax.Array) -> jax.Array:
        key = jax.random.key(seed)
        meta_params = learner.meta_init(key, spec)
        return run_stream(learner, meta_params, jax.random.fold_in(key, 1), spec, xs, labels)

    # Two independent traces (distinct jitted wrappers): no hidden state, no trace-time randomness.
    run_a = jax.jit(lambda seed: run(seed))
    run_b = jax.jit(lambda seed: run(seed))
    first = run_a(0)
    np.testing.assert_array_equal(first, run_b(0))
    if name in KEYED:
        assert not np.array_equal(first, run_a(1)), "a different key must change the learner"


@pytest.mark.parametrize(
    "input_shape,n_classes",
    [pytest.param((8, 8, 1), 10, marks=pytest.mark.slow), ((13,), 3)],
)
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_jit_vmap_scan(name: str, input_shape: tuple[int, ...], n_classes: int) -> None:
    """Digits-sized images and tabular inputs, 3 streams of 10 steps (more class counts and sizes
    run in the 2,000-step stream tests on every embedded dataset)."""
    learner = LEARNERS[name]
    spec = TaskSpec(input_shape, n_classes)
    n_streams, length = 3, 10
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(n_streams, length, *input_shape)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, n_classes, size=(n_streams, length)), jnp.int32)
    meta_params = learner.meta_init(jax.random.key(0), spec)
    keys = jax.random.split(jax.random.key(1), n_streams)

    @jax.jit
    def run_all(meta_params, keys, xs, labels):
        return jax.vmap(lambda k, x, y: run_stream(learner, meta_params, k, spec, x, y))(
            keys, xs, labels
        )

    logits = run_all(meta_params, keys, xs, labels)
    assert logits.shape == (n_streams, length, n_classes)
    assert logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))
    if n_classes != 10:
        return
    # vmap over streams equals running each stream alone.
    alone = run_stream(learner, meta_params, keys[1], spec, xs[1], labels[1])
    np.testing.assert_allclose(logits[1], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("meta_rnn", marks=pytest.mark.slow),
        "hebbian",
        "fast_weights",
        pytest.param("transformer", marks=pytest.mark.slow),
    ],
)
def test_meta_gradient_is_finite_and_nonzero(name: str) -> None:
    """Learners with meta-parameters must be differentiable through the stream (meta-trainers)."""
    learner = LEARNERS[name]
    assert learner.has_meta_params
    spec = TaskSpec((6,), 3)
    xs, labels = _stream(2, 6, 6, 3)
    meta_params = learner.meta_init(jax.random.key(0), spec)

    def meta_loss(meta_params):
        logits = run_stream(learner, meta_params, jax.random.key(1), spec, xs, labels)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], -1))

    grads = jax.grad(meta_loss)(meta_params)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0.0


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_hand_designed_learners_have_no_meta_params(name: str) -> None:
    learner = LEARNERS[name]
    meta_params = learner.meta_init(jax.random.key(0), TaskSpec((4,), 2))
    assert (jax.tree.leaves(meta_params) != []) == learner.has_meta_params


def test_factories_have_json_configs_and_descriptions() -> None:
    import json

    factories = [
        gradient.sgd,
        gradient.adam,
        meta_rnn.meta_rnn,
        hebbian.hebbian,
        fast_weights.fast_weights,
        transformer.transformer,
        nonparametric.nearest_mean,
        nonparametric.knn,
        nonparametric.chance,
    ]
    for factory in factories:
        learner = factory()
        assert learner.name == factory.__name__
        assert learner.description and "\n" not in learner.description
        assert json.loads(json.dumps(dict(learner.config))) == dict(learner.config)
        # The config rebuilds the same learner.
        assert factory(**learner.config).config == learner.config


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="k <= capacity"):
        nonparametric.knn(k=10, capacity=4)
    with pytest.raises(ValueError, match="feedback"):
        meta_rnn.meta_rnn(feedback="reward")
    with pytest.raises(ValueError, match="divisible"):
        transformer.transformer(d_model=10, n_heads=4)
