"""The learners an experiment compares, and how each runs on a batch of streams.

A lineup is a list of learner specs, as ``--learners`` takes them:

* ``NAME:SET`` or ``NAME:PATH``: a meta-trained learner (``vsml:mnist``,
  ``meta_rnn:runs/meta_rnn/best.msgpack``), built as the leaderboard builds it
  (:func:`vsml_bench.leaderboard.harness.build_learner`); fixed-size learners are fed each task
  through :mod:`vsml_bench.envs.adaptation`, as everywhere else;
* ``sgd`` or ``adam``: online gradient descent (batch 1, linear model) whose learning rate is
  chosen from :data:`vsml_bench.agents.baselines.tune.GRIDS` by the mean online accuracy on
  streams of the **train** split of the same task, then run with that rate on the reported
  (test) streams. Rates are never chosen on the streams that give reported figures;
* any other ``NAME``: a registered JAX learner run as is (``nearest_mean``, ``chance``).

:func:`default_specs` is every meta-parameter set shipped at run time
(:func:`vsml_bench.agents.pretrained.shipped`), VSML first, then ``sgd`` and ``adam``: a set
shipped later joins the experiments without a change to their commands.

Every learner of a lineup runs on the identical streams (one key: same tasks, label maps and
example order; same learner init keys), so differences between learners are paired.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from vsml_bench.errors import UserError

#: Learners whose learning rate a lineup tunes on the train split (the rest run as given).
TUNED = ("sgd", "adam")


class LineupError(UserError):
    """A ``--learners`` entry that cannot take part in an experiment."""


def default_specs() -> list[str]:
    """``NAME:SET`` for every shipped meta-parameter set (VSML first), then ``sgd``, ``adam``."""
    from vsml_bench.agents import pretrained

    shipped = pretrained.shipped()
    owners = sorted(shipped, key=lambda name: (name != "vsml", name))
    return [f"{name}:{set_name}" for name in owners for set_name in shipped[name]] + list(TUNED)


@dataclass(frozen=True, eq=False)
class Entrant:
    """One learner of a lineup.

    Attributes:
      spec: the ``--learners`` entry (``"vsml:mnist"``, ``"sgd"``); also its label in tables.
      learner: the built learner (None for a tuned one: it is built per learning rate).
      tuned: ``"sgd"``/``"adam"`` for a learner whose rate is tuned on the train split, else None.
    """

    spec: str
    learner: Any = None
    tuned: str | None = None

    @property
    def meta_params(self) -> Any:
        if self.learner is None or self.learner.meta_params is None:
            return {}
        return self.learner.meta_params

    def describe(self) -> dict[str, Any]:
        """Provenance: the spec, the learner's config and the sha256 of its meta-parameters."""
        from vsml_bench.leaderboard.harness import meta_params_sha256

        if self.tuned is not None:
            return {
                "spec": self.spec,
                "learner": self.tuned,
                "tuned_on": "the tuning streams (see 'streams'), by mean online accuracy",
                "grid": list(tuning_grid(self.tuned)),
            }
        return {
            "spec": self.spec,
            "learner": self.learner.name,
            "config": _json_safe(dict(self.learner.config)),
            "meta_trained_on": list(self.learner.meta_trained_on),
            "meta_params_sha256": meta_params_sha256(self.meta_params),
        }


def _json_safe(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=repr, allow_nan=False))


def build(specs: Sequence[str]) -> list[Entrant]:
    """The entrants of ``specs`` (see the module docstring); refuses duplicates and Python learners."""
    from vsml_bench.leaderboard.harness import build_learner, is_python_learner

    if not specs:
        raise LineupError("--learners is empty; name at least one learner, e.g. vsml:mnist sgd")
    seen: set[str] = set()
    entrants = []
    for spec in specs:
        if spec in seen:
            raise LineupError(f"--learners names {spec!r} twice; list each learner once")
        seen.add(spec)
        if spec in TUNED:
            entrants.append(Entrant(spec, tuned=spec))
            continue
        learner = build_learner(spec)
        if is_python_learner(learner):
            raise LineupError(
                f"--learners {spec!r} is a Python learner, which cannot run inside the jitted "
                "rollouts these experiments use; pick a JAX learner (`vsml-bench learners`)"
            )
        if learner.has_meta_params and learner.meta_params is None:
            raise LineupError(
                f"--learners {spec!r} has meta-parameters but none were given; name a shipped "
                f"set or a file, e.g. {spec}:mnist or {spec}:runs/{spec}/best.msgpack"
            )
        entrants.append(Entrant(spec, learner=learner))
    return entrants


def online_env_id(dataset: str) -> str:
    """The registered online env ID of a data registry name (``mnist -> .../OnlineMNIST-v0``)."""
    from vsml_bench import envs

    return next(i for i, kind, d in envs.all_env_ids() if kind == "online" and d == dataset)


# --- running streams ----------------------------------------------------------------------


class StreamOutputs(NamedTuple):
    """What one learner did on ``S`` streams of ``T`` steps (NumPy arrays).

    Attributes:
      labels: ``int32[S, T]`` the true labels.
      correct: ``bool[S, T]`` ``argmax(logits) == label``.
      p_true: ``float32[S, T]`` ``softmax(logits)[label]``, the probability given to the truth.
      p_pred: ``float32[S, T]`` ``max softmax(logits)``, the confidence of the prediction.
      first_probs: ``float32[T, C]`` ``softmax(logits)`` of stream 0 (for example plots).
    """

    labels: np.ndarray
    correct: np.ndarray
    p_true: np.ndarray
    p_pred: np.ndarray
    first_probs: np.ndarray


def _summarise(rollout: Any) -> tuple[Any, ...]:
    """:class:`StreamOutputs` fields from a :class:`vsml_bench.envs.Rollout` (inside ``jit``)."""
    import jax
    import jax.numpy as jnp

    probs = jax.nn.softmax(rollout.logits.astype(jnp.float32), axis=-1)
    p_true = jnp.take_along_axis(probs, rollout.labels[..., None], axis=-1)[..., 0]
    return rollout.labels, rollout.correct, p_true, probs.max(axis=-1), probs[0]


def _to_numpy(arrays: Sequence[Any]) -> StreamOutputs:
    return StreamOutputs(*(np.asarray(a) for a in arrays))


_PROGRAMS: dict[int, tuple[Any, Callable[..., Any]]] = {}


def _program(learner: Any) -> Callable[..., Any]:
    """One jitted rollout per learner object (env params, meta-params and key are arguments)."""
    from functools import partial

    from vsml_bench import envs, xla

    cached = _PROGRAMS.get(id(learner))
    if cached is not None and cached[0] is learner:
        return cached[1]

    @partial(xla.jit, static_argnames="n_streams")
    def run(env_params: Any, meta_params: Any, key: Any, n_streams: int) -> tuple[Any, ...]:
        return _summarise(envs.rollout(env_params, learner, meta_params, key, n_streams))

    _PROGRAMS[id(learner)] = (learner, run)  # keeps the learner alive, so its id stays unique
    return run


def run_learner(learner: Any, meta_params: Any, env_params: Any, key: Any, n_streams: int):
    """:class:`StreamOutputs` of ``learner`` on streams ``0 .. n_streams-1`` of ``key``."""
    return _to_numpy(_program(learner)(env_params, meta_params, key, n_streams=n_streams))


def tuning_grid(kind: str) -> tuple[float, ...]:
    """The learning rates tried for ``kind`` (``vsml-bench tune``'s grid)."""
    from vsml_bench.agents.baselines.tune import GRIDS

    return tuple(float(lr) for lr in GRIDS[kind])


def gradient_learner(kind: str, learning_rate: Any) -> Any:
    """``agents.make(kind, learning_rate=lr)`` (linear model) for a traced ``learning_rate``.

    The registered factories turn the rate into a Python float; built here from the same
    :func:`~vsml_bench.agents.baselines.gradient.online_gradient_learner` with the same optax
    optimizer (optax's defaults, as the factories use), the rate can be a ``vmap``-ed array, so
    a whole grid compiles once. Tests check that both give the same predictions.
    """
    import optax

    from vsml_bench.agents.baselines.gradient import online_gradient_learner

    optimizers = {"sgd": optax.sgd, "adam": optax.adam}
    return online_gradient_learner(kind, optimizers[kind](learning_rate), 0, {}, "")


@dataclass(frozen=True)
class _GridRun:
    kinds: tuple[str, ...]

    def __call__(self, env_params: Any, rates: dict[str, Any], key: Any, n_streams: int):
        import jax

        from vsml_bench import envs

        def one(kind: str, lr: Any) -> tuple[Any, ...]:
            learner = gradient_learner(kind, lr)
            return _summarise(envs.rollout(env_params, learner, {}, key, n_streams))

        return {k: jax.vmap(lambda lr, k=k: one(k, lr))(rates[k]) for k in self.kinds}


_GRID_PROGRAMS: dict[tuple[str, ...], Callable[..., Any]] = {}


def run_gradient_grid(
    rates: dict[str, Sequence[float]], env_params: Any, key: Any, n_streams: int
) -> dict[str, list[StreamOutputs]]:
    """``{kind: [StreamOutputs per rate]}``: every rate of every kind in one compiled program."""
    from functools import partial

    import jax.numpy as jnp

    from vsml_bench import xla

    kinds = tuple(sorted(rates))
    program = _GRID_PROGRAMS.get(kinds)
    if program is None:
        program = partial(xla.jit, static_argnames="n_streams")(_GridRun(kinds).__call__)
        _GRID_PROGRAMS[kinds] = program
    arrays = {k: jnp.asarray(rates[k], jnp.float32) for k in kinds}
    out = program(env_params, arrays, key, n_streams=n_streams)
    return {k: [_to_numpy([a[i] for a in out[k]]) for i in range(len(rates[k]))] for k in kinds}


def online_accuracy(outputs: StreamOutputs) -> float:
    """Mean online accuracy over all streams and steps (the tuning criterion)."""
    return float(np.mean(outputs.correct))


@dataclass(frozen=True)
class Tuned:
    """A tuned learner's result on one task: the rate chosen on train and its test outputs.

    ``test_scores`` (every rate's mean online accuracy on the reported streams) is recorded
    for transparency only: how much a rate chosen on the test streams would have gained.
    """

    learning_rate: float
    train_scores: dict[str, float]  # rate -> mean online accuracy on the tuning streams
    test_scores: dict[str, float]
    outputs: StreamOutputs


def tuning_params(train_params: Any, test_params: Any, seed: int) -> Any:
    """The test task's params with its data swapped for a train subsample of the same shape.

    From the train split, ``class_count[c]`` of the test split's examples of each class ``c``
    are drawn without replacement (NumPy generator seeded by ``seed``). The task's
    configuration (classes, resolution, projection, permutations, stream length) is the test
    task's, and every array has the test split's shape, so the tuning streams and the test
    streams run through one compiled program (compiling dominates these small runs). Only the
    ``x``, ``y``, ``class_index`` and ``class_count`` leaves differ: the streams show train
    examples only. When the train split has fewer examples of some class, ``train_params``
    comes back unchanged (and the two runs compile separately).
    """
    import jax.numpy as jnp

    from vsml_bench.data import transforms

    test_counts = np.asarray(test_params.class_count)
    train_counts = np.asarray(train_params.class_count)
    if (
        train_counts.shape != test_counts.shape
        or np.any(train_counts < test_counts)
        or train_params.x.shape[1:] != test_params.x.shape[1:]
        or train_params.x.dtype != test_params.x.dtype
    ):
        return train_params
    rng = np.random.default_rng(seed)
    index = np.asarray(train_params.class_index)
    rows = np.sort(
        np.concatenate(
            [
                rng.choice(index[c, : train_counts[c]], test_counts[c], replace=False)
                for c in range(len(test_counts))
            ]
        )
    )
    y = np.asarray(train_params.y)[rows]
    table, counts = transforms.class_index_table(y, len(test_counts))
    if table.shape != tuple(test_params.class_index.shape):
        return train_params
    return dataclasses.replace(
        test_params,
        x=jnp.asarray(np.asarray(train_params.x)[rows]),
        y=jnp.asarray(y, jnp.int32),
        class_index=jnp.asarray(table),
        class_count=jnp.asarray(counts),
    )


def tune_and_run(
    kinds: Sequence[str],
    tune_params: Any,
    test_params: Any,
    tune_key: Any,
    test_key: Any,
    n_streams: int,
) -> dict[str, Tuned]:
    """Choose each kind's rate on ``tune_params`` streams, then report it on the test streams.

    The rate with the highest mean online accuracy on the tuning streams wins (ties: the
    smaller rate). Every rate of the grid also runs on the test streams (one program, one
    compile; see :func:`tuning_params`), and the chosen rate's outputs are reported.
    """
    grids = {k: tuning_grid(k) for k in kinds}
    tune = run_gradient_grid(grids, tune_params, tune_key, n_streams)
    test = run_gradient_grid(grids, test_params, test_key, n_streams)
    out = {}
    for k in kinds:
        tune_acc = [online_accuracy(o) for o in tune[k]]
        test_acc = [online_accuracy(o) for o in test[k]]
        best = int(np.argmax(tune_acc))  # argmax: the first (smaller) rate of ties
        out[k] = Tuned(
            learning_rate=grids[k][best],
            train_scores={repr(lr): round(a, 6) for lr, a in zip(grids[k], tune_acc, strict=True)},
            test_scores={repr(lr): round(a, 6) for lr, a in zip(grids[k], test_acc, strict=True)},
            outputs=test[k][best],
        )
    return out


@dataclass(frozen=True)
class NotRun:
    """A learner that could not run a task (e.g. more classes than a fixed-size learner has)."""

    reason: str


def run_lineup(
    entrants: Sequence[Entrant],
    test_params: Any,
    train_params: Callable[[], Any],
    key: Any,
    n_streams: int,
    seed: int = 0,
) -> dict[str, StreamOutputs | Tuned | NotRun]:
    """Every entrant on the same ``n_streams`` test streams: ``{spec: outputs, Tuned or NotRun}``.

    ``train_params()`` builds the train-split params of the same task; it is called only when
    a tuned entrant needs it, and its examples are subsampled with ``seed``
    (:func:`tuning_params`). Test streams use ``fold_in(key, 0)``, tuning streams
    ``fold_in(key, 1)``: never the same streams, and never test examples.
    """
    import jax

    from vsml_bench.envs.adaptation import AdaptationError

    test_key, tune_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    results: dict[str, StreamOutputs | Tuned | NotRun] = {}
    tuned_kinds = [e.tuned for e in entrants if e.tuned is not None]
    tuned = {}
    if tuned_kinds:
        tune_params = tuning_params(train_params(), test_params, seed)
        tuned = tune_and_run(tuned_kinds, tune_params, test_params, tune_key, test_key, n_streams)
    for entrant in entrants:
        if entrant.tuned is not None:
            results[entrant.spec] = tuned[entrant.tuned]
            continue
        try:
            results[entrant.spec] = run_learner(
                entrant.learner, entrant.meta_params, test_params, test_key, n_streams
            )
        except AdaptationError as error:
            results[entrant.spec] = NotRun(str(error))
    return results


def outputs_of(result: Any) -> StreamOutputs | None:
    """The test outputs of a :func:`run_lineup` value (None for :class:`NotRun`)."""
    if isinstance(result, Tuned):
        return result.outputs
    if isinstance(result, StreamOutputs):
        return result
    return None


def run_command(args: Any, experiment: Any) -> int:
    """``run(args)`` of a lineup experiment module (introspection, invariance).

    The module gives ``EXPERIMENT``, ``config_from_args``, ``run_experiment`` and
    ``write_outputs``; ``--render-only`` redraws from ``OUT/<EXPERIMENT>.json`` instead.
    """
    from pathlib import Path

    from vsml_bench.experiments import report
    from vsml_bench.leaderboard.harness import enable_compilation_cache

    out = Path(args.out)
    if args.render_only:
        document = report.read_document(
            out / f"{experiment.EXPERIMENT}.json", experiment.EXPERIMENT
        )
        for path in experiment.write_outputs(document, out, with_json=False):
            print(path)
        return 0
    enable_compilation_cache()  # a re-run (e.g. with a new learner) compiles only what is new
    config = experiment.config_from_args(args)
    specs = args.learners or default_specs()
    document = experiment.run_experiment(config, specs, show_progress=not args.no_progress)
    for path in experiment.write_outputs(document, out):
        print(path)
    return 0
