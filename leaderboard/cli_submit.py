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


def run(args: argparse.Namespace) -> int:
    from vsml_bench.leaderboard import schema

    stored = schema.submit(args.file, args.results_dir)
    doc = schema.read_results(stored)
    head = doc["summary"]["headline"]
    score = (
        "no OOD task run"
        if head is None
        else (f"headline IQM {head['value']:.3f} [{head['low']:.3f}, {head['high']:.3f}]")
    )
    print(f"accepted {doc['learner']['name']!r} on {doc['suite']['id']}: {score} -> {stored}")
    print("run `vsml-bench leaderboard` to update the table")
    return 0
