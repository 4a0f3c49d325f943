"""`train` as a user meets it: resume and Ctrl-C messages, and the run's model card that
`evaluate --learner NAME:<run>/best.msgpack` reads (its tasks then count as in-distribution)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from test_meta_toy import SPEC, TOY_LEARNER, toy_evaluate, toy_objective

from vsml_bench import agents
from vsml_bench.agents import pretrained
from vsml_bench.agents.meta import checkpoint as ckpt
from vsml_bench.agents.meta import cli, loop
from vsml_bench.agents.meta.export import RUN_CARD, meta_trained_on, write_run_card
from vsml_bench.agents.meta.loop import TrainConfig, TrainingInterrupted, train
from vsml_bench.leaderboard import harness
from vsml_bench.protocol import TaskSpec

CONFIG = TrainConfig(steps=6, n_pairs=4, learning_rate=0.05, eval_every=2, checkpoint_every=4)
DIGITS_FAMILY = {"env_id": "vsml_bench/OnlineDigits-v0", "kwargs": {}, "share": 1.0}


def _interrupting(evaluate, at_call: int):
    """``evaluate`` that raises KeyboardInterrupt (as Ctrl-C would) on its ``at_call``-th call."""
    calls = []

    def wrapped(meta_params):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return evaluate(meta_params)

    return wrapped


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_last_finished_step_and_resume_says_where(tmp_path):
    objective, evaluate = toy_objective(), toy_evaluate()
    whole = train(
        TOY_LEARNER, SPEC, objective, CONFIG, tmp_path / "a", evaluate=evaluate, progress=False
    )
    run = tmp_path / "b"
    # Interrupted inside step 4 (its evaluation): step 3 is the last finished one, although
    # the last periodic checkpoint (every 4 steps) is not due until step 4.
    with pytest.raises(TrainingInterrupted) as stop:
        train(
            TOY_LEARNER,
            SPEC,
            objective,
            CONFIG,
            run,
            evaluate=_interrupting(evaluate, 2),
            progress=False,
        )
    assert (stop.value.step, stop.value.steps) == (3, 6)
    assert isinstance(stop.value, KeyboardInterrupt)
    messages = []
    resumed = train(
        TOY_LEARNER, SPEC, objective, CONFIG, run, evaluate=evaluate, resume=True,
        progress=False, log=messages.append,
    )  # fmt: skip
    assert messages == [f"resuming {run} at step 3/6"]
    for a, b in zip(
        jax.tree.leaves(whole["meta_params"]), jax.tree.leaves(resumed["meta_params"]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == sorted(steps) and steps.count(4) == 2  # loss + eval


def test_train_cli_on_ctrl_c_writes_the_card_and_exits_130(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def interrupted_train(*args, **kwargs):
        out.mkdir()
        (out / "config.json").write_text(
            json.dumps({"families": [DIGITS_FAMILY], "learner": "vsml"})
        )
        raise TrainingInterrupted(7, 20)

    monkeypatch.setattr(loop, "train", interrupted_train)
    argv = ["vsml-bench", "train", "--preset", "quick", "--out", str(out), "--no-progress"]
    monkeypatch.setattr("sys.argv", argv)
    code = cli.main(argv[2:])
    assert code == 130
    err = capsys.readouterr().err
    assert "stopped at step 7/20" in err and str(out) in err
    assert err.strip().endswith(
        f"continue with: vsml-bench train --preset quick --out {out} --no-progress --resume"
    )
    assert json.loads((out / RUN_CARD).read_text())["meta_trained_on"] == ["digits"]


def _fake_run(tmp_path, learner_name="hebbian", **config):
    """A run folder as `train` leaves it, with real meta-parameters of a registered learner."""
    run = tmp_path / "run"
    run.mkdir()
    record = {"learner": learner_name, "learner_config": {}, "families": [DIGITS_FAMILY], **config}
    (run / "config.json").write_text(json.dumps(record))
    learner = agents.make(learner_name)
    meta_params = learner.meta_init(jax.random.key(0), TaskSpec(input_shape=(64,), n_classes=10))
    ckpt.save(run / "best.msgpack", meta_params, checksum=False)
    return run


def test_evaluate_reads_meta_trained_on_from_the_run_card(tmp_path):
    run = _fake_run(tmp_path)
    spec = f"hebbian:{run / 'best.msgpack'}"
    assert harness.build_learner(spec).meta_trained_on == ()  # no card yet: all OOD
    card = write_run_card(run, final=False)
    assert card["sha256"] is None and card["meta_params_file"] == "best.msgpack"
    assert harness.build_learner(spec).meta_trained_on == ("digits",)
    card = write_run_card(run, final=True)
    assert card["sha256"] is not None
    assert harness.build_learner(spec).meta_trained_on == ("digits",)
    # The card describes best.msgpack only, and checks its bytes.
    (run / "other.msgpack").write_bytes((run / "best.msgpack").read_bytes())
    assert harness.build_learner(f"hebbian:{run / 'other.msgpack'}").meta_trained_on == ()
    data = bytearray((run / "best.msgpack").read_bytes())
    data[-1] ^= 1
    (run / "best.msgpack").write_bytes(bytes(data))
    with pytest.raises(harness.LearnerSpecError, match="sha256"):
        harness.build_learner(spec)


def test_meta_trained_on_includes_what_init_from_saw():
    shipped = Path(pretrained.__file__).parent / "vsml_mnist.msgpack"
    config = {"families": [DIGITS_FAMILY, DIGITS_FAMILY], "init_from": {"path": str(shipped)}}
    assert meta_trained_on(config) == ["digits", "mnist"]
    assert meta_trained_on({"families": [DIGITS_FAMILY]}) == ["digits"]
