"""Classification-stream environments: a pure-JAX functional core and Gymnasium faces.

``env, params = vsml_bench.envs.make("vsml_bench/OnlineDigits-v0", stream_length=100)`` gives
the functional env (gymnax style: ``env.reset(key, params)``, ``env.step(key, state, action,
params)``); ``vsml_bench.envs.rollout`` runs a JAX learner on a batch of streams;
``gymnasium.make("vsml_bench/OnlineDigits-v0")`` and ``gymnasium.make_vec(..., num_envs=N)``
give the OOP and batched Gymnasium envs. ``vectorization_mode="async"`` needs
``vector_kwargs={"context": "spawn"}`` (JAX cannot run in a forked process: an env made in one
raises :class:`ForkedProcessError`); :mod:`vsml_bench.envs.gym_env` says how the vector modes'
streams differ, how the envs pickle, and what their spaces and spec hold.

Names are loaded lazily so that ``import vsml_bench`` (which registers the IDs) stays fast and
does not import JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make": "vsml_bench.envs.factory",
    "make_from": "vsml_bench.envs.factory",
    "env_for": "vsml_bench.envs.factory",
    "UnknownEnv": "vsml_bench.envs.factory",
    "InvalidEnvConfig": "vsml_bench.envs.factory",
    "rollout": "vsml_bench.envs.rollouts",
    "stream_keys": "vsml_bench.envs.rollouts",
    "Rollout": "vsml_bench.envs.rollouts",
    "ClassificationEnv": "vsml_bench.envs.core",
    "ClassificationParams": "vsml_bench.envs.core",
    "EnvState": "vsml_bench.envs.core",
    "Task": "vsml_bench.envs.core",
    "INVALID_LOG_PROB": "vsml_bench.envs.core",
    "OnlineClassification": "vsml_bench.envs.online",
    "OnlineParams": "vsml_bench.envs.online",
    "FewShotClassification": "vsml_bench.envs.fewshot",
    "FewShotParams": "vsml_bench.envs.fewshot",
    "ClassificationGymEnv": "vsml_bench.envs.gym_env",
    "ClassificationVectorEnv": "vsml_bench.envs.gym_env",
    "InvalidActionError": "vsml_bench.envs.gym_env",
    "ForkedProcessError": "vsml_bench.envs.gym_env",
    "register_envs": "vsml_bench.envs.registration",
    "all_env_ids": "vsml_bench.envs.registration",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vsml_bench.envs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
