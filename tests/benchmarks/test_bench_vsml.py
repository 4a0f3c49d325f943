"""VSML throughput in sub-RNN cell updates per second, and a matmul reference from the same run.

A *cell update* is one LSTM step of one weight: ``weights × micro ticks × examples``. Shapes
(inputs, classes, stream length, streams): (64, 10, 100, 64) and (784, 10, 100, 8), ``jit`` +
``vmap`` over streams + ``lax.scan`` over time, default VSML (state 16, messages 8, 2 micro ticks).
Also the BPTT meta-gradient (``jax.grad`` through a stream, rematerialised steps).

``python -m pytest tests/benchmarks/test_bench_vsml.py --benchmark-enable`` times them; each
benchmark's ``extra_info`` holds ``cell_updates_per_s`` and ``fraction_of_matmul``: the FLOP/s a
naive per-cell VSML would need at that rate (``2·(2M+S)·4S + 2·2·S·M`` = 4608 FLOP per cell
update) divided by the FLOP/s of a 2048×2048 f32 matmul measured in the same session.
``test_naive_per_cell_reference`` runs the public code's structure (the Flax sub-RNN ``vmap``-ed
over every cell, heads per cell, then the means) at the same shapes, so the factored VSML's
speed-up is measured on the same machine under the same load.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import pytest

import vsml_bench.agents as agents
from vsml_bench import xla
from vsml_bench.agents import vsml as V
from vsml_bench.protocol import TaskSpec

STATE, MSG, MICRO_TICKS = 16, 8, 2
NAIVE_FLOP_PER_CELL_UPDATE = 2 * (2 * MSG + STATE) * 4 * STATE + 2 * 2 * STATE * MSG
MATMUL_N = 2048


@pytest.fixture(scope="module")
def matmul_flops() -> float:
    """FLOP/s of a 2048×2048 f32 matmul (best of 5 after warm-up): the machine's reference."""
    a = jax.random.normal(jax.random.key(0), (MATMUL_N, MATMUL_N), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_N**3 / best


def test_matmul_reference(benchmark, matmul_flops) -> None:
    a = jax.random.normal(jax.random.key(0), (MATMUL_N, MATMUL_N), jnp.float32)
    matmul = jax.jit(lambda a: a @ a)
    matmul(a).block_until_ready()
    out = benchmark.pedantic(
        lambda: matmul(a).block_until_ready(), warmup_rounds=1, rounds=5, iterations=1
    )
    assert out.shape == (MATMUL_N, MATMUL_N)
    if benchmark.stats is not None:
        benchmark.extra_info["gflop_per_s"] = 2 * MATMUL_N**3 / benchmark.stats.stats.mean / 1e9
    benchmark.extra_info["best_of_5_gflop_per_s"] = matmul_flops / 1e9


def _streams(n_inputs: int, n_classes: int, length: int, n_streams: int):
    kx, ky = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (length, n_streams, n_inputs), jnp.float32)
    labels = jax.random.randint(ky, (length, n_streams), 0, n_classes)
    # prev_label: "none" at t = 0, then the previous example's label.
    prev = jnp.concatenate([jnp.full((1, n_streams), n_classes), labels[:-1]]).astype(jnp.int32)
    return xs, labels, prev


def _forward(learner, spec):
    """The streams' logits ``[T, streams, classes]`` (not jitted: callers jit at the top level)."""

    def run(meta_params, keys, xs, prev):
        states = jax.vmap(lambda k: learner.init(meta_params, k, spec))(keys)
        step = jax.vmap(learner.step, in_axes=(None, 0, 0))

        def tick(states, inp):
            x, y = inp
            return step(meta_params, states, {"x": x, "prev_label": y})

        return jax.lax.scan(tick, states, (xs, prev))[1]

    return run


def _record(benchmark, matmul_flops, cell_updates: int, label: str) -> None:
    benchmark.extra_info["shape"] = label
    benchmark.extra_info["cell_updates"] = cell_updates
    benchmark.extra_info["matmul_gflop_per_s"] = matmul_flops / 1e9
    if benchmark.stats is not None:
        rate = cell_updates / benchmark.stats.stats.mean
        benchmark.extra_info["cell_updates_per_s"] = rate
        benchmark.extra_info["fraction_of_matmul"] = (
            rate * NAIVE_FLOP_PER_CELL_UPDATE / matmul_flops
        )


@pytest.mark.parametrize(
    ("n_inputs", "n_classes", "length", "n_streams"), [(64, 10, 100, 64), (784, 10, 100, 8)]
)
def test_vsml_forward_cell_updates_per_second(
    benchmark, matmul_flops, n_inputs, n_classes, length, n_streams
) -> None:
    learner = agents.make("vsml")
    spec = TaskSpec((n_inputs,), n_classes)
    meta_params = learner.meta_init(jax.random.key(0), spec)
    keys = jax.random.split(jax.random.key(2), n_streams)
    xs, _, prev = _streams(n_inputs, n_classes, length, n_streams)
    run = xla.jit(_forward(learner, spec))
    run(meta_params, keys, xs, prev).block_until_ready()  # compile outside the timed rounds
    logits = benchmark.pedantic(
        lambda: run(meta_params, keys, xs, prev).block_until_ready(),
        warmup_rounds=1,
        rounds=5,
        iterations=1,
    )
    assert logits.shape == (length, n_streams, n_classes)
    assert bool(jnp.isfinite(logits).all())
    cell_updates = n_inputs * n_classes * MICRO_TICKS * length * n_streams
    _record(
        benchmark,
        matmul_flops,
        cell_updates,
        f"({n_inputs} inputs, {n_classes} classes, T={length}, {n_streams} streams)",
    )


def test_vsml_meta_gradient_cell_updates_per_second(benchmark, matmul_flops) -> None:
    """BPTT through a whole stream (what the gradient meta-trainer runs); remat keeps memory low."""
    n_inputs, n_classes, length, n_streams = 64, 10, 50, 16
    learner = agents.make("vsml")
    spec = TaskSpec((n_inputs,), n_classes)
    meta_params = learner.meta_init(jax.random.key(0), spec)
    keys = jax.random.split(jax.random.key(2), n_streams)
    xs, labels, prev = _streams(n_inputs, n_classes, length, n_streams)
    forward = _forward(learner, spec)

    def loss(meta_params):
        logits = forward(meta_params, keys, xs, prev)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1))

    grad = xla.jit(jax.grad(loss))
    compiled = grad.lower(meta_params).compile()
    grads = grad(meta_params)
    jax.block_until_ready(grads)
    out = benchmark.pedantic(
        lambda: jax.block_until_ready(grad(meta_params)), warmup_rounds=1, rounds=3, iterations=1
    )
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(out))
    cell_updates = n_inputs * n_classes * MICRO_TICKS * length * n_streams
    _record(benchmark, matmul_flops, cell_updates, f"grad ({n_inputs}, {n_classes}, T={length}, "
            f"{n_streams} streams)")  # fmt: skip
    memory = compiled.memory_analysis()
    if memory is not None:
        benchmark.extra_info["temp_bytes_per_cell_update"] = (
            memory.temp_size_in_bytes / cell_updates
        )


def _naive_forward(spec):
    """The public code's structure: every cell runs the whole sub-RNN (no factoring)."""
    module = V.SubRNN(STATE, MSG)
    n_classes = spec.n_classes

    def cell(params, fwd, bwd, h, c):
        return module.apply({"params": params}, fwd, bwd, h, c)

    # [A] forward messages × [B] backward messages × [A, B] states.
    cells = jax.vmap(jax.vmap(cell, (None, None, 0, 0, 0)), (None, 0, None, 0, 0))

    def step(params, state, obs):
        h, c, prev_logits, has_prev = state
        label = obs["prev_label"]
        onehot = jax.nn.one_hot(label, n_classes)
        error = jnp.where(has_prev & (label < n_classes), jax.nn.softmax(prev_logits) - onehot, 0)
        bwd = jnp.zeros((n_classes, MSG)).at[:, 0].set(error)
        fwd = jnp.zeros((spec.input_size, MSG)).at[:, 0].set(obs["x"])
        for _ in range(MICRO_TICKS):
            fwd_out, _, h, c = cells(params["sub_rnn"], fwd, bwd, h, c)
        logits = 100.0 * jnp.tanh(jnp.mean(fwd_out, axis=0)[:, 1] / 100.0)
        return (h, c, logits, jnp.ones((), bool)), logits

    @xla.jit
    def run(meta_params, states, xs, prev):
        def tick(states, inp):
            x, y = inp
            return jax.vmap(step, (None, 0, 0))(meta_params, states, {"x": x, "prev_label": y})

        return jax.lax.scan(tick, states, (xs, prev))[1]

    return run


@pytest.mark.parametrize(
    ("n_inputs", "n_classes", "length", "n_streams"), [(64, 10, 20, 64), (784, 10, 20, 8)]
)
def test_naive_per_cell_reference(
    benchmark, matmul_flops, n_inputs, n_classes, length, n_streams
) -> None:
    learner = agents.make("vsml")
    spec = TaskSpec((n_inputs,), n_classes)
    meta_params = learner.meta_init(jax.random.key(0), spec)
    keys = jax.random.split(jax.random.key(2), n_streams)
    xs, _, prev = _streams(n_inputs, n_classes, length, n_streams)
    states = jax.vmap(lambda k: learner.init(meta_params, k, spec))(keys)
    layer = states.layers[0]
    naive_states = (layer.h, layer.c, states.logits, states.has_prev)
    naive = _naive_forward(spec)
    expected = xla.jit(_forward(learner, spec))(meta_params, keys, xs, prev)
    got = naive(meta_params, naive_states, xs, prev).block_until_ready()
    # Same maths: the naive and the factored VSML agree.
    assert float(jnp.abs(got - expected).max()) < 1e-4
    benchmark.pedantic(
        lambda: naive(meta_params, naive_states, xs, prev).block_until_ready(),
        warmup_rounds=1,
        rounds=3,
        iterations=1,
    )
    cell_updates = n_inputs * n_classes * MICRO_TICKS * length * n_streams
    _record(
        benchmark,
        matmul_flops,
        cell_updates,
        f"naive ({n_inputs} inputs, {n_classes} classes, T={length}, {n_streams} streams)",
    )
