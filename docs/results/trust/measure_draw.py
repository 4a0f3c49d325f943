"""The draw alone: how often verify's default draw (fresh OS seeds) hits a random forged set.

No learner runs: each trial draws ``ceil(5% N)`` forged streams of a committed file's ``N``
with a seeded generator and verify's default number of streams with
:func:`harness.pick_streams` from :func:`verify.fresh_seed`, and counts a catch when they
meet. Also prints how often each stream is drawn (uniform draws give ``n / N`` each) and a
chi-square of those counts against uniform (``N - 1`` degrees of freedom).

Usage (from the repository root)::

    python docs/results/trust/measure_draw.py sgd__offline-v0__9449634518.json 200000 --seed 12
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vsml_bench.leaderboard import harness, schema, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a file in the package's leaderboard/results/")
    parser.add_argument("trials", type=int)
    parser.add_argument("--seed", type=int, required=True, help="seed of the forged sets")
    args = parser.parse_args()

    doc = schema.parse_results(schema.read_bounded(schema.RESULTS_DIR / args.file))
    pool = harness.stream_pool(doc)
    index = {stream: k for k, stream in enumerate(pool)}
    n, forged_count = verify.streams_for_detection(len(pool)), verify.forged_streams(len(pool))
    rng = np.random.default_rng(args.seed)
    counts = np.zeros(len(pool))
    caught = 0
    t0 = time.process_time()
    for _ in range(args.trials):
        forged = set(rng.choice(len(pool), forged_count, replace=False).tolist())
        picks = harness.pick_streams(doc, n, verify.fresh_seed())
        drawn = [index[(t, i)] for t, ids in picks.items() for i in ids]
        counts[drawn] += 1
        caught += bool(forged & set(drawn))
    exact = 1 - verify.miss_probability(len(pool), n, forged_count)
    rate = caught / args.trials
    se = (exact * (1 - exact) / args.trials) ** 0.5
    expected = args.trials * n / len(pool)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    print(
        f"{caught}/{args.trials} = {rate:.5f}, exact {exact:.5f}, z {(rate - exact) / se:+.2f}; "
        f"per-stream draw rate {counts.min() / args.trials:.4f}..{counts.max() / args.trials:.4f} "
        f"(uniform {n / len(pool):.4f}), chi2 {chi2:.1f} on {len(pool) - 1} df; "
        f"{time.process_time() - t0:.0f} CPU-s"
    )


if __name__ == "__main__":
    main()
