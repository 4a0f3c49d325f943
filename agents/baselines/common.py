"""Small pieces shared by the baseline learners.

Every baseline follows the stream protocol of :mod:`vsml_bench.protocol`: at step ``t`` it sees
``x_t`` and ``y_{t-1}`` (``prev_label``), first learns from the pair ``(x_{t-1}, y_{t-1})`` it kept
in its state, then predicts ``y_t``. ``prev_label == n_classes`` means "no label" (the first step,
or a withheld few-shot query label): then nothing is learned.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec


def flat_x(obs: Observation) -> jax.Array:
    """The observation's input as a flat float32 vector ``[D]``."""
    return jnp.reshape(jnp.asarray(obs["x"], jnp.float32), (-1,))


def has_label(prev_label: jax.Array, n_classes: int) -> jax.Array:
    """``True`` where ``prev_label`` is a real class, ``False`` for "none" (``== n_classes``)."""
    prev_label = jnp.asarray(prev_label)
    return (prev_label >= 0) & (prev_label < n_classes)


def one_hot_label(prev_label: jax.Array, n_classes: int) -> jax.Array:
    """One-hot of a label over ``C`` classes; all zeros for "none" (``prev_label == C``)."""
    return jax.nn.one_hot(prev_label, n_classes, dtype=jnp.float32)


def one_hot_with_none(prev_label: jax.Array, n_classes: int) -> jax.Array:
    """One-hot over ``C + 1`` symbols, the last one meaning "no label yet" (the env's ``C``)."""
    return jax.nn.one_hot(prev_label, n_classes + 1, dtype=jnp.float32)


def select_tree(pred: jax.Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    """Leaf-wise ``where``: keep ``on_true`` if ``pred`` else ``on_false``.

    Used instead of ``lax.cond`` so that learners stay cheap under ``vmap`` (where a ``cond``
    becomes a ``select`` of both branches anyway) and so that an unlabelled step leaves every
    leaf, including optimizer counters, exactly unchanged.
    """
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def error_signal(prev_logits: jax.Array, prev_label: jax.Array, n_classes: int) -> jax.Array:
    """Cross-entropy gradient w.r.t. the previous logits: ``softmax(z_{t-1}) - onehot(y_{t-1})``.

    Zero when there is no label (so an error-fed learner sees "no information").
    """
    error = jax.nn.softmax(prev_logits) - one_hot_label(prev_label, n_classes)
    return jnp.where(has_label(prev_label, n_classes), error, 0.0)


def run_stream(
    learner: Learner,
    meta_params: PyTree,
    key: jax.Array,
    spec: TaskSpec,
    xs: jax.Array,
    labels: jax.Array,
) -> jax.Array:
    """Run a learner over one labelled stream given as arrays; returns the logits ``[T, C]``.

    The observations are built as the online env builds them: ``{"x": xs[t], "prev_label":
    labels[t-1]}`` with ``prev_label = C`` ("none") at ``t = 0``. Pure and ``jit``/``vmap``-able
    (vmap over ``key, xs, labels`` for many streams); a convenience for tests and sweeps that do
    not need the environment's task sampling.
    """
    none = jnp.full((1,), spec.n_classes, jnp.int32)
    prev_labels = jnp.concatenate([none, jnp.asarray(labels, jnp.int32)[:-1]])

    def body(state: PyTree, obs: Observation) -> tuple[PyTree, jax.Array]:
        return learner.step(meta_params, state, obs)

    state = learner.init(meta_params, key, spec)
    _, logits = jax.lax.scan(body, state, {"x": xs, "prev_label": prev_labels})
    return logits
