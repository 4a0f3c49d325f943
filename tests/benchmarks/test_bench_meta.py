"""Meta-training throughput: an ES step and a BPTT meta-gradient of VSML, in cell updates/s.

A *cell update* is one LSTM step of one sub-RNN (one weight): a dense layer of ``n_in × n_out``
weights does ``n_in · n_out · micro_ticks`` of them per example. ``extra_info`` also gives the
count per example (without micro ticks) so either convention can be compared.

    pytest tests/benchmarks/test_bench_meta.py --benchmark-enable

Reference on the 2-core CPU: the public VSML code does an ES step at ~9 M cell
updates/s and a backprop meta-gradient at ~1.1 M/s with ~1 kB of memory per cell update.
Memory here is XLA's compiled temp allocation (``memory_analysis()``) divided by the cell
updates of the gradient computation.
"""

from __future__ import annotations

import jax
import pytest

from vsml_bench import agents, xla
from vsml_bench.agents.meta.bptt import bptt_gradient
from vsml_bench.agents.meta.es import es_gradient
from vsml_bench.agents.meta.tasks import TaskFamily, build_objective

STREAM = 100
FAMILY = TaskFamily("vsml_bench/OnlineDigits-v0", {"stream_length": STREAM, "projection": True})


def _setup():
    learner = agents.make("vsml")
    objective, spec = build_objective(learner, [FAMILY])
    meta_params = learner.meta_init(jax.random.key(0), spec)
    cells = spec.input_size * spec.n_classes
    micro_ticks = int(learner.config.get("micro_ticks", 2))
    return objective, meta_params, cells, micro_ticks


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """A plain n×n float32 matmul's GFLOP/s now (the machine's yardstick)."""
    import time

    a = jax.random.normal(jax.random.key(0), (n, n))
    mm = jax.jit(lambda a: a @ a)
    jax.block_until_ready(mm(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(mm(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _record(benchmark, per_call_examples, cells, micro_ticks, extra=None):
    mean_s = benchmark.stats.stats.mean if benchmark.stats else None
    info = {"cells": cells, "micro_ticks": micro_ticks, "examples_per_call": per_call_examples}
    if mean_s:
        info["cell_updates_per_s"] = per_call_examples * cells * micro_ticks / mean_s
        info["weight_examples_per_s"] = per_call_examples * cells / mean_s
        # Measured in the same run so that numbers from a busy machine can be compared.
        info["matmul_gflops_same_run"] = matmul_gflops()
    benchmark.extra_info.update({**info, **(extra or {})})


@pytest.mark.parametrize("n_pairs", [64])
def test_bench_es_step(benchmark, n_pairs):
    objective, meta_params, cells, micro_ticks = _setup()
    step = xla.jit(lambda p, k, o: es_gradient(o, p, k, n_pairs=n_pairs, sigma=0.05).grad)
    key = jax.random.key(1)
    jax.block_until_ready(step(meta_params, key, objective))  # compile outside the timing

    def run():
        return jax.block_until_ready(step(meta_params, key, objective))

    grad = benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    assert all(bool(jax.numpy.isfinite(g).all()) for g in jax.tree.leaves(grad))
    _record(benchmark, 2 * n_pairs * STREAM, cells, micro_ticks)


@pytest.mark.parametrize("n_tasks", [16])
def test_bench_bptt_gradient(benchmark, n_tasks):
    objective, meta_params, cells, micro_ticks = _setup()  # VSML's step is rematerialised
    grad_fn = xla.jit(lambda p, k, o: bptt_gradient(o, p, k, n_tasks=n_tasks))
    key = jax.random.key(1)
    compiled = grad_fn.lower(meta_params, key, objective).compile()
    memory = compiled.memory_analysis()
    jax.block_until_ready(grad_fn(meta_params, key, objective))

    def run():
        return jax.block_until_ready(grad_fn(meta_params, key, objective))

    loss, grad = benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    assert bool(jax.numpy.isfinite(loss))
    assert all(bool(jax.numpy.isfinite(g).all()) for g in jax.tree.leaves(grad))
    updates = n_tasks * STREAM * cells * micro_ticks
    extra = {}
    if memory is not None:
        extra["temp_bytes"] = int(memory.temp_size_in_bytes)
        extra["bytes_per_cell_update"] = memory.temp_size_in_bytes / updates
        # The reference figure is ~1 kB per cell update; a quarter of it is the target.
        assert memory.temp_size_in_bytes / updates < 1024
    _record(benchmark, n_tasks * STREAM, cells, micro_ticks, extra)
