"""Hebbian fast weights trained by a supervised Oja rule, with meta-learnable scalars.

A fast weight matrix ``W ∈ R^{C×D}`` (zero at the start of each stream) maps the input to
logits, ``z_t = β · W x_t / D``. When the label ``y_{t-1}`` of the previous input arrives, the
post-synaptic activity is clamped to the target ``u = e_{y_{t-1}}`` (one-hot) and ``W`` follows
Oja's rule, one row per output unit, plus a weight decay::

    W ← (1 − λ) W + η (u x_{t-1}ᵀ − diag(u ⊙ u) W)

Oja's normalising term ``−u_c² W_c`` keeps each row bounded; with a one-hot target it turns
row ``c`` into an exponential moving average of the inputs of class ``c``
(``W_c ← (1 − η) W_c + η x``), i.e. a Hebbian prototype memory. Nothing changes on steps
without a label.

Meta-parameters (three scalars, so one set runs on any input size and class count):
``log_lr`` (``η = sigmoid(log_lr)``, kept in (0, 1) so the rule is a contraction), ``decay_logit``
(``λ = sigmoid(decay_logit)``) and ``log_scale`` (``β = exp(log_scale)``). ``meta_init``
returns the hand-set defaults (η = 0.1, λ ≈ 0.0025, β = 4), which already learn; meta-trainers
can tune them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vsml_bench.agents.baselines.common import flat_x, has_label, one_hot_label
from vsml_bench.protocol import Learner, Observation, TaskSpec


class HebbianState(NamedTuple):
    w: jax.Array  # [C, D] fast weights
    prev_x: jax.Array  # [D]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def hebbian(learning_rate: float = 0.1, decay: float = 0.0025, scale: float = 4.0) -> Learner:
    """Supervised Oja-rule fast weights; the config sets the initial meta-parameters."""
    learning_rate, decay, scale = float(learning_rate), float(decay), float(scale)
    if not (0.0 < learning_rate < 1.0 and 0.0 < decay < 1.0 and scale > 0.0):
        raise ValueError("hebbian needs 0 < learning_rate < 1, 0 < decay < 1 and scale > 0")

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict[str, jax.Array]:
        del key, spec
        return {
            "log_lr": jnp.asarray(_logit(learning_rate), jnp.float32),
            "decay_logit": jnp.asarray(_logit(decay), jnp.float32),
            "log_scale": jnp.asarray(math.log(scale), jnp.float32),
        }

    def init(meta_params: dict, key: jax.Array, spec: TaskSpec) -> HebbianState:
        del meta_params, key
        return HebbianState(
            w=jnp.zeros((spec.n_classes, spec.input_size), jnp.float32),
            prev_x=jnp.zeros((spec.input_size,), jnp.float32),
        )

    def step(
        meta_params: dict, state: HebbianState, obs: Observation
    ) -> tuple[HebbianState, jax.Array]:
        x = flat_x(obs)
        n_classes, input_size = state.w.shape
        eta = jax.nn.sigmoid(meta_params["log_lr"])
        lam = jax.nn.sigmoid(meta_params["decay_logit"])
        beta = jnp.exp(meta_params["log_scale"])
        labelled = has_label(obs["prev_label"], n_classes)
        u = one_hot_label(obs["prev_label"], n_classes)
        hebb = u[:, None] * state.prev_x[None, :] - (u * u)[:, None] * state.w
        new_w = (1.0 - lam) * state.w + eta * hebb
        w = jnp.where(labelled, new_w, state.w)
        logits = beta * (w @ x) / input_size
        return HebbianState(w, x), logits

    return Learner(
        name="hebbian",
        meta_init=meta_init,
        init=init,
        step=step,
        config={"learning_rate": learning_rate, "decay": decay, "scale": scale},
        description=(
            "Hebbian fast weights (supervised Oja rule + decay); 3 meta-learnable scalars, any input size."
        ),
        has_meta_params=True,
    )
