"""``vsml-bench verify FILE --streams K``: re-run K random streams and compare with the file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="results JSON to check")
    parser.add_argument("--streams", type=int, default=8, help="how many random streams to re-run")
    parser.add_argument("--seed", type=int, default=0, help="which streams are drawn")
    parser.add_argument(
        "--learner",
        default=None,
        help="learner to re-run (default: the file's learner spec, e.g. vsml:mnist)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with dataset files")


def run(args: argparse.Namespace) -> int:
    from vsml_bench.errors import UserError
    from vsml_bench.leaderboard import harness, schema

    if args.streams < 1:
        raise UserError(f"--streams must be a positive integer, not {args.streams}")
    doc = schema.read_results(args.file)
    learner = harness.build_learner(args.learner or doc["learner"]["spec"])
    records = harness.rerun_streams(doc, learner, args.streams, args.seed, args.data_dir)
    for r in records:
        mark = "ok  " if r["agree"] else "DIFF"
        print(
            f"{mark} {r['task_id']:<14} stream {r['stream']:>4}: accuracy {r['recorded_accuracy']:.4f}"
            f" -> {r['rerun_accuracy']:.4f}, ce {r['recorded_ce']:.4f} -> {r['rerun_ce']:.4f}"
        )
    n_ok = sum(r["agree"] for r in records)
    print(f"{n_ok}/{len(records)} streams agree")
    return 0 if n_ok == len(records) else 1
