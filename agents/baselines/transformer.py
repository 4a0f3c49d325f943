"""A small GPICL-style causal Transformer that learns in context (after Kirsch et al. 2022,
"General-Purpose In-Context Learning by Meta-Learning Transformers").

Token ``t`` is the observation itself, ``s_t = [x_t, onehot_{C+1}(y_{t-1})]`` (the last symbol
meaning "no label"), so the label of ``x_{t-1}`` sits in the next token, as in GPICL. With
``pair_inputs`` (the default) the token also repeats the previous input,
``s_t = [x_t, x_{t-1}, onehot_{C+1}(y_{t-1})]`` (``x_{-1} = 0``), so that each revealed label
sits in one token with its own input: looking a query up among the labelled examples takes one
attention layer instead of a two-layer circuit that pairs neighbouring tokens, which is the
circuit whose slow emergence gives meta-training its long loss plateau. Measured here (2-way
MNIST 7x7 tasks, 32 streams of 100 a step, Adam 1e-3, one seed): with pairing the loss left
ln 2 after ~150 steps (0.14 at step 300); without, it was still at ln 2 at step 300. The
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
has ``2D + C + 1`` rows (``D + C + 1`` without ``pair_inputs``) and the read-out ``C`` columns, so meta-parameters are built **for one
(input size, class count)** and do not transfer to other sizes; the learner declares it through
``Learner.task_spec_of`` (:func:`task_spec_of`), and ``rollout`` and the harness adapt other tasks
to it (:mod:`vsml_bench.envs.adaptation`). Untrained, it does not learn.
"""

from __future__ import annotations

import functools
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


class Block(nn.Module):
    """One pre-LN decoder block over ``n`` new tokens, reading and updating a key/value memory.

    The new tokens' keys and values are written into the memory at ``write_at`` (``n``
    consecutive slots); token ``i`` then attends to the slots ``j`` with ``visible[i, j]``.
    One step of the cached learner is ``n = 1`` with a ring buffer of ``context`` slots; a
    whole stream at once (:func:`transformer`'s ``unroll``) is ``n = T`` with a banded causal
    mask, and the two give the same outputs.
    """

    d_model: int
    n_heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(
        self,
        h: jax.Array,
        memory_k: jax.Array,
        memory_v: jax.Array,
        write_at: jax.Array,
        visible: jax.Array,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        head_dim = self.d_model // self.n_heads
        y = nn.LayerNorm(name="ln_attention")(h)
        q = nn.DenseGeneral((self.n_heads, head_dim), name="query")(y)  # [n, heads, head_dim]
        k = nn.DenseGeneral((self.n_heads, head_dim), name="key")(y)
        v = nn.DenseGeneral((self.n_heads, head_dim), name="value")(y)
        # Memories are [heads, slots, head_dim]; the new keys/values go in as an in-place update.
        start = (jnp.int32(0), jnp.asarray(write_at, jnp.int32), jnp.int32(0))
        memory_k = jax.lax.dynamic_update_slice(memory_k, k.transpose(1, 0, 2), start)
        memory_v = jax.lax.dynamic_update_slice(memory_v, v.transpose(1, 0, 2), start)
        if h.shape[0] == 1:
            # One query (a step): batched mat-vecs, which XLA:CPU runs several times faster as
            # broadcast multiply + sum than as dot_generals.
            scores = jnp.sum(q[:, :, None, :] * memory_k[None], axis=-1)
        else:
            # A whole stream: real matrix products (and a far cheaper backward pass).
            scores = jnp.einsum("nhd,hmd->nhm", q, memory_k)
        scores = scores / jnp.sqrt(jnp.float32(head_dim))  # [n, heads, slots]
        weights = jax.nn.softmax(jnp.where(visible[:, None, :], scores, _MASKED), axis=-1)
        if h.shape[0] == 1:
            attended = jnp.sum(weights[..., None] * memory_v[None], axis=2)
        else:
            attended = jnp.einsum("nhm,hmd->nhd", weights, memory_v)
        h = h + nn.DenseGeneral(self.d_model, axis=(-2, -1), name="attention_out")(attended)
        y = nn.LayerNorm(name="ln_mlp")(h)
        y = nn.Dense(self.mlp_ratio * self.d_model, name="mlp_in")(y)
        y = nn.Dense(self.d_model, name="mlp_out")(nn.gelu(y))
        return h + y, memory_k, memory_v


class GPICLTransformer(nn.Module):
    """Tokens ``[n, D + C + 1]`` at ``positions`` -> logits ``[n, C]``, via per-layer memories."""

    n_classes: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4

    @nn.compact
    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        memory_k: tuple[jax.Array, ...],
        memory_v: tuple[jax.Array, ...],
        write_at: jax.Array,
        visible: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        h = nn.Dense(self.d_model, name="embed")(tokens)
        h = h + jax.vmap(sinusoidal_position, in_axes=(0, None))(positions, self.d_model)
        new_k, new_v = [], []
        for layer in range(self.n_layers):
            h, k, v = Block(self.d_model, self.n_heads, self.mlp_ratio, name=f"block_{layer}")(
                h, memory_k[layer], memory_v[layer], write_at, visible
            )
            new_k.append(k)
            new_v.append(v)
        h = nn.LayerNorm(name="ln_out")(h)
        logits = nn.Dense(self.n_classes, name="readout")(h)
        return logits, tuple(new_k), tuple(new_v)


def task_spec_of(meta_params: dict, pair_inputs: bool = True) -> TaskSpec:
    """The ``(D, C)`` these meta-parameters were built for: token rows ``2D + C + 1`` (or
    ``D + C + 1`` without ``pair_inputs``), ``C`` outputs."""
    n_classes = meta_params["readout"]["bias"].shape[-1]
    rows = meta_params["embed"]["kernel"].shape[0] - n_classes - 1
    return TaskSpec((rows // 2 if pair_inputs else rows,), n_classes)


class TransformerState(NamedTuple):
    # One [heads, context, head_dim] array per layer: a tuple, not a stacked array, so that a
    # step updates each layer's cache in place instead of re-stacking all of them.
    cache_k: tuple[jax.Array, ...]
    cache_v: tuple[jax.Array, ...]
    position: jax.Array  # int32[]: the step t of the next token
    prev_x: jax.Array  # [D] the previous input (zeros at t = 0), for pair_inputs
    n_classes_marker: jax.Array  # [C] zeros; carries the class count into the jitted step


def transformer(
    context: int = 256,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    mlp_ratio: int = 4,
    pair_inputs: bool = True,
) -> Learner:
    """GPICL-style causal Transformer over the stream so far, with a ``context``-slot KV cache."""
    context, d_model, n_layers = int(context), int(d_model), int(n_layers)
    n_heads, mlp_ratio, pair_inputs = int(n_heads), int(mlp_ratio), bool(pair_inputs)
    if d_model % n_heads:
        raise ValueError(f"transformer needs d_model divisible by n_heads, got {d_model}/{n_heads}")
    head_dim = d_model // n_heads

    def model(n_classes: int) -> GPICLTransformer:
        return GPICLTransformer(n_classes, d_model, n_layers, n_heads, mlp_ratio)

    def memory(slots: int) -> tuple[jax.Array, ...]:
        return tuple(jnp.zeros((n_heads, slots, head_dim), jnp.float32) for _ in range(n_layers))

    def token(x: jax.Array, prev_x: jax.Array, prev_label: jax.Array, n_classes: int) -> jax.Array:
        inputs = [x, prev_x] if pair_inputs else [x]
        return jnp.concatenate([*inputs, one_hot_with_none(prev_label, n_classes)])

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict:
        rows = (2 if pair_inputs else 1) * spec.input_size + spec.n_classes + 1
        tokens = jnp.zeros((1, rows), jnp.float32)
        zero = jnp.zeros((1,), jnp.int32)
        visible = jnp.zeros((1, context), bool).at[0, 0].set(True)
        return model(spec.n_classes).init(
            key, tokens, zero, memory(context), memory(context), 0, visible
        )["params"]

    def init(meta_params: dict, key: jax.Array, spec: TaskSpec) -> TransformerState:
        del meta_params, key
        return TransformerState(
            memory(context),
            memory(context),
            jnp.zeros((), jnp.int32),
            jnp.zeros((spec.input_size,), jnp.float32),
            jnp.zeros((spec.n_classes,), jnp.float32),
        )

    def step(
        meta_params: dict, state: TransformerState, obs: Observation
    ) -> tuple[TransformerState, jax.Array]:
        n_classes = state.n_classes_marker.shape[-1]
        x = flat_x(obs)
        slot = state.position % context
        visible = jnp.arange(context) <= jnp.minimum(state.position, context - 1)
        logits, cache_k, cache_v = model(n_classes).apply(
            {"params": meta_params},
            token(x, state.prev_x, obs["prev_label"], n_classes)[None],
            state.position[None],
            state.cache_k,
            state.cache_v,
            slot,
            visible[None],
        )
        return TransformerState(
            cache_k, cache_v, state.position + 1, x, state.n_classes_marker
        ), logits[0]

    def unroll(
        meta_params: dict, key: jax.Array, spec: TaskSpec, observations: Observation
    ) -> jax.Array:
        """All ``T`` tokens in parallel: token ``t`` sees ``τ ≤ t`` within the last ``context``."""
        del key
        xs = jax.vmap(flat_x)(observations)
        length = xs.shape[0]
        prev_xs = jnp.concatenate([jnp.zeros_like(xs[:1]), xs[:-1]])
        tokens = jax.vmap(token, in_axes=(0, 0, 0, None))(
            xs, prev_xs, observations["prev_label"], spec.n_classes
        )
        t = jnp.arange(length)
        visible = (t[None, :] <= t[:, None]) & (t[:, None] - t[None, :] < context)
        logits, _, _ = model(spec.n_classes).apply(
            {"params": meta_params}, tokens, t, memory(length), memory(length), 0, visible
        )
        return logits

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
            "pair_inputs": pair_inputs,
        },
        description=(
            f"GPICL-style causal Transformer ({n_layers}x{d_model}, KV cache of {context} steps); "
            "meta-params depend on input size and class count."
        ),
        has_meta_params=True,
        task_spec_of=functools.partial(task_spec_of, pair_inputs=pair_inputs),
        unroll=unroll,
    )
