"""A tiny meta-learnable learner and a tiny synthetic stream, used by the meta-training tests.

The learner is online softmax regression whose initial weights, bias and (log) learning rate
are meta-parameters; the stream is a Gaussian-blob classification task drawn from a key. Both
are small enough that an ES or BPTT step compiles and runs in well under a second.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench.agents.meta.objective import Objective, TaskGroup
from vsml_bench.protocol import Learner, TaskSpec

SPEC = TaskSpec(input_shape=(3,), n_classes=2)
STREAM = 12


def _meta_init(key, spec):
    return {
        "w0": 0.1 * jax.random.normal(key, (spec.input_size, spec.n_classes)),
        "b": jnp.zeros(spec.n_classes),
        "log_lr": jnp.asarray(-1.0),
    }


def _init(meta_params, key, spec):
    del key
    return {
        "w": meta_params["w0"],
        "x": jnp.zeros(spec.input_size),
        "logits": jnp.zeros(spec.n_classes),
    }


def _step(meta_params, state, obs):
    n_classes = state["logits"].shape[0]
    seen = obs["prev_label"] < n_classes
    error = jax.nn.softmax(state["logits"]) - jax.nn.one_hot(obs["prev_label"], n_classes)
    grad = jnp.where(seen, jnp.outer(state["x"], error), 0.0)
    w = state["w"] - jnp.exp(meta_params["log_lr"]) * grad
    x = obs["x"].reshape(-1)
    logits = x @ w + meta_params["b"]
    return {"w": w, "x": x, "logits": logits}, logits


TOY_LEARNER = Learner(
    name="toy", meta_init=_meta_init, init=_init, step=_step, has_meta_params=True
)


def toy_stream(key, spec=SPEC, length=STREAM):
    """Inputs ``[T, D]`` and labels ``[T]`` of a Gaussian-blob task drawn from ``key``."""
    k_means, k_labels, k_noise = jax.random.split(key, 3)
    means = 2.0 * jax.random.normal(k_means, (spec.n_classes, spec.input_size))
    labels = jax.random.randint(k_labels, (length,), 0, spec.n_classes)
    xs = means[labels] + jax.random.normal(k_noise, (length, spec.input_size))
    return xs, labels


def toy_logits(learner, meta_params, key, spec=SPEC, length=STREAM):
    """Run the learner online over one stream: logits ``[T, C]`` and labels ``[T]``."""
    k_task, k_init = jax.random.split(key)
    xs, labels = toy_stream(k_task, spec, length)
    prev = jnp.concatenate([jnp.array([spec.n_classes]), labels[:-1]]).astype(jnp.int32)

    def body(state, inp):
        x, p = inp
        return learner.step(meta_params, state, {"x": x, "prev_label": p})

    _, logits = jax.lax.scan(body, learner.init(meta_params, k_init, spec), (xs, prev))
    return logits, labels


def toy_loss_fn(learner=TOY_LEARNER):
    def loss_fn(meta_params, key, data):
        logits, labels = toy_logits(learner, meta_params, key)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    return loss_fn


def toy_objective(learner=TOY_LEARNER, groups=1):
    return Objective(tuple(TaskGroup(f"toy{i}", toy_loss_fn(learner), 1.0) for i in range(groups)))


def toy_evaluate(learner=TOY_LEARNER):
    key = jax.random.key(123)

    @jax.jit
    def evaluate(meta_params):
        logits, labels = jax.vmap(lambda k: toy_logits(learner, meta_params, k))(
            jax.random.split(key, 16)
        )
        return {"toy_accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}

    return evaluate


@pytest.mark.slow
def test_toy_learner_learns_online():
    meta_params = TOY_LEARNER.meta_init(jax.random.key(0), SPEC)
    meta_params["log_lr"] = jnp.asarray(0.0)
    logits, labels = jax.vmap(lambda k: toy_logits(TOY_LEARNER, meta_params, k, length=40))(
        jax.random.split(jax.random.key(1), 64)
    )
    correct = np.asarray(jnp.argmax(logits, -1) == labels)
    # Later examples are classified better than the first ones: it learns within the stream.
    assert correct[:, 25:].mean() > correct[:, :3].mean() + 0.1
