"""Online classification: a stream of i.i.d. examples whose labels arrive one step late.

This is the VSML paper's meta-training and meta-testing protocol. A task picks
``n_classes`` dataset classes (all by default) and gives them labels ``0 .. C-1`` (in random
order with ``permute_labels``); the stream draws ``T`` examples independently and uniformly,
with replacement, from the examples of those classes, so class frequencies follow the split.
Every step is scored, and its label is shown as ``prev_label`` at the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from vsml_bench.envs import rng
from vsml_bench.envs.core import ClassificationEnv, ClassificationParams, Task

_COMPARE_ALL_MAX_CLASSES = 64


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class OnlineParams(ClassificationParams):
    """Params of :class:`OnlineClassification` (see :class:`ClassificationParams`)."""


class OnlineClassification(ClassificationEnv):
    """Online classification stream of ``T`` examples of one task; every step is scored."""

    name = "online"

    def sample_indices(
        self, key: jax.Array, task: Task, params: ClassificationParams
    ) -> tuple[jax.Array, jax.Array]:
        """Draw ``T`` examples uniformly, with replacement, from the examples of the task's classes.

        One uniform ``u`` per step picks rank ``r = floor(u * n)`` among the ``n`` examples of the
        task's classes (laid out class by class); its class is the ``j`` with
        ``cum[j-1] <= r < cum[j]`` and its slot within the class ``r - cum[j-1]``. One random
        number per step matters: random bits dominate the cost of a reset on CPU.
        """
        counts = params.class_count[task.classes]  # [C]
        ends = jnp.cumsum(counts)
        n = ends[-1]
        u = rng.uniform(key, params.stream_length)  # = jax.random.uniform(key, (T,))
        # min() guards the float rounding of u * n up to n.
        rank = jnp.minimum((u * n).astype(jnp.int32), n - 1)
        if params.n_classes <= _COMPARE_ALL_MAX_CLASSES:
            # searchsorted(ends, rank, side="right") by comparing every rank with every end:
            # one fusion, where the binary search is a loop (1.4x faster resets at C = 10).
            labels = jnp.sum(ends[None, :] <= rank[:, None], axis=1, dtype=jnp.int32)
        else:
            labels = jnp.searchsorted(ends, rank, side="right").astype(jnp.int32)
        # Rank r is slot r - (ends[j] - counts[j]) of class classes[j]: one flat gather from
        # class_index, with per-label offsets (every index is in bounds: labels < C, slots <
        # counts).
        offset = task.classes * params.class_index.shape[1] - (ends - counts)
        flat = rank + offset.at[labels].get(mode="promise_in_bounds")
        indices = params.class_index.reshape(-1).at[flat].get(mode="promise_in_bounds")
        return indices, labels
