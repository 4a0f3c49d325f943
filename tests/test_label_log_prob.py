"""The one online cross-entropy: envs.core.label_log_prob (JAX) and its NumPy twin."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vsml_bench.envs.core import label_log_prob, label_log_prob_np


def _logits(dtype, seed=0, shape=(5, 7, 10)):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * 20).astype(dtype), rng.integers(0, shape[-1], shape[:-1])


def test_jax_matches_log_softmax():
    z, y = _logits(np.float32)
    expected = np.take_along_axis(np.asarray(jax.nn.log_softmax(jnp.asarray(z))), y[..., None], -1)
    np.testing.assert_array_equal(np.asarray(label_log_prob(z, y)), expected[..., 0])
    assert label_log_prob(z[0, 0], y[0, 0]).shape == ()


def test_numpy_twin_agrees_with_jax_and_keeps_its_dtype():
    z, y = _logits(np.float32, seed=1)
    host = label_log_prob_np(z, y)
    assert host.dtype == np.float32
    np.testing.assert_allclose(host, np.asarray(label_log_prob(z, y)), rtol=1e-6, atol=1e-5)
    assert label_log_prob_np(z.astype(np.float64), y).dtype == np.float64


def test_numpy_twin_is_the_shift_by_max_formula_exactly():
    z, y = _logits(np.float64, seed=2)
    shifted = z - z.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    picked = np.take_along_axis(shifted, y[..., None], axis=-1)[..., 0]
    np.testing.assert_array_equal(-label_log_prob_np(z, y), log_z - picked)
    # A non-finite row gives a non-finite score, for the caller to replace.
    z[0, 0, 3] = np.inf
    assert not np.isfinite(label_log_prob_np(z, y)[0, 0])
