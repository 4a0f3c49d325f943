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

The default vector env and ``vectorization_mode="sync"`` give *different* streams for the same
seed: Gymnasium's ``SyncVectorEnv`` resets its sub-env ``i`` with seed ``s + i`` (key
``jax.random.key(s + i)``) and later episodes from each sub-env's own ``np_random``, while the
native vector env folds ``i`` into one key and draws later keys from one ``np_random``. Either
is reproducible; compare runs within one mode.

Processes. ``vectorization_mode="async"`` runs single envs in worker processes, and on Linux
(before Python 3.14) Python starts them with ``fork``. JAX cannot run in a child forked after
it started (its thread pools do not survive ``fork``; the first computation hangs), and
Gymnasium builds one env in the parent before forking, so an env made in such a child raises
:class:`ForkedProcessError` instead of hanging. Pass
``vector_kwargs={"context": "spawn"}`` (or ``"forkserver"``), or use the default native vector
env, which is faster anyway. (Gymnasium offers no way for a registration to choose the start
method: a registered ``vector_kwargs`` would also reach, and break, the default mode.)

Pickling. Both envs pickle as their constructor arguments plus the episode in progress and the
``np_random`` state, not their data set or compiled functions: unpickling rebuilds the env (the
data must be found there too, e.g. through ``VSML_BENCH_DATA``) and continues with identical
observations, rewards and later resets. That is what spawn-based tools (``multiprocessing``
with ``spawn``, Ray) need.

Spaces and spec. ``obs["x"]`` is a ``Box`` with finite bounds (:func:`input_bounds`), so
``gymnasium.utils.env_checker.check_env`` passes without warnings for the default discrete
actions; ``obs["prev_label"]`` is ``Discrete(C + 1)`` and comes as ``int64`` (its dtype) from
both envs. ``env.spec.max_episode_steps`` is the stream length, where every episode truncates
itself (no ``TimeLimit`` wrapper is added for it).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
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


class ForkedProcessError(UserError, RuntimeError):
    """An env made or reset in a process forked after this module's envs had started JAX."""


#: The process in which an env of this module first ran JAX (None: not yet). A forked child
#: inherits the value with the rest of memory, which is how it knows that it is one.
_JAX_PID: int | None = None


def _check_process() -> None:
    """Raise :class:`ForkedProcessError` in a fork of a process whose envs already ran JAX.

    Called before any JAX work of an env (make, reset): there, in such a child, JAX would hang
    forever on locks held by threads that ``fork`` did not copy.
    """
    global _JAX_PID
    pid = os.getpid()
    if _JAX_PID is None:
        _JAX_PID = pid
    elif pid != _JAX_PID:
        raise ForkedProcessError(
            f"this process ({pid}) was forked from one that had already run JAX ({_JAX_PID}), "
            "where JAX hangs; start workers with spawn instead, e.g. gym.make_vec(id, num_envs, "
            "vectorization_mode='async', vector_kwargs={'context': 'spawn'}), or use the "
            "default gym.make_vec(id, num_envs), which steps every stream in one process"
        )


def input_bounds(params: ClassificationParams) -> tuple[float, float]:
    """``(low, high)``, finite: every value ``obs["x"]`` can take lies in ``[low, high]``.

    An input is ``v = r * x_scale + x_shift`` for a stored value ``r`` of the split
    (:meth:`~vsml_bench.envs.core.ClassificationEnv.normalise`; ``uint8`` pixels or floats), so
    ``v`` spans the image of the split's ``[min r, max r]``. That interval is widened by four
    float32 roundings of its terms (XLA may fuse the multiply-add, rounding once where NumPy
    rounds twice) and to include 0, the input shown after a stream's end. A pixel permutation
    moves features but not their values. A projection ``x @ W`` with Glorot-uniform
    ``|W_ij| <= a``, ``a = sqrt(6 / 2D)``, gives ``|(x W)_j| <= a * D * m = sqrt(3 D) * m``,
    ``m`` the largest ``|v|``, widened by ``(D + 2)`` roundings of a float32 sum of ``D``
    products. (One pass over the split at make time.)
    """
    host = np.asarray(params.x)
    r_lo, r_hi = (float(host.min()), float(host.max())) if host.size else (0.0, 0.0)
    scale, shift = float(params.x_scale), float(params.x_shift)
    ends = (r_lo * scale + shift, r_hi * scale + shift)
    eps = float(np.finfo(np.float32).eps)
    pad = 4 * eps * (max(abs(r_lo), abs(r_hi)) * abs(scale) + abs(shift))
    low, high = min(*ends, 0.0) - pad, max(*ends, 0.0) + pad
    if params.projection:
        d = params.input_size
        bound = math.sqrt(3.0 * d) * max(-low, high) * (1.0 + (d + 2) * eps)
        low, high = -bound, bound
    # float32 endpoints rounded outwards, so the Box holds the whole interval.
    low32 = np.nextafter(np.float32(low), np.float32(-np.inf))
    high32 = np.nextafter(np.float32(high), np.float32(np.inf))
    return float(low32), float(high32)


def observation_space(params: ClassificationParams) -> spaces.Dict:
    """``Dict(x=Box(low, high, input_shape, float32), prev_label=Discrete(C + 1))``.

    The functional env's space with the finite bounds of :func:`input_bounds`.
    """
    low, high = input_bounds(params)
    return spaces.Dict(
        {
            "x": spaces.Box(low, high, tuple(params.input_shape), np.float32),
            "prev_label": spaces.Discrete(params.n_classes + 1),
        }
    )


class _EpisodeLengthSpec:
    """``spec.max_episode_steps`` is the stream length, where every episode truncates itself.

    Registration leaves ``max_episode_steps`` unset (a ``TimeLimit`` wrapper would only repeat
    the env's own truncation at a cost per step, and the length depends on the make options);
    Gymnasium then sets ``env.unwrapped.spec`` after construction, and this setter fills the
    length in. An explicit ``gym.make(id, max_episode_steps=n)`` keeps its ``n`` (its
    ``TimeLimit`` wrapper reports it).
    """

    params: ClassificationParams
    _spec: EnvSpec | None = None

    @property
    def spec(self) -> EnvSpec | None:
        return self._spec

    @spec.setter
    def spec(self, spec: EnvSpec | None) -> None:
        if spec is not None and spec.max_episode_steps is None:
            spec = dataclasses.replace(spec, max_episode_steps=self.params.stream_length)
        self._spec = spec


def _restore_rng_and_spec(env: Any, state: dict[str, Any]) -> None:
    """Put back what ``__init__`` resets: the ``np_random`` state and the spec of a pickle."""
    env._np_random = state["np_random"]
    env._np_random_seed = state["np_random_seed"]
    env._spec = state["spec"]


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


#: ClassificationGymEnv attributes of the episode in progress (what a pickle keeps of it).
_EPISODE = ("_xs", "_labels", "_t", "_prev", "_n_correct", "_n_scored")


class ClassificationGymEnv(_EpisodeLengthSpec, gym.Env):
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
        _check_process()
        self._init_kwargs = {"kind": kind, "dataset": dataset, "render_mode": render_mode, **kwargs}
        self.func_env, self.params = make_from(kind, dataset, **kwargs)
        self.render_mode = render_mode
        self.observation_space = observation_space(self.params)
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

    def __getstate__(self) -> dict[str, Any]:
        """The constructor's arguments, the episode and ``np_random``: not the data set or
        compiled functions, which :meth:`__setstate__` rebuilds in whatever process it runs."""
        return {
            "init": self._init_kwargs,
            "episode": {name: getattr(self, name) for name in _EPISODE},
            "np_random": self._np_random,
            "np_random_seed": self._np_random_seed,
            "spec": self._spec,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init"])
        for name, value in state["episode"].items():
            setattr(self, name, value)
        _restore_rng_and_spec(self, state)

    # ------------------------------------------------------------------------ reset

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=check_seed(seed))
        _check_process()
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
        return {"x": x, "prev_label": np.int64(self._prev)}  # Discrete's dtype

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


class ClassificationVectorEnv(_EpisodeLengthSpec, VectorEnv):
    """``num_envs`` independent streams stepped together in one jitted, vmapped call.

    What ``gym.make_vec(id, num_envs=N)`` returns (``vectorization_mode`` unset). Its streams
    for a seed differ from those of ``vectorization_mode="sync"`` (see the module docstring:
    sub-env ``i`` uses ``fold_in(key(s), i)`` here, ``key(s + i)`` there); ``"async"`` needs
    ``vector_kwargs={"context": "spawn"}`` on Linux (JAX cannot run in a forked child).

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
        max_episode_steps: int | None = None,
        **kwargs: Any,
    ):
        if render_mode is not None:
            raise UserError("the vector env does not render; use the single env to render")
        num_envs = check_num_envs(num_envs)
        _check_process()
        self._init_kwargs = {"num_envs": num_envs, "kind": kind, "dataset": dataset, **kwargs}
        self.func_env, params = make_from(kind, dataset, **kwargs)
        if max_episode_steps is not None and max_episode_steps != params.stream_length:
            # gym.make_vec passes a spec's max_episode_steps on; a stream cannot be cut short.
            raise UserError(
                f"max_episode_steps={max_episode_steps!r} differs from the stream length "
                f"{params.stream_length}; episodes end at the stream length, so set stream_length "
                "(few-shot: n_way, k_shot, n_query) instead"
            )
        check_streams_fit(params, num_envs, lazy=True)
        # The streams never leave the env: hold them as example indices (identical
        # observations, cheaper resets and steps; see ClassificationParams.lazy_inputs).
        self.params = params.replace(lazy_inputs=True)
        self.num_envs = num_envs
        self.render_mode = None
        self.single_observation_space = observation_space(self.params)
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

    def __getstate__(self) -> dict[str, Any]:
        """As :meth:`ClassificationGymEnv.__getstate__`: the constructor's arguments, the
        streams in progress (host copies) and ``np_random``."""
        return {
            "init": self._init_kwargs,
            "episode": jax.device_get(
                {"state": self._state, "task": self._pinned_task, "needs_reset": self._needs_reset}
            ),
            "np_random": self._np_random,
            "np_random_seed": self._np_random_seed,
            "spec": self._spec,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["init"])
        episode = jax.tree.map(jnp.asarray, state["episode"])
        self._state, self._pinned_task = episode["state"], episode["task"]
        self._needs_reset = bool(episode["needs_reset"])
        _restore_rng_and_spec(self, state)

    def _host_obs(self, x: np.ndarray, prev_label: np.ndarray) -> dict[str, np.ndarray]:
        """Observations in the dtypes of the observation space (``prev_label``: int64, as the
        single env gives it; the device computes it in int32)."""
        dtype = self.single_observation_space["prev_label"].dtype
        return {"x": x, "prev_label": prev_label.astype(dtype)}

    def _reset_all(self, key: jax.Array) -> dict[str, np.ndarray]:
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(self.num_envs))
        if self._pinned_task is None:
            obs, self._state = self._reset_fn(keys, self.params)
        else:
            order_keys = jax.vmap(lambda k: self.func_env.split_key(k)[1])(keys)
            obs, self._state = self._reset_task_fn(order_keys, self._pinned_task, self.params)
        self._needs_reset = False
        obs = jax.device_get(obs)
        return self._host_obs(obs["x"], obs["prev_label"])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=check_seed(seed))
        _check_process()
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
        _check_process()
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
        obs = self._host_obs(x, scalars.pop("prev_label"))
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
    "ForkedProcessError",
    "InvalidActionError",
    "input_bounds",
    "observation_space",
]
