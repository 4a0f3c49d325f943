"""``vsml-bench evaluate --learner NAME[:pretrained-or-path] --suite ID --out results.json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any


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
        "--learner-config",
        default=None,
        metavar="JSON",
        help="learner options as a JSON object, as for `vsml-bench train`, e.g. "
        "'{\"learning_rate\": 0.01}' (over a model card's config; an unofficial run that "
        "cannot be submitted: `verify` rebuilds a learner from its spec, which holds no options)",
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


def parse_learner_config(text: str | None) -> dict[str, Any]:
    """``--learner-config``: a JSON object of learner options (``{}`` when absent)."""
    from vsml_bench.errors import UserError

    if text is None:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"--learner-config is not valid JSON ({error.msg} at character {error.pos}); "
            "pass an object such as '{\"learning_rate\": 0.01}'"
        ) from None
    if not isinstance(config, dict):
        raise UserError(
            f"--learner-config must be a JSON object of learner options, not "
            f"{type(config).__name__} {text!r}"
        )
    return config


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written, before the (long) run rather than after it."""
    from vsml_bench.errors import UserError

    if out.is_dir():
        raise UserError(f"--out {out} is a folder; pass a file path such as {out / 'results.json'}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {out} is inside {parent}, which is a file, not a folder")
            break


def run(args: argparse.Namespace) -> int:
    from vsml_bench.errors import UserError
    from vsml_bench.leaderboard import harness
    from vsml_bench.leaderboard.suites import get_suite

    check_out(args.out)
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
    config = parse_learner_config(args.learner_config)
    if config:
        suite = dataclasses.replace(suite, official=False)
    try:
        learner = harness.build_learner(args.learner, meta_trained_on=trained_on, **config)
    except TypeError as error:
        if not config:
            raise
        # A learner factory refuses an unknown option with a TypeError naming it.
        raise UserError(f"--learner-config does not suit {args.learner}: {error}") from None
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
