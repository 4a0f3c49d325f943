"""Meta-parameters shipped with the package, each with a model card.

Each entry is two files in this folder: ``<file>.msgpack`` (the meta-parameter pytree as Flax
msgpack: nested dicts of float32 arrays, no pickle) and ``<file>.json`` (the model card: learner
config, the exact training command, data, steps, wall time, hardware, git commit, and the
sha256 of the msgpack, which is checked before the bytes are parsed).

    meta_params, card = vsml_bench.agents.pretrained.load("mnist")
    learner = vsml_bench.agents.make("vsml", pretrained="mnist")   # the same, via the learner
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from vsml_bench.errors import UserError

#: name -> file stem in this package (``vsml_mnist`` -> ``vsml_mnist.msgpack`` + ``.json``).
_FILES = {"mnist": "vsml_mnist"}


class PretrainedNotFound(UserError):
    """No shipped meta-parameters under that name."""


class PretrainedCorrupt(UserError):
    """A shipped file does not match the checksum in its model card."""


def _files():
    return resources.files(__name__)


def names() -> list[str]:
    """Names of the shipped meta-parameter sets whose files are present."""
    return [
        name
        for name, stem in _FILES.items()
        if _files().joinpath(f"{stem}.msgpack").is_file()
        and _files().joinpath(f"{stem}.json").is_file()
    ]


available = names  # the spelling the VSML learner's error message looks for


def model_card(name: str) -> dict[str, Any]:
    """The model card (JSON) of ``name``."""
    if name not in names():
        raise PretrainedNotFound(
            f"no pretrained meta-parameters named {name!r}; available: {', '.join(names()) or 'none'}"
        )
    return json.loads(_files().joinpath(f"{_FILES[name]}.json").read_text())


def load(name: str) -> tuple[Any, dict[str, Any]]:
    """``(meta_params, model_card)`` of ``name``, after checking the msgpack's sha256."""
    card = model_card(name)
    data = _files().joinpath(f"{_FILES[name]}.msgpack").read_bytes()
    return parse(data, card, f"{_FILES[name]}.msgpack"), card


def parse(data: bytes, card: dict[str, Any], what: str = "the meta-parameter file") -> Any:
    """Meta-parameters from msgpack ``data`` whose sha256 must equal ``card["sha256"]``."""
    import jax.numpy as jnp
    from flax import serialization

    digest = hashlib.sha256(data).hexdigest()
    if digest != card.get("sha256"):
        raise PretrainedCorrupt(
            f"{what} has sha256 {digest}, not the {card.get('sha256')} of its model card; "
            "reinstall vsml-bench or re-export the file"
        )
    return _to_jax(serialization.msgpack_restore(data), jnp)


def _to_jax(tree: Any, jnp) -> Any:
    if isinstance(tree, dict):
        return {k: _to_jax(v, jnp) for k, v in tree.items()}
    return jnp.asarray(tree, jnp.float32)
