"""``vsml-bench plot runs/NAME``: a PNG of a training run's curves (matplotlib, Agg backend).

Left: the meta-loss per step (faint) and its moving average; right: held-out accuracy of
each evaluation family. Reads ``metrics.jsonl``; writes ``curves.png`` in the run folder
unless ``--png`` says where.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vsml_bench.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the run folder written by `vsml-bench train`")
    parser.add_argument("--png", help="output file (default RUN/curves.png)")
    parser.add_argument("--window", type=int, default=50, help="moving-average window (steps)")


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """``(step records, eval records)`` of a run; a line cut by a kill is skipped."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise UserError(f"{path} does not exist; pass the folder given to `vsml-bench train --out`")
    steps, evals = [], []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        (evals if "eval" in record else steps).append(record)
    if not steps:
        raise UserError(f"{path} has no training steps yet; plot again once the run has started")
    return steps, evals


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_run(run_dir: str | Path, png: str | Path | None = None, window: int = 50) -> Path:
    """Draw the curves of ``run_dir`` and write them atomically to ``png``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vsml_bench.io import atomic_write_bytes

    run_dir = Path(run_dir)
    steps, evals = read_metrics(run_dir)
    png = Path(png) if png else run_dir / "curves.png"
    x = [r["step"] for r in steps]
    loss = [r["loss"] for r in steps]
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(x, loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="per step")
    ax_loss.plot(
        x, moving_average(loss, max(window, 1)), color="tab:blue", label=f"mean of {window}"
    )
    ax_loss.set_xlabel("meta-step")
    ax_loss.set_ylabel("meta-loss (online cross-entropy)")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    names = sorted({name for r in evals for name in r["eval"]})
    for name in names:
        points = [(r["step"], r["eval"][name]) for r in evals if name in r["eval"]]
        ax_eval.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
    ax_eval.set_xlabel("meta-step")
    ax_eval.set_ylabel("held-out online accuracy")
    if names:
        ax_eval.legend()
    ax_eval.grid(alpha=0.3)
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(png, buffer.getvalue())
    return png


def run(args: argparse.Namespace) -> int:
    if not Path(args.run).is_dir():
        raise UserError(f"{args.run} is not a run folder; pass the folder given to `train --out`")
    png = plot_run(args.run, args.png, args.window)
    print(f"wrote {png}")
    return 0
