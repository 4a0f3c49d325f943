"""The functional core of the classification envs: tasks, streams, scoring, rollout, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsml_bench import data
from vsml_bench.data import transforms
from vsml_bench.envs import (
    INVALID_LOG_PROB,
    FewShotParams,
    InvalidEnvConfig,
    OnlineParams,
    UnknownEnv,
    make,
    rollout,
    stream_keys,
)
from vsml_bench.errors import UserError
from vsml_bench.protocol import Learner, TaskSpec

DIGITS = "vsml_bench/OnlineDigits-v0"
FEW_DIGITS = "vsml_bench/FewShotDigits-v0"


_JITTED: dict = {}


def jitted(env, method: str):
    """One jitted wrapper per (env class, method), so tests share compilations (eager JAX is
    slow, and a fresh ``jax.jit`` of a bound method compiles again)."""
    key = (type(env), method)
    if key not in _JITTED:
        _JITTED[key] = jax.jit(getattr(env, method))
    return _JITTED[key]


def _stream(env, params, seed):
    _, state = jitted(env, "reset")(jax.random.key(seed), params)
    return np.asarray(state.xs), np.asarray(state.labels)


def _run(env, params, state, actions):
    """Step through ``actions``; returns lists of (obs, reward, truncated, info)."""
    step = jitted(env, "step")
    out = []
    for a in actions:
        obs, state, reward, terminated, truncated, info = step(None, state, a, params)
        assert not bool(terminated)
        out.append((obs, float(reward), bool(truncated), jax.device_get(info)))
    return out, state


# ------------------------------------------------------------------------------ streams


def test_params_are_pytrees_with_static_config():
    env, params = make(DIGITS, stream_length=7)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    assert len(leaves) == 4  # x, y, class_index, class_count
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt, OnlineParams) and rebuilt.stream_length == 7
    assert env.task_spec(params) == TaskSpec(input_shape=(64,), n_classes=10)
    assert params.x.dtype == jnp.uint8  # images stay uint8 on device, normalised at reset


def test_same_seed_same_stream_different_seed_different():
    env, params = make(DIGITS, stream_length=50, projection=True, permute_pixels=True)
    xs1, y1 = _stream(env, params, 3)
    xs2, y2 = _stream(env, params, 3)
    xs3, y3 = _stream(env, params, 4)
    np.testing.assert_array_equal(xs1, xs2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(xs1, xs3)
    assert not np.array_equal(y1, y3)


def test_stream_examples_are_the_dataset_examples_with_task_labels():
    env, params = make(DIGITS, stream_length=200, n_classes=4)
    ds = data.load("digits")
    task = jitted(env, "sample_task")(jax.random.key(0), params)
    idx, labels = jitted(env, "sample_indices")(jax.random.key(1), task, params)
    classes = np.asarray(task.classes)
    assert len(set(classes.tolist())) == 4
    # Every example is of the dataset class that its task label stands for.
    np.testing.assert_array_equal(ds.y[np.asarray(idx)], classes[np.asarray(labels)])
    assert set(np.asarray(labels).tolist()) == {0, 1, 2, 3}
    # The inputs are the dataset's images, normalised by the registry statistics.
    _, state = jitted(env, "reset_to_task")(jax.random.key(1), task, params)
    mean, std, value_max = transforms.dataset_stats(ds)
    expected = transforms.normalise(ds.x[np.asarray(idx)].reshape(200, -1), mean, std, value_max)
    np.testing.assert_allclose(np.asarray(state.xs), expected, rtol=1e-5, atol=1e-5)


def test_label_permutation_and_identity():
    env, params = make(DIGITS, stream_length=100, permute_labels=False)
    sample = jitted(env, "sample_task")
    task = sample(jax.random.key(5), params)
    np.testing.assert_array_equal(np.asarray(task.classes), np.arange(10))
    _, permuted = make(DIGITS, stream_length=100)
    perms = {tuple(np.asarray(sample(jax.random.key(s), permuted).classes)) for s in range(5)}
    assert all(sorted(p) == list(range(10)) for p in perms)  # bijections
    assert len(perms) > 1
    # A subset without permutation keeps the dataset order of its classes.
    _, subset = make(DIGITS, n_classes=3, permute_labels=False)
    classes = np.asarray(sample(jax.random.key(2), subset).classes)
    assert list(classes) == sorted(classes)


@pytest.mark.slow
def test_env_random_draws_are_jax_random_draws():
    """``envs.rng`` (Threefry written out straight) returns exactly what ``jax.random`` does."""
    from vsml_bench.envs import rng

    keys = jax.random.split(jax.random.key(42), 64)
    assert rng._fast(keys[0]) and not rng._fast(keys)  # one typed threefry key at a time

    def both(fast, slow):
        a = jax.jit(jax.vmap(fast))(keys)
        b = jax.jit(jax.vmap(slow))(keys)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    for n in (1, 2, 3, 7):
        both(
            lambda k, n=n: jax.random.key_data(rng.split(k, n)),
            lambda k, n=n: jax.random.key_data(jax.random.split(k, n)),
        )
    for n in (1, 10, 101):
        both(lambda k, n=n: rng.bits(k, n), lambda k, n=n: jax.random.bits(k, (n,), jnp.uint32))
        both(lambda k, n=n: rng.uniform(k, n), lambda k, n=n: jax.random.uniform(k, (n,)))
    both(
        lambda k: rng.uniform(k, 30, -0.3, 0.7),
        lambda k: jax.random.uniform(k, (30,), minval=-0.3, maxval=0.7),
    )
    # The task transforms drawn through it are those of vsml_bench.data.transforms.
    from vsml_bench.envs.core import permutation, random_projection

    for d in (4, 64):
        both(
            lambda k, d=d: random_projection(k, d),
            lambda k, d=d: transforms.random_projection(k, d),
        )
    for n in (5, 64, 100):  # sort-free up to 64, jax.random.permutation beyond
        both(lambda k, n=n: permutation(k, n), lambda k, n=n: transforms.pixel_permutation(k, n))
    # Other keys and configurations go to jax.random itself.
    for key in (jax.random.PRNGKey(0), jax.random.key(0, impl="rbg")):
        assert not rng._fast(key)
        np.testing.assert_array_equal(
            np.asarray(rng.uniform(key, 5)), np.asarray(jax.random.uniform(key, (5,)))
        )
    jax.config.update("jax_threefry_partitionable", False)
    try:
        assert not rng._fast(jax.random.key(0))
    finally:
        jax.config.update("jax_threefry_partitionable", True)


@pytest.mark.parametrize("n", [2, 3, 10, 47, 64])
@pytest.mark.slow
def test_small_permutations_are_jax_permutations(n, monkeypatch):
    """The sort-free task permutation is ``jax.random.permutation``, so tasks are unchanged."""
    from vsml_bench.envs import rng
    from vsml_bench.envs.core import _small_permutation, sample_classes

    keys = jax.random.split(jax.random.key(n), 512)
    fast = jax.jit(jax.vmap(lambda k: _small_permutation(k, n)))(keys)
    slow = jax.jit(jax.vmap(lambda k: jax.random.permutation(k, n)))(keys)
    np.testing.assert_array_equal(np.asarray(fast), np.asarray(slow))
    k = max(1, n // 2)
    subset = jax.jit(jax.vmap(lambda key: sample_classes(key, n, k, True)))(keys)
    expected = jax.vmap(lambda key: transforms.class_subset(key, n, k))(keys)
    np.testing.assert_array_equal(np.asarray(subset), np.asarray(expected))
    # Tied sort keys keep their order, as in JAX's stable sort (ties are rare with 32 bits).
    tied = np.arange(n, dtype=np.uint32) % 3
    with monkeypatch.context() as m:
        m.setattr(rng, "bits", lambda key, n: jnp.asarray(tied))
        perm = _small_permutation(jax.random.key(0), n)
    np.testing.assert_array_equal(np.asarray(perm), np.argsort(tied, kind="stable"))


def test_online_sampling_follows_the_split_class_frequencies():
    env, params = make("vsml_bench/OnlineBreastCancer-v0", stream_length=4000, permute_labels=False)
    _, labels = _stream(env, params, 0)
    counts = np.bincount(data.load("breast_cancer").y, minlength=2)
    freq = np.bincount(labels, minlength=2) / len(labels)
    # 212 / 569 = 0.373 malignant; 4000 draws give a standard error of about 0.008.
    np.testing.assert_allclose(freq, counts / counts.sum(), atol=0.04)


def test_projection_is_a_glorot_matrix_applied_to_normalised_inputs():
    env, params = make(DIGITS, stream_length=300, projection=True)
    _, plain = make(DIGITS, stream_length=300)
    key = jax.random.key(9)
    task = jitted(env, "sample_task")(key, params)
    w = np.asarray(task.projection)
    assert w.shape == (64, 64)
    limit = np.sqrt(6 / 128)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    _, projected = jitted(env, "reset_to_task")(key, task, params)
    unprojected_task = jitted(env, "sample_task")(key, plain)
    _, raw = jitted(env, "reset_to_task")(key, unprojected_task, plain)
    np.testing.assert_allclose(
        np.asarray(projected.xs), np.asarray(raw.xs) @ w, rtol=1e-4, atol=1e-4
    )


def test_prev_label_is_the_previous_true_label_online():
    env, params = make(DIGITS, stream_length=30)
    obs, state = jitted(env, "reset")(jax.random.key(0), params)
    labels = np.asarray(state.labels)
    assert int(obs["prev_label"]) == 10  # "none" at t = 0
    steps, _ = _run(env, params, state, [0] * 30)
    for t, (obs, reward, truncated, info) in enumerate(steps):
        assert int(obs["prev_label"]) == labels[t]
        assert info["label"] == labels[t]
        assert info["scored"]
        assert reward == float(labels[t] == 0)
        assert truncated == (t == 29)


@pytest.mark.slow
def test_few_shot_support_then_queries_with_withheld_labels():
    n_way, k, q = 4, 3, 2
    env, params = make(FEW_DIGITS, n_way=n_way, k_shot=k, n_query=q)
    assert isinstance(params, FewShotParams)
    assert params.stream_length == n_way * (k + q) and params.n_support == n_way * k
    task = jitted(env, "sample_task")(jax.random.key(1), params)
    idx, labels = (
        np.asarray(a) for a in jitted(env, "sample_indices")(jax.random.key(2), task, params)
    )
    support, query = slice(0, n_way * k), slice(n_way * k, None)
    assert np.bincount(labels[support], minlength=n_way).tolist() == [k] * n_way
    assert np.bincount(labels[query], minlength=n_way).tolist() == [q] * n_way
    for c in range(n_way):  # k + q distinct examples per class: no query repeats a support one
        assert len(set(idx[labels == c].tolist())) == k + q
    ds_y = data.load("digits").y
    np.testing.assert_array_equal(ds_y[idx], np.asarray(task.classes)[labels])

    obs, state = jitted(env, "reset_to_task")(jax.random.key(2), task, params)
    steps, state = _run(env, params, state, [0] * params.stream_length)
    for t, (obs, reward, _, info) in enumerate(steps):
        if t < n_way * k:
            assert not info["scored"] and reward == 0.0
            assert int(obs["prev_label"]) == labels[t]  # support labels are revealed
        else:
            assert info["scored"] and reward == float(labels[t] == 0)
            assert int(obs["prev_label"]) == n_way  # query labels are withheld
    assert int(state.n_scored) == n_way * q
    assert np.isclose(steps[-1][3]["accuracy"], np.mean(labels[query] == 0))


def test_logits_reward_is_log_softmax_of_the_true_label():
    env, params = make(DIGITS, stream_length=5, action_type="logits")
    _, state = jitted(env, "reset")(jax.random.key(0), params)
    logits = jax.random.normal(jax.random.key(1), (10,))
    label = int(state.labels[0])
    _, _, reward, _, _, info = jitted(env, "step")(None, state, logits, params)
    assert np.isclose(float(reward), float(jax.nn.log_softmax(logits)[label]), atol=1e-6)
    assert bool(info["correct"]) == (int(jnp.argmax(logits)) == label)
    # Differentiable w.r.t. the logits: d reward / d z = onehot(y) - softmax(z).
    grad = jax.jit(jax.grad(lambda z: env.step(None, state, z, params)[2]))(logits)
    expected = jax.nn.one_hot(label, 10) - jax.nn.softmax(logits)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(expected), atol=1e-6)


def test_invalid_actions_are_scored_wrong_and_flagged():
    env, params = make(DIGITS, stream_length=5)
    reset, step = jitted(env, "reset"), jitted(env, "step")
    _, state = reset(jax.random.key(0), params)
    for bad in (-1, 10, 12345):
        _, new, reward, _, _, info = step(None, state, jnp.int32(bad), params)
        assert bool(info["invalid_action"]) and not bool(info["correct"])
        assert float(reward) == 0.0 and int(new.n_scored) == 1 and int(new.n_correct) == 0
    env, params = make(DIGITS, stream_length=5, action_type="logits")
    _, state = reset(jax.random.key(0), params)
    nan = jnp.full((10,), jnp.nan)
    _, _, reward, _, _, info = step(None, state, nan, params)
    assert bool(info["invalid_action"]) and float(reward) == pytest.approx(INVALID_LOG_PROB)
    assert not bool(info["correct"])


def test_step_after_the_end_does_not_crash_or_score():
    env, params = make(DIGITS, stream_length=3)
    _, state = jitted(env, "reset")(jax.random.key(0), params)
    steps, state = _run(env, params, state, [0, 0, 0, 0, 0])
    assert [s[2] for s in steps] == [False, False, True, True, True]
    assert [bool(s[3]["scored"]) for s in steps] == [True, True, True, False, False]
    assert int(state.t) == 3 and int(state.n_scored) == 3
    assert steps[-1][1] == 0.0


@pytest.mark.slow
def test_reset_and_step_vmap_and_jit():
    env, params = make(FEW_DIGITS, n_way=3, k_shot=2, n_query=2, projection=True)
    keys = jax.random.split(jax.random.key(0), 8)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert obs["x"].shape == (8, 64) and state.xs.shape == (8, 12, 64)
    step = jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0, None)))
    obs, state, reward, _, _, info = step(None, state, jnp.zeros(8, jnp.int32), params)
    assert reward.shape == (8,) and info["accuracy"].shape == (8,)
    # Row i of the batch is the single reset with key i.
    _, single = jitted(env, "reset")(keys[5], params)
    np.testing.assert_allclose(np.asarray(state.xs[5]), np.asarray(single.xs), atol=1e-5)


def _episode(env, params, key, actions):
    """Reset with ``key`` and step through ``actions`` in one ``lax.scan``."""

    def run(key, params, actions):
        obs, state = env.reset(key, params)

        def tick(state, action):
            obs, state, reward, terminated, truncated, info = env.step(None, state, action, params)
            return state, (obs, reward, terminated, truncated, info)

        final, outs = jax.lax.scan(tick, state, actions)
        return obs, state, final, outs

    return jax.jit(run)(key, params, actions)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "lazy"),
    [
        (DIGITS, {"stream_length": 30}, True),
        (DIGITS, {"stream_length": 30, "action_type": "logits"}, True),
        (DIGITS, {"stream_length": 30, "flatten": False, "image_size": 4}, True),
        ("vsml_bench/OnlineIris-v0", {"stream_length": 30}, True),  # float32 inputs
        (FEW_DIGITS, {"n_way": 3, "k_shot": 2, "n_query": 3}, True),
        (DIGITS, {"stream_length": 30, "projection": True}, False),  # stores its inputs
        (DIGITS, {"stream_length": 30, "permute_pixels": True}, False),
    ],
)
@pytest.mark.slow
def test_lazy_inputs_give_identical_episodes(env_id, kwargs, lazy):
    """``lazy_inputs`` holds the stream as example indices; every output is bit-identical."""
    env, params = make(env_id, **kwargs)
    lazy_params = params.replace(lazy_inputs=True)
    length, c = params.stream_length, params.n_classes
    rng = np.random.default_rng(0)
    if params.action_type == "logits":
        actions = jnp.asarray(rng.normal(size=(length + 2, c)), jnp.float32)
    else:
        actions = jnp.asarray(rng.integers(-1, c + 1, size=length + 2), jnp.int32)  # some invalid
    key = jax.random.key(3)
    stored = _episode(env, params, key, actions)
    gathered = _episode(env, lazy_params, key, actions)
    _, state, _, _ = gathered
    if lazy:
        assert state.xs is None and state.indices.shape == (length,)
    else:
        assert state.xs.shape == (length, params.input_size) and state.indices is None
    stream_inputs = jax.jit(env.stream_inputs)  # eager JAX would round x * scale + shift apart
    if lazy:  # the inputs are the dataset rows it points at, normalised
        np.testing.assert_array_equal(
            np.asarray(stream_inputs(state, lazy_params)), np.asarray(stored[1].xs)
        )
    # First observation, per-step outputs (past the end too) and final counters all agree.
    for a, b in zip(
        jax.tree_util.tree_leaves((stored[0], stored[3], stored[2].t, stored[2].n_correct)),
        jax.tree_util.tree_leaves((gathered[0], gathered[3], gathered[2].t, gathered[2].n_correct)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(
        np.asarray(stream_inputs(stored[1], params)), np.asarray(stored[1].xs)
    )


def test_online_label_search_does_not_depend_on_the_number_of_classes(monkeypatch):
    """Few classes compare every rank with every class end, many binary-search: same stream."""
    from vsml_bench.envs import online

    env, params = make(DIGITS, stream_length=200, n_classes=7)
    key = jax.random.key(5)
    task = env.sample_task(key, params)
    compare_all = jax.jit(env.sample_indices)(key, task, params)
    monkeypatch.setattr(online, "_COMPARE_ALL_MAX_CLASSES", 0)
    binary = jax.jit(env.sample_indices)(key, task, params)  # a fresh trace
    for a, b in zip(compare_all, binary, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    idx, labels = (np.asarray(a) for a in compare_all)
    classes = np.asarray(task.classes)
    np.testing.assert_array_equal(_DIGITS_Y[idx], classes[labels])
    # The documented draw, in NumPy: rank r = floor(u n) picks slot r - start[j] of class j.
    counts = np.asarray(params.class_count)[classes]
    ends = np.cumsum(counts)
    u = np.asarray(jax.random.uniform(key, (200,)))
    rank = np.minimum((u * ends[-1]).astype(np.int32), ends[-1] - 1)
    j = np.searchsorted(ends, rank, side="right")
    np.testing.assert_array_equal(labels, j)
    expected = np.asarray(params.class_index)[classes[j], rank - (ends[j] - counts[j])]
    np.testing.assert_array_equal(idx, expected)


def test_resize_and_unflattened_observations():
    env, params = make(DIGITS, image_size=4, stream_length=5)
    assert params.input_shape == (16,) and params.example_shape == (4, 4, 1)
    # 8x8 -> 4x4 area resize = 2x2 mean pooling, before normalisation.
    ds = data.load("digits")
    pooled = ds.x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(len(ds.y), 16)
    unit = np.asarray(params.x) * params.x_scale + params.x_shift
    mean, std, value_max = transforms.dataset_stats(ds)
    np.testing.assert_allclose(unit, (pooled / value_max - mean) / std, rtol=1e-4, atol=1e-4)
    env, params = make(DIGITS, flatten=False, stream_length=5)
    obs, state = jitted(env, "reset")(jax.random.key(0), params)
    assert obs["x"].shape == (8, 8, 1)
    assert env.task_spec(params).input_shape == (8, 8, 1)
    obs, *_ = jitted(env, "step")(None, state, 0, params)
    np.testing.assert_array_equal(np.asarray(obs["x"]).ravel(), np.asarray(state.xs[1]))


def test_every_embedded_dataset_makes_both_kinds():
    # Stepping every ID is test_envs_gym's check_env test; here: the prepared data.
    for name in ("Digits", "Iris", "Wine", "BreastCancer", "SumSign", "Random"):
        for kind in ("Online", "FewShot"):
            kwargs = {"stream_length": 8} if kind == "Online" else {}
            _, params = make(f"vsml_bench/{kind}{name}-v0", **kwargs)
            unit = np.asarray(params.x, np.float32) * params.x_scale + params.x_shift
            assert np.isfinite(unit).all()
            # Normalised by dataset statistics: roughly zero mean, unit variance overall.
            assert abs(unit.mean()) < 0.2 and 0.5 < unit.std() < 2.0
            assert params.x.shape[1] == np.prod(params.input_shape)
            assert int(np.asarray(params.class_count).sum()) == params.x.shape[0]


def test_synthetic_options_pass_through():
    _, params = make("vsml_bench/OnlineSumSign-v0", dim=5, n=200, stream_length=4)
    assert params.input_shape == (5,) and params.x.shape == (200, 5)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("env_id", "kwargs", "needle"),
    [
        (DIGITS, {"n_classes": 11}, "between 2 and 10"),
        (DIGITS, {"n_classes": 1}, "between 2 and 10"),
        (DIGITS, {"stream_length": 0}, "stream_length"),
        (DIGITS, {"action_type": "probabilities"}, "action_type"),
        (DIGITS, {"k_shot": 2}, "few-shot option"),
        ("vsml_bench/OnlineIris-v0", {"image_size": 4}, "image datasets only"),
        (FEW_DIGITS, {"n_way": 11}, "between 2 and 10"),
        ("vsml_bench/FewShotIris-v0", {"k_shot": 40, "n_query": 11}, "use k_shot + n_query <= 50"),
        (FEW_DIGITS, {"n_classes": 3}, "n_way"),
        (FEW_DIGITS, {"stream_length": 9}, "n_way * (k_shot + n_query)"),
        (DIGITS, {"colour": True}, "unknown option"),
    ],
)
def test_impossible_options_fail_at_make_naming_the_limit(env_id, kwargs, needle):
    with pytest.raises(InvalidEnvConfig, match=None) as err:
        make(env_id, **kwargs)
    assert needle in str(err.value)
    assert isinstance(err.value, UserError)


def test_unknown_id_and_missing_data(tmp_path, monkeypatch):
    with pytest.raises(UnknownEnv, match="vsml-bench envs"):
        make("vsml_bench/OnlineImageNet-v0")
    monkeypatch.setenv("VSML_BENCH_DATA", str(tmp_path))
    with pytest.raises(data.DatasetNotFound) as err:
        make("vsml_bench/OnlineKMNIST-v0")
    assert "vsml-bench data fetch kmnist" in str(err.value)


# ------------------------------------------------------------------------------ rollout


def online_logistic_regression() -> Learner:
    """A small real learner: softmax regression trained online by SGD with a meta-learned rate.

    The error of the previous prediction, ``softmax(z) - onehot(y)``, arrives with
    ``prev_label``; a step with ``prev_label == C`` (none) does not update.
    """

    def meta_init(key, spec):
        return {"log_lr": jnp.log(jnp.float32(0.1))}

    def init(meta_params, key, spec):
        d, c = spec.input_size, spec.n_classes
        return {
            "w": 0.01 * jax.random.normal(key, (d, c)),
            "b": jnp.zeros(c),
            "x": jnp.zeros(d),
            "z": jnp.zeros(c),
        }

    def step(meta_params, state, obs):
        c = state["z"].shape[0]
        has_label = obs["prev_label"] < c
        err = jax.nn.softmax(state["z"]) - jax.nn.one_hot(obs["prev_label"], c)
        lr = jnp.exp(meta_params["log_lr"]) * has_label
        w = state["w"] - lr * jnp.outer(state["x"], err)
        b = state["b"] - lr * err
        x = obs["x"].reshape(-1)
        z = x @ w + b
        return {"w": w, "b": b, "x": x, "z": z}, z

    return Learner("test_logreg", meta_init, init, step, has_meta_params=True)


@pytest.mark.slow
def test_rollout_shapes_and_single_stream_replay():
    env, params = make(DIGITS, stream_length=40, action_type="logits", projection=True)
    learner = online_logistic_regression()
    meta = learner.meta_init(jax.random.key(0), env.task_spec(params))
    # Learner holds a dict (config), so it is closed over rather than a static argument.
    run = jax.jit(lambda p, m, k: rollout(p, learner, m, k, 6))
    out = run(params, meta, jax.random.key(7))
    assert out.logits.shape == (6, 40, 10) and out.rewards.shape == (6, 40)
    assert out.labels.shape == (6, 40) and out.scored.shape == (6, 40) and bool(out.scored.all())
    # The learner learns: later predictions beat chance on digits.
    assert float(out.correct[:, 20:].mean()) > 0.3
    # Stream 4 alone, from its documented keys, gives the same numbers.
    replay = jax.jit(lambda p, m, k, ids: rollout(p, learner, m, k, 0, stream_ids=ids))
    alone = replay(params, meta, jax.random.key(7), jnp.array([4]))
    np.testing.assert_allclose(np.asarray(alone.logits[0]), np.asarray(out.logits[4]), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(alone.labels[0]), np.asarray(out.labels[4]))
    env_key, _ = stream_keys(jax.random.key(7), 4)
    _, state = jitted(env, "reset")(env_key, params)
    np.testing.assert_array_equal(np.asarray(state.labels), np.asarray(out.labels[4]))


@pytest.mark.slow
def test_rollout_equals_stepping_by_hand():
    env, params = make(FEW_DIGITS, n_way=3, k_shot=4, n_query=3, action_type="logits")
    learner = online_logistic_regression()
    spec = env.task_spec(params)
    meta = learner.meta_init(jax.random.key(0), spec)
    key = jax.random.key(11)
    out = jax.jit(lambda p, m, k: rollout(p, learner, m, k, 2))(params, meta, key)
    learner_step = jax.jit(learner.step)
    env_step = jitted(env, "step")
    for i in range(2):
        env_key, learner_key = stream_keys(key, i)
        obs, state = jitted(env, "reset")(env_key, params)
        lstate = learner.init(meta, learner_key, spec)
        for t in range(params.stream_length):
            lstate, logits = learner_step(meta, lstate, obs)
            obs, state, reward, _, _, info = env_step(None, state, logits, params)
            np.testing.assert_allclose(np.asarray(logits), np.asarray(out.logits[i, t]), atol=1e-5)
            assert np.isclose(float(reward), float(out.rewards[i, t]), atol=1e-5)
            assert int(info["label"]) == int(out.labels[i, t])
            assert bool(info["scored"]) == bool(out.scored[i, t])
    assert not bool(out.scored[:, :12].any()) and bool(out.scored[:, 12:].all())


@pytest.mark.slow
def test_rollout_discrete_uses_argmax_and_is_differentiable_in_logits_mode():
    learner = online_logistic_regression()
    env, discrete = make(DIGITS, stream_length=20)
    meta = learner.meta_init(jax.random.key(0), env.task_spec(discrete))
    out = jax.jit(lambda p, m, k: rollout(p, learner, m, k, 3))(discrete, meta, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(out.rewards), np.asarray(out.correct, np.float32))

    _, params = make(DIGITS, stream_length=20, action_type="logits")

    def loss(m):
        return -rollout(params, learner, m, jax.random.key(1), 3).rewards.mean()

    value_and_grad = jax.jit(jax.value_and_grad(loss))  # one compilation for all three calls
    _, grad = value_and_grad(meta)
    assert np.isfinite(float(grad["log_lr"])) and float(grad["log_lr"]) != 0.0
    eps = 1e-2
    up, _ = value_and_grad({"log_lr": meta["log_lr"] + eps})
    down, _ = value_and_grad({"log_lr": meta["log_lr"] - eps})
    assert np.isclose(float(grad["log_lr"]), float(up - down) / (2 * eps), rtol=0.05, atol=1e-4)


# --------------------------------------------------------------------------- properties

_FEW = make(FEW_DIGITS, n_way=4, k_shot=2, n_query=3, projection=True)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_few_shot_protocol_holds_for_any_seed(seed):
    env, params = _FEW
    task = jitted(env, "sample_task")(jax.random.key(seed), params)
    idx, labels = (
        np.asarray(a) for a in jitted(env, "sample_indices")(jax.random.key(seed + 1), task, params)
    )
    classes = np.asarray(task.classes)
    assert len(set(classes.tolist())) == 4 and (classes >= 0).all() and (classes < 10).all()
    n_support = params.n_support
    assert sorted(labels[:n_support].tolist()) == sorted([0, 1, 2, 3] * 2)
    assert sorted(labels[n_support:].tolist()) == sorted([0, 1, 2, 3] * 3)
    assert len(set(idx.tolist())) == len(idx)  # no example twice in an episode
    np.testing.assert_array_equal(_DIGITS_Y[idx], classes[labels])


_DIGITS_Y = data.load("digits").y
