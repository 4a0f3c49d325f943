"""Environment throughput: the OOP env, ``make_vec`` at N = 64 and 1024, the jitted scan.

Run with ``pytest tests/benchmarks/test_bench_envs.py --benchmark-enable``; each benchmark
records ``env_steps_per_s`` (single-stream steps per second) in ``extra_info``. With benchmarks
disabled (the default test run) each body runs once as a smoke test. The jitted-scan figures
are the ones to hold against the single env's step rate (the issue 3 target: 100x).
"""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vsml_bench  # noqa: F401  (registers the IDs)
from vsml_bench import xla
from vsml_bench.envs import make

DIGITS = "vsml_bench/OnlineDigits-v0"


def _steps(benchmark, n: int) -> int:
    """``n`` when timing; a few when benchmarks are disabled and the body is only a smoke test."""
    return n if not benchmark.disabled else min(n, 5)


def _record(benchmark, env_steps: int) -> None:
    if benchmark.stats is not None:  # None when benchmarks are disabled
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["env_steps_per_s"] = env_steps / mean
        benchmark.extra_info["us_per_env_step"] = 1e6 * mean / env_steps


@pytest.mark.parametrize("action_type", ["discrete", "logits"])
def test_bench_oop_env_step(benchmark, action_type):
    """``gym.make`` (with Gymnasium's wrappers) stepped from Python, one stream."""
    env = gym.make(DIGITS, stream_length=100_000, action_type=action_type)
    env.reset(seed=0)
    n = _steps(benchmark, 2000)
    action = 3 if action_type == "discrete" else np.zeros(10, np.float32)

    def run():
        total = 0.0
        for _ in range(n):
            _, reward, _, truncated, _ = env.step(action)
            total += reward
            if truncated:
                env.reset()
        return total

    total = benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    assert np.isfinite(total)
    _record(benchmark, n)


def test_bench_functional_step_dispatch(benchmark):
    """Reference point: one jitted functional step per Python call (dispatch-bound)."""
    # The state holds the stream, which each un-donated call copies: keep T modest.
    env, params = make(DIGITS, stream_length=1000)
    step = jax.jit(env.step)
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    n = _steps(benchmark, 200)

    def run():
        s = state
        for _ in range(n):
            _, s, *_ = step(None, s, jnp.int32(3), params)
        return jax.block_until_ready(s.t)

    t = benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    assert int(t) == n
    _record(benchmark, n)


@pytest.mark.parametrize("num_envs", [64, 1024])
def test_bench_make_vec_step(benchmark, num_envs):
    """``gym.make_vec``: N streams per jitted call, NumPy in and out."""
    venv = gym.make_vec(DIGITS, num_envs=num_envs, stream_length=10_000)
    venv.reset(seed=0)
    actions = np.zeros(num_envs, np.int64)
    n = _steps(benchmark, 50)

    def run():
        for _ in range(n):
            obs, reward, *_ = venv.step(actions)
        return obs, reward

    obs, reward = benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    assert obs["x"].shape == (num_envs, 64) and reward.shape == (num_envs,)
    _record(benchmark, n * num_envs)


def _episode_fns(params, env, action):
    """``scan_steps(state, params)`` and ``episode(key, params)`` -> ``(rewards [T], obs_sum [D])``.

    Every observation is consumed: the scan carries the running sum of ``obs["x"]`` (one
    elementwise add per step, what a learner's input layer costs at least), so XLA can drop
    neither the gather nor the normalisation (nor the projection). An earlier version reduced
    each observation to a scalar inside the step (``reward + 0 * obs["x"].sum()``): on XLA:CPU
    that per-step row reduction of ``[streams, D]`` costs more than the env step itself.
    """
    length = params.stream_length

    def scan_steps(state, params):
        def tick(carry, _):
            state, obs_sum = carry
            obs, state, reward, *_ = env.step(None, state, action, params)
            return (state, obs_sum + obs["x"]), reward

        (_, obs_sum), rewards = jax.lax.scan(
            tick, (state, jnp.zeros(params.input_shape)), None, length=length
        )
        return rewards, obs_sum

    def episode(key, params):
        return scan_steps(env.reset(key, params)[1], params)

    return scan_steps, episode


def _check(out, n_streams, length):
    rewards, obs_sum = out
    assert rewards.shape == (n_streams, length) and bool(jnp.isfinite(rewards).all())
    assert obs_sum.shape == (n_streams, 64) and bool(jnp.isfinite(obs_sum).all())
    assert float(jnp.abs(obs_sum).sum()) > 0.0


# (action type, projection, lazy_inputs). rollout() holds streams as example indices
# (lazy_inputs); the stored layout ("False" third) is the default of env.reset. Projected tasks
# store their inputs either way.
SCAN_CASES = [
    ("discrete", False, True),
    ("logits", False, True),
    ("discrete", False, False),
    ("discrete", True, True),
    ("logits", True, True),
]


@pytest.mark.parametrize(("action_type", "projection", "lazy_inputs"), SCAN_CASES)
def test_bench_jitted_functional_scan(benchmark, action_type, projection, lazy_inputs):
    """The meta-training path: reset + ``lax.scan`` of ``step`` over T, ``vmap`` over streams.

    Compiled as the library's meta-training loops compile (:func:`vsml_bench.xla.jit`).
    """
    n_streams, length = 1024, 100
    env, params = make(DIGITS, stream_length=length, action_type=action_type, projection=projection)
    params = params.replace(lazy_inputs=lazy_inputs)
    action = jnp.zeros((), jnp.int32) if action_type == "discrete" else jnp.zeros(10, jnp.float32)
    _, episode = _episode_fns(params, env, action)
    run = xla.jit(jax.vmap(episode, in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), n_streams)
    out = benchmark.pedantic(
        lambda: jax.block_until_ready(run(keys, params)), rounds=5, warmup_rounds=1, iterations=1
    )
    _check(out, n_streams, length)
    _record(benchmark, n_streams * length)


@pytest.mark.parametrize("lazy_inputs", [True, False])
def test_bench_jitted_scan_steps_only(benchmark, lazy_inputs):
    """The stepping part alone (streams already sampled): the per-step cost of the core.

    Compiled with :func:`vsml_bench.xla.jit`, as :func:`test_bench_jitted_functional_scan`.
    """
    n_streams, length = 1024, 100
    env, params = make(DIGITS, stream_length=length)
    params = params.replace(lazy_inputs=lazy_inputs)
    scan_steps, _ = _episode_fns(params, env, jnp.zeros((), jnp.int32))
    keys = jax.random.split(jax.random.key(0), n_streams)
    _, states = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    run = xla.jit(jax.vmap(scan_steps, in_axes=(0, None)))
    out = benchmark.pedantic(
        lambda: jax.block_until_ready(run(states, params)), rounds=5, warmup_rounds=1, iterations=1
    )
    _check(out, n_streams, length)
    _record(benchmark, n_streams * length)
