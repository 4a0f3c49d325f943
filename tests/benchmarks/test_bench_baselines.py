"""Throughput of every baseline learner: learner steps per second on digits streams.

Shape (inputs, classes, stream length, streams) = (64, 10, 100, 64): 64 OnlineDigits-v0 streams
of 100 steps, ``jit`` + ``vmap`` over streams + ``lax.scan`` over time, default configs.
``python -m pytest tests/benchmarks/test_bench_baselines.py --benchmark-enable`` times them;
``steps_per_s`` (streams × steps / mean time) is stored in each benchmark's ``extra_info``.
"""

from __future__ import annotations

import jax
import pytest

import vsml_bench.agents as agents
import vsml_bench.envs as envs
from vsml_bench.agents.baselines.common import run_stream

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
N_STREAMS, STREAM_LENGTH = 64, 100


@pytest.fixture(scope="module")
def digits_streams():
    env, params = envs.make("vsml_bench/OnlineDigits-v0", stream_length=STREAM_LENGTH)
    keys = jax.random.split(jax.random.key(0), N_STREAMS)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    spec = env.task_spec(params)
    assert spec.input_size == 64 and spec.n_classes == 10
    return spec, keys, state.xs, state.labels


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_steps_per_second(benchmark, digits_streams, name: str) -> None:
    spec, keys, xs, labels = digits_streams
    learner = agents.make(name)
    meta_params = learner.meta_init(jax.random.key(1), spec)

    @jax.jit
    def run(meta_params, keys, xs, labels):
        return jax.vmap(lambda k, x, y: run_stream(learner, meta_params, k, spec, x, y))(
            keys, xs, labels
        )

    def timed():
        return run(meta_params, keys, xs, labels).block_until_ready()

    timed()  # compile outside the timed rounds
    logits = benchmark.pedantic(timed, warmup_rounds=1, rounds=5, iterations=1)
    assert logits.shape == (N_STREAMS, STREAM_LENGTH, 10)
    if benchmark.stats is not None:
        mean_s = benchmark.stats.stats.mean
        benchmark.extra_info["steps_per_s"] = N_STREAMS * STREAM_LENGTH / mean_s
        benchmark.extra_info["shape"] = "(64 inputs, 10 classes, T=100, 64 streams)"
