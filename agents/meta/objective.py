"""What a meta-optimiser minimises: a distribution over tasks, as groups of loss functions.

A *task loss* is a pure function ``loss_fn(meta_params, key, data) -> scalar``: the key draws one
task (dataset transform, label permutation, stream) and the loss is the learner's mean online
cross-entropy on it. Tasks of different shapes (input size, class count) cannot share one
``vmap``, so an :class:`Objective` is a tuple of :class:`TaskGroup` s, each with its own loss
function and its share of the population / task batch::

    L(θ) = Σ_g share_g · E_{k}[ loss_g(θ, k) ],   Σ_g share_g = 1.

The meta-optimisers (:mod:`.es`, :mod:`.bptt`) only see this interface, so they work for any
learner with meta-parameters and any task source (the envs of :mod:`vsml_bench.envs` through
:mod:`.tasks`, or a tiny synthetic stream in the tests).

An objective is a pytree whose leaves are the groups' ``data`` (e.g. the env params holding a
dataset): pass it to ``jit`` as an argument so that datasets are device buffers, not constants
baked into the compiled program.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import jax

from vsml_bench.protocol import PyTree

LossFn = Callable[[PyTree, jax.Array, PyTree], jax.Array]


@partial(
    jax.tree_util.register_dataclass, data_fields=["data"], meta_fields=["name", "loss_fn", "share"]
)
@dataclass(frozen=True)
class TaskGroup:
    """One task family: ``loss_fn(meta_params, key, data) -> scalar`` and its share of the batch.

    ``data`` is a pytree of arrays the loss reads (env params, datasets; may be None).
    """

    name: str
    loss_fn: LossFn
    share: float = 1.0
    data: PyTree = None

    def loss(self, meta_params: PyTree, key: jax.Array) -> jax.Array:
        return self.loss_fn(meta_params, key, self.data)


@partial(jax.tree_util.register_dataclass, data_fields=["groups"], meta_fields=[])
@dataclass(frozen=True)
class Objective:
    """A mixture of task families (see module docstring)."""

    groups: tuple[TaskGroup, ...]

    @classmethod
    def single(cls, loss_fn: LossFn, name: str = "task", data: PyTree = None) -> Objective:
        return cls((TaskGroup(name, loss_fn, 1.0, data),))


def allocate(total: int, shares: Sequence[float], granule: int = 1) -> list[int]:
    """Split ``total`` items into groups proportional to ``shares``, in multiples of ``granule``.

    Largest-remainder rounding over units of ``granule`` items (``granule`` = number of devices
    the batch is sharded over, so every group splits evenly). Every group with a positive share
    gets at least one unit when there are enough units.

    Raises:
      ValueError: ``total`` is not a positive multiple of ``granule``.
    """
    if total <= 0 or total % granule:
        raise ValueError(
            f"the batch size {total} must be a positive multiple of the device count {granule}"
        )
    units = total // granule
    weight = sum(shares)
    exact = [units * s / weight for s in shares]
    counts = [int(e) for e in exact]
    # Give units to empty positive-share groups first, then by largest remainder.
    order = sorted(
        range(len(shares)),
        key=lambda i: (counts[i] > 0 or shares[i] <= 0, -(exact[i] - counts[i])),
    )
    for i in order[: units - sum(counts)]:
        counts[i] += 1
    return [c * granule for c in counts]
