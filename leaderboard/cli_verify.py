"""``vsml-bench verify FILE``: recompute every check and re-run random streams of a results file.

Streams are drawn from fresh OS randomness unless ``--seed`` repeats an earlier run; by
default enough are drawn that a file with at least 5% forged streams is caught with
probability at least 95% (see :mod:`vsml_bench.leaderboard.verify` for the derivation).

Exit statuses: 0 all re-run streams agree; 1 some stream differs; 2 invalid file or option;
3 ``meta_trained_on`` differs from the learner's declaration; 4 a task marked "not run: data
missing" has its data here; 5 the meta-parameters do not hash to the recorded sha256; 6 a task
marked "not run: learner supports at most C classes" is one the learner could have run; 7
``learner.config`` is not the config the learner spec builds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = (
    "exit status: 0 all re-run streams agree; 1 a stream differs; 2 invalid file or option; "
    "3 meta_trained_on differs from the learner's declaration; 4 a task marked 'not run: data "
    "missing' has its data here; 5 meta-parameters differ from the recorded sha256; 6 a task "
    "marked 'not run: learner supports at most C classes' is one the learner could have run; "
    "7 learner.config differs from the config the learner spec builds"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("file", type=Path, help="results JSON to check")
    parser.add_argument(
        "--streams",
        type=int,
        default=None,
        help="how many random streams to re-run (default: enough to catch a file with >= 5%% "
        "forged streams with probability >= 95%%)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="repeat the draw of an earlier run (default: fresh OS randomness, printed)",
    )
    parser.add_argument(
        "--learner",
        default=None,
        help="learner to re-run (default: the file's learner spec, e.g. vsml:mnist)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with dataset files")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="leaderboard folder holding params/<sha256>.msgpack files named by specs "
        "(default: the package's leaderboard/results/)",
    )


def run(args: argparse.Namespace) -> int:
    from vsml_bench.errors import UserError
    from vsml_bench.leaderboard import harness, schema, verify

    if args.streams is not None and args.streams < 1:
        raise UserError(f"--streams must be a positive integer, not {args.streams}")
    if args.seed is not None:
        verify.check_seed(args.seed)
    root = schema.results_root(args.results_dir)
    doc = schema.read_results(args.file)
    if args.learner:
        learner = harness.build_learner(args.learner)
    else:
        learner = harness.learner_from_spec(doc["learner"]["spec"], root)
    the_plan = verify.plan(doc, args.streams, args.seed)
    print(
        f"re-running {the_plan.n_streams} of {the_plan.pool} streams drawn with seed "
        f"{the_plan.seed} (repeat with --seed {the_plan.seed})"
    )
    print(the_plan.describe())
    try:
        records = verify.verify(doc, learner, the_plan, args.data_dir)
    except verify.Refusal as refusal:
        print(f"vsml-bench verify: refused: {refusal}", file=sys.stderr)
        return int(refusal.code)
    for r in records:
        mark = "ok  " if r["agree"] else "DIFF"
        print(
            f"{mark} {r['task_id']:<14} stream {r['stream']:>4}: accuracy {r['recorded_accuracy']:.4f}"
            f" -> {r['rerun_accuracy']:.4f}, ce {r['recorded_ce']:.4f} -> {r['rerun_ce']:.4f}"
        )
    n_ok = sum(r["agree"] for r in records)
    print(f"{n_ok}/{len(records)} streams agree")
    return int(verify.Exit.OK if n_ok == len(records) else verify.Exit.STREAMS_DIFFER)
