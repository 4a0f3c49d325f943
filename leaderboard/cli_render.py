"""``vsml-bench leaderboard``: render leaderboard/README.md and leaderboard/site/index.html."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="folder of submitted entries (default: the package's leaderboard/results/)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=PACKAGE_DIR / "README.md",
        help="where to write the Markdown table (default: leaderboard/README.md)",
    )
    parser.add_argument(
        "--html",
        type=Path,
        default=PACKAGE_DIR / "site" / "index.html",
        help="where to write the HTML page (default: leaderboard/site/index.html)",
    )


def write_leaderboard(
    results_dir: Path | None, markdown: Path | None, html_path: Path | None
) -> tuple[int, list[str]]:
    """Render every valid entry of ``results_dir``; returns (number of entries, problems)."""
    from vsml_bench.leaderboard import render, schema

    entries, problems = schema.load_entries(results_dir)
    if markdown is not None:
        schema.atomic_write_text(markdown, render.render_markdown(entries, problems))
    if html_path is not None:
        schema.atomic_write_text(html_path, render.render_html(entries, problems))
    return len(entries), problems


def run(args: argparse.Namespace) -> int:
    n, problems = write_leaderboard(args.results_dir, args.markdown, args.html)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"{n} entries -> {args.markdown} and {args.html}")
    return 0
