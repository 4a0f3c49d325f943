"""``vsml-bench study RUN [RUN ...]``: compare meta-training runs at equal CPU time.

Each run folder written by ``vsml-bench train`` is one arm of a recipe study. Arms are compared
on the same held-out families (the preset's ``eval_families``) against the CPU seconds the run
had used (``cpu_s`` in ``metrics.jsonl``: all threads of the process, compilation included), so
a run that shared the machine with other work is not penalised for it. A run warm-started
from another arm's ``best.msgpack`` is charged that arm's CPU time as well. For each arm and each
budget ``b`` the table reports the best held-out mean accuracy among evaluations made within
``b`` CPU-minutes, i.e. what checkpoint selection would have shipped had the run stopped there.

Writes ``study.json`` (every arm's configuration and curve) and ``study.png`` (held-out mean
accuracy against CPU-minutes), and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

from vsml_bench.agents.meta.plot import read_metrics
from vsml_bench.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders written by `vsml-bench train`")
    parser.add_argument("--out", required=True, help="folder for study.json and study.png")
    parser.add_argument(
        "--budgets",
        default="10,20,40",
        help="comma-separated CPU-minute budgets for the table (default 10,20,40)",
    )


def _recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The knobs of a run that differ between arms (optimiser and task side)."""
    train = config.get("train", {})
    families = config.get("families", [])
    knobs = {
        "method": train.get("method"),
        "learning_rate": train.get("learning_rate"),
        "schedule": train.get("schedule", "constant"),
        "warmup_steps": train.get("warmup_steps", 0),
        "batch": train.get("n_pairs") if train.get("method") == "es" else train.get("n_tasks"),
        "truncation": train.get("truncation"),
        "image_size": next(
            (f["kwargs"]["image_size"] for f in families if "image_size" in f.get("kwargs", {})),
            None,
        ),
        "stream_length": next(
            (
                f["kwargs"]["stream_length"]
                for f in families
                if "stream_length" in f.get("kwargs", {})
            ),
            None,
        ),
        "polarity": any(f.get("kwargs", {}).get("invert_inputs") for f in families),
        "init_from": (config.get("init_from") or {}).get("path"),
    }
    return {k: v for k, v in knobs.items() if v is not None}


def read_arm(run_dir: str | Path) -> dict[str, Any]:
    """One arm: its name, recipe and curve ``[{"step", "cpu_min", "eval", "eval_mean"}]``."""
    run_dir = Path(run_dir)
    steps, evals = read_metrics(run_dir)
    config_path = run_dir / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(
            f"cannot read {config_path} ({error}); is {run_dir} a run folder?"
        ) from None
    if "cpu_s" not in steps[-1]:
        raise UserError(
            f"{run_dir} records no CPU time (cpu_s); it was trained by an older vsml-bench"
        )
    cpu_at = {r["step"]: r["cpu_s"] for r in steps}
    curve = [
        {
            "step": r["step"],
            "cpu_min": cpu_at[r["step"]] / 60,
            "eval": r["eval"],
            "eval_mean": r["eval_mean"],
        }
        for r in evals
        if r["step"] in cpu_at
    ]
    best = run_dir / "best.msgpack"
    return {
        "name": run_dir.name,
        "command": config.get("command"),
        "init_sha256": (config.get("init_from") or {}).get("sha256"),
        "best_sha256": hashlib.sha256(best.read_bytes()).hexdigest() if best.exists() else None,
        "recipe": _recipe(config),
        "steps": steps[-1]["step"],
        "cpu_min": steps[-1]["cpu_s"] / 60,
        "wall_min": steps[-1]["wall_s"] / 60,
        "curve": curve,
    }


def chain_warm_starts(arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shift each warm-started arm by the CPU time of the arms it started from.

    An arm trained with ``--init-from <run>/best.msgpack`` has spent that run's CPU time
    too. When ``<run>`` is one of the arms, its whole CPU time (its own warm start included)
    is added to every point of the warm-started arm, so budgets compare total cost. The
    source is matched by the sha256 of its ``best.msgpack`` (so a shipped copy of it counts),
    else by folder name.
    """
    by_sha = {arm["best_sha256"]: arm for arm in arms if arm.get("best_sha256")}
    by_name = {arm["name"]: arm for arm in arms}

    def parent_of(arm: dict[str, Any]) -> dict[str, Any] | None:
        source = arm["recipe"].get("init_from")
        parent = by_sha.get(arm.get("init_sha256")) or (
            by_name.get(Path(source).parent.name) if source else None
        )
        return None if parent is arm else parent

    def cpu_before(arm: dict[str, Any], seen: tuple[int, ...] = ()) -> float:
        parent = parent_of(arm)
        if parent is None or id(parent) in seen:
            return 0.0
        return parent["cpu_min"] + cpu_before(parent, (*seen, id(arm)))

    offsets = [cpu_before(arm) for arm in arms]  # before any arm is shifted
    for arm, offset in zip(arms, offsets, strict=True):
        if not offset:
            continue
        arm["cpu_min_before"] = offset
        arm["cpu_min"] += offset
        for point in arm["curve"]:
            point["cpu_min"] += offset
    return arms


def best_within(arm: dict[str, Any], budget_min: float) -> dict[str, Any] | None:
    """The best evaluation made within ``budget_min`` CPU-minutes (None if the run had none)."""
    points = [p for p in arm["curve"] if p["cpu_min"] <= budget_min]
    return max(points, key=lambda p: p["eval_mean"]) if points else None


def table(arms: list[dict[str, Any]], budgets: list[float]) -> str:
    """Markdown: per arm, its recipe, the best held-out mean within each budget, and overall."""
    families = sorted({name for arm in arms for p in arm["curve"] for name in p["eval"]})
    head = ["arm", "recipe", *(f"≤ {b:g} CPU-min" for b in budgets), "best (step, CPU-min)"]
    head += families
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in arms:
        recipe = ", ".join(
            k if v is True else f"{k} {v}" for k, v in arm["recipe"].items() if v is not False
        )
        cells = [arm["name"], recipe]
        for b in budgets:
            point = best_within(arm, b)
            cells.append(
                "—" if point is None or arm["cpu_min"] < b * 0.9 else f"{point['eval_mean']:.3f}"
            )
        best = best_within(arm, math.inf)
        if best is None:
            cells += ["—"] * (1 + len(families))
        else:
            cells.append(f"{best['eval_mean']:.3f} ({best['step']}, {best['cpu_min']:.0f})")
            cells += [f"{best['eval'].get(f, math.nan):.3f}" for f in families]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(arms: list[dict[str, Any]]) -> bytes:
    """PNG bytes: held-out mean accuracy against CPU-minutes, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arm in arms:
        xs = [p["cpu_min"] for p in arm["curve"]]
        ys = [p["eval_mean"] for p in arm["curve"]]
        ax.plot(xs, ys, marker="o", markersize=3, label=arm["name"])
    ax.set_xlabel("CPU-minutes (all threads; 2 cores ≈ 2 CPU-min per wall minute)")
    ax.set_ylabel("held-out mean online accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    from vsml_bench.io import atomic_write_bytes, atomic_write_text

    try:
        budgets = [float(b) for b in args.budgets.split(",")]
    except ValueError:
        raise UserError(
            f"--budgets must be comma-separated numbers, got {args.budgets!r}"
        ) from None
    for run_dir in args.runs:
        if not Path(run_dir).is_dir():
            raise UserError(f"{run_dir} is not a run folder; pass folders given to `train --out`")
    arms = chain_warm_starts([read_arm(r) for r in args.runs])
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder")
    markdown = table(arms, budgets)
    atomic_write_text(
        out / "study.json", json.dumps({"budgets_cpu_min": budgets, "arms": arms}, indent=1) + "\n"
    )
    atomic_write_bytes(out / "study.png", plot(arms))
    print(markdown)
    print(f"wrote {out / 'study.json'} and {out / 'study.png'}")
    return 0
