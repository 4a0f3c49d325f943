"""Learning-rate sweeps for the online gradient baselines (the "best-tuned SGD/Adam" reference).

For each learning rate of a grid, the learner runs on ``n_streams`` env streams (jitted
:func:`vsml_bench.envs.rollout`, the streams are identical across the grid) and is scored by

* ``acc_at_end``: accuracy at the last example of the stream (e.g. the 100th), over streams;
* ``acc_last10``: accuracy over the last 10 examples (less noisy, same regime);
* ``online_acc``: mean accuracy over the whole stream (prequential).

The best learning rate maximises ``acc_at_end``. Run it as::

    python -m vsml_bench.agents.baselines.tune --env vsml_bench/OnlineDigits-v0 --learner sgd
    VSML_BENCH_DATA=... python -m vsml_bench.agents.baselines.tune \\
        --env vsml_bench/OnlineFashionMNIST-v0 --split test --learner adam --hidden 128
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

SGD_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAM_GRID = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)


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
    """Score ``learner_name`` (``"sgd"`` or ``"adam"``) at every learning rate of ``grid``."""
    import jax
    import jax.numpy as jnp

    from vsml_bench import agents, envs, xla

    _, params = envs.make(env_id, stream_length=stream_length, **env_kwargs)
    key = jax.random.key(seed)
    rows = []
    for lr in grid:
        learner = agents.make(learner_name, learning_rate=float(lr), hidden=int(hidden))
        run = xla.jit(lambda p, k, learner=learner: envs.rollout(p, learner, {}, k, n_streams))
        correct = run(params, key).correct.astype(jnp.float32)
        rows.append(
            {
                "learning_rate": float(lr),
                "acc_at_end": float(correct[:, -1].mean()),
                "acc_last10": float(correct[:, -10:].mean()),
                "online_acc": float(correct.mean()),
            }
        )
    return rows


def best(rows: list[dict[str, float]], metric: str = "acc_at_end") -> dict[str, float]:
    """The row with the highest ``metric`` (ties: the first, i.e. the smaller learning rate)."""
    return max(rows, key=lambda row: row[metric])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="vsml_bench/OnlineDigits-v0")
    parser.add_argument("--learner", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--hidden", type=int, default=0)
    parser.add_argument("--split", default=None)
    parser.add_argument("--streams", type=int, default=1024)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=float, nargs="*", default=None)
    args = parser.parse_args(argv)
    grid = args.grid or (SGD_GRID if args.learner == "sgd" else ADAM_GRID)
    env_kwargs = {} if args.split is None else {"split": args.split}
    rows = sweep_learning_rate(
        args.env,
        args.learner,
        grid,
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


if __name__ == "__main__":
    raise SystemExit(main())
