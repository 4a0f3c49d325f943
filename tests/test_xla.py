"""The library's ``jit``: its CPU option, the XLA_FLAGS override, and unchanged numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench import agents, xla
from vsml_bench.protocol import TaskSpec


def test_cpu_option_and_xla_flags_override(monkeypatch) -> None:
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert xla.compiler_options() == {xla.CPU_VECTOR_WIDTH_FLAG: 512}
    monkeypatch.setenv("XLA_FLAGS", f"--{xla.CPU_VECTOR_WIDTH_FLAG}=256")
    assert xla.compiler_options() == {}


@pytest.mark.slow
def test_jit_computes_the_same_vsml_steps() -> None:
    learner = agents.make("vsml")
    spec = TaskSpec((12,), 3)
    meta_params = learner.meta_init(jax.random.key(0), spec)
    xs = jax.random.normal(jax.random.key(1), (20, 12))
    labels = jnp.arange(20) % 3

    def run(meta_params):
        state = learner.init(meta_params, jax.random.key(2), spec)

        def tick(state, inp):
            return learner.step(meta_params, state, {"x": inp[0], "prev_label": inp[1]})

        return jax.lax.scan(tick, state, (xs, labels))[1]

    np.testing.assert_allclose(
        xla.jit(run)(meta_params), jax.jit(run)(meta_params), rtol=1e-5, atol=1e-6
    )
