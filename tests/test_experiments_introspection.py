"""``vsml-bench experiment introspection``: k-th example statistics, outputs, a tiny real run."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from vsml_bench.experiments import introspection


def test_occurrence_counts_the_examples_of_each_class_so_far():
    labels = np.array([[0, 1, 0, 0, 2, 1], [3, 3, 3, 0, 1, 0]])
    np.testing.assert_array_equal(
        introspection.occurrence(labels), [[1, 1, 2, 3, 1, 2], [1, 2, 3, 1, 1, 2]]
    )


def test_per_k_sums_and_their_counts():
    k = np.array([[1, 1, 2, 3, 1, 2]])
    values = np.array([[0.5, 1.0, 0.25, 1.0, 0.0, 0.75]])
    np.testing.assert_allclose(introspection.per_k_sums(values, k, 4), [[1.5, 1.0, 1.0, 0.0]])
    np.testing.assert_allclose(introspection.per_k_sums(np.ones_like(k), k, 2), [[3, 2]])


def test_ratio_ci_pools_streams_and_handles_no_examples():
    sums = np.array([1.0, 3.0, 0.0, 2.0])
    counts = np.array([2, 4, 0, 2])
    est = introspection.ratio_ci(sums, counts, np.random.default_rng(0))
    assert est["value"] == pytest.approx(6 / 8)
    assert est["low"] <= est["value"] <= est["high"]
    empty = introspection.ratio_ci(np.zeros(3), np.zeros(3), np.random.default_rng(0))
    assert empty == {"value": None, "low": None, "high": None}


def test_curves_reproduce_the_direct_accuracy_at_each_k():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, (5, 30))
    correct = rng.random((5, 30)) < 0.6
    k = introspection.occurrence(labels)
    counts = introspection.per_k_sums(np.ones_like(k), k, 6)
    sums = {q: introspection.per_k_sums(correct, k, 6) for q in introspection.QUANTITIES}
    by_k = introspection.curves(counts, sums, ("test",))
    for j in range(6):
        direct = correct[k == j + 1].mean()
        assert by_k["accuracy"][j]["value"] == pytest.approx(direct, abs=1e-6)


def _document():
    est = {"value": 0.5, "low": 0.4, "high": 0.6}
    entry = {
        "online_accuracy": est,
        "by_k": {q: [est, est, est] for q in introspection.QUANTITIES},
        "example_stream_probs": [[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]],
    }
    return {
        "config": {"streams": 2, "split": "test", "length": 6, "n_classes": 2, "max_k": 3},
        "datasets": {
            "digits": {
                "counts": [[2, 1, 0], [2, 2, 1]],
                "example_stream_labels": [0, 1, 1],
                "learners": {"vsml:mnist": entry, "meta_rnn:mnist": {"not_run": "no"}},
            }
        },
    }


def test_markdown_tables():
    table = introspection.markdown(_document())
    assert "| learner | k=1 | k=2 | k=3 | online |" in table
    assert "| vsml:mnist | 50.0 [40, 60] | 50.0 [40, 60] | 50.0 [40, 60] | 50.0 |" in table
    assert "| (k-th examples) | 4 | 3 | 1 |" in table
    assert "| meta_rnn:mnist | not run |" in table


@pytest.mark.slow
def test_plots_are_written(tmp_path):
    paths = introspection.write_outputs(_document(), tmp_path)
    assert [p.name for p in paths] == [
        "introspection.json",
        "introspection.png",
        "example_stream.png",
        "table.md",
    ]
    for name in ("introspection.png", "example_stream.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_config_refuses_what_cannot_be_measured():
    parser = argparse.ArgumentParser()
    introspection.add_arguments(parser)
    assert introspection.config_from_args(parser.parse_args([])) == introspection.CPU
    paper = introspection.config_from_args(parser.parse_args(["--paper"]))
    assert paper == introspection.PAPER
    with pytest.raises(introspection.UserError, match="exceeds --length"):
        introspection.config_from_args(parser.parse_args(["--length", "10", "--max-k", "11"]))
    with pytest.raises(introspection.UserError, match="n-classes"):
        introspection.config_from_args(parser.parse_args(["--n-classes", "1"]))


def _check_document(document, specs):
    config = document["config"]
    for block in document["datasets"].values():
        counts = np.asarray(block["counts"])
        assert counts.shape == (config["streams"], config["max_k"])
        assert counts.sum() <= config["streams"] * config["length"]
        assert np.all(counts[:, 0] >= 2)  # every stream shows at least two classes
        for spec in specs:
            entry = block["learners"][spec]
            correct = np.asarray(entry["sums"]["accuracy"])
            assert np.all(correct <= counts)
            first = entry["by_k"]["accuracy"][0]["value"]
            assert first == pytest.approx(correct[:, 0].sum() / counts[:, 0].sum(), abs=1e-6)
            probs = np.asarray(entry["example_stream_probs"])
            assert probs.shape == (config["example_steps"], config["n_classes"])
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=5e-3)
            p_true, p_pred = (np.asarray(entry["sums"][q]) for q in ("p_true", "p_pred"))
            assert np.all(p_true <= p_pred + 1e-3)


@pytest.mark.slow
def test_tiny_run_on_digits(tmp_path):
    config = introspection.Config(
        datasets=("digits",),
        streams=3,
        length=24,
        n_classes=4,
        max_k=5,
        example_steps=8,
        split="train",  # digits has one split; tuning and reported streams still differ
        tune_split="train",
    )
    specs = ["vsml:mnist", "adam", "nearest_mean"]
    document = introspection.run_experiment(config, specs, show_progress=False)
    _check_document(document, specs)
    introspection.write_outputs(document, tmp_path)
    assert "**digits**: p(true class)" in (tmp_path / "table.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("VSML_BENCH_DATA"),
    reason="VSML_BENCH_DATA is not set (point it at the shared data folder to run real-data tests)",
)
def test_tiny_run_on_mnist_test_streams():
    config = introspection.Config(
        datasets=("mnist",), streams=2, length=20, n_classes=10, max_k=3, example_steps=5
    )
    document = introspection.run_experiment(config, ["vsml:mnist", "sgd"], show_progress=False)
    _check_document(document, ["vsml:mnist", "sgd"])
    assert document["datasets"]["mnist"]["env_kwargs"]["split"] == "test"
    assert document["streams"]["tuning"].startswith("split=train")


def test_cli_reports_a_user_error_in_one_line(tmp_path, capsys):
    from vsml_bench import cli

    assert cli.main(["experiment", "introspection", "--render-only", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run the experiment with this --out first" in err
