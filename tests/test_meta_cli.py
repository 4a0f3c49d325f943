"""``vsml-bench train`` / ``plot`` end to end, the env-backed task distribution, and CLI errors."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_meta_toy import TOY_LEARNER

from vsml_bench.agents.meta import cli, plot, presets
from vsml_bench.agents.meta.es import es_gradient
from vsml_bench.agents.meta.tasks import (
    TaskFamily,
    build_evaluator,
    build_objective,
    stream_cross_entropy,
)


def test_stream_cross_entropy_counts_scored_steps_only():
    logits = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = jnp.array([0, 1, 1])
    scored = jnp.array([True, False, True])
    expected = (np.log(2.0) + np.log1p(np.exp(-10.0))) / 2
    np.testing.assert_allclose(stream_cross_entropy(logits, labels, scored), expected, rtol=1e-5)


@pytest.mark.slow
def test_env_families_feed_es_and_evaluation():
    digits = {"stream_length": 8, "n_classes": 3}
    families = [
        TaskFamily("vsml_bench/OnlineDigits-v0", digits, 0.5),
        TaskFamily("vsml_bench/OnlineDigits-v0", {**digits, "projection": True}, 0.5),
    ]
    objective, spec = build_objective(TOY_LEARNER, families)
    assert spec.input_size == 64 and spec.n_classes == 3
    params = TOY_LEARNER.meta_init(jax.random.key(0), spec)
    estimate = jax.jit(lambda p, k, o: es_gradient(o, p, k, n_pairs=4, sigma=0.05))(
        params, jax.random.key(1), objective
    )
    assert estimate.loss_plus.shape == (4,)
    assert np.isfinite(estimate.loss) and np.all(
        np.isfinite(jax.flatten_util.ravel_pytree(estimate.grad)[0])
    )
    # Few-shot families score query steps only; both kinds evaluate to accuracies in [0, 1].
    evaluate = build_evaluator(
        TOY_LEARNER,
        [families[1], TaskFamily("vsml_bench/FewShotDigits-v0", {"n_way": 3}, name="fs")],
        n_streams=4,
        key=jax.random.key(2),
    )
    scores = evaluate(params)
    assert set(scores) == {"OnlineDigits,n_classes=3,projection=True,stream_length=8", "fs"}
    assert all(0.0 <= float(v) <= 1.0 for v in scores.values())
    again = evaluate(params)
    assert all(float(scores[k]) == float(again[k]) for k in scores)  # fixed held-out streams


def _train(tmp_path, *extra):
    return cli.main(
        [
            "--preset",
            "quick",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--n-pairs",
            "2",
            "--eval-every",
            "2",
            *extra,
        ]
    )


def test_train_cli_errors_are_one_sentence(tmp_path, capsys):
    assert cli.main(["--preset", "nope", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "vsml-bench train: error: unknown preset 'nope'; choose one of quick, paper-small, "
        "cpu-1h, cpu-4h, paper"
    )
    assert cli.main(["--preset", "quick", "--out", str(tmp_path / "a"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no checkpoint to resume" in err and err.count("\n") == 0
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.jsonl").write_text("")
    assert cli.main(["--preset", "quick", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run; pass --resume" in err and err.count("\n") == 0
    assert (
        cli.main(["--preset", "quick", "--out", str(tmp_path / "c"), "--learner-config", "[1"]) == 2
    )
    assert "--learner-config is not a JSON object" in capsys.readouterr().err


def test_plot_errors(tmp_path):
    with pytest.raises(plot.UserError, match="is not a run folder"):
        plot.run(plot.argparse.Namespace(run=str(tmp_path / "missing"), png=None, window=5))
    with pytest.raises(plot.UserError, match=r"metrics\.jsonl does not exist"):
        plot.plot_run(tmp_path)


@pytest.mark.slow
def test_train_resume_and_plot_end_to_end(tmp_path, monkeypatch):
    # A tiny VSML run on the embedded digits: 2 steps, then resumed to 3, then plotted.
    monkeypatch.setitem(
        presets.PRESETS,
        "quick",
        presets.PRESETS["quick"].__class__(
            **{
                **presets.PRESETS["quick"].__dict__,
                "eval_streams": 2,
                "families": tuple(
                    TaskFamily(f.env_id, {**f.kwargs, "stream_length": 5}, f.share)
                    for f in presets.PRESETS["quick"].families
                ),
                "eval_families": presets.PRESETS["quick"].eval_families[:2],
            },
        ),
    )
    assert _train(tmp_path, "--steps", "2") == 0
    assert _train(tmp_path, "--steps", "3", "--resume") == 0
    run = tmp_path / "run"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]
    assert [x["step"] for x in lines if "eval" in x] == [2, 3]
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "quick" and config["learner"] == "vsml"
    png = plot.plot_run(run)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
