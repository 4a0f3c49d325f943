"""Exporting a run as a shipped pretrained set, and the shipped VSML itself."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_meta_toy import SPEC, TOY_LEARNER, toy_evaluate, toy_objective

from vsml_bench import agents
from vsml_bench.agents import pretrained
from vsml_bench.agents.meta import checkpoint as ckpt
from vsml_bench.agents.meta.export import export
from vsml_bench.agents.meta.loop import TrainConfig, train


def test_export_writes_a_verified_model_card(tmp_path):
    config = TrainConfig(steps=4, n_pairs=4, learning_rate=0.05, eval_every=2, checkpoint_every=2)
    train(
        TOY_LEARNER,
        SPEC,
        toy_objective(),
        config,
        tmp_path / "run",
        evaluate=toy_evaluate(),
        run_info={"learner": "toy", "learner_config": {"a": 1}, "command": "x"},
        progress=False,
    )
    card = export(tmp_path / "run", tmp_path / "out" / "toy", datasets=["toy"])
    data = (tmp_path / "out" / "toy.msgpack").read_bytes()
    assert json.loads((tmp_path / "out" / "toy.json").read_text()) == card
    assert card["meta_trained_on"] == ["toy"] and card["config"] == {"a": 1}
    assert card["exported_step"] in (2, 4) and card["steps_trained"] == 4
    meta_params = pretrained.parse(data, card)
    best = ckpt.load(
        tmp_path / "run" / "best.msgpack", TOY_LEARNER.meta_init(jax.random.key(0), SPEC)
    )
    for a, b in zip(jax.tree.leaves(meta_params), jax.tree.leaves(best), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    tampered = bytearray(data)
    tampered[-1] ^= 1
    with pytest.raises(pretrained.PretrainedCorrupt, match="sha256"):
        pretrained.parse(bytes(tampered), card)


def test_unknown_pretrained_name_is_a_user_error():
    with pytest.raises(pretrained.PretrainedNotFound, match="no pretrained meta-parameters named"):
        pretrained.load("imagenet")


def test_shipped_vsml_loads_and_runs():
    assert "mnist" in pretrained.names()
    meta_params, card = pretrained.load("mnist")
    for field in (
        "config",
        "command",
        "meta_trained_on",
        "steps_trained",
        "wall_time_s",
        "hardware",
        "git_commit",
        "sha256",
    ):
        assert field in card, field
    assert card["meta_trained_on"] == ["mnist"]
    learner = agents.make("vsml", pretrained="mnist")
    assert learner.meta_trained_on == ("mnist",)
    for a, b in zip(
        jax.tree.leaves(learner.meta_params), jax.tree.leaves(meta_params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fresh = learner.meta_init(jax.random.key(0), SPEC)
    assert jax.tree.structure(fresh) == jax.tree.structure(meta_params)


@pytest.mark.slow
def test_shipped_vsml_learns_fashion_mnist_online():
    """Real data: the MNIST-trained VSML learns unseen Fashion-MNIST, full 28x28, above chance."""
    if not os.environ.get("VSML_BENCH_DATA"):
        pytest.skip("VSML_BENCH_DATA is unset: Fashion-MNIST files are not available")
    from vsml_bench import envs

    _, env_params = envs.make("vsml_bench/OnlineFashionMNIST-v0", split="test", stream_length=100)
    learner = agents.make("vsml", pretrained="mnist")
    correct = jax.jit(lambda mp, ep: envs.rollout(ep, learner, mp, jax.random.key(7), 32).correct)(
        learner.meta_params, env_params
    )
    late = float(jnp.mean(correct[:, -20:]))
    early = float(jnp.mean(correct[:, :10]))
    assert late > 0.3 and late > early + 0.1, (early, late)
