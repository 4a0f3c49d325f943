"""Run a NumPy/Python learner (not JAX) through the Gymnasium env.

A Python learner is any object with three methods (:class:`PythonLearner`)::

    reset(spec, seed)        start a new stream: forget everything, seed your randomness
    predict(x) -> logits | class   x: float32[*spec.input_shape]; float[C] logits or an int class
    update(x, y)             learn one labelled example (called when its label is revealed)

:func:`python_learner` wraps a zero-argument constructor of such objects into a
:class:`~vsml_bench.protocol.Learner` with ``config["python"] = True``: the same
``init``/``step`` interface as a JAX learner, but run eagerly on NumPy observations, one stream
at a time (the leaderboard harness routes such learners through the Gymnasium env). Its
``step`` calls ``update(x_{t-1}, y_{t-1})`` when ``prev_label`` reveals the previous label,
then ``predict(x_t)`` — the learner never sees the stream protocol.

:func:`run_episodes` drives ``gymnasium.make(env_id)`` episodes with any learner (Python or
JAX) and returns the same per-step record as :func:`vsml_bench.envs.rollout`
(``logits/rewards/labels/scored/correct``, ``[S, T, ...]``), from the same per-stream keys
(:func:`vsml_bench.envs.stream_keys`), so a Python learner is scored exactly like a JAX one.

:func:`sklearn_sgd` is a real example: scikit-learn's ``SGDClassifier.partial_fit`` with the
logistic loss, one example at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from vsml_bench.protocol import Learner, TaskSpec

#: Probability a hard class prediction is given when converted to logits (see
#: :func:`class_to_logits`): confident but never certain, so the log-prob reward stays finite.
CLASS_CONFIDENCE = 0.9


@runtime_checkable
class PythonLearner(Protocol):
    """What a non-JAX learner implements (see the module docstring)."""

    def reset(self, spec: TaskSpec, seed: int) -> None: ...

    def predict(self, x: np.ndarray) -> np.ndarray | int: ...

    def update(self, x: np.ndarray, y: int) -> None: ...


def class_to_logits(label: int, n_classes: int, confidence: float = CLASS_CONFIDENCE) -> np.ndarray:
    """Logits of a hard prediction: ``softmax`` gives ``confidence`` to ``label``, the rest evenly.

    ``z_label = log((C − 1) q / (1 − q))`` and ``z_c = 0`` otherwise, so
    ``softmax(z)_label = q`` and every other class gets ``(1 − q) / (C − 1)``.
    """
    logits = np.zeros(n_classes, np.float32)
    if n_classes > 1:
        logits[int(label)] = math.log((n_classes - 1) * confidence / (1.0 - confidence))
    return logits


def _as_logits(prediction: Any, n_classes: int) -> np.ndarray:
    array = np.asarray(prediction)
    if array.ndim == 0:
        if not np.issubdtype(array.dtype, np.integer) or not 0 <= int(array) < n_classes:
            raise ValueError(
                f"a Python learner's predict() must return {n_classes} logits or an integer "
                f"class in 0..{n_classes - 1}, got {prediction!r}"
            )
        return class_to_logits(int(array), n_classes)
    logits = array.astype(np.float32).reshape(-1)
    if logits.shape != (n_classes,):
        raise ValueError(
            f"a Python learner's predict() returned logits of shape {array.shape}, "
            f"expected ({n_classes},)"
        )
    return logits


def env_action(logits: np.ndarray, use_logits: bool) -> np.ndarray | int:
    """The action to give the Gymnasium env for a learner's ``logits``.

    ``argmax(logits)`` in discrete mode, else the logits. The Gymnasium env refuses non-finite
    logits (an error there is the caller's bug), but a learner that diverges mid-stream must be
    scored, not abort an evaluation: like the functional env, its non-finite predictions count
    as wrong (the caller scores them from the logits it keeps), and the env is given a finite
    stand-in, uniform logits, only to reveal the label and move on.
    """
    if not use_logits:
        return int(np.argmax(logits))
    return logits if np.isfinite(logits).all() else np.zeros_like(logits)


class PythonLearnerState(NamedTuple):
    """Per-stream state of a wrapped Python learner (never traced by JAX).

    ``learner`` is the Python object itself, which learns in place; ``prev_x`` is the input of
    the previous step, learned from once its label arrives.
    """

    learner: PythonLearner
    n_classes: int
    prev_x: np.ndarray | None = None


def seed_from_key(key: Any) -> int:
    """A 31-bit integer seed drawn from a JAX key (for NumPy/scikit-learn randomness)."""
    import jax
    import jax.numpy as jnp

    return int(jax.random.randint(key, (), 0, 2**31 - 1, dtype=jnp.int32))


def python_learner(
    make: Callable[[], PythonLearner],
    name: str,
    description: str,
    config: dict[str, Any] | None = None,
) -> Learner:
    """A :class:`Learner` (``config["python"] = True``) around a Python learner constructor.

    ``init`` builds a fresh object with ``make()`` and calls ``reset(spec, seed)`` with a seed
    drawn from the stream's key; ``step`` updates on the revealed previous example, then
    predicts the current one. Not ``jit``-able: run it with :func:`run_episodes` or the
    leaderboard harness.
    """

    def meta_init(key: Any, spec: TaskSpec) -> dict:
        del key, spec
        return {}

    def init(meta_params: Any, key: Any, spec: TaskSpec) -> PythonLearnerState:
        del meta_params
        learner = make()
        learner.reset(spec, seed_from_key(key))
        return PythonLearnerState(learner=learner, n_classes=spec.n_classes)

    def step(
        meta_params: Any, state: PythonLearnerState, obs: dict[str, Any]
    ) -> tuple[PythonLearnerState, np.ndarray]:
        del meta_params
        x = np.asarray(obs["x"], np.float32)
        prev_label = int(np.asarray(obs["prev_label"]))
        if state.prev_x is not None and 0 <= prev_label < state.n_classes:
            state.learner.update(state.prev_x, prev_label)
        logits = _as_logits(state.learner.predict(x), state.n_classes)
        return state._replace(prev_x=x), logits

    return Learner(
        name=name,
        meta_init=meta_init,
        init=init,
        step=step,
        config={**(config or {}), "python": True},
        description=description,
        has_meta_params=False,
    )


def run_episodes(
    env_id: str,
    learner: Learner,
    n_streams: int | None = None,
    seed: int = 0,
    meta_params: Any = None,
    *,
    stream_ids: Sequence[int] | None = None,
    **env_kwargs: Any,
) -> Any:
    """Run ``learner`` on episodes of ``gymnasium.make(env_id, **env_kwargs)``, stream by stream.

    The one loop that drives a learner through the Gymnasium env (the leaderboard harness runs
    Python learners with it). Streams ``0 .. n_streams - 1``, or the given ``stream_ids``.
    Stream ``i`` resets the env with ``env_key`` and starts the learner from ``learner_key``,
    ``(env_key, learner_key) = vsml_bench.envs.stream_keys(jax.random.key(seed), i)`` — the keys
    :func:`vsml_bench.envs.rollout` uses — so both paths see the same streams. The action is the
    logits when the env's ``action_type`` is ``"logits"``, else their argmax.

    Returns:
      A :class:`vsml_bench.envs.Rollout` of NumPy arrays: ``logits float32[S, T, C]``,
      ``rewards float32[S, T]``, ``labels int32[S, T]``, ``scored bool[S, T]``,
      ``correct bool[S, T]`` (scored and ``argmax(logits) == label``). A non-finite
      prediction is scored as the functional env scores it: wrong, with reward
      :data:`~vsml_bench.envs.INVALID_LOG_PROB` for logits actions and 0 for classes.
    """
    import gymnasium as gym
    import jax

    import vsml_bench  # noqa: F401  (registers the env IDs)
    from vsml_bench import envs
    from vsml_bench.envs import INVALID_LOG_PROB

    if (n_streams is None) == (stream_ids is None):
        raise TypeError("run_episodes takes n_streams or stream_ids, not both or neither")
    ids = range(n_streams) if stream_ids is None else [int(i) for i in stream_ids]
    env = gym.make(env_id, **env_kwargs)
    try:
        spec = env.unwrapped.task_spec
        use_logits = env.unwrapped.params.action_type == "logits"
        if meta_params is None:
            meta_params = learner.meta_init(jax.random.key(seed), spec)
        key = jax.random.key(seed)
        # A JAX learner's step is compiled once; a Python learner's runs as it is.
        step = learner.step if learner.config.get("python") else jax.jit(learner.step)
        streams = []
        for i in ids:
            env_key, learner_key = envs.stream_keys(key, i)
            obs, _ = env.reset(options={"key": env_key})
            state = learner.init(meta_params, learner_key, spec)
            record: dict[str, list] = {"logits": [], "rewards": [], "labels": [], "scored": []}
            while True:
                state, logits = step(meta_params, state, obs)
                logits = np.asarray(logits, np.float32)
                obs, reward, terminated, truncated, info = env.step(env_action(logits, use_logits))
                if info["scored"] and not np.isfinite(logits).all():
                    # Scored as the functional env scores a non-finite prediction: wrong.
                    reward = INVALID_LOG_PROB if use_logits else 0.0
                record["logits"].append(logits)
                record["rewards"].append(reward)
                record["labels"].append(info["label"])
                record["scored"].append(info["scored"])
                if terminated or truncated:
                    break
            streams.append(record)
    finally:
        env.close()

    logits = np.asarray([s["logits"] for s in streams], np.float32)
    labels = np.asarray([s["labels"] for s in streams], np.int32)
    scored = np.asarray([s["scored"] for s in streams], bool)
    finite = np.isfinite(logits).all(axis=-1)
    correct = scored & finite & (np.argmax(logits, axis=-1) == labels)
    return envs.Rollout(
        logits=logits,
        rewards=np.asarray([s["rewards"] for s in streams], np.float32),
        labels=labels,
        scored=scored,
        correct=correct,
    )


# --- example: scikit-learn's SGDClassifier, one example at a time -------------------------------


class SklearnSGDLearner:
    """Logistic regression trained online by ``sklearn.linear_model.SGDClassifier.partial_fit``.

    Each ``update`` is one ``partial_fit`` on a single example (batch 1, the same protocol as the
    JAX baselines). ``predict`` returns ``decision_function`` scores as logits: for two classes
    the score ``s`` of class 1 becomes logits ``[0, s]`` (so ``softmax`` is the logistic
    probability); for more classes the one-vs-rest scores are used as logits. Before the first
    update the logits are uniform.
    """

    def __init__(
        self, learning_rate: str = "optimal", eta0: float = 0.01, alpha: float = 1e-4
    ) -> None:
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.alpha = alpha
        self.model = None
        self.n_classes = 0
        self.fitted = False

    def reset(self, spec: TaskSpec, seed: int) -> None:
        from sklearn.linear_model import SGDClassifier

        self.n_classes = spec.n_classes
        self.model = SGDClassifier(
            loss="log_loss",
            learning_rate=self.learning_rate,
            eta0=self.eta0,
            alpha=self.alpha,
            random_state=seed,
        )
        self.fitted = False

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not self.fitted:
            return np.zeros(self.n_classes, np.float32)
        scores = self.model.decision_function(x.reshape(1, -1))[0]
        if self.n_classes == 2:
            return np.array([0.0, float(scores)], np.float32)
        return np.asarray(scores, np.float32)

    def update(self, x: np.ndarray, y: int) -> None:
        self.model.partial_fit(x.reshape(1, -1), [y], classes=np.arange(self.n_classes))
        self.fitted = True


def sklearn_sgd(learning_rate: str = "optimal", eta0: float = 0.01, alpha: float = 1e-4) -> Learner:
    """scikit-learn ``SGDClassifier`` (logistic loss) fit online with ``partial_fit``."""
    config = {"learning_rate": str(learning_rate), "eta0": float(eta0), "alpha": float(alpha)}
    return python_learner(
        lambda: SklearnSGDLearner(**config),
        name="sklearn_sgd",
        description="scikit-learn SGDClassifier (log loss) via partial_fit, batch 1; a Python learner.",
        config=config,
    )
