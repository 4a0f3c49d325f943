"""Recipe knobs of meta-training: schedules, polarity augmentation, warm starts, CPU time."""

import json

import jax
import numpy as np
import pytest

from vsml_bench import envs
from vsml_bench.agents.meta import presets
from vsml_bench.agents.meta.cli import main as train_main
from vsml_bench.agents.meta.loop import TrainConfig
from vsml_bench.errors import UserError


@pytest.mark.slow
def test_invert_inputs_negates_every_observation_of_the_same_stream():
    _, plain = envs.make("vsml_bench/OnlineDigits-v0", stream_length=20)
    _, inverted = envs.make("vsml_bench/OnlineDigits-v0", stream_length=20, invert_inputs=True)
    env = envs.env_for(plain)
    key = jax.random.key(3)
    obs_a, _ = env.reset(key, plain)
    obs_b, _ = env.reset(key, inverted)
    np.testing.assert_array_equal(np.asarray(obs_b["x"]), -np.asarray(obs_a["x"]))
    assert np.asarray(obs_a["x"]).std() > 0


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # warm-up 10 steps to 0.1, then cosine over 90 steps to 0.1 * 0.1.
        ("cosine", {0: 0.0, 5: 0.05, 10: 0.1, 55: 0.1 * (0.1 + 0.9 * 0.5), 100: 0.01}),
        ("constant", {0: 0.0, 5: 0.05, 10: 0.1, 55: 0.1, 100: 0.1}),
    ],
)
def test_learning_rate_schedule(schedule, expected):
    config = TrainConfig(
        steps=100, learning_rate=0.1, schedule=schedule, warmup_steps=10, final_lr_fraction=0.1
    )
    lr = config.learning_rate_schedule()
    for step, value in expected.items():
        assert float(lr(step)) == pytest.approx(value, rel=1e-5, abs=1e-8)


def test_unknown_schedule_is_a_user_error():
    with pytest.raises(UserError, match="unknown schedule 'linear'"):
        TrainConfig(schedule="linear")


def test_polarity_doubles_the_families_with_inverted_copies():
    preset = presets.get("paper-small").with_polarity()
    kinds = [
        (bool(f.kwargs.get("invert_inputs")), bool(f.kwargs.get("projection")))
        for f in preset.families
    ]
    assert sorted(kinds) == [(False, False), (False, True), (True, False), (True, True)]
    assert sum(f.share for f in preset.families) == pytest.approx(1.0)
    assert preset.with_polarity() == preset  # idempotent


def test_task_options_change_training_families_only():
    base = presets.get("cpu-1h")
    preset = base.with_task_options(image_size=14, stream_length=300)
    assert all(f.kwargs["image_size"] == 14 for f in preset.families)
    assert all(f.kwargs["stream_length"] == 300 for f in preset.families)
    assert [f.kwargs.get("invert_inputs") for f in preset.families] == [
        f.kwargs.get("invert_inputs") for f in base.families
    ]
    assert preset.eval_families == base.eval_families


@pytest.mark.parametrize("flag", ["--stream-length", "--image-size"])
def test_task_option_flags_reject_non_positive_sizes(tmp_path, flag, capsys):
    out = tmp_path / "run"
    assert train_main(["--preset", "quick", flag, "0", "--out", str(out)]) == 2
    assert f"{flag} must be a positive integer, got 0" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_warm_start_records_its_source_and_cpu_time(tmp_path):
    first = tmp_path / "first"
    args = [
        "--preset",
        "quick",
        "--method",
        "bptt",
        "--n-tasks",
        "2",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--no-progress",
    ]
    assert train_main([*args, "--out", str(first)]) == 0
    second = tmp_path / "second"
    init = first / "best.msgpack"
    assert train_main([*args, "--out", str(second), "--init-from", str(init), "--steps", "1"]) == 0
    config = json.loads((second / "config.json").read_text())
    assert config["init_from"]["path"] == str(init)
    assert len(config["init_from"]["sha256"]) == 64
    steps = [json.loads(line) for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert steps[0]["cpu_s"] > 0
    (tmp_path / "junk.msgpack").write_bytes(b"not msgpack")
    assert (
        train_main(
            [*args, "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "junk.msgpack")]
        )
        == 2
    )
