"""Training checkpoints: Flax msgpack (no pickle), written atomically.

A checkpoint is the whole state of a meta-training run at the end of a step::

    {"step": int, "key_data": uint32[...], "meta_params": θ, "opt_state": optax state,
     "best": {"step": int, "score": float, "meta_params": θ}}

``key_data`` is ``jax.random.key_data`` of the run's base key; the key of step t is the pure
function ``fold_in(base_key, t)``, so the checkpoint holds all the randomness a resumed run
needs and resuming is exact. Restoring needs a *target* with the same tree structure (a fresh
``meta_init`` + ``optimizer.init``): msgpack stores leaves, not Python types.

Integrity. :func:`save` adds one entry to the top-level map, ``"__sha256__"``: the SHA-256 of the
file's bytes with that entry's 64 hex digits written as ``"0" * 64``. Hashing the exact bytes
(not a re-serialisation) makes any changed bit detectable, and readers that look up keys by name
(:mod:`.export`, :func:`tree_from_bytes`) are unaffected. :func:`load` checks the checksum, the
tree (every key, shape and dtype of the target), and that parameters and optimiser state are
finite; anything wrong is a :class:`CorruptCheckpoint`, one line that names the file and the
last good alternative (the previous checkpoint, kept as ``<name>.prev.msgpack`` by
``save(..., keep_previous=True)``, or the run's ``best.msgpack``). Nothing is ever deleted.
Files without a checksum (written before it existed) still load after the other checks;
``save(..., checksum=False)`` writes such a plain file, as meta-parameter files (``best.msgpack``,
the shipped sets, which are checked against their model card's sha256) are.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import msgpack
import numpy as np
from flax import serialization

from vsml_bench.errors import UserError
from vsml_bench.io import atomic_write_bytes
from vsml_bench.protocol import PyTree

#: The top-level entry of a checkpoint that holds its checksum (see the module docstring).
CHECKSUM_KEY = "__sha256__"
_ZERO_DIGEST = "0" * 64
#: Leaves under a key of this name may be infinite (a run's best score starts at -inf);
#: every other floating leaf must be finite.
MAY_BE_INFINITE = frozenset({"score"})

__all__ = [
    "CHECKSUM_KEY",
    "CorruptCheckpoint",
    "load",
    "previous_path",
    "read_json",
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


class CorruptCheckpoint(UserError):
    """A checkpoint (or run file) that cannot be trusted: unreadable, damaged or not this run's.

    The message is one sentence naming the file, what is wrong and the last good alternative.

    Attributes:
      path: the file.
      alternative: the last good alternative found (a path), or None.
    """

    def __init__(self, message: str, path: Path, alternative: Path | None = None):
        super().__init__(message)
        self.path = path
        self.alternative = alternative


def previous_path(path: str | os.PathLike) -> Path:
    """Where ``save(path, ..., keep_previous=True)`` keeps the checkpoint it replaces."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _with_checksum(state_dict: Mapping[str, Any]) -> bytes:
    if CHECKSUM_KEY in state_dict:
        raise ValueError(f"a checkpoint's top level may not use the key {CHECKSUM_KEY!r}")
    marker = _marker(_ZERO_DIGEST)
    data = serialization.msgpack_serialize({CHECKSUM_KEY: _ZERO_DIGEST, **state_dict})
    at = data.index(marker)
    digest = hashlib.sha256(data).hexdigest()
    return data[:at] + _marker(digest) + data[at + len(marker) :]


def _marker(digest: str) -> bytes:
    """The bytes of the checksum entry (key then value) as msgpack writes them in a map."""
    return msgpack.packb(CHECKSUM_KEY) + msgpack.packb(digest)


def save(
    path: str | os.PathLike,
    state: PyTree,
    *,
    checksum: bool = True,
    keep_previous: bool = False,
) -> None:
    """Atomically write ``state`` (a pytree of arrays / scalars) as msgpack.

    Args:
      checksum: add the ``__sha256__`` entry (the state must be a dict at the top); False writes
        a plain msgpack file, e.g. a meta-parameter file that other tools read as it is.
      keep_previous: first copy the file being replaced to :func:`previous_path` (atomically),
        so a damaged checkpoint always has an older one to fall back to.
    """
    state_dict = serialization.to_state_dict(to_host(state))
    if checksum and not isinstance(state_dict, Mapping):
        raise TypeError("a checksummed checkpoint must be a dict at the top level")
    data = _with_checksum(state_dict) if checksum else serialization.msgpack_serialize(state_dict)
    path = Path(path)
    if keep_previous and path.is_file():
        atomic_write_bytes(previous_path(path), path.read_bytes())
    atomic_write_bytes(path, data)


def _check_checksum(data: bytes, restored: dict[str, Any]) -> str | None:
    """Why ``data`` fails its checksum, or None (also for files written without one)."""
    if CHECKSUM_KEY not in restored:
        return None
    digest = restored.pop(CHECKSUM_KEY)
    if not isinstance(digest, str) or len(digest) != 64:
        return "its checksum entry is damaged"
    marker = _marker(digest)
    if data.count(marker) != 1:
        return "its checksum entry is damaged"
    at = data.index(marker)
    zeroed = data[:at] + _marker(_ZERO_DIGEST) + data[at + len(marker) :]
    if hashlib.sha256(zeroed).hexdigest() != digest:
        return "its contents do not match its sha256 checksum (a changed or damaged file)"
    return None


def _extra_key(restored: Any, target: Any, prefix: str = "") -> str | None:
    """The first key of ``restored`` (a state dict) that ``target`` lacks, or None."""
    if not isinstance(restored, dict) or not isinstance(target, Mapping):
        return None
    for key, value in restored.items():
        name = f"{prefix}{key}"
        if key not in target:
            return name
        deeper = _extra_key(value, target[key], f"{name}/")
        if deeper is not None:
            return deeper
    return None


def _path_name(path: tuple[Any, ...]) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _check_tree(restored: PyTree, target: PyTree) -> str | None:
    """Why ``restored`` is not shaped like ``target`` or holds non-finite values, or None."""
    flat_r = jax.tree_util.tree_flatten_with_path(restored)[0]
    flat_t = jax.tree_util.tree_flatten_with_path(target)[0]
    if len(flat_r) != len(flat_t):
        return f"it holds {len(flat_r)} arrays where this run has {len(flat_t)} (a different tree)"
    for (path, got), (_, want) in zip(flat_r, flat_t, strict=True):
        name = _path_name(path)
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return f"{name} has shape {got.shape}, not {want.shape} (a different learner or run)"
        if got.dtype.kind != want.dtype.kind:
            return f"{name} holds {got.dtype} values, not {want.dtype} (a different tree)"
        if got.dtype.kind in "fc":
            bad = (
                np.isnan(got)
                if any(str(getattr(k, "key", "")) in MAY_BE_INFINITE for k in path)
                else ~np.isfinite(got)
            )
            if bad.any():
                return f"{name} holds NaN or infinite values"
    return None


def _restore(path: Path) -> tuple[Any, str | None]:
    """``(state dict, None)`` of the msgpack at ``path``, checksum checked, else ``(None, why)``."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"it cannot be read ({error.strerror or error})"
    if not data:
        return None, "it is empty"
    try:
        restored = serialization.msgpack_restore(data)
    except Exception:  # msgpack and flax raise many unrelated types on foreign bytes
        return None, "it is not a msgpack checkpoint (truncated or damaged)"
    if isinstance(restored, dict):
        why = _check_checksum(data, restored)
        if why is not None:
            return None, why
    return restored, None


def _diagnose(path: Path, target: PyTree) -> tuple[PyTree | None, str | None]:
    """``(state, None)`` for a good checkpoint at ``path``, else ``(None, why it is not)``."""
    restored, why = _restore(path)
    if why is not None:
        return None, why
    if isinstance(target, Mapping) and not isinstance(restored, dict):
        return None, "it does not hold a checkpoint (a different tree)"
    host_target = to_host(target)
    extra = _extra_key(restored, serialization.to_state_dict(host_target))
    if extra is not None:  # from_state_dict would ignore it (e.g. a damaged checksum key)
        return None, f"it holds an entry {extra!r} this run does not have (a different tree)"
    try:
        state = serialization.from_state_dict(host_target, restored)
    except Exception as error:  # flax raises ValueError/KeyError/TypeError on foreign trees
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, f"it does not hold this run's state (a different tree: {first})"
    why = _check_tree(state, host_target)
    return (None, why) if why is not None else (state, None)


def _alternative(path: Path, target: PyTree) -> tuple[Path | None, str]:
    """The last good alternative to a bad checkpoint and what to do with it."""
    prev = previous_path(path)
    if prev != path and prev.is_file():
        state, _ = _diagnose(prev, target)
        if state is not None:
            step = state.get("step") if isinstance(state, Mapping) else None
            at = f" (step {int(step)})" if step is not None else ""
            return prev, (f"the last good alternative is {prev}{at}: copy it to {path} and resume")
    best = path.parent / "best.msgpack"
    if path.name != best.name and best.is_file() and isinstance(target, Mapping):
        meta_target = target.get("meta_params")
        if meta_target is not None and _diagnose(best, meta_target)[0] is not None:
            return best, (
                f"the last good alternative is {best}, the best meta-parameters so far: "
                f"start a new run from them with --init-from {best}"
            )
    return None, f"no good alternative was found in {path.parent}; start a new run"


def load(path: str | os.PathLike, target: PyTree) -> PyTree:
    """Read a checkpoint written by :func:`save` into the structure of ``target``.

    Raises:
      CorruptCheckpoint: the file is unreadable, empty, not msgpack, fails its checksum, has
        another tree (keys, shapes, dtypes) than ``target``, or holds NaN/infinite parameters.
        The message names the last good alternative; no file is changed or deleted.
    """
    path = Path(path)
    state, why = _diagnose(path, target)
    if state is not None:
        return state
    alternative, advice = _alternative(path, target)
    raise CorruptCheckpoint(
        f"checkpoint {path} cannot be used: {why}; nothing was deleted, and {advice}",
        path,
        alternative,
    )


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The state dict of a checkpoint written by :func:`save`, checksum checked, for readers
    that have no target tree (e.g. export: leaves are NumPy arrays, keys as saved).

    Raises:
      CorruptCheckpoint: the file is unreadable, empty, not a msgpack dict or fails its checksum.
    """
    path = Path(path)
    restored, why = _restore(path)
    if why is None and not isinstance(restored, dict):
        why = "it does not hold a checkpoint (a different tree)"
    if why is not None:
        raise CorruptCheckpoint(f"checkpoint {path} cannot be used: {why}", path)
    return restored


def read_json(path: str | os.PathLike, what: str = "run configuration") -> dict[str, Any]:
    """A run's JSON object file (e.g. ``config.json``), or :class:`CorruptCheckpoint`."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as error:
        why = f"it cannot be read ({error.strerror or error})"
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        why = "it is not valid UTF-8 JSON (truncated or damaged)"
    else:
        if isinstance(value, dict) and isinstance(value.get("train", {}), dict):
            return value
        why = "it is not a JSON object of the expected form"
    raise CorruptCheckpoint(
        f"the {what} {path} cannot be used: {why}; nothing was deleted: restore it (it records "
        "how the run was started) or start a new run in a new --out folder",
        path,
    )
