"""Example 2: the same task as pure JAX functions, and learners run on 64 streams at once.

``vsml_bench.envs.make(id, **options)`` returns the functional env and its params (gymnax
style); ``vsml_bench.envs.rollout`` runs a JAX learner over a batch of streams (``vmap`` over
streams, ``lax.scan`` over time) and returns per-step logits, labels and correctness bits.

The default runs on the embedded digits. The shipped VSML was meta-trained on MNIST only, so
digits are data it never saw; online SGD (a hand-designed learner) is the reference.

Run: ``python examples/02_functional_rollout.py`` (about 30 s, mostly compilation).

Real data (needs the dataset files, e.g. ``export VSML_BENCH_DATA=/path/to/data``; see the
README's Data section)::

    python examples/02_functional_rollout.py --env-id vsml_bench/OnlineFashionMNIST-v0 --split test
"""

from __future__ import annotations

import argparse

import jax

from vsml_bench import agents, envs
from vsml_bench.errors import UserError


def late_accuracy(env, env_params, learner, key: jax.Array, n_streams: int) -> float:
    """Accuracy on the last 10 examples of each stream, averaged over ``n_streams`` streams."""
    meta_params = learner.meta_params  # shipped meta-parameters, e.g. pretrained="mnist"
    if meta_params is None:  # hand-designed learners: meta_init returns {}
        meta_params = learner.meta_init(key, env.task_spec(env_params))
    out = envs.rollout(env_params, learner, meta_params, key, n_streams=n_streams)
    return float(out.correct[:, -10:].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="vsml_bench/OnlineDigits-v0")
    parser.add_argument("--split", default=None, help="dataset split, e.g. test")
    parser.add_argument("--streams", type=int, default=64)
    args = parser.parse_args()

    options = {"stream_length": 100}
    if args.split is not None:
        options["split"] = args.split
    try:
        env, env_params = envs.make(args.env_id, **options)
    except UserError as error:  # e.g. the dataset files are not found: say so, no traceback
        parser.error(str(error))
    key = jax.random.key(0)  # the same streams for every learner
    for name, learner in [
        ("VSML, meta-trained on MNIST", agents.make("vsml", pretrained="mnist")),
        ("online SGD, lr 0.1", agents.make("sgd", learning_rate=0.1)),
    ]:
        acc = late_accuracy(env, env_params, learner, key, args.streams)
        print(f"{name:<28} accuracy on examples 91-100: {acc:.3f}")


if __name__ == "__main__":
    main()
