"""Meta-trained VSML against tuned online SGD / Adam on the same streams (the pretrained check).

    VSML_BENCH_DATA=/path/to/data vsml-bench compare \
        --env vsml_bench/OnlineFashionMNIST-v0 --split test --streams 256 --length 100

Every learner runs on the identical ``n_streams`` streams (same key: same tasks, label
permutations and example order). SGD and Adam get every learning rate of a grid (the sweep of
:mod:`vsml_bench.agents.baselines.tune`) and the best one *on these very streams* is reported,
which favours the baselines. Reported per learner (``tune.stream_scores``): accuracy at the last
example of the stream (position T, over streams, with its binomial standard error), over the
last 10 examples, and the mean online accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from vsml_bench.agents.baselines.tune import GRIDS, best, rollout_correct, stream_scores, sweep
from vsml_bench.errors import UserError


def compare(
    vsml_meta_params: Any,
    vsml_config: dict[str, Any],
    *,
    env_id: str = "vsml_bench/OnlineFashionMNIST-v0",
    split: str = "test",
    n_streams: int = 256,
    length: int = 100,
    seed: int = 0,
    hidden: tuple[int, ...] = (0,),
    learners: tuple[str, ...] = ("vsml", "sgd", "adam"),
) -> dict[str, Any]:
    """Scores of VSML and of the best-rate SGD / Adam (per hidden size) on the same streams."""
    from vsml_bench import agents, envs

    _, env_params = envs.make(env_id, split=split, stream_length=length)
    key = jax.random.key(seed)
    results: dict[str, Any] = {
        "env_id": env_id,
        "split": split,
        "n_streams": n_streams,
        "stream_length": length,
        "seed": seed,
    }
    if "vsml" in learners:
        t0 = time.perf_counter()
        vsml = agents.make("vsml", **vsml_config)
        meta_params = jax.tree.map(jnp.asarray, vsml_meta_params)
        correct = rollout_correct(vsml, meta_params, env_params, key, n_streams)
        results["vsml"] = stream_scores(correct)
        results["vsml"]["wall_s"] = time.perf_counter() - t0
    for name, rates in GRIDS.items():
        if name not in learners:
            continue
        for h in hidden:
            rows = sweep(name, rates, env_params, key, n_streams, hidden=h)
            top = best(rows)
            label = name if h == 0 else f"{name}_mlp{h}"
            results[label] = {
                **{k: v for k, v in top.items() if k != "learning_rate"},
                "best_learning_rate": top["learning_rate"],
                "grid": {str(row["learning_rate"]): row["acc_at_last"] for row in rows},
            }
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--meta-params", help="a msgpack of VSML meta-parameters (default: shipped mnist)"
    )
    parser.add_argument("--env", default="vsml_bench/OnlineFashionMNIST-v0", help="environment ID")
    parser.add_argument("--split", default="test", help="dataset split")
    parser.add_argument("--streams", type=int, default=256, help="streams per learner and rate")
    parser.add_argument("--length", type=int, default=100, help="examples per stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[0], help="baseline hidden sizes")
    parser.add_argument("--learners", nargs="+", default=["vsml", "sgd", "adam"])
    parser.add_argument("--json", help="also write the results here")


def run(args: argparse.Namespace) -> int:
    """Print the scores as JSON (and write them to ``--json``)."""
    from vsml_bench.agents import pretrained

    meta_params, config = None, {}
    if "vsml" in args.learners and args.meta_params:
        try:
            data = Path(args.meta_params).read_bytes()
        except OSError as error:
            raise UserError(f"cannot read --meta-params {args.meta_params}: {error}") from None
        meta_params = pretrained.read_meta_params(data, f"--meta-params {args.meta_params}")
    elif "vsml" in args.learners:
        meta_params, card = pretrained.load("mnist")
        config = dict(card.get("config", {}))
    results = compare(
        meta_params,
        config,
        env_id=args.env,
        split=args.split,
        n_streams=args.streams,
        length=args.length,
        seed=args.seed,
        hidden=tuple(args.hidden),
        learners=tuple(args.learners),
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        from vsml_bench.io import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":  # `python -m vsml_bench.agents.meta.compare`: `vsml-bench compare`
    from vsml_bench.cli import main

    sys.exit(main(["compare", *sys.argv[1:]]))
