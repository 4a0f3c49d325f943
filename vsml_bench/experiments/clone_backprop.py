"""``vsml-bench experiment clone-backprop``: VSML cloned from backprop, then run forward-only (§3.2).

The VSML paper shows that its sub-LSTMs can *implement* backprop: trained by supervision to
store a weight and a bias in their state, compute ``y = tanh(x)·w + b`` and apply backprop's
update, the network then learns by running forward. Three phases, one command:

1. **Cloning** (:mod:`vsml_bench.agents.meta.clone`: the rule, the targets and the loss, with
   the maths): the meta-parameters of a VSML with a reverse sweep by its own sub-RNN are trained
   by BPTT and Adam on streams of random inputs and errors, for a shallow and a deep network at
   once, after ``prefit_steps`` of phase 0 on 2-example streams (a fresh run only; without it
   the cloned update ignores positive inputs, see :mod:`~vsml_bench.agents.meta.clone`). No
   dataset is seen (``--init-from`` starts phase 1 from a deployed clone instead, with no phase
   0: a fine-tuning run, e.g. with the forward term weighted up by ``--forward-weight``). The
   run lives in ``<out>/run`` (``metrics.jsonl``, a resumable
   checkpoint; its ``best.msgpack`` holds the *trainable* parameters ``θ'``, not a learner's).
   The checkpoint with the lowest cloning loss on fixed held-out random streams is exported as
   ``<out>/vsml_clone-backprop.{msgpack,json}`` (the deployed ``θ``, with a model card):
   copied into ``agents/pretrained/`` it is ``agents.make("vsml", pretrained="clone-backprop")``.
2. **Meta-test**: the cloned VSML, forward-only (the normal learner, unchanged), and exact online
   backprop of the same network with the same learning rates and the same initial weights
   (:func:`~vsml_bench.agents.meta.clone.backprop_learner`, "online SGD" below) run on the very
   same streams of each dataset's **test** split (full-size inputs, all classes), shallow
   (``D → C``) and deep (``D → H → C``).
3. **Report**: per dataset and network, the accuracy late in the stream (the mean over its last
   ``late_window`` examples), the mean online accuracy, and the paired difference clone − SGD,
   each with a 95% percentile-bootstrap CI over streams. ``clone_backprop.json`` keeps every
   stream's correctness bits, ``clone_backprop.png`` the curves, ``section.md`` the table and
   the command.

    VSML_BENCH_DATA=... vsml-bench experiment clone-backprop --out docs/results/clone-backprop

The issue's targets (shallow, MNIST test, 2,000-example streams): late accuracy ≥ 85% and within
5 points of online SGD; the Fashion-MNIST figures are reported next to them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.errors import UserError
from vsml_bench.experiments import options

EXPERIMENT = "clone-backprop"
SCHEMA_VERSION = 1
#: The shipped set's name: ``agents.make("vsml", pretrained=SET_NAME)``.
SET_NAME = "clone-backprop"
#: The issue's targets for the shallow network on MNIST: late accuracy and gap to SGD.
TARGET_ACCURACY = 0.85
TARGET_GAP = 0.05


@dataclass(frozen=True)
class Config:
    """The cloning run and the meta-test of one experiment.

    Cloning: ``steps`` Adam steps (cosine from ``learning_rate`` to a tenth, ``warmup_steps``
    of linear warm-up, global-norm clip 1) on ``n_tasks`` random streams of ``stream_length``
    examples, half through a shallow ``input_size → n_classes`` network and half through a deep
    ``input_size → hidden → n_classes`` one. Meta-test: ``test_streams`` streams of
    ``test_length`` examples per dataset (``deep_streams`` for the ``deep_hidden`` network;
    0 skips it); "late" is the last ``late_window`` examples.
    """

    steps: int
    n_tasks: int
    stream_length: int
    input_size: int
    n_classes: int
    hidden: int
    learning_rate: float
    warmup_steps: int
    eval_every: int
    datasets: tuple[str, ...]
    test_streams: int
    test_length: int
    late_window: int
    deep_hidden: int
    deep_streams: int
    seed: int = 0
    split: str = "test"
    checkpoint_every: int = 25
    held_out_streams: int = 8
    #: Phase 0 (:class:`~vsml_bench.agents.meta.clone.Prefit`): steps on 2-example streams
    #: before the BPTT run; without it the cloned update ignores positive inputs. 0 (none) by
    #: default, so that a record written before phase 0 existed reads back as what it ran.
    prefit_steps: int = 0
    #: Weight of the ``forward`` term in the cloning loss (the others weigh 1): above 1 it
    #: trades update accuracy for forward-pass accuracy (:func:`~vsml_bench.agents.meta.clone.
    #: weighted_loss`).
    forward_weight: float = 1.0
    #: A deployed clone (``vsml_clone-backprop.msgpack``) to start phase 1 from instead of a
    #: fresh ``θ`` and phase 0 (a fine-tuning run); ``None``: a fresh run.
    init_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return options.config_to_dict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Config:
        return options.config_from_dict(cls, record)

    def tasks(self):
        from vsml_bench.agents.meta.clone import CloneTask

        shallow = CloneTask(self.input_size, self.n_classes, None, self.stream_length)
        return (shallow, dataclasses.replace(shallow, hidden=self.hidden))


#: About 30 CPU-minutes of cloning (2 of them phase 0) and 15 of meta-test on the 2 cores
#: (see section.md).
CPU = Config(
    steps=2000,
    n_tasks=32,
    stream_length=16,
    input_size=24,
    n_classes=6,
    hidden=12,
    learning_rate=0.003,
    warmup_steps=100,
    eval_every=100,
    datasets=("mnist", "fashion_mnist"),
    test_streams=32,
    test_length=2000,
    late_window=500,
    deep_hidden=32,
    deep_streams=8,
    prefit_steps=1500,
)
#: Accelerator-sized: 8x the tasks, 3x longer cloning streams, 10x the steps, 128 test streams,
#: a 100-unit deep network.
PAPER = dataclasses.replace(
    CPU,
    steps=20000,
    n_tasks=256,
    stream_length=48,
    input_size=32,
    n_classes=10,
    hidden=16,
    eval_every=500,
    test_streams=128,
    deep_hidden=100,
    deep_streams=128,
    checkpoint_every=100,
    held_out_streams=32,
)


# --- phase 1: cloning -----------------------------------------------------------------------


def train_config(config: Config):
    from vsml_bench.agents.meta.loop import TrainConfig

    return TrainConfig(
        method="bptt",
        steps=config.steps,
        seed=config.seed,
        learning_rate=config.learning_rate,
        n_tasks=config.n_tasks,
        clip_norm=1.0,
        schedule="cosine",
        warmup_steps=config.warmup_steps,
        final_lr_fraction=0.1,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
    )


def cloning_learner():
    """The VSML learner of the clone (shallow config) whose ``meta_init`` gives ``θ'``."""
    from vsml_bench.agents import vsml
    from vsml_bench.agents.meta import clone

    config = clone.clone_config()
    rule = clone.BackpropRule()
    learner = vsml.vsml(**config.to_dict())

    def meta_init(key, spec):
        # A fresh VSML's θ deployed as it is: the trainable heads start at 1/κ of it.
        return clone.trainable_meta_params(vsml.meta_init(config, key, spec), rule)

    return dataclasses.replace(learner, meta_init=meta_init)


def run_info(
    config: Config, prefit: dict[str, Any] | None = None, init: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the run folder's ``config.json`` records besides the optimiser settings
    (``prefit``: phase 0's settings and losses, when it ran; ``init``: the ``init_from`` file's
    path and sha256, when phase 1 started from one)."""
    from vsml_bench.agents.meta import clone
    from vsml_bench.experiments import report
    from vsml_bench.provenance import environment

    return {
        "learner": "vsml",
        "learner_config": clone.clone_config().to_dict(),
        "families": None,
        "clone": {
            "rule": clone.BackpropRule().to_dict(),
            "tasks": [task.to_dict() for task in config.tasks()],
            "held_out_streams": config.held_out_streams,
            "prefit": prefit or {"steps": 0},
            "weights": {"forward": config.forward_weight},
            **({"init_from": init} if init else {}),
        },
        "command": report.command_line(),
        **environment(),
    }


def prefit_start(config: Config, log=print) -> tuple[Any, dict[str, Any]]:
    """Phase 0: ``θ'`` from the run's ``meta_init`` after ``config.prefit_steps`` steps on
    2-example streams, and the record of it (settings, first/last loss, CPU seconds)."""
    import time

    import jax

    from vsml_bench.agents.meta import clone, loop

    settings = clone.Prefit(steps=config.prefit_steps)
    init_key, _, _ = loop.run_keys(config.seed)
    start = cloning_learner().meta_init(init_key, None)
    log(f"phase 0: {settings.steps} steps on streams of {settings.stream_length} examples")
    cpu = time.process_time()
    # A key of its own (run_keys splits key(seed) three ways; fold_in draws a fourth).
    key = jax.random.fold_in(jax.random.key(config.seed), 1)
    theta, losses = clone.prefit(start, config.tasks(), clone.BackpropRule(), key, settings)
    record = {**settings.to_dict(), **losses, "cpu_time_s": time.process_time() - cpu}
    return theta, record


def deployed_start(path: str) -> tuple[Any, dict[str, Any]]:
    """``θ'`` of the deployed clone at ``path`` and ``{"path", "sha256"}`` of the file."""
    import hashlib

    import jax
    from flax import serialization

    from vsml_bench.agents import pretrained
    from vsml_bench.agents.meta import clone

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read --init-from {path}: {error.strerror}") from None
    rule = clone.BackpropRule()
    template = clone.deployed_meta_params(
        cloning_learner().meta_init(jax.random.key(0), None), rule
    )
    try:
        deployed = serialization.from_state_dict(
            template, pretrained.read_meta_params(data, f"--init-from {path}")
        )
    except Exception as error:  # a foreign file, or a VSML of another shape
        raise UserError(
            f"--init-from {path} is not a clone-backprop meta-parameter file ({error}); "
            "pass a vsml_clone-backprop.msgpack"
        ) from None
    record = {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}
    return clone.trainable_meta_params(deployed, rule), record


def meta_train(config: Config, run_dir: Path, resume: bool, progress: bool) -> dict[str, Any]:
    """Phase 0 (a fresh run only) and phase 1 into ``run_dir`` (resumable); returns
    :func:`loop.train`'s summary."""

    from vsml_bench import xla
    from vsml_bench.agents.meta import clone, loop

    rule = clone.BackpropRule()
    tasks = config.tasks()
    weights = {"forward": config.forward_weight}
    objective = clone.clone_objective(tasks, rule, weights=weights)
    _, _, eval_key = loop.run_keys(config.seed)
    held_out = xla.jit(
        lambda trainable: clone.held_out_terms(
            tasks, rule, trainable, eval_key, config.held_out_streams
        )
    )

    def evaluate(trainable):
        # Every term, weighted and negated: their mean ranks checkpoints exactly as the loss
        # trained on does.
        terms = held_out(trainable)
        return {
            f"neg_{name}": -weights.get(name, 1.0) * terms[name]
            for name in sorted(terms)
            if name != "loss"
        }

    start, prefit, init = None, None, None
    # A resumed run restores θ' from its checkpoint; a folder that cannot take a new run fails
    # here, before phase 0's minutes are spent.
    loop.check_run_folder(run_dir, resume)
    if not resume and config.init_from is not None:
        start, init = deployed_start(config.init_from)
    elif not resume and config.prefit_steps > 0:
        start, prefit = prefit_start(config, log=lambda line: print(line, flush=True))
    return loop.train(
        cloning_learner(),
        None,
        objective,
        train_config(config),
        run_dir,
        evaluate=evaluate,
        resume=resume,
        run_info=run_info(config, prefit, init),
        initial_meta_params=start,
        progress=progress,
        log=lambda line: print(line, flush=True),
    )


def export_clone(run_dir: Path, stem: Path) -> tuple[dict[str, Any], Any]:
    """Write the deployed best-held-out ``θ`` and its model card as ``<stem>.{msgpack,json}``."""
    from flax import serialization

    from vsml_bench.agents.meta import checkpoint as ckpt
    from vsml_bench.agents.meta import clone
    from vsml_bench.agents.meta.export import model_card
    from vsml_bench.agents.pretrained import read_meta_params
    from vsml_bench.io import atomic_write_bytes, atomic_write_text

    state = ckpt.read_state(run_dir / "checkpoint.msgpack")
    rule = clone.BackpropRule()
    best = state["best"]
    deployed = clone.deployed_meta_params(best["meta_params"], rule)
    data = serialization.msgpack_serialize(ckpt.to_host(deployed))
    saved = json.loads((run_dir / "config.json").read_text())
    card = model_card(
        run_dir,
        stem.name,
        data=data,
        exported_step=int(best["step"]),
        selected_by="lowest cloning loss on the fixed held-out random streams",
        datasets=[],
        notes=(
            "Learning-algorithm cloning (VSML paper §3.2): meta-trained by supervision on "
            "random inputs and errors only (no dataset), so that each sub-LSTM stores a weight "
            "(cell state component 0) and a bias (component state_size/2), emits "
            "κ(tanh(x)·w + b) as its forward message and applies backprop's update in a reverse "
            "sweep by a separate sub-RNN. See vsml_bench.agents.meta.clone and "
            "docs/results.md §9."
        ),
        extra={"clone": saved.get("clone")},
        checkpoint=state,
    )
    card["data"]["note"] = "no dataset: random cloning streams (clone.tasks); checkpoints chosen "
    card["data"]["note"] += "on fixed held-out random streams of the same tasks"
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(stem.with_suffix(".msgpack"), data)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(card, indent=2) + "\n")
    return card, read_meta_params(data)


# --- phase 2: meta-test ---------------------------------------------------------------------


def entrants(config: Config, meta_params: Any) -> list[dict[str, Any]]:
    """``[{"name", "network", "learner", "meta_params", "streams"}]``: clone and SGD, shallow
    and (when ``deep_hidden``) deep."""
    from vsml_bench.agents import vsml
    from vsml_bench.agents.meta import clone

    networks = [("shallow", None, config.test_streams)]
    if config.deep_hidden:
        networks.append(
            (f"deep ({config.deep_hidden} hidden)", config.deep_hidden, config.deep_streams)
        )
    out = []
    for network, hidden, streams in networks:
        cloned = vsml.vsml(**clone.clone_config(hidden).to_dict())
        out.append(
            {
                "name": "VSML clone, forward-only",
                "network": network,
                "learner": cloned,
                "meta_params": meta_params,
                "streams": streams,
            }
        )
        out.append(
            {
                "name": "online SGD (the cloned rule)",
                "network": network,
                "learner": clone.backprop_learner(hidden=hidden),
                "meta_params": {},
                "streams": streams,
            }
        )
    return out


def late_accuracy(correct: np.ndarray, window: int) -> np.ndarray:
    """Per stream, the accuracy over the last ``window`` examples."""
    return correct[:, -window:].mean(axis=1)


def curve(correct: np.ndarray, bin_size: int) -> list[float]:
    """Accuracy per consecutive bin of ``bin_size`` examples (one bin for shorter streams)."""
    bin_size = min(bin_size, correct.shape[1])
    n = correct.shape[1] // bin_size
    return [float(x) for x in correct[:, : n * bin_size].reshape(len(correct), n, -1).mean((0, 2))]


def estimate(values: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    from vsml_bench.leaderboard.metrics import bootstrap_ci

    e = bootstrap_ci(values, rng)
    return {"mean": e.value, "low": e.low, "high": e.high}


def meta_test(
    config: Config, meta_params: Any, sha256: str, partial: Path, progress: bool
) -> list[dict[str, Any]]:
    """Every (dataset, entrant) on the same streams: raw bits and curves.

    After each one the rows so far are written to ``partial`` (with the config and the sha256
    of the meta-parameters); a re-run with the same ones starts after the last finished row.
    """
    import jax

    from vsml_bench import envs
    from vsml_bench.experiments import lineup, report
    from vsml_bench.leaderboard.metrics import encode_bits

    stamp = {"config": config.to_dict(), "sha256": sha256}
    rows: list[dict[str, Any]] = []
    if partial.is_file():
        saved = json.loads(partial.read_text())
        if {k: saved.get(k) for k in stamp} == stamp:
            rows = saved["rows"]
    done = {(r["dataset"], r["network"], r["learner"]) for r in rows}
    people = entrants(config, meta_params)
    bar = report.progress(len(config.datasets) * len(people), progress, "run")
    bar.update(len(done))
    for dataset in config.datasets:
        _, env_params = envs.make(
            lineup.online_env_id(dataset), split=config.split, stream_length=config.test_length
        )
        key = jax.random.key(config.seed)
        for entrant in people:
            if (dataset, entrant["network"], entrant["name"]) in done:
                continue
            outputs = lineup.run_learner(
                entrant["learner"], entrant["meta_params"], env_params, key, entrant["streams"]
            )
            correct = np.asarray(outputs.correct, bool)
            rows.append(
                {
                    "dataset": dataset,
                    "network": entrant["network"],
                    "learner": entrant["name"],
                    "config": json.loads(json.dumps(dict(entrant["learner"].config), default=repr)),
                    "streams": int(correct.shape[0]),
                    "length": int(correct.shape[1]),
                    "correct_bits": [encode_bits(row) for row in correct],
                    "curve_bin": 100,
                    "curve": curve(correct, 100),
                }
            )
            report.write_json(partial, {**stamp, "rows": rows})
            bar.update(1)
    bar.close()
    return rows


def score(rows: list[dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    """Metrics per row (late and mean online accuracy) and the paired gap clone − SGD."""
    from vsml_bench.leaderboard.metrics import decode_bits, stable_seed

    def bits(row):
        return np.stack([decode_bits(b, row["length"]) for b in row["correct_bits"]])

    out = []
    for row in rows:
        rng = stable_seed(EXPERIMENT, row["dataset"], row["network"], row["learner"])
        correct = bits(row)
        late = late_accuracy(correct, config.late_window)
        entry = {
            **{k: row[k] for k in ("dataset", "network", "learner", "streams", "length")},
            "late_accuracy": estimate(late, rng),
            "mean_online_accuracy": estimate(correct.mean(axis=1), rng),
        }
        if row["learner"].startswith("VSML"):
            sgd = next(
                r
                for r in rows
                if r["dataset"] == row["dataset"]
                and r["network"] == row["network"]
                and not r["learner"].startswith("VSML")
            )
            gap = late - late_accuracy(bits(sgd), config.late_window)
            entry["late_gap_to_sgd"] = estimate(gap, rng)
        out.append(entry)
    return out


# --- phase 3: outputs -----------------------------------------------------------------------


def _ci(e: dict[str, float]) -> str:
    from vsml_bench.experiments.report import points

    return f"{points(e['mean'])} [{points(e['low'])}, {points(e['high'])}]"


def markdown(document: dict[str, Any]) -> str:
    """``section.md``: the results table, the targets, the cloning run and the command."""
    from vsml_bench.experiments import report

    config = document["config"]
    rows = []
    for s in document["scores"]:
        gap = _ci(s["late_gap_to_sgd"]) if "late_gap_to_sgd" in s else ""
        rows.append(
            [
                s["dataset"],
                s["network"],
                s["learner"],
                _ci(s["late_accuracy"]),
                _ci(s["mean_online_accuracy"]),
                gap,
            ]
        )
    window = config["late_window"]
    table = report.markdown_table(
        [
            "dataset",
            "network",
            "learner",
            f"late accuracy (last {window}), %",
            "mean online accuracy, %",
            "clone − SGD, late, points",
        ],
        rows,
    )
    training = document["cloning"]
    held = training.get("held_out_at_exported_step") or {}
    held_text = ", ".join(f"{k[4:]} {-v:.3g}" for k, v in sorted(held.items()))
    checks = "\n".join(f"- {line}" for line in document["targets"])
    prefit = training.get("prefit") or {}
    phase0 = (
        f"Phase 0: {prefit['steps']} steps on streams of {prefit['stream_length']} examples "
        f"({prefit['cpu_time_s'] / 60:.1f} CPU-min, not counted below). "
        if prefit.get("steps")
        else ""
    )
    init = training.get("init_from")
    if init:
        phase0 += (
            f"Fine-tuned from `{init['path']}` (sha256 {init['sha256'][:12]}…; the CPU time "
            "below is this run's alone). "
        )
    if config.get("forward_weight", 1.0) != 1.0:
        phase0 += f"Forward term of the cloning loss weighted {config['forward_weight']:g}. "
    slopes = training.get("update_slopes")
    slope_text = (
        "Slope of the cloned weight update on backprop's, fresh cells (1 = the rule): "
        f"{slopes['negative']:.2f} for inputs x < 0, {slopes['positive']:.2f} for x > 0. "
        if slopes
        else ""
    )
    return (
        "## Learning-algorithm cloning: VSML implements backprop, then learns forward-only "
        "(paper §3.2, issue 13)\n\n"
        f"Streams of {config['test_length']} examples of each dataset's **{config['split']}** "
        f"split at full size, all classes, {config['test_streams']} streams (deep network: "
        f"{config['deep_streams']}), identical for both learners (same examples, same initial "
        "weights). 95% bootstrap CIs over streams; the gap is paired per stream.\n\n"
        f"{table}\n"
        f"Targets (shallow, MNIST):\n{checks}\n\n"
        f"{phase0}Cloning: {training['steps']} BPTT steps on random streams only (no dataset), "
        f"{training['cpu_time_s'] / 60:.1f} CPU-min ({training['wall_time_s'] / 60:.1f} wall-min); "
        f"exported step {training['exported_step']} (lowest held-out cloning loss "
        f"{training['held_out_loss_at_exported_step']:.3g}; its terms, weighted as trained: "
        f"{held_text}). "
        f"{slope_text}Plot: `clone_backprop.png`; raw per-stream bits: `clone_backprop.json`.\n\n"
        f"```bash\n{document['provenance']['command']}\n```\n"
    )


def targets(scores: list[dict[str, Any]]) -> list[str]:
    """The issue's two targets, checked on the shallow MNIST row (when it was run)."""
    row = next(
        (
            s
            for s in scores
            if s["dataset"] == "mnist" and s["network"] == "shallow" and "late_gap_to_sgd" in s
        ),
        None,
    )
    if row is None:
        return ["not checked: MNIST was not in --datasets"]
    late, gap = row["late_accuracy"]["mean"], row["late_gap_to_sgd"]["mean"]
    return [
        f"late accuracy ≥ {100 * TARGET_ACCURACY:.0f}%: {100 * late:.1f}% — "
        + ("met" if late >= TARGET_ACCURACY else "not met"),
        f"within {100 * TARGET_GAP:.0f} points of online SGD: {100 * gap:+.1f} points — "
        + ("met" if gap >= -TARGET_GAP else "not met"),
    ]


def plot(document: dict[str, Any], path: Path) -> Path:
    """Learning curves per dataset (clone vs SGD, shallow and deep) and the cloning loss."""
    from vsml_bench.experiments import report

    plt = report.pyplot()
    datasets = document["config"]["datasets"]
    figure, axes = plt.subplots(1, len(datasets) + 1, figsize=(4.6 * (len(datasets) + 1), 3.6))
    for axis, dataset in zip(axes, datasets, strict=False):
        for row in document["runs"]:
            if row["dataset"] != dataset:
                continue
            xs = (np.arange(len(row["curve"])) + 1) * row["curve_bin"]
            style = "-" if row["learner"].startswith("VSML") else "--"
            axis.plot(xs, row["curve"], style, label=f"{row['learner']}, {row['network']}")
        axis.set_title(f"{dataset} ({document['config']['split']})")
        axis.set_xlabel("example")
        axis.set_ylabel(f"accuracy (bins of {document['runs'][0]['curve_bin']})")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    loss_axis = axes[-1]
    steps, losses = zip(*document["cloning"]["loss_curve"], strict=True) or ((), ())
    loss_axis.plot(steps, losses, lw=0.8, label="training (moving mean of 25)")
    held = document["cloning"]["held_out_curve"]
    if held:
        loss_axis.plot(*zip(*held, strict=True), "o-", ms=3, label="held-out streams")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("cloning step")
    loss_axis.set_title("cloning loss")
    loss_axis.legend(fontsize=7)
    loss_axis.grid(alpha=0.3)
    return report.save_figure(figure, path)


def cloning_summary(run_dir: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Training facts for the document: loss curve (moving mean), held-out curve, times."""
    from vsml_bench.agents.meta.plot import moving_average, read_metrics

    steps, evals = read_metrics(run_dir)
    xs = [r["step"] for r in steps]
    smooth = moving_average([r["loss"] for r in steps], 25)
    stride = max(1, len(xs) // 400)
    held = [(r["step"], -float(np.sum(list(r["eval"].values())))) for r in evals]
    exported = card["exported_step"]
    at = card.get("held_out_eval_at_exported_step") or {}
    return {
        "steps": card["steps_trained"],
        "exported_step": exported,
        "wall_time_s": card["wall_time_s"],
        "cpu_time_s": card["cpu_time_s"],
        "loss_curve": [[x, y] for x, y in list(zip(xs, smooth, strict=True))[::stride]],
        "held_out_curve": [[x, y] for x, y in held],
        "held_out_at_exported_step": at,
        "held_out_loss_at_exported_step": -float(sum(at.values())) if at else float("nan"),
        "sha256": card["sha256"],
        "prefit": (card.get("clone") or {}).get("prefit") or {"steps": 0},
        **({"init_from": init} if (init := (card.get("clone") or {}).get("init_from")) else {}),
    }


def write_outputs(document: dict[str, Any], out: Path) -> list[Path]:
    from vsml_bench.experiments import report

    return [
        report.write_json(out / "clone_backprop.json", document),
        plot(document, out / "clone_backprop.png"),
        report.write_text(out / "section.md", markdown(document)),
    ]


def run_experiment(config: Config, out: Path, resume: bool, progress: bool) -> dict[str, Any]:
    import jax

    from vsml_bench.agents.meta import clone
    from vsml_bench.experiments import report

    clock = report.Clock()
    run_dir = out / "run"
    meta_train(config, run_dir, resume, progress)
    card, meta_params = export_clone(run_dir, out / f"vsml_{SET_NAME}")
    partial = out / "meta_test.partial.json"
    runs = meta_test(config, meta_params, card["sha256"], partial, progress)
    scores = score(runs, config)
    return {
        "experiment": EXPERIMENT,
        "schema_version": SCHEMA_VERSION,
        "config": config.to_dict(),
        "rule": clone.BackpropRule().to_dict(),
        "cloning": {
            **cloning_summary(run_dir, card),
            # Phase 0's reason: the x > 0 slope is ~0 when the rule is cloned by halves.
            "update_slopes": clone.update_slopes(
                meta_params, clone.BackpropRule(), jax.random.key(config.seed)
            ),
        },
        "scores": scores,
        "targets": targets(scores),
        "runs": runs,
        "provenance": report.provenance(clock),
    }


# --- command line -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_common(
        parser,
        out="docs/results/clone-backprop",
        paper_help="the accelerator-sized config (20k steps of 256 streams of 48, 128 test streams)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the cloning run in <out>/run (a finished one goes straight to the test)",
    )
    positive = options.positive
    parser.add_argument("--steps", type=positive, default=None, help="cloning steps")
    parser.add_argument("--n-tasks", type=positive, default=None, help="streams per step")
    parser.add_argument("--stream-length", type=positive, default=None, help="cloning T")
    parser.add_argument("--input-size", type=positive, default=None, help="cloning network A")
    parser.add_argument("--n-classes", type=positive, default=None, help="cloning network C")
    parser.add_argument("--hidden", type=positive, default=None, help="cloning deep network H")
    parser.add_argument("--learning-rate", type=float, default=None, help="Adam's peak rate")
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--eval-every", type=positive, default=None, help="held-out cadence")
    parser.add_argument("--test-streams", type=positive, default=None)
    parser.add_argument("--test-length", type=positive, default=None)
    parser.add_argument("--late-window", type=positive, default=None)
    parser.add_argument("--deep-hidden", type=int, default=None, help="0: no deep meta-test")
    parser.add_argument("--deep-streams", type=positive, default=None)
    parser.add_argument(
        "--prefit-steps",
        type=int,
        default=None,
        help="phase 0 steps on 2-example streams (0: none)",
    )
    parser.add_argument(
        "--forward-weight",
        type=float,
        default=None,
        help="weight of the forward term in the cloning loss (the others weigh 1)",
    )
    parser.add_argument(
        "--init-from",
        metavar="MSGPACK",
        default=None,
        help="fine-tune this deployed clone (a vsml_clone-backprop.msgpack) instead of a fresh "
        "run with phase 0",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """``PAPER`` or ``CPU`` with every option given on the command line applied on top."""
    config = options.config_from_args(args, CPU, PAPER)
    if config.late_window > config.test_length:
        raise UserError(
            f"--late-window {config.late_window} is longer than the streams "
            f"(--test-length {config.test_length}); pick at most {config.test_length}"
        )
    if min(config.test_streams, config.deep_streams) < 2:
        raise UserError("--test-streams and --deep-streams must be at least 2 for a bootstrap CI")
    if config.learning_rate <= 0:
        raise UserError(f"--learning-rate must be positive, not {config.learning_rate:g}")
    if config.prefit_steps < 0:
        raise UserError(f"--prefit-steps must be 0 or more, not {config.prefit_steps}")
    if not config.forward_weight > 0:
        raise UserError(f"--forward-weight must be positive, not {config.forward_weight:g}")
    return config


def run(args: argparse.Namespace) -> int:
    from vsml_bench.leaderboard.harness import enable_compilation_cache

    enable_compilation_cache()  # a resumed run compiles nothing it compiled before
    config = config_from_args(args)
    out = Path(args.out)
    document = run_experiment(config, out, args.resume, progress=not args.no_progress)
    for path in write_outputs(document, out):
        print(path)
    (out / "meta_test.partial.json").unlink(missing_ok=True)  # its rows are in the JSON now
    for line in document["targets"]:
        print(line)
    return 0
