"""Non-parametric reference learners: nearest class mean, k nearest neighbours, chance.

They remember the labelled stream so far (``(x_{t-1}, y_{t-1})`` is stored when ``y_{t-1}``
arrives) and predict ``x_t`` from that memory. Nothing is meta-learned (``meta_init`` returns
``{}``). Logits are finite everywhere so that the log-probability reward and the online
cross-entropy stay defined.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from vsml_bench.agents.baselines.common import flat_x, has_label, one_hot_label
from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec


def _no_meta_params(key: jax.Array, spec: TaskSpec) -> dict:
    del key, spec
    return {}


# --- nearest class mean -------------------------------------------------------------------------


class NearestMeanState(NamedTuple):
    sums: jax.Array  # [C, D] sum of the inputs seen per class
    counts: jax.Array  # [C]
    prev_x: jax.Array  # [D]


def nearest_mean(temperature: float = 1.0) -> Learner:
    """Nearest class mean over the labelled stream so far.

    With ``μ_c`` the mean of the inputs labelled ``c`` so far and ``D`` the input size::

        z_c = -||x - μ_c||² / (D · temperature)       for classes seen at least once,
        z_c = min over seen classes of z               for classes not seen yet,

    and all-zero (uniform) logits before any label. Dividing by ``D`` keeps the logit scale
    comparable across input sizes; unseen classes tie with the worst seen class, so they are
    never predicted but keep a finite log-probability.
    """
    temperature = float(temperature)

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> NearestMeanState:
        del meta_params, key
        return NearestMeanState(
            sums=jnp.zeros((spec.n_classes, spec.input_size), jnp.float32),
            counts=jnp.zeros((spec.n_classes,), jnp.float32),
            prev_x=jnp.zeros((spec.input_size,), jnp.float32),
        )

    def step(
        meta_params: PyTree, state: NearestMeanState, obs: Observation
    ) -> tuple[NearestMeanState, jax.Array]:
        del meta_params
        x = flat_x(obs)
        n_classes, input_size = state.sums.shape
        # one_hot is all-zero for "none", so an unlabelled step adds nothing.
        target = one_hot_label(obs["prev_label"], n_classes)
        sums = state.sums + target[:, None] * state.prev_x[None, :]
        counts = state.counts + target
        seen = counts > 0
        means = sums / jnp.maximum(counts, 1.0)[:, None]
        dist = jnp.sum(jnp.square(x[None, :] - means), axis=-1)
        logits = -dist / (input_size * temperature)
        worst_seen = jnp.min(jnp.where(seen, logits, jnp.inf))
        logits = jnp.where(seen, logits, worst_seen)
        logits = jnp.where(jnp.any(seen), logits, 0.0)
        return NearestMeanState(sums, counts, x), logits

    return Learner(
        name="nearest_mean",
        meta_init=_no_meta_params,
        init=init,
        step=step,
        config={"temperature": temperature},
        description="Nearest class mean of the labelled stream so far (squared distance); no learning rule.",
        has_meta_params=False,
    )


# --- k nearest neighbours -----------------------------------------------------------------------


class KnnState(NamedTuple):
    memory_x: jax.Array  # [capacity, D] ring buffer of labelled inputs
    memory_y: jax.Array  # [capacity, C] their one-hot labels (all zero in empty slots)
    n_stored: jax.Array  # int32[] labelled examples seen so far (may exceed capacity)
    prev_x: jax.Array  # [D]


def knn(k: int = 5, capacity: int = 1024) -> Learner:
    """k nearest neighbours (Euclidean) over the last ``capacity`` labelled examples.

    Logits are the neighbour votes ``z_c = #{i in kNN(x) : y_i = c}`` plus ``0.5 / k`` for the
    class of the single nearest neighbour, which breaks ties towards it without ever
    outvoting a full vote. With fewer than ``k`` examples stored, all stored ones vote; before
    any label the logits are uniform. Memory is a fixed-size ring buffer (the oldest example is
    overwritten), so the per-step cost is ``O(capacity · D)`` however long the stream.
    """
    k = int(k)
    capacity = int(capacity)
    if k < 1 or capacity < k:
        raise ValueError(f"knn needs 1 <= k <= capacity, got k={k}, capacity={capacity}")

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> KnnState:
        del meta_params, key
        return KnnState(
            memory_x=jnp.zeros((capacity, spec.input_size), jnp.float32),
            memory_y=jnp.zeros((capacity, spec.n_classes), jnp.float32),
            n_stored=jnp.zeros((), jnp.int32),
            prev_x=jnp.zeros((spec.input_size,), jnp.float32),
        )

    def step(meta_params: PyTree, state: KnnState, obs: Observation) -> tuple[KnnState, jax.Array]:
        del meta_params
        x = flat_x(obs)
        n_classes = state.memory_y.shape[-1]
        prev_label = jnp.asarray(obs["prev_label"], jnp.int32)
        labelled = has_label(prev_label, n_classes)
        # Write the previous example into its ring slot; an unlabelled step rewrites the slot
        # with its own content. (Selecting between two whole buffers instead would copy the
        # buffer every step.)
        slot = state.n_stored % capacity
        memory_x = state.memory_x.at[slot].set(
            jnp.where(labelled, state.prev_x, state.memory_x[slot])
        )
        memory_y = state.memory_y.at[slot].set(
            jnp.where(labelled, one_hot_label(prev_label, n_classes), state.memory_y[slot])
        )
        n_stored = state.n_stored + labelled.astype(jnp.int32)

        valid = jnp.arange(capacity) < n_stored
        dist = jnp.sum(jnp.square(memory_x - x[None, :]), axis=-1)
        # top_k of -dist finds the nearest; empty slots get -inf so they are never chosen
        # before a stored example (and vote nothing when chosen, being all-zero one-hots).
        neg_dist = jnp.where(valid, -dist, -jnp.inf)
        # k rounds of argmax rather than lax.top_k: top_k sorts on XLA:CPU, while k passes
        # over the buffer are O(k · capacity) and fuse (k is small).
        votes = jnp.zeros((n_classes,), jnp.float32)
        nearest_label = None
        for _ in range(k):
            best = jnp.argmax(neg_dist)
            # An empty slot (all remaining -inf: fewer than k stored) votes nothing.
            label = jnp.where(neg_dist[best] > -jnp.inf, memory_y[best], 0.0)
            nearest_label = label if nearest_label is None else nearest_label
            votes = votes + label
            neg_dist = jnp.where(jnp.arange(capacity) == best, -jnp.inf, neg_dist)
        logits = votes + (0.5 / k) * nearest_label
        return KnnState(memory_x, memory_y, n_stored, x), logits

    return Learner(
        name="knn",
        meta_init=_no_meta_params,
        init=init,
        step=step,
        config={"k": k, "capacity": capacity},
        description=f"{k}-nearest-neighbour vote over the last {capacity} labelled examples; no learning rule.",
        has_meta_params=False,
    )


# --- chance -------------------------------------------------------------------------------------


class ChanceState(NamedTuple):
    n_classes_marker: jax.Array  # [C] zeros; carries the class count into the jitted step


def chance() -> Learner:
    """Uniform logits ``z = 0``: accuracy ``1/C`` and online cross-entropy ``log C`` in expectation."""

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> ChanceState:
        del meta_params, key
        return ChanceState(jnp.zeros((spec.n_classes,), jnp.float32))

    def step(
        meta_params: PyTree, state: ChanceState, obs: Observation
    ) -> tuple[ChanceState, jax.Array]:
        del meta_params, obs
        return state, jnp.zeros_like(state.n_classes_marker)

    return Learner(
        name="chance",
        meta_init=_no_meta_params,
        init=init,
        step=step,
        config={},
        description="Chance: uniform logits, learns nothing (the floor every learner must beat).",
        has_meta_params=False,
    )
