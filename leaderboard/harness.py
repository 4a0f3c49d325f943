"""The evaluation harness: run a learner on every task of a suite and write a results file.

For each task the env is built with the suite's kwargs and ``n_streams`` streams are run from
``jax.random.key(task.seed)``; stream ``i`` uses ``vsml_bench.envs.stream_keys(key, i)``, so
any single stream can be re-run later (:func:`rerun_streams`, ``vsml-bench verify``).

* JAX learners run through the jitted :func:`vsml_bench.envs.rollout` (``vmap`` over streams,
  ``lax.scan`` over time).
* Python learners (``learner.config["python"]`` true, e.g. from ``agents/adapter.py``) run
  stream by stream through the Gymnasium env, seeded with the same per-stream keys.

Per stream we keep the correctness of every scored prediction and the online cross-entropy
:math:`\\frac1T\\sum_t -\\log\\mathrm{softmax}(z_t)_{y_t}` (a non-finite prediction counts as
:math:`-\\log 10^{-8}`, the env's penalty). A task whose dataset files are absent is recorded
as "not run: data missing"; one with more classes than a fixed-size learner's meta-parameters
output, as "not run: learner supports at most C classes". After every task the partial
document is written atomically to ``<out>.partial``; re-running the same command resumes after
the last finished task.

Fixed-size learners (``learner.task_spec_of``: a Meta-RNN or Transformer meta-trained on one
input size) are fed each task through the seeded transform of
:mod:`vsml_bench.envs.adaptation` (resize or Glorot projection; the first ``C`` outputs), and
the task's entry records it under ``"adaptation"``. A task with ``episodes`` (e.g. Lake et
al.'s published Omniglot one-shot runs) runs stream ``i`` on published episode ``i``
(:func:`fixed_episodes`) instead of a sampled one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.errors import UserError
from vsml_bench.io import atomic_write_text
from vsml_bench.leaderboard import metrics, schema
from vsml_bench.leaderboard.suites import Suite, Task

#: -log(1e-8): the env's log-probability of a non-finite prediction, as a loss.
INVALID_CE = float(-np.log(1e-8))
#: Cap of one stream's mean CE (the schema bounds numbers; a diverged learner still records).
MAX_CE = 1e6


class LearnerSpecError(UserError):
    """A ``--learner`` argument that does not name a learner we can build."""


# --- learners -----------------------------------------------------------------------------


def parse_learner_spec(text: str) -> tuple[str, str | None]:
    """``"vsml:mnist" -> ("vsml", "mnist")``; ``"sgd" -> ("sgd", None)``."""
    name, _, extra = text.partition(":")
    if not name:
        raise LearnerSpecError(
            f"--learner {text!r} names no learner; use NAME or NAME:PRETRAINED (`vsml-bench learners`)"
        )
    return name, (extra or None)


def build_learner(text: str, meta_trained_on: tuple[str, ...] | None = None, **config: Any) -> Any:
    """A :class:`~vsml_bench.protocol.Learner` from ``NAME[:pretrained-or-path]``.

    After ``:`` comes either a shipped name (``vsml:mnist``, passed on as ``pretrained=``) or
    the path of a meta-parameter file (``vsml:runs/x/best.msgpack``: Flax msgpack, no pickle),
    optionally with a model card beside it (same stem, ``.json``: its ``config``,
    ``meta_trained_on`` and ``sha256`` are used). ``meta_trained_on`` overrides what the
    learner declares (it decides which tasks count as OOD).
    """
    from vsml_bench import agents

    name, extra = parse_learner_spec(text)
    if extra is not None and (
        os.sep in extra or extra.endswith(".msgpack") or Path(extra).is_file()
    ):
        learner = _learner_from_file(name, Path(extra), config)
    else:
        if extra is not None:
            config = {**config, "pretrained": extra}
        learner = agents.make(name, **config)
    if meta_trained_on is not None:
        learner = dataclasses.replace(learner, meta_trained_on=tuple(meta_trained_on))
    return learner


def learner_from_spec(spec: str, results_dir: str | os.PathLike[str]) -> Any:
    """The learner a *results file's* spec names; never a path the file chose.

    ``NAME`` and ``NAME:SHIPPED`` build a registered learner (memoised: learners are immutable,
    and reusing one object reuses its compiled rollout). ``NAME:params/<sha256>.msgpack`` loads
    that file from ``results_dir`` after checking that its bytes hash to its name.
    """
    from vsml_bench.leaderboard import identity

    try:
        name, _, sha = identity.parse_spec(spec)
    except identity.IdentityError as error:
        raise LearnerSpecError(f"learner spec {spec[:80]!r} {error}") from None
    if sha is None:
        return _registered_learner(spec)
    path = Path(results_dir) / identity.PARAMS_FOLDER / f"{sha}.msgpack"
    try:
        data = schema.read_bounded(path, "meta-parameter file")
    except schema.ResultsError as error:
        raise LearnerSpecError(str(error)) from None
    if hashlib.sha256(data).hexdigest() != sha:
        raise LearnerSpecError(
            f"meta-parameter file {path.name} does not hash to its name (sha256 mismatch)"
        )
    return _learner_from_file(name, path, {}, data)


@lru_cache(maxsize=32)
def _registered_learner(spec: str) -> Any:
    return build_learner(spec)


def _learner_from_file(
    name: str, path: Path, config: dict[str, Any], data: bytes | None = None
) -> Any:
    from vsml_bench import agents
    from vsml_bench.agents import pretrained

    if data is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise LearnerSpecError(
                f"cannot read meta-parameter file {path}: {error.strerror or error}"
            ) from None
    from vsml_bench.agents.meta.export import card_path_for

    card: dict[str, Any] = {}
    # <stem>.json beside the file, or the model_card.json of the run whose best.msgpack it is.
    card_path = card_path_for(path)
    if card_path is not None:
        try:
            card = json.loads(schema.read_bounded(card_path, "model card"))
        except (schema.ResultsError, ValueError):
            raise LearnerSpecError(f"model card {card_path} is not valid JSON") from None
        if not isinstance(card, dict):
            raise LearnerSpecError(f"model card {card_path} is not a JSON object")
        sha = card.get("sha256")
        if sha is not None and sha != hashlib.sha256(data).hexdigest():
            raise LearnerSpecError(
                f"{path.name} does not match the sha256 in its model card {card_path.name}"
            )
    try:
        meta_params = pretrained.read_meta_params(data, str(path))
    except pretrained.MetaParamsFileError as error:
        raise LearnerSpecError(str(error)) from None
    card_config = card.get("config") if isinstance(card.get("config"), dict) else {}
    learner = agents.make(name, **{**card_config, **config})
    trained_on = card.get("meta_trained_on", ())
    return dataclasses.replace(
        learner,
        meta_params=meta_params,
        meta_trained_on=tuple(str(d) for d in trained_on) if isinstance(trained_on, list) else (),
        config={**dict(learner.config), "meta_params_file": path.name},
    )


def meta_params_sha256(meta_params: Any) -> str | None:
    """sha256 over every leaf's path, dtype, shape and bytes; None when there are no leaves."""
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(meta_params)[0]
    if not leaves:
        return None
    digest = hashlib.sha256()
    for path, leaf in leaves:
        array = np.asarray(leaf)
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _json_safe(value: Any) -> Any:
    """Learner config as plain JSON (unknown objects become their repr: provenance, not input)."""
    return json.loads(json.dumps(value, default=repr, allow_nan=False))


def is_python_learner(learner: Any) -> bool:
    return bool(dict(learner.config).get("python", False))


# --- provenance ---------------------------------------------------------------------------


def provenance(wall_time_s: float, command: str) -> dict[str, Any]:
    """:func:`vsml_bench.provenance.environment` plus when, how long and the command line."""
    from vsml_bench.provenance import environment

    return {
        **environment(),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_time_s": round(float(wall_time_s), 3),
        "command": command[:2000],
    }


def env_spec_json(task: Task) -> str | None:
    """``gymnasium`` EnvSpec of the task's ID with its kwargs, as JSON (None if unavailable)."""
    import dataclasses

    import gymnasium as gym

    try:
        spec = gym.spec(task.env_id)
        spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **task.make_kwargs()})
        return spec.to_json()
    except Exception:  # provenance only: an unserialisable spec must not fail the evaluation
        return None


# --- running ------------------------------------------------------------------------------


def _scores_from_logits(logits: Any, labels: Any, scored: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(correct bool[S, T_scored], ce float[S])`` from per-step logits of the scored steps."""
    from vsml_bench.envs.core import label_log_prob_np

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    scored = np.asarray(scored, dtype=bool)
    if not (scored == scored[:1]).all():
        raise RuntimeError("streams of one task must score the same steps")
    cols = scored[0]
    logits, labels = logits[:, cols], labels[:, cols]
    finite = np.isfinite(logits).all(axis=-1)
    ce = np.where(finite, -label_log_prob_np(logits, labels), INVALID_CE)  # float64 here
    correct = finite & (logits.argmax(axis=-1) == labels)
    return correct, np.minimum(ce.mean(axis=1), MAX_CE)


def _make_env(task: Task, data_dir: Any = None) -> tuple[Any, Any]:
    """``vsml_bench.envs.make`` for a task, memoised: meta-init and the rollout share one build
    (loading and resizing a dataset can take longer than running a cheap learner on it)."""
    return _make_env_cached(
        task.env_id,
        json.dumps(task.make_kwargs(), sort_keys=True),
        None if data_dir is None else str(data_dir),
    )


@lru_cache(maxsize=2)
def _make_env_cached(env_id: str, kwargs_json: str, data_dir: str | None) -> tuple[Any, Any]:
    from vsml_bench import envs

    kwargs = json.loads(kwargs_json)
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return envs.make(env_id, **kwargs)


def enable_compilation_cache() -> Path | None:
    """Persist XLA programs under ``$VSML_BENCH_CACHE/xla`` so repeated runs skip compiling.

    Compiling the rollout (once per learner and task shape) costs far more than running it on
    a benchmark-sized suite; the cache makes a second ``demo``/``evaluate`` fast. Returns the
    folder, or None when the cache cannot be enabled.
    """
    import jax

    root = Path(os.environ.get("VSML_BENCH_CACHE") or Path.home() / ".cache" / "vsml-bench")
    folder = root / "xla"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError, ValueError):
        return None
    return folder


_JITTED: dict[int, tuple[Any, Callable[..., Any]]] = {}


def _jitted_rollout(learner: Any) -> Callable[..., Any]:
    """One jitted rollout per learner object, reused across tasks and calls.

    The learner (functions + a dict config) is not hashable, so it is closed over rather than
    marked static; env params and meta-params stay arguments (no constant folding of data).
    XLA still compiles once per task shape, but a second run of the same task is free.
    """

    from vsml_bench import envs, xla

    cached = _JITTED.get(id(learner))
    if cached is not None and cached[0] is learner:
        return cached[1]

    @partial(xla.jit, static_argnames="n_streams")
    def run(params: Any, mp: Any, key: Any, ids: Any, n_streams: int) -> tuple[Any, Any, Any]:
        out = envs.rollout(params, learner, mp, key, n_streams, stream_ids=ids)
        return out.logits, out.labels, out.scored

    _JITTED[id(learner)] = (learner, run)  # keeps the learner alive, so its id stays unique
    return run


def run_jax_streams(
    learner: Any,
    env_params: Any,
    meta_params: Any,
    seed: int,
    stream_ids: np.ndarray,
    episodes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the given streams of a task through the jitted rollout (or fixed ``episodes``)."""
    import jax
    import jax.numpy as jnp

    ids = jnp.asarray(stream_ids, jnp.int32)
    if episodes is not None:
        logits, labels, scored = _jitted_episodes(learner)(
            env_params, meta_params, jax.random.key(seed), *episodes, ids
        )
        return _scores_from_logits(logits, labels, scored)
    run = _jitted_rollout(learner)
    logits, labels, scored = run(
        env_params,
        meta_params,
        jax.random.key(seed),
        ids,
        n_streams=len(stream_ids),
    )
    return _scores_from_logits(logits, labels, scored)


_JITTED_EPISODES: dict[int, tuple[Any, Callable[..., Any]]] = {}


def _jitted_episodes(learner: Any) -> Callable[..., Any]:
    """As :func:`_jitted_rollout`, for :func:`vsml_bench.envs.rollouts.rollout_episodes`."""
    from vsml_bench import xla
    from vsml_bench.envs.rollouts import rollout_episodes

    cached = _JITTED_EPISODES.get(id(learner))
    if cached is not None and cached[0] is learner:
        return cached[1]

    @xla.jit
    def run(params: Any, mp: Any, key: Any, indices: Any, labels: Any, ids: Any):
        out = rollout_episodes(params, learner, mp, key, indices, labels, stream_ids=ids)
        return out.logits, out.labels, out.scored

    _JITTED_EPISODES[id(learner)] = (learner, run)
    return run


def fixed_episodes(task: Task, env_params: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(indices int32[S, T], labels int32[S, T])`` of a task's published episodes, or None.

    ``omniglot_all_runs``: the omniglot split ``all_runs`` holds run ``r`` as rows
    ``T r .. T r + T - 1`` (``T = 2 W``: its ``W`` training images in class order, then its
    ``W`` test images), with dataset classes ``W r .. W r + W - 1``
    (:func:`vsml_bench.data.formats.load_omniglot_runs`); the episode's labels are the class
    numbers within the run, ``y - W r``. Support = the training images (revealed), queries =
    the test images (scored), exactly Lake et al.'s one-shot runs.
    """
    if task.episodes is None:
        return None
    if task.episodes != "omniglot_all_runs":
        raise UserError(f"task {task.task_id} names unknown episodes {task.episodes!r}")
    n_way, length = int(env_params.n_classes), int(env_params.stream_length)
    n_rows = int(env_params.y.shape[0])
    if length != 2 * n_way or n_rows % length or n_rows // length < task.n_streams:
        raise UserError(
            f"task {task.task_id}: the all_runs split has {n_rows} images, not "
            f"{task.n_streams} runs of {n_way} training and {n_way} test images"
        )
    indices = np.arange(task.n_streams * length, dtype=np.int32).reshape(task.n_streams, length)
    labels = np.asarray(env_params.y)[indices] - n_way * np.arange(task.n_streams)[:, None]
    return indices, labels.astype(np.int32)


def run_python_streams(
    learner: Any, task: Task, meta_params: Any, stream_ids: np.ndarray, data_dir: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run a non-JAX learner stream by stream through the Gymnasium env (same stream keys).

    :func:`vsml_bench.agents.adapter.run_episodes` with logits actions; non-finite logits are
    kept and scored wrong.
    """
    from vsml_bench.agents.adapter import run_episodes

    kwargs = {**task.make_kwargs(), "action_type": "logits"}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    result = run_episodes(
        task.env_id,
        learner,
        seed=task.seed,
        meta_params=meta_params,
        stream_ids=stream_ids,
        **kwargs,
    )
    return _scores_from_logits(result.logits, result.labels, result.scored)


def results_bytes(n_streams: int, stream_length: int, n_classes: int) -> int:
    """Host bytes the per-step results of ``n_streams`` streams take while they are scored.

    Per step: the logits as ``float32`` and their ``float64`` copy (``12 C`` bytes), the label
    as ``int32`` and its scored copy (8), the scored and correct flags (2).
    """
    return int(n_streams) * int(stream_length) * (12 * int(n_classes) + 10)


def check_task_fits(task: Task, n_streams: int, data_dir: Any = None) -> None:
    """Refuse, in one line with the bytes it would need, ``n_streams`` streams of ``task``
    whose results exceed :data:`vsml_bench.envs.factory.MAX_BYTES` (``evaluate --n-streams``
    and a results file's stream counts are sizes a user chooses)."""
    from vsml_bench.envs.factory import check_bytes

    _, env_params = _make_env(task, data_dir)
    check_bytes(
        results_bytes(n_streams, env_params.stream_length, env_params.n_classes),
        f"the results of {n_streams} stream(s) of {env_params.stream_length} steps of task "
        f"{task.task_id}",
        "use fewer streams (--n-streams) or shorter streams (--stream-length)",
    )


def run_task(
    learner: Any,
    task: Task,
    meta_params: Any,
    stream_ids: np.ndarray | None = None,
    data_dir: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(correct bool[S, T], ce float[S])`` of ``stream_ids`` (default: all) of one task.

    A run whose results would not fit in memory is refused first (:func:`check_task_fits`).
    """
    n_streams = task.n_streams if stream_ids is None else len(stream_ids)
    check_task_fits(task, n_streams, data_dir)
    ids = np.arange(task.n_streams) if stream_ids is None else np.asarray(stream_ids)
    if is_python_learner(learner):
        if task.episodes is not None:
            return run_python_episodes(learner, task, meta_params, ids, data_dir)
        return run_python_streams(learner, task, meta_params, ids, data_dir)
    _, env_params = _make_env(task, data_dir)
    episodes = fixed_episodes(task, env_params)
    return run_jax_streams(learner, env_params, meta_params, task.seed, ids, episodes)


def run_python_episodes(
    learner: Any, task: Task, meta_params: Any, stream_ids: np.ndarray, data_dir: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """A non-JAX learner on a task's published episodes, stepped through the functional env."""
    import jax
    import jax.numpy as jnp

    from vsml_bench import envs
    from vsml_bench.envs.core import EnvState

    env, env_params = _make_env(task, data_dir)
    env_params = env_params.replace(action_type="logits")
    indices, labels = fixed_episodes(task, env_params)
    spec = env.task_spec(env_params)
    key = jax.random.key(task.seed)
    all_logits, all_labels, all_scored = [], [], []
    for i in stream_ids:
        _, learner_key = envs.stream_keys(key, int(i))
        zero = jnp.int32(0)
        state = EnvState(
            xs=None,
            labels=jnp.asarray(labels[i]),
            t=zero,
            prev_label=jnp.int32(spec.n_classes),
            n_correct=zero,
            n_scored=zero,
            indices=jnp.asarray(indices[i]),
        )
        obs = env.get_obs(state, env_params)
        learner_state = learner.init(meta_params, learner_key, spec)
        logits_s, labels_s, scored_s = [], [], []
        for _ in range(task.stream_length):
            obs = {k: np.asarray(v) for k, v in obs.items()}
            learner_state, logits = learner.step(meta_params, learner_state, obs)
            logits = np.asarray(logits, np.float32)
            obs, state, _, _, _, info = env.step(None, state, jnp.asarray(logits), env_params)
            logits_s.append(logits)
            labels_s.append(int(info["label"]))
            scored_s.append(bool(info["scored"]))
        all_logits.append(logits_s)
        all_labels.append(labels_s)
        all_scored.append(scored_s)
    return _scores_from_logits(np.array(all_logits), np.array(all_labels), np.array(all_scored))


class TaskNotApplicable(UserError):
    """A task with more classes than a fixed-size learner's meta-parameters have outputs."""

    def __init__(self, message: str, max_classes: int) -> None:
        super().__init__(message)
        self.max_classes = max_classes


def task_adaptation(learner: Any, task: Task, meta_params: Any, data_dir: Any = None) -> Any:
    """The :class:`~vsml_bench.envs.adaptation.Adaptation` the rollout will apply, or None.

    Raises :class:`TaskNotApplicable` (naming the task and the learner's ``max_classes``) when
    the task has more classes than the learner outputs; :func:`evaluate` records that as the
    task's status (:func:`schema.too_many_classes`) instead of failing the run.
    """
    from vsml_bench.envs import adaptation

    if learner.task_spec_of is None or is_python_learner(learner):
        return None
    env, env_params = _make_env(task, data_dir)
    learner_spec = learner.task_spec_of(meta_params)
    try:
        return adaptation.plan(env_params, env.task_spec(env_params), learner_spec)
    except adaptation.AdaptationError as error:
        raise TaskNotApplicable(f"task {task.task_id}: {error}", learner_spec.n_classes) from None


def task_available(task: Task, data_dir: Any = None) -> bool:
    """Whether the task's dataset files are present (embedded datasets always are)."""
    from vsml_bench import data

    split = dict(task.env_kwargs).get("split")
    return bool(data.is_available(task.dataset, split, data_dir=data_dir))


def _task_meta_params(learner: Any, task: Task, data_dir: Any) -> Any:
    """Meta-parameters for ``task`` (shipped ones, or a seeded ``meta_init`` for its spec)."""
    import jax

    if learner.meta_params is not None:
        return learner.meta_params
    env, params = _make_env(task, data_dir)
    return learner.meta_init(jax.random.key(task.seed), env.task_spec(params))


def learner_record(learner: Any, spec_text: str, name: str | None = None) -> dict[str, Any]:
    """The ``learner`` block of a results file (sha256 of the shipped meta-params, if any)."""
    sha = None if learner.meta_params is None else meta_params_sha256(learner.meta_params)
    return {
        "name": (name or spec_text)[:200],
        "spec": spec_text[:200],
        "description": str(learner.description)[:500],
        "config": _json_safe(dict(learner.config)),
        "meta_trained_on": sorted(set(learner.meta_trained_on)),
        "meta_params_sha256": sha,
    }


def _load_partial(path: Path, header: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished tasks of an earlier interrupted run with the same learner and suite."""
    try:
        doc = schema.parse_results(path.read_bytes())
        if not isinstance(doc, dict):
            return {}
        if doc.get("suite") != header["suite"] or doc.get("learner") != header["learner"]:
            return {}
        done: dict[str, dict[str, Any]] = {}
        for task in doc.get("tasks", []):
            if task["status"] != "ok":
                done[task["task_id"]] = {"status": task["status"]}
                continue
            correct, ce = metrics.decode_task_raw(task["raw"])
            done[task["task_id"]] = {
                "correct": correct,
                "ce": ce,
                "env_spec": task.get("env_spec"),
                "wall_time_s": task.get("wall_time_s", 0.0),
            }
            if task.get("adaptation") is not None:
                done[task["task_id"]]["adaptation"] = task["adaptation"]
        return done
    except (OSError, schema.ResultsError, metrics.RawScoreError, KeyError, TypeError):
        return {}  # unreadable leftovers: start over rather than trust them


def evaluate(
    learner: Any,
    suite: Suite,
    out: str | os.PathLike[str] | None = None,
    *,
    spec_text: str | None = None,
    name: str | None = None,
    data_dir: Any = None,
    progress: bool = True,
    command: str = "",
    on_task: Callable[[Task, str], None] | None = None,
) -> dict[str, Any]:
    """Run ``learner`` on every task of ``suite``; return (and write to ``out``) the results.

    Resumable: finished tasks are kept in ``<out>.partial`` and skipped on the next call with
    the same learner record and suite; the partial file is removed once ``out`` is written.
    """
    from tqdm.auto import tqdm

    spec_text = spec_text or learner.name
    learner_block = learner_record(learner, spec_text, name)
    header = {
        "suite": {
            "id": suite.suite_id,
            "fingerprint": suite.fingerprint(),
            "official": suite.official,
        },
        "learner": learner_block,
    }
    partial = Path(f"{out}.partial") if out is not None else None
    done = _load_partial(partial, header) if partial is not None and partial.exists() else {}
    start = time.perf_counter()
    previous_wall = sum(float(r.get("wall_time_s", 0.0)) for r in done.values())

    def document() -> dict[str, Any]:
        wall = previous_wall + time.perf_counter() - start
        return schema.build_document(
            suite=suite,
            learner=learner_block,
            provenance=provenance(wall, command),
            task_results=done,
        )

    bar = tqdm(
        suite.tasks, desc=f"{spec_text} on {suite.suite_id}", disable=not progress, unit="task"
    )
    for task in bar:
        bar.set_postfix_str(task.task_id)
        if task.task_id in done:
            continue
        if not task_available(task, data_dir):
            done[task.task_id] = {"status": schema.MISSING}
            if on_task:
                on_task(task, schema.MISSING)
        else:
            t0 = time.perf_counter()
            meta_params = _task_meta_params(learner, task, data_dir)
            try:
                adapted = task_adaptation(learner, task, meta_params, data_dir)
            except TaskNotApplicable as error:
                # Recorded, shown on the board, and it makes the entry incomplete: never a
                # silent drop, never a crash of the whole run.
                status = schema.too_many_classes(error.max_classes)
                done[task.task_id] = {"status": status}
                if on_task:
                    on_task(task, status)
                if partial is not None:
                    atomic_write_text(partial, schema.dump_results(document()))
                continue
            correct, ce = run_task(learner, task, meta_params, data_dir=data_dir)
            done[task.task_id] = {
                "correct": correct,
                "ce": ce,
                "env_spec": env_spec_json(task),
                "wall_time_s": time.perf_counter() - t0,
            }
            if adapted is not None:
                done[task.task_id]["adaptation"] = adapted.to_dict()
            if on_task:
                on_task(task, f"accuracy {correct.mean():.3f}")
        if partial is not None:
            atomic_write_text(partial, schema.dump_results(document()))
    doc = document()
    if out is not None:
        atomic_write_text(out, schema.dump_results(doc))
        if partial is not None:
            partial.unlink(missing_ok=True)
    return doc


# --- verification -------------------------------------------------------------------------


def rerun_streams(
    doc: Mapping[str, Any],
    learner: Any,
    n_streams: int,
    seed: int = 0,
    data_dir: Any = None,
) -> list[dict[str, Any]]:
    """Re-run ``n_streams`` random streams (across the tasks that ran) and compare.

    Returns one record per stream: task, stream index, recorded vs re-run accuracy and CE,
    and whether they agree (correctness bits identical, CE within 1e-4 relative).
    """
    ran = [t for t in doc["tasks"] if t["status"] == "ok"]
    if not ran:
        raise UserError("the results file has no task that ran, so there is nothing to verify")
    sha = None if learner.meta_params is None else meta_params_sha256(learner.meta_params)
    if sha != doc["learner"]["meta_params_sha256"]:
        raise UserError(
            "the learner's meta-parameters differ from the ones recorded in the results file "
            "(sha256 mismatch); pass the same --learner NAME:PRETRAINED"
        )
    return rerun_picked(doc, learner, pick_streams(doc, n_streams, seed), data_dir)


def stream_pool(doc: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every ``(task_id, stream)`` of the tasks that ran, in file order."""
    return [
        (t["task_id"], i)
        for t in doc["tasks"]
        if t["status"] == "ok"
        for i in range(t["n_streams"])
    ]


def pick_streams(doc: Mapping[str, Any], n_streams: int, seed: int) -> dict[str, list[int]]:
    """``n_streams`` streams drawn uniformly without replacement from :func:`stream_pool`."""
    pool = stream_pool(doc)
    rng = np.random.default_rng(seed)
    picks: dict[str, list[int]] = {}
    for j in rng.choice(len(pool), size=min(n_streams, len(pool)), replace=False):
        task_id, i = pool[int(j)]
        picks.setdefault(task_id, []).append(i)
    return picks


#: A random draw re-runs a random number of streams of each task, and the jitted rollout
#: compiles once per number: rounding it up to a multiple of this (repeating the last stream,
#: whose extra rows are dropped) bounds the programs a task needs, across draws, to a few.
RERUN_BUCKET = 8


def _bucketed(ids: np.ndarray, learner: Any) -> np.ndarray:
    """``ids`` padded with copies of its last entry to a multiple of :data:`RERUN_BUCKET`
    (JAX learners only: a Python learner steps stream by stream, so padding only costs time)."""
    if is_python_learner(learner):
        return ids
    return np.concatenate([ids, np.repeat(ids[-1:], -len(ids) % RERUN_BUCKET)])


def rerun_picked(
    doc: Mapping[str, Any],
    learner: Any,
    picks: Mapping[str, list[int]],
    data_dir: Any = None,
) -> list[dict[str, Any]]:
    """Re-run the streams ``picks`` (task_id -> stream indices) and compare with ``doc``."""
    from vsml_bench.leaderboard.suites import SUITES

    suite = SUITES[doc["suite"]["id"]]
    ran = [t for t in doc["tasks"] if t["status"] == "ok"]
    records = []
    for entry in ran:
        if entry["task_id"] not in picks:
            continue
        # Env ID and kwargs come from the suite definition, never from the file (a hostile
        # file must not choose e.g. data_dir or download); sizes and seed are checked below.
        task = dataclasses.replace(
            suite.task(entry["task_id"]),
            n_streams=entry["n_streams"],
            stream_length=entry["stream_length"],
            seed=entry["seed"],
        )
        if entry["env_id"] != task.env_id or entry["env_kwargs"] != dict(task.env_kwargs):
            raise UserError(
                f"task {task.task_id} of the results file is not the suite's task "
                f"(env ID or kwargs differ), so its streams cannot be re-run"
            )
        ids = np.array(sorted(picks[task.task_id]))
        recorded_correct, recorded_ce = metrics.decode_task_raw(entry["raw"])
        meta_params = _task_meta_params(learner, task, data_dir)
        correct, ce = run_task(learner, task, meta_params, _bucketed(ids, learner), data_dir)
        for row, i in enumerate(ids):
            same_bits = bool(np.array_equal(correct[row], recorded_correct[i]))
            same_ce = bool(abs(ce[row] - recorded_ce[i]) <= 1e-4 * max(1.0, abs(recorded_ce[i])))
            records.append(
                {
                    "task_id": task.task_id,
                    "stream": int(i),
                    "recorded_accuracy": float(recorded_correct[i].mean()),
                    "rerun_accuracy": float(correct[row].mean()),
                    "recorded_ce": float(recorded_ce[i]),
                    "rerun_ce": float(ce[row]),
                    "agree": same_bits and same_ce,
                }
            )
    return records


def main_command() -> str:
    return " ".join(["vsml-bench", *sys.argv[1:]])[:2000]
