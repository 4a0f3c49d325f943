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
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

PyTree = Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs (e.g. shipped files) must be readable
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


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
