"""``rollout``: run a JAX learner on ``n_streams`` episodes at once (the meta-training hot path).

Keys. Stream ``i`` of ``rollout(..., key, n_streams)`` uses
``env_key, learner_key = stream_keys(key, i) = jax.random.split(jax.random.fold_in(key, i))``:
the env is reset with ``env.reset(env_key, env_params)`` and the learner starts from
``learner.init(meta_params, learner_key, spec)``. A single stream can therefore be re-run alone,
e.g. ``rollout(..., key, stream_ids=jnp.array([i]))``, or through the Gymnasium env with
``env.reset(options={"key": env_key})``.

Fixed-size learners. When ``learner.task_spec_of(meta_params)`` differs from the task's spec
(a Meta-RNN meta-trained on 7x7 MNIST run on 28x28 Fashion-MNIST), the learner is run through
the seeded, deterministic transform of :mod:`vsml_bench.envs.adaptation` (images resized,
other inputs Glorot-projected, the learner's first ``C_T`` outputs used).

Size. A rollout holds, per stream, the env's stream state, the learner's state and ``T`` steps
of outputs (:func:`rollout_bytes`); one that would need more than
:data:`vsml_bench.envs.factory.MAX_BYTES` is refused at trace time, before anything is
allocated, with the number of bytes it would need (:func:`check_rollout_fits`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vsml_bench.envs import adaptation
from vsml_bench.envs.core import ClassificationEnv, ClassificationParams, EnvState
from vsml_bench.envs.factory import InvalidEnvConfig, check_bytes, env_for, is_int, stream_bytes
from vsml_bench.protocol import Learner, PyTree, TaskSpec


class Rollout(NamedTuple):
    """Per-step results of a rollout; every array is ``[S, T, ...]`` (streams, steps).

    Attributes:
      logits: ``float32[S, T, C]`` the learner's prediction for each example.
      rewards: ``float32[S, T]`` the env's rewards (0 on unscored steps).
      labels: ``int32[S, T]`` the true labels.
      scored: ``bool[S, T]`` False on few-shot support steps.
      correct: ``bool[S, T]`` scored and ``argmax(logits) == label``.
    """

    logits: jax.Array
    rewards: jax.Array
    labels: jax.Array
    scored: jax.Array
    correct: jax.Array


def stream_keys(key: jax.Array, i: int | jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(env_key, learner_key)`` of stream ``i``: ``split(fold_in(key, i))``."""
    env_key, learner_key = jax.random.split(jax.random.fold_in(key, i))
    return env_key, learner_key


def rollout(
    env_params: ClassificationParams,
    learner: Learner,
    meta_params: PyTree,
    key: jax.Array,
    n_streams: int,
    *,
    stream_ids: jax.Array | None = None,
    adaptation_seed: int = adaptation.DEFAULT_SEED,
) -> Rollout:
    """Run ``learner`` online over ``n_streams`` episodes: ``vmap`` over streams, ``scan`` over time.

    At each step the learner maps the observation to logits, and the env scores them: with
    ``action_type="logits"`` the reward is ``log softmax(logits)[y_t]``; with ``"discrete"`` the
    action is ``argmax(logits)`` and the reward ``1[argmax = y_t]``. Pure and ``jit``-able (pass
    ``env_params`` as an argument rather than closing over it, so the dataset is not baked into
    the program as a constant; ``learner`` and ``n_streams`` are static), and differentiable
    with respect to ``meta_params`` through ``logits`` and the logits rewards.

    Args:
      env_params: from :func:`vsml_bench.envs.make`.
      learner: a :class:`vsml_bench.protocol.Learner`.
      meta_params: the learner's meta-parameters.
      key: stream ``i`` uses :func:`stream_keys` ``(key, i)``.
      n_streams: ``S``; ignored when ``stream_ids`` is given.
      stream_ids: optional ``int[S]`` stream numbers to run (e.g. to re-run stream 17 alone).
      adaptation_seed: seed of the input projection that adapts a task to a fixed-size
        learner's meta-parameters (:mod:`vsml_bench.envs.adaptation`); unused otherwise.

    Returns:
      A :class:`Rollout`.
    """
    env = env_for(env_params)
    if stream_ids is None and (not is_int(n_streams) or int(n_streams) < 1):
        raise InvalidEnvConfig(f"n_streams must be a positive integer, not {n_streams!r}")
    # The streams stay inside: hold them as example indices (identical observations, a
    # D-times smaller state, cheaper resets and steps; see ClassificationParams.lazy_inputs).
    env_params = env_params.replace(lazy_inputs=True)

    def start(i: jax.Array, env_key: jax.Array) -> tuple[dict[str, jax.Array], EnvState]:
        del i
        return env.reset(env_key, env_params)

    return _run(
        env, env_params, learner, meta_params, key, n_streams, stream_ids, start, adaptation_seed
    )


def rollout_episodes(
    env_params: ClassificationParams,
    learner: Learner,
    meta_params: PyTree,
    key: jax.Array,
    indices: jax.Array,
    labels: jax.Array,
    *,
    stream_ids: jax.Array | None = None,
    adaptation_seed: int = adaptation.DEFAULT_SEED,
) -> Rollout:
    """Run ``learner`` on fixed, given episodes instead of sampled ones (e.g. published runs).

    Stream ``i`` shows the dataset rows ``indices[i]`` (``int32[S, T]``, rows of
    ``env_params.x``) with task labels ``labels[i]``, normalised and scored exactly as the
    env does for its own streams (few-shot params: the first ``n_way * k_shot`` steps are the
    revealed, unscored support; the rest are scored queries with withheld labels). Only the
    learner's key comes from ``stream_keys(key, i)``. No task transform (projection, pixel or
    label permutation) is applied: the episode is the published one.

    Args:
      env_params: from :func:`vsml_bench.envs.make`, with ``stream_length == T``.
      indices, labels: ``int32[S, T]`` the episodes.
      stream_ids: optional subset of the ``S`` episodes to run (e.g. to re-run episode 3 alone).
      Others as :func:`rollout`.
    """
    env = env_for(env_params)
    indices = jnp.asarray(indices, jnp.int32)
    labels = jnp.asarray(labels, jnp.int32)
    if indices.shape != labels.shape or indices.shape[1] != env_params.stream_length:
        raise ValueError(
            f"episodes of shape {indices.shape} / {labels.shape} do not fit streams of "
            f"{env_params.stream_length} steps"
        )
    env_params = env_params.replace(lazy_inputs=True)

    def start(i: jax.Array, env_key: jax.Array) -> tuple[dict[str, jax.Array], EnvState]:
        del env_key
        zero = jnp.int32(0)
        state = EnvState(
            xs=None,
            labels=labels[i],
            t=zero,
            prev_label=jnp.int32(env_params.n_classes),
            n_correct=zero,
            n_scored=zero,
            indices=indices[i],
        )
        return env.get_obs(state, env_params), state

    return _run(
        env,
        env_params,
        learner,
        meta_params,
        key,
        indices.shape[0],
        stream_ids,
        start,
        adaptation_seed,
    )


def _run(
    env: ClassificationEnv,
    env_params: ClassificationParams,
    learner: Learner,
    meta_params: PyTree,
    key: jax.Array,
    n_streams: int,
    stream_ids: jax.Array | None,
    start: Callable[[jax.Array, jax.Array], tuple[dict[str, jax.Array], EnvState]],
    adaptation_seed: int,
) -> Rollout:
    """``vmap`` over the streams (``stream_ids``, default ``0 .. n_streams - 1``) of a ``scan``
    over the steps of the episode ``start(i, env_key)``."""
    spec = env.task_spec(env_params)
    learner, _ = adaptation.adapt_to_task(learner, meta_params, env_params, spec, adaptation_seed)
    n = int(n_streams) if stream_ids is None else int(jnp.shape(stream_ids)[0])
    check_rollout_fits(env_params, learner, meta_params, spec, n)
    ids = jnp.arange(n) if stream_ids is None else jnp.asarray(stream_ids)
    use_logits = env_params.action_type == "logits"

    def act(logits: jax.Array) -> jax.Array:
        return logits if use_logits else jnp.argmax(logits).astype(jnp.int32)

    def one_stream(i: jax.Array) -> Rollout:
        env_key, learner_key = stream_keys(key, i)
        obs, env_state = start(i, env_key)
        steps = jnp.arange(env_params.stream_length)
        if learner.unroll is None:
            learner_state = learner.init(meta_params, learner_key, spec)
            predictions = None
        else:
            # An observation never depends on earlier predictions: read the whole stream with
            # placeholder actions, let the learner predict every step at once, then replay the
            # stream below so that the env scores those predictions exactly as it scores steps.
            placeholder = act(jnp.zeros((spec.n_classes,), jnp.float32))

            def observe(carry, _):
                obs, env_state = carry
                next_obs, env_state, *_ = env.step(env_key, env_state, placeholder, env_params)
                return (next_obs, env_state), obs

            _, observations = jax.lax.scan(observe, (obs, env_state), steps)
            predictions = learner.unroll(meta_params, learner_key, spec, observations)
            learner_state = None

        def tick(carry, t):
            obs, env_state, learner_state = carry
            if predictions is None:
                learner_state, logits = learner.step(meta_params, learner_state, obs)
            else:
                logits = predictions[t]
            obs, env_state, reward, _, _, info = env.step(
                env_key, env_state, act(logits), env_params
            )
            out = (logits, reward, info["label"], info["scored"], info["correct"])
            return (obs, env_state, learner_state), out

        _, (logits, rewards, labels, scored, correct) = jax.lax.scan(
            tick, (obs, env_state, learner_state), steps
        )
        return Rollout(logits, rewards, labels, scored, correct)

    return jax.vmap(one_stream)(ids)


def rollout_bytes(
    env_params: ClassificationParams,
    learner: Learner,
    meta_params: PyTree,
    spec: TaskSpec,
    n_streams: int,
) -> int:
    """Bytes a rollout of ``n_streams`` streams holds on device, at least.

    Per stream: the env's stream state (:func:`vsml_bench.envs.factory.stream_bytes`), the
    learner's state (its ``init`` evaluated abstractly, :func:`jax.eval_shape`: nothing is
    allocated) and, for each of the ``T`` steps, the outputs ``4 C + 10`` bytes (``float32``
    logits, reward and label, ``bool`` scored and correct); a learner with ``unroll`` holds the
    ``T`` observations instead of a state. Temporaries of the learner's step (and, under a
    gradient, the residuals of the scan) come on top, so this is a lower bound.
    """
    t = int(env_params.stream_length)
    per_stream = stream_bytes(env_params) + t * (4 * int(spec.n_classes) + 10)
    if learner.unroll is None:
        key = jax.random.key(0)
        state = jax.eval_shape(lambda mp, k: learner.init(mp, k, spec), meta_params, key)
        per_stream += sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))
    else:
        per_stream += t * (4 * int(spec.input_size) + 4)
    return int(n_streams) * per_stream


def check_rollout_fits(
    env_params: ClassificationParams,
    learner: Learner,
    meta_params: PyTree,
    spec: TaskSpec,
    n_streams: int,
) -> None:
    """Refuse (:class:`~vsml_bench.envs.factory.InvalidEnvConfig`, one line with the bytes it
    would need) a rollout whose :func:`rollout_bytes` exceed ``factory.MAX_BYTES``."""
    check_bytes(
        rollout_bytes(env_params, learner, meta_params, spec, n_streams),
        f"a rollout of {n_streams} stream(s) of {env_params.stream_length} steps of {learner.name}",
        "run fewer streams at once (n_streams, --n-streams, --n-tasks) or shorter streams",
    )
