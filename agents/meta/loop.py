"""The meta-training loop: optimiser steps, JSONL metrics, held-out evaluation, resumable checkpoints.

A run lives in one folder::

    out/config.json        the run's configuration (a resumed run must match it)
    out/metrics.jsonl      one line per step {"step", "loss", ...}; eval lines {"step", "eval": {...}}
    out/checkpoint.msgpack the latest state (see :mod:`.checkpoint`), written atomically, with a
                           sha256 checksum checked on resume
    out/checkpoint.prev.msgpack  the state it replaced (the fallback if the latest is damaged)
    out/best.msgpack       the meta-parameters with the best held-out score so far

Determinism: the key of step t is ``fold_in(step_key, t)`` where ``step_key`` comes from the
seed, so a step is a pure function of (θ_t, optimiser state_t, seed, t). A run killed at any
moment and resumed from its last checkpoint replays the lost steps exactly and ends with
bit-identical meta-parameters to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vsml_bench import xla
from vsml_bench.agents.meta import checkpoint as ckpt
from vsml_bench.agents.meta.bptt import bptt_gradient, bptt_optimizer
from vsml_bench.agents.meta.es import es_gradient, population_mesh
from vsml_bench.agents.meta.objective import Objective
from vsml_bench.errors import UserError
from vsml_bench.io import atomic_write_text
from vsml_bench.protocol import Learner, PyTree, TaskSpec

Evaluator = Callable[[PyTree], Mapping[str, jax.Array]]


class RunError(UserError):
    """A run folder is missing, incompatible or already used."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`, raised once the last finished step is checkpointed.

    Attributes:
      step: the step the checkpoint holds (``--resume`` continues from it).
      steps: the run's total steps.
    """

    def __init__(self, step: int, steps: int):
        super().__init__(f"stopped at step {step}/{steps}")
        self.step = step
        self.steps = steps


@dataclass(frozen=True)
class TrainConfig:
    """How to meta-train (the optimiser side; the task side lives in :mod:`.tasks`).

    Attributes:
      method: ``"es"`` (antithetic evolution strategies) or ``"bptt"`` (backprop through streams).
      steps: number of meta-optimiser steps.
      seed: every random choice of the run flows from ``jax.random.key(seed)``.
      learning_rate: Adam's learning rate.
      n_pairs: ES antithetic pairs per step (population 2n; each pair on its own task).
      sigma: ES noise scale σ.
      rank_shaping: ES centred-rank fitness shaping.
      n_tasks: BPTT tasks (streams) per step.
      clip_norm: BPTT global-norm gradient clipping (None: off).
      schedule: learning-rate schedule after warm-up: ``"constant"`` or ``"cosine"`` (decays to
        ``learning_rate * final_lr_fraction`` at ``steps``).
      warmup_steps: linear warm-up from 0 over this many steps (0: none).
      final_lr_fraction: the cosine schedule's last learning rate, as a fraction of the peak.
      truncation: BPTT truncation length in steps (None: full backprop through the stream).
      remat: BPTT rematerialisation of each learner step (``jax.checkpoint``).
      eval_every: steps between held-out evaluations (0: only at the end).
      checkpoint_every: steps between checkpoints (the last step is always saved).
    """

    method: str = "es"
    steps: int = 1000
    seed: int = 0
    learning_rate: float = 0.025
    n_pairs: int = 64
    sigma: float = 0.05
    rank_shaping: bool = False
    n_tasks: int = 16
    clip_norm: float | None = 1.0
    schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_fraction: float = 0.1
    truncation: int | None = None
    remat: bool = True
    eval_every: int = 100
    checkpoint_every: int = 50

    def __post_init__(self):
        if self.method not in ("es", "bptt"):
            raise UserError(f"unknown meta-optimiser {self.method!r}; use 'es' or 'bptt'")
        if self.schedule not in ("constant", "cosine"):
            raise UserError(f"unknown schedule {self.schedule!r}; use 'constant' or 'cosine'")

    def to_dict(self) -> dict[str, Any]:
        """The record a run folder's ``config.json`` keeps under ``"train"``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> TrainConfig:
        """The config of a :meth:`to_dict` record, e.g. ``config.json["train"]`` of a run."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise UserError(
                f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**record)

    def learning_rate_schedule(self) -> optax.Schedule:
        """Step -> learning rate: linear warm-up to ``learning_rate``, then constant or cosine.

        Cosine: ``lr_t = lr · (f + (1 - f) · (1 + cos(π u)) / 2)``, ``u`` the fraction of the
        post-warm-up steps done and ``f = final_lr_fraction``.
        """
        decay_steps = max(self.steps - self.warmup_steps, 1)
        if self.schedule == "cosine":
            after = optax.cosine_decay_schedule(
                self.learning_rate, decay_steps, alpha=self.final_lr_fraction
            )
        else:
            after = optax.constant_schedule(self.learning_rate)
        if not self.warmup_steps:
            return after
        warmup = optax.linear_schedule(0.0, self.learning_rate, self.warmup_steps)
        return optax.join_schedules([warmup, after], [self.warmup_steps])

    def optimizer(self) -> optax.GradientTransformation:
        learning_rate = self.learning_rate_schedule()
        if self.method == "es":
            return optax.adam(learning_rate)
        return bptt_optimizer(learning_rate, self.clip_norm)


def make_step_fn(
    config: TrainConfig,
    objective: Objective,
    optimizer: optax.GradientTransformation,
    mesh=None,
) -> Callable:
    """``(θ, opt_state, key) -> (θ', opt_state', metrics)``, jitted: one meta-optimiser step.

    The objective (and the datasets it holds) is a jit argument, not a baked-in constant.
    """

    def step(meta_params, opt_state, key, objective):
        if config.method == "es":
            estimate = es_gradient(
                objective,
                meta_params,
                key,
                n_pairs=config.n_pairs,
                sigma=config.sigma,
                rank_shaping=config.rank_shaping,
                mesh=mesh,
            )
            loss, grad = estimate.loss, estimate.grad
        else:
            loss, grad = bptt_gradient(
                objective, meta_params, key, n_tasks=config.n_tasks, mesh=mesh
            )
        updates, opt_state = optimizer.update(grad, opt_state, meta_params)
        meta_params = optax.apply_updates(meta_params, updates)
        return meta_params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grad)}

    jitted = xla.jit(step)
    return lambda meta_params, opt_state, key: jitted(meta_params, opt_state, key, objective)


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init_key, step_key, eval_key)`` of a run, all pure functions of the seed."""
    init_key, step_key, eval_key = jax.random.split(jax.random.key(seed), 3)
    return init_key, step_key, eval_key


def check_run_folder(out_dir: str | os.PathLike, resume: bool) -> None:
    """Raise :class:`RunError` unless ``out_dir`` suits a new run (empty) or a resumed one."""
    out = Path(out_dir)
    if resume and not (out / "checkpoint.msgpack").exists():
        raise RunError(f"there is no checkpoint to resume in {out}; start the run without --resume")
    if not resume and out.exists() and any(out.iterdir()):
        raise RunError(
            f"{out} already holds a run; pass --resume to continue it or pick a new --out"
        )


def _read_metrics(path: Path, upto_step: int) -> list[str]:
    """Metric lines with ``step <= upto_step``; a line cut by a kill is dropped."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, int) and step <= upto_step:
            kept.append(line)
    return kept


def _strong(x) -> jax.Array:
    return jnp.asarray(x, jnp.result_type(x))


def _scalar(x) -> float:
    return float(np.asarray(x))


def train(
    learner: Learner,
    spec: TaskSpec,
    objective: Objective,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    evaluate: Evaluator | None = None,
    resume: bool = False,
    run_info: Mapping[str, Any] | None = None,
    initial_meta_params: PyTree | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Meta-train ``learner`` on ``objective``; write metrics and checkpoints under ``out_dir``.

    Args:
      learner: a learner with meta-parameters (already wrapped for BPTT if wanted).
      spec: the task spec given to ``meta_init``.
      objective: the training task distribution.
      config: optimiser settings.
      out_dir: the run folder (created; must be new unless ``resume``).
      evaluate: ``θ -> {name: score}`` on held-out tasks (fixed tasks, so curves compare); the
        mean of its values ranks checkpoints for ``best.msgpack``.
      resume: continue from ``out_dir/checkpoint.msgpack``.
      run_info: extra JSON facts stored in ``config.json`` (preset, learner config, ...).
      initial_meta_params: start from these meta-parameters instead of ``meta_init`` (a warm
        start; a resumed run restores its own from the checkpoint).
      progress: show a tqdm bar.
      stop_after: stop (as if killed, after checkpointing) once this step is reached; for tests.
      log: called with one-line news for the user (``"resuming <out> at step N/M"``).

    Raises:
      TrainingInterrupted: on Ctrl-C (``KeyboardInterrupt``), after checkpointing the last
        finished step, so that ``resume=True`` continues exactly.

    Returns:
      ``{"meta_params", "step", "best_step", "best_score", "wall_time_s", "cpu_time_s"}``.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    checkpoint_path = out / "checkpoint.msgpack"
    config_record = {"train": config.to_dict(), **(run_info or {})}
    is_writer = jax.process_index() == 0

    check_run_folder(out, resume)
    if resume:
        saved = ckpt.read_json(out / "config.json")

        def comparable(record):
            # The step count may grow on resume, unless a schedule decays over it.
            train = record.get("train", {})
            fixed = train.get("schedule", "constant") == "constant"
            train_part = {k: v for k, v in train.items() if k != "steps" or not fixed}
            return train_part, record.get("families"), record.get("learner_config")

        if comparable(saved) != comparable(json.loads(json.dumps(config_record))):
            raise RunError(
                f"the run in {out} was started with a different configuration; "
                "resume it with the same preset and seed, or use a new --out folder"
            )

    init_key, step_key, _ = run_keys(config.seed)
    meta_params = learner.meta_init(init_key, spec)
    if initial_meta_params is not None:
        meta_params = jax.tree.map(jnp.asarray, initial_meta_params)
    optimizer = config.optimizer()
    opt_state = optimizer.init(meta_params)
    state = {
        "step": np.int64(0),
        "key_data": np.asarray(jax.random.key_data(step_key)),
        "meta_params": meta_params,
        "opt_state": opt_state,
        "best": {"step": np.int64(-1), "score": np.float64(-np.inf), "meta_params": meta_params},
        "wall_time_s": np.float64(0.0),
        "cpu_time_s": np.float64(0.0),
    }
    if resume:
        state = ckpt.load(checkpoint_path, state)
        step_key = jax.random.wrap_key_data(jnp.asarray(state["key_data"]))
        if is_writer:
            lines = _read_metrics(out / "metrics.jsonl", int(state["step"]))
            atomic_write_text(out / "metrics.jsonl", "".join(f"{x}\n" for x in lines))
            if log is not None:
                log(f"resuming {out} at step {int(state['step'])}/{config.steps}")
    elif is_writer:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(config_record, indent=2) + "\n")

    # Strongly typed (a weakly typed leaf, e.g. ``jnp.asarray(-1.0)`` in a ``meta_init``, would
    # come back strong from the first step and make the step compile twice).
    meta_params = jax.tree.map(_strong, state["meta_params"])
    opt_state = jax.tree.map(_strong, state["opt_state"])
    best = state["best"]
    start = int(state["step"])
    wall_before = float(state["wall_time_s"])
    cpu_before = float(state["cpu_time_s"])
    mesh = population_mesh() if jax.device_count() > 1 else None
    step_fn = make_step_fn(config, objective, optimizer, mesh)
    evaluate_fn = evaluate  # the caller jits it (with its data as arguments)

    def save(step: int, wall: float, cpu: float) -> None:
        if not is_writer:
            return
        ckpt.save(
            checkpoint_path,
            {
                "step": np.int64(step),
                "key_data": np.asarray(jax.random.key_data(step_key)),
                "meta_params": meta_params,
                "opt_state": opt_state,
                "best": best,
                "wall_time_s": np.float64(wall),
                "cpu_time_s": np.float64(cpu),
            },
            keep_previous=True,
        )

    bar = tqdm(
        total=config.steps,
        initial=start,
        unit="step",
        disable=not progress or not is_writer,
        dynamic_ncols=True,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    done = start
    # The last fully finished step (metrics written, checkpoint saved if due), replaced in one
    # assignment at the end of each step, so that Ctrl-C at any moment finds a consistent one.
    finished = (done, meta_params, opt_state, best, wall_before, cpu_before)
    metrics_file = open(out / "metrics.jsonl", "a") if is_writer else None  # noqa: SIM115
    try:
        for t in range(start, config.steps):
            meta_params, opt_state, metrics = step_fn(
                meta_params, opt_state, jax.random.fold_in(step_key, t)
            )
            done = t + 1
            wall = wall_before + time.perf_counter() - t0
            # CPU seconds of this process (all its threads): the budget that recipes compare at,
            # unlike wall time it does not depend on what else runs on the machine.
            cpu = cpu_before + time.process_time() - c0
            record = {
                "step": done,
                **{k: _scalar(v) for k, v in metrics.items()},
                "wall_s": wall,
                "cpu_s": cpu,
            }
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"meta-loss is {record['loss']} at step {done}")
            bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
            bar.update(1)
            lines = [record]
            last = done == config.steps
            if evaluate_fn is not None and (
                last or (config.eval_every and done % config.eval_every == 0)
            ):
                scores = {k: _scalar(v) for k, v in evaluate_fn(meta_params).items()}
                score = float(np.mean(list(scores.values())))
                lines.append({"step": done, "eval": scores, "eval_mean": score})
                if score > float(best["score"]):
                    best = {
                        "step": np.int64(done),
                        "score": np.float64(score),
                        "meta_params": meta_params,
                    }
                    if is_writer:
                        # A plain meta-parameter file, read as it is by --init-from, the
                        # harness (vsml:<path>) and export.
                        ckpt.save(out / "best.msgpack", meta_params, checksum=False)
                bar.write(
                    f"step {done}: held-out " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
                )
            if metrics_file is not None:
                metrics_file.write("".join(json.dumps(x) + "\n" for x in lines))
                metrics_file.flush()
            if last or done % config.checkpoint_every == 0 or done == stop_after:
                save(done, wall, cpu)
            finished = (done, meta_params, opt_state, best, wall, cpu)
            if done == stop_after:
                break
    except KeyboardInterrupt:
        # save() reads these names: checkpoint the last finished step, not a half-done one.
        done, meta_params, opt_state, best, wall, cpu = finished
        save(done, wall, cpu)
        raise TrainingInterrupted(done, config.steps) from None
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
    return {
        "meta_params": meta_params,
        "step": done,
        "best_step": int(best["step"]),
        "best_score": float(best["score"]),
        "wall_time_s": wall_before + time.perf_counter() - t0,
        "cpu_time_s": cpu_before + time.process_time() - c0,
    }
