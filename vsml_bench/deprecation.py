"""Old names that keep working for a while, with a ``DeprecationWarning`` that names the new one.

``renamed`` keeps a method callable under its old name after a rename::

    @dataclass(frozen=True)
    class Estimate:
        def to_dict(self) -> dict: ...

        to_json = renamed("to_dict")  # Estimate(...).to_json() warns, then calls to_dict()

``warn_key_access`` serves code that indexed a state that used to be a dict with its field name
(``state["layers"]``) now that states are NamedTuples (``state.layers``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any


class renamed:  # lower case, like property: it is spelled in class bodies as an attribute
    """A class attribute that forwards the old method name to ``new_name`` with a warning."""

    def __init__(self, new_name: str):
        self.new_name = new_name
        self.old_name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.old_name = name
        self.owner = owner.__name__

    def __get__(self, instance: Any, owner: type | None = None) -> Callable[..., Any]:
        target = getattr(instance if instance is not None else owner, self.new_name)

        @functools.wraps(target)
        def alias(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"{self.owner}.{self.old_name}() is deprecated; call {self.new_name}() instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            return target(*args, **kwargs)

        alias.__deprecated__ = f"use {self.new_name}()"  # what warnings.deprecated (3.13) sets
        return alias


def warn_key_access(state: tuple, key: str) -> Any:
    """``state[key]`` for a NamedTuple field ``key``, with a warning that attribute access is the
    way (``state.key``); an unknown name is a ``KeyError``, as it was for the dict."""
    if key not in state._fields:  # type: ignore[attr-defined]
        raise KeyError(key)
    name = type(state).__name__
    warnings.warn(
        f"{name}[{key!r}] is deprecated: {name} is a NamedTuple now; use .{key} instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(state, key)
