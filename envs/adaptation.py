"""Input-size adaptation: feed a task to a learner whose meta-parameters fit one task shape.

VSML and the hand-designed learners run on any input size and class count. The Meta-RNN, the
GPICL-style Transformer and the fast weight memory do not: their meta-parameters are built for
one ``(D_L, C_L)``, which they declare through ``Learner.task_spec_of`` (see
:class:`vsml_bench.protocol.Learner`). To meta-test such a learner on a task of shape
``(D_T, C_T)``, every observation is mapped by a fixed transform, the same for every stream of a
run and fully determined by the two shapes and ``seed`` (so it is recorded, not stored):

* **inputs: resize** when the task is an image ``(H, W, c)`` (neither projected nor
  pixel-permuted by the env) and ``D_L = s² c`` or, for an RGB task, ``D_L = s²``: the
  observation is resized to ``s × s`` with the exact box filter
  (:func:`vsml_bench.data.transforms.resize`, ``"area"``) and, in the second case, converted to
  grey (BT.601 luma). Both maps are linear with weights summing to 1, so they commute with the
  env's scalar normalisation: the learner sees what ``image_size=s`` would have given it.
* **inputs: projection** otherwise (tabular inputs, images of another aspect, projected or
  pixel-permuted tasks): ``x' = x W`` with ``W ∈ R^{D_T × D_L}`` i.i.d. Glorot-uniform,
  ``U(−a, a)``, ``a = sqrt(6 / (D_T + D_L))``, drawn from ``jax.random.key(seed)``
  (:func:`vsml_bench.data.transforms.glorot_uniform`), as GPICL feeds datasets of any size to
  one Transformer.
* **classes**: a task with ``C_T ≤ C_L`` classes uses the learner's first ``C_T`` outputs:
  its logits are ``z[:C_T]`` and the "no label" symbol ``C_T`` of the task becomes ``C_L``. A
  task with more classes than the learner has outputs cannot be run (:class:`AdaptationError`).

:func:`adapt` wraps a learner in these maps; :func:`vsml_bench.envs.rollout` applies it
whenever ``learner.task_spec_of(meta_params)`` differs from the task's spec, and the harness
writes :meth:`Adaptation.to_json` into the results file next to the task.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from vsml_bench.deprecation import renamed
from vsml_bench.envs.core import ClassificationParams
from vsml_bench.errors import UserError
from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec

#: Adaptation seed when none is given (rollout's and the harness's default).
DEFAULT_SEED = 0


class AdaptationError(UserError):
    """A task that cannot be mapped onto a fixed-size learner (more classes than outputs)."""


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """How a task of spec ``task`` is fed to meta-parameters built for ``learner``.

    Attributes:
      task: the task's spec ``(D_T, C_T)``.
      learner: the spec the meta-parameters fit ``(D_L, C_L)``.
      inputs: ``"identity"``, ``"resize"`` or ``"projection"`` (module doc).
      example_shape: the task's example shape (``(H, W, c)`` for images) before flattening.
      image_size: ``s`` for ``"resize"``, else None.
      grayscale: whether a ``"resize"`` also converts RGB to grey.
      seed: the projection matrix's seed (recorded for every kind, used by ``"projection"``).
    """

    task: TaskSpec
    learner: TaskSpec
    inputs: str
    example_shape: tuple[int, ...]
    image_size: int | None = None
    grayscale: bool = False
    seed: int = DEFAULT_SEED

    def map_inputs(self, x: jax.Array) -> jax.Array:
        """The task's observation ``x`` (any shape with ``D_T`` elements) as ``float32[D_L]``."""
        from vsml_bench.data import transforms

        x = jnp.reshape(jnp.asarray(x, jnp.float32), (-1,))
        if self.inputs == "identity":
            return x
        if self.inputs == "resize":
            size = (self.image_size, self.image_size)
            image = transforms.resize(jnp.reshape(x, self.example_shape), size)
            if self.grayscale:
                image = transforms.grayscale(image)
            return jnp.reshape(image, (-1,))
        w = transforms.glorot_uniform(
            jax.random.key(self.seed), self.task.input_size, self.learner.input_size
        )
        return x @ w

    def to_dict(self) -> dict[str, Any]:
        """The record the results file keeps (enough to rebuild the transform exactly)."""
        record: dict[str, Any] = {
            "inputs": self.inputs,
            "task_input_shape": list(self.example_shape),
            "learner_input_size": self.learner.input_size,
            "task_classes": self.task.n_classes,
            "learner_classes": self.learner.n_classes,
            "classes": "identity"
            if self.task.n_classes == self.learner.n_classes
            else f"first {self.task.n_classes} of {self.learner.n_classes} outputs",
            "seed": self.seed,
        }
        if self.inputs == "resize":
            record.update(image_size=self.image_size, method="area", grayscale=self.grayscale)
        elif self.inputs == "projection":
            record["matrix"] = "glorot_uniform(jax.random.key(seed), D_T, D_L)"
        return record

    to_json = renamed("to_dict")


def plan(
    env_params: ClassificationParams,
    task: TaskSpec,
    learner_spec: TaskSpec,
    seed: int = DEFAULT_SEED,
) -> Adaptation | None:
    """The adaptation of ``task`` (built from ``env_params``) to ``learner_spec``; None if equal.

    Raises :class:`AdaptationError` when the task has more classes than the learner outputs.
    """
    if task.input_size == learner_spec.input_size and task.n_classes == learner_spec.n_classes:
        return None
    if task.n_classes > learner_spec.n_classes:
        raise AdaptationError(
            f"the task has {task.n_classes} classes but the learner's meta-parameters have "
            f"{learner_spec.n_classes} outputs; meta-train it with at least {task.n_classes} "
            "classes or leave this task out"
        )
    example_shape = tuple(int(s) for s in (env_params.example_shape or task.input_shape))
    common = dict(task=task, learner=learner_spec, example_shape=example_shape, seed=int(seed))
    if task.input_size == learner_spec.input_size:
        return Adaptation(inputs="identity", **common)
    is_image = len(example_shape) == 3 and not (env_params.projection or env_params.permute_pixels)
    if is_image:
        channels = example_shape[-1]
        candidates = [(channels, False)] + ([(1, True)] if channels == 3 else [])
        for out_channels, grey in candidates:
            side = math.isqrt(learner_spec.input_size // out_channels)
            if side * side * out_channels == learner_spec.input_size:
                return Adaptation(inputs="resize", image_size=side, grayscale=grey, **common)
    return Adaptation(inputs="projection", **common)


def adapt(learner: Learner, adaptation: Adaptation | None) -> Learner:
    """``learner`` run through ``adaptation``: it sees ``(D_L, C_L)`` inputs, the task ``C_T`` logits.

    Pure and ``jit``-able like the learner itself; with ``adaptation=None`` returns ``learner``.
    """
    if adaptation is None:
        return learner
    n_task, n_learner = adaptation.task.n_classes, adaptation.learner.n_classes

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> PyTree:
        del spec  # the task's; the learner's state is built for its own shape
        return learner.init(meta_params, key, adaptation.learner)

    def step(meta_params: PyTree, state: PyTree, obs: Observation) -> tuple[PyTree, jax.Array]:
        prev = jnp.asarray(obs["prev_label"], jnp.int32)
        inner_obs = {
            **obs,
            "x": adaptation.map_inputs(obs["x"]),
            # the task's "no label" symbol C_T is the learner's C_L
            "prev_label": jnp.where(prev >= n_task, n_learner, prev),
        }
        state, logits = learner.step(meta_params, state, inner_obs)
        return state, logits[..., :n_task]

    return dataclasses.replace(
        learner,
        init=init,
        step=step,
        config={**dict(learner.config), "adaptation": adaptation.to_dict()},
        task_spec_of=None,
        unroll=None,  # the learner's own unroll would see the task's inputs, not the adapted ones
    )


def adapt_to_task(
    learner: Learner,
    meta_params: PyTree,
    env_params: ClassificationParams,
    task: TaskSpec,
    seed: int = DEFAULT_SEED,
) -> tuple[Learner, Adaptation | None]:
    """``(learner or its adapted wrapper, the adaptation or None)`` for meta-params on a task."""
    if learner.task_spec_of is None:
        return learner, None
    adaptation = plan(env_params, task, learner.task_spec_of(meta_params), seed)
    return adapt(learner, adaptation), adaptation
