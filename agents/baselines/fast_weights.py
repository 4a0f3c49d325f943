"""Fast weight memory written by the delta rule (after Schlag, Munkhdalai & Schmidhuber 2021).

A fast weight matrix ``M ∈ R^{d_v×d_k}`` (zero at the start of each stream) is an associative
memory from input keys to label values. With meta-learned slow weights::

    k(x)  = (W_k x + b_k) / ||W_k x + b_k||          key of an input (unit norm, d_k)
    v(y)  = V_y                                      value of a label (row y of V, d_v)
    β     = sigmoid(b_β)                             write strength

when ``y_{t-1}`` arrives the pair ``(x_{t-1}, y_{t-1})`` is written with the delta rule, which
replaces what the memory currently returns for that key by the new value::

    k = k(x_{t-1}),   v̂ = M k,   M ← M + β (v(y_{t-1}) − v̂) kᵀ

and ``x_t`` is read with ``z_t = W_o M k(x_t) + b_o``.

This is the memory and the update of "Learning associative inference using fast weight
memory" (FWM, ICLR 2021) reduced to the supervised stream: FWM's slow LSTM that produces keys
and queries and its third-order (tensor-product) memory for multi-step inference are replaced by
a direct linear key from the input, since each query here needs one associative hop.

Meta-parameters: ``W_k, b_k`` (``[D, d_k]``: **depend on the input size**), ``V`` (``[C, d_v]``)
and ``W_o, b_o`` (``[d_v, C]``: **depend on the class count**), and ``b_β``. ``meta_init`` draws
``W_k`` LeCun-normal, ``V`` with orthonormal rows (needs ``d_v ≥ C``, else Gaussian rows of unit
norm), ``W_o = readout_scale · Vᵀ`` and ``β = 0.5``, so that an un-meta-trained memory already
retrieves labels (a delta-rule regression on random features); meta-training can improve it.
Because ``W_k`` and the read-out fix ``(D, C)``, the learner declares them through
``Learner.task_spec_of`` (:func:`task_spec_of`); ``rollout`` and the harness adapt tasks of
another shape to meta-parameters built for one (:mod:`vsml_bench.envs.adaptation`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vsml_bench.agents.baselines.common import flat_x, has_label
from vsml_bench.protocol import Learner, Observation, TaskSpec


class FastWeightState(NamedTuple):
    memory: jax.Array  # [d_v, d_k]
    prev_key: jax.Array  # [d_k] key of the previous input, written when its label arrives
    readout_bias: jax.Array  # [C] zeros; carries the class count (meta-params hold the real bias)


def _unit_rows(key: jax.Array, n_rows: int, n_cols: int) -> jax.Array:
    """Orthonormal rows when ``n_rows <= n_cols`` (QR of a Gaussian), else unit Gaussian rows."""
    gaussian = jax.random.normal(key, (max(n_rows, n_cols), n_cols), jnp.float32)
    if n_rows <= n_cols:
        q, _ = jnp.linalg.qr(gaussian)
        return q[:n_rows]
    rows = gaussian[:n_rows]
    return rows / jnp.linalg.norm(rows, axis=-1, keepdims=True)


def task_spec_of(meta_params: dict) -> TaskSpec:
    """The ``(D, C)`` these meta-parameters were built for (``W_k`` rows, read-out columns)."""
    return TaskSpec((meta_params["w_key"].shape[0],), meta_params["b_out"].shape[-1])


def input_key(meta_params: dict, x: jax.Array) -> jax.Array:
    """``k(x) = (W_k x + b_k) / ||W_k x + b_k||`` (with a small floor on the norm)."""
    pre = x @ meta_params["w_key"] + meta_params["b_key"]
    return pre / jnp.maximum(jnp.linalg.norm(pre), 1e-6)


def fast_weights(
    key_size: int = 64,
    value_size: int = 32,
    readout_scale: float = 5.0,
    write_strength: float = 0.5,
) -> Learner:
    """Delta-rule fast weight memory keyed by the input and valued by the label (module doc)."""
    key_size, value_size = int(key_size), int(value_size)
    readout_scale, write_strength = float(readout_scale), float(write_strength)
    if not 0.0 < write_strength < 1.0:
        raise ValueError("fast_weights needs 0 < write_strength < 1")

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict[str, jax.Array]:
        key_k, key_v = jax.random.split(key)
        values = _unit_rows(key_v, spec.n_classes, value_size)
        return {
            "w_key": jax.nn.initializers.lecun_normal()(
                key_k, (spec.input_size, key_size), jnp.float32
            ),
            "b_key": jnp.zeros((key_size,), jnp.float32),
            "values": values,
            "w_out": readout_scale * values.T,
            "b_out": jnp.zeros((spec.n_classes,), jnp.float32),
            "write_logit": jnp.asarray(
                math.log(write_strength / (1.0 - write_strength)), jnp.float32
            ),
        }

    def init(meta_params: dict, key: jax.Array, spec: TaskSpec) -> FastWeightState:
        del meta_params, key
        return FastWeightState(
            memory=jnp.zeros((value_size, key_size), jnp.float32),
            prev_key=jnp.zeros((key_size,), jnp.float32),
            readout_bias=jnp.zeros((spec.n_classes,), jnp.float32),
        )

    def step(
        meta_params: dict, state: FastWeightState, obs: Observation
    ) -> tuple[FastWeightState, jax.Array]:
        x = flat_x(obs)
        n_classes = state.readout_bias.shape[-1]
        prev_label = jnp.asarray(obs["prev_label"], jnp.int32)
        labelled = has_label(prev_label, n_classes)
        beta = jax.nn.sigmoid(meta_params["write_logit"])
        value = meta_params["values"][jnp.minimum(prev_label, n_classes - 1)]
        retrieved = state.memory @ state.prev_key
        written = state.memory + beta * jnp.outer(value - retrieved, state.prev_key)
        memory = jnp.where(labelled, written, state.memory)
        query = input_key(meta_params, x)
        logits = (memory @ query) @ meta_params["w_out"] + meta_params["b_out"]
        return FastWeightState(memory, query, state.readout_bias), logits

    return Learner(
        name="fast_weights",
        meta_init=meta_init,
        init=init,
        step=step,
        config={
            "key_size": key_size,
            "value_size": value_size,
            "readout_scale": readout_scale,
            "write_strength": write_strength,
        },
        description=(
            "Delta-rule fast weight memory (after Schlag et al. 2021): input keys, label values; "
            "meta-params depend on input size and class count."
        ),
        has_meta_params=True,
        task_spec_of=task_spec_of,
    )
