"""Online classification: a stream of i.i.d. examples whose labels arrive one step late.

This is the VSML meta-training and meta-testing protocol (DESIGN.md §3). A task picks
``n_classes`` dataset classes (all by default) and gives them labels ``0 .. C-1`` (in random
order with ``permute_labels``); the stream draws ``T`` examples independently and uniformly,
with replacement, from the examples of those classes, so class frequencies follow the split.
Every step is scored, and its label is shown as ``prev_label`` at the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from vsml_bench.envs.core import ClassificationEnv, ClassificationParams, Task


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
        """Draw ``T`` examples uniformly from the examples of the task's classes.

        Sampling the class first with ``P(label j) ∝ count[classes[j]]`` and then an example
        uniformly within it is the same distribution as drawing uniformly from the examples of
        the subset, but costs O(T) instead of a pass over the whole split.
        """
        k_label, k_within = jax.random.split(key)
        counts = params.class_count[task.classes]
        labels = jax.random.categorical(
            k_label, jnp.log(counts.astype(jnp.float32)), shape=(params.stream_length,)
        ).astype(jnp.int32)
        n = counts[labels]
        # floor(u * n) is uniform on 0..n-1; the minimum guards the (measure-zero) u -> 1 rounding.
        within = jnp.minimum(
            (jax.random.uniform(k_within, (params.stream_length,)) * n).astype(jnp.int32), n - 1
        )
        indices = params.class_index[task.classes[labels], within]
        return indices, labels
