"""Metrics: bootstrap CIs, IQM, stratified bootstrap, probability of improvement, tied ranks."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from vsml_bench.leaderboard import metrics


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = np.random.default_rng(0).random(64)
    a = metrics.bootstrap_ci(values, metrics.stable_seed("t"))
    b = metrics.bootstrap_ci(values, metrics.stable_seed("t"))
    c = metrics.bootstrap_ci(values, metrics.stable_seed("other"))
    assert a == b
    assert a != c
    assert a.low < a.value < a.high
    assert a.value == pytest.approx(values.mean())
    # The percentile interval of a mean of 64 U(0,1) draws is about +-1.96 * 0.289 / 8.
    assert a.high - a.low == pytest.approx(2 * 1.96 * values.std() / 8, rel=0.2)


def test_bootstrap_ci_of_a_constant_is_a_point():
    est = metrics.bootstrap_ci(np.full(10, 0.25), metrics.stable_seed("c"))
    assert (est.value, est.low, est.high) == (0.25, 0.25, 0.25)


def test_iqm_matches_scipy_trim_mean_and_ignores_outliers():
    rng = np.random.default_rng(1)
    for n in (4, 8, 100, 64 * 11):
        x = rng.random(n)
        assert metrics.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25))
    assert metrics.iqm([0.5, 0.5, 0.5, 0.5, 100.0, -100.0, 0.5, 0.5]) == 0.5


def test_task_metrics_values():
    correct = np.zeros((4, 120), bool)
    correct[:, 9] = True  # every stream right at the 10th example only
    correct[:2, -1] = True
    ce = np.array([1.0, 2.0, 3.0, 4.0])
    m = metrics.task_metrics(correct, ce, "x")
    assert m["acc_at_1"].value == 0.0
    assert m["acc_at_10"].value == 1.0
    assert m["acc_at_100"].value == 0.0
    assert m["acc_at_last"].value == 0.5
    assert m["accuracy"].value == pytest.approx((4 + 2) / (4 * 120))
    assert m["online_ce"].value == 2.5
    short = metrics.task_metrics(correct[:, :50], ce, "x")
    assert "acc_at_100" not in short and "acc_at_10" in short


def test_learning_curve_windows():
    correct = np.zeros((2, 100), bool)
    correct[:, 50:] = True
    curve = metrics.learning_curve(correct, n_points=4)
    assert curve == [(25, 0.0), (50, 0.0), (75, 1.0), (100, 1.0)]
    assert len(metrics.learning_curve(correct[:, :3], n_points=25)) == 3


def test_stratified_bootstrap_resamples_within_tasks():
    a = np.full(64, 0.9)
    b = np.full(64, 0.1)
    # Constant tasks: any within-task resample gives the same pool, so the CI is a point.
    est = metrics.stratified_bootstrap_iqm([a, b])
    assert est.low == est.high == est.value == pytest.approx(0.5)
    rng = np.random.default_rng(2)
    tasks = [rng.random(64) * 0.2 + 0.4 for _ in range(5)]
    est = metrics.stratified_bootstrap_iqm(tasks)
    assert est.low < est.value < est.high
    assert est == metrics.stratified_bootstrap_iqm(tasks)


def test_probability_of_improvement():
    x = {"a": np.array([0.9, 0.8]), "b": np.array([0.5])}
    y = {"a": np.array([0.1, 0.2]), "b": np.array([0.5]), "c": np.array([1.0])}
    assert metrics.probability_of_improvement(x, y) == pytest.approx((1.0 + 0.5) / 2)
    assert metrics.probability_of_improvement(y, x) == pytest.approx((0.0 + 0.5) / 2)
    assert metrics.probability_of_improvement(x, {"z": np.ones(2)}) is None


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=20),
    st.lists(st.floats(0, 1), min_size=1, max_size=20),
)
@settings(max_examples=50, deadline=None)
def test_probability_of_improvement_is_complementary(xs, ys):
    p = metrics.probability_of_improvement({"t": np.array(xs)}, {"t": np.array(ys)})
    q = metrics.probability_of_improvement({"t": np.array(ys)}, {"t": np.array(xs)})
    assert p + q == pytest.approx(1.0)


def test_tied_ranks_rule():
    E = metrics.Estimate
    # A and B overlap (tied), C is below both, D overlaps C only.
    ests = [E(0.9, 0.85, 0.95), E(0.88, 0.80, 0.90), E(0.5, 0.45, 0.55), E(0.47, 0.40, 0.52)]
    assert metrics.tied_ranks(ests) == [1, 1, 3, 3]
    assert metrics.tied_ranks([E(0.5, 0.4, 0.6)] * 3) == [1, 1, 1]
    assert metrics.tied_ranks([]) == []
    # Chain: A overlaps B, B overlaps C, A is significantly above C.
    chain = [E(0.9, 0.8, 1.0), E(0.75, 0.6, 0.85), E(0.6, 0.5, 0.7)]
    assert metrics.tied_ranks(chain) == [1, 1, 2]


@given(st.lists(st.booleans(), min_size=1, max_size=200))
@settings(max_examples=100, deadline=None)
def test_bits_round_trip(bits):
    arr = np.array(bits)
    assert np.array_equal(metrics.decode_bits(metrics.encode_bits(arr), len(arr)), arr)


def test_decode_bits_rejects_inconsistent_input():
    good = metrics.encode_bits(np.ones(10, bool))
    with pytest.raises(metrics.RawScoreError):
        metrics.decode_bits(good, 20)  # too few bytes
    with pytest.raises(metrics.RawScoreError):
        metrics.decode_bits(good, 9)  # a set bit in the padding
    with pytest.raises(metrics.RawScoreError):
        metrics.decode_bits("@@@", 3)
    with pytest.raises(metrics.RawScoreError):
        metrics.decode_task_raw({"n_scored": 10, "correct": [good], "ce": [float("nan")]})
    with pytest.raises(metrics.RawScoreError):
        metrics.decode_task_raw({"n_scored": 10, "correct": [good, good], "ce": [1.0]})


# --- independent reference: would a wrong confidence level or trim be caught? ---------------
#
# A separate NumPy percentile bootstrap (its own generator, many more resamples, the 2.5/97.5
# percentiles and the 25% trim written out rather than read from the module) sets hard-coded
# expectations; the module's numbers must agree within ~1%. A 90% interval moves each end by
# about 0.3 standard errors (2-3% here), an IQM trimmed at 20% moves the whole interval by ~10%.


def reference_mean_ci(values, n_boot=40_000, seed=99):
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=np.float64)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return np.percentile(means, [2.5, 97.5])


def reference_iqm(rows):
    rows = np.sort(rows, axis=-1)
    n = rows.shape[-1]
    return rows[..., n // 4 : n - n // 4].mean(axis=-1)


def reference_stratified_iqm_ci(tasks, n_boot=20_000, seed=7):
    rng = np.random.default_rng(seed)
    iqms = []
    for _ in range(n_boot // 2000):
        pooled = [t[rng.integers(0, len(t), size=(2000, len(t)))] for t in tasks]
        iqms.append(reference_iqm(np.concatenate(pooled, axis=1)))
    return np.percentile(np.concatenate(iqms), [2.5, 97.5])


def _spread_task():
    """64 streams whose accuracies spread evenly over [0.05, 0.95], and their CEs."""
    rng = np.random.default_rng(123)
    p = np.linspace(0.05, 0.95, 64)
    return rng.random((64, 300)) < p[:, None], rng.random(64) * 2


def _skewed_tasks():
    """6 tasks x 256 streams of u**3 accuracies (skewed, so the trim matters)."""
    rng = np.random.default_rng(321)
    return [rng.random(256) ** 3 for _ in range(6)]


#: Hard-coded outputs of the references above (checked by the first test below).
REF_ACCURACY_CI = (0.433697, 0.564220)
REF_CE_CI = (0.937446, 1.211889)
REF_STRATIFIED_CI = (0.132009, 0.165324)


def test_reference_bootstraps_reproduce_the_hard_coded_expectations():
    correct, ce = _spread_task()
    np.testing.assert_allclose(reference_mean_ci(correct.mean(axis=1)), REF_ACCURACY_CI, atol=2e-6)
    np.testing.assert_allclose(reference_mean_ci(ce), REF_CE_CI, atol=2e-6)
    np.testing.assert_allclose(
        reference_stratified_iqm_ci(_skewed_tasks()), REF_STRATIFIED_CI, atol=2e-6
    )
    # And the references are what they claim: a normal-theory 95% interval of the mean is close.
    means = correct.mean(axis=1)
    half = 1.96 * means.std(ddof=1) / np.sqrt(len(means))
    normal = (means.mean() - half, means.mean() + half)
    assert normal == pytest.approx(REF_ACCURACY_CI, rel=0.01)


def test_task_intervals_are_95_percent_bootstrap_intervals():
    correct, ce = _spread_task()
    m = metrics.task_metrics(correct, ce, "reference")
    assert (m["accuracy"].low, m["accuracy"].high) == pytest.approx(REF_ACCURACY_CI, rel=0.01)
    assert (m["online_ce"].low, m["online_ce"].high) == pytest.approx(REF_CE_CI, rel=0.01)
    assert m["accuracy"].value == pytest.approx(correct.mean())


def test_mean_ci_helper_is_a_95_percent_interval():
    correct, _ = _spread_task()
    est = metrics.bootstrap_ci(correct.mean(axis=1), np.random.default_rng(0))
    assert (est.low, est.high) == pytest.approx(REF_ACCURACY_CI, rel=0.01)


def test_stratified_iqm_interval_matches_the_reference():
    tasks = _skewed_tasks()
    est = metrics.stratified_bootstrap_iqm(tasks, label="reference")
    assert est.value == pytest.approx(reference_iqm(np.concatenate(tasks)), rel=1e-12)
    assert (est.low, est.high) == pytest.approx(REF_STRATIFIED_CI, rel=0.01)
