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


# --- forgeries of a real results file through verify's own code ----------------------------

SGD_OFFLINE = "sgd__offline-v0__9449634518.json"


def _forge_stream(raw, i, kind, rng):
    """Change stream ``i`` of a task's raw scores in place, so that it differs from the truth:
    every prediction right (the forgery that moves a headline), one wrong prediction made
    right (the smallest change to the bits), or the cross-entropy scaled by 0.9."""
    from vsml_bench.leaderboard import metrics

    bits = metrics.decode_bits(raw["correct"][i], raw["n_scored"])
    if kind == 0:
        bits[:] = True
    elif kind == 1:
        bits[rng.choice(np.flatnonzero(~bits))] = True
    else:
        raw["ce"][i] = round(raw["ce"][i] * 0.9, 6)
    raw["correct"][i] = metrics.encode_bits(bits)


@pytest.mark.parametrize("trials", [40, pytest.param(4000, marks=pytest.mark.slow)])
def test_forgeries_of_a_committed_file_are_caught_exactly_when_drawn(monkeypatch, trials):
    """Forge ceil(5%) of the streams of the committed SGD file (20 of 384) and run verify's
    checks, draw and comparison on it; the re-runs return the committed (true) values, which
    the real learner reproduces bit for bit (measured in docs/results/trust). Verify must
    refuse a forgery exactly when its draw contains a forged stream, so that its catch rate is
    the stated hypergeometric one: no forged stream may pass as equal, and no true one differ.
    """
    import copy

    from vsml_bench.leaderboard import metrics, schema

    # Parsed, not re-validated (recomputing its bootstraps is slow; submit's tests do that).
    base = schema.parse_results(schema.read_bounded(schema.RESULTS_DIR / SGD_OFFLINE))
    truth = {t["task_id"]: metrics.decode_task_raw(t["raw"]) for t in base["tasks"]}

    def committed_values(learner, task, meta_params, stream_ids=None, data_dir=None):
        correct, ce = truth[task.task_id]
        return correct[stream_ids], ce[stream_ids]

    monkeypatch.setattr(harness, "run_task", committed_values)
    monkeypatch.setattr(harness, "_task_meta_params", lambda *args: None)
    learner = harness.learner_from_spec("sgd", schema.RESULTS_DIR)
    pool = harness.stream_pool(base)
    n_forged = verify.forged_streams(len(pool))
    rng = np.random.default_rng(1)
    caught = 0
    for _ in range(trials):
        doc = copy.deepcopy(base)
        by_id = {t["task_id"]: t for t in doc["tasks"]}
        forged = {pool[j] for j in rng.choice(len(pool), n_forged, replace=False)}
        for task_id, i in forged:
            _forge_stream(by_id[task_id]["raw"], i, rng.integers(3), rng)
        # Seeds from the test's generator (fresh OS seeds are tested above): same numbers
        # every run.
        the_plan = verify.plan(doc, None, int(rng.integers(2**63)))
        records = verify.verify(doc, learner, the_plan)
        assert len(records) == the_plan.n_streams == 53
        differ = {(r["task_id"], r["stream"]) for r in records if not r["agree"]}
        assert differ == {(r["task_id"], r["stream"]) for r in records} & forged
        caught += bool(differ)
    se = math.sqrt(the_plan.detection * (1 - the_plan.detection) / trials)
    assert caught / trials >= the_plan.detection - 3 * se


@pytest.mark.parametrize("spec, padded", [("chance", True), ("sklearn_sgd", False)])
def test_reruns_of_a_jax_learner_come_in_a_few_sizes(monkeypatch, spec, padded):
    """A random draw re-runs any number of a task's streams; a JAX learner's are padded (with
    copies of the last) to a multiple of 8, so that XLA compiles a few programs per task, not
    one per number; only the picked streams are compared."""
    from vsml_bench.leaderboard import metrics, schema

    path = schema.RESULTS_DIR / "chance__offline-v0__6cb09fe72a.json"
    base = schema.parse_results(schema.read_bounded(path))
    truth = {t["task_id"]: metrics.decode_task_raw(t["raw"]) for t in base["tasks"]}
    asked = []

    def committed_values(learner, task, meta_params, stream_ids=None, data_dir=None):
        asked.append(list(stream_ids))
        correct, ce = truth[task.task_id]
        return correct[stream_ids], ce[stream_ids]

    monkeypatch.setattr(harness, "run_task", committed_values)
    monkeypatch.setattr(harness, "_task_meta_params", lambda *args: None)
    learner = harness.build_learner(spec)
    records = harness.rerun_picked(base, learner, {"iris": [5, 2, 9], "wine": list(range(8))})
    assert [(r["task_id"], r["stream"]) for r in records] == [
        ("iris", 2),
        ("iris", 5),
        ("iris", 9),
        *(("wine", i) for i in range(8)),
    ]
    assert all(r["agree"] for r in records)
    iris = [2, 5, 9, 9, 9, 9, 9, 9] if padded else [2, 5, 9]
    assert asked == [iris, list(range(8))]
