"""The env's random draws: the values ``jax.random`` gives, computed faster on CPU.

A batched ``reset`` is a handful of Threefry-2x32 draws per stream (two key splits, a class
permutation, ``T`` uniforms, a task's ``D x D`` projection). XLA:CPU lowers JAX's Threefry hash
as a 5-iteration loop, which costs per-iteration overhead on small draws and a round trip
through memory per iteration on large ones; the same hash written out straight (20 rounds, one
fusion) makes a 1024-stream digits reset 2.3x faster and its projections 9x faster.

:func:`split`, :func:`bits` and :func:`uniform` return exactly what ``jax.random.split``,
``jax.random.bits(key, shape, uint32)`` and ``jax.random.uniform(key, shape, minval=,
maxval=)`` (float32) return, for typed ``threefry2x32`` keys under JAX's default
``jax_threefry_partitionable=True`` (tests check them against ``jax.random``). Any other key
or configuration goes to ``jax.random`` itself, so streams never depend on which path ran.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array):
    """The Threefry-2x32 hash of counters ``(x1, x2)`` under key ``(k1, k2)``, 20 rounds."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = (x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _fast(key: jax.Array) -> bool:
    """Whether the straight hash reproduces ``jax.random`` for ``key``."""
    return (
        isinstance(key, jax.Array)
        and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        and str(jax.random.key_impl(key)) == "threefry2x32"
        and bool(jax.config.jax_threefry_partitionable)
        and key.shape == ()
    )


def _hash_counts(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """The hash of counters ``0 .. n-1`` (high words 0) under one key, as JAX counts them."""
    data = jax.random.key_data(key)
    counts = jnp.arange(n, dtype=jnp.uint32)
    return _threefry2x32(data[0], data[1], jnp.zeros_like(counts), counts)


def split(key: jax.Array, num: int = 2) -> jax.Array:
    """``jax.random.split(key, num)``."""
    if not _fast(key):
        return jax.random.split(key, num)
    b1, b2 = _hash_counts(key, num)
    return jax.random.wrap_key_data(jnp.stack([b1, b2], axis=-1), impl="threefry2x32")


def bits(key: jax.Array, n: int) -> jax.Array:
    """``jax.random.bits(key, (n,), jnp.uint32)``."""
    if not _fast(key):
        return jax.random.bits(key, (n,), jnp.uint32)
    b1, b2 = _hash_counts(key, n)
    return b1 ^ b2


def uniform(key: jax.Array, n: int, minval: float = 0.0, maxval: float = 1.0) -> jax.Array:
    """``jax.random.uniform(key, (n,), minval=minval, maxval=maxval)`` (float32).

    As JAX does: the top 23 bits make a float ``f`` in ``[1, 2)``, and the result is
    ``max(minval, (f - 1) * (maxval - minval) + minval)`` in float32.
    """
    if not _fast(key):
        return jax.random.uniform(key, (n,), minval=minval, maxval=maxval)
    one = np.float32(1.0)
    mantissa = (bits(key, n) >> np.uint32(9)) | one.view(np.uint32)
    floats = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - one
    lo, hi = np.float32(minval), np.float32(maxval)
    return jnp.maximum(lo, floats * (hi - lo) + lo)
