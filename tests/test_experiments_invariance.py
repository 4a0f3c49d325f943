"""``vsml-bench experiment invariance``: the grid, the statistics, the outputs, a tiny real run."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from vsml_bench.experiments import invariance
from vsml_bench.leaderboard import metrics


def test_variants_start_unmodified_and_skip_what_equals_it():
    config = invariance.Config(
        datasets=("mnist",),
        streams=4,
        length=10,
        class_counts=(2, 10),
        image_sizes=(14, 28),
        margin=5.0,
    )
    grid = invariance.variants(config, n_dataset_classes=10, native_size=28)
    assert [v.name for v in grid] == [
        "unmodified",
        "2 classes",
        "14x14 px",
        "random projection",
        "pixel permutation",
        "label permutation",
    ]
    assert grid[0].kwargs == {}
    assert {v.group for v in grid} == {
        "unmodified",
        "classes",
        "resolution",
        "projection",
        "pixels",
        "labels",
    }
    assert grid[-1].kwargs == {"permute_labels": True}


def test_every_variant_but_one_keeps_labels_in_dataset_order():
    config = invariance.CPU
    base = invariance.Variant("unmodified", "unmodified", {})
    label = invariance.Variant("label permutation", "labels", {"permute_labels": True})
    split = "train"  # digits has one split
    assert invariance.make_env("digits", split, config, base).permute_labels is False
    assert invariance.make_env("digits", split, config, label).permute_labels is True


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.049, 0.02, "holds"),
        (-0.05, 0.0, "holds"),
        (-0.08, -0.051, "fails"),
        (-0.07, -0.03, "inconclusive"),
    ],
)
def test_verdict_is_where_the_ci_of_delta_lies_relative_to_minus_the_margin(low, high, expected):
    delta = metrics.Estimate((low + high) / 2, low, high)
    assert invariance.verdict(delta, 5.0) == expected


def test_delta_ci_is_the_difference_of_means_with_an_interval_around_it():
    rng = np.random.default_rng(0)
    variant = rng.uniform(0.4, 0.6, 64)
    base = rng.uniform(0.5, 0.7, 80)
    delta = invariance.delta_ci(variant, base, np.random.default_rng(1))
    assert delta.value == pytest.approx(variant.mean() - base.mean())
    assert delta.low < delta.value < delta.high
    assert delta.high - delta.low < 0.05
    same = invariance.delta_ci(np.full(8, 0.5), np.full(8, 0.5), np.random.default_rng(1))
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_score_cell_gives_delta_and_verdict_except_on_the_unmodified_task():
    base = np.ones((10, 20), bool)
    worse = base.copy()
    worse[:, :4] = False  # 80% vs 100%: Δ = −20 points, no variance: fails a 5-point margin
    assert "delta" not in invariance.score_cell(base, None, 5.0, ("t",))
    cell = invariance.score_cell(worse, base, 5.0, ("t",))
    assert cell["accuracy"]["value"] == pytest.approx(0.8)
    assert cell["delta"]["value"] == pytest.approx(-0.2)
    assert cell["verdict"] == "fails"


def _document():
    def cell(acc, delta=None, verdict=None):
        out = {"accuracy": {"value": acc, "low": acc - 0.01, "high": acc + 0.01}}
        if delta is not None:
            out["delta"] = {"value": delta, "low": delta - 0.02, "high": delta + 0.02}
            out["verdict"] = verdict
        return out

    return {
        "config": {"streams": 4, "length": 10, "margin": 5.0, "split": "test"},
        "learners": [{"spec": "vsml:mnist"}, {"spec": "meta_rnn:mnist"}],
        "datasets": {
            "mnist": {
                "env_id": "vsml_bench/OnlineMNIST-v0",
                "variants": [
                    {
                        "name": "unmodified",
                        "group": "unmodified",
                        "chance": 0.1,
                        "results": {"vsml:mnist": cell(0.6), "meta_rnn:mnist": cell(0.5)},
                    },
                    {
                        "name": "48x48 px",
                        "group": "resolution",
                        "chance": 0.1,
                        "results": {
                            "vsml:mnist": cell(0.45, -0.15, "fails"),
                            "meta_rnn:mnist": {"not_run": "too many classes"},
                        },
                    },
                ],
            }
        },
    }


def test_markdown_marks_where_the_margin_does_not_hold():
    table = invariance.markdown(_document())
    assert "| unmodified | 10 | 60.0 [59.0, 61.0] | (reference) |" in table
    assert "| 48x48 px | 10 | 45.0 [44.0, 46.0] | −15.0 ✗ | not run |" in table


@pytest.mark.slow
def test_plot_and_outputs_are_written_and_render_only_redraws_them(tmp_path):
    document = {"experiment": "invariance", **_document()}
    paths = invariance.write_outputs(document, tmp_path)
    assert [p.name for p in paths] == ["invariance.json", "invariance.png", "table.md"]
    assert (tmp_path / "invariance.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "invariance.json").read_text()) == document
    (tmp_path / "invariance.png").unlink()
    (tmp_path / "table.md").unlink()
    before = (tmp_path / "invariance.json").stat().st_mtime_ns
    assert invariance.run(_args(out=tmp_path, render_only=True)) == 0
    assert (tmp_path / "invariance.png").exists() and (tmp_path / "table.md").exists()
    assert (tmp_path / "invariance.json").stat().st_mtime_ns == before


def test_render_only_refuses_a_missing_or_foreign_document(tmp_path):
    with pytest.raises(invariance.UserError, match="run the experiment with this --out first"):
        invariance.run(_args(out=tmp_path, render_only=True))
    (tmp_path / "invariance.json").write_text(json.dumps({"experiment": "introspection"}))
    with pytest.raises(invariance.UserError, match="not the output"):
        invariance.run(_args(out=tmp_path, render_only=True))


def _args(**overrides):
    parser = argparse.ArgumentParser()
    invariance.add_arguments(parser)
    argv = []
    for name, value in overrides.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, *map(str, value if isinstance(value, list) else [value])]
    return parser.parse_args(argv)


def test_config_defaults_paper_flag_and_overrides():
    assert invariance.config_from_args(_args()) == invariance.CPU
    paper = invariance.config_from_args(_args(paper=True, streams=32))
    assert paper.streams == 32 and paper.length == invariance.PAPER.length
    assert paper.class_counts == (2, 3, 4, 5, 6, 7, 8, 9)
    assert invariance.CPU.split == "test" and invariance.CPU.tune_split == "train"
    with pytest.raises(invariance.UserError, match="at least 2"):
        invariance.config_from_args(_args(class_counts=[1, 3]))
    with pytest.raises(invariance.UserError, match="margin"):
        invariance.config_from_args(_args(margin=0))


def _check_document(document, specs, n_variants):
    for block in document["datasets"].values():
        assert len(block["variants"]) == n_variants
        for row in block["variants"]:
            for spec in specs:
                cell = row["results"][spec]
                # Every figure is recomputed from the raw bits the file stores.
                length = document["config"]["length"]
                correct = np.stack([metrics.decode_bits(b, length) for b in cell["correct"]])
                assert correct.shape == (document["config"]["streams"], length)
                assert cell["accuracy"]["value"] == pytest.approx(correct.mean(), abs=1e-6)
                assert ("delta" in cell) == (row["group"] != "unmodified")
                if spec == "sgd":
                    scores = cell["train_scores"]
                    assert cell["learning_rate"] == float(max(scores, key=scores.get))


@pytest.mark.slow
def test_tiny_run_on_digits(tmp_path):
    config = invariance.Config(
        datasets=("digits",),
        streams=3,
        length=12,
        class_counts=(2,),
        image_sizes=(4,),
        margin=5.0,
        split="train",  # digits has one split; tuning and reported streams still differ
        tune_split="train",
    )
    specs = ["vsml:mnist", "sgd", "nearest_mean"]
    document = invariance.run_experiment(config, specs, show_progress=False)
    assert [learner["spec"] for learner in document["learners"]] == specs
    _check_document(document, specs, n_variants=6)
    row = document["datasets"]["digits"]["variants"][2]
    assert row["name"] == "4x4 px" and row["input_size"] == 16
    invariance.write_outputs(document, tmp_path)
    assert "| 2 classes | 50 |" in (tmp_path / "table.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("VSML_BENCH_DATA"),
    reason="VSML_BENCH_DATA is not set (point it at the shared data folder to run real-data tests)",
)
def test_tiny_run_on_fashion_mnist_test_streams_tuned_on_train():
    config = invariance.Config(
        datasets=("fashion_mnist",),
        streams=2,
        length=10,
        class_counts=(2,),
        image_sizes=(7,),
        margin=5.0,
    )
    document = invariance.run_experiment(config, ["vsml:mnist", "sgd"], show_progress=False)
    _check_document(document, ["vsml:mnist", "sgd"], n_variants=6)
    assert "split=train" in document["streams"]["tuning"]
    assert document["datasets"]["fashion_mnist"]["variants"][0]["env_kwargs"]["split"] == "test"


def test_cli_reports_a_user_error_in_one_line(tmp_path, capsys):
    from vsml_bench import cli

    assert cli.main(["experiment", "invariance", "--render-only", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run the experiment with this --out first" in err


def test_markdown_says_when_a_learner_has_no_unmodified_run_to_compare_with():
    document = _document()
    rows = document["datasets"]["mnist"]["variants"]
    rows[0]["results"]["meta_rnn:mnist"] = {"not_run": "no"}
    rows[1]["results"]["meta_rnn:mnist"] = {"accuracy": {"value": 0.5, "low": 0.4, "high": 0.6}}
    table = invariance.markdown(document)
    assert (
        "| 48x48 px | 10 | 45.0 [44.0, 46.0] | −15.0 ✗ | 50.0 [40.0, 60.0] | no reference |"
        in table
    )
