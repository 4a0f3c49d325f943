"""Example 3: plug in your own learner, and meta-learn its learning rate by gradient.

A learner is three pure functions (see ``vsml_bench.protocol``)::

    meta_params = meta_init(key, spec)            # what a meta-trainer may optimise
    state = init(meta_params, key, spec)          # fresh per stream
    state, logits = step(meta_params, state, obs) # one example of the stream

This one is online softmax regression whose only meta-parameter is its log learning rate
``log η``. At step ``t`` it first learns from the previous example, whose label ``y_{t-1}`` has
just arrived as ``obs["prev_label"]``, with one SGD step on the cross-entropy::

    p = softmax(W x_{t-1} + b),  W ← W − η (p − e_y) x_{t-1}ᵀ,  b ← b − η (p − e_y)

and then predicts ``x_t``. Registering it makes it a learner like the built-ins
(``agents.make``, the leaderboard harness). Because ``envs.rollout`` is differentiable in the
meta-parameters when the env scores logits (reward = log-probability of the true label),
``jax.grad`` of the summed reward gives the meta-gradient with respect to ``log η``.

Runs on the embedded digits. Run: ``python examples/03_plug_in_learner.py`` (about 20 s).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from vsml_bench import agents, envs
from vsml_bench.agents import Learner, Observation, TaskSpec


class SoftmaxState(NamedTuple):
    """Per-stream state: a NamedTuple, like every built-in learner's (any pytree would do)."""

    w: jax.Array  # [D, C]
    b: jax.Array  # [C]
    prev_x: jax.Array  # [D] the previous input, learned from when its label arrives


def softmax_regression(learning_rate: float = 0.01) -> Learner:
    """Build the learner; ``learning_rate`` is the initial ``η`` returned by ``meta_init``."""

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict:
        del key, spec  # the same starting point for every task
        return {"log_lr": jnp.log(jnp.float32(learning_rate))}

    def init(meta_params: dict, key: jax.Array, spec: TaskSpec) -> SoftmaxState:
        del meta_params, key  # zero weights: nothing random to draw
        return SoftmaxState(
            w=jnp.zeros((spec.input_size, spec.n_classes), jnp.float32),
            b=jnp.zeros((spec.n_classes,), jnp.float32),
            prev_x=jnp.zeros((spec.input_size,), jnp.float32),
        )

    def step(
        meta_params: dict, state: SoftmaxState, obs: Observation
    ) -> tuple[SoftmaxState, jax.Array]:
        n_classes = state.b.shape[0]
        # Learn from (x_{t-1}, y_{t-1}); "no label yet" (prev_label == C) one-hots to zeros,
        # which a mask turns into no update at all.
        has_label = obs["prev_label"] < n_classes
        target = jax.nn.one_hot(obs["prev_label"], n_classes)
        error = jax.nn.softmax(state.prev_x @ state.w + state.b) - target
        error = jnp.where(has_label, error, 0.0)
        lr = jnp.exp(meta_params["log_lr"])
        w = state.w - lr * jnp.outer(state.prev_x, error)
        b = state.b - lr * error
        x = obs["x"].reshape(-1)
        return SoftmaxState(w, b, prev_x=x), x @ w + b

    return Learner(
        name="softmax_regression",
        meta_init=meta_init,
        init=init,
        step=step,
        config={"learning_rate": learning_rate},
        description="Online softmax regression with a meta-learned learning rate (example).",
        has_meta_params=True,
    )


def main() -> None:
    agents.register_learner("softmax_regression", softmax_regression, overwrite=True)
    learner = agents.make("softmax_regression", learning_rate=0.01)

    env, params = envs.make("vsml_bench/OnlineDigits-v0", stream_length=100, action_type="logits")
    spec = env.task_spec(params)
    meta_params = learner.meta_init(jax.random.key(0), spec)

    def mean_log_prob(meta_params: dict, key: jax.Array) -> jax.Array:
        """Meta-objective: mean log-probability of the true labels over 32 streams."""
        return envs.rollout(params, learner, meta_params, key, n_streams=32).rewards.mean()

    def report(meta_params: dict) -> None:
        out = envs.rollout(params, learner, meta_params, jax.random.key(1), n_streams=64)
        lr = jnp.exp(meta_params["log_lr"])
        print(f"mean online accuracy with lr {lr:.3f}: {out.correct.mean():.3f}")

    report(meta_params)
    # Meta-training: Adam ascends the meta-objective (descends its negative), with fresh
    # training streams at every step; the accuracies above and below use other streams.
    optimizer = optax.adam(0.2)
    opt_state = optimizer.init(meta_params)

    @jax.jit
    def meta_step(meta_params: dict, opt_state: optax.OptState, key: jax.Array):
        value, grad = jax.value_and_grad(mean_log_prob)(meta_params, key)
        updates, opt_state = optimizer.update(jax.tree.map(jnp.negative, grad), opt_state)
        return optax.apply_updates(meta_params, updates), opt_state, value

    for i in range(20):
        key = jax.random.fold_in(jax.random.key(2), i)
        meta_params, opt_state, value = meta_step(meta_params, opt_state, key)
        if i % 5 == 4:
            lr = jnp.exp(meta_params["log_lr"])
            print(f"meta-step {i + 1:2d}: mean log-prob {value:.3f}, lr {lr:.3f}")
    report(meta_params)


if __name__ == "__main__":
    main()
