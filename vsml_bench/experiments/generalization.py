"""``vsml-bench experiment generalization``: learned learners in and out of their meta-training
distribution (VSML paper §4.4 and Figure 8; GPICL Table 1).

    VSML_BENCH_DATA=/path/to/data vsml-bench experiment generalization \\
        --out docs/results/generalization

The claim under test: a learner with few, shared meta-parameters (VSML) keeps learning on
datasets it never saw, while black-box meta-learners (a Meta-RNN, an in-context Transformer)
fit their meta-training distribution and fail outside it.

**Learners.** By default every shipped meta-parameter set
(:func:`vsml_bench.agents.pretrained.shipped`) whose model card says ``meta_trained_on`` is
exactly ``--train-set`` (default ``mnist``), plus the references online SGD and Adam (linear,
batch 1) at a learning rate tuned on the training split of the train set (the grid of
:mod:`vsml_bench.agents.baselines.tune`, best mean online accuracy on ``--tune-streams``
streams drawn from ``--tune-seed``; never on the test streams below), and with ``--chance``
the chance learner. ``--learners`` adds any spec the harness takes (``NAME``,
``NAME:SET``, ``NAME:path/best.msgpack`` with its model card beside it: such a file is copied
to ``<out>/raw/params/<sha256>.msgpack`` and named by content, as on the leaderboard).

**Tasks.** Each dataset of ``--datasets`` is the task of the same name in ``ood-v0`` (or, for
the embedded ones, ``offline-v0``): the test split with the suite's options and seed, resized
to ``--n-streams`` streams of ``--stream-length`` examples. Every learner runs the identical
streams (the harness draws stream ``i`` of a task from ``jax.random.key(task.seed)``), and
fixed-size learners are fed through the recorded input-size adaptation of
:mod:`vsml_bench.envs.adaptation`. A dataset whose files are absent is reported "data
missing", never dropped silently. The evaluation is :func:`vsml_bench.leaderboard.harness.evaluate`
itself: each learner's raw per-stream scores are ordinary (unofficial) results files under
``<out>/raw/``, so ``vsml-bench verify`` can re-run them; a re-run of the command reuses a
learner's file when its suite and learner record are unchanged.

**Statistics.** Per learner and dataset, the mean online accuracy over the stream, averaged
over streams (95% bootstrap CI over streams). A learner's *in-distribution* datasets are
those of its ``meta_trained_on`` (for the references: the train set their learning rate was
tuned on); the others are OOD. In-distribution and OOD scores are means over datasets of the
per-dataset means (each dataset weighs the same), and the OOD gap is

.. math:: g = \\frac1{|I|}\\sum_{d\\in I} \\bar a_d - \\frac1{|O|}\\sum_{d\\in O} \\bar a_d,

with 95% CIs from one stratified bootstrap (streams resampled within each dataset,
:func:`vsml_bench.leaderboard.metrics.stratified_bootstrap_gap`). A reference's gap measures
how much harder the OOD datasets are for a learner that did not meta-learn on the train set;
a meta-learner's gap is to be read against it.

**Output** (``--out``, every file written atomically): ``generalization.json`` (everything
above, with the configuration, the tuning sweep, provenance and timings),
``generalization.png`` (Figure-8 style: per-dataset accuracy, and in-distribution vs OOD with
the gap), ``table.md`` (the Markdown table) and ``raw/*.json``.

Sizes: ``--config cpu`` (default, 256 streams of 100 examples per dataset) and
``--config large`` (1024 streams); ``--n-streams`` and ``--stream-length`` override either.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vsml_bench.errors import UserError
from vsml_bench.experiments import options


@dataclasses.dataclass(frozen=True)
class Config:
    """A size of the experiment: streams per dataset, their length, and tuning streams."""

    n_streams: int
    stream_length: int
    tune_streams: int


CONFIGS = {
    # ~6 learners on the shared data in well under 30 min on 2 CPU cores (docs/results/generalization).
    "cpu": Config(n_streams=256, stream_length=100, tune_streams=256),
    "large": Config(n_streams=1024, stream_length=100, tune_streams=1024),
}
#: The image datasets of ood-v0: the VSML paper's meta-test family (synthetic tasks left out;
#: --datasets can add them). cifar10_jpeg is a JPEG copy of cifar10's test images: where both
#: are present CIFAR-10 counts twice in the OOD mean.
DEFAULT_DATASETS = (
    "mnist",
    "fashion_mnist",
    "kmnist",
    "emnist",
    "notmnist",
    "omniglot",
    "cifar10",
    "svhn",
    "cifar10_jpeg",
)
#: Suites whose tasks (one per dataset, named after it) the experiment draws from, in order.
SOURCE_SUITES = ("ood-v0", "offline-v0")
DEFAULT_REFERENCES = ("sgd", "adam")
FORMAT_VERSION = 1


class ExperimentError(UserError):
    """An experiment option that cannot be honoured (unknown dataset, no learner to test...)."""


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the JSON, plot, table and raw files"
    )
    parser.add_argument(
        "--train-set",
        default="mnist",
        help="comma-separated datasets the meta-learners were meta-trained on (default mnist): "
        "selects the shipped sets whose card declares exactly these, and is in-distribution "
        "for the references, whose learning rate is tuned on its training split",
    )
    parser.add_argument(
        "--datasets",
        default=",".join(DEFAULT_DATASETS),
        help="comma-separated datasets to meta-test on (tasks of ood-v0 or offline-v0; "
        "default: the image datasets of ood-v0)",
    )
    parser.add_argument(
        "--learners",
        default="",
        help="comma-separated extra learner specs, e.g. meta_rnn:runs/meta_rnn/best.msgpack",
    )
    parser.add_argument(
        "--no-shipped",
        action="store_true",
        help="do not add the shipped sets meta-trained on --train-set (only --learners)",
    )
    parser.add_argument(
        "--references",
        default=",".join(DEFAULT_REFERENCES),
        help="tuned hand-designed references, from: sgd, adam (default both; '' for none)",
    )
    parser.add_argument("--chance", action="store_true", help="add the chance learner")
    parser.add_argument(
        "--config", choices=sorted(CONFIGS), default="cpu", help="size preset (default cpu)"
    )
    parser.add_argument("--n-streams", type=int, default=None, help="streams per dataset")
    parser.add_argument("--stream-length", type=int, default=None, help="examples per stream")
    parser.add_argument(
        "--tune-streams", type=int, default=None, help="streams per learning rate when tuning"
    )
    parser.add_argument("--tune-seed", type=int, default=0, help="seed of the tuning streams")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with dataset files")
    options.add_no_progress(parser)


# --- what to run ---------------------------------------------------------------------------


def dataset_tasks(datasets: Sequence[str], option: str = "--datasets") -> dict[str, Any]:
    """Dataset -> ``(suite ID, task)`` from :data:`SOURCE_SUITES`; unknown names are an error."""
    from vsml_bench.leaderboard.suites import get_suite

    available: dict[str, Any] = {}
    for suite_id in reversed(SOURCE_SUITES):  # the first suite wins
        for task in get_suite(suite_id).tasks:
            available[task.task_id] = (suite_id, task)
    unknown = [d for d in datasets if d not in available]
    if unknown:
        raise ExperimentError(
            f"{option} names unknown dataset {unknown[0]!r}; choose from: "
            f"{', '.join(sorted(available))}"
        )
    if not datasets:
        raise ExperimentError(f"{option} names no dataset; pass e.g. {option} mnist")
    return {d: available[d] for d in dict.fromkeys(datasets)}


def shipped_specs(train_set: Sequence[str]) -> list[str]:
    """``learner:set`` of every shipped set whose card's ``meta_trained_on`` is ``train_set``."""
    from vsml_bench.agents import pretrained

    wanted = sorted(set(train_set))
    specs = []
    for learner, sets in pretrained.shipped().items():
        for set_name in sets:
            card = pretrained.model_card(set_name, learner)
            if sorted(set(card.get("meta_trained_on") or ())) == wanted:
                specs.append(f"{learner}:{set_name}")
    return specs


def _shipped_summary() -> str:
    from vsml_bench.agents import pretrained

    parts = []
    for learner, sets in pretrained.shipped().items():
        for set_name in sets:
            trained = pretrained.model_card(set_name, learner).get("meta_trained_on") or []
            parts.append(f"{learner}:{set_name} ({', '.join(trained) or 'nothing declared'})")
    return "; ".join(parts) or "none"


def train_split_of(task: Any) -> tuple[str | None, str]:
    """``(split, note)`` to tune on: the training split paired with the task's test split.

    ``test`` -> ``train``, ``balanced_test`` -> ``balanced_train``...; a dataset with a single
    split (the embedded ones) is tuned on that split, with other streams, and the note says so.
    """
    from vsml_bench.data.registry import REGISTRY

    split = dict(task.env_kwargs).get("split")
    splits = set(REGISTRY[task.dataset].n_classes)
    if split is not None and "test" in split and split.replace("test", "train") in splits:
        return split.replace("test", "train"), "training split"
    return split, "the test task's own split (the dataset has no other), other streams"


# --- references ----------------------------------------------------------------------------


def tune_references(
    kinds: Sequence[str],
    train_tasks: Sequence[Any],
    stream_length: int,
    n_streams: int,
    seed: int,
    data_dir: Any = None,
) -> dict[str, dict[str, Any]]:
    """``{kind: tuning record}``: the best learning rate of each reference on the train set.

    Every rate of the tuner's grid (:func:`vsml_bench.experiments.lineup.tuning_grid`) runs on
    ``n_streams`` streams of ``stream_length`` examples, from ``jax.random.key(seed)``, of the
    training split of each train-set dataset (:func:`train_split_of`), all rates of all kinds
    in one compiled program (:func:`~vsml_bench.experiments.lineup.run_gradient_grid`). The
    score of a rate is its mean online accuracy averaged over those datasets; the best wins
    (ties: the smaller rate). One rate per reference for every test dataset: the references
    get what the meta-learners got, the meta-training data, and nothing of the OOD datasets.
    """
    import jax
    import numpy as np

    from vsml_bench import envs
    from vsml_bench.experiments import lineup

    if not kinds:
        return {}
    grids = {kind: lineup.tuning_grid(kind) for kind in kinds}
    per_dataset: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    for task in train_tasks:
        split, note = train_split_of(task)
        kwargs = {**task.make_kwargs(), "stream_length": stream_length}
        if split is not None:
            kwargs["split"] = split
        if data_dir is not None:
            kwargs["data_dir"] = data_dir
        _, params = envs.make(task.env_id, **kwargs)
        outputs = lineup.run_gradient_grid(grids, params, jax.random.key(seed), n_streams)
        for kind in kinds:
            scores = [round(lineup.online_accuracy(o), 6) for o in outputs[kind]]
            per_dataset[kind][task.dataset] = {"split": split, "note": note, "scores": scores}
    records = {}
    for kind in kinds:
        scores = np.mean([d["scores"] for d in per_dataset[kind].values()], axis=0)
        best = int(np.argmax(scores))
        records[kind] = {
            "learning_rate": float(grids[kind][best]),
            "metric": "mean online accuracy, averaged over the train-set datasets",
            "grid": list(grids[kind]),
            "scores": [round(float(x), 6) for x in scores],
            "n_streams": n_streams,
            "stream_length": stream_length,
            "seed": seed,
            "per_dataset": per_dataset[kind],
        }
    return records


# --- running -------------------------------------------------------------------------------


@dataclasses.dataclass
class Entry:
    """One learner of the experiment, its results files and its numbers."""

    spec: str
    name: str
    kind: str  # "meta-trained", "reference" or "extra"
    learner: Any
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    docs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    raw_files: list[str] = dataclasses.field(default_factory=list)
    wall_time_s: float = 0.0


def _card_summary(card: dict[str, Any] | None) -> dict[str, Any]:
    """The facts of a model card that say how the meta-parameters were meta-trained."""
    if not card:
        return {}
    train = card.get("train") if isinstance(card.get("train"), dict) else {}
    return {
        "meta_trained_on": card.get("meta_trained_on"),
        "method": train.get("method"),
        "steps_trained": card.get("steps_trained"),
        "wall_time_s": card.get("wall_time_s"),
        "command": card.get("command"),
        "sha256": card.get("sha256"),
    }


def _reusable(path: Path, suite: Any, learner_block: dict[str, Any]) -> dict[str, Any] | None:
    """The results file at ``path`` if it holds this suite and learner, else None."""
    from vsml_bench.leaderboard import schema

    if not path.is_file():
        return None
    try:
        doc = schema.read_results(path)
    except schema.ResultsError:
        return None
    same_suite = doc["suite"] == {
        "id": suite.suite_id,
        "fingerprint": suite.fingerprint(),
        "official": suite.official,
    }
    return doc if same_suite and doc["learner"] == learner_block else None


def evaluate_entry(
    entry: Entry,
    suites_to_run: Sequence[Any],
    raw_dir: Path,
    data_dir: Any,
    progress: bool,
    command: str,
) -> None:
    """Run ``entry`` on every suite (reusing an up-to-date results file); fills its docs."""
    from vsml_bench.leaderboard import harness, schema

    start = time.perf_counter()
    for suite in suites_to_run:
        path = raw_dir / schema.entry_file_name(
            {"learner": {"name": entry.name}, "suite": {"id": suite.suite_id}}
        )
        block = harness.learner_record(entry.learner, entry.spec, entry.name)
        doc = _reusable(path, suite, block)
        if doc is None:
            doc = harness.evaluate(
                entry.learner,
                suite,
                path,
                spec_text=entry.spec,
                name=entry.name,
                data_dir=data_dir,
                progress=progress,
                command=command,
            )
        entry.docs.append(doc)
        entry.raw_files.append(f"raw/{path.name}")
    entry.wall_time_s = time.perf_counter() - start


# --- statistics ----------------------------------------------------------------------------


def summarise(entry: Entry, datasets: Sequence[str]) -> dict[str, Any]:
    """Per-dataset results and the in-distribution / OOD / gap estimates of one learner."""
    from vsml_bench.leaderboard import metrics

    tasks = {t["task_id"]: t for doc in entry.docs for t in doc["tasks"]}
    per_dataset: dict[str, Any] = {}
    groups: dict[str, list[Any]] = {"in-distribution": [], "ood": []}
    for dataset in datasets:
        task = tasks[dataset]
        record: dict[str, Any] = {"status": task["status"], "distribution": task["distribution"]}
        if task["status"] == "ok":
            correct, _ = metrics.decode_task_raw(task["raw"])
            groups[task["distribution"]].append(correct.mean(axis=1))
            record["accuracy"] = task["metrics"]["accuracy"]
            record["acc_at_last"] = task["metrics"]["acc_at_last"]
        if task.get("adaptation") is not None:
            record["adaptation"] = task["adaptation"]
        per_dataset[dataset] = record
    out: dict[str, Any] = {
        "spec": entry.spec,
        "name": entry.name,
        "kind": entry.kind,
        "meta_trained_on": sorted(set(entry.learner.meta_trained_on)),
        **entry.info,
        "in_distribution_datasets": [
            d for d in datasets if per_dataset[d]["distribution"] != "ood"
        ],
        "per_dataset": per_dataset,
        "n_in_distribution_run": len(groups["in-distribution"]),
        "n_ood_run": len(groups["ood"]),
        "raw_files": entry.raw_files,
        "wall_time_s": round(entry.wall_time_s, 1),
        "in_distribution": None,
        "ood": None,
        "ood_gap": None,
    }
    if groups["in-distribution"] and groups["ood"]:
        est_in, est_ood, gap = metrics.stratified_bootstrap_gap(
            groups["in-distribution"], groups["ood"], label=entry.spec, statistic="mean"
        )
        out.update(in_distribution=est_in.to_dict(), ood=est_ood.to_dict(), ood_gap=gap.to_dict())
    else:  # no gap without both groups; still report the one that ran
        for key, group in (("in_distribution", "in-distribution"), ("ood", "ood")):
            if groups[group]:
                est = metrics.stratified_bootstrap_group(groups[group], f"{entry.spec}:{key}")
                out[key] = est.to_dict()
    return out


# --- output --------------------------------------------------------------------------------


def _cell(est: dict[str, float] | None, signed: bool = False) -> str:
    if est is None:
        return "–"
    f = "+.3f" if signed else ".3f"
    return f"{est['value']:{f}} [{est['low']:{f}}, {est['high']:{f}}]"


def markdown_table(result: dict[str, Any]) -> str:
    """The Figure-8 table: per learner, in-distribution vs OOD, the gap, and every dataset."""
    from vsml_bench.experiments import report
    from vsml_bench.leaderboard import schema

    datasets = result["config"]["datasets"]
    config = result["config"]
    head = ["Learner", "Meta-trained on", "In-distribution", "OOD", "OOD gap", *datasets]
    rows = []
    for learner in result["learners"]:
        cells = [
            learner["name"],
            ", ".join(learner["meta_trained_on"]) or "–",
            _cell(learner["in_distribution"]),
            _cell(learner["ood"]),
            _cell(learner["ood_gap"], signed=True),
        ]
        for dataset in datasets:
            record = learner["per_dataset"][dataset]
            if record["status"] != "ok":
                limit = schema.max_classes_of(record["status"])
                cells.append("data missing" if limit is None else f"≤{limit} classes")
                continue
            value = f"{record['accuracy']['value']:.3f}"
            cells.append(f"*{value}*" if record["distribution"] != "ood" else value)
        rows.append(cells)
    missing = [d for d, info in result["datasets"].items() if info["status"] != "ok"]
    notes = [
        f"Mean online accuracy over {config['n_streams']} streams of {config['stream_length']} "
        "examples per dataset (test splits; the same streams for every learner), 95% bootstrap "
        "CIs. In-distribution / OOD: mean over datasets of the per-dataset means; OOD gap = "
        "in-distribution − OOD (stratified bootstrap). *Italic* = in-distribution.",
    ]
    for learner in result["learners"]:
        tune = learner.get("tuning")
        if tune is not None:
            where = ", ".join(f"{d} {v['split']}" for d, v in tune["per_dataset"].items())
            notes.append(
                f"{learner['name']}: learning rate {tune['learning_rate']:g} of "
                f"{tune['grid']} chosen on {where} ({tune['n_streams']} streams, seed "
                f"{tune['seed']}), so its in-distribution datasets are the train set's."
            )
    adapted = [
        f"{learner['name']}: {adaptation_summary(learner['per_dataset'])}"
        for learner in result["learners"]
        if any(record.get("adaptation") for record in learner["per_dataset"].values())
    ]
    if adapted:
        notes.append("Input-size adaptation (envs/adaptation.py): " + "; ".join(adapted) + ".")
    if missing:
        notes.append(f"Data missing (not run): {', '.join(missing)}.")
    return report.markdown_table(head, rows) + "\n" + "\n\n".join(notes) + "\n"


def _adaptation_text(record: dict[str, Any]) -> str:
    """One adaptation record (:meth:`Adaptation.to_dict`) in a few words."""
    if record.get("inputs") == "resize":
        grey = " grey" if record.get("grayscale") else ""
        return f"resized to {record.get('image_size')}x{record.get('image_size')}{grey}"
    return f"{record.get('inputs')} to {record.get('learner_input_size')} inputs"


def adaptation_summary(per_dataset: dict[str, Any]) -> str:
    """``resized to 7x7 (mnist, fashion_mnist), resized to 7x7 grey (cifar10_jpeg)``."""
    by_text: dict[str, list[str]] = {}
    for dataset, record in per_dataset.items():
        if record.get("adaptation"):
            by_text.setdefault(_adaptation_text(record["adaptation"]), []).append(dataset)
    return ", ".join(f"{text} ({', '.join(names)})" for text, names in by_text.items())


def plot(result: dict[str, Any]) -> Any:
    """The Figure-8 style figure: per-dataset accuracy, and in-distribution vs OOD per learner."""
    import numpy as np

    from vsml_bench.experiments import report

    plt = report.pyplot()
    from matplotlib.patches import Patch

    learners = result["learners"]
    datasets = [d for d, info in result["datasets"].items() if info["status"] == "ok"]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [2.2, 1]}, constrained_layout=True
    )
    width = 0.8 / max(len(learners), 1)
    colors = plt.get_cmap("tab10")
    handles = []
    for i, learner in enumerate(learners):
        xs, ys, lows, highs, hatches = [], [], [], [], []
        for j, dataset in enumerate(datasets):
            record = learner["per_dataset"][dataset]
            if record["status"] != "ok":
                continue
            acc = record["accuracy"]
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(acc["value"])
            lows.append(acc["value"] - acc["low"])
            highs.append(acc["high"] - acc["value"])
            hatches.append(record["distribution"] != "ood")
        bars = left.bar(xs, ys, width, yerr=[lows, highs], color=colors(i % 10))
        for bar, in_dist in zip(bars, hatches, strict=True):
            if in_dist:
                bar.set_hatch("//")
        # Plain swatches: the legend would otherwise copy a hatched in-distribution bar.
        handles.append(Patch(color=colors(i % 10), label=learner["name"]))
    left.set_xticks(range(len(datasets)), datasets, rotation=20)
    left.set_ylabel("mean online accuracy")
    left.set_ylim(0, 1)
    left.set_title("Meta-test accuracy per dataset (hatched: in-distribution)")
    left.legend(handles=handles, fontsize=8, ncols=2)
    y = np.arange(len(learners))
    for offset, key, color, label in (
        (-0.18, "in_distribution", "#ff7f0e", "in-distribution"),
        (0.18, "ood", "#1f77b4", "OOD (mean over datasets)"),
    ):
        values = [(l_[key] or {}).get("value", np.nan) for l_ in learners]
        errs = [
            [(l_[key]["value"] - l_[key]["low"]) if l_[key] else 0 for l_ in learners],
            [(l_[key]["high"] - l_[key]["value"]) if l_[key] else 0 for l_ in learners],
        ]
        right.barh(y + offset, values, 0.34, xerr=errs, color=color, label=label)
    for k, learner in enumerate(learners):
        gap = learner["ood_gap"]
        if gap is not None:
            right.text(
                1.01,
                k,
                f"gap {gap['value']:+.3f}\n[{gap['low']:+.3f}, {gap['high']:+.3f}]",
                va="center",
                fontsize=7,
                transform=right.get_yaxis_transform(),
            )
    right.set_yticks(y, [learner["name"] for learner in learners], fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("mean online accuracy (95% CI)")
    right.set_title("In-distribution vs OOD")
    right.legend(fontsize=8, loc="lower right")
    return fig


# --- the command ---------------------------------------------------------------------------


def _positive(option: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ExperimentError(f"{option} must be a positive integer, not {value}")


def build_entries(
    args: argparse.Namespace, train_set: tuple[str, ...], raw_dir: Path
) -> list[Entry]:
    """The learners to test, in table order: the shipped sets, then ``--learners``."""
    from vsml_bench.agents import pretrained
    from vsml_bench.leaderboard import harness

    specs = [] if args.no_shipped else shipped_specs(train_set)
    extra = [s for s in _names(args.learners) if s not in specs]
    if not specs and not extra:
        raise ExperimentError(
            f"no meta-trained learner to test: no shipped set declares meta_trained_on "
            f"{list(train_set)} (shipped: {_shipped_summary()}); pass --train-set or "
            "--learners NAME:path/best.msgpack"
        )
    entries = []
    for spec in specs + extra:
        kind = "meta-trained" if spec in specs else "extra"
        spec = content_addressed(spec, raw_dir)
        name, _, extra_part = spec.partition(":")
        card = None
        if extra_part.startswith("params/"):
            learner = harness.learner_from_spec(spec, raw_dir)
            display = f"{name} (params {extra_part[len('params/') :][:10]})"
            card_file = raw_dir / Path(extra_part).with_suffix(".json")
            card = json.loads(card_file.read_text()) if card_file.is_file() else None
        else:
            learner, display = harness.build_learner(spec), spec
            if extra_part:
                card = pretrained.model_card(extra_part, name)
        entries.append(Entry(spec, display, kind, learner, {"card": _card_summary(card)}))
    return entries


def content_addressed(spec: str, raw_dir: Path) -> str:
    """``spec``, with a meta-parameter *path* replaced by ``NAME:params/<sha256>.msgpack``.

    The file (and its model card, if it has one) is copied into ``raw_dir/params/`` under its
    sha256, the leaderboard's convention: the raw results files then name their learner by
    content, validate, can be reused by a later run, and ``vsml-bench verify FILE
    --results-dir <out>/raw`` re-runs them.
    """
    from vsml_bench.agents import pretrained
    from vsml_bench.agents.meta.export import card_path_for
    from vsml_bench.io import atomic_write_bytes
    from vsml_bench.leaderboard import harness, identity

    name, extra = harness.parse_learner_spec(spec)
    if extra is None or extra in pretrained.names(name):
        return spec
    path = Path(extra)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ExperimentError(
            f"--learners {spec}: cannot read {path} ({error.strerror or error}); pass "
            "NAME, NAME:SHIPPED_SET or NAME:path/to/meta_params.msgpack"
        ) from None
    sha = hashlib.sha256(data).hexdigest()
    folder = raw_dir / identity.PARAMS_FOLDER
    atomic_write_bytes(folder / f"{sha}.msgpack", data)
    card = card_path_for(path)
    if card is not None:
        atomic_write_bytes(folder / f"{sha}.json", card.read_bytes())
    return f"{name}:{identity.PARAMS_FOLDER}/{sha}.msgpack"


def run(args: argparse.Namespace) -> int:
    from vsml_bench.experiments import report
    from vsml_bench.leaderboard import harness, schema
    from vsml_bench.leaderboard.suites import get_suite

    config = CONFIGS[args.config]
    for option, value in (
        ("--n-streams", args.n_streams),
        ("--stream-length", args.stream_length),
        ("--tune-streams", args.tune_streams),
    ):
        _positive(option, value)
    n_streams = args.n_streams or config.n_streams
    stream_length = args.stream_length or config.stream_length
    tune_streams = args.tune_streams or config.tune_streams
    train_set = _names(args.train_set)
    references = _names(args.references)
    unknown = [r for r in references if r not in DEFAULT_REFERENCES]
    if unknown:
        raise ExperimentError(
            f"--references {unknown[0]!r} is not tunable here; choose from: "
            f"{', '.join(DEFAULT_REFERENCES)}"
        )
    datasets = list(dataset_tasks(_names(args.datasets)))
    train_tasks = [task for _, task in dataset_tasks(train_set, "--train-set").values()]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} is a file; pass a folder")

    clock = report.Clock()
    harness.enable_compilation_cache()
    entries = build_entries(args, train_set, out / "raw")
    if references:
        print(f"tuning {', '.join(references)} on {', '.join(train_set)} ...", file=sys.stderr)
    tuning = tune_references(
        references, train_tasks, stream_length, tune_streams, args.tune_seed, args.data_dir
    )
    for name in references:
        lr = tuning[name]["learning_rate"]
        learner = harness.build_learner(name, meta_trained_on=train_set, learning_rate=lr)
        entries.append(
            Entry(name, f"{name} (lr {lr:g})", "reference", learner, {"tuning": tuning[name]})
        )
    if args.chance:
        entries.append(Entry("chance", "chance", "reference", harness.build_learner("chance")))

    # One resized subset per source suite: each learner's raw file is a valid results file.
    by_suite: dict[str, list[str]] = {}
    for dataset, (suite_id, _) in dataset_tasks(datasets).items():
        by_suite.setdefault(suite_id, []).append(dataset)
    suites_to_run = [
        get_suite(suite_id).subset(ids).resized(n_streams, stream_length)
        for suite_id, ids in by_suite.items()
    ]
    command = report.command_line()
    for entry in entries:
        print(f"meta-testing {entry.name} ...", file=sys.stderr)
        evaluate_entry(
            entry, suites_to_run, out / "raw", args.data_dir, not args.no_progress, command
        )

    missing = {
        t["task_id"]
        for entry in entries
        for doc in entry.docs
        for t in doc["tasks"]
        if t["status"] == schema.MISSING
    }
    first = {t["task_id"]: t for doc in entries[0].docs for t in doc["tasks"]}
    result = {
        "experiment": "generalization",
        "format_version": FORMAT_VERSION,
        "config": {
            "preset": args.config,
            "train_set": list(train_set),
            "datasets": datasets,
            "n_streams": n_streams,
            "stream_length": stream_length,
            "tune_streams": tune_streams,
            "tune_seed": args.tune_seed,
            "statistic": "mean online accuracy per stream; group = mean over datasets of "
            "per-dataset means; 95% stratified-bootstrap CIs",
        },
        "datasets": {
            d: {
                "status": schema.MISSING if d in missing else "ok",
                "task": {k: first[d][k] for k in ("env_id", "env_kwargs", "seed")},
            }
            for d in datasets
        },
        "learners": [summarise(entry, datasets) for entry in entries],
        "provenance": report.provenance(clock),
    }
    table = markdown_table(result)
    report.write_json(out / "generalization.json", result)
    report.save_figure(plot(result), out / "generalization.png")
    report.write_text(out / "table.md", table)
    print(table)
    print(f"wrote {out / 'generalization.json'}, {out / 'generalization.png'}, {out / 'table.md'}")
    return 0
