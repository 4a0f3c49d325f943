"""What every experiment writes: provenance, JSON, a PNG and Markdown tables (atomically)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Clock:
    """Wall and CPU seconds since creation (CPU time sums the process's threads, XLA's too)."""

    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=time.process_time)

    def read(self) -> dict[str, float]:
        return {
            "wall_time_s": round(time.perf_counter() - self.wall0, 1),
            "cpu_time_s": round(time.process_time() - self.cpu0, 1),
        }


def command_line() -> str:
    """The command as typed: ``vsml-bench experiment ...`` (argv[0] shortened)."""
    return " ".join(["vsml-bench", *sys.argv[1:]])[:2000]


def provenance(clock: Clock) -> dict[str, Any]:
    """Code, software, hardware, the command and the time it took."""
    from vsml_bench.provenance import environment

    return {**environment(), "command": command_line(), **clock.read()}


def dumps(value: Any, level: int = 0) -> str:
    """JSON with one item per line, except lists of scalars, which stay on one line.

    Raw results are long lists of numbers or bit strings; one line each keeps the files small
    and their diffs readable.
    """
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list | tuple) and any(isinstance(v, dict | list | tuple) for v in value):
        return "[\n" + ",\n".join(inner + dumps(v, level + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def read_document(path: Path, experiment: str) -> dict[str, Any]:
    """A results document ``vsml-bench experiment <experiment>`` wrote (for ``--render-only``)."""
    from vsml_bench.errors import UserError

    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(
            f"cannot read {path} ({error}); run the experiment with this --out first"
        ) from None
    if not isinstance(document, dict) or document.get("experiment") != experiment:
        raise UserError(f"{path} is not the output of `vsml-bench experiment {experiment}`")
    return document


def write_json(path: Path, document: dict[str, Any]) -> Path:
    from vsml_bench.io import atomic_write_text

    return atomic_write_text(path, dumps(document) + "\n")


def write_text(path: Path, text: str) -> Path:
    from vsml_bench.io import atomic_write_text

    return atomic_write_text(path, text)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 130) -> Path:
    """Write a matplotlib figure as PNG atomically, then close it."""
    import io

    from vsml_bench.io import atomic_write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table (cells are escaped for ``|``)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out.extend(line(row) for row in rows)
    return "\n".join(out) + "\n"


def points(value: float, digits: int = 1) -> str:
    """A fraction as percentage points: ``0.6123 -> "61.2"``."""
    return f"{100 * value:.{digits}f}"


def progress(total: int, enabled: bool, unit: str):
    """A tqdm bar on stderr (disabled: a no-op object with the same methods)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit=unit, file=sys.stderr)
