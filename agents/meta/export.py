"""Model cards of meta-trained parameters: a run's own card, and export as a shipped set.

A model card is a JSON object beside a meta-parameter file that says what the parameters are
(learner and its config) and what they saw: ``meta_trained_on`` lists the data registry names
of the meta-training data, and the leaderboard harness marks a task on those datasets as
in-distribution (``vsml-bench evaluate --learner vsml:<file>`` reads it). Further keys: exact
command, task families, steps, wall and CPU time, hardware, git commit, and the sha256 of the
parameter file, which the harness checks.

* ``vsml-bench train`` writes :data:`RUN_CARD` (``model_card.json``) in its run folder, for
  ``best.msgpack`` (:func:`write_run_card`): when the session starts (no sha256 yet: the best
  parameters are still changing), and again with the sha256 when it ends or is stopped.
* Export copies a run's best (or ``--latest``) parameters to a shipped set::

      vsml-bench export runs/pretrained_mnist agents/pretrained/vsml_mnist

  writes ``vsml_mnist.msgpack`` and ``vsml_mnist.json``. ``--datasets`` overrides
  ``meta_trained_on``, which by default is that of the run (:func:`meta_trained_on`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flax import serialization

from vsml_bench.agents.meta import checkpoint as ckpt
from vsml_bench.agents.meta.plot import read_metrics
from vsml_bench.errors import UserError
from vsml_bench.io import atomic_write_bytes, atomic_write_text

#: A training run's model card, in its run folder; it describes :data:`RUN_META_PARAMS`.
RUN_CARD = "model_card.json"
#: The meta-parameter file of a run that :data:`RUN_CARD` describes.
RUN_META_PARAMS = "best.msgpack"
FORMAT = "flax.serialization msgpack of the meta-parameter dict (float32), no pickle"


def card_path_for(meta_params_file: str | Path) -> Path | None:
    """The model card of a meta-parameter file, or None: ``<stem>.json`` beside it (a shipped
    or exported set), else the run card of the run folder it is the best parameters of."""
    path = Path(meta_params_file)
    if path.with_suffix(".json").is_file():
        return path.with_suffix(".json")
    if path.name == RUN_META_PARAMS and (path.parent / RUN_CARD).is_file():
        return path.parent / RUN_CARD
    return None


def _card_datasets(meta_params_file: str | Path) -> list[str]:
    """``meta_trained_on`` of the card of ``meta_params_file`` ([] if it has none)."""
    card_path = card_path_for(meta_params_file)
    if card_path is None:
        return []
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError):
        return []
    datasets = card.get("meta_trained_on") if isinstance(card, dict) else None
    return [str(d) for d in datasets] if isinstance(datasets, list) else []


def meta_trained_on(config: Mapping[str, Any]) -> list[str]:
    """The datasets a run's parameters saw: those of its training families, plus those its
    ``--init-from`` parameters saw (from their model card), sorted.

    Held-out families only select checkpoints and are not included.
    """
    from vsml_bench.envs.registration import parse_env_id

    datasets = set()
    for family in config.get("families") or ():
        try:
            datasets.add(parse_env_id(family["env_id"])[1])
        except (KeyError, TypeError, ValueError):
            continue
    init = config.get("init_from")
    if isinstance(init, Mapping) and init.get("path"):
        datasets.update(_card_datasets(init["path"]))
    return sorted(datasets)


def _curve(steps: list[dict], evals: list[dict]) -> list[dict[str, Any]]:
    """Every held-out evaluation of the run with the wall and CPU seconds spent by then."""
    at = {r["step"]: r for r in steps}
    return [
        {
            "step": r["step"],
            "wall_s": at.get(r["step"], {}).get("wall_s"),
            "cpu_s": at.get(r["step"], {}).get("cpu_s"),
            "eval": r["eval"],
        }
        for r in evals
    ]


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise UserError(
            f"{run_dir} holds no config.json; pass the folder given to `vsml-bench train --out`"
        ) from None


def model_card(
    run_dir: str | Path,
    name: str,
    *,
    data: bytes | None,
    exported_step: int | None = None,
    selected_by: str | None = None,
    datasets: list[str] | None = None,
    notes: str = "",
    extra: Mapping[str, Any] | None = None,
    checkpoint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card of meta-parameters ``data`` (their bytes; None: not final yet) of a run.

    ``checkpoint`` is the run's checkpoint state when the caller has read it already.

    Facts that need the run's progress (steps, held-out score, times) are filled in from its
    checkpoint and metrics when those exist.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    if checkpoint is None and (run_dir / "checkpoint.msgpack").is_file():
        checkpoint = ckpt.read_state(run_dir / "checkpoint.msgpack")
    checkpoint = checkpoint or {}
    steps, evals = [], []
    if (run_dir / "metrics.jsonl").is_file():
        with contextlib.suppress(UserError):  # raised when no step has finished yet
            steps, evals = read_metrics(run_dir)
    at_step = [r for r in evals if r["step"] == exported_step]
    losses = [
        r["loss"]
        for r in steps
        if exported_step is not None and exported_step - 50 < r["step"] <= exported_step
    ]
    return {
        "name": name,
        "learner": config.get("learner", "vsml"),
        "config": {k: v for k, v in config.get("learner_config", {}).items() if k != "pretrained"},
        "meta_trained_on": meta_trained_on(config) if datasets is None else list(datasets),
        "data": {
            "train_families": config.get("families"),
            "eval_families": config.get("eval_families"),
            "eval_streams": config.get("eval_streams"),
            "note": "checkpoint selection used only the held-out families listed here",
        },
        "command": config.get("command"),
        "train": config.get("train"),
        "init_from": config.get("init_from"),
        "steps_trained": int(checkpoint["step"]) if "step" in checkpoint else 0,
        "exported_step": exported_step,
        "selected_by": selected_by,
        "held_out_eval_at_exported_step": at_step[0]["eval"] if at_step else None,
        "held_out_curve": _curve(steps, evals),
        "meta_loss_mean_last_50_steps": sum(losses) / len(losses) if losses else None,
        "wall_time_s": float(checkpoint.get("wall_time_s", 0.0)),
        "cpu_time_s": float(checkpoint.get("cpu_time_s", 0.0)),
        "hardware": config.get("hardware"),
        "git_commit": config.get("git_commit"),
        "package_version": config.get("package_version"),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": None if data is None else hashlib.sha256(data).hexdigest(),
        "format": FORMAT,
        "notes": notes,
        **(extra or {}),
    }


def write_run_card(run_dir: str | Path, *, final: bool) -> dict[str, Any]:
    """Write ``run_dir/model_card.json`` for the run's ``best.msgpack``; return the card.

    ``final=False`` (a session starting): no sha256, so the card never disagrees with a
    ``best.msgpack`` that training is still replacing, and ``meta_trained_on`` is there from
    the start. ``final=True`` (a session ending): the sha256 of ``best.msgpack`` as it is
    now, and the step it holds (from the checkpoint).
    """
    run_dir = Path(run_dir)
    best_file = run_dir / RUN_META_PARAMS
    data = best_file.read_bytes() if final and best_file.is_file() else None
    step, checkpoint = None, None
    if data is not None and (run_dir / "checkpoint.msgpack").is_file():
        checkpoint = ckpt.read_state(run_dir / "checkpoint.msgpack")
        step = int(checkpoint["best"]["step"])
    card = model_card(
        run_dir,
        run_dir.resolve().name,
        data=data,
        exported_step=step,
        selected_by="best held-out eval_mean",
        extra={"meta_params_file": RUN_META_PARAMS},
        checkpoint=checkpoint,
    )
    atomic_write_text(run_dir / RUN_CARD, json.dumps(card, indent=2) + "\n")
    return card


def export(
    run_dir: str | Path,
    stem: str | Path,
    *,
    datasets: list[str] | None = None,
    latest: bool = False,
    notes: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``<stem>.msgpack`` and ``<stem>.json`` from ``run_dir``; return the model card.

    ``datasets`` overrides ``meta_trained_on`` (default: :func:`meta_trained_on` of the run).
    """
    run_dir, stem = Path(run_dir), Path(stem)
    checkpoint = ckpt.read_state(run_dir / "checkpoint.msgpack")
    if latest:
        exported_step = int(checkpoint["step"])
        data = serialization.msgpack_serialize(checkpoint["meta_params"])
    else:
        exported_step = int(checkpoint["best"]["step"])
        data = serialization.msgpack_serialize(checkpoint["best"]["meta_params"])
    card = model_card(
        run_dir,
        stem.name,
        data=data,
        exported_step=exported_step,
        selected_by="latest" if latest else "best held-out eval_mean",
        datasets=datasets,
        notes=notes,
        extra=extra,
        checkpoint=checkpoint,
    )
    atomic_write_bytes(stem.with_suffix(".msgpack"), data)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run")
    parser.add_argument("stem", help="output path without suffix")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="meta-training datasets (default: the run's training families and --init-from)",
    )
    parser.add_argument("--latest", action="store_true", help="export the latest, not the best")
    parser.add_argument("--notes", default="")


def run(args: argparse.Namespace) -> int:
    """Export, then print the exported step, sha256 and wall time as JSON."""
    card = export(args.run, args.stem, datasets=args.datasets, latest=args.latest, notes=args.notes)
    print(json.dumps({k: card[k] for k in ("exported_step", "sha256", "wall_time_s")}))
    return 0


if __name__ == "__main__":  # `python -m vsml_bench.agents.meta.export`: `vsml-bench export`
    from vsml_bench.cli import main

    sys.exit(main(["export", *sys.argv[1:]]))
