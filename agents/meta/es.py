"""Antithetic evolution strategies (ES) for meta-parameters.

For meta-parameters θ (flattened to a vector of size d), noise ε_i ~ N(0, I_d) and a task
key k_i per pair, the antithetic estimate of the gradient of the Gaussian-smoothed loss
``E_ε[L(θ + σε)]`` is::

    g = 1 / (2 n σ) · Σ_{i=1..n} (f_i⁺ − f_i⁻) · ε_i,   f_i^± = L(θ ± σ ε_i; k_i)

Both members of pair i run on the **same** task and stream k_i, so the task's difficulty
cancels in the difference (this is why pairs, not members, are the unit of task sampling).
With ``rank_shaping`` the 2n losses are first replaced by their centred ranks in [-½, ½]
(Salimans et al. 2017), which makes the update invariant to monotone transforms of the loss.
``g`` is fed to any optax optimiser as an ordinary gradient (the paper: Adam, lr 0.025).

The population is sharded over a 1-D :class:`jax.sharding.Mesh` (axis ``"pop"``): the pair
keys are constrained to be split over the devices, XLA partitions the ``vmap`` over pairs and
the final sum over pairs becomes an all-reduce. Noise is drawn per pair from its key on the
device that evaluates it, so nothing of size ``n × d`` crosses devices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vsml_bench.agents.meta.objective import Objective, allocate
from vsml_bench.protocol import PyTree

POP_AXIS = "pop"


class ESEstimate(NamedTuple):
    """The result of one ES evaluation of the population.

    Attributes:
      grad: the gradient estimate ``g``, same structure as the meta-parameters.
      loss: mean loss over all 2n members (the meta-loss curve).
      loss_plus: ``f⁺`` per pair, ``[n]``, groups concatenated in order.
      loss_minus: ``f⁻`` per pair, ``[n]``.
    """

    grad: PyTree
    loss: jax.Array
    loss_plus: jax.Array
    loss_minus: jax.Array


def centered_ranks(x: jax.Array) -> jax.Array:
    """Ranks of ``x`` scaled to [-½, ½] (smallest → -½); ties broken by position."""
    n = x.shape[0]
    ranks = jnp.argsort(jnp.argsort(x)).astype(jnp.float32)
    return ranks / jnp.maximum(n - 1, 1) - 0.5


def population_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh named ``"pop"`` over ``devices`` (default: all devices of all hosts)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(devices, (POP_AXIS,))


def shard_batch(x: Any, mesh: Mesh | None) -> Any:
    """Constrain the leading axis of every leaf of ``x`` to be split over the mesh (in ``jit``)."""
    if mesh is None or mesh.size == 1:
        return x
    sharding = NamedSharding(mesh, PartitionSpec(POP_AXIS))
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), x)


def group_batches(
    objective: Objective, n: int, key: jax.Array, mesh: Mesh | None
) -> list[tuple[Any, jax.Array]]:
    """Split a batch of ``n`` items among the objective's groups: ``[(group, keys)]``.

    Each group gets its share of ``n`` (in multiples of the mesh size); item ``i`` of the batch
    draws ``fold_in(key, i)``, so sharding never changes which key an item gets.
    """
    granule = 1 if mesh is None else mesh.size
    sizes = allocate(n, [g.share for g in objective.groups], granule)
    batches, start = [], 0
    for group, size in zip(objective.groups, sizes, strict=True):
        if size:
            indices = jnp.arange(start, start + size)
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)
            batches.append((group, shard_batch(keys, mesh)))
        start += size
    return batches


def es_gradient(
    objective: Objective,
    meta_params: PyTree,
    key: jax.Array,
    *,
    n_pairs: int,
    sigma: float,
    rank_shaping: bool = False,
    mesh: Mesh | None = None,
) -> ESEstimate:
    """Estimate ∇L(θ) with ``n_pairs`` antithetic pairs (see module docstring).

    Pair i (counted over all groups) draws its noise and its task from ``fold_in(key, i)``, so
    an estimate does not depend on how the pairs are split over devices. The pairs are divided
    among the objective's groups by their shares (in multiples of the mesh size).

    Args:
      objective: the task distribution; each group's ``loss_fn(meta_params, key, data)``.
      meta_params: θ, any pytree of float arrays.
      key: a typed PRNG key for this step.
      n_pairs: n, the number of antithetic pairs (population 2n).
      sigma: σ, the noise scale.
      rank_shaping: use centred ranks of the 2n losses instead of the raw losses.
      mesh: shard the pairs over this mesh (``None``: no constraint).
    """
    flat, unravel = ravel_pytree(meta_params)
    plus, minus, noises = [], [], []
    for group, pair_keys in group_batches(objective, n_pairs, key, mesh):

        def evaluate_pair(pair_key, group=group):
            noise_key, task_key = jax.random.split(pair_key)
            eps = jax.random.normal(noise_key, flat.shape, flat.dtype)
            f_plus = group.loss(unravel(flat + sigma * eps), task_key)
            f_minus = group.loss(unravel(flat - sigma * eps), task_key)
            return f_plus, f_minus, eps

        f_plus, f_minus, eps = jax.vmap(evaluate_pair)(pair_keys)
        plus.append(f_plus)
        minus.append(f_minus)
        noises.append(eps)

    loss_plus = jnp.concatenate(plus)
    loss_minus = jnp.concatenate(minus)
    eps = jnp.concatenate(noises)
    if rank_shaping:
        ranked = centered_ranks(jnp.concatenate([loss_plus, loss_minus]))
        fitness_plus, fitness_minus = ranked[:n_pairs], ranked[n_pairs:]
    else:
        fitness_plus, fitness_minus = loss_plus, loss_minus
    grad = (fitness_plus - fitness_minus) @ eps / (2.0 * n_pairs * sigma)
    loss = 0.5 * (jnp.mean(loss_plus) + jnp.mean(loss_minus))
    return ESEstimate(unravel(grad), loss, loss_plus, loss_minus)
