"""vsml-bench: a Gymnasium benchmark for learned learning algorithms.

Importing the package registers every ``vsml_bench/...`` environment ID with Gymnasium and
nothing else: the names below are imported on first use, so ``import vsml_bench`` stays fast
and does not import JAX.

The public API, one name per concept (the subpackages hold the rest)::

    env, env_params = vsml_bench.make_env("vsml_bench/OnlineDigits-v0", stream_length=100)
    learner = vsml_bench.make_learner("sgd", learning_rate=0.1)
    result = vsml_bench.rollout(env_params, learner, {}, jax.random.key(0), n_streams=64)
    doc = vsml_bench.evaluate(learner, vsml_bench.get_suite("offline-v0"))

* Environments (:mod:`vsml_bench.envs`): :func:`make_env`, :func:`rollout`, :func:`stream_keys`,
  :class:`Rollout`; ``gymnasium.make`` / ``gymnasium.make_vec`` with the registered IDs.
* The learner protocol (:mod:`vsml_bench.protocol`): :class:`TaskSpec`, :class:`Observation`,
  :class:`Learner`, ``PyTree``.
* Learners (:mod:`vsml_bench.agents`): :func:`make_learner`, :func:`register_learner`,
  :func:`learner_names`.
* The leaderboard (:mod:`vsml_bench.leaderboard`): :func:`evaluate`, :func:`get_suite`.
* Errors: :class:`UserError`, the base of every mistake a user can fix.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("vsml-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from vsml_bench.envs.registration import register_envs as _register_envs

_register_envs()

# Public name -> (module, attribute). Imported on first access (PEP 562).
_EXPORTS: dict[str, tuple[str, str]] = {
    # Environments.
    "make_env": ("vsml_bench.envs.factory", "make"),
    "rollout": ("vsml_bench.envs.rollouts", "rollout"),
    "stream_keys": ("vsml_bench.envs.rollouts", "stream_keys"),
    "Rollout": ("vsml_bench.envs.rollouts", "Rollout"),
    # The learner protocol.
    "TaskSpec": ("vsml_bench.protocol", "TaskSpec"),
    "Observation": ("vsml_bench.protocol", "Observation"),
    "Learner": ("vsml_bench.protocol", "Learner"),
    "PyTree": ("vsml_bench.protocol", "PyTree"),
    # Learners.
    "make_learner": ("vsml_bench.agents.registry", "make"),
    "register_learner": ("vsml_bench.agents.registry", "register_learner"),
    "learner_names": ("vsml_bench.agents.registry", "learner_names"),
    # The leaderboard.
    "evaluate": ("vsml_bench.leaderboard.harness", "evaluate"),
    "get_suite": ("vsml_bench.leaderboard.suites", "get_suite"),
    # Errors.
    "UserError": ("vsml_bench.errors", "UserError"),
}

__all__ = (
    "Learner",
    "Observation",
    "PyTree",
    "Rollout",
    "TaskSpec",
    "UserError",
    "__version__",
    "evaluate",
    "get_suite",
    "learner_names",
    "make_env",
    "make_learner",
    "register_learner",
    "rollout",
    "stream_keys",
)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from vsml_bench.agents.registry import learner_names, register_learner
    from vsml_bench.agents.registry import make as make_learner
    from vsml_bench.envs.factory import make as make_env
    from vsml_bench.envs.rollouts import Rollout, rollout, stream_keys
    from vsml_bench.errors import UserError
    from vsml_bench.leaderboard.harness import evaluate
    from vsml_bench.leaderboard.suites import get_suite
    from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'vsml_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
