"""Online gradient descent baselines: SGD and Adam with batch size 1 (optax).

The model is a linear classifier (``hidden=0``) or an MLP with one hidden layer::

    z = W x + b                                  (hidden = 0)
    z = W2 relu(W1 x + b1) + b2                  (hidden = H > 0)

trained online on the cross-entropy ``L(z, y) = -log softmax(z)_y``. At step ``t`` the learner
holds ``x_{t-1}`` from its previous step; when ``y_{t-1}`` arrives (``prev_label``) it takes one
optimizer step on ``L(f(x_{t-1}; θ), y_{t-1})`` and then predicts ``x_t`` with the new ``θ``.
For plain SGD the update is ``θ ← θ − η ∇_θ L``; for the linear model that is::

    p = softmax(W x + b),  W ← W − η (p − e_y) xᵀ,  b ← b − η (p − e_y).

No update (and no optimizer-state change, e.g. Adam's step count) happens when there is no label.

Initialisation (from the ``init`` key; nothing is meta-learned, ``meta_init`` returns ``{}``):
weight matrices are LeCun-normal (truncated normal with variance ``1 / fan_in``, as
``jax.nn.initializers.lecun_normal``), biases are zero.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vsml_bench.agents.baselines.common import flat_x, has_label, select_tree
from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec


class GradientState(NamedTuple):
    """Per-stream state: model parameters, optimizer state and the last input seen."""

    params: PyTree
    opt_state: PyTree
    prev_x: jax.Array


def init_params(key: jax.Array, input_size: int, n_classes: int, hidden: int) -> dict:
    """LeCun-normal weights, zero biases; one hidden layer when ``hidden > 0``."""
    weight_init = jax.nn.initializers.lecun_normal()
    if hidden <= 0:
        return {
            "w": weight_init(key, (input_size, n_classes), jnp.float32),
            "b": jnp.zeros((n_classes,), jnp.float32),
        }
    key_1, key_2 = jax.random.split(key)
    return {
        "w1": weight_init(key_1, (input_size, hidden), jnp.float32),
        "b1": jnp.zeros((hidden,), jnp.float32),
        "w2": weight_init(key_2, (hidden, n_classes), jnp.float32),
        "b2": jnp.zeros((n_classes,), jnp.float32),
    }


def forward(params: dict, x: jax.Array) -> jax.Array:
    """Logits of the linear model or the one-hidden-layer ReLU MLP."""
    if "w" in params:
        return x @ params["w"] + params["b"]
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def cross_entropy(params: dict, x: jax.Array, label: jax.Array) -> jax.Array:
    """``-log softmax(f(x; θ))_label``."""
    logits = forward(params, x)
    return -jax.nn.log_softmax(logits)[label]


def online_gradient_learner(
    name: str,
    optimizer: optax.GradientTransformation,
    hidden: int,
    config: dict[str, Any],
    description: str,
) -> Learner:
    """Wrap an optax optimizer into a batch-1 online learner (see the module docstring)."""

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict:
        del key, spec
        return {}

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> GradientState:
        del meta_params
        params = init_params(key, spec.input_size, spec.n_classes, hidden)
        return GradientState(
            params=params,
            opt_state=optimizer.init(params),
            prev_x=jnp.zeros((spec.input_size,), jnp.float32),
        )

    def step(
        meta_params: PyTree, state: GradientState, obs: Observation
    ) -> tuple[GradientState, jax.Array]:
        del meta_params
        x = flat_x(obs)
        prev_label = jnp.asarray(obs["prev_label"], jnp.int32)
        n_classes = forward(state.params, x).shape[-1]
        labelled = has_label(prev_label, n_classes)
        # Clamp so the (discarded) gradient of an unlabelled step indexes a valid class.
        safe_label = jnp.minimum(prev_label, n_classes - 1)
        grads = jax.grad(cross_entropy)(state.params, state.prev_x, safe_label)
        updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        params, opt_state = select_tree(
            labelled, (new_params, new_opt_state), (state.params, state.opt_state)
        )
        logits = forward(params, x)
        return GradientState(params, opt_state, x), logits

    return Learner(
        name=name,
        meta_init=meta_init,
        init=init,
        step=step,
        config=config,
        description=description,
        has_meta_params=False,
    )


def sgd(learning_rate: float = 0.1, hidden: int = 0) -> Learner:
    """Online SGD, batch 1: ``θ ← θ − η ∇L``; linear (``hidden=0``) or one ReLU hidden layer."""
    hidden = int(hidden)
    kind = "linear model" if hidden == 0 else f"{hidden}-unit ReLU MLP"
    return online_gradient_learner(
        "sgd",
        optax.sgd(float(learning_rate)),
        hidden,
        {"learning_rate": float(learning_rate), "hidden": hidden},
        f"Online SGD (batch 1, lr {learning_rate:g}) on a {kind}; hand-designed.",
    )


def adam(
    learning_rate: float = 0.01,
    hidden: int = 0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> Learner:
    """Online Adam, batch 1 (optax.adam); linear (``hidden=0``) or one ReLU hidden layer."""
    hidden = int(hidden)
    kind = "linear model" if hidden == 0 else f"{hidden}-unit ReLU MLP"
    return online_gradient_learner(
        "adam",
        optax.adam(float(learning_rate), b1=float(b1), b2=float(b2), eps=float(eps)),
        hidden,
        {
            "learning_rate": float(learning_rate),
            "hidden": hidden,
            "b1": float(b1),
            "b2": float(b2),
            "eps": float(eps),
        },
        f"Online Adam (batch 1, lr {learning_rate:g}) on a {kind}; hand-designed.",
    )
