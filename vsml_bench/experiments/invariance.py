"""``vsml-bench experiment invariance``: one set of meta-parameters across task variants (§4.3).

The VSML paper claims that one set of meta-parameters works across class counts, input
resolutions, random projections and shuffled inputs about as well as on the original task. Here
every learner of the lineup (:mod:`.lineup`: the shipped meta-trained learners and SGD/Adam
tuned on the train split) runs, on each dataset's **test** split, on the unmodified task
(native resolution, all classes, labels in dataset order, no projection) and on variants that
change one thing:

* ``classes``: ``n_classes = c`` (a random subset of the dataset's classes per stream);
* ``resolution``: images resized to ``s x s`` (``image_size = s``, area filter);
* ``projection``: inputs ``x W`` with a per-stream Glorot-uniform ``D x D`` matrix ``W``;
* ``pixels``: inputs ``x[π]`` with a per-stream random permutation ``π`` of the ``D`` pixels;
* ``labels``: the dataset classes get labels in a per-stream random order.

For each (learner, variant): the mean online accuracy ``A = 1/S Σ_s 1/T Σ_t c_{s,t}`` over ``S``
streams of ``T`` examples, with a 95% percentile-bootstrap CI over streams
(:func:`vsml_bench.leaderboard.metrics.bootstrap_ci`), and the difference to the learner's
own unmodified task ``Δ = A_variant − A_unmodified`` with a 95% CI from independent bootstrap
resamples of both sets of streams. Invariance within a margin ``m`` (default 5 points) is judged
one-sided, because a variant may be easier (fewer classes): **holds** when the CI of ``Δ`` lies
above ``−m``, **fails** when it lies below ``−m``, **inconclusive** when it contains ``−m``.
A fewer-classes variant is easier for every learner, so its Δ says more when read next to the
tuned baselines' Δ on the same row.

Writes ``invariance.json`` (config, lineup, provenance, per-stream correctness bits of every
cell so that every figure can be recomputed), ``invariance.png`` (a heatmap of Δ per dataset)
and ``table.md`` into ``--out``.

    VSML_BENCH_DATA=... vsml-bench experiment invariance --out docs/results/invariance
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.errors import UserError
from vsml_bench.experiments import options

EXPERIMENT = "invariance"
SCHEMA_VERSION = 1
VERDICTS = {"holds": "✓", "fails": "✗", "inconclusive": "~"}


@dataclass(frozen=True)
class Config:
    """The grid and the sample sizes of a run."""

    datasets: tuple[str, ...]
    streams: int
    length: int
    class_counts: tuple[int, ...]
    image_sizes: tuple[int, ...]
    margin: float  # percentage points
    seed: int = 0
    split: str = "test"  # the reported streams
    tune_split: str = "train"  # where SGD/Adam choose their learning rate

    def to_dict(self) -> dict[str, Any]:
        return options.config_to_dict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Config:
        return options.config_from_dict(cls, record)


#: For 2 CPU cores: 13 variants per dataset (compiling one program per learner and variant
#: costs as much as running it at this size).
CPU = Config(
    datasets=("fashion_mnist", "mnist"),
    streams=64,
    length=100,
    class_counts=(2, 3, 5, 7),
    image_sizes=(7, 14, 21, 36, 48),
    margin=5.0,
)
#: Paper-sized (streams of 500, as VSML meta-trains; every class count, finer resolutions):
#: for accelerators.
PAPER = dataclasses.replace(
    CPU,
    streams=512,
    length=500,
    class_counts=(2, 3, 4, 5, 6, 7, 8, 9),
    image_sizes=(7, 10, 14, 21, 32, 36, 42, 48),
)


@dataclass(frozen=True)
class Variant:
    """One task variant: a name, its group and the env kwargs that make it."""

    name: str
    group: str
    kwargs: dict[str, Any]


def variants(config: Config, n_dataset_classes: int, native_size: int) -> list[Variant]:
    """The unmodified task first, then one variant per changed factor (see the module doc)."""
    out = [Variant("unmodified", "unmodified", {})]
    out += [
        Variant(f"{c} classes", "classes", {"n_classes": c})
        for c in config.class_counts
        if c != n_dataset_classes
    ]
    out += [
        Variant(f"{s}x{s} px", "resolution", {"image_size": s})
        for s in config.image_sizes
        if s != native_size
    ]
    out += [
        Variant("random projection", "projection", {"projection": True}),
        Variant("pixel permutation", "pixels", {"permute_pixels": True}),
        Variant("label permutation", "labels", {"permute_labels": True}),
    ]
    return out


def make_env(dataset: str, split: str, config: Config, variant: Variant) -> Any:
    """Env params of ``variant`` of ``dataset``'s ``split`` (labels in dataset order unless changed)."""
    from vsml_bench import envs

    kwargs = {"permute_labels": False, **variant.kwargs}
    _, params = envs.make_from(
        "online", dataset, split=split, stream_length=config.length, **kwargs
    )
    return params


# --- statistics -------------------------------------------------------------------------


def delta_ci(variant_acc: np.ndarray, base_acc: np.ndarray, rng: np.random.Generator):
    """``mean(variant) − mean(base)`` with a 95% CI from independent bootstrap resamples.

    The two sets of streams are different tasks (not paired), so each is resampled on its own.
    """
    from vsml_bench.leaderboard import metrics

    v, b = np.asarray(variant_acc, np.float64), np.asarray(base_acc, np.float64)
    n = metrics.N_BOOTSTRAP
    diffs = v[rng.integers(0, len(v), (n, len(v)))].mean(1) - b[
        rng.integers(0, len(b), (n, len(b)))
    ].mean(1)
    tail = (1.0 - metrics.CONFIDENCE) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return metrics.Estimate(float(v.mean() - b.mean()), float(low), float(high))


def verdict(delta: Any, margin_points: float) -> str:
    """``holds`` / ``fails`` / ``inconclusive``: where the CI of Δ lies relative to ``−margin``."""
    m = margin_points / 100.0
    if delta.low >= -m:
        return "holds"
    if delta.high < -m:
        return "fails"
    return "inconclusive"


def score_cell(
    correct: np.ndarray, base_correct: np.ndarray | None, margin: float, seed_parts: Sequence[str]
) -> dict[str, Any]:
    """Accuracy (and Δ + verdict unless this is the unmodified task) of one (learner, variant)."""
    from vsml_bench.leaderboard import metrics

    acc = np.asarray(correct, np.float64).mean(axis=1)
    cell: dict[str, Any] = {
        "accuracy": metrics.bootstrap_ci(acc, metrics.stable_seed(*seed_parts, "acc")).to_dict()
    }
    if base_correct is not None:
        base_acc = np.asarray(base_correct, np.float64).mean(axis=1)
        delta = delta_ci(acc, base_acc, metrics.stable_seed(*seed_parts, "delta"))
        cell["delta"] = delta.to_dict()
        cell["verdict"] = verdict(delta, margin)
    return cell


# --- the run ------------------------------------------------------------------------------


def run_experiment(config: Config, specs: Sequence[str], show_progress: bool = True) -> dict:
    """Run the grid for every learner of ``specs``; the JSON document (see the module doc)."""
    import jax

    from vsml_bench.experiments import lineup, report
    from vsml_bench.leaderboard import metrics

    clock = report.Clock()
    entrants = lineup.build(specs)
    key = jax.random.key(config.seed)
    datasets: dict[str, Any] = {}
    plans = []
    for dataset in config.datasets:
        base = make_env(dataset, config.split, config, Variant("unmodified", "unmodified", {}))
        native = int(base.example_shape[0]) if len(base.example_shape) == 3 else 0
        plans.append((dataset, variants(config, base.n_dataset_classes, native)))
        del base
    bar = report.progress(sum(len(v) for _, v in plans), show_progress, "variant")
    for dataset, grid in plans:
        rows = []
        base_correct: dict[str, np.ndarray] = {}
        for variant in grid:
            bar.set_description(f"{dataset}: {variant.name}")
            params = make_env(dataset, config.split, config, variant)
            results = lineup.run_lineup(
                entrants,
                params,
                lambda dataset=dataset, variant=variant: make_env(
                    dataset, config.tune_split, config, variant
                ),
                key,
                config.streams,
                seed=config.seed,
            )
            cells: dict[str, Any] = {}
            for entrant in entrants:
                result = results[entrant.spec]
                outputs = lineup.outputs_of(result)
                if outputs is None:
                    cells[entrant.spec] = {"not_run": result.reason}
                    continue
                if variant.group == "unmodified":
                    base_correct[entrant.spec] = outputs.correct
                base = None if variant.group == "unmodified" else base_correct.get(entrant.spec)
                cell = score_cell(
                    outputs.correct,
                    base,
                    config.margin,
                    (EXPERIMENT, dataset, variant.name, entrant.spec),
                )
                if isinstance(result, lineup.Tuned):
                    cell["learning_rate"] = result.learning_rate
                    cell["train_scores"] = result.train_scores
                    cell["test_scores"] = result.test_scores
                cell["correct"] = [metrics.encode_bits(row) for row in outputs.correct]
                cells[entrant.spec] = cell
            rows.append(
                {
                    "name": variant.name,
                    "group": variant.group,
                    "env_kwargs": {
                        "split": config.split,
                        "stream_length": config.length,
                        "permute_labels": False,
                        **variant.kwargs,
                    },
                    "n_classes": int(params.n_classes),
                    "input_size": int(params.input_size),
                    "chance": round(1.0 / params.n_classes, 6),
                    "results": cells,
                }
            )
            del params, results
            bar.update()
        datasets[dataset] = {"env_id": lineup.online_env_id(dataset), "variants": rows}
    bar.close()
    return {
        "experiment": EXPERIMENT,
        "schema_version": SCHEMA_VERSION,
        "config": config.to_dict(),
        "metric": "mean online accuracy over the stream, 95% percentile bootstrap over streams",
        "rule": (
            f"holds: the 95% CI of Δ (variant − unmodified) lies above −{config.margin:g} "
            f"points; fails: it lies below −{config.margin:g}; inconclusive: it contains it"
        ),
        "streams": {
            "reported": f"split={config.split}, streams 0..S-1 of fold_in(key(seed), 0)",
            "tuning": f"split={config.tune_split}, streams 0..S-1 of fold_in(key(seed), 1)",
        },
        "learners": [e.describe() for e in entrants],
        "datasets": datasets,
        "provenance": report.provenance(clock),
    }


# --- outputs ------------------------------------------------------------------------------


def _cell_text(cell: dict[str, Any], reference: bool) -> tuple[str, str]:
    """``(accuracy [CI], Δ and verdict)`` of a cell; ``reference`` for the unmodified task."""
    from vsml_bench.experiments.report import points

    if "not_run" in cell:
        return "not run", ""
    acc = cell["accuracy"]
    text = f"{points(acc['value'])} [{points(acc['low'])}, {points(acc['high'])}]"
    if "delta" not in cell:  # the reference itself, or a learner that could not run it
        return text, "(reference)" if reference else "no reference"
    d = cell["delta"]
    sign = "+" if d["value"] >= 0 else "−"
    return text, f"{sign}{points(abs(d['value']))} {VERDICTS[cell['verdict']]}"


def markdown(document: dict[str, Any]) -> str:
    """One table per dataset: accuracy [95% CI] and Δ with its verdict, per learner."""
    from vsml_bench.experiments.report import markdown_table

    config = document["config"]
    specs = [learner["spec"] for learner in document["learners"]]
    parts = [
        f"Mean online accuracy (%) over {config['streams']} test streams of {config['length']} "
        f"examples, [95% bootstrap CI]; Δ = variant − unmodified (points). "
        f"✓ the CI of Δ lies above −{config['margin']:g}, ✗ below, ~ contains it.\n"
    ]
    for dataset, block in document["datasets"].items():
        header = ["variant", "chance", *[h for s in specs for h in (s, "Δ")]]
        rows = []
        for row in block["variants"]:
            reference = row["group"] == "unmodified"
            cells = [_cell_text(row["results"][s], reference) for s in specs]
            rows.append(
                [row["name"], f"{100 * row['chance']:.0f}", *[t for pair in cells for t in pair]]
            )
        parts.append(f"\n**{dataset}** (`{block['env_id']}`, {config['split']} split)\n\n")
        parts.append(markdown_table(header, rows))
    return "".join(parts)


def plot(document: dict[str, Any], path: Path) -> Path:
    """A heatmap of Δ (points) per dataset: variants down, learners across, accuracy written in."""
    from vsml_bench.experiments import report

    plt = report.pyplot()
    specs = [learner["spec"] for learner in document["learners"]]
    blocks = list(document["datasets"].items())
    n_rows = max(len(block["variants"]) for _, block in blocks)
    figure, axes = plt.subplots(
        1,
        len(blocks),
        figsize=(1.6 + 1.5 * len(specs) * len(blocks), 0.9 + 0.36 * n_rows),
        squeeze=False,
        layout="constrained",  # room for each panel's variant names
    )
    limit = 20.0
    image = None
    for ax, (dataset, block) in zip(axes[0], blocks, strict=True):
        names = [row["name"] for row in block["variants"]]
        grid = np.full((len(names), len(specs)), np.nan)
        for i, row in enumerate(block["variants"]):
            for j, spec in enumerate(specs):
                cell = row["results"][spec]
                if "not_run" in cell:
                    text = "n/a"
                else:
                    grid[i, j] = 100 * cell.get("delta", {"value": 0.0})["value"]
                    mark = VERDICTS.get(cell.get("verdict", ""), "")
                    text = f"{100 * cell['accuracy']['value']:.1f} {mark}".strip()
                dark = abs(grid[i, j]) > 0.6 * limit  # white text on the saturated colours
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=7, color="w" if dark else "k"
                )
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(specs)), specs, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(dataset, fontsize=10)
    figure.colorbar(image, ax=axes[0].tolist(), label="Δ accuracy vs unmodified (points)")
    config = document["config"]
    figure.suptitle(
        f"Invariance: mean online accuracy (%) on {config['split']} streams ({config['streams']}×"
        f"{config['length']}); colour = Δ; ✓/✗/~ = within {config['margin']:g} points",
        fontsize=9,
    )
    return report.save_figure(figure, path)


def write_outputs(document: dict[str, Any], out: Path, with_json: bool = True) -> list[Path]:
    """``invariance.json`` (unless not ``with_json``), ``invariance.png`` and ``table.md``."""
    from vsml_bench.experiments import report

    paths = [report.write_json(out / "invariance.json", document)] if with_json else []
    return [
        *paths,
        plot(document, out / "invariance.png"),
        report.write_text(out / "table.md", markdown(document)),
    ]


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_common(
        parser,
        out="docs/results/invariance",
        paper_help="the paper-sized config (512 streams of 500, finer resolutions): for accelerators",
    )
    options.add_lineup(parser, document="invariance.json", streams_help="test streams per cell")
    parser.add_argument("--class-counts", type=int, nargs="+", default=None)
    parser.add_argument("--image-sizes", type=options.positive, nargs="+", default=None)
    parser.add_argument("--margin", type=float, default=None, help="invariance margin (points)")


def config_from_args(args: argparse.Namespace) -> Config:
    """``PAPER`` or ``CPU``, with every option given on the command line applied on top."""
    config = options.config_from_args(args, CPU, PAPER)
    if any(c < 2 for c in config.class_counts):
        raise UserError("--class-counts must all be at least 2 (a task needs two classes)")
    if config.margin <= 0:
        raise UserError(f"--margin must be positive (points), not {config.margin:g}")
    if config.streams < 2:
        raise UserError("--streams must be at least 2 for a bootstrap CI")
    return config


def run(args: argparse.Namespace) -> int:
    from vsml_bench.experiments import lineup

    return lineup.run_command(args, sys.modules[__name__])
