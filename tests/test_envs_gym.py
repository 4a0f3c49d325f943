"""Gymnasium faces: registration, check_env, the OOP and vector envs, agreement with the core."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import gymnasium as gym
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import vsml_bench
from vsml_bench import data
from vsml_bench.envs import (
    ClassificationGymEnv,
    ClassificationVectorEnv,
    InvalidActionError,
    all_env_ids,
    make,
    register_envs,
    stream_keys,
)
from vsml_bench.errors import UserError

DIGITS = "vsml_bench/OnlineDigits-v0"
FEW_DIGITS = "vsml_bench/FewShotDigits-v0"
EMBEDDED = {"digits", "iris", "wine", "breast_cancer", "sum_sign", "random"}
#: File-backed datasets that ../shared/data holds; with VSML_BENCH_DATA set they must be found.
EXPECTED_REAL = {"mnist", "fashion_mnist", "notmnist", "omniglot", "cifar10_jpeg"}


def _small_kwargs(kind: str, dataset: str) -> dict:
    kwargs: dict = {"stream_length": 12} if kind == "online" else {"k_shot": 1, "n_query": 2}
    if dataset == "omniglot":
        kwargs["image_size"] = 28  # 105x105 is needlessly big for a smoke check
    return kwargs


def _quiet_check(env: gym.Env, **kwargs) -> None:
    with warnings.catch_warnings():
        # The logits action Box is unbounded by design (any finite logits are scored); the
        # observation Box is bounded, and test_envs_conventions checks it warns of nothing.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")
        check_env(env, **kwargs)


# -------------------------------------------------------------------------- registration


def test_every_design_id_is_registered():
    names = [
        "Digits",
        "MNIST",
        "FashionMNIST",
        "KMNIST",
        "EMNIST",
        "CIFAR10",
        "SVHN",
        "Omniglot",
        "NotMNIST",
        "CIFAR10JPEG",
        "SumSign",
        "Random",
        "Iris",
        "Wine",
        "BreastCancer",
    ]
    for name in names:
        for kind in ("Online", "FewShot"):
            spec = gym.spec(f"vsml_bench/{kind}{name}-v0")
            assert spec.vector_entry_point is not None
    assert len(all_env_ids()) == 2 * len(names)
    before = dict(gym.registry)
    register_envs()  # idempotent
    assert dict(gym.registry) == before
    assert set(data.names()) == {d for _, _, d in all_env_ids()}


@pytest.mark.slow
def test_import_registers_without_jax_and_module_prefix_works():
    code = (
        "import sys, vsml_bench, gymnasium as gym\n"
        "assert 'jax' not in sys.modules, 'import vsml_bench imported jax'\n"
        "assert 'vsml_bench/OnlineMNIST-v0' in gym.registry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('vsml_bench:vsml_bench/OnlineDigits-v0', stream_length=3)\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert obs['x'].shape == (64,)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# ------------------------------------------------------------------------------ check_env


@pytest.mark.parametrize(
    ("env_id", "kind", "dataset"),
    [row for row in all_env_ids() if row[2] in EMBEDDED],
    ids=lambda v: v if isinstance(v, str) and "/" in v else None,
)
def test_check_env_embedded(env_id, kind, dataset):
    env = gym.make(env_id, render_mode="rgb_array", **_small_kwargs(kind, dataset))
    _quiet_check(env.unwrapped)
    if dataset == "digits":  # the logits action space too
        env = gym.make(env_id, action_type="logits", **_small_kwargs(kind, dataset))
        _quiet_check(env.unwrapped, skip_render_check=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env_id", "kind", "dataset"),
    [row for row in all_env_ids() if row[2] not in EMBEDDED],
    ids=lambda v: v if isinstance(v, str) and "/" in v else None,
)
def test_check_env_real_data(env_id, kind, dataset):
    if not os.environ.get("VSML_BENCH_DATA"):
        pytest.skip("VSML_BENCH_DATA is not set: real datasets are not looked for")
    present = [s for s in data.spec(dataset).splits if data.is_available(dataset, s)]
    if not present:
        if dataset in EXPECTED_REAL:
            pytest.fail(f"{dataset} is not in VSML_BENCH_DATA={os.environ['VSML_BENCH_DATA']}")
        pytest.skip(f"{dataset} is not in VSML_BENCH_DATA (not part of the shared data)")
    env = gym.make(env_id, split=present[0], **_small_kwargs(kind, dataset))
    _quiet_check(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert np.isfinite(obs["x"]).all() and abs(float(obs["x"].mean())) < 5


# ------------------------------------------------------------------------------- OOP env


def _actions(rng, n, c, logits):
    return [
        rng.normal(size=c).astype(np.float32) if logits else int(rng.integers(c)) for _ in range(n)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [DIGITS, FEW_DIGITS])
@pytest.mark.parametrize("action_type", ["discrete", "logits"])
def test_oop_env_agrees_with_the_functional_core(env_id, action_type):
    kwargs = {"stream_length": 15} if env_id == DIGITS else {"n_way": 3, "k_shot": 2}
    env = gym.make(env_id, action_type=action_type, projection=True, **kwargs)
    func, params = make(env_id, action_type=action_type, projection=True, **kwargs)
    obs, _ = env.reset(seed=42)
    fobs, state = jax.jit(func.reset)(jax.random.key(42), params)
    step = jax.jit(func.step)
    actions = _actions(
        np.random.default_rng(0), params.stream_length, params.n_classes, action_type == "logits"
    )
    for t, action in enumerate(actions):
        np.testing.assert_allclose(obs["x"], np.asarray(fobs["x"]), rtol=1e-6, atol=1e-6)
        assert int(obs["prev_label"]) == int(fobs["prev_label"])
        obs, reward, terminated, truncated, info = env.step(action)
        fobs, state, freward, _, ftruncated, finfo = step(None, state, action, params)
        assert reward == pytest.approx(float(freward), abs=1e-5)
        assert not terminated and truncated == bool(ftruncated) == (t == len(actions) - 1)
        assert info["label"] == int(finfo["label"]) and info["scored"] == bool(finfo["scored"])
        assert info["correct"] == bool(finfo["correct"])
        assert info["accuracy"] == pytest.approx(float(finfo["accuracy"]))
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        env.step(actions[0])


@pytest.mark.slow
def test_oop_seeding_key_option_and_pinned_task():
    env = gym.make(DIGITS, stream_length=10, projection=True).unwrapped
    env.reset(seed=3)
    xs_a = env._xs.copy()
    env.reset()  # drawn from np_random: deterministic after a seeded reset
    xs_b = env._xs.copy()
    env.reset(seed=3)
    np.testing.assert_array_equal(env._xs, xs_a)
    env.reset()
    np.testing.assert_array_equal(env._xs, xs_b)
    assert not np.array_equal(xs_a, xs_b)

    # options={"key": k} replays stream i of a rollout.
    func, params = make(DIGITS, stream_length=10, projection=True)
    env_key, _ = stream_keys(jax.random.key(5), 2)
    env.reset(options={"key": env_key})
    _, state = jax.jit(func.reset)(env_key, params)
    np.testing.assert_allclose(env._xs, np.asarray(state.xs), atol=1e-6)

    # options={"task": 7}: the task of seed 7 (same projection), examples from the reset seed.
    env.reset(seed=1, options={"task": 7})
    task = jax.jit(func.sample_task)(jax.random.key(7), params)
    order_key = func.split_key(jax.random.key(1))[1]
    _, pinned = jax.jit(func.reset_to_task)(order_key, task, params)
    np.testing.assert_allclose(env._xs, np.asarray(pinned.xs), atol=1e-6)
    with pytest.raises(UserError, match="options\\['task'\\]"):
        env.reset(options={"task": "seven"})


@pytest.mark.parametrize(
    ("action_type", "bad", "needle"),
    [
        ("discrete", 10, "0..9"),
        ("discrete", -1, "0..9"),
        ("discrete", 2.5, "integer"),
        ("discrete", True, "integer"),
        ("discrete", np.array([1, 2]), "integer"),
        ("logits", np.zeros(9), "shape"),
        ("logits", np.full(10, np.nan), "finite"),
        ("logits", "abc", "logits"),
    ],
)
def test_oop_invalid_actions_raise_clear_errors(action_type, bad, needle):
    env = gym.make(DIGITS, stream_length=4, action_type=action_type)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=needle):
        env.unwrapped.step(bad)


def test_oop_step_before_reset_and_render():
    env = ClassificationGymEnv(dataset="digits", stream_length=3, render_mode="ansi")
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    env.step(1)
    text = env.render()
    assert "step 1/3" in text and "digits" in text
    env = ClassificationGymEnv(dataset="digits", stream_length=3, render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[0] >= 64
    with pytest.raises(UserError, match="render_mode"):
        ClassificationGymEnv(dataset="digits", render_mode="human")


def test_spec_is_json_provenance():
    env = gym.make(FEW_DIGITS, n_way=4, k_shot=2)
    text = env.spec.to_json()
    assert '"n_way": 4' in text and "FewShotDigits-v0" in text
    assert env.unwrapped.task_spec.n_classes == 4


# ------------------------------------------------------------------------------ vector env


@pytest.mark.slow
def test_make_vec_is_native_batched_and_agrees_with_the_core():
    n, length = 5, 6
    venv = gym.make_vec(DIGITS, num_envs=n, stream_length=length, action_type="logits")
    assert isinstance(venv, ClassificationVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    func, params = make(DIGITS, stream_length=length, action_type="logits")
    obs, _ = venv.reset(seed=9)
    keys = [jax.random.fold_in(jax.random.key(9), i) for i in range(n)]
    states = [jax.jit(func.reset)(k, params)[1] for k in keys]
    np.testing.assert_allclose(obs["x"], np.stack([np.asarray(s.xs[0]) for s in states]), atol=1e-6)
    assert obs in venv.observation_space
    rng = np.random.default_rng(0)
    step = jax.jit(func.step)
    for t in range(length):
        actions = rng.normal(size=(n, 10)).astype(np.float32)
        obs, reward, terminated, truncated, info = venv.step(actions)
        for i in range(n):
            _, states[i], r, *_ = step(None, states[i], actions[i], params)
            assert reward[i] == pytest.approx(float(r), abs=1e-5)
        assert info["_label"].all() and info["label"].shape == (n,)
        assert truncated.all() == (t == length - 1) and not terminated.any()
    # NEXT_STEP autoreset: the next step starts new streams with reward 0.
    obs, reward, terminated, truncated, info = venv.step(np.zeros((n, 10), np.float32))
    assert (reward == 0).all() and not truncated.any() and (obs["prev_label"] == 10).all()
    obs, reward, terminated, truncated, info = venv.step(np.zeros((n, 10), np.float32))
    assert info["scored"].all() and not truncated.any()


def test_vector_invalid_actions_are_flagged_not_fatal():
    venv = gym.make_vec(DIGITS, num_envs=4, stream_length=5)
    venv.reset(seed=0)
    _, reward, _, _, info = venv.step(np.array([-3, 99, 1.5, 0], dtype=object))
    assert info["invalid_action"].tolist() == [True, True, True, False]
    assert (reward[:3] == 0).all() and not info["correct"][:3].any()
    with pytest.raises(InvalidActionError, match="shape"):
        venv.step(np.zeros(3, int))
    lenv = gym.make_vec(DIGITS, num_envs=2, stream_length=5, action_type="logits")
    lenv.reset(seed=0)
    actions = np.zeros((2, 10), np.float32)
    actions[0, 3] = np.nan
    _, reward, _, _, info = lenv.step(actions)
    assert info["invalid_action"].tolist() == [True, False]
    assert np.isfinite(reward).all()


def test_vector_pinned_task_gives_every_stream_the_same_task():
    venv = gym.make_vec(FEW_DIGITS, num_envs=3, n_way=3, projection=True)
    venv.reset(seed=0, options={"task": 4})
    labels = np.asarray(venv.unwrapped._state.labels)
    # Same task, different example orders; the support labels cover the same 3 classes.
    assert all(set(row.tolist()) == {0, 1, 2} for row in labels)
    assert not np.array_equal(labels[0], labels[1])


def test_envs_cli_lists_ids(capsys):
    from vsml_bench.cli import main

    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "vsml_bench/OnlineDigits-v0" in out and "vsml_bench/FewShotOmniglot-v0" in out
    assert main(["envs", "--json", "--kind", "online", "--available"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all('"kind": "online"' in line for line in lines)
    assert any('"dataset": "digits"' in line for line in lines)


def test_version_string():
    assert isinstance(vsml_bench.__version__, str)
