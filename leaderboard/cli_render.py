"""``vsml-bench leaderboard``: render the leaderboard as Markdown and as an HTML page.

Reads the submitted entries of ``--results-dir`` (default: the results shipped with the
package, so a wheel install renders the same board as a checkout) and writes
``<out>/README.md`` and ``<out>/site/index.html``, ``<out>`` defaulting to ``./leaderboard``
in the current directory: run from the root of a checkout, that is the repository's own
``leaderboard/`` folder; anywhere else a new folder, never the installed package.
``--markdown`` and ``--html`` move either file elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vsml_bench.errors import UserError

#: The default ``--out``, relative to the current directory.
DEFAULT_OUT = Path("leaderboard")


class ResultsDirError(UserError):
    """``--results-dir`` names no folder."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="folder of submitted entries (default: the results shipped with the package)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder to write README.md and site/index.html into (default: ./leaderboard)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="where to write the Markdown table (default: <out>/README.md)",
    )
    parser.add_argument(
        "--html",
        type=Path,
        default=None,
        help="where to write the HTML page (default: <out>/site/index.html)",
    )


def check_results_dir(results_dir: Path | None) -> Path:
    """The folder to read entries from; :class:`ResultsDirError` if it is not a folder.

    An absent folder must not render an empty board over a real one.
    """
    from vsml_bench.leaderboard import schema

    root = Path(schema.RESULTS_DIR if results_dir is None else results_dir)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        hint = (
            "pass the folder that `vsml-bench submit` wrote to"
            if results_dir is not None
            else "reinstall vsml-bench (its shipped results are missing) or pass --results-dir"
        )
        raise ResultsDirError(f"results folder {root} {what}; {hint}")
    return root


def write_leaderboard(
    results_dir: Path | None, markdown: Path | None, html_path: Path | None
) -> tuple[int, list[str]]:
    """Render every valid entry of ``results_dir``; returns (number of entries, problems).

    Raises :class:`ResultsDirError`, before writing anything, if ``results_dir`` is not a folder.
    """
    from vsml_bench.leaderboard import render, schema

    entries, problems = schema.load_entries(check_results_dir(results_dir))
    # All or nothing: both documents are rendered and encoded before either file is touched,
    # so an entry that breaks rendering cannot leave a new table beside an old page.
    outputs = {}
    if markdown is not None:
        outputs[Path(markdown)] = render.render_markdown(entries, problems).encode("utf-8")
    if html_path is not None:
        outputs[Path(html_path)] = render.render_html(entries, problems).encode("utf-8")
    write_all(outputs)
    return len(entries), problems


def write_all(outputs: dict[Path, bytes]) -> None:
    """Write every file or none: all temporary files first, then the renames.

    A failure while writing (disk full, a folder in the way) removes the temporary files and
    leaves every target as it was; only the renames, which do not fail for lack of space,
    come after the first target is replaced.
    """
    import os

    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in outputs.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise UserError(f"{path} is a folder; pass a file path to write")
            tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
            staged.append((tmp, path))
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as error:
        raise UserError(f"cannot write the leaderboard: {error.strerror or error}") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    markdown = args.markdown or args.out / "README.md"
    html = args.html or args.out / "site" / "index.html"
    n, problems = write_leaderboard(args.results_dir, markdown, html)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"{n} entries -> {markdown} and {html}")
    return 0
