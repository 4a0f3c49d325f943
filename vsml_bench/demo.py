"""``vsml-bench demo``: the built-in learners on the offline suite, ranked, with an HTML report.

Runs the pretrained VSML (when shipped) and every hand-designed baseline on ``offline-v0``
(embedded data only, no files, no network), at a reduced demo size so that it finishes in a
few minutes on a laptop CPU, then prints the ranked table and writes a self-contained page.
Learners with meta-parameters but nothing shipped (e.g. an untrained Meta-RNN) are skipped:
scoring random meta-parameters would say nothing about the method.

Demo-size runs are marked unofficial; the numbers on the leaderboard come from
``vsml-bench evaluate`` at full suite size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: Demo size: fits the 3-minute budget on a 2-core CPU (see tests/benchmarks/test_bench_demo.py).
DEMO_STREAMS = 64
DEMO_STREAM_LENGTH = 100
#: (spec, whether it is optional: skipped with a note when it cannot be built).
DEMO_LEARNERS: tuple[tuple[str, bool], ...] = (
    ("vsml:mnist", True),
    ("sgd", False),
    ("adam", False),
    ("hebbian", False),
    ("fast_weights", False),
    ("nearest_mean", False),
    ("knn", False),
    ("meta_rnn", False),
    ("transformer", False),
    ("chance", False),
)
#: Learners whose meta-parameters are the whole method: with random ones (nothing shipped)
#: their scores would say nothing, so the demo skips them. Hebbian and fast weights have
#: hand-set defaults and run as they are.
META_LEARNED = frozenset({"vsml", "meta_rnn", "transformer"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("vsml-bench-demo"),
        help="where to write the results files and index.html (default: ./vsml-bench-demo)",
    )
    parser.add_argument("--suite", default="offline-v0", help="suite to run (default offline-v0)")
    parser.add_argument("--n-streams", type=int, default=DEMO_STREAMS, help="streams per task")
    parser.add_argument(
        "--stream-length", type=int, default=DEMO_STREAM_LENGTH, help="examples per stream"
    )
    parser.add_argument(
        "--learners",
        default=None,
        help="comma-separated learner specs (default: pretrained VSML and the baselines)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def demo_learners(specs: list[str] | None = None) -> tuple[list[tuple[str, Any]], list[str]]:
    """``[(spec, learner)]`` to run and one line per learner skipped (and why)."""
    from vsml_bench.errors import UserError
    from vsml_bench.leaderboard import harness

    chosen = [(s, False) for s in specs] if specs else list(DEMO_LEARNERS)
    learners, skipped = [], []
    for spec, optional in chosen:
        try:
            learner = harness.build_learner(spec)
        except UserError as error:
            if not optional:
                raise
            skipped.append(f"{spec}: {error}")
            continue
        if specs is None and learner.name in META_LEARNED and learner.meta_params is None:
            skipped.append(
                f"{spec}: no shipped meta-parameters (meta-train it with `vsml-bench train`)"
            )
            continue
        learners.append((spec, learner))
    return learners, skipped


def format_table(entries: list[dict[str, Any]]) -> str:
    """The ranked terminal table (rank, learner, headline IQM with CI, per-task accuracy)."""
    from vsml_bench.leaderboard import render

    lines = []
    for suite_id, rows in render.rank_entries(entries).items():
        task_ids = render._task_ids(suite_id, rows)
        short = [t[:8] for t in task_ids]
        lines.append(f"{suite_id} (demo size; IQM over OOD tasks, 95% CI; ranks tie on overlap)")
        head = f"{'rank':>4}  {'learner':<16} {'IQM':>6} {'95% CI':>15}  " + " ".join(
            f"{s:>8}" for s in short
        )
        lines += [head, "-" * len(head)]
        for row in rows:
            est = row.headline
            ci = f"[{est.low:.3f},{est.high:.3f}]" if est else "-"
            cells = []
            for t in task_ids:
                task = row.tasks.get(t)
                ok = task is not None and task["status"] == "ok"
                cells.append(
                    f"{task['metrics']['accuracy']['value']:>8.3f}" if ok else f"{'n/a':>8}"
                )
            lines.append(
                f"{row.rank if row.rank else '-':>4}  {row.name[:16]:<16} "
                f"{(f'{est.value:.3f}' if est else '-'):>6} {ci:>15}  " + " ".join(cells)
            )
    return "\n".join(lines)


def run_demo(
    out_dir: Path,
    suite_id: str = "offline-v0",
    n_streams: int = DEMO_STREAMS,
    stream_length: int = DEMO_STREAM_LENGTH,
    learner_specs: list[str] | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Evaluate, store, and render; returns (entries, skipped-learner lines)."""
    from tqdm.auto import tqdm

    from vsml_bench.io import atomic_write_text
    from vsml_bench.leaderboard import harness, render, schema
    from vsml_bench.leaderboard.suites import get_suite

    harness.enable_compilation_cache()

    suite = get_suite(suite_id).resized(n_streams, stream_length)
    learners, skipped = demo_learners(learner_specs)
    results_dir = out_dir / "results"
    entries = []
    bar = tqdm(total=len(learners) * len(suite.tasks), disable=not progress, unit="task")
    for spec, learner in learners:
        bar.set_description(spec)
        doc = harness.evaluate(
            learner,
            suite,
            None,
            spec_text=spec,
            progress=False,
            command=harness.main_command(),
            on_task=lambda task, status: bar.update(1),
        )
        entries.append(schema.validate_results(doc))
        schema.store_entry(doc, results_dir)
    bar.close()
    atomic_write_text(out_dir / "index.html", render.render_html(entries))
    atomic_write_text(out_dir / "README.md", render.render_markdown(entries))
    return entries, skipped


def run(args: argparse.Namespace) -> int:
    from vsml_bench.errors import UserError

    for option, value in (("--n-streams", args.n_streams), ("--stream-length", args.stream_length)):
        if value < 1:
            raise UserError(f"{option} must be a positive integer, not {value}")
    specs = [s.strip() for s in args.learners.split(",") if s.strip()] if args.learners else None
    entries, skipped = run_demo(
        args.out_dir,
        args.suite,
        args.n_streams,
        args.stream_length,
        specs,
        progress=not args.no_progress,
    )
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(format_table(entries))
    print(f"report: {(args.out_dir / 'index.html').resolve()}")
    return 0
