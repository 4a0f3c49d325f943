"""The learner registry: built-ins, ``register_learner`` and the ``vsml_bench.learners`` plug-ins.

Built-ins are recorded as ``"module:function"`` strings and imported only when used, so listing
names is cheap and a broken optional learner cannot break the others. Third-party packages add
learners through the entry-point group ``vsml_bench.learners``::

    [project.entry-points."vsml_bench.learners"]
    my_learner = "my_package.learners:my_learner"   # factory(**config) -> Learner

Entry points are read once, on the first lookup. A plug-in that fails to import gives a warning
naming it and is listed as broken; everything else keeps working.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vsml_bench.errors import UserError
from vsml_bench.protocol import Learner

ENTRY_POINT_GROUP = "vsml_bench.learners"

Factory = Callable[..., Learner]


class UnknownLearnerError(UserError):
    """No learner is registered under the requested name."""


class BrokenLearnerError(UserError):
    """A registered learner's factory cannot be imported or built."""


@dataclass
class _Entry:
    target: Factory | str  # a factory or a "module:function" string, imported on first use
    description: str = ""
    source: str = "builtin"  # "builtin" | "user" | "plugin:<distribution>"


# name -> ("module:function", one line), imported on first use.
_BUILTINS: dict[str, tuple[str, str]] = {
    "vsml": (
        "vsml_bench.agents.vsml:vsml",
        "VSML: every weight a tiny shared LSTM, learning by forward message passing",
    ),
    "sgd": ("vsml_bench.agents.baselines.gradient:sgd", "online SGD (batch 1), linear or MLP"),
    "adam": ("vsml_bench.agents.baselines.gradient:adam", "online Adam (batch 1), linear or MLP"),
    "meta_rnn": (
        "vsml_bench.agents.baselines.meta_rnn:meta_rnn",
        "Meta-RNN: an LSTM over [x, previous label/error] (Hochreiter et al. 2001)",
    ),
    "hebbian": (
        "vsml_bench.agents.baselines.hebbian:hebbian",
        "Hebbian fast weights with Oja's rule",
    ),
    "fast_weights": (
        "vsml_bench.agents.baselines.fast_weights:fast_weights",
        "fast weight memory (Schlag et al. 2021)",
    ),
    "transformer": (
        "vsml_bench.agents.baselines.transformer:transformer",
        "in-context causal Transformer over the stream (GPICL-style)",
    ),
    "nearest_mean": (
        "vsml_bench.agents.baselines.nonparametric:nearest_mean",
        "nearest class mean over the stream so far",
    ),
    "knn": (
        "vsml_bench.agents.baselines.nonparametric:knn",
        "k nearest neighbours over the stream",
    ),
    "chance": ("vsml_bench.agents.baselines.nonparametric:chance", "uniform logits (chance level)"),
    "sklearn_sgd": (
        "vsml_bench.agents.adapter:sklearn_sgd",
        "scikit-learn SGDClassifier.partial_fit, one example at a time (a Python learner)",
    ),
}

_registry: dict[str, _Entry] = {
    name: _Entry(target, description) for name, (target, description) in _BUILTINS.items()
}
_plugins_loaded = False
_lock = threading.Lock()


def register_learner(
    name: str, factory: Factory | str, *, description: str = "", overwrite: bool = False
) -> None:
    """Register ``factory(**config) -> Learner`` (or a ``"module:function"`` string) as ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError("A learner name must be a non-empty string.")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise TypeError("factory must be callable or a 'module:function' string.")
    _load_plugins()
    if name in _registry and not overwrite:
        raise ValueError(
            f"A learner named {name!r} is already registered; pass overwrite=True to replace it."
        )
    _registry[name] = _Entry(factory, description, "user")


def _load_plugins() -> None:
    """Read the entry-point group once; record targets as strings (imported on first use)."""
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        try:
            points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception as error:  # a corrupt installed distribution must not break us
            warnings.warn(f"could not read {ENTRY_POINT_GROUP} entry points: {error}", stacklevel=3)
            return
        for point in points:
            dist = getattr(point.dist, "name", None) or "unknown distribution"
            if point.name in _registry:
                warnings.warn(
                    f"learner plug-in {point.name!r} from {dist} ignored: the name is taken.",
                    stacklevel=3,
                )
                continue
            _registry[point.name] = _Entry(point.value, "", f"plugin:{dist}")


def _resolve(name: str) -> Factory:
    _load_plugins()
    entry = _registry.get(name)
    if entry is None:
        raise UnknownLearnerError(
            f"Unknown learner {name!r}; choose one of: {', '.join(learner_names())}."
        )
    if callable(entry.target):
        return entry.target
    module_name, _, attr = entry.target.partition(":")
    try:
        factory = importlib.import_module(module_name)
        for part in attr.split("."):
            factory = getattr(factory, part)
    except Exception as error:
        if entry.source.startswith("plugin:"):
            warnings.warn(
                f"learner plug-in {name!r} ({entry.source[7:]}) is broken: "
                f"{type(error).__name__}: {error}",
                stacklevel=3,
            )
        raise BrokenLearnerError(
            f"Learner {name!r} cannot be loaded from {entry.target} "
            f"({type(error).__name__}: {error})."
        ) from error
    if not callable(factory):
        raise BrokenLearnerError(f"Learner {name!r}: {entry.target} is not callable.")
    return factory


def get_factory(name: str) -> Factory:
    """The factory registered as ``name`` (imported now)."""
    return _resolve(name)


class NoMetaParamsError(UserError):
    """``pretrained=`` was given to a learner that has nothing to meta-learn."""


def make(name: str, **config: Any) -> Learner:
    """Build the learner ``name`` with ``config``: ``make("vsml", pretrained="mnist")``.

    ``pretrained=SET`` works for every learner with meta-parameters, in one place: the set is
    looked up for this learner (``agents/pretrained/<name>_<SET>.msgpack`` + model card, see
    :mod:`vsml_bench.agents.pretrained`), the card's ``config`` fills the options not given
    here, and the learner comes back with ``meta_params``, ``meta_trained_on`` (from the card)
    and ``config["pretrained"] = SET``. A plug-in or user factory that declares a
    ``pretrained`` parameter itself receives it unchanged instead.
    """
    factory = _resolve(name)
    set_name = config.pop("pretrained", None)
    if set_name is not None and _handles_pretrained_itself(name, factory):
        config["pretrained"] = set_name
        set_name = None
    learner = _build(name, factory, config)
    if set_name is None:
        return learner
    if not learner.has_meta_params:
        raise NoMetaParamsError(
            f"learner {name!r} has no meta-parameters, so pretrained={set_name!r} does not "
            "apply; drop it (learners with meta-parameters: `vsml-bench learners`)"
        )
    from vsml_bench.agents import pretrained

    meta_params, card = pretrained.load(str(set_name), learner=name)
    card_config = card.get("config") if isinstance(card.get("config"), dict) else {}
    learner = _build(name, factory, {**card_config, **config})
    trained_on = card.get("meta_trained_on", card.get("datasets", ()))
    return dataclasses.replace(
        learner,
        meta_params=meta_params,
        meta_trained_on=tuple(str(d) for d in trained_on),
        config={**dict(learner.config), "pretrained": str(set_name)},
    )


def _build(name: str, factory: Factory, config: dict[str, Any]) -> Learner:
    learner = factory(**config)
    if not isinstance(learner, Learner):
        raise BrokenLearnerError(
            f"Learner {name!r}: its factory returned {type(learner).__name__}, not a Learner."
        )
    return learner


def _handles_pretrained_itself(name: str, factory: Factory) -> bool:
    """A non-built-in factory with its own ``pretrained`` parameter keeps its own lookup."""
    entry = _registry.get(name)
    if entry is None or entry.source == "builtin":
        return False
    try:
        return "pretrained" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and C callables may have no signature
        return False


def learner_names() -> list[str]:
    """Every registered name (built-ins, user registrations, plug-ins), sorted."""
    _load_plugins()
    return sorted(_registry)


@dataclass(frozen=True)
class LearnerInfo:
    """What ``vsml-bench learners`` shows for one learner."""

    name: str
    description: str
    has_meta_params: bool | None  # None when the learner could not be built
    source: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record ``vsml-bench learners --json`` prints."""
        return dataclasses.asdict(self)


def describe_learner(name: str) -> LearnerInfo:
    """Import and build ``name`` with its defaults to report its description and meta-params.

    A learner that fails to import or build is reported with ``error`` set, never raised.
    """
    _load_plugins()
    entry = _registry.get(name)
    if entry is None:
        raise UnknownLearnerError(
            f"Unknown learner {name!r}; choose one of: {', '.join(learner_names())}."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner = make(name)
    except Exception as error:
        cause = error.__cause__ or error
        return LearnerInfo(
            name,
            entry.description,
            None,
            entry.source,
            f"{type(cause).__name__}: {cause}",
        )
    return LearnerInfo(
        name,
        learner.description or entry.description,
        bool(learner.has_meta_params),
        entry.source,
    )


def learner_descriptions() -> dict[str, str]:
    """``name -> one-line description`` without importing anything (registered text only)."""
    _load_plugins()
    return {name: _registry[name].description for name in sorted(_registry)}


def _reset_plugins_for_tests() -> None:
    """Forget plug-in entries so the next lookup re-reads the entry points (tests only)."""
    global _plugins_loaded
    with _lock:
        for name in [n for n, e in _registry.items() if e.source.startswith("plugin:")]:
            del _registry[name]
        _plugins_loaded = False
