"""Gymnasium faces of the functional core: an OOP ``gymnasium.Env`` and a batched ``VectorEnv``.

``gym.make("vsml_bench/OnlineDigits-v0", stream_length=100)`` gives a
:class:`ClassificationGymEnv` with NumPy observations; ``gym.make_vec(id, num_envs=N)`` gives a
:class:`ClassificationVectorEnv` that steps ``N`` streams in one jitted call.

Seeding. ``reset(seed=s)`` starts from ``key = jax.random.key(s)``, exactly as the functional
``env.reset(key, params)`` does; ``reset()`` without a seed draws the next key from the env's
``np_random`` (so a seeded reset fixes all later episodes). ``options={"key": k}`` uses a JAX key
directly (e.g. :func:`vsml_bench.envs.stream_keys` of a rollout, to replay stream ``i``), and
``options={"task": t}`` pins the task (an ``int`` seed, a JAX key, or a :class:`Task`) while the
reset key still draws the examples: ``task_key, order_key = split(key)`` and a pinned task
replaces the one ``task_key`` would give. Sub-env ``i`` of a vector env reset with seed ``s``
uses ``jax.random.fold_in(jax.random.key(s), i)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from vsml_bench.envs.core import (
    INVALID_LOG_PROB,
    ClassificationParams,
    Task,
    label_log_prob_np,
)
from vsml_bench.envs.factory import check_num_envs, check_seed, check_streams_fit, make_from
from vsml_bench.errors import UserError

_MAX_SEED = 2**63 - 1
# EnvState fields that change during an episode (the stream xs/indices/labels is fixed at reset).
_COUNTERS = ("t", "prev_label", "n_correct", "n_scored")


_JIT_CACHE: dict[tuple[type, str], Any] = {}


def _jitted(func_env: Any, name: str, build) -> Any:
    """One compiled function per (env class, name), shared by every env instance: the
    functional envs hold no state, and a fresh ``jax.jit`` per instance would compile again."""
    key = (type(func_env), name)
    if key not in _JIT_CACHE:
        _JIT_CACHE[key] = build()
    return _JIT_CACHE[key]


def _step_counters(func_env, state, counters, action, params):
    """``env.step`` that returns the episode's counters but not its stream.

    Returning the whole state would copy the ``[N, T, D]`` stream on every call (hundreds of
    MB at N = 1024); the stream stays an input and only the small counters come back.
    """
    full = dataclasses.replace(state, **counters)
    obs, new, reward, terminated, truncated, info = func_env.step(None, full, action, params)
    counters = {name: getattr(new, name) for name in _COUNTERS}
    return obs, counters, reward, terminated, truncated, info


def _step_scalars(func_env, state, counters, action, params):
    """``(obs["x"], counters, scalars)``: :func:`_step_counters` with every per-env scalar
    (``prev_label``, reward, terminated, truncated and ``info/<key>``) in one flat dict."""
    obs, counters, reward, terminated, truncated, info = _step_counters(
        func_env, state, counters, action, params
    )
    scalars = {
        "prev_label": obs["prev_label"],
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
    }
    scalars.update({"info/" + name: value for name, value in info.items()})
    return obs["x"], counters, scalars


def _is_float(dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.floating))


def _step_packed(func_env, state, counters, action, params):
    """``(x, counters, ints, floats)``: the scalars of :func:`_step_scalars` stacked into one
    ``int32[n]`` and one ``float32[m]`` array in name order (floats: float dtypes, ints: the
    rest), so a vector step copies three arrays to the host instead of ten."""
    x, counters, scalars = _step_scalars(func_env, state, counters, action, params)
    values = [scalars[name] for name in sorted(scalars)]
    ints = [v.astype(jnp.int32) for v in values if not _is_float(v.dtype)]
    floats = [v.astype(jnp.float32) for v in values if _is_float(v.dtype)]
    return x, counters, jnp.stack(ints), jnp.stack(floats)


class InvalidActionError(UserError, ValueError):
    """An action the OOP env cannot score: out of range, wrong shape or type, non-finite."""


def _key_from(seed: int | None, np_random: np.random.Generator) -> jax.Array:
    if seed is not None:
        return jax.random.key(seed)
    return jax.random.key(int(np_random.integers(0, _MAX_SEED)))


def _is_key(value: Any) -> bool:
    return isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)


def _task_from(option: Any, sample_task, params: ClassificationParams) -> Task:
    """A pinned task from ``options["task"]``: an int seed, a JAX key or a :class:`Task`."""
    if isinstance(option, Task):
        return option
    if isinstance(option, int | np.integer) and not isinstance(option, bool):
        return sample_task(jax.random.key(int(option)), params)
    if _is_key(option):
        return sample_task(option, params)
    raise UserError(
        f"options['task'] must be an int seed, a JAX key or a vsml_bench.envs.Task, "
        f"not {type(option).__name__}"
    )


def _image(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An RGB ``uint8`` picture of one input: min-max scaled, upsampled to >= 64 px per side."""
    img = x.reshape(shape) if len(shape) == 3 else x.reshape(1, -1, 1)
    lo, hi = float(img.min()), float(img.max())
    img = ((img - lo) / (hi - lo if hi > lo else 1.0) * 255.0).astype(np.uint8)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    elif img.shape[-1] != 3:
        img = np.repeat(img[..., :1], 3, axis=-1)
    fy = max(1, -(-64 // img.shape[0])) if len(shape) == 3 else 16
    fx = max(1, -(-64 // img.shape[1]))
    return np.repeat(np.repeat(img, fy, axis=0), fx, axis=1)


class ClassificationGymEnv(gym.Env):
    """One classification stream as a ``gymnasium.Env`` with NumPy observations.

    ``reset`` builds the whole episode on device in one jitted call and copies it to host
    memory; ``step`` is then pure NumPy (a few microseconds), scoring exactly as the functional
    ``step`` does. Invalid actions raise :class:`InvalidActionError`; stepping after the end of
    the stream raises ``gymnasium.error.ResetNeeded``.

    Args:
      kind: ``"online"`` or ``"few_shot"``.
      dataset: a data registry name.
      render_mode: ``None``, ``"ansi"`` or ``"rgb_array"`` (the current input as a picture).
      **kwargs: the options of :func:`vsml_bench.envs.make`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        kind: str = "online",
        dataset: str = "digits",
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"not {render_mode!r}"
            )
        self.func_env, self.params = make_from(kind, dataset, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self.func_env.observation_space(self.params)
        self.action_space = self.func_env.action_space(self.params)
        self.task_spec = self.func_env.task_spec(self.params)
        env = self.func_env
        self._sample_task = _jitted(env, "sample_task", lambda: jax.jit(env.sample_task))
        self._reset_to_task = _jitted(env, "reset_to_task", lambda: jax.jit(env.reset_to_task))
        p = self.params
        self._n_classes = p.n_classes
        self._length = p.stream_length
        self._n_support = p.n_support
        self._logits = p.action_type == "logits"
        self._xs: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._t = 0
        self._prev = p.n_classes
        self._n_correct = 0
        self._n_scored = 0

    # ------------------------------------------------------------------------ reset

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=check_seed(seed))
        options = options or {}
        key = options["key"] if "key" in options else _key_from(seed, self.np_random)
        if not _is_key(key):
            raise UserError("options['key'] must be a typed JAX key (jax.random.key(seed))")
        task_key, order_key = self.func_env.split_key(key)
        if options.get("task") is not None:
            task = _task_from(options["task"], self._sample_task, self.params)
        else:
            task = self._sample_task(task_key, self.params)
        _, state = self._reset_to_task(order_key, task, self.params)
        xs, labels = jax.device_get((state.xs, state.labels))
        self._xs = np.asarray(xs, np.float32).reshape((self._length, *self.params.input_shape))
        self._labels = np.asarray(labels, np.int64)
        self._t = 0
        self._prev = self._n_classes
        self._n_correct = 0
        self._n_scored = 0
        return self._obs(), {}

    def _obs(self) -> dict[str, Any]:
        if self._t < self._length:
            x = self._xs[self._t].copy()
        else:
            x = np.zeros(self.params.input_shape, np.float32)
        return {"x": x, "prev_label": np.int64(self._prev)}

    # ------------------------------------------------------------------------- step

    def _check_discrete(self, action: Any) -> int:
        if isinstance(action, int | np.integer) and not isinstance(action, bool | np.bool_):
            a = int(action)
        else:
            arr = np.asarray(action)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.integer):
                raise InvalidActionError(
                    f"the action must be one integer class in 0..{self._n_classes - 1}, "
                    f"got {action!r}"
                )
            a = int(arr)
        if not 0 <= a < self._n_classes:
            raise InvalidActionError(
                f"the action must be a class in 0..{self._n_classes - 1}, got {a}"
            )
        return a

    def _check_logits(self, action: Any) -> np.ndarray:
        try:
            z = np.asarray(action, np.float32)
        except (TypeError, ValueError):
            raise InvalidActionError(
                f"the action must be {self._n_classes} float logits, got {type(action).__name__}"
            ) from None
        if z.shape != (self._n_classes,):
            raise InvalidActionError(
                f"the action must be logits of shape ({self._n_classes},), got shape {z.shape}"
            )
        if not np.isfinite(z).all():
            raise InvalidActionError("the action logits must be finite, got NaN or infinity")
        return z

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._xs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        t = self._t
        if t >= self._length:
            raise gym.error.ResetNeeded(
                f"the stream ended after {self._length} steps; call reset() to start a new one"
            )
        label = int(self._labels[t])
        if self._logits:
            z = self._check_logits(action)
            # float32 on the host, the same arithmetic as the functional env's reward.
            log_prob = float(label_log_prob_np(z, np.asarray(label)))
            correct = int(z.argmax()) == label
            reward = log_prob
        else:
            correct = self._check_discrete(action) == label
            reward = float(correct)
        scored = t >= self._n_support
        if scored:
            self._n_scored += 1
            self._n_correct += correct
        else:
            reward = 0.0
        self._prev = label if (self._n_support == 0 or not scored) else self._n_classes
        self._t = t + 1
        info = {
            "label": label,
            "scored": scored,
            "correct": scored and correct,
            "invalid_action": False,
            "accuracy": self._n_correct / max(self._n_scored, 1),
        }
        return self._obs(), reward, False, self._t >= self._length, info

    # ----------------------------------------------------------------------- render

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode= to make")
            return None
        if self._xs is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        t = min(self._t, self._length - 1)
        if self.render_mode == "rgb_array":
            return _image(self._xs[t], self.params.example_shape or self.params.input_shape)
        prev = "none" if self._prev == self._n_classes else str(self._prev)
        return (
            f"{self.params.dataset}/{self.params.split} step {self._t}/{self._length} "
            f"prev_label={prev} accuracy={self._n_correct}/{self._n_scored}"
        )


class ClassificationVectorEnv(VectorEnv):
    """``num_envs`` independent streams stepped together in one jitted, vmapped call.

    Autoreset is ``NEXT_STEP`` (Gymnasium's default): the ``step`` after a stream is truncated
    starts new episodes and returns their first observations with reward 0. All streams have
    the same length, so they end together. Invalid actions (out of range, non-integer,
    non-finite logits) are scored as wrong and flagged in ``info["invalid_action"]``; only an
    action batch of the wrong shape raises. ``info`` follows Gymnasium's vector convention: each
    key holds an array over envs and ``"_key"`` a boolean mask of the envs that set it.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        num_envs: int = 1,
        kind: str = "online",
        dataset: str = "digits",
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if render_mode is not None:
            raise UserError("the vector env does not render; use the single env to render")
        num_envs = check_num_envs(num_envs)
        self.func_env, params = make_from(kind, dataset, **kwargs)
        check_streams_fit(params, num_envs, lazy=True)
        # The streams never leave the env: hold them as example indices (identical
        # observations, cheaper resets and steps; see ClassificationParams.lazy_inputs).
        self.params = params.replace(lazy_inputs=True)
        self.num_envs = num_envs
        self.render_mode = None
        self.single_observation_space = self.func_env.observation_space(self.params)
        self.single_action_space = self.func_env.action_space(self.params)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.task_spec = self.func_env.task_spec(self.params)
        env = self.func_env
        self._reset_fn = _jitted(
            env, "vmap_reset", lambda: jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
        )
        self._reset_task_fn = _jitted(
            env,
            "vmap_reset_to_task",
            lambda: jax.jit(jax.vmap(env.reset_to_task, in_axes=(0, None, None))),
        )
        self._sample_task = _jitted(env, "sample_task", lambda: jax.jit(env.sample_task))
        self._step_fn = _jitted(
            env,
            "vmap_step_packed",
            lambda: jax.jit(
                jax.vmap(functools.partial(_step_packed, env), in_axes=(0, 0, 0, None))
            ),
        )
        self._scalars_fn = _jitted(
            env,
            "vmap_step_scalars",
            lambda: jax.vmap(functools.partial(_step_scalars, env), in_axes=(0, 0, 0, None)),
        )
        self._layout: tuple[list[tuple[str, Any]], list[tuple[str, Any]]] | None = None
        self._logits = self.params.action_type == "logits"
        self._state = None
        self._needs_reset = False
        self._pinned_task: Task | None = None

    def _reset_all(self, key: jax.Array) -> dict[str, np.ndarray]:
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(self.num_envs))
        if self._pinned_task is None:
            obs, self._state = self._reset_fn(keys, self.params)
        else:
            order_keys = jax.vmap(lambda k: self.func_env.split_key(k)[1])(keys)
            obs, self._state = self._reset_task_fn(order_keys, self._pinned_task, self.params)
        self._needs_reset = False
        return jax.device_get(obs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=check_seed(seed))
        options = options or {}
        task = options.get("task")
        self._pinned_task = (
            None if task is None else _task_from(task, self._sample_task, self.params)
        )
        key = options["key"] if "key" in options else _key_from(seed, self.np_random)
        return self._reset_all(key), {}

    def _actions(self, actions: Any) -> jax.Array:
        n, c = self.num_envs, self.params.n_classes
        if self._logits:
            z = np.asarray(actions, np.float32)
            if z.shape != (n, c):
                raise InvalidActionError(
                    f"actions must be logits of shape ({n}, {c}), got shape {z.shape}"
                )
            return jnp.asarray(z)  # non-finite rows are scored as wrong by the core
        a = np.asarray(actions)
        if a.shape != (n,):
            raise InvalidActionError(f"actions must have shape ({n},), got shape {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            # Non-integral or non-numeric entries become -1: out of range, scored as wrong.
            try:
                f = a.astype(np.float64)
            except (TypeError, ValueError):
                f = np.full(n, -1.0)
            ok = np.isfinite(f) & (f == np.round(f)) & (np.abs(f) < 2**31)
            a = np.where(ok, f, -1.0)
        a = np.clip(a, -1, c).astype(np.int32)  # anything out of range stays out of range
        return jnp.asarray(a)

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        n = self.num_envs
        if self._needs_reset:
            obs = self._reset_all(_key_from(None, self.np_random))
            false = np.zeros(n, bool)
            return obs, np.zeros(n, np.float32), false, false.copy(), {}
        counters = {name: getattr(self._state, name) for name in _COUNTERS}
        action = self._actions(actions)
        if self._layout is None:  # names and dtypes of the packed scalars, from their shapes
            shapes = jax.eval_shape(self._scalars_fn, self._state, counters, action, self.params)
            items = [(name, shapes[2][name].dtype) for name in sorted(shapes[2])]
            self._layout = (
                [item for item in items if not _is_float(item[1])],
                [item for item in items if _is_float(item[1])],
            )
        x, counters, ints, floats = self._step_fn(self._state, counters, action, self.params)
        self._state = dataclasses.replace(self._state, **counters)
        x, ints, floats = jax.device_get((x, ints, floats))
        scalars = {}
        for (name, dtype), column in zip(self._layout[0], ints.T, strict=True):
            scalars[name] = column.astype(dtype)
        for (name, dtype), column in zip(self._layout[1], floats.T, strict=True):
            scalars[name] = column.astype(dtype)
        obs = {"x": x, "prev_label": scalars.pop("prev_label")}
        truncated = scalars.pop("truncated")
        self._needs_reset = bool(truncated.any())
        mask = np.ones(n, bool)
        infos: dict[str, Any] = {}
        for name, value in scalars.items():
            if name.startswith("info/"):
                infos[name[5:]] = value
                infos["_" + name[5:]] = mask
        return obs, scalars["reward"], scalars["terminated"], truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        self._state = None


__all__ = [
    "INVALID_LOG_PROB",
    "ClassificationGymEnv",
    "ClassificationVectorEnv",
    "InvalidActionError",
]
