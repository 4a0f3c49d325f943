"""Task distributions for meta-training, built on the envs of :mod:`vsml_bench.envs`.

A :class:`TaskFamily` is an env ID plus keyword options (dataset × projection × label
permutation × class subset × resize × stream length). Each family becomes one
:class:`~vsml_bench.agents.meta.objective.TaskGroup`: a key draws a task and a stream through
the env's ``reset`` (on device, inside ``jit``) and the learner runs over it with
:func:`vsml_bench.envs.rollout`. Families with a share of the batch are mixed within every
meta-step (e.g. half the ES pairs with their own random projection).

Meta-loss of one stream (online cross-entropy, query-only for few-shot)::

    L = Σ_t m_t · (−log softmax(z_t)[y_t]) / Σ_t m_t,   m_t = 1[step t is scored]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from vsml_bench.agents.meta.objective import Objective, TaskGroup
from vsml_bench.envs.core import label_log_prob
from vsml_bench.protocol import Learner, TaskSpec


@dataclass(frozen=True)
class TaskFamily:
    """An env ID + options, with its share of the meta-batch and a display name."""

    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    share: float = 1.0
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        short = self.env_id.split("/")[-1].removesuffix("-v0")
        return short + "".join(f",{k}={v}" for k, v in sorted(self.kwargs.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "kwargs": dict(self.kwargs),
            "share": self.share,
            "name": self.label,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskFamily:
        return cls(
            d["env_id"], dict(d.get("kwargs", {})), float(d.get("share", 1.0)), d.get("name")
        )


def stream_cross_entropy(logits: jax.Array, labels: jax.Array, scored: jax.Array) -> jax.Array:
    """Mean cross-entropy over the scored steps of streams (``[..., T, C]``, ``[..., T]``)."""
    ce = -label_log_prob(logits, labels)
    mask = scored.astype(jnp.float32)
    return jnp.sum(ce * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def make_env(family: TaskFamily, data_dir: Any = None):
    """``(env, env_params)`` of a family (loads its data once)."""
    from vsml_bench import envs

    kwargs = dict(family.kwargs)
    if data_dir is not None:
        kwargs.setdefault("data_dir", data_dir)
    return envs.make(family.env_id, **kwargs)


def build_objective(
    learner: Learner,
    families: Sequence[TaskFamily],
    *,
    data_dir: Any = None,
) -> tuple[Objective, TaskSpec]:
    """The meta-training objective over ``families`` and the spec of the first one.

    Each ES pair / BPTT task is one stream (``rollout`` with one stream per key); the env
    params travel as the group's ``data`` so that the dataset is a ``jit`` argument.
    """
    from vsml_bench.envs import rollout

    groups = []
    spec = None
    for family in families:
        env, env_params = make_env(family, data_dir)
        spec = spec or env.task_spec(env_params)

        def loss_fn(meta_params, key, env_params):
            result = rollout(env_params, learner, meta_params, key, 1)
            return stream_cross_entropy(result.logits, result.labels, result.scored)

        groups.append(TaskGroup(family.label, loss_fn, family.share, env_params))
    if spec is None:
        raise ValueError("a task distribution needs at least one family")
    return Objective(tuple(groups)), spec


def build_evaluator(
    learner: Learner,
    families: Sequence[TaskFamily],
    *,
    n_streams: int,
    key: jax.Array,
    data_dir: Any = None,
):
    """``θ -> {family: mean online accuracy}`` on fixed held-out streams (same key each call).

    Accuracy is the fraction of scored steps whose ``argmax`` logit is the label. The function
    is jitted with the env params as arguments.
    """
    from vsml_bench.envs import rollout

    names = [f.label for f in families]
    datas = [make_env(f, data_dir)[1] for f in families]

    @jax.jit
    def evaluate(meta_params, datas):
        scores = {}
        for i, (name, env_params) in enumerate(zip(names, datas, strict=True)):
            result = rollout(
                env_params, learner, meta_params, jax.random.fold_in(key, i), n_streams
            )
            mask = result.scored.astype(jnp.float32)
            scores[name] = jnp.sum(result.correct * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        return scores

    return lambda meta_params: evaluate(meta_params, datas)
