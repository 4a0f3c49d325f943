"""Export a run's best meta-parameters as a shipped pretrained set (msgpack + model card).

    python -m vsml_bench.agents.meta.export runs/pretrained_mnist agents/pretrained/vsml_mnist \
        --datasets mnist

writes ``vsml_mnist.msgpack`` (the bytes of the run's ``best.msgpack``, or of the latest
checkpoint's meta-parameters with ``--latest``) and ``vsml_mnist.json``, the model card:
learner config, exact command, data, steps, wall time, hardware, git commit, sha256.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from flax import serialization

from vsml_bench.agents.meta.plot import read_metrics
from vsml_bench.io import atomic_write_bytes, atomic_write_text


def export(
    run_dir: str | Path,
    stem: str | Path,
    *,
    datasets: list[str],
    latest: bool = False,
    notes: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``<stem>.msgpack`` and ``<stem>.json`` from ``run_dir``; return the model card."""
    run_dir, stem = Path(run_dir), Path(stem)
    config = json.loads((run_dir / "config.json").read_text())
    steps, evals = read_metrics(run_dir)
    checkpoint = serialization.msgpack_restore((run_dir / "checkpoint.msgpack").read_bytes())
    if latest:
        exported_step = int(checkpoint["step"])
        data = serialization.msgpack_serialize(checkpoint["meta_params"])
    else:
        exported_step = int(checkpoint["best"]["step"])
        data = serialization.msgpack_serialize(checkpoint["best"]["meta_params"])
    at_step = [r for r in evals if r["step"] == exported_step]
    losses = [r["loss"] for r in steps if exported_step - 50 < r["step"] <= exported_step]
    card = {
        "name": stem.name,
        "learner": config.get("learner", "vsml"),
        "config": {k: v for k, v in config.get("learner_config", {}).items() if k != "pretrained"},
        "meta_trained_on": list(datasets),
        "data": {
            "train_families": config.get("families"),
            "eval_families": config.get("eval_families"),
            "note": "checkpoint selection used only the held-out families listed here",
        },
        "command": config.get("command"),
        "train": config.get("train"),
        "steps_trained": int(checkpoint["step"]),
        "exported_step": exported_step,
        "selected_by": "latest" if latest else "best held-out eval_mean",
        "held_out_eval_at_exported_step": at_step[0]["eval"] if at_step else None,
        "meta_loss_mean_last_50_steps": sum(losses) / len(losses) if losses else None,
        "wall_time_s": float(checkpoint["wall_time_s"]),
        "hardware": config.get("hardware"),
        "git_commit": config.get("git_commit"),
        "package_version": config.get("package_version"),
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": "flax.serialization msgpack of the meta-parameter dict (float32), no pickle",
        "notes": notes,
        **(extra or {}),
    }
    atomic_write_bytes(stem.with_suffix(".msgpack"), data)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("stem", help="output path without suffix")
    parser.add_argument("--datasets", nargs="+", required=True, help="meta-training datasets")
    parser.add_argument("--latest", action="store_true", help="export the latest, not the best")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    card = export(args.run, args.stem, datasets=args.datasets, latest=args.latest, notes=args.notes)
    print(json.dumps({k: card[k] for k in ("exported_step", "sha256", "wall_time_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
