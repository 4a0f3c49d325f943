"""Learning-algorithm cloning: the targets, the teacher, the VSML run of the objective, the
experiment command and the shipped ``clone-backprop`` set."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench import agents
from vsml_bench.agents import pretrained, vsml
from vsml_bench.agents.meta import clone
from vsml_bench.errors import UserError
from vsml_bench.protocol import TaskSpec

# Round numbers: tanh(x) = 0.5 and -0.8, rho = eta_b / eta = 0.1.
RULE = clone.BackpropRule(
    weight_scale=2.0, error_scale=3.0, learning_rate=0.1, bias_learning_rate=0.01
)
X = np.array([math.atanh(0.5), math.atanh(-0.8)])
DELTA = np.array([0.1, -0.2])
S = np.array([[0.3, -0.4], [1.0, 0.5]])
U = np.array([[0.0, 3.0], [6.0, 0.0]])


def test_targets_of_a_tanh_layer_by_hand():
    got = {k: np.asarray(v) for k, v in clone.backprop_targets(RULE, X, DELTA, S, U).items()}
    # forward  κ (tanh(x_a) s_ab + ρ u_ab):  2 (0.5*0.3 + 0),  2 (0.5*-0.4 + 0.3), ...
    np.testing.assert_allclose(got["forward"], [[0.3, 0.2], [-0.4, -0.8]], atol=1e-6)
    # backward κ_δ δ_b s_ab (1 - tanh²): 3*0.1*0.3*0.75, 3*-0.2*-0.4*0.75, 3*0.1*1*0.36, ...
    np.testing.assert_allclose(got["backward"], [[0.0675, 0.18], [0.108, -0.108]], atol=1e-6)
    # Δs = -η tanh(x_a) δ_b;  Δu = -η δ_b
    np.testing.assert_allclose(got["dw"], [[-0.005, 0.01], [0.008, -0.016]], atol=1e-7)
    np.testing.assert_allclose(got["du"], [[-0.01, 0.02], [-0.01, 0.02]], atol=1e-7)


def _teacher_update(hidden, sizes, key):
    """Two steps of the teacher: its weights before and after learning from example 0."""
    learner = clone.backprop_learner(RULE, hidden=hidden)
    spec = TaskSpec((sizes[0],), sizes[-1])
    state = learner.init({}, key, spec)
    kx, ks = jax.random.split(jax.random.fold_in(key, 1))
    x0, x1 = jax.random.normal(kx, (2, sizes[0]))
    state = dict(state, b=tuple(0.3 * jax.random.normal(ks, b.shape) for b in state["b"]))
    before, _ = learner.step({}, state, {"x": x0, "prev_label": jnp.int32(sizes[-1])})
    after, _ = learner.step({}, before, {"x": x1, "prev_label": jnp.int32(1)})
    return x0, before, after


# The deep network covers the shallow one (its output layer); shallow alone is slow-only.
@pytest.mark.parametrize("hidden", [pytest.param(None, marks=pytest.mark.slow), 3])
def test_the_teacher_is_sgd_on_its_network(hidden):
    sizes = [4, *([hidden] if hidden else []), 3]
    x0, before, after = _teacher_update(hidden, sizes, jax.random.key(0))
    rho = RULE.bias_readout

    def loss(weights, biases):
        y = x0
        for w, b in zip(weights, biases, strict=True):
            y = RULE.weight_scale * (jnp.mean(jnp.tanh(y)[:, None] * w, axis=0) + b)
        return -jax.nn.log_softmax(y)[1]

    biases = tuple(rho * u for u in before["b"])
    grad_w, grad_b = jax.grad(loss, argnums=(0, 1))(before["w"], biases)
    rates = clone.effective_sgd_rates(RULE, sizes)
    for layer, (eta_s, eta_b) in enumerate(rates):
        np.testing.assert_allclose(
            after["w"][layer] - before["w"][layer], -eta_s * grad_w[layer], rtol=2e-3, atol=1e-9
        )
        np.testing.assert_allclose(
            rho * (after["b"][layer] - before["b"][layer]),
            -eta_b * grad_b[layer],
            rtol=2e-3,
            atol=1e-9,
        )


@pytest.mark.parametrize("hidden", [pytest.param(None, marks=pytest.mark.slow), 5])
def test_the_objective_runs_the_learner_it_clones(hidden):
    """sweep + forward, fed the error the learner computes, are the learner's step exactly."""
    config = clone.clone_config(hidden)
    theta = vsml.meta_init(config, jax.random.key(0))
    spec = TaskSpec((7,), 3)
    step = jax.jit(vsml.make_step(config, spec))
    state = vsml.init_state(config, theta, jax.random.key(1), spec)
    layers = clone.layer_dicts(state)
    xs = jax.random.normal(jax.random.key(2), (4, 7))
    labels = [0, 2, 1, 1]
    rule = clone.BackpropRule()
    sweep = jax.jit(lambda theta, layers, error: clone.sweep(config, rule, theta, layers, error))
    forward = jax.jit(lambda theta, layers, x: clone.forward(config, rule, theta, layers, x))
    logits = None
    for t in range(4):
        prev = 3 if t == 0 else labels[t - 1]
        state, expected = step(theta, state, {"x": xs[t], "prev_label": jnp.int32(prev)})
        if t > 0:
            error = jax.nn.softmax(logits) - jax.nn.one_hot(prev, 3)
            layers, _ = sweep(theta, layers, error)
        layers, out, _ = forward(theta, layers, xs[t])
        logits = 100.0 * jnp.tanh(out[:, 0] / 100.0)
        np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
        for ours, theirs in zip(layers, clone.layer_dicts(state), strict=True):
            np.testing.assert_allclose(ours["c"], theirs["c"], rtol=1e-6, atol=1e-6)


def test_a_perfect_clone_would_score_zero_and_a_frozen_cell_does_not():
    """The loss terms read the right state components: a cell that changes nothing and emits
    nothing pays for exactly the targets it missed."""
    rule = clone.BackpropRule()
    task = clone.CloneTask(input_size=3, n_classes=2, stream_length=2, spread_fraction=1.0)
    config = clone.clone_config()
    theta = vsml.meta_init(config, jax.random.key(0))
    # Zero heads and gates that neither forget nor write: messages 0, state frozen.
    frozen = jax.tree.map(jnp.zeros_like, theta)
    for name in ("sub_rnn", "sub_rnn_1"):
        lstm = frozen[name]["custom_lstm"]["linear"]
        s = config.state_size
        bias = jnp.zeros(4 * s).at[:s].set(-1e4).at[2 * s : 3 * s].set(1e4)  # i, g, f, o
        frozen[name]["custom_lstm"]["linear"] = {**lstm, "b": bias}
    key = jax.random.key(3)
    terms = clone.clone_loss_terms(
        task, rule, config, clone.trainable_meta_params(frozen, rule), key
    )
    for name in ("keep_w", "keep_b", "forward_rest", "backward_rest"):
        assert float(terms[name]) < 1e-10, name
    # The first example has no sweep, the second one's targets were missed in full.
    init_key, spread_key, stream_key = jax.random.split(key, 3)
    layers = clone.layer_dicts(vsml.init_state(config, theta, init_key, TaskSpec((3,), 2)))
    layers = clone._spread_init(layers, spread_key, task, rule, config.state_size)
    xs, errors = clone.random_stream(task, stream_key)
    c = layers[0]["c"]
    want = clone.backprop_targets(rule, xs[0], errors[0], c[..., 0], c[..., 8])
    np.testing.assert_allclose(
        terms["dw"], np.mean((want["dw"] / rule.learning_rate) ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(
        terms["db"], np.mean((want["du"] / rule.learning_rate) ** 2), rtol=1e-5
    )
    forwards = [
        clone.backprop_targets(rule, x, errors[0], c[..., 0], c[..., 8])["forward"] for x in xs
    ]
    expected = np.mean([np.mean((f / rule.weight_scale) ** 2) for f in forwards])
    np.testing.assert_allclose(terms["forward"], expected, rtol=1e-5)


def _exact_sweep(keep_positive: bool, keep_negative: bool):
    """A stand-in for :func:`clone.sweep` whose weight components change by backprop's update,
    only for the input signs asked for (what a clone stuck on the plateau does for ``x < 0``)."""

    def fake(config, rule, meta_params, layers, error):
        x = layers[0]["fwd_in"][:, 0]
        dw = clone.backprop_targets(rule, x, error, layers[0]["c"][..., 0], layers[0]["c"][..., 0])
        keep = jnp.where(x > 0, keep_positive, keep_negative)[:, None]
        c = layers[0]["c"].at[..., rule.weight_index].add(keep * dw["dw"])
        return ({**layers[0], "c": c},), {}

    return fake


@pytest.mark.parametrize(
    "positive, negative",
    # The two mixed cases tell the signs apart; all and none are slow-only.
    [
        pytest.param(True, True, marks=pytest.mark.slow),
        (False, True),
        (True, False),
        pytest.param(False, False, marks=pytest.mark.slow),
    ],
)
def test_update_slopes_see_which_signs_of_the_input_a_clone_updates(
    monkeypatch, positive, negative
):
    monkeypatch.setattr(clone, "sweep", _exact_sweep(positive, negative))
    theta = vsml.meta_init(clone.clone_config(), jax.random.key(0))
    slopes = clone.update_slopes(theta, clone.BackpropRule(), jax.random.key(1), n_layers=4)
    assert slopes["positive"] == pytest.approx(float(positive), abs=1e-4)
    assert slopes["negative"] == pytest.approx(float(negative), abs=1e-4)


def test_the_shipped_clone_applies_the_update_for_the_input_signs_its_card_implies():
    """The measurement behind phase 0 (clone module docstring): a clone made without it applies
    most of backprop's update where x < 0 and none where x > 0; one made with it (or fine-tuned
    from one that was), both."""
    meta_params, card = pretrained.load("clone-backprop")
    slopes = clone.update_slopes(meta_params, clone.BackpropRule(), jax.random.key(0))
    assert slopes["negative"] > 0.5
    record = card.get("clone") or {}
    if (record.get("prefit") or {}).get("steps") or record.get("init_from"):
        assert slopes["positive"] > 0.5
    else:
        assert abs(slopes["positive"]) < 0.2


def test_prefit_trains_on_short_shallow_streams_only():
    rule = clone.BackpropRule()
    deep = clone.CloneTask(input_size=3, n_classes=2, hidden=2, stream_length=9)
    shallow = dataclasses.replace(deep, hidden=None)
    theta = clone.trainable_meta_params(
        vsml.meta_init(clone.clone_config(), jax.random.key(0)), rule
    )
    settings = clone.Prefit(steps=4, n_tasks=2, learning_rate=0.01)
    trained, losses = clone.prefit(theta, (shallow, deep), rule, jax.random.key(1), settings)
    assert jax.tree.structure(trained) == jax.tree.structure(theta)
    assert any(
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(theta), strict=True)
    )
    assert np.isfinite(losses["loss_first"]) and np.isfinite(losses["loss_last"])
    with pytest.raises(ValueError, match="at least one shallow task family"):
        clone.prefit(theta, (deep,), rule, jax.random.key(1), settings)


@pytest.mark.parametrize("resume, prefit_steps", [(False, 5), (True, 5), (False, 0)])
def test_a_fresh_cloning_run_starts_from_phase_0(tmp_path, monkeypatch, resume, prefit_steps):
    from vsml_bench.agents.meta import loop
    from vsml_bench.experiments import clone_backprop

    calls, trained = [], {}
    marker = {"sub_rnn": {"marker": jnp.ones(())}}

    def fake_prefit(trainable, tasks, rule, key, settings, vsml_options=None):
        calls.append(settings)
        return marker, {"loss_first": 2.0, "loss_last": 1.0}

    def fake_train(learner, spec, objective, config, out_dir, **kwargs):
        trained.update(kwargs)
        return {}

    monkeypatch.setattr(clone, "prefit", fake_prefit)
    monkeypatch.setattr(loop, "train", fake_train)
    run_dir = tmp_path / "run"
    if resume:
        run_dir.mkdir()
        (run_dir / "checkpoint.msgpack").write_bytes(b"")
    config = dataclasses.replace(clone_backprop.CPU, prefit_steps=prefit_steps)
    clone_backprop.meta_train(config, run_dir, resume=resume, progress=False)
    record = trained["run_info"]["clone"]["prefit"]
    if resume or not prefit_steps:
        assert calls == [] and trained["initial_meta_params"] is None
        assert record == {"steps": 0}
    else:
        assert [c.steps for c in calls] == [prefit_steps]
        assert trained["initial_meta_params"] is marker
        assert record["steps"] == prefit_steps and record["loss_last"] == 1.0


def test_a_fine_tuning_run_starts_from_the_deployed_clone_without_phase_0(tmp_path, monkeypatch):
    from vsml_bench.agents.meta import loop
    from vsml_bench.experiments import clone_backprop

    trained = {}
    monkeypatch.setattr(clone, "prefit", lambda *a, **k: pytest.fail("phase 0 ran"))
    monkeypatch.setattr(loop, "train", lambda *a, **kwargs: trained.update(kwargs) or {})
    shipped = Path(pretrained.__file__).parent / "vsml_clone-backprop.msgpack"
    config = dataclasses.replace(clone_backprop.CPU, init_from=str(shipped), forward_weight=10.0)
    clone_backprop.meta_train(config, tmp_path / "run", resume=False, progress=False)
    deployed, _ = pretrained.load("clone-backprop")
    start = clone.deployed_meta_params(trained["initial_meta_params"], clone.BackpropRule())
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(deployed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    record = trained["run_info"]["clone"]
    assert record["weights"] == {"forward": 10.0} and record["prefit"] == {"steps": 0}
    assert record["init_from"]["sha256"] == pretrained.load("clone-backprop")[1]["sha256"]


@pytest.mark.parametrize(
    "content, message",
    [(None, "cannot read --init-from"), (b"not msgpack", "is not a clone-backprop")],
)
def test_init_from_errors_are_one_sentence(tmp_path, content, message):
    from vsml_bench.experiments import clone_backprop

    path = tmp_path / "clone.msgpack"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        clone_backprop.deployed_start(str(path))


def test_the_loss_weighs_the_named_terms_only():
    terms = {name: jnp.float32(i + 1) for i, name in enumerate(clone._TERMS)}
    plain = float(clone.weighted_loss(terms))
    assert plain == sum(range(1, len(clone._TERMS) + 1))
    assert float(clone.weighted_loss(terms, {"forward": 10.0})) == plain + 9 * terms["forward"]
    with pytest.raises(ValueError, match="no cloning loss term named"):
        clone.weighted_loss(terms, {"fwd": 2.0})


def test_phase_0_is_not_spent_on_a_folder_that_cannot_take_the_run(tmp_path, monkeypatch):
    from vsml_bench.agents.meta import loop
    from vsml_bench.experiments import clone_backprop

    monkeypatch.setattr(clone, "prefit", lambda *a, **k: pytest.fail("phase 0 ran"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(loop.RunError, match="already holds a run"):
        clone_backprop.meta_train(clone_backprop.CPU, tmp_path / "run", False, False)


def test_deployed_and_trainable_parameters_invert_each_other():
    rule = clone.BackpropRule(weight_scale=128.0, error_scale=4.0)
    theta = vsml.meta_init(clone.clone_config(), jax.random.key(0))
    deployed = clone.deployed_meta_params(theta, rule)
    np.testing.assert_allclose(
        deployed["sub_rnn"]["linear"]["w"], 128.0 * theta["sub_rnn"]["linear"]["w"]
    )
    np.testing.assert_allclose(
        deployed["sub_rnn_1"]["linear_1"]["b"], 4.0 * theta["sub_rnn_1"]["linear_1"]["b"]
    )
    back = clone.trainable_meta_params(deployed, rule)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(theta), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_experiment_config_errors_are_one_sentence():
    from vsml_bench.experiments import clone_backprop

    parser = __import__("argparse").ArgumentParser()
    clone_backprop.add_arguments(parser)
    args = parser.parse_args(["--test-length", "100", "--late-window", "500"])
    with pytest.raises(UserError, match="--late-window 500 is longer than the streams"):
        clone_backprop.config_from_args(args)
    paper = clone_backprop.config_from_args(parser.parse_args(["--paper", "--steps", "7"]))
    assert paper.steps == 7 and paper.n_tasks == clone_backprop.PAPER.n_tasks
    with pytest.raises(UserError, match="--forward-weight must be positive, not 0"):
        clone_backprop.config_from_args(parser.parse_args(["--forward-weight", "0"]))
    with pytest.raises(UserError, match="--prefit-steps must be 0 or more, not -1"):
        clone_backprop.config_from_args(parser.parse_args(["--prefit-steps", "-1"]))
    assert (
        clone_backprop.config_from_args(parser.parse_args(["--prefit-steps", "0"])).prefit_steps
        == 0
    )


def test_the_shipped_clone_loads_through_every_door():
    from vsml_bench.leaderboard.harness import build_learner

    assert "clone-backprop" in pretrained.names("vsml")
    meta_params, card = pretrained.load("clone-backprop")
    assert set(meta_params) == {"sub_rnn", "sub_rnn_1"}
    assert card["meta_trained_on"] == [] and card["learner"] == "vsml"
    assert card["clone"]["rule"] == clone.BackpropRule().to_dict()
    learner = agents.make("vsml", pretrained="clone-backprop")
    assert learner.config["backward_pass"] and learner.config["separate_backward_rnn"]
    assert learner.config["output_index"] == 0 and learner.meta_trained_on == ()
    spec_learner = build_learner("vsml:clone-backprop")
    for a, b in zip(
        jax.tree.leaves(spec_learner.meta_params), jax.tree.leaves(meta_params), strict=True
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_shipped_clone_learns_forward_only_on_digits():
    from vsml_bench import envs

    learner = agents.make("vsml", pretrained="clone-backprop")
    _, params = envs.make("vsml_bench/OnlineDigits-v0", stream_length=300)
    out = jax.jit(lambda p: envs.rollout(p, learner, learner.meta_params, jax.random.key(0), 8))(
        params
    )
    # Chance is 10%; a rule that learns does much better over the last 100 examples.
    assert float(np.asarray(out.correct)[:, -100:].mean()) > 0.5


@pytest.mark.slow
def test_phase_0_of_the_cpu_run_clones_the_update_for_both_input_signs():
    """About 2 CPU-minutes: the CPU config's phase 0 leaves the plateau where the update is
    cloned for x < 0 only (a fresh θ applies neither half)."""
    from vsml_bench.experiments import clone_backprop

    rule = clone.BackpropRule()
    key = jax.random.key(5)
    fresh = clone_backprop.cloning_learner().meta_init(jax.random.key(0), None)
    before = clone.update_slopes(clone.deployed_meta_params(fresh, rule), rule, key)
    assert abs(before["negative"]) < 0.3 and abs(before["positive"]) < 0.3
    theta, record = clone_backprop.prefit_start(clone_backprop.CPU, log=lambda line: None)
    after = clone.update_slopes(clone.deployed_meta_params(theta, rule), rule, key)
    assert after["negative"] > 0.8 and after["positive"] > 0.8, after
    assert record["loss_last"] < 0.1 * record["loss_first"]


@pytest.mark.slow
def test_cloning_loss_decreases_on_a_tiny_config():
    import optax

    from vsml_bench.agents.meta.bptt import bptt_gradient

    rule = clone.BackpropRule()
    tasks = (clone.CloneTask(input_size=3, n_classes=2, stream_length=4),)
    objective = clone.clone_objective(tasks, rule)
    theta = clone.trainable_meta_params(
        vsml.meta_init(clone.clone_config(), jax.random.key(0)), rule
    )
    optimizer = optax.adam(0.01)
    opt_state = optimizer.init(theta)
    held_out = jax.jit(
        lambda p: clone.held_out_terms(tasks, rule, p, jax.random.key(7), 16)["loss"]
    )

    @jax.jit
    def step(theta, opt_state, key):
        _, grad = bptt_gradient(objective, theta, key, n_tasks=8)
        updates, opt_state = optimizer.update(grad, opt_state)
        return optax.apply_updates(theta, updates), opt_state

    first = float(held_out(theta))
    for t in range(40):
        theta, opt_state = step(theta, opt_state, jax.random.key(100 + t))
    assert float(held_out(theta)) < 0.7 * first


@pytest.mark.slow
def test_the_experiment_runs_end_to_end_on_a_tiny_config(tmp_path, monkeypatch):
    from vsml_bench.cli import main
    from vsml_bench.leaderboard.harness import build_learner

    out = tmp_path / "clone"
    tiny = [
        "experiment",
        "clone-backprop",
        "--out",
        str(out),
        "--steps",
        "2",
        "--n-tasks",
        "2",
        "--stream-length",
        "3",
        "--input-size",
        "3",
        "--n-classes",
        "2",
        "--hidden",
        "2",
        "--eval-every",
        "1",
        "--datasets",
        "digits",
        "--split",
        "train",
        "--test-streams",
        "2",
        "--test-length",
        "30",
        "--late-window",
        "10",
        "--deep-hidden",
        "2",
        "--deep-streams",
        "2",
        "--prefit-steps",
        "3",  # the CPU config's 1,500 are minutes
        "--no-progress",
    ]
    monkeypatch.setattr("sys.argv", ["vsml-bench", *tiny])  # the command the run records
    assert main(tiny) == 0
    document = json.loads((out / "clone_backprop.json").read_text())
    assert document["cloning"]["steps"] == 2
    assert document["cloning"]["prefit"]["steps"] == 3
    assert set(document["cloning"]["update_slopes"]) == {"negative", "positive"}
    assert {(s["network"], s["learner"]) for s in document["scores"]} == {
        (n, name)
        for n in ("shallow", "deep (2 hidden)")
        for name in ("VSML clone, forward-only", "online SGD (the cloned rule)")
    }
    for row in document["runs"]:
        assert row["streams"] == 2 and row["length"] == 30 and len(row["correct_bits"]) == 2
    section = (out / "section.md").read_text()
    assert "| digits | shallow | VSML clone, forward-only |" in section
    assert "vsml-bench experiment clone-backprop" in section
    assert "Phase 0: 3 steps on streams of 2 examples" in section
    assert "for inputs x < 0" in section
    assert (out / "clone_backprop.png").stat().st_size > 0
    card = json.loads((out / "vsml_clone-backprop.json").read_text())
    assert card["steps_trained"] == 2 and card["meta_trained_on"] == []
    learner = build_learner(f"vsml:{out / 'vsml_clone-backprop.msgpack'}")
    assert learner.config["backward_pass"]
    # The same folder again, without --resume: one sentence, nothing overwritten.
    assert main(tiny) != 0
