"""Meta-RNN (Hochreiter, Younger & Conwell 2001, "Learning to learn using gradient descent").

An LSTM reads the stream one example at a time; all learning within a stream happens in its
activations, and its weights are the meta-parameters. At step ``t`` its input is::

    feedback = "label":  i_t = [x_t, onehot_{C+1}(y_{t-1})]          (the (C+1)-th symbol = "none")
    feedback = "error":  i_t = [x_t, softmax(z_{t-1}) − e_{y_{t-1}}, 1[y_{t-1} known]]

    (c_t, h_t) = LSTM(c_{t-1}, h_{t-1}, i_t),      z_t = W_o h_t + b_o

Both feedbacks give an input of size ``D + C + 1``. Meta-parameters: the LSTM (Flax
``OptimizedLSTMCell``, gates ``i, f, g, o``) and the linear read-out ``W_o, b_o``.

Size dependence (stated honestly): the LSTM's input weights have one row per input feature and
per feedback symbol, and the read-out one column per class, so ``meta_init(key, spec)`` builds
meta-parameters **for one (input size, class count)**; they do not transfer to other sizes (use
a fixed projection of the inputs in the task to compare across datasets). The learner declares
this through ``Learner.task_spec_of`` (:func:`task_spec_of`), so ``rollout`` and the harness
adapt other tasks to its shape (:mod:`vsml_bench.envs.adaptation`). Untrained meta-parameters
do not learn; this baseline is meaningful only after meta-training.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vsml_bench.agents.baselines.common import error_signal, flat_x, has_label, one_hot_with_none
from vsml_bench.protocol import Learner, Observation, TaskSpec

FEEDBACKS = ("label", "error")


class MetaRNNCore(nn.Module):
    """One step of the LSTM and its linear read-out."""

    hidden: int
    n_classes: int

    @nn.compact
    def __call__(
        self, carry: tuple[jax.Array, jax.Array], inputs: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        carry, h = nn.OptimizedLSTMCell(self.hidden, name="lstm")(carry, inputs)
        logits = nn.Dense(self.n_classes, name="readout")(h)
        return carry, logits


def task_spec_of(meta_params: dict) -> TaskSpec:
    """The ``(D, C)`` these meta-parameters were built for: input rows ``D + C + 1``, ``C`` outputs."""
    n_classes = meta_params["readout"]["bias"].shape[-1]
    rows = meta_params["lstm"]["ii"]["kernel"].shape[0]
    return TaskSpec((rows - n_classes - 1,), n_classes)


class MetaRNNState(NamedTuple):
    carry: tuple[jax.Array, jax.Array]  # LSTM (c, h), each [hidden]
    prev_logits: jax.Array  # [C]


def meta_rnn(hidden: int = 128, feedback: str = "label") -> Learner:
    """An LSTM over ``[x_t, previous label or error]`` with a linear read-out (see module doc)."""
    hidden = int(hidden)
    if feedback not in FEEDBACKS:
        raise ValueError(f"meta_rnn feedback must be one of {FEEDBACKS}, got {feedback!r}")

    def core(spec: TaskSpec) -> MetaRNNCore:
        return MetaRNNCore(hidden=hidden, n_classes=spec.n_classes)

    def feedback_input(prev_logits: jax.Array, prev_label: jax.Array, n_classes: int) -> jax.Array:
        if feedback == "label":
            return one_hot_with_none(prev_label, n_classes)
        known = has_label(prev_label, n_classes).astype(jnp.float32)
        return jnp.concatenate([error_signal(prev_logits, prev_label, n_classes), known[None]])

    def zero_carry() -> tuple[jax.Array, jax.Array]:
        return (jnp.zeros((hidden,), jnp.float32), jnp.zeros((hidden,), jnp.float32))

    def meta_init(key: jax.Array, spec: TaskSpec) -> dict:
        inputs = jnp.zeros((spec.input_size + spec.n_classes + 1,), jnp.float32)
        return core(spec).init(key, zero_carry(), inputs)["params"]

    def init(meta_params: dict, key: jax.Array, spec: TaskSpec) -> MetaRNNState:
        del meta_params, key
        return MetaRNNState(zero_carry(), jnp.zeros((spec.n_classes,), jnp.float32))

    def step(
        meta_params: dict, state: MetaRNNState, obs: Observation
    ) -> tuple[MetaRNNState, jax.Array]:
        x = flat_x(obs)
        n_classes = state.prev_logits.shape[-1]
        spec = TaskSpec((x.shape[0],), n_classes)
        inputs = jnp.concatenate(
            [x, feedback_input(state.prev_logits, obs["prev_label"], n_classes)]
        )
        carry, logits = core(spec).apply({"params": meta_params}, state.carry, inputs)
        return MetaRNNState(carry, logits), logits

    return Learner(
        name="meta_rnn",
        meta_init=meta_init,
        init=init,
        step=step,
        config={"hidden": hidden, "feedback": feedback},
        description=(
            f"Meta-RNN: LSTM-{hidden} over [x, previous {feedback}] (Hochreiter 2001); "
            "meta-params depend on input size and class count."
        ),
        has_meta_params=True,
        task_spec_of=task_spec_of,
    )
