"""Training checkpoints: Flax msgpack (no pickle), written atomically.

A checkpoint is the whole state of a meta-training run at the end of a step::

    {"step": int, "key_data": uint32[...], "meta_params": θ, "opt_state": optax state,
     "best": {"step": int, "score": float, "meta_params": θ}}

``key_data`` is ``jax.random.key_data`` of the run's base key; the key of step t is the pure
function ``fold_in(base_key, t)``, so the checkpoint holds all the randomness a resumed run
needs and resuming is exact. Restoring needs a *target* with the same tree structure (a fresh
``meta_init`` + ``optimizer.init``): msgpack stores leaves, not Python types.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from vsml_bench.io import atomic_write_bytes, atomic_write_text
from vsml_bench.protocol import PyTree

__all__ = [
    "atomic_write_bytes",  # re-exported from vsml_bench.io for older callers
    "atomic_write_text",
    "load",
    "save",
    "to_host",
    "tree_from_bytes",
    "tree_to_bytes",
]


def to_host(tree: PyTree) -> PyTree:
    """Every leaf as a NumPy array (typed PRNG keys as their ``key_data``)."""

    def leaf(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return jax.tree.map(leaf, tree)


def tree_to_bytes(tree: PyTree) -> bytes:
    """Serialise a pytree of arrays to msgpack bytes."""
    return serialization.msgpack_serialize(serialization.to_state_dict(to_host(tree)))


def tree_from_bytes(target: PyTree, data: bytes) -> PyTree:
    """Restore msgpack bytes into the structure of ``target`` (leaves become NumPy arrays)."""
    return serialization.from_state_dict(target, serialization.msgpack_restore(data))


def save(path: str | os.PathLike, state: PyTree) -> None:
    """Atomically write ``state`` (any pytree of arrays / scalars) as msgpack."""
    atomic_write_bytes(path, tree_to_bytes(state))


def load(path: str | os.PathLike, target: PyTree) -> PyTree:
    """Read a checkpoint written by :func:`save` into the structure of ``target``."""
    return tree_from_bytes(to_host(target), Path(path).read_bytes())
