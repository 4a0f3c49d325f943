"""``pretrained=`` for every meta-learned learner, and fixed-size learners adapted to any task."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from vsml_bench import agents, envs
from vsml_bench.agents import pretrained, registry
from vsml_bench.agents.vsml import vsml
from vsml_bench.data import transforms
from vsml_bench.envs import adaptation
from vsml_bench.leaderboard import harness, schema, suites
from vsml_bench.protocol import Learner, TaskSpec

FIXED_SIZE = ("meta_rnn", "transformer", "fast_weights")
SMALL = {"meta_rnn": {"hidden": 8}, "transformer": {"d_model": 8, "n_heads": 2, "context": 16}}


# --- pretrained= ---------------------------------------------------------------------------


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """The shipped folder replaced by a tmp one holding VSML's set and a meta_rnn ``toy`` set."""
    for suffix in (".msgpack", ".json"):
        source = pretrained._files().joinpath(f"vsml_mnist{suffix}")
        (tmp_path / f"vsml_mnist{suffix}").write_bytes(source.read_bytes())
    learner = agents.make("meta_rnn", hidden=8)
    meta_params = learner.meta_init(jax.random.key(1), TaskSpec((49,), 10))
    data = serialization.msgpack_serialize(jax.tree.map(np.asarray, meta_params))
    (tmp_path / "meta_rnn_toy.msgpack").write_bytes(data)
    card = {
        "learner": "meta_rnn",
        "config": {"hidden": 8, "feedback": "label"},
        "meta_trained_on": ["mnist"],
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (tmp_path / "meta_rnn_toy.json").write_text(json.dumps(card))
    (tmp_path / "stray.json").write_text("not json")  # must not break the lookup
    monkeypatch.setattr(pretrained, "_files", lambda: tmp_path)
    return meta_params


@pytest.mark.slow
def test_sets_are_looked_up_per_learner(shipped):
    assert pretrained.names() == pretrained.names("vsml") == ["mnist"]
    assert pretrained.names("meta_rnn") == ["toy"]
    assert pretrained.names("meta") == [] and pretrained.names("transformer") == []
    assert pretrained.shipped() == {"meta_rnn": ["toy"], "vsml": ["mnist"]}


def test_every_meta_learned_learner_takes_pretrained(shipped):
    learner = agents.make("meta_rnn", pretrained="toy")
    assert learner.config == {"hidden": 8, "feedback": "label", "pretrained": "toy"}
    assert learner.meta_trained_on == ("mnist",)
    for a, b in zip(jax.tree.leaves(learner.meta_params), jax.tree.leaves(shipped), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert learner.fixed_spec == TaskSpec((49,), 10)
    # an explicit option wins over the card's
    assert agents.make("meta_rnn", pretrained="toy", feedback="error").config["feedback"] == "error"


@pytest.mark.parametrize("name", ["transformer", "fast_weights", "hebbian", "meta_rnn"])
def test_unknown_set_is_one_line_listing_what_exists(shipped, name):
    with pytest.raises(pretrained.PretrainedNotFound) as info:
        agents.make(name, pretrained="imagenet")
    message = str(info.value)
    assert "\n" not in message and "'imagenet'" in message
    if name == "meta_rnn":
        assert message.endswith("shipped for meta_rnn: toy")
    else:
        assert "none are shipped for it yet" in message
        assert f"vsml-bench train --learner {name}" in message


def test_vsml_set_lists_its_names_and_matches_the_factory():
    with pytest.raises(pretrained.PretrainedNotFound, match=r"shipped for vsml: .*mnist"):
        agents.make("vsml", pretrained="imagenet")
    via_registry = agents.make("vsml", pretrained="mnist")
    direct = vsml(pretrained="mnist")
    assert via_registry.config == direct.config and via_registry.config["pretrained"] == "mnist"
    assert harness.meta_params_sha256(via_registry.meta_params) == harness.meta_params_sha256(
        direct.meta_params
    )
    assert via_registry.meta_trained_on == direct.meta_trained_on == ("mnist",)


def test_pretrained_on_a_learner_without_meta_params_is_a_user_error():
    with pytest.raises(registry.NoMetaParamsError, match="'sgd' has no meta-parameters"):
        agents.make("sgd", pretrained="mnist")


def test_user_factories_with_their_own_pretrained_keep_it(monkeypatch):
    seen = {}

    def factory(pretrained=None):
        seen["pretrained"] = pretrained
        return agents.make("chance")

    monkeypatch.setitem(registry._registry, "own", registry._Entry(factory, "", "user"))
    agents.make("own", pretrained="anything")
    assert seen == {"pretrained": "anything"}


# --- adaptation ----------------------------------------------------------------------------


def _fixed(name: str, spec: TaskSpec) -> Learner:
    learner = agents.make(name, **SMALL.get(name, {}))
    return dataclasses.replace(learner, meta_params=learner.meta_init(jax.random.key(0), spec))


@pytest.mark.slow
def test_fixed_size_learners_declare_their_spec_and_the_others_do_not():
    for name in FIXED_SIZE:
        assert _fixed(name, TaskSpec((49,), 7)).fixed_spec == TaskSpec((49,), 7), name
    for name in ("vsml", "hebbian", "sgd", "nearest_mean"):
        assert agents.make(name).task_spec_of is None, name


def test_plans():
    _, digits = envs.make("vsml_bench/OnlineDigits-v0", stream_length=5)
    _, iris = envs.make("vsml_bench/OnlineIris-v0", stream_length=5)
    _, projected = envs.make("vsml_bench/OnlineDigits-v0", stream_length=5, projection=True)
    image = TaskSpec((64,), 10)
    assert adaptation.plan(digits, image, TaskSpec((64,), 10)) is None
    resize = adaptation.plan(digits, image, TaskSpec((16,), 10))
    assert (resize.inputs, resize.image_size, resize.grayscale) == ("resize", 4, False)
    assert resize.to_dict()["task_input_shape"] == [8, 8, 1]
    assert adaptation.plan(digits, image, TaskSpec((20,), 10)).inputs == "projection"
    assert adaptation.plan(projected, image, TaskSpec((16,), 10)).inputs == "projection"
    tabular = adaptation.plan(iris, TaskSpec((4,), 3), TaskSpec((16,), 10), seed=3)
    assert tabular.to_dict()["classes"] == "first 3 of 10 outputs"
    assert tabular.to_dict()["seed"] == 3
    rgb = dataclasses.replace(digits, example_shape=(4, 4, 3))
    grey = adaptation.plan(rgb, TaskSpec((48,), 10), TaskSpec((4,), 10))
    assert (grey.inputs, grey.image_size, grey.grayscale) == ("resize", 2, True)
    with pytest.raises(adaptation.AdaptationError, match=r"10 classes .* 5 outputs"):
        adaptation.plan(digits, image, TaskSpec((64,), 5))


@pytest.mark.slow
def test_resize_feeds_what_image_size_would_have():
    """Adapting 8x8 digits to 4x4 meta-parameters = running the task built with image_size=4."""
    learner = _fixed("meta_rnn", TaskSpec((16,), 10))
    _, full = envs.make("vsml_bench/OnlineDigits-v0", stream_length=12)
    _, small = envs.make("vsml_bench/OnlineDigits-v0", stream_length=12, image_size=4)
    key = jax.random.key(5)
    adapted = envs.rollout(full, learner, learner.meta_params, key, 3)
    native = envs.rollout(small, learner, learner.meta_params, key, 3)
    np.testing.assert_array_equal(np.asarray(adapted.labels), np.asarray(native.labels))
    np.testing.assert_allclose(
        np.asarray(adapted.logits), np.asarray(native.logits), rtol=1e-4, atol=1e-5
    )


def test_projection_is_the_seeded_glorot_matrix():
    plan = adaptation.plan(
        envs.make("vsml_bench/OnlineIris-v0", stream_length=5)[1],
        TaskSpec((4,), 3),
        TaskSpec((6,), 3),
        seed=7,
    )
    x = jnp.arange(4.0)
    w = transforms.glorot_uniform(jax.random.key(7), 4, 6)
    np.testing.assert_allclose(np.asarray(plan.map_inputs(x)), np.asarray(x @ w), rtol=1e-6)
    limit = np.sqrt(6 / (4 + 6))
    assert np.abs(np.asarray(w)).max() <= limit
    other = dataclasses.replace(plan, seed=8)
    assert not np.allclose(np.asarray(other.map_inputs(x)), np.asarray(plan.map_inputs(x)))


def test_fewer_classes_use_the_first_outputs_and_map_no_label():
    seen = []

    def step(meta_params, state, obs):
        seen.append(obs)
        return state, jnp.arange(10.0)

    inner = Learner("probe", lambda k, s: {}, lambda m, k, s: (), step)
    plan = adaptation.Adaptation(TaskSpec((4,), 3), TaskSpec((4,), 10), "identity", (4,))
    learner = adaptation.adapt(inner, plan)
    _, logits = learner.step({}, (), {"x": jnp.ones(4), "prev_label": jnp.int32(3)})
    np.testing.assert_array_equal(np.asarray(logits), [0.0, 1.0, 2.0])
    assert int(seen[-1]["prev_label"]) == 10  # the task's "none" is the learner's "none"
    learner.step({}, (), {"x": jnp.ones(4), "prev_label": jnp.int32(2)})
    assert int(seen[-1]["prev_label"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXED_SIZE)
def test_rollout_adapts_every_fixed_size_learner(name):
    learner = _fixed(name, TaskSpec((16,), 10))
    _, iris = envs.make("vsml_bench/OnlineIris-v0", stream_length=8)
    out = envs.rollout(iris, learner, learner.meta_params, jax.random.key(0), 2)
    assert out.logits.shape == (2, 8, 3) and np.isfinite(np.asarray(out.logits)).all()
    # the seed is part of the transform
    again = envs.rollout(iris, learner, learner.meta_params, jax.random.key(0), 2)
    other = envs.rollout(
        iris, learner, learner.meta_params, jax.random.key(0), 2, adaptation_seed=1
    )
    np.testing.assert_array_equal(np.asarray(out.logits), np.asarray(again.logits))
    assert not np.allclose(np.asarray(out.logits), np.asarray(other.logits))


@pytest.mark.slow
def test_harness_records_the_adaptation_and_size_agnostic_learners_run_unchanged(tmp_path):
    suite = suites.get_suite("offline-v0").subset(["digits", "iris"]).resized(2, 10)
    learner = _fixed("meta_rnn", TaskSpec((16,), 10))
    out = tmp_path / "r.json"
    doc = harness.evaluate(learner, suite, out, progress=False)
    by_id = {t["task_id"]: t for t in doc["tasks"]}
    assert by_id["digits"]["adaptation"]["inputs"] == "resize"
    assert by_id["digits"]["adaptation"]["image_size"] == 4
    assert by_id["iris"]["adaptation"]["inputs"] == "projection"
    assert by_id["iris"]["adaptation"]["learner_classes"] == 10
    assert schema.read_results(out)["tasks"][1]["adaptation"] == by_id["iris"]["adaptation"]
    # A resumed run keeps the record of the tasks it had finished.
    done = harness._load_partial(out, {"suite": doc["suite"], "learner": doc["learner"]})
    assert done["iris"]["adaptation"] == by_id["iris"]["adaptation"]
    doc_plain = harness.evaluate(agents.make("hebbian"), suite, None, progress=False)
    assert all("adaptation" not in t for t in doc_plain["tasks"])
    too_many = suites.get_suite("offline-v0").subset(["digits"]).resized(2, 10)
    # More classes than outputs: recorded as not applicable, not a crash of the whole run.
    doc = harness.evaluate(_fixed("meta_rnn", TaskSpec((16,), 5)), too_many, None, progress=False)
    assert doc["tasks"][0]["status"] == "not run: learner supports at most 5 classes"
