"""Gymnasium conventions users rely on: worker processes, pickling, check_env, dtypes, spec."""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vsml_bench
from vsml_bench.envs import ForkedProcessError, all_env_ids, make
from vsml_bench.envs.gym_env import input_bounds

DIGITS = "vsml_bench/OnlineDigits-v0"
FEW_DIGITS = "vsml_bench/FewShotDigits-v0"
EMBEDDED = {"digits", "iris", "wine", "breast_cancer", "sum_sign", "random"}


def _small(kind: str) -> dict:
    return {"stream_length": 12} if kind == "online" else {"k_shot": 1, "n_query": 2}


# ------------------------------------------------------------------------ worker processes


def test_env_made_in_a_forked_child_raises_instead_of_hanging():
    gym.make(DIGITS, stream_length=3).reset(seed=0)  # JAX has run in this process
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # JAX's own warning about fork
        pid = os.fork()
    if pid == 0:  # the child: report what making an env does, then leave at once
        os.close(read_end)
        try:
            gym.make(DIGITS, stream_length=3)
            message = b"made"
        except ForkedProcessError as error:
            message = b"ForkedProcessError: " + str(error).encode()
        except BaseException as error:
            message = repr(error).encode()
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 120)
        assert ready, "making an env in a forked child hung"
        message = os.read(read_end, 4096).decode()
    finally:
        os.close(read_end)
        if not ready:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert message.startswith("ForkedProcessError") and "spawn" in message, message


@pytest.mark.slow
def test_async_make_vec_with_fork_fails_fast_with_the_fix_in_the_message():
    code = (
        "import gymnasium as gym, vsml_bench\n"
        "v = gym.make_vec('vsml_bench/OnlineDigits-v0', num_envs=2, stream_length=4,\n"
        "                 vectorization_mode='async', vector_kwargs={'context': 'fork'})\n"
        "v.reset(seed=0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "ForkedProcessError" in result.stderr and "'context': 'spawn'" in result.stderr


@pytest.mark.slow
def test_async_make_vec_with_spawn_gives_the_sync_streams():
    kwargs = {"num_envs": 2, "stream_length": 4}
    sync = gym.make_vec(DIGITS, vectorization_mode="sync", **kwargs)
    spawned = gym.make_vec(
        DIGITS, vectorization_mode="async", vector_kwargs={"context": "spawn"}, **kwargs
    )
    try:
        for obs_a, obs_b in zip(sync.reset(seed=3), spawned.reset(seed=3), strict=True):
            if isinstance(obs_a, dict) and "x" in obs_a:
                np.testing.assert_array_equal(obs_a["x"], obs_b["x"])
        for t in range(6):  # past the end of the stream: autoreset in both
            actions = np.array([t % 10, (t + 1) % 10])
            a, b = sync.step(actions), spawned.step(actions)
            np.testing.assert_array_equal(a[0]["x"], b[0]["x"])
            np.testing.assert_array_equal(a[1], b[1])
    finally:
        spawned.close()


# ---------------------------------------------------------------------------------- pickle


@pytest.mark.parametrize("env_id", [DIGITS, FEW_DIGITS])
def test_pickled_env_continues_the_same_streams(env_id):
    online = {"projection": True, "stream_length": 20}
    kwargs = online if env_id == DIGITS else {"n_way": 3, "k_shot": 2}
    env = gym.make(env_id, action_type="logits", **kwargs)
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    env.step(rng.normal(size=env.action_space.shape).astype(np.float32))
    copy = pickle.loads(pickle.dumps(env))
    # Arguments and the episode (20 x 64 float32 inputs at most), not the 460 kB data set.
    assert len(pickle.dumps(env)) < 20_000
    assert copy.spec == env.spec
    for _ in range(3):  # the episode in progress, then unseeded resets from np_random
        for _ in range(env.spec.max_episode_steps):
            action = rng.normal(size=env.action_space.shape).astype(np.float32)
            a, b = env.step(action), copy.step(action)
            np.testing.assert_array_equal(a[0]["x"], b[0]["x"])
            assert a[0]["prev_label"] == b[0]["prev_label"] and a[1:4] == b[1:4]
            if a[3]:
                break
        obs_a, _ = env.reset()
        obs_b, _ = copy.reset()
        np.testing.assert_array_equal(obs_a["x"], obs_b["x"])


def test_pickled_vector_env_continues_the_same_streams():
    venv = gym.make_vec(FEW_DIGITS, num_envs=3, n_way=3, projection=True)
    venv.reset(seed=2, options={"task": 5})
    venv.step(np.zeros(3, int))
    copy = pickle.loads(pickle.dumps(venv))
    assert isinstance(copy, type(venv)) and copy.num_envs == 3
    for t in range(2 * venv.spec.max_episode_steps):  # across an autoreset
        actions = np.array([t % 3, (t + 1) % 3, 0])
        a, b = venv.step(actions), copy.step(actions)
        np.testing.assert_array_equal(a[0]["x"], b[0]["x"])
        np.testing.assert_array_equal(a[0]["prev_label"], b[0]["prev_label"])
        for x, y in zip(a[1:4], b[1:4], strict=True):
            np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------- spaces, dtypes, spec


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env_id", "kind", "dataset"),
    [row for row in all_env_ids() if row[2] in EMBEDDED],
    ids=lambda v: v if isinstance(v, str) and "/" in v else None,
)
def test_check_env_is_clean_for_registered_ids(env_id, kind, dataset):
    env = gym.make(env_id, render_mode="rgb_array", **_small(kind))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"projection": True},
        {"permute_pixels": True, "invert_inputs": True},
        {"image_size": 4},
        {"normalise": False},
    ],
)
def test_input_bounds_hold_every_observation(options):
    _, params = make(DIGITS, stream_length=200, **options)
    low, high = input_bounds(params)
    assert np.isfinite([low, high]).all() and low <= 0.0 <= high
    env = gym.make(DIGITS, stream_length=200, **options)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        xs = env.unwrapped._xs
        assert low <= xs.min() and xs.max() <= high
        assert obs in env.observation_space
    # Not vacuous: without a projection the bounds are the data's own range.
    if not options.get("projection"):
        assert high - low < 10 * (xs.max() - xs.min()) + 1e-3


def test_prev_label_has_the_space_dtype_in_both_envs():
    env = gym.make(DIGITS, stream_length=3)
    venv = gym.make_vec(DIGITS, num_envs=2, stream_length=3)
    dtype = env.observation_space["prev_label"].dtype
    assert venv.single_observation_space["prev_label"].dtype == dtype == np.int64
    obs, _ = env.reset(seed=0)
    vobs, _ = venv.reset(seed=0)
    assert obs["prev_label"].dtype == vobs["prev_label"].dtype == dtype
    obs, *_ = env.step(0)
    vobs, *_ = venv.step(np.zeros(2, int))
    assert obs["prev_label"].dtype == vobs["prev_label"].dtype == dtype
    assert vobs in venv.observation_space


def test_spec_max_episode_steps_is_the_stream_length():
    assert gym.make(DIGITS, stream_length=7).spec.max_episode_steps == 7
    assert gym.make(FEW_DIGITS, n_way=3, k_shot=2, n_query=1).spec.max_episode_steps == 9
    venv = gym.make_vec(DIGITS, num_envs=2, stream_length=5)
    assert venv.spec.max_episode_steps == 5
    # An explicit limit is Gymnasium's TimeLimit and wins.
    assert gym.make(DIGITS, stream_length=7, max_episode_steps=3).spec.max_episode_steps == 3
    # Specs round-trip through make and make_vec.
    again = gym.make(gym.make(DIGITS, stream_length=7).spec)
    assert again.spec.max_episode_steps == 7
    assert gym.make_vec(venv.spec).num_envs == 2
    with pytest.raises(vsml_bench.errors.UserError, match="stream length 5"):
        gym.make_vec(DIGITS, num_envs=2, stream_length=5, max_episode_steps=4)


# ------------------------------------------------------------------------ gymnax parity


def _same_params(a, b) -> bool:
    """Equal static configuration (the treedef holds it) and equal arrays."""
    import jax

    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize(
    ("env_id", "options"),
    [
        (DIGITS, {"stream_length": 9, "projection": True, "action_type": "logits"}),
        (FEW_DIGITS, {"n_way": 3, "k_shot": 2, "n_query": 1, "split": "train"}),
        ("vsml_bench/OnlineSumSign-v0", {"stream_length": 5, "dim": 6, "seed": 3}),
    ],
)
def test_default_params_are_the_params_make_returns(env_id, options):
    env, params = make(env_id, **options)
    assert _same_params(env.default_params, params)
    assert env.options == options and env.dataset == params.dataset
    assert "stream_length" not in make(DIGITS)[0].options  # only the options given
    # The recipe is small (no arrays), so the env pickles, and the copy rebuilds the params.
    assert _same_params(pickle.loads(pickle.dumps(env)).default_params, params)


def test_a_bare_env_has_the_embedded_digits_with_make_defaults():
    from vsml_bench.envs import FewShotClassification, OnlineClassification

    assert repr(OnlineClassification()) == "OnlineClassification('digits')"
    assert _same_params(OnlineClassification().default_params, make(DIGITS)[1])
    assert _same_params(FewShotClassification().default_params, make(FEW_DIGITS)[1])
    wine = OnlineClassification("wine", stream_length=4)
    assert wine.default_params.dataset == "wine"
    assert wine.default_params.stream_length == 4
