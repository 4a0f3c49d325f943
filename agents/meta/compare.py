"""Meta-trained VSML against tuned online SGD / Adam on the same streams (the pretrained check).

    VSML_BENCH_DATA=/work/shared/data python -m vsml_bench.agents.meta.compare \
        --env vsml_bench/OnlineFashionMNIST-v0 --split test --streams 256 --length 100

Every learner runs on the identical ``n_streams`` streams (same key: same tasks, label
permutations and example order). SGD and Adam get every learning rate of a grid and the best
one *on these very streams* is reported, which favours the baselines. Reported per learner:
accuracy at the last example of the stream (position T, over streams, with its binomial
standard error), over the last 10 examples, and the mean online accuracy.
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
import numpy as np

from vsml_bench import xla

SGD_RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAM_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)


def stream_scores(correct: np.ndarray) -> dict[str, float]:
    """Scores of ``correct [S, T]``: accuracy at position T (± s.e.), last 10, mean online."""
    last = correct[:, -1].astype(np.float64)
    return {
        "acc_at_last": float(last.mean()),
        "acc_at_last_se": float(last.std(ddof=1) / np.sqrt(len(last))) if len(last) > 1 else 0.0,
        "acc_last10": float(correct[:, -10:].mean()),
        "acc_online": float(correct.mean()),
    }


def run_learner(learner, meta_params, env_params, key, n_streams: int) -> np.ndarray:
    from vsml_bench.envs import rollout

    fn = xla.jit(lambda mp, ep: rollout(ep, learner, mp, key, n_streams).correct)
    return np.asarray(fn(meta_params, env_params))


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
        results["vsml"] = stream_scores(run_learner(vsml, meta_params, env_params, key, n_streams))
        results["vsml"]["wall_s"] = time.perf_counter() - t0
    for name, rates in (("sgd", SGD_RATES), ("adam", ADAM_RATES)):
        if name not in learners:
            continue
        for h in hidden:
            grid = {}
            for lr in rates:
                learner = agents.make(name, learning_rate=lr, hidden=h)
                grid[lr] = stream_scores(run_learner(learner, {}, env_params, key, n_streams))
            best = max(grid, key=lambda lr: grid[lr]["acc_at_last"])
            label = name if h == 0 else f"{name}_mlp{h}"
            results[label] = {
                **grid[best],
                "best_learning_rate": best,
                "grid": {str(k): v["acc_at_last"] for k, v in grid.items()},
            }
    return results


def main(argv: list[str] | None = None) -> int:
    from flax import serialization

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--meta-params", help="a msgpack of VSML meta-parameters (default: shipped mnist)"
    )
    parser.add_argument("--env", default="vsml_bench/OnlineFashionMNIST-v0")
    parser.add_argument("--split", default="test")
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[0])
    parser.add_argument("--learners", nargs="+", default=["vsml", "sgd", "adam"])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    meta_params, config = None, {}
    if "vsml" in args.learners and args.meta_params:
        meta_params = serialization.msgpack_restore(Path(args.meta_params).read_bytes())
    elif "vsml" in args.learners:
        from vsml_bench.agents import pretrained

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


if __name__ == "__main__":
    sys.exit(main())
