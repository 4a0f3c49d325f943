"""``vsml-bench experiment introspection``: how fast each learner picks up a class (paper §5).

The VSML paper finds that its meta-learned algorithm learns by fast association: after one or a
few examples of a class it predicts that class, confidently and correctly, where gradient
descent needs many. Measured here on online streams of a dataset's **test** split (every
learner of the lineup on the same streams; SGD/Adam tuned on the train split, :mod:`.lineup`).

For step ``t`` of stream ``s`` with label ``y = y_{s,t}``, let ``k_{s,t} = #{u ≤ t : y_{s,u} =
y}``: the example is the ``k``-th of its class in the stream. With ``p = softmax(z_{s,t})``:

* accuracy at ``k``: ``P(argmax p = y | k)``, the fraction of all ``k``-th examples (over
  streams and classes) predicted right;
* confidence in the truth at ``k``: the mean of ``p_y``;
* confidence of the prediction at ``k``: the mean of ``max_c p_c``.

Each is a ratio ``Σ_s a_s(k) / Σ_s n_s(k)`` of per-stream sums over the ``n_s(k)`` ``k``-th
examples of stream ``s``, with a 95% percentile-bootstrap CI that resamples streams. ``k = 1``
is an example of a class not seen before: no learner can know its label, so accuracy there is
at most what guessing among unseen classes gives.

Writes ``introspection.json`` (the per-stream sums for every ``k``, so every figure can be
recomputed, and one example stream's output probabilities per learner), ``introspection.png``
(accuracy and confidences against ``k``), ``example_stream.png`` (each learner's output
probabilities over the first steps of one stream, the true labels marked) and ``table.md``.

    VSML_BENCH_DATA=... vsml-bench experiment introspection --out docs/results/introspection
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.errors import UserError
from vsml_bench.experiments import options

EXPERIMENT = "introspection"
SCHEMA_VERSION = 1
QUANTITIES = ("accuracy", "p_true", "p_pred")
#: Positions of the table (those up to ``max_k``).
TABLE_K = (1, 2, 3, 5, 10, 15, 20, 30)


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...]
    streams: int
    length: int
    n_classes: int
    max_k: int
    example_steps: int
    seed: int = 0
    split: str = "test"
    tune_split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        return options.config_to_dict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Config:
        return options.config_from_dict(cls, record)


#: A few CPU-minutes on 2 cores with the shipped VSML and tuned SGD/Adam.
CPU = Config(
    datasets=("fashion_mnist", "mnist"),
    streams=256,
    length=200,
    n_classes=10,
    max_k=15,
    example_steps=40,
)
#: Paper-sized (more and longer streams): for accelerators.
PAPER = dataclasses.replace(CPU, streams=1024, length=300, max_k=30)


# --- statistics -------------------------------------------------------------------------


def occurrence(labels: np.ndarray) -> np.ndarray:
    """``k [S, T]``: ``k[s, t] = #{u ≤ t : labels[s, u] = labels[s, t]}`` (1 = first of its class)."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if labels.size else 1
    onehot = labels[..., None] == np.arange(n_classes)
    seen = np.cumsum(onehot, axis=1)
    return np.take_along_axis(seen, labels[..., None], axis=-1)[..., 0]


def per_k_sums(values: np.ndarray, k: np.ndarray, max_k: int) -> np.ndarray:
    """``[S, max_k]``: the sum of ``values[s, t]`` over the steps with ``k[s, t] = j + 1``."""
    values = np.asarray(values, np.float64)
    out = np.zeros((values.shape[0], max_k))
    for j in range(max_k):
        out[:, j] = np.where(k == j + 1, values, 0.0).sum(axis=1)
    return out


def ratio_ci(sums: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """``Σ sums / Σ counts`` over streams with a 95% percentile bootstrap over streams.

    ``sums``, ``counts``: ``[S]``. Resamples with no count at all are dropped; with no count in
    the data the value is None (JSON null).
    """
    from vsml_bench.leaderboard import metrics

    sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
    if counts.sum() == 0:
        return {"value": None, "low": None, "high": None}
    idx = rng.integers(0, len(sums), size=(metrics.N_BOOTSTRAP, len(sums)))
    n = counts[idx].sum(axis=1)
    boot = sums[idx].sum(axis=1)[n > 0] / n[n > 0]
    tail = (1.0 - metrics.CONFIDENCE) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return metrics.Estimate(float(sums.sum() / counts.sum()), float(low), float(high)).to_dict()


def curves(
    counts: np.ndarray, sums: dict[str, np.ndarray], seed_parts: Sequence[str]
) -> dict[str, list[dict[str, float]]]:
    """``{quantity: [estimate at k = 1..K]}`` from ``[S, K]`` counts and per-quantity sums."""
    from vsml_bench.leaderboard import metrics

    out = {}
    for name in QUANTITIES:
        rng = metrics.stable_seed(*seed_parts, name)
        out[name] = [ratio_ci(sums[name][:, j], counts[:, j], rng) for j in range(counts.shape[1])]
    return out


# --- the run ------------------------------------------------------------------------------


def make_env(dataset: str, split: str, config: Config) -> Any:
    """Online streams of ``config.n_classes`` classes (random subset and label order per stream)."""
    from vsml_bench import envs

    _, params = envs.make_from(
        "online",
        dataset,
        split=split,
        stream_length=config.length,
        n_classes=config.n_classes,
        permute_labels=True,
    )
    return params


def _rounded(array: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(array, np.float64), digits).tolist()


def run_experiment(config: Config, specs: Sequence[str], show_progress: bool = True) -> dict:
    """Run every learner of ``specs`` on every dataset; the JSON document (module doc)."""
    import jax

    from vsml_bench.experiments import lineup, report
    from vsml_bench.leaderboard import metrics

    clock = report.Clock()
    entrants = lineup.build(specs)
    key = jax.random.key(config.seed)
    datasets: dict[str, Any] = {}
    bar = report.progress(len(config.datasets), show_progress, "dataset")
    for dataset in config.datasets:
        bar.set_description(dataset)
        params = make_env(dataset, config.split, config)
        results = lineup.run_lineup(
            entrants,
            params,
            lambda dataset=dataset: make_env(dataset, config.tune_split, config),
            key,
            config.streams,
            seed=config.seed,
        )
        labels = next(o.labels for o in map(lineup.outputs_of, results.values()) if o is not None)
        k = occurrence(labels)
        counts = per_k_sums(np.ones_like(k), k, config.max_k).astype(np.int64)
        learners: dict[str, Any] = {}
        for entrant in entrants:
            result = results[entrant.spec]
            outputs = lineup.outputs_of(result)
            if outputs is None:
                learners[entrant.spec] = {"not_run": result.reason}
                continue
            if not np.array_equal(outputs.labels, labels):
                raise AssertionError("learners of one lineup saw different streams")
            sums = {
                "accuracy": per_k_sums(outputs.correct, k, config.max_k),
                "p_true": per_k_sums(outputs.p_true, k, config.max_k),
                "p_pred": per_k_sums(outputs.p_pred, k, config.max_k),
            }
            acc = outputs.correct.astype(np.float64).mean(axis=1)
            entry: dict[str, Any] = {
                "online_accuracy": metrics.bootstrap_ci(
                    acc, metrics.stable_seed(EXPERIMENT, dataset, entrant.spec, "online")
                ).to_dict(),
                "by_k": curves(counts, sums, (EXPERIMENT, dataset, entrant.spec)),
                # Probability sums to 3 decimals: the pooled ratios move by < 1e-4, and the
                # paper-sized document stays under the repo's 1 MB per file.
                "sums": {
                    "accuracy": sums["accuracy"].astype(np.int64).tolist(),
                    "p_true": _rounded(sums["p_true"], 3),
                    "p_pred": _rounded(sums["p_pred"], 3),
                },
                "example_stream_probs": _rounded(outputs.first_probs[: config.example_steps], 3),
            }
            if isinstance(result, lineup.Tuned):
                entry["learning_rate"] = result.learning_rate
                entry["train_scores"] = result.train_scores
                entry["test_scores"] = result.test_scores
            learners[entrant.spec] = entry
        datasets[dataset] = {
            "env_id": lineup.online_env_id(dataset),
            "env_kwargs": {
                "split": config.split,
                "stream_length": config.length,
                "n_classes": config.n_classes,
                "permute_labels": True,
            },
            "counts": counts.tolist(),
            "example_stream_labels": labels[0, : config.example_steps].tolist(),
            "learners": learners,
        }
        del params, results
        bar.update()
    bar.close()
    return {
        "experiment": EXPERIMENT,
        "schema_version": SCHEMA_VERSION,
        "config": config.to_dict(),
        "definitions": {
            "k": "the example is the k-th of its class in the stream (1-indexed)",
            "accuracy": "P(argmax softmax(z) = y | k), pooled over streams and classes",
            "p_true": "mean softmax(z)[y] at k",
            "p_pred": "mean max_c softmax(z)[c] at k",
            "ci": "95% percentile bootstrap over streams of the ratio of per-stream sums",
            "sums": "[stream][k-1] per-stream sums; counts[stream][k-1] the number of k-th examples",
        },
        "streams": {
            "reported": f"split={config.split}, streams 0..S-1 of fold_in(key(seed), 0)",
            "tuning": f"split={config.tune_split}, streams 0..S-1 of fold_in(key(seed), 1)",
            "example": "stream 0 of the reported streams, first example_steps steps",
        },
        "learners": [e.describe() for e in entrants],
        "datasets": datasets,
        "provenance": report.provenance(clock),
    }


# --- outputs ------------------------------------------------------------------------------


def _estimate_text(estimate: dict[str, Any]) -> str:
    from vsml_bench.experiments.report import points

    if estimate["value"] is None:
        return "–"
    return (
        f"{points(estimate['value'])} [{points(estimate['low'], 0)}, {points(estimate['high'], 0)}]"
    )


def markdown(document: dict[str, Any]) -> str:
    """Per dataset: accuracy and confidence in the truth (%) at the k-th example of a class."""
    from vsml_bench.experiments.report import markdown_table, points

    config = document["config"]
    ks = [k for k in TABLE_K if k <= config["max_k"]]
    parts = [
        f"{config['streams']} {config['split']} streams of {config['length']} examples, "
        f"{config['n_classes']} classes. Accuracy on the k-th example of a class and the "
        "mean probability given to the true class, % [95% bootstrap CI over streams]; "
        "'online' is the mean online accuracy over the whole stream.\n"
    ]
    for dataset, block in document["datasets"].items():
        counts = np.asarray(block["counts"]).sum(axis=0)
        for quantity, title in (("accuracy", "accuracy"), ("p_true", "p(true class)")):
            header = ["learner", *[f"k={k}" for k in ks]]
            if quantity == "accuracy":
                header.append("online")
            rows = []
            for spec, entry in block["learners"].items():
                if "not_run" in entry:
                    rows.append([spec, *["not run"] * (len(header) - 1)])
                    continue
                row = [spec, *[_estimate_text(entry["by_k"][quantity][k - 1]) for k in ks]]
                if quantity == "accuracy":
                    row.append(points(entry["online_accuracy"]["value"]))
                rows.append(row)
            rows.append(["(k-th examples)", *[str(int(counts[k - 1])) for k in ks]])
            if quantity == "accuracy":
                rows[-1].append("")
            parts.append(f"\n**{dataset}**: {title}\n\n")
            parts.append(markdown_table(header, rows))
    return "".join(parts)


def plot_curves(document: dict[str, Any], path: Path) -> Path:
    """Rows: datasets; columns: accuracy, p(true), p(predicted) against k, with 95% CI bands."""
    from vsml_bench.experiments import report

    plt = report.pyplot()
    blocks = list(document["datasets"].items())
    titles = {
        "accuracy": "accuracy on the k-th example",
        "p_true": "p(true class)",
        "p_pred": "p(predicted class)",
    }
    figure, axes = plt.subplots(
        len(blocks), 3, figsize=(12, 3.3 * len(blocks)), squeeze=False, sharex=True
    )
    chance = 1.0 / document["config"]["n_classes"]
    for row, (dataset, block) in zip(axes, blocks, strict=True):
        for ax, quantity in zip(row, QUANTITIES, strict=True):
            for spec, entry in block["learners"].items():
                if "not_run" in entry:
                    continue
                est = entry["by_k"][quantity]
                ks = [j + 1 for j, e in enumerate(est) if e["value"] is not None]
                value = [est[k - 1]["value"] for k in ks]
                low = [est[k - 1]["low"] for k in ks]
                high = [est[k - 1]["high"] for k in ks]
                (line,) = ax.plot(ks, value, marker="o", markersize=3, label=spec)
                ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            if quantity == "accuracy":
                ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
            ax.set_ylim(0, 1)
            ax.set_title(f"{dataset}: {titles[quantity]}", fontsize=9)
            ax.set_xlabel("k (the example is the k-th of its class)")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")  # the emptiest corner
    return report.save_figure(figure, path)


def plot_example_stream(document: dict[str, Any], path: Path) -> Path:
    """Each learner's output probabilities over the first steps of one stream (first dataset)."""
    from vsml_bench.experiments import report

    plt = report.pyplot()
    dataset, block = next(iter(document["datasets"].items()))
    labels = np.asarray(block["example_stream_labels"])
    learners = [(s, e) for s, e in block["learners"].items() if "not_run" not in e]
    figure, axes = plt.subplots(
        len(learners),
        1,
        figsize=(10, 1.5 * len(learners) + 0.6),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    first = occurrence(labels[None])[0] == 1
    steps = np.arange(len(labels))
    for ax, (spec, entry) in zip(axes[:, 0], learners, strict=True):
        probs = np.asarray(entry["example_stream_probs"]).T  # [C, steps]
        image = ax.imshow(probs, aspect="auto", cmap="Greys", vmin=0, vmax=1, origin="lower")
        ax.scatter(steps[~first], labels[~first], s=14, facecolors="none", edgecolors="tab:red")
        ax.scatter(steps[first], labels[first], s=14, marker="x", color="tab:blue")
        ax.set_ylabel(spec, fontsize=8)
        ax.set_yticks(range(probs.shape[0]))
        ax.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel(
        "step (red circle: true label; blue x: first example of its class)", fontsize=8
    )
    figure.colorbar(image, ax=axes[:, 0].tolist(), label="softmax probability", shrink=0.4)
    figure.suptitle(f"{dataset}: output probabilities on stream 0 (label = row)", fontsize=9)
    return report.save_figure(figure, path)


def write_outputs(document: dict[str, Any], out: Path, with_json: bool = True) -> list[Path]:
    """``introspection.json`` (unless not ``with_json``), the two PNGs and ``table.md``."""
    from vsml_bench.experiments import report

    paths = [report.write_json(out / "introspection.json", document)] if with_json else []
    return [
        *paths,
        plot_curves(document, out / "introspection.png"),
        plot_example_stream(document, out / "example_stream.png"),
        report.write_text(out / "table.md", markdown(document)),
    ]


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_common(
        parser,
        out="docs/results/introspection",
        paper_help="paper-sized config (1024 streams of 300)",
    )
    options.add_lineup(parser, document="introspection.json", streams_help=None)
    positive = options.positive
    parser.add_argument("--n-classes", type=int, default=None, help="classes per stream")
    parser.add_argument("--max-k", type=positive, default=None, help="largest k reported")
    parser.add_argument("--example-steps", type=positive, default=None)


def config_from_args(args: argparse.Namespace) -> Config:
    """``PAPER`` or ``CPU`` with every option given on the command line applied on top."""
    config = options.config_from_args(args, CPU, PAPER)
    if config.n_classes < 2:
        raise UserError(f"--n-classes must be at least 2, not {config.n_classes}")
    if config.streams < 2:
        raise UserError("--streams must be at least 2 for a bootstrap CI")
    expected = config.length / config.n_classes
    if config.max_k > config.length:
        raise UserError(
            f"--max-k {config.max_k} exceeds --length {config.length}; no class can appear "
            f"more often than the stream is long (about {math.ceil(expected)} times each)"
        )
    return config


def run(args: argparse.Namespace) -> int:
    from vsml_bench.experiments import lineup

    return lineup.run_command(args, sys.modules[__name__])
