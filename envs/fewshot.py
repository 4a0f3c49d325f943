"""Few-shot classification: N-way K-shot episodes with Q queries per class, as a stream.

A task picks ``n_way`` dataset classes and gives them labels ``0 .. n_way-1`` (in random order
with ``permute_labels``). For each class ``k_shot + n_query`` distinct examples are drawn
without replacement, so no query repeats a support example. The stream shows the
``n_way * k_shot`` support examples first, in random order, each with its label revealed at the
next step and not scored (reward 0, ``info["scored"]`` False); then the ``n_way * n_query``
queries in random order, scored, with their labels withheld (``prev_label = C`` after a query).
``T = n_way * (k_shot + n_query)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from vsml_bench.envs import rng
from vsml_bench.envs.core import (
    ClassificationEnv,
    ClassificationParams,
    Task,
    _static,
    permutation,
)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FewShotParams(ClassificationParams):
    """Params of :class:`FewShotClassification`; ``n_classes`` is ``n_way``.

    Attributes:
      k_shot: support examples per class.
      n_query: query examples per class.
    """

    k_shot: int = _static(default=1)
    n_query: int = _static(default=1)

    @property
    def n_way(self) -> int:
        return self.n_classes

    @property
    def n_support(self) -> int:
        return self.n_classes * self.k_shot


class FewShotClassification(ClassificationEnv):
    """N-way K-shot episode: unscored support steps, then scored queries with hidden labels."""

    name = "few_shot"

    def sample_indices(
        self, key: jax.Array, task: Task, params: FewShotParams
    ) -> tuple[jax.Array, jax.Array]:
        """Pick ``k_shot + n_query`` distinct examples per class; support first, then queries."""
        k_pick, k_support, k_query = rng.split(key, 3)
        n_way, k, q = params.n_classes, params.k_shot, params.n_query
        counts = params.class_count[task.classes]  # [n_way]
        slots = params.class_index.shape[1]
        # The k + q smallest of iid uniforms over a class's valid slots are a uniform random
        # (k + q)-subset without replacement; padding slots get 2 so they are never picked.
        # = jax.random.uniform(k_pick, (n_way, slots)) (counters run row-major)
        u = rng.uniform(k_pick, n_way * slots).reshape(n_way, slots)
        u = jnp.where(jnp.arange(slots)[None, :] < counts[:, None], u, 2.0)
        _, picked = jax.lax.top_k(-u, k + q)  # [n_way, k + q] slot positions
        indices = params.class_index[task.classes[:, None], picked]
        labels = jnp.broadcast_to(jnp.arange(n_way, dtype=jnp.int32)[:, None], (n_way, k + q))
        support_order = permutation(k_support, n_way * k)
        query_order = permutation(k_query, n_way * q)
        s_idx, s_lab = indices[:, :k].reshape(-1), labels[:, :k].reshape(-1)
        q_idx, q_lab = indices[:, k:].reshape(-1), labels[:, k:].reshape(-1)
        stream_indices = jnp.concatenate([s_idx[support_order], q_idx[query_order]])
        stream_labels = jnp.concatenate([s_lab[support_order], q_lab[query_order]])
        return stream_indices.astype(jnp.int32), stream_labels
