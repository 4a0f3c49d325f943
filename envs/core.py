"""The pure-JAX core shared by the classification-stream environments.

A *task* is a seeded transformation of one dataset split: which dataset classes take part and
which label each gets (class subset + label permutation), an optional Glorot-uniform input
projection and an optional pixel permutation. An *episode* is a stream of ``T`` examples of one
task. Both are sampled on device from a JAX key inside ``jit``: ``reset`` builds the whole stream
at once (example indices and labels; the transformed inputs too unless ``params.lazy_inputs``), so
``step`` is a gather plus a few scalar ops. This is the hot path of meta-training, called millions
of times.

Stream semantics. At step ``t`` the observation is
``{"x": x_t, "prev_label": r_{t-1}}`` where ``r_{t-1} = y_{t-1}`` if the label of step ``t-1`` is
revealed and ``r_{t-1} = C`` ("none") otherwise, with ``r_{-1} = C``. The action predicts ``y_t``:

* ``action_type="discrete"``: an integer ``a``; reward ``1[a = y_t]``.
* ``action_type="logits"``: a vector ``z ∈ R^C``; reward ``log softmax(z)_{y_t}
  = z_{y_t} - log Σ_c exp z_c`` (the negative online cross-entropy).

Steps ``t < n_support`` (few-shot support steps) are not scored: reward 0, ``info["scored"]``
False, and their label is revealed. Online streams have ``n_support = 0`` and reveal every
label; few-shot query steps are scored and their labels are withheld. Episodes never terminate;
they are truncated after ``T`` steps.

Invalid actions (a class outside ``[0, C)``, non-finite logits) are scored as wrong, never
crash the functional path, and raise ``info["invalid_action"]``. For logits the reward of an
invalid action is :data:`INVALID_LOG_PROB`, the log-probability of a prediction that gave the
true class probability ``1e-8``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vsml_bench.data import transforms
from vsml_bench.envs import rng
from vsml_bench.protocol import TaskSpec

ACTION_TYPES = ("discrete", "logits")
#: Reward of a non-finite logits action: ``log(1e-8)``, i.e. scored as a confident mistake.
INVALID_LOG_PROB = float(np.log(1e-8))


def label_log_prob(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``log softmax(logits)[label]`` over the last axis: the reward of a logits action.

    The one online cross-entropy of the library (its negative): the env's reward, the
    meta-training loss and, through :func:`label_log_prob_np`, the Gymnasium envs and the
    leaderboard. Shapes ``[..., C]`` and ``[...]``; computed in float32 as
    ``jax.nn.log_softmax`` does (shift by the max, then subtract the log-sum-exp).
    """
    log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return jnp.take_along_axis(log_probs, jnp.asarray(labels)[..., None], axis=-1)[..., 0]


def label_log_prob_np(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """:func:`label_log_prob` in NumPy, on the host, in the dtype of ``logits``.

    The same arithmetic step for step (``shifted = z - max z``, then ``shifted[label] -
    log(sum(exp(shifted)))``): float32 logits give JAX's float32 values, float64 logits a float64
    score. Rows with a non-finite logit give NaN or infinity; callers substitute their own value.
    """
    logits = np.asarray(logits)
    with np.errstate(all="ignore"):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=-1))
    picked = np.take_along_axis(shifted, np.asarray(labels)[..., None], axis=-1)[..., 0]
    return picked - log_z


def _static(**kwargs: Any) -> Any:
    """A dataclass field that is pytree metadata (static under ``jit``)."""
    return field(metadata={"static": True}, **kwargs)


@dataclass(frozen=True)
class ClassificationParams:
    """Data and static configuration of a classification-stream environment (a pytree).

    Array fields are pytree leaves (on device, traced under ``jit``); the rest is hashable
    metadata, so two params with different configurations compile separately.

    Attributes:
      x: ``[N, D]`` examples of the split, flattened after the make-time transforms (resize);
        ``uint8`` or ``float32``. The model input is ``x * x_scale + x_shift``.
      y: ``int32[N]`` dataset labels in ``0 .. n_dataset_classes - 1``.
      class_index: ``int32[n_dataset_classes, M]``: row ``c`` lists the indices of the examples of
        class ``c`` in its first ``class_count[c]`` entries (the rest is padding).
      class_count: ``int32[n_dataset_classes]``.
      dataset, split: where the data came from (provenance).
      n_dataset_classes: classes of the split.
      n_classes: ``C``, classes of a task (the action space).
      stream_length: ``T``.
      input_shape: shape of ``obs["x"]`` (``(D,)`` when flattened).
      example_shape: shape of one example before flattening (``(H, W, C)`` for images after any
        resize, ``(D,)`` for vectors); used for rendering.
      x_scale, x_shift: affine normalisation applied at ``reset`` (pixel scaling and dataset
        statistics folded into one multiply-add).
      projection: multiply inputs by a task's Glorot-uniform ``D x D`` matrix.
      permute_labels: map task classes to labels in a random order (else in dataset order).
      permute_pixels: permute the ``D`` input features with a task's random permutation.
      action_type: ``"discrete"`` or ``"logits"``.
      lazy_inputs: keep the stream in the state as example indices into ``x`` and normalise each
        observation at ``step`` (an ``[N, D]`` gather of one row), instead of storing the
        ``float32[T, D]`` transformed inputs at ``reset``. Observations are identical either
        way; lazily the state is ``D`` times smaller, ``reset`` writes no inputs, and ``step``
        reads one example from the (cache-resident for small datasets) dataset rather than a
        row of a large per-stream array: the batched jitted paths (:func:`rollout`, the vector
        env) use it. Tasks with a projection or pixel permutation still store their inputs
        (a ``D x D`` product per step would cost more than storing them).
    """

    x: jax.Array
    y: jax.Array
    class_index: jax.Array
    class_count: jax.Array
    dataset: str = _static()
    split: str = _static()
    n_dataset_classes: int = _static()
    n_classes: int = _static()
    stream_length: int = _static()
    input_shape: tuple[int, ...] = _static()
    example_shape: tuple[int, ...] = _static(default=())
    x_scale: float = _static(default=1.0)
    x_shift: float = _static(default=0.0)
    projection: bool = _static(default=False)
    permute_labels: bool = _static(default=True)
    permute_pixels: bool = _static(default=False)
    action_type: str = _static(default="discrete")
    lazy_inputs: bool = _static(default=False)

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_support(self) -> int:
        """Unscored steps at the start of an episode whose labels are revealed (0 online)."""
        return 0

    def replace(self, **changes: Any) -> ClassificationParams:
        """A copy with some fields changed, e.g. ``params.replace(action_type="logits")``."""
        return dataclasses.replace(self, **changes)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Task:
    """One sampled task (a pytree).

    Attributes:
      classes: ``int32[C]``: task label ``j`` is dataset class ``classes[j]``.
      projection: ``float32[D, D]`` Glorot-uniform matrix ``W`` (inputs become ``x @ W``), or None.
      pixel_permutation: ``int32[D]`` (inputs become ``x[perm]``, before the projection), or None.
    """

    classes: jax.Array
    projection: jax.Array | None = None
    pixel_permutation: jax.Array | None = None


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class EnvState:
    """State of one episode (a pytree).

    The stream is held one of two ways (see ``ClassificationParams.lazy_inputs``): ``xs`` (the
    transformed inputs) or ``indices`` (rows of ``params.x``, normalised at each step); the other
    field is None. :meth:`ClassificationEnv.stream_inputs` gives the inputs either way.

    Attributes:
      xs: ``float32[T, D]`` the transformed inputs of the whole stream, or None.
      labels: ``int32[T]`` their task labels.
      t: index of the next example to predict.
      prev_label: what ``obs["prev_label"]`` shows at step ``t``.
      n_correct, n_scored: running counts over the scored steps so far.
      indices: ``int32[T]`` the stream's examples (rows of ``params.x``), or None.
    """

    xs: jax.Array | None
    labels: jax.Array
    t: jax.Array
    prev_label: jax.Array
    n_correct: jax.Array
    n_scored: jax.Array
    indices: jax.Array | None = None


#: Up to this many classes, :func:`sample_classes` ranks its sort keys by comparing all pairs.
_SMALL_PERMUTATION = 64


def small_permutation_size(n: int) -> bool:
    """Whether :func:`_small_permutation` serves ``n`` (it compares all ``n^2`` pairs)."""
    return 2 <= n <= _SMALL_PERMUTATION


def _small_permutation(key: jax.Array, n: int) -> jax.Array:
    """``jax.random.permutation(key, n)`` for ``2 <= n <= 1625``, without a sort.

    JAX shuffles by sorting ``arange(n)`` (stably) by 32-bit random keys from
    ``split(key)[1]``, in one round for these ``n``. Here element ``i`` goes to its stable rank
    ``#{j: k_j < k_i} + #{j < i: k_j = k_i}``, found by comparing all pairs: the same
    permutation (tested against ``jax.random.permutation``), in a few fusions rather than a
    sort per task, which was the largest single cost of a batched reset on CPU.
    """
    _, subkey = rng.split(key)
    k = rng.bits(subkey, n)
    i = jnp.arange(n, dtype=jnp.int32)
    before = (k[None, :] < k[:, None]) | ((k[None, :] == k[:, None]) & (i[None, :] < i[:, None]))
    rank = before.sum(axis=1, dtype=jnp.int32)  # rank[i]: where element i goes
    return jnp.sum(jnp.where(rank[None, :] == i[:, None], i[None, :], 0), axis=1, dtype=jnp.int32)


def permutation(key: jax.Array, n: int) -> jax.Array:
    """``jax.random.permutation(key, n)`` as int32, sort-free for small ``n``."""
    if small_permutation_size(n):
        return _small_permutation(key, n)
    return jax.random.permutation(key, n).astype(jnp.int32)


def random_projection(key: jax.Array, d: int) -> jax.Array:
    """:func:`vsml_bench.data.transforms.random_projection` ``(key, d)``, drawn by :mod:`rng`."""
    limit = math.sqrt(6.0 / (d + d))  # Glorot uniform, as transforms.glorot_uniform
    return rng.uniform(key, d * d, -limit, limit).reshape(d, d)


def sample_classes(key: jax.Array, n_dataset_classes: int, n: int, permute: bool) -> jax.Array:
    """The dataset classes of a task's labels ``0 .. n-1``: a uniformly random ``n``-subset.

    With ``permute`` the subset is in random order (label permutation), else ascending, so that
    ``n = n_dataset_classes, permute=False`` is the identity. The classes are those of
    :func:`vsml_bench.data.transforms.class_subset` (the first ``n`` of a random permutation).
    """
    if n == n_dataset_classes and not permute:
        return jnp.arange(n, dtype=jnp.int32)
    if small_permutation_size(n_dataset_classes):
        chosen = _small_permutation(key, n_dataset_classes)[:n]
    else:
        chosen = transforms.class_subset(key, n_dataset_classes, n)
    return chosen if permute else jnp.sort(chosen)


class ClassificationEnv:
    """Shared functional core of :class:`OnlineClassification` and :class:`FewShotClassification`.

    Subclasses define :meth:`sample_indices` (which examples form the stream, with their labels).
    All methods are pure functions of their arguments; the object holds no state.

    Params and ``default_params`` (the one difference from gymnax). The params carry the
    dataset (the examples as device arrays), so ``reset`` and ``step`` always take them as an
    argument: a jitted function then takes the data as an input, where gymnax's optional
    ``params=None`` would bake the whole dataset into the compiled program as a constant. The
    env object holds only the recipe of its default params, ``dataset`` and ``options`` (the
    keyword arguments of :func:`vsml_bench.envs.make`); :attr:`default_params` builds them, so
    ``env, params = make(id, **kw)`` gives ``env.default_params`` equal to ``params``, as
    ``gymnax.make`` does. A bare ``OnlineClassification()`` has the embedded ``digits`` data and
    ``make``'s defaults.

    Args:
      dataset: the data registry name :attr:`default_params` loads (default: embedded digits).
      **options: the options of :func:`vsml_bench.envs.make` for :attr:`default_params`.
    """

    name = "classification"

    def __init__(self, dataset: str = "digits", **options: Any):
        self.dataset = dataset
        self.options = dict(options)

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.dataset!r}{options})"

    @property
    def default_params(self) -> ClassificationParams:
        """The params :func:`vsml_bench.envs.make` builds for this env's dataset and options.

        Built afresh on each access (a data load, from the parsed-array cache after the first
        time): keep the result, or the ``params`` that ``make`` returned, which are equal.
        """
        from vsml_bench.envs.factory import make_from  # factory imports this module

        return make_from(self.name, self.dataset, **self.options)[1]

    # ----------------------------------------------------------------- tasks and reset

    def sample_task(self, key: jax.Array, params: ClassificationParams) -> Task:
        """Sample a task: class subset + labels, projection and pixel permutation."""
        k_classes, k_projection, k_pixels = rng.split(key, 3)
        classes = sample_classes(
            k_classes, params.n_dataset_classes, params.n_classes, params.permute_labels
        )
        d = params.input_size
        # Glorot-uniform W [D, D], a = sqrt(6 / 2D): projected inputs keep the variance of the
        # normalised ones (Var[(xW)_j] = D Var[x] a^2 / 3 = Var[x]), the VSML augmentation.
        projection = random_projection(k_projection, d) if params.projection else None
        pixels = permutation(k_pixels, d) if params.permute_pixels else None
        return Task(classes=classes, projection=projection, pixel_permutation=pixels)

    def sample_indices(
        self, key: jax.Array, task: Task, params: ClassificationParams
    ) -> tuple[jax.Array, jax.Array]:
        """``(indices int32[T], labels int32[T])``: the stream's examples and their task labels."""
        raise NotImplementedError

    @staticmethod
    def normalise(x: jax.Array, params: ClassificationParams) -> jax.Array:
        """Dataset rows ``[..., D]`` as ``float32`` model inputs: ``x * x_scale + x_shift``."""
        return x.astype(jnp.float32) * jnp.float32(params.x_scale) + jnp.float32(params.x_shift)

    def transform_inputs(self, x: jax.Array, task: Task, params: ClassificationParams) -> jax.Array:
        """Inputs ``[T, D]`` as the learner sees them: normalise, permute pixels, project."""
        x = self.normalise(x, params)
        if task.pixel_permutation is not None:
            x = transforms.permute_pixels(x, task.pixel_permutation)
        if task.projection is not None:
            x = transforms.project(x, task.projection)
        return x

    def reset_to_task(
        self, key: jax.Array, task: Task, params: ClassificationParams
    ) -> tuple[dict[str, jax.Array], EnvState]:
        """Start an episode of a given task; ``key`` only picks the examples and their order."""
        indices, labels = self.sample_indices(key, task, params)
        lazy = params.lazy_inputs and task.projection is None and task.pixel_permutation is None
        xs = None if lazy else self.transform_inputs(params.x[indices], task, params)
        none = jnp.int32(params.n_classes)
        zero = jnp.int32(0)
        state = EnvState(
            xs=xs,
            labels=labels,
            t=zero,
            prev_label=none,
            n_correct=zero,
            n_scored=zero,
            indices=indices if lazy else None,
        )
        return self.get_obs(state, params), state

    def stream_inputs(self, state: EnvState, params: ClassificationParams) -> jax.Array:
        """``float32[T, D]`` the transformed inputs of the state's stream, however it is held."""
        if state.xs is not None:
            return state.xs
        return self.normalise(params.x[state.indices], params)

    def split_key(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(task_key, order_key)``: the two halves of a reset key."""
        task_key, order_key = rng.split(key)
        return task_key, order_key

    def reset(
        self, key: jax.Array, params: ClassificationParams
    ) -> tuple[dict[str, jax.Array], EnvState]:
        """Sample a task and a stream of it: ``task_key, order_key = split(key)``."""
        task_key, order_key = self.split_key(key)
        return self.reset_to_task(order_key, self.sample_task(task_key, params), params)

    # ---------------------------------------------------------------------- stepping

    def get_obs(self, state: EnvState, params: ClassificationParams) -> dict[str, jax.Array]:
        t = jnp.minimum(state.t, params.stream_length - 1)
        if state.xs is not None:
            x = jax.lax.dynamic_index_in_dim(state.xs, t, keepdims=False)
        else:  # lazy_inputs: normalise the example now (the same expression as at reset)
            row = jax.lax.dynamic_index_in_dim(state.indices, t, keepdims=False)
            x = self.normalise(jax.lax.dynamic_index_in_dim(params.x, row, keepdims=False), params)
        # Past the end there is no next example: show zeros (only the revealed label matters).
        x = jnp.where(state.t < params.stream_length, x, 0.0)
        return {"x": x.reshape(params.input_shape), "prev_label": state.prev_label}

    def score(
        self, action: jax.Array, label: jax.Array, params: ClassificationParams
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(reward, correct, valid)`` of one action against the true label (reward unmasked)."""
        if params.action_type == "discrete":
            action = jnp.asarray(action)
            valid = (action >= 0) & (action < params.n_classes)
            correct = valid & (action == label)
            return correct.astype(jnp.float32), correct, valid
        logits = jnp.asarray(action, jnp.float32)
        valid = jnp.all(jnp.isfinite(logits))
        log_prob = label_log_prob(logits, label)
        correct = valid & (jnp.argmax(logits) == label)
        reward = jnp.where(valid, log_prob, jnp.float32(INVALID_LOG_PROB))
        return reward, correct, valid

    def step(
        self,
        key: jax.Array,
        state: EnvState,
        action: jax.Array,
        params: ClassificationParams,
    ) -> tuple[dict[str, jax.Array], EnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """Score the prediction of example ``t`` and show example ``t + 1``.

        ``key`` is unused (the stream was fixed at reset); it is kept for the gymnax signature.
        Stepping past the end is a no-op that scores nothing and returns ``truncated=True``.
        """
        del key
        n_steps = params.stream_length
        in_stream = state.t < n_steps
        t = jnp.minimum(state.t, n_steps - 1)
        label = state.labels[t]
        reward, correct, valid = self.score(action, label, params)
        scored = in_stream & (t >= params.n_support)
        revealed = params.n_support == 0 or t < params.n_support
        n_correct = state.n_correct + (scored & correct).astype(jnp.int32)
        n_scored = state.n_scored + scored.astype(jnp.int32)
        new_state = dataclasses.replace(
            state,
            t=jnp.where(in_stream, state.t + 1, state.t),
            prev_label=jnp.where(revealed, label, params.n_classes).astype(jnp.int32),
            n_correct=n_correct,
            n_scored=n_scored,
        )
        info = {
            "label": label,
            "scored": scored,
            "correct": scored & correct,
            "invalid_action": ~valid,
            "accuracy": n_correct / jnp.maximum(n_scored, 1).astype(jnp.float32),
        }
        reward = jnp.where(scored, reward, 0.0).astype(jnp.float32)
        terminated = jnp.bool_(False)
        truncated = new_state.t >= n_steps
        return self.get_obs(new_state, params), new_state, reward, terminated, truncated, info

    # ------------------------------------------------------------------- descriptions

    def task_spec(self, params: ClassificationParams) -> TaskSpec:
        return TaskSpec(input_shape=tuple(params.input_shape), n_classes=params.n_classes)

    def observation_space(self, params: ClassificationParams):  # -> gymnasium.spaces.Dict
        from gymnasium import spaces

        return spaces.Dict(
            {
                "x": spaces.Box(-np.inf, np.inf, tuple(params.input_shape), np.float32),
                "prev_label": spaces.Discrete(params.n_classes + 1),
            }
        )

    def action_space(self, params: ClassificationParams):  # -> gymnasium.spaces.Space
        from gymnasium import spaces

        if params.action_type == "discrete":
            return spaces.Discrete(params.n_classes)
        return spaces.Box(-np.inf, np.inf, (params.n_classes,), np.float32)

    def num_actions(self, params: ClassificationParams) -> int:
        return params.n_classes
