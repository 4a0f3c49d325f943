"""Example 4: evaluate a learner on a suite, submit the result, verify it, render the board.

These are the ``vsml-bench`` commands a submission goes through (docs/submitting.md), run
in-process on the embedded ``offline-v0`` suite (no files) and writing only into a temporary
folder, so the package's own leaderboard is left untouched::

    vsml-bench evaluate --learner nearest_mean --suite offline-v0 --out results.json
    vsml-bench submit results.json --results-dir results/
    vsml-bench verify results.json --streams 4 --seed 0
    vsml-bench leaderboard --results-dir results/ --markdown README.md --html index.html

For the public board, evaluate on ``ood-v0`` (needs the dataset files, see the README's Data
section), then open a pull request that adds the submitted JSON under
``leaderboard/results/``.

Run: ``python examples/04_evaluate_and_submit.py [--learner NAME]`` (about 40 s).
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

from vsml_bench import cli


def vsml_bench(*args: str | Path) -> None:
    """Run one ``vsml-bench`` command in this process; stop on a non-zero exit status."""
    argv = [str(a) for a in args]
    print(f"\n$ vsml-bench {shlex.join(argv)}", flush=True)
    status = cli.main(argv)
    if status != 0:
        raise SystemExit(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learner", default="nearest_mean", help="e.g. sgd, vsml:mnist")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vsml-bench-example-") as tmp:
        folder = Path(tmp)
        results, board = folder / "results.json", folder / "results"
        board.mkdir()
        vsml_bench("evaluate", "--learner", args.learner, "--suite", "offline-v0",
                   "--out", results, "--no-progress")  # fmt: skip
        vsml_bench("submit", results, "--results-dir", board)
        vsml_bench("verify", results, "--streams", "4", "--seed", "0")
        vsml_bench("leaderboard", "--results-dir", board,
                   "--markdown", folder / "README.md", "--html", folder / "index.html")  # fmt: skip
        table = [line for line in (folder / "README.md").read_text().splitlines() if "|" in line]
        print("\n" + "\n".join(table[:3]))


if __name__ == "__main__":
    main()
