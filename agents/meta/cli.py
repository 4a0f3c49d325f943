"""``vsml-bench train``: meta-train a learner with a preset, resumable.

    vsml-bench train --learner vsml --preset quick --out runs/quick
    vsml-bench train --learner vsml --preset quick --out runs/quick --resume   # after a kill

Multi-host (e.g. a SLURM or TPU pod job, one process per host): add ``--distributed``; every
process runs the same command, ``jax.distributed.initialize`` joins them (auto-detected on
SLURM/TPU/GKE, or pass ``--coordinator HOST:PORT --num-processes N --process-id I``), the ES
population / BPTT task batch is sharded over the devices of all hosts, and process 0 alone
writes the run folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from vsml_bench.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--learner", default="vsml", help="registered learner name (default vsml)")
    parser.add_argument(
        "--learner-config",
        default="{}",
        metavar="JSON",
        help="learner options as a JSON object, e.g. '{\"layer_norm\": true}'",
    )
    parser.add_argument(
        "--preset", default="quick", help="quick, paper-small, cpu-1h, cpu-4h or paper"
    )
    parser.add_argument("--out", required=True, help="run folder (metrics, checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--seed", type=int, help="override the seed (default 0)")
    parser.add_argument("--method", choices=("es", "bptt"), help="override the meta-optimiser")
    parser.add_argument("--n-pairs", type=int, help="ES antithetic pairs per step")
    parser.add_argument("--n-tasks", type=int, help="BPTT streams per step")
    parser.add_argument("--truncation", type=int, help="BPTT truncation length (steps)")
    parser.add_argument("--learning-rate", type=float, help="peak Adam learning rate")
    parser.add_argument(
        "--image-size",
        type=int,
        help="resize the training tasks' images to this size (e.g. 14 after a 7x7 warm start)",
    )
    parser.add_argument(
        "--stream-length",
        type=int,
        help="examples per training stream (e.g. 300 after 100: a length curriculum); held-out "
        "streams keep the preset's length",
    )
    parser.add_argument(
        "--polarity",
        action="store_true",
        help="also meta-train on inverted copies of every task (invert_inputs), half the batch",
    )
    parser.add_argument(
        "--schedule", choices=("constant", "cosine"), help="learning-rate schedule after warm-up"
    )
    parser.add_argument("--warmup-steps", type=int, help="linear learning-rate warm-up (steps)")
    parser.add_argument(
        "--init-from",
        metavar="MSGPACK",
        help="start from these meta-parameters (a run's best.msgpack or a shipped set) instead "
        "of a fresh initialisation, e.g. BPTT then ES",
    )
    parser.add_argument("--eval-every", type=int, help="steps between held-out evaluations")
    parser.add_argument("--data-dir", help="dataset folder (else $VSML_BENCH_DATA, the cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-host run with jax.distributed.initialize",
    )
    parser.add_argument("--coordinator", help="HOST:PORT of process 0 (with --distributed)")
    parser.add_argument("--num-processes", type=int, help="processes in all (with --distributed)")
    parser.add_argument("--process-id", type=int, help="this process's index (with --distributed)")


def read_initial_meta_params(path: str, learner, spec) -> tuple[Any, dict[str, Any]]:
    """``(θ, {"path", "sha256"})`` from a meta-parameter msgpack shaped like ``learner``'s θ."""
    import hashlib

    import jax
    from flax import serialization

    from vsml_bench.agents import pretrained

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read --init-from {path}: {error.strerror}") from None
    target = learner.meta_init(jax.random.key(0), spec)
    try:
        tree = pretrained.read_meta_params(data, f"--init-from {path}")
        meta_params = serialization.from_state_dict(target, tree)
    except Exception as error:  # a foreign file, or one of another shape than the learner's
        raise UserError(
            f"--init-from {path} is not a {learner.name} meta-parameter file ({error})"
        ) from None
    return meta_params, {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}


def run(args: argparse.Namespace) -> int:
    from vsml_bench.agents.meta import presets
    from vsml_bench.agents.meta.loop import check_run_folder

    preset = presets.get(args.preset).with_overrides(
        steps=args.steps,
        seed=args.seed,
        method=args.method,
        n_pairs=args.n_pairs,
        n_tasks=args.n_tasks,
        truncation=args.truncation,
        learning_rate=args.learning_rate,
        schedule=args.schedule,
        warmup_steps=args.warmup_steps,
        eval_every=args.eval_every,
    )
    task_options = {"image_size": args.image_size, "stream_length": args.stream_length}
    for option, value in task_options.items():
        if value is not None and value < 1:
            flag = "--" + option.replace("_", "-")
            raise UserError(f"{flag} must be a positive integer, got {value}")
    task_options = {k: v for k, v in task_options.items() if v is not None}
    if task_options:
        preset = preset.with_task_options(**task_options)
    if args.polarity:
        preset = preset.with_polarity()
    if preset.train.steps < 1:
        raise UserError(f"--steps must be at least 1, got {preset.train.steps}")
    try:
        learner_config = {**preset.learner_config, **json.loads(args.learner_config)}
    except (json.JSONDecodeError, TypeError) as error:
        raise UserError(f"--learner-config is not a JSON object ({error})") from None
    check_run_folder(args.out, args.resume)  # before loading any data

    import jax

    if args.distributed:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )

    from vsml_bench import agents
    from vsml_bench.agents.meta.bptt import remat_learner, truncate_learner
    from vsml_bench.agents.meta.loop import run_keys, train
    from vsml_bench.agents.meta.tasks import build_evaluator, build_objective

    learner = agents.make(args.learner, **learner_config)
    if not learner.has_meta_params:
        raise UserError(
            f"learner {args.learner!r} has no meta-parameters to train; pick a meta-learnable "
            "learner such as vsml"
        )
    train_learner = learner
    if preset.train.method == "bptt":
        train_learner = remat_learner(learner)
        if preset.train.truncation:
            train_learner = truncate_learner(train_learner, preset.train.truncation)
    objective, spec = build_objective(train_learner, preset.families, data_dir=args.data_dir)
    _, _, eval_key = run_keys(preset.train.seed)
    evaluate = build_evaluator(
        learner,
        preset.eval_families,
        n_streams=preset.eval_streams,
        key=eval_key,
        data_dir=args.data_dir,
    )
    from vsml_bench.provenance import environment

    initial = None
    if args.init_from is not None:
        initial, init_record = read_initial_meta_params(args.init_from, learner, spec)
    run_info = {
        **preset.to_dict(),
        "learner": args.learner,
        "learner_config": dict(learner.config),
        "command": shlex.join(sys.argv),
        **environment(),
        **({"init_from": init_record} if initial is not None else {}),
    }
    from vsml_bench.agents.meta.export import write_run_card
    from vsml_bench.agents.meta.loop import TrainingInterrupted

    writer = jax.process_index() == 0
    if writer and args.resume:  # replaces a card whose sha256 may be of an older best.msgpack
        write_run_card(args.out, final=False)
    try:
        result = train(
            learner,
            spec,
            objective,
            preset.train,
            args.out,
            evaluate=_writing_run_card(evaluate, args.out) if writer else evaluate,
            resume=args.resume,
            run_info=run_info,
            initial_meta_params=initial,
            progress=not args.no_progress,
            log=print,
        )
    except TrainingInterrupted as stop:
        if writer:
            write_run_card(args.out, final=True)
            command = run_info["command"]
            resume = command if args.resume else f"{command} --resume"
            print(
                f"vsml-bench train: stopped at step {stop.step}/{stop.steps}; the checkpoint in "
                f"{args.out} holds it; continue with: {resume}",
                file=sys.stderr,
            )
        return 130
    if writer:
        write_run_card(args.out, final=True)
        print(
            f"trained {result['step']} steps in {result['wall_time_s']:.0f} s; best held-out "
            f"accuracy {result['best_score']:.3f} at step {result['best_step']}; "
            f"run folder {args.out} (model card {Path(args.out) / 'model_card.json'})"
        )
    return 0


def _writing_run_card(evaluate, out: str):
    """``evaluate`` that first writes the run's provisional model card (no sha256), once.

    The loop writes ``config.json`` before its first step and ``best.msgpack`` only after a
    held-out evaluation, so at the first evaluation the card can be written and is there
    before any ``best.msgpack``: a run killed at any time leaves a card that declares its
    training data (``evaluate --learner vsml:<out>/best.msgpack`` reads it).
    """
    from vsml_bench.agents.meta.export import write_run_card

    pending = [True]

    def wrapped(meta_params):
        if pending:
            write_run_card(out, final=False)
            pending.clear()
        return evaluate(meta_params)

    return wrapped


def main(argv: list[str] | None = None) -> int:
    """``python -m vsml_bench.agents.meta.cli``: the same as ``vsml-bench train``."""
    parser = argparse.ArgumentParser(prog="vsml-bench train", description="meta-train a learner")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as error:
        print(f"vsml-bench train: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
