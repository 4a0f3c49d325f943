"""``vsml-bench experiment generalization``: learners in and out of their meta-training data."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os

import jax
import numpy as np
import pytest
from flax import serialization

from vsml_bench import agents
from vsml_bench.agents import pretrained
from vsml_bench.experiments import generalization as gen
from vsml_bench.leaderboard import schema, suites
from vsml_bench.protocol import TaskSpec

PROVENANCE = {
    "package_version": "0.1.0",
    "git_commit": None,
    "hardware": {"cpu": "test", "n_cpus": 2},
    "created_utc": "2026-01-01T00:00:00Z",
    "wall_time_s": 1.0,
}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    gen.add_arguments(parser)
    return parser.parse_args(list(argv))


def write_meta_rnn_set(folder, stem: str, trained_on, n_classes: int = 10):
    """A tiny freshly initialised Meta-RNN set (msgpack + model card) named ``stem``."""
    learner = agents.make("meta_rnn", hidden=8)
    meta_params = learner.meta_init(jax.random.key(1), TaskSpec((16,), n_classes))
    data = serialization.msgpack_serialize(jax.tree.map(np.asarray, meta_params))
    (folder / f"{stem}.msgpack").write_bytes(data)
    card = {
        "learner": "meta_rnn",
        "config": {"hidden": 8},
        "meta_trained_on": list(trained_on),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (folder / f"{stem}.json").write_text(json.dumps(card))
    return folder / f"{stem}.msgpack"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """The shipped folder as a tmp one: VSML's mnist set, and the shipped Meta-RNN set
    relabelled as meta-trained on digits (its card's claim, which is all the lookup reads)."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    for stem in ("vsml_mnist", "meta_rnn_mnist"):
        for suffix in (".msgpack", ".json"):
            source = pretrained._files().joinpath(f"{stem}{suffix}")
            (folder / f"{stem}{suffix}").write_bytes(source.read_bytes())
    card = json.loads((folder / "meta_rnn_mnist.json").read_text())
    (folder / "meta_rnn_mnist.json").unlink()
    (folder / "meta_rnn_mnist.msgpack").rename(folder / "meta_rnn_digits.msgpack")
    (folder / "meta_rnn_digits.json").write_text(
        json.dumps({**card, "meta_trained_on": ["digits"]})
    )
    monkeypatch.setattr(pretrained, "_files", lambda: folder)
    return folder


def test_shipped_sets_are_picked_up_by_what_their_card_says(shipped):
    assert gen.shipped_specs(("mnist",)) == ["vsml:mnist"]
    assert gen.shipped_specs(("digits",)) == ["meta_rnn:digits"]
    assert gen.shipped_specs(("fashion_mnist",)) == []
    assert gen.shipped_specs(("mnist", "mnist")) == ["vsml:mnist"]  # a set, not a list


def test_the_real_shipped_folder_is_read_by_card():
    """Every set that ships meta-trained on MNIST (VSML's today; the Meta-RNN, Transformer,
    fast weights and Hebbian sets once they ship) is tested by default."""
    specs = gen.shipped_specs(("mnist",))
    assert "vsml:mnist" in specs
    for spec in specs:
        learner, _, set_name = spec.partition(":")
        assert pretrained.model_card(set_name, learner)["meta_trained_on"] == ["mnist"]


def test_without_a_meta_trained_learner_the_error_names_what_is_shipped(shipped):
    args = parse("--out", "x", "--train-set", "fashion_mnist")
    with pytest.raises(gen.ExperimentError, match=r"vsml:mnist \(mnist\)"):
        gen.build_entries(args, ("fashion_mnist",), shipped / "raw")


def test_datasets_come_from_the_suites_and_unknown_ones_are_refused():
    tasks = gen.dataset_tasks(["mnist", "digits", "mnist"])
    assert list(tasks) == ["mnist", "digits"]
    assert tasks["mnist"][0] == "ood-v0" and tasks["digits"][0] == "offline-v0"
    assert dict(tasks["mnist"][1].env_kwargs)["split"] == "test"
    with pytest.raises(gen.ExperimentError, match="unknown dataset 'mnsit'"):
        gen.dataset_tasks(["mnsit"])
    assert gen.train_split_of(tasks["mnist"][1])[0] == "train"
    emnist = gen.dataset_tasks(["emnist"])["emnist"][1]
    assert gen.train_split_of(emnist)[0] == "balanced_train"
    split, note = gen.train_split_of(tasks["digits"][1])
    assert split is None and "own split" in note


def _entry(name, kind, trained_on, accuracies, suite, missing=()):
    """An :class:`gen.Entry` with a synthetic results document (per-task accuracy given)."""
    rng = np.random.default_rng(len(name))
    results = {}
    for task in suite.tasks:
        if task.task_id in missing:
            results[task.task_id] = {"status": schema.MISSING}
            continue
        p = accuracies[task.task_id]
        results[task.task_id] = {
            "correct": rng.random((task.n_streams, task.stream_length)) < p,
            "ce": rng.random(task.n_streams),
        }
    block = {
        "name": name,
        "spec": name,
        "config": {},
        "meta_trained_on": list(trained_on),
        "meta_params_sha256": None,
    }
    doc = schema.build_document(
        suite=suite, learner=block, provenance=PROVENANCE, task_results=results
    )
    learner = dataclasses.replace(agents.make("chance"), meta_trained_on=tuple(trained_on))
    return gen.Entry(name, name, kind, learner, docs=[doc])


def test_summary_and_table_put_in_distribution_against_ood():
    datasets = ["mnist", "fashion_mnist", "notmnist", "kmnist"]
    suite = suites.get_suite("ood-v0").subset(datasets).resized(64, 50)
    acc = {"mnist": 0.9, "fashion_mnist": 0.5, "notmnist": 0.7, "kmnist": 0.0}
    entry = _entry("fit", "meta-trained", ["mnist"], acc, suite, missing=("kmnist",))
    summary = gen.summarise(entry, datasets)
    per = {d: summary["per_dataset"][d] for d in datasets}
    assert per["kmnist"]["status"] == schema.MISSING and "accuracy" not in per["kmnist"]
    assert summary["in_distribution_datasets"] == ["mnist"]
    assert (summary["n_in_distribution_run"], summary["n_ood_run"]) == (1, 2)
    ood_mean = (
        per["fashion_mnist"]["accuracy"]["value"] + per["notmnist"]["accuracy"]["value"]
    ) / 2
    assert summary["ood"]["value"] == pytest.approx(ood_mean, abs=1e-6)  # datasets weigh the same
    gap = summary["ood_gap"]
    assert gap["value"] == pytest.approx(per["mnist"]["accuracy"]["value"] - ood_mean, abs=2e-6)
    assert 0.2 < gap["low"] < gap["value"] < gap["high"] < 0.4
    # A learner without any in-distribution dataset has an OOD score but no gap.
    blind = gen.summarise(_entry("blind", "extra", [], acc, suite, missing=("kmnist",)), datasets)
    assert blind["ood_gap"] is None and blind["in_distribution"] is None
    assert blind["ood"]["value"] == pytest.approx(
        np.mean([blind["per_dataset"][d]["accuracy"]["value"] for d in datasets[:3]]), abs=1e-6
    )
    result = {
        "config": {"datasets": datasets, "n_streams": 64, "stream_length": 50},
        "datasets": {d: {"status": per[d]["status"]} for d in datasets},
        "learners": [summary, blind],
    }
    table = gen.markdown_table(result)
    lines = table.splitlines()
    assert lines[0].startswith("| Learner | Meta-trained on | In-distribution | OOD | OOD gap |")
    row = lines[2].split(" | ")
    assert row[0] == "| fit" and row[1] == "mnist"
    assert row[4] == f"{gap['value']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}]"
    assert row[5] == f"*{per['mnist']['accuracy']['value']:.3f}*"  # in-distribution: italic
    assert row[-1] == "data missing |"
    assert "Data missing (not run): kmnist." in table


@pytest.mark.slow
def test_end_to_end_on_embedded_data(shipped, tmp_path, monkeypatch):
    """Shipped set picked up by its card, a Meta-RNN from a file, tuned SGD, chance: one run."""
    extra = write_meta_rnn_set(tmp_path, "other", ["digits"], n_classes=5)
    out = tmp_path / "out"
    argv = [
        "--out", str(out), "--train-set", "digits", "--datasets", "digits,iris,wine",
        "--learners", f"meta_rnn:{extra}", "--references", "sgd", "--chance",
        "--n-streams", "3", "--stream-length", "12", "--tune-streams", "3", "--no-progress",
    ]  # fmt: skip
    assert gen.run(parse(*argv)) == 0
    result = json.loads((out / "generalization.json").read_text())
    names = [learner["name"] for learner in result["learners"]]
    assert names[0] == "meta_rnn:digits" and names[1].startswith("meta_rnn (params ")
    assert names[2].startswith("sgd (lr ") and names[3] == "chance"
    by_name = dict(zip(names, result["learners"], strict=True))
    shipped_rnn = by_name["meta_rnn:digits"]
    assert shipped_rnn["in_distribution_datasets"] == ["digits"]
    assert shipped_rnn["ood_gap"] is not None and shipped_rnn["kind"] == "meta-trained"
    # The fixed-size Meta-RNN (7x7 inputs) ran through the recorded adaptation: 8x8 -> 7x7.
    assert shipped_rnn["per_dataset"]["digits"]["adaptation"]["image_size"] == 7
    # 5 outputs: digits (10 classes) is not applicable, recorded, not dropped.
    small = by_name[names[1]]
    assert small["per_dataset"]["digits"]["status"].endswith("at most 5 classes")
    assert small["in_distribution"] is None and small["ood"] is not None
    sgd = by_name[names[2]]
    assert sgd["tuning"]["learning_rate"] in sgd["tuning"]["grid"]
    assert sgd["in_distribution_datasets"] == ["digits"]  # tuned there
    assert by_name["chance"]["ood_gap"] is None
    # Every learner's raw file is a valid results file on the same tasks and seeds.
    seeds = set()
    for learner in result["learners"]:
        (raw,) = learner["raw_files"]
        doc = schema.read_results(out / raw)
        seeds.add(tuple((t["task_id"], t["seed"], t["n_streams"]) for t in doc["tasks"]))
    assert len(seeds) == 1
    table = (out / "table.md").read_text()
    assert "≤5 classes" in table
    assert (out / "generalization.png").read_bytes().startswith(b"\x89PNG")
    # A second run reuses the raw files of unchanged learners instead of re-running them.
    from vsml_bench.leaderboard import harness

    def refuse(*args, **kwargs):
        raise AssertionError("re-ran a learner whose results file was up to date")

    monkeypatch.setattr(harness, "evaluate", refuse)
    before = json.loads((out / "generalization.json").read_text())
    assert gen.run(parse(*argv)) == 0
    after = json.loads((out / "generalization.json").read_text())
    assert [x["ood_gap"] for x in after["learners"]] == [x["ood_gap"] for x in before["learners"]]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("VSML_BENCH_DATA"),
    reason="VSML_BENCH_DATA is not set (point it at the shared data folder to run real-data tests)",
)
def test_real_data_with_the_shipped_vsml(tmp_path):
    """MNIST in-distribution, Fashion-MNIST OOD; a dataset without files says so."""
    from vsml_bench import data

    if not data.is_available("mnist", "test") or not data.is_available("fashion_mnist", "test"):
        pytest.fail("VSML_BENCH_DATA is set but holds no MNIST / Fashion-MNIST test files")
    out = tmp_path / "out"
    argv = [
        "--out", str(out), "--datasets", "mnist,fashion_mnist,kmnist", "--references", "",
        "--n-streams", "4", "--stream-length", "20", "--no-progress",
    ]  # fmt: skip
    assert gen.run(parse(*argv)) == 0
    result = json.loads((out / "generalization.json").read_text())
    vsml = next(x for x in result["learners"] if x["spec"] == "vsml:mnist")
    assert vsml["in_distribution_datasets"] == ["mnist"] and vsml["ood_gap"] is not None
    kmnist_present = data.is_available("kmnist", "test")
    assert (result["datasets"]["kmnist"]["status"] == "ok") == kmnist_present
    if not kmnist_present:
        assert "Data missing (not run): kmnist." in (out / "table.md").read_text()
