"""Why a cloned VSML falls short of the rule it cloned: where its update and its forward pass differ.

The clone and its teacher (:func:`clone.backprop_learner`, same initial weights) run on the
same MNIST test streams. On the clone's own trajectory, every step is compared with what
backprop would do from the clone's *own* state:

* the weight update: least-squares slope of the change of each cell's weight component on
  backprop's ``-η tanh(x) δ``, separately for inked pixels (``x > 0``) and the background
  (``x ≤ 0``, the normalised 0 pixel is -0.42): 1 is the rule;
* the forward pass: the accuracy of the clone's prediction, and of the exact forward pass
  of the clone's stored weights and biases (the teacher's equations on them): the gap between
  the two is what the cloned forward pass costs, the gap from the latter to the teacher what
  the cloned update costs;
* the state: the largest cell-state component (cloning streams are 16 examples long);
* the forward message's class-mean (a per-cell offset, ``κ ·`` the mean over the fan-in).

Deep network (``--hidden``): the hidden layer's inputs (the first layer's forward message),
those of the exact forward pass of the same weights, and the accuracies.

Usage (from the repository root)::

    python docs/results/clone-backprop/diagnose.py --out docs/results/clone-backprop/diagnosis.json
    python docs/results/clone-backprop/diagnose.py --params RUN/vsml_clone-backprop.msgpack ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vsml_bench import envs
from vsml_bench.agents import pretrained, vsml
from vsml_bench.agents.meta import clone
from vsml_bench.envs.rollouts import stream_keys
from vsml_bench.experiments import lineup
from vsml_bench.protocol import TaskSpec


def streams(dataset: str, length: int, n: int, seed: int):
    """``(xs [n, T, D], labels [n, T], learner keys [n])`` of the experiment's streams."""
    env_params = envs.make(lineup.online_env_id(dataset), split="test", stream_length=length)[1]
    env = envs.env_for(env_params)
    xs, labels, keys = [], [], []
    for i in range(n):
        env_key, learner_key = stream_keys(jax.random.key(seed), i)
        _, state = env.reset(env_key, env_params)
        xs.append(env.stream_inputs(state, env_params))
        labels.append(state.labels)
        keys.append(learner_key)
    return jnp.stack(xs), jnp.stack(labels), jnp.stack(keys), env_params.n_classes


def clone_trajectory(meta_params, rule, hidden, x_seq, labels, key, n_classes):
    """Per step of one stream: the sums behind the slopes, the accuracies and state sizes."""
    config = clone.clone_config(hidden)
    spec = TaskSpec((x_seq.shape[1],), n_classes)
    layers = clone.layer_dicts(vsml.init_state(config, meta_params, key, spec))
    w, b = rule.weight_index, rule.bias_component(config.state_size)
    previous = jnp.concatenate([jnp.array([n_classes]), labels[:-1]])

    def step(carry, inputs):
        layers, logits, has_prev = carry
        x, label, prev_label = inputs
        error = jnp.where(
            has_prev, jax.nn.softmax(logits) - jax.nn.one_hot(prev_label, n_classes), 0.0
        )
        swept, _ = clone.sweep(config, rule, meta_params, layers, error)
        first_in = layers[0]["fwd_in"][:, 0]
        change = swept[0]["c"][..., w] - layers[0]["c"][..., w]
        # The error the first layer received in the sweep (the output error when it is the last).
        delta = swept[0]["bwd_in"][:, 0]
        target = -rule.learning_rate * jnp.tanh(first_in)[:, None] * delta[None, :]
        ink = jnp.broadcast_to((first_in > 0)[:, None], change.shape)
        sums = {
            f"{part}_{name}": jnp.where(has_prev, jnp.sum(mask * value), 0.0)
            for part, mask in (("ink", ink), ("background", ~ink))
            for name, value in (("ct", change * target), ("tt", target * target))
        }
        layers = jax.tree.map(lambda n, o: jnp.where(has_prev, n, o), swept, layers)
        # The exact forward pass of the weights and biases the clone holds now.
        exact = x
        exact_inputs = []
        for layer in layers:
            exact_inputs.append(exact)
            s, u = layer["c"][..., w], layer["c"][..., b]
            zero = jnp.zeros(s.shape[1])
            exact = jnp.mean(clone.backprop_targets(rule, exact, zero, s, u)["forward"], axis=0)
        layers, out, _ = clone.forward(config, rule, meta_params, layers, x)
        logits = 100.0 * jnp.tanh(out[:, 0] / 100.0)
        record = {
            **sums,
            "correct": jnp.argmax(logits) == label,
            "exact_forward_correct": jnp.argmax(exact) == label,
            "c_max": jnp.max(jnp.abs(layers[0]["c"])),
            "logit_class_mean": jnp.mean(out[:, 0]),
        }
        if hidden:
            hidden_in = layers[1]["fwd_in"][:, 0]
            record["hidden_input_mean"] = jnp.mean(hidden_in)
            record["hidden_input_rms"] = jnp.sqrt(jnp.mean(hidden_in**2))
            record["exact_hidden_input_rms"] = jnp.sqrt(jnp.mean(exact_inputs[1] ** 2))
        return (layers, logits, jnp.ones((), bool)), record

    start = (layers, jnp.zeros(n_classes), jnp.zeros((), bool))
    return jax.lax.scan(step, start, (x_seq, labels, previous))[1]


def teacher_correct(rule, hidden, x_seq, labels, key, n_classes):
    teacher = clone.backprop_learner(rule, hidden)
    state = teacher.init({}, key, TaskSpec((x_seq.shape[1],), n_classes))
    previous = jnp.concatenate([jnp.array([n_classes]), labels[:-1]])

    def step(state, inputs):
        x, label, prev_label = inputs
        state, logits = teacher.step({}, state, {"x": x, "prev_label": prev_label})
        return state, jnp.argmax(logits) == label

    return jax.lax.scan(step, state, (x_seq, labels, previous))[1]


def windows(length: int) -> list[tuple[int, int]]:
    quarter = length // 4
    return [(0, quarter), (quarter, 2 * quarter), (2 * quarter, length)]


def summarise(records, teacher, hidden_network: bool, length: int) -> list[dict]:
    rows = []
    for lo, hi in windows(length):

        def window(name, lo=lo, hi=hi):
            return np.asarray(records[name])[:, lo:hi]

        row = {
            "steps": [lo, hi],
            "clone_accuracy": float(window("correct").mean()),
            "exact_forward_of_clone_weights_accuracy": float(
                window("exact_forward_correct").mean()
            ),
            "teacher_accuracy": float(np.asarray(teacher)[:, lo:hi].mean()),
            "c_max": float(window("c_max").mean()),
            "logit_class_mean": float(window("logit_class_mean").mean()),
        }
        for part in ("ink", "background"):
            tt = window(f"{part}_tt").sum()
            row[f"update_slope_{part}"] = float(window(f"{part}_ct").sum() / tt) if tt else None
        if hidden_network:
            for name in ("hidden_input_mean", "hidden_input_rms", "exact_hidden_input_rms"):
                row[name] = float(window(name).mean())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", help="a clone's .msgpack (default: the shipped set)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--deep-length", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=32, help="0: no deep network")
    parser.add_argument("--seed", type=int, default=0, help="the experiment's stream seed")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args()

    if args.params:
        data = Path(args.params).read_bytes()
        meta_params, source = pretrained.read_meta_params(data), args.params
    else:
        meta_params, source = pretrained.load("clone-backprop")[0], "vsml:clone-backprop"
    rule = clone.BackpropRule()
    cpu = time.process_time()
    document = {
        "params": source,
        "dataset": args.dataset,
        "streams": args.streams,
        "update_slopes_fresh_cells": clone.update_slopes(meta_params, rule, jax.random.key(0)),
        "networks": {},
    }
    networks = [("shallow", None, args.length)]
    if args.hidden:
        networks.append((f"deep ({args.hidden} hidden)", args.hidden, args.deep_length))
    for name, hidden, length in networks:
        xs, labels, keys, n_classes = streams(args.dataset, length, args.streams, args.seed)

        def run_clone(x, y, k, hidden=hidden, n_classes=n_classes):
            return clone_trajectory(meta_params, rule, hidden, x, y, k, n_classes)

        def run_teacher(x, y, k, hidden=hidden, n_classes=n_classes):
            return teacher_correct(rule, hidden, x, y, k, n_classes)

        records = jax.jit(jax.vmap(run_clone))(xs, labels, keys)
        teacher = jax.jit(jax.vmap(run_teacher))(xs, labels, keys)
        document["networks"][name] = summarise(records, teacher, bool(hidden), length)
    document["cpu_time_s"] = time.process_time() - cpu
    text = json.dumps(document, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
