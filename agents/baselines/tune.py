"""Learning-rate sweeps for the online gradient baselines (the "best-tuned SGD/Adam" reference).

For each learning rate of a grid, the learner runs on ``n_streams`` env streams (jitted
:func:`vsml_bench.envs.rollout` from one key, so the streams are identical across the grid and
across learners) and is scored on ``correct [S, T]`` by :func:`stream_scores`:

* ``acc_at_last``: accuracy at the last example of the stream (e.g. the 100th), over streams,
  with its binomial standard error ``acc_at_last_se``;
* ``acc_last10``: accuracy over the last 10 examples (less noisy, same regime);
* ``acc_online``: mean accuracy over the whole stream (prequential).

The best learning rate maximises ``acc_at_last``. ``vsml-bench compare`` uses the same sweep for
its baselines. Run it as::

    vsml-bench tune --env vsml_bench/OnlineDigits-v0 --learner sgd
    VSML_BENCH_DATA=... vsml-bench tune \\
        --env vsml_bench/OnlineFashionMNIST-v0 --split test --learner adam --hidden 128
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

SGD_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAM_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)
#: The default grid of each tunable learner.
GRIDS = {"sgd": SGD_GRID, "adam": ADAM_GRID}


def stream_scores(correct: np.ndarray) -> dict[str, float]:
    """Scores of ``correct [S, T]``: accuracy at position T (± s.e.), last 10, mean online."""
    correct = np.asarray(correct)
    last = correct[:, -1].astype(np.float64)
    return {
        "acc_at_last": float(last.mean()),
        "acc_at_last_se": float(last.std(ddof=1) / np.sqrt(len(last))) if len(last) > 1 else 0.0,
        "acc_last10": float(correct[:, -10:].mean()),
        "acc_online": float(correct.mean()),
    }


def rollout_correct(learner, meta_params, env_params, key, n_streams: int) -> np.ndarray:
    """``correct bool[S, T]`` of ``learner`` on ``n_streams`` streams of ``key`` (jitted)."""
    from vsml_bench import xla
    from vsml_bench.envs import rollout

    run = xla.jit(lambda mp, ep: rollout(ep, learner, mp, key, n_streams).correct)
    return np.asarray(run(meta_params, env_params))


def sweep(
    learner_name: str,
    grid: Sequence[float],
    env_params: Any,
    key: Any,
    n_streams: int,
    hidden: int = 0,
) -> list[dict[str, float]]:
    """One row per learning rate: ``{"learning_rate": lr, **stream_scores(correct)}``.

    Every rate runs on the same streams (``env_params``, ``key``, ``n_streams``).
    """
    from vsml_bench import agents

    rows = []
    for lr in grid:
        learner = agents.make(learner_name, learning_rate=float(lr), hidden=int(hidden))
        correct = rollout_correct(learner, {}, env_params, key, n_streams)
        rows.append({"learning_rate": float(lr), **stream_scores(correct)})
    return rows


def sweep_learning_rate(
    env_id: str,
    learner_name: str,
    grid: Sequence[float],
    n_streams: int = 1024,
    stream_length: int = 100,
    seed: int = 0,
    hidden: int = 0,
    **env_kwargs: Any,
) -> list[dict[str, float]]:
    """:func:`sweep` on ``n_streams`` streams of ``env_id`` from ``jax.random.key(seed)``."""
    import jax

    from vsml_bench import envs

    _, params = envs.make(env_id, stream_length=stream_length, **env_kwargs)
    return sweep(learner_name, grid, params, jax.random.key(seed), n_streams, hidden)


def best(rows: list[dict[str, float]], metric: str = "acc_at_last") -> dict[str, float]:
    """The row with the highest ``metric`` (ties: the first, i.e. the smaller learning rate)."""
    return max(rows, key=lambda row: row[metric])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="vsml_bench/OnlineDigits-v0", help="environment ID")
    parser.add_argument("--learner", choices=tuple(GRIDS), default="sgd")
    parser.add_argument("--hidden", type=int, default=0, help="hidden units (0: linear)")
    parser.add_argument("--split", default=None, help="dataset split (default: the env's)")
    parser.add_argument("--streams", type=int, default=1024, help="streams per learning rate")
    parser.add_argument("--length", type=int, default=100, help="examples per stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--grid", type=float, nargs="*", default=None, help="learning rates (default: per learner)"
    )


def run(args: argparse.Namespace) -> int:
    """Print one JSON line per learning rate, then ``{"best": row}``."""
    env_kwargs = {} if args.split is None else {"split": args.split}
    rows = sweep_learning_rate(
        args.env,
        args.learner,
        args.grid or GRIDS[args.learner],
        args.streams,
        args.length,
        args.seed,
        args.hidden,
        **env_kwargs,
    )
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"best": best(rows)}))
    return 0


if __name__ == "__main__":  # `python -m vsml_bench.agents.baselines.tune`: `vsml-bench tune`
    from vsml_bench.cli import main

    sys.exit(main(["tune", *sys.argv[1:]]))
