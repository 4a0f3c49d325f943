"""Env options are checked for type and range at ``make``: nothing is coerced, nothing is huge.

``bool("false")`` is True and ``int(1.5)`` is 1, so a coercing ``make`` would silently build
another task than the one asked for; absurd sizes must be refused with the bytes they would need
rather than abort XLA or the OS. Every refusal is a :class:`UserError` (one sentence).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import vsml_bench  # noqa: F401  (registers the env IDs)
from vsml_bench.data import DataError
from vsml_bench.envs import InvalidEnvConfig, make
from vsml_bench.envs.factory import MAX_BYTES
from vsml_bench.errors import UserError

DIGITS = "vsml_bench/OnlineDigits-v0"
FEW_DIGITS = "vsml_bench/FewShotDigits-v0"


@pytest.mark.parametrize(
    ("env_id", "kwargs", "needle"),
    [
        # A string (or number) where a bool is expected.
        (DIGITS, {"projection": "no"}, "projection must be True or False"),
        (DIGITS, {"permute_labels": "false"}, "permute_labels must be True or False"),
        (DIGITS, {"invert_inputs": "yes"}, "invert_inputs must be True or False"),
        (DIGITS, {"permute_pixels": 1}, "permute_pixels must be True or False"),
        (DIGITS, {"normalise": 0}, "normalise must be True or False"),
        (DIGITS, {"flatten": None}, "flatten must be True or False"),
        (DIGITS, {"download": "no"}, "download must be True or False"),
        # Floats, bools and strings where an integer is expected.
        (DIGITS, {"stream_length": 1.5}, "stream_length must be an integer"),
        (DIGITS, {"stream_length": 1e8}, "stream_length must be an integer"),
        (DIGITS, {"stream_length": 100.0}, "stream_length must be an integer"),
        (DIGITS, {"stream_length": True}, "stream_length must be an integer"),
        (DIGITS, {"n_classes": "5"}, "n_classes must be an integer"),
        (DIGITS, {"image_size": True}, "image_size must be an integer"),
        (DIGITS, {"image_size": 4.0}, "image_size must be an integer"),
        (FEW_DIGITS, {"n_way": True}, "n_way must be an integer"),
        (FEW_DIGITS, {"k_shot": 1.0}, "k_shot must be an integer"),
        (FEW_DIGITS, {"n_query": np.float32(2)}, "n_query must be an integer"),
        # Strings that are not strings.
        (DIGITS, {"split": 0}, "split must be a string"),
        (DIGITS, {"action_type": ["logits"]}, "action_type must be a string"),
        # Integers out of range.
        (DIGITS, {"image_size": 0}, "image_size must be a positive integer"),
        (DIGITS, {"stream_length": -3}, "stream_length must be at least 1"),
    ],
)
def test_options_of_the_wrong_type_are_refused_not_coerced(env_id, kwargs, needle):
    with pytest.raises(InvalidEnvConfig) as err:
        make(env_id, **kwargs)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError):  # the Gymnasium face refuses them the same way
        gym.make(env_id, **kwargs)


def test_numpy_scalars_of_the_right_kind_are_accepted():
    _, params = make(
        DIGITS,
        stream_length=np.int64(7),
        n_classes=np.int32(4),
        projection=np.bool_(False),
        permute_labels=np.True_,
    )
    assert (params.stream_length, params.n_classes, params.projection) == (7, 4, False)
    assert type(params.stream_length) is int and params.permute_labels is True


@pytest.mark.parametrize(
    ("env_id", "kwargs", "needle"),
    [
        # 1e8 steps of 64 float32 inputs plus int32 labels and indices: 26.4 GB for one stream.
        (DIGITS, {"stream_length": 10**8}, "26.4 GB (26400000000 bytes)"),
        (DIGITS, {"stream_length": 10**8, "projection": True}, "26400016384 bytes"),
        # 1797 images resized to 10^5 x 10^5 pixels.
        (DIGITS, {"image_size": 100_000}, "resizing the 1797 images"),
        (FEW_DIGITS, {"image_size": 100_000}, "71.9 TB (71880000000000 bytes)"),
    ],
)
def test_sizes_beyond_the_memory_limit_are_refused_with_the_bytes_needed(env_id, kwargs, needle):
    with pytest.raises(InvalidEnvConfig) as err:
        make(env_id, **kwargs)
    message = str(err.value)
    assert needle in message and "bytes" in message and "MAX_BYTES" in message


def test_a_stream_just_under_the_limit_is_planned_not_refused(monkeypatch):
    # The limit is a number, not a heuristic: at exactly the bytes needed, make succeeds.
    from vsml_bench.envs import factory

    t, d = 1000, 64
    monkeypatch.setattr(factory, "MAX_BYTES", 8 * t + 4 * t * d)
    _, params = make(DIGITS, stream_length=t)
    assert params.stream_length == t
    monkeypatch.setattr(factory, "MAX_BYTES", 8 * t + 4 * t * d - 1)
    with pytest.raises(InvalidEnvConfig, match="bytes"):
        make(DIGITS, stream_length=t)


def test_huge_vector_envs_are_refused_with_the_bytes_needed():
    # Lazy streams hold int32 labels + indices: 8 bytes a step, 4000 bytes a 500-step stream.
    n = MAX_BYTES // 4000 + 1
    with pytest.raises(InvalidEnvConfig) as err:
        gym.make_vec(DIGITS, num_envs=n)
    assert f"{n} stream(s)" in str(err.value) and "bytes" in str(err.value)


@pytest.mark.parametrize("num_envs", [True, False, 0, -2, 2.0, "4", None])
def test_num_envs_must_be_a_positive_integer(num_envs):
    with pytest.raises(UserError, match="num_envs must be a positive integer"):
        gym.make_vec(DIGITS, num_envs=num_envs, stream_length=5)


@pytest.mark.parametrize("seed", [2**64, 2**63, -1, -(2**63), True, 1.5, "3"])
@pytest.mark.parametrize("vector", [False, True])
def test_seeds_outside_gymnasium_and_jax_range_are_a_clear_error(seed, vector):
    env = (
        gym.make_vec(DIGITS, num_envs=2, stream_length=5)
        if vector
        else gym.make(DIGITS, stream_length=5)
    )
    with pytest.raises(UserError, match=r"seed must be None or an integer in 0\.\.2\*\*63-1"):
        env.reset(seed=seed)
    env.reset(seed=2**63 - 1)  # the largest seed a JAX key holds still works
    env.reset(seed=np.int64(3))
    env.close()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"n": 1.5}, "integer n"),
        ({"dim": True}, "integer dim"),
        ({"seed": -1}, "seed >= 0"),
        ({"seed": "0"}, "integer seed"),
        ({"n": 0}, "n >= 1"),
        ({"n": 10**12}, "bytes"),
    ],
)
def test_synthetic_dataset_options_are_strict(options, needle):
    with pytest.raises(DataError) as err:
        make("vsml_bench/OnlineSumSign-v0", **options)
    assert needle in str(err.value)
