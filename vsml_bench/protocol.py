"""The learner protocol: what an environment tells a learner and what a learner must be.

It sits below both ``vsml_bench.envs`` and ``vsml_bench.agents`` (environments take a
:class:`TaskSpec` and run a :class:`Learner` without knowing any learner; learners, meta-trainers
and the evaluation harness implement or consume it), so the two packages never import each other
upwards.

A learner is three pure functions, JAX-first (``jit``/``vmap``/``lax.scan`` friendly)::

    meta_params = learner.meta_init(key, spec)            # {} for hand-designed learners
    state = learner.init(meta_params, key, spec)          # fresh per stream
    state, logits = learner.step(meta_params, state, obs) # one example of the stream

``obs`` is the environment's observation ``{"x": float32[*spec.input_shape], "prev_label":
int32[]}``, where ``prev_label`` is the true label of the previous example, or
``spec.n_classes`` ("none") at the first step and after a few-shot query step. The learner
keeps whatever it needs (e.g. its previous logits) in ``state`` to compute its own error
once ``prev_label`` arrives. ``logits`` has shape ``[spec.n_classes]``: the prediction for
the current ``obs["x"]``.

``state`` may be any pytree; the built-in learners use a ``NamedTuple`` (as optax does for
optimizer states: named fields, a fixed tree structure for ``lax.scan``), and nested dicts for
parameters and meta-parameters (as Flax does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import jax

PyTree = Any
"""Any JAX pytree (nested tuples/lists/dicts/dataclasses of arrays): meta-parameters, states."""


@dataclass(frozen=True)
class TaskSpec:
    """What a learner is told about a task before its stream starts (hashable: jit-static)."""

    input_shape: tuple[int, ...]
    n_classes: int

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)


class Observation(TypedDict):
    x: jax.Array
    prev_label: jax.Array


@dataclass(frozen=True, eq=False)
class Learner:
    """A learning algorithm: pure functions plus the facts the harness records about it.

    Hashed by identity, so a learner can be a static argument of ``jax.jit``.

    Attributes:
      name: registry name, e.g. ``"vsml"``.
      meta_init: ``(key, spec) -> meta_params``; returns ``{}`` when there is nothing to meta-learn.
      init: ``(meta_params, key, spec) -> state`` for a fresh stream.
      step: ``(meta_params, state, obs) -> (state, logits)``.
      config: the JSON-serialisable options the learner was built with (provenance).
      description: one line for ``vsml-bench learners``.
      has_meta_params: whether ``meta_init`` returns anything a meta-trainer can optimise.
      meta_trained_on: dataset names the shipped meta-parameters saw (marks tasks in-distribution).
      meta_params: shipped meta-parameters (e.g. ``pretrained="mnist"``), or None.
      task_spec_of: fixed-size learners only: ``meta_params -> TaskSpec``, the task shape those
        meta-parameters were built for (read off their array shapes; a flat ``input_shape``).
        ``vsml_bench.envs.rollout`` and the harness adapt a task of another shape to it
        (:mod:`vsml_bench.envs.adaptation`). None: one meta-parameter set runs on any shape.
      unroll: optional ``(meta_params, key, spec, observations) -> logits[T, C]``: ``init`` with
        ``key`` then ``step`` through one stream's observations (stacked on a leading time
        axis), computed all at once. Possible because an observation never depends on earlier
        predictions; learners whose steps run in parallel over time (a Transformer) give it so
        that ``rollout`` and meta-training run a stream as one batched forward. It must give the
        same logits as stepping.
    """

    name: str
    meta_init: Callable[[jax.Array, TaskSpec], PyTree]
    init: Callable[[PyTree, jax.Array, TaskSpec], PyTree]
    step: Callable[[PyTree, PyTree, Observation], tuple[PyTree, jax.Array]]
    config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    has_meta_params: bool = False
    meta_trained_on: tuple[str, ...] = ()
    meta_params: PyTree | None = field(default=None, compare=False, repr=False)
    task_spec_of: Callable[[PyTree], TaskSpec] | None = field(
        default=None, compare=False, repr=False
    )
    unroll: Callable[[PyTree, jax.Array, TaskSpec, Observation], jax.Array] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def fixed_spec(self) -> TaskSpec | None:
        """The task shape the attached ``meta_params`` fit, for fixed-size learners; else None."""
        if self.task_spec_of is None or self.meta_params is None:
            return None
        return self.task_spec_of(self.meta_params)
