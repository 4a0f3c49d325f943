"""verify's sampling guarantee: the hypergeometric miss probability, the default number of
streams, fresh seeds, and the catch rate of simulated forgeries through the real sampler."""

import itertools
import math

import numpy as np
import pytest

from vsml_bench.leaderboard import harness, verify


def pool_doc(streams_per_task):
    """The part of a results document the sampler reads."""
    return {
        "tasks": [
            {"task_id": f"t{i}", "status": "ok", "n_streams": n}
            for i, n in enumerate(streams_per_task)
        ]
    }


@pytest.mark.parametrize("pool, n, forged", [(8, 3, 2), (10, 4, 1), (7, 7, 1), (9, 2, 5)])
def test_miss_probability_by_enumeration(pool, n, forged):
    draws = list(itertools.combinations(range(pool), n))
    misses = sum(all(i >= forged for i in draw) for draw in draws)
    assert verify.miss_probability(pool, n, forged) == pytest.approx(misses / len(draws))


@pytest.mark.parametrize("pool, expected", [(384, 53), (448, 54), (64, 33), (20, 19), (1, 1)])
def test_default_streams_are_the_fewest_that_give_95_percent(pool, expected):
    n = verify.streams_for_detection(pool)
    assert n == expected
    forged = math.ceil(0.05 * pool)
    assert 1 - verify.miss_probability(pool, n, forged) >= 0.95
    if n > 1:
        assert 1 - verify.miss_probability(pool, n - 1, forged) < 0.95
    # More forged streams are only easier to catch.
    assert verify.miss_probability(pool, n, forged + 1) <= verify.miss_probability(pool, n, forged)


def test_plan_states_the_guarantee_and_uses_fresh_seeds():
    doc = pool_doc([64] * 6)
    plans = [verify.plan(doc, None, None) for _ in range(5)]
    assert len({p.seed for p in plans}) == 5
    assert {(p.pool, p.n_streams, p.forged) for p in plans} == {(384, 53, 20)}
    assert plans[0].detection >= 0.95
    assert "caught with probability >= 95." in plans[0].describe()
    assert verify.plan(doc, 10_000, 3).n_streams == 384  # never more than the pool
    with pytest.raises(verify.UserError, match="--seed"):
        verify.plan(doc, None, -1)


@pytest.mark.parametrize("streams_per_task", [[64] * 6, [64] * 7, [3, 50, 7]])
def test_simulated_forgeries_are_caught_at_the_stated_rate(streams_per_task):
    """10,000 forgeries, each of ceil(5%) random streams, each checked with its own seed
    through the same sampler verify uses: the catch rate must reach the guarantee."""
    doc = pool_doc(streams_per_task)
    pool = harness.stream_pool(doc)
    the_plan = verify.plan(doc, None, None)
    rng = np.random.default_rng(0)
    caught = 0
    trials = 10_000
    for _ in range(trials):
        forged = {pool[j] for j in rng.choice(len(pool), the_plan.forged, replace=False)}
        # Seeds from the test's own generator, not the OS: the test gives the same numbers
        # every run (fresh seeds are checked above).
        picks = harness.pick_streams(doc, the_plan.n_streams, int(rng.integers(2**63)))
        drawn = {(t, i) for t, ids in picks.items() for i in ids}
        assert len(drawn) == the_plan.n_streams
        caught += bool(drawn & forged)
    # The exact rate is the_plan.detection >= 0.95; 3 binomial standard errors below it.
    se = math.sqrt(the_plan.detection * (1 - the_plan.detection) / trials)
    assert caught / trials >= the_plan.detection - 3 * se
    assert caught / trials >= 0.935
