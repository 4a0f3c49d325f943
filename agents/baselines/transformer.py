"""A small GPICL-style causal Transformer that learns in context (after Kirsch et al. 2022,
"General-Purpose In-Context Learning by Meta-Learning Transformers").

Token ``t`` is the observation itself, ``s_t = [x_t, onehot_{C+1}(y_{t-1})]`` (the last symbol
meaning "no label"), so the label of ``x_{t-1}`` sits in the next token, as in GPICL. The
model is a pre-LayerNorm decoder::

    h⁰_t = W_e s_t + b_e + PE(t)                    (sinusoidal PE of the absolute step t)
    hˡ_t = hˡ⁻¹_t + MHA(LN(hˡ⁻¹_t), {LN(hˡ⁻¹_τ)}_τ)   keys/values of the remembered steps τ ≤ t
    hˡ_t = hˡ_t + MLP(LN(hˡ_t))                     (GELU, width mlp_ratio · d_model)
    z_t  = W_o LN(h^L_t) + b_o

It runs one token per ``step``: each layer's keys and values are kept in a ring buffer of
``context`` slots (a KV cache), so memory and per-step cost are ``O(context)`` and a stream
longer than ``context`` attends to its last ``context`` steps only. While ``t < context`` the
result equals full causal attention over the stream so far.

Meta-parameters: the Flax parameters of :class:`GPICLTransformer`. The token embedding ``W_e``
has ``D + C + 1`` rows and the read-out ``C`` columns, so meta-parameters are built **for one
(input size, class count)** and do not transfer to other sizes; the learner declares it through
``Learner.task_spec_of`` (:func:`task_spec_of`), and ``rollout`` and the harness adapt other tasks
to it (:mod:`vsml_bench.envs.adaptation`). Untrained, it does not learn.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vsml_bench.agents.baselines.common import flat_x, one_hot_with_none
from vsml_bench.protocol import Learner, Observation, TaskSpec

# Finite stand-in for -inf in masked attention scores: exp() underflows to exactly 0 and,
# unlike -inf, never produces NaN (the current token is always unmasked anyway).
_MASKED = -1e30


def sinusoidal_position(position: jax.Array, d_model: int) -> jax.Array:
    """``PE(t)_{2i} = sin(t / 10000^{2i/d})``, ``PE(t)_{2i+1} = cos(t / 10000^{2i/d})``."""
    half = d_model // 2
    freqs = jnp.exp(-jnp.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.asarray(position, jnp.float32) * freqs
    pe = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(-1)
    return jnp.pad(pe, (0, d_model - 2 * half))


class CachedBlock(nn.Module):
    """One pre-LN decoder block for a single new token, reading and updating its KV cache."""

    d_model: int
    n_heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(
        self,
        h: jax.Array,
        cache_k: jax.Array,
        cache_v: jax.Array,
        slot: jax.Array,
        valid: jax.Array,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        head_dim = self.d_model // self.n_heads
        y = nn.LayerNorm(name="ln_attention")(h)
        q = nn.DenseGeneral((self.n_heads, head_dim), name="query")(y)
        k = nn.DenseGeneral((self.n_heads, head_dim), name="key")(y)
        v = nn.DenseGeneral((self.n_heads, head_dim), name="value")(y)
        # Caches are [heads, context, head_dim]; the new key/value go into ring slot `slot`
        # (an in-place scatter). The two attention products are written as broadcast
        # multiply + sum: for one query per step they are batched mat-vecs, which XLA:CPU
        # runs several times slower as dot_generals than as fused elementwise reductions.
        cache_k = cache_k.at[:, slot].set(k)
        cache_v = cache_v.at[:, slot].set(v)
        scores = jnp.sum(q[:, None, :] * cache_k, axis=-1) / jnp.sqrt(jnp.float32(head_dim))
        scores = jnp.where(valid[None, :], scores, _MASKED)
        weights = jax.nn.softmax(scores, axis=-1)
        attended = jnp.sum(weights[:, :, None] * cache_v, axis=1)
        h = h + nn.DenseGeneral(self.d_model, axis=(-2, -1), name="attention_out")(attended)
        y = nn.LayerNorm(name="ln_mlp")(h)
        y = nn.Dense(self.mlp_ratio * self.d_model, name="mlp_in")(y)
        y = nn.Dense(self.d_model, name="mlp_out")(nn.gelu(y))
        return h + y, cache_k, cache_v


class GPICLTransformer(nn.Module):
    """Token -> logits for one step, given and returning the per-layer KV caches."""

    n_classes: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4

    @nn.compact
    def __call__(
        self,
        token: jax.Array,
        position: jax.Array,
        cache_k: tuple[jax.Array, ...],
        cache_v: tuple[jax.Array, ...],
        slot: jax.Array,
        valid: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        h = nn.Dense(self.d_model, name="embed")(token)
        h = h + sinusoidal_position(position, self.d_model)
        new_k, new_v = [], []
        for layer in range(self.n_layers):
            h, k, v = CachedBlock(
                self.d_model, self.n_heads, self.mlp_ratio, name=f"block_{layer}"
            )(h, cache_k[layer], cache_v[layer], slot, valid)
            new_k.append(k)
            new_v.append(v)
        h = nn.LayerNorm(name="ln_out")(h)
        logits = nn.Dense(self.n_classes, name="readout")(h)
        return logits, tuple(new_k), tuple(new_v)


def task_spec_of(meta_params: dict) -> TaskSpec:
    """The ``(D, C)`` these meta-parameters were built for: token rows ``D + C + 1``, ``C`` outputs."""
    n_classes = meta_params["readout"]["bias"].shape[-1]
    rows = meta_params["embed"]["kernel"].shape[0]
    return TaskSpec((rows - n_classes - 1,), n_classes)


class TransformerState(NamedTuple):
    # One [heads, context, head_dim] array per layer: a tuple, not a stacked array, so that a
    # step updates each layer's cache in place instead of re-stacking all of them.
    cache_k: tuple[jax.Array, ...]
    cache_v: tuple[jax.Array, ...]
    position: jax.Array  # int32[]: the step t of the next token
    n_classes_marker: jax.Array  # [C] zeros; carries the class count into the jitted step


def transformer(
    context: int = 256, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, mlp_ratio: int = 4
) -> Learner:
    """GPICL-style causal Transformer over the stream so far, with a ``context``-slot KV cache."""
    context, d_model, n_layers = int(context), int(d_model), int(n_layers)
    n_heads, mlp_ratio = int(n_heads), int(mlp_ratio)
    if d_model % n_heads:
        raise ValueError(f"transformer needs d_model divisible by n_heads, got {d_model}/{n_heads}")
    head_dim = d_model // n_heads

    def model(n_classes: int) -> GPICLTransformer:
        return GPICLTransformer(n_classes, d_model, n_layers, n_heads, mlp_ratio)

    def empty_cache() -> tuple[jax.Array, ...]:
        return tuple(jnp.zeros((n_heads, context, head_dim), jnp.float32) for _ in range(n_layers))

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict:
        token = jnp.zeros((spec.input_size + spec.n_classes + 1,), jnp.float32)
        valid = jnp.zeros((context,), bool).at[0].set(True)
        zero = jnp.zeros((), jnp.int32)
        return model(spec.n_classes).init(
            key, token, zero, empty_cache(), empty_cache(), zero, valid
        )["params"]

    def init(meta_params: dict, key: jax.Array, spec: TaskSpec) -> TransformerState:
        del meta_params, key
        return TransformerState(
            empty_cache(),
            empty_cache(),
            jnp.zeros((), jnp.int32),
            jnp.zeros((spec.n_classes,), jnp.float32),
        )

    def step(
        meta_params: dict, state: TransformerState, obs: Observation
    ) -> tuple[TransformerState, jax.Array]:
        n_classes = state.n_classes_marker.shape[-1]
        token = jnp.concatenate([flat_x(obs), one_hot_with_none(obs["prev_label"], n_classes)])
        slot = state.position % context
        valid = jnp.arange(context) <= jnp.minimum(state.position, context - 1)
        logits, cache_k, cache_v = model(n_classes).apply(
            {"params": meta_params},
            token,
            state.position,
            state.cache_k,
            state.cache_v,
            slot,
            valid,
        )
        return TransformerState(
            cache_k, cache_v, state.position + 1, state.n_classes_marker
        ), logits

    return Learner(
        name="transformer",
        meta_init=meta_init,
        init=init,
        step=step,
        config={
            "context": context,
            "d_model": d_model,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "mlp_ratio": mlp_ratio,
        },
        description=(
            f"GPICL-style causal Transformer ({n_layers}x{d_model}, KV cache of {context} steps); "
            "meta-params depend on input size and class count."
        ),
        has_meta_params=True,
        task_spec_of=task_spec_of,
    )
