"""Backprop-through-the-stream meta-gradients (full or truncated), with rematerialisation.

The meta-gradient of the objective ``L(θ) = Σ_g share_g · mean_i loss_g(θ, k_gi)`` is taken
exactly by reverse-mode differentiation through the whole online stream (``lax.scan`` over
the learner's steps). Two learner wrappers bound its cost:

* :func:`remat_learner` wraps ``learner.step`` in :func:`jax.checkpoint`, so the backward pass
  stores only the learner state between steps and recomputes each step's intermediates: memory
  per step = one state instead of every activation of the (micro-ticked) update.
* :func:`truncate_learner` cuts the gradient path through the learner state every K steps
  (truncated BPTT): ``s_t ← stop_gradient(s_t)`` when ``t mod K = 0``, so ∂L/∂θ only sums the
  contributions that reach back less than K steps. The forward computation is unchanged.

The optimiser is an optax chain, by default global-norm clipping followed by Adam.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from vsml_bench.agents.meta.es import group_batches
from vsml_bench.agents.meta.objective import Objective
from vsml_bench.protocol import Learner, PyTree


def remat_learner(learner: Learner) -> Learner:
    """The same learner whose ``step`` is rematerialised in the backward pass."""
    return dataclasses.replace(learner, step=jax.checkpoint(learner.step))


def truncate_learner(learner: Learner, truncation: int) -> Learner:
    """The same learner with the gradient through its state cut every ``truncation`` steps.

    The wrapped state is ``(t, state)``; only inexact (float) leaves are cut, so integer
    counters and PRNG keys pass through untouched.
    """
    if truncation <= 0:
        raise ValueError(f"truncation must be a positive number of steps, got {truncation}")

    def init(meta_params, key, spec):
        return (jnp.zeros((), jnp.int32), learner.init(meta_params, key, spec))

    def step(meta_params, wrapped, obs):
        t, state = wrapped
        cut = (t > 0) & (t % truncation == 0)

        def maybe_cut(a):
            if not jnp.issubdtype(a.dtype, jnp.inexact):
                return a
            return jnp.where(cut, jax.lax.stop_gradient(a), a)

        state = jax.tree.map(maybe_cut, state)
        state, logits = learner.step(meta_params, state, obs)
        return (t + 1, state), logits

    # A whole-stream unroll has no state to cut: truncated runs step through the stream.
    return dataclasses.replace(learner, init=init, step=step, unroll=None)


def bptt_optimizer(
    learning_rate: float | optax.Schedule = 1e-3, clip_norm: float | None = 1.0
) -> optax.GradientTransformation:
    """Adam (a rate or a schedule) after clipping the meta-gradient to global norm ``clip_norm``.

    ``clip_norm=None`` turns clipping off.
    """
    parts = [] if clip_norm is None else [optax.clip_by_global_norm(clip_norm)]
    return optax.chain(*parts, optax.adam(learning_rate))


def bptt_loss(
    objective: Objective,
    meta_params: PyTree,
    key: jax.Array,
    *,
    n_tasks: int,
    mesh: Mesh | None = None,
) -> jax.Array:
    """``Σ_g share_g · mean_i loss_g(θ, k_gi)`` over ``n_tasks`` tasks (split among the groups).

    Task i draws its key from ``fold_in(key, i)`` so that sharding does not change the result.
    """
    batches = group_batches(objective, n_tasks, key, mesh)
    weight = sum(group.share for group, _ in batches)
    total = jnp.zeros((), jnp.float32)
    for group, task_keys in batches:
        losses = jax.vmap(group.loss, in_axes=(None, 0))(meta_params, task_keys)
        total = total + group.share / weight * jnp.mean(losses)
    return total


def bptt_gradient(
    objective: Objective,
    meta_params: PyTree,
    key: jax.Array,
    *,
    n_tasks: int,
    mesh: Mesh | None = None,
) -> tuple[jax.Array, PyTree]:
    """``(L(θ), ∇L(θ))`` by backprop through every task's stream (see :func:`bptt_loss`)."""
    return jax.value_and_grad(lambda p: bptt_loss(objective, p, key, n_tasks=n_tasks, mesh=mesh))(
        meta_params
    )
