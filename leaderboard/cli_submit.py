"""``vsml-bench submit FILE``: validate a results file, recompute its aggregates, store it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="results JSON written by `vsml-bench evaluate`")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="leaderboard folder to store the entry in (default: the package's leaderboard/results/)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="let this entry take the name of an existing entry of another learner (spec, "
        "meta-parameters or config); the old files move to results/history/",
    )


def run(args: argparse.Namespace) -> int:
    from vsml_bench.leaderboard import schema

    stored, moved = schema.submit_entry(args.file, args.results_dir, replace=args.replace)
    doc = schema.read_results(stored)
    head = doc["summary"]["headline"]
    score = (
        "no OOD task run"
        if head is None
        else (f"headline IQM {head['value']:.3f} [{head['low']:.3f}, {head['high']:.3f}]")
    )
    print(f"accepted {doc['learner']['name']!r} on {doc['suite']['id']}: {score} -> {stored}")
    for path in moved:
        print(f"kept the replaced file as {path}")
    print("run `vsml-bench leaderboard` to update the table")
    return 0
