"""``vsml-bench evaluate --learner NAME[:pretrained-or-path] --suite ID --out results.json``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--learner",
        required=True,
        help="registry name, optionally with shipped meta-parameters or a file: vsml:mnist",
    )
    parser.add_argument("--suite", default="offline-v0", help="suite ID (offline-v0, ood-v0)")
    parser.add_argument("--out", type=Path, required=True, help="results JSON to write")
    parser.add_argument("--name", default=None, help="display name on the leaderboard")
    parser.add_argument(
        "--n-streams",
        type=int,
        default=None,
        help="streams per task (an unofficial run that cannot be submitted)",
    )
    parser.add_argument(
        "--stream-length",
        type=int,
        default=None,
        help="shorter streams (an unofficial run that cannot be submitted)",
    )
    parser.add_argument(
        "--meta-trained-on",
        default=None,
        help="comma-separated datasets the meta-parameters saw (overrides the learner's "
        "declaration; those tasks count as in-distribution)",
    )
    parser.add_argument(
        "--tasks",
        default=None,
        help="comma-separated task IDs to run (an unofficial run that cannot be submitted)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with dataset files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vsml_bench.errors import UserError
    from vsml_bench.leaderboard import harness
    from vsml_bench.leaderboard.suites import get_suite

    suite = get_suite(args.suite)
    for option, value in (("--n-streams", args.n_streams), ("--stream-length", args.stream_length)):
        if value is not None and value < 1:
            raise UserError(f"{option} must be a positive integer, not {value}")
    if args.n_streams or args.stream_length:
        suite = suite.resized(args.n_streams, args.stream_length)
    if args.tasks:
        suite = suite.subset([t.strip() for t in args.tasks.split(",") if t.strip()])
    trained_on = None
    if args.meta_trained_on is not None:
        trained_on = tuple(d.strip() for d in args.meta_trained_on.split(",") if d.strip())
    learner = harness.build_learner(args.learner, meta_trained_on=trained_on)
    harness.enable_compilation_cache()
    doc = harness.evaluate(
        learner,
        suite,
        args.out,
        spec_text=args.learner,
        name=args.name,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        command=harness.main_command(),
    )
    for task in doc["tasks"]:
        if task["status"] == "ok":
            acc = task["metrics"]["accuracy"]
            line = (
                f"{acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] ({task['distribution']})"
            )
        else:
            line = task["status"]
        print(f"  {task['task_id']:<14} {line}")
    head = doc["summary"]["headline"]
    if head is not None:
        print(f"headline IQM (OOD): {head['value']:.3f} [{head['low']:.3f}, {head['high']:.3f}]")
    print(f"wrote {args.out}")
    return 0
