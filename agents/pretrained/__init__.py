"""Meta-parameters shipped with the package, each with a model card, looked up per learner.

A shipped set is two files in this folder, named after the learner and the set:
``<learner>_<set>.msgpack`` (the meta-parameter pytree as Flax msgpack: nested dicts of float32
arrays, no pickle) and ``<learner>_<set>.json`` (the model card: ``"learner"``, learner config,
the exact training command, data, steps, wall time, hardware, git commit, and the sha256 of
the msgpack, which is checked before the bytes are parsed). The card's ``"learner"`` field, not
the file name, says which learner a set belongs to (``meta_rnn_mnist`` is ``meta_rnn``'s
``mnist``, never ``meta``'s ``rnn_mnist``).

    meta_params, card = vsml_bench.agents.pretrained.load("mnist", learner="vsml")
    learner = vsml_bench.agents.make("vsml", pretrained="mnist")   # the same, via the registry

Every learner with meta-parameters takes ``pretrained=`` through the registry
(:func:`vsml_bench.agents.make`), which calls :func:`load` for that learner.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from vsml_bench.errors import UserError

#: The learner whose sets ``names()``/``load()`` look up when none is named (the original API).
DEFAULT_LEARNER = "vsml"


class PretrainedNotFound(UserError):
    """No shipped meta-parameters under that name for that learner."""


class PretrainedCorrupt(UserError):
    """A shipped file does not match the checksum in its model card."""


def _files():
    return resources.files(__name__)


def _index() -> dict[tuple[str, str], str]:
    """``(learner, set) -> file stem`` for every card whose msgpack is present.

    A card without a ``"learner"`` field, or one that is not valid JSON, is skipped: it cannot
    be attributed to a learner, and a stray file must not break the lookup of the others.
    """
    index: dict[tuple[str, str], str] = {}
    for entry in _files().iterdir():
        name = entry.name
        if not name.endswith(".json"):
            continue
        stem = name[: -len(".json")]
        if not _files().joinpath(f"{stem}.msgpack").is_file():
            continue
        try:
            learner = json.loads(entry.read_text()).get("learner")
        except (ValueError, AttributeError, OSError):
            continue
        if isinstance(learner, str) and stem.startswith(f"{learner}_"):
            index[(learner, stem[len(learner) + 1 :])] = stem
    return index


def names(learner: str = DEFAULT_LEARNER) -> list[str]:
    """Names of the sets shipped for ``learner`` (e.g. ``["mnist"]`` for ``"vsml"``), sorted."""
    return sorted(set_name for owner, set_name in _index() if owner == learner)


def shipped() -> dict[str, list[str]]:
    """``learner -> [set, ...]`` for every shipped set."""
    out: dict[str, list[str]] = {}
    for owner, set_name in sorted(_index()):
        out.setdefault(owner, []).append(set_name)
    return out


def not_found_message(name: str, learner: str) -> str:
    """One sentence: ``name`` is not shipped for ``learner``; what is, or how to make one."""
    sets = names(learner)
    if sets:
        return (
            f"no pretrained meta-parameters named {name!r} for learner {learner!r}; "
            f"shipped for {learner}: {', '.join(sets)}"
        )
    return (
        f"no pretrained meta-parameters named {name!r} for learner {learner!r}: none are "
        f"shipped for it yet; meta-train a set with `vsml-bench train --learner {learner} "
        f"--out runs/{learner}` and evaluate it as `--learner {learner}:runs/{learner}/best.msgpack`, or "
        f"ship it with `vsml-bench export runs/{learner} "
        f"agents/pretrained/{learner}_<set> --datasets ...`"
    )


def model_card(name: str, learner: str = DEFAULT_LEARNER) -> dict[str, Any]:
    """The model card (JSON) of ``learner``'s set ``name``."""
    stem = _index().get((learner, name))
    if stem is None:
        raise PretrainedNotFound(not_found_message(name, learner))
    return json.loads(_files().joinpath(f"{stem}.json").read_text())


def load(name: str, learner: str = DEFAULT_LEARNER) -> tuple[Any, dict[str, Any]]:
    """``(meta_params, model_card)`` of ``learner``'s set ``name``, after checking the sha256."""
    stem = _index().get((learner, name))
    if stem is None:
        raise PretrainedNotFound(not_found_message(name, learner))
    card = json.loads(_files().joinpath(f"{stem}.json").read_text())
    data = _files().joinpath(f"{stem}.msgpack").read_bytes()
    return parse(data, card, f"{stem}.msgpack"), card


class MetaParamsFileError(UserError):
    """Bytes that are not a meta-parameter file (Flax msgpack of nested dicts of arrays)."""


def read_meta_params(
    data: bytes, what: str = "the meta-parameter file", sha256: str | None = None
) -> Any:
    """Meta-parameters from the bytes of a meta-parameter file: the one reader of the format.

    The format is what ``vsml-bench train`` and ``vsml-bench export`` write: Flax msgpack
    (``flax.serialization.msgpack_serialize``, no pickle) of nested dicts of float32 arrays.
    With ``sha256`` (from a model card) the bytes must hash to it before they are parsed
    (:class:`PretrainedCorrupt`); bytes that are not msgpack raise :class:`MetaParamsFileError`.
    Returns the nested dicts with float32 JAX arrays as leaves.
    """
    import jax
    import jax.numpy as jnp
    from flax import serialization

    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise PretrainedCorrupt(
                f"{what} has sha256 {digest}, not the {sha256} of its model card; "
                "reinstall vsml-bench or re-export the file"
            )
    try:
        tree = serialization.msgpack_restore(data)
    except Exception:  # msgpack raises several unrelated types on foreign bytes
        raise MetaParamsFileError(
            f"{what} is not a Flax msgpack meta-parameter file (as `vsml-bench train` writes)"
        ) from None
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), tree)


def parse(data: bytes, card: dict[str, Any], what: str = "the meta-parameter file") -> Any:
    """:func:`read_meta_params` of ``data``, whose sha256 must equal ``card["sha256"]``."""
    return read_meta_params(data, what, sha256=str(card.get("sha256")))
