"""Scores of a learner on a suite, computed from raw per-stream results (NumPy, seeded).

Everything here is a pure function of the raw scores a results file stores, so that
``vsml-bench submit`` can recompute every aggregate and reject a file whose numbers disagree.

Raw scores of one task, ``S`` streams of ``T`` scored examples each:

* ``correct[s, t]``: whether the learner's prediction (argmax of its logits) for the ``t``-th
  scored example of stream ``s`` was right; stored compactly as base64 packed bits.
* ``ce[s]``: the stream's online (prequential) cross-entropy
  :math:`\\frac1T\\sum_t -\\log \\mathrm{softmax}(z_t)_{y_t}` (nats).

Per task (each with a 95% percentile-bootstrap CI over streams, :func:`bootstrap_ci`):

* ``accuracy``: mean online accuracy :math:`\\frac1{S}\\sum_s \\frac1T\\sum_t c_{s,t}`;
* ``acc_at_1``, ``acc_at_10``, ``acc_at_100``, ``acc_at_last``: :math:`\\frac1S\\sum_s c_{s,k}`,
  the accuracy on the k-th scored example (1-indexed) over streams, omitted when ``T < k``;
* ``online_ce``: :math:`\\frac1S \\sum_s ce_s`.

Across tasks (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"):

* :func:`iqm`: the interquartile mean of the pooled per-stream accuracies of all tasks
  (the mean of the middle 50% after sorting), robust to outlier tasks and more efficient than
  the median;
* :func:`stratified_bootstrap_iqm`: its 95% CI, resampling streams *within* each task;
* :func:`stratified_bootstrap_gap`: a learner's in-distribution score, its OOD score and
  the OOD gap (in − OOD), each group summarised by the IQM of its pooled streams or the mean
  of its per-task means, with CIs from one stratified bootstrap;
* :func:`probability_of_improvement`: :math:`P(X > Y) = \\frac1K\\sum_k P(X_k > Y_k)` over the
  K tasks both entries ran, each term the Mann-Whitney statistic over their streams (ties 1/2);
* :func:`tied_ranks`: rank = 1 + number of entries that are *significantly* better, i.e. whose
  CI lower bound lies above this entry's CI upper bound. Entries whose CIs overlap are
  statistically tied and can share a rank (the rule is deterministic and order-independent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vsml_bench.deprecation import renamed

#: 1-indexed positions in the stream at which accuracy is reported ("last" is added).
POSITIONS: tuple[int, ...] = (1, 10, 100)
#: Bootstrap resamples; fixed so that a recomputation reproduces the stored intervals.
N_BOOTSTRAP: int = 2000
CONFIDENCE: float = 0.95
#: Seed every bootstrap mixes with a stable hash of what it summarises.
BOOTSTRAP_SEED: int = 20211206


class RawScoreError(ValueError):
    """Raw scores that cannot be decoded (bad base64, wrong lengths, non-finite values)."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": _round(self.value), "low": _round(self.low), "high": _round(self.high)}

    to_json = renamed("to_dict")


def _round(value: float) -> float:
    # Six decimals: far below any CI width, and keeps results files short and diff-friendly.
    return round(float(value), 6)


def stable_seed(*parts: str) -> np.random.Generator:
    """A NumPy generator seeded from strings, identical across runs and machines."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return np.random.default_rng([BOOTSTRAP_SEED, int.from_bytes(digest[:8], "little")])


# --- raw score codec ----------------------------------------------------------------------


def encode_bits(correct: np.ndarray) -> str:
    """Pack one stream's ``bool[T]`` correctness into base64 (8 examples per byte)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


def decode_bits(text: str, length: int) -> np.ndarray:
    """Inverse of :func:`encode_bits`; raises :class:`RawScoreError` on any inconsistency."""
    if not isinstance(text, str) or not isinstance(length, int) or length < 1:
        raise RawScoreError("correct bits must be a base64 string with a positive length")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as error:
        raise RawScoreError("correct bits are not valid base64") from error
    if len(data) != (length + 7) // 8:
        raise RawScoreError(
            f"correct bits hold {len(data)} bytes but a stream of {length} scored examples needs "
            f"{(length + 7) // 8}"
        )
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bits[length:].any():
        raise RawScoreError("correct bits have non-zero padding after the last example")
    return bits[:length].astype(bool)


def decode_task_raw(raw: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """``{"n_scored", "correct", "ce"}`` -> ``(bool[S, T], float64[S])``, validated."""
    n_scored = raw.get("n_scored")
    correct = raw.get("correct")
    ce = raw.get("ce")
    if not isinstance(n_scored, int) or isinstance(n_scored, bool) or n_scored < 1:
        raise RawScoreError("n_scored must be a positive integer")
    if not isinstance(correct, list) or not isinstance(ce, list) or not correct:
        raise RawScoreError("correct and ce must be non-empty lists")
    if len(correct) != len(ce):
        raise RawScoreError(f"{len(correct)} streams of correct bits but {len(ce)} ce values")
    bits = np.stack([decode_bits(row, n_scored) for row in correct])
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in ce):
        raise RawScoreError("ce values must be numbers")
    ce_arr = np.asarray(ce, dtype=np.float64)
    if not np.all(np.isfinite(ce_arr)) or np.any(ce_arr < 0):
        raise RawScoreError("ce values must be finite and non-negative")
    return bits, ce_arr


def encode_task_raw(correct: np.ndarray, ce: np.ndarray) -> dict[str, object]:
    """``(bool[S, T], float[S])`` -> the JSON form decoded by :func:`decode_task_raw`."""
    correct = np.asarray(correct, dtype=bool)
    return {
        "n_scored": int(correct.shape[1]),
        "correct": [encode_bits(row) for row in correct],
        "ce": [_round(v) for v in np.asarray(ce, dtype=np.float64)],
    }


# --- per task -----------------------------------------------------------------------------


def bootstrap_ci(
    values: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap CI.

    Draws ``n_boot`` resamples of the ``S`` values with replacement and takes the
    :math:`(1\\pm c)/2` quantiles of their means.
    """
    values = np.asarray(values, dtype=np.float64)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(float(values.mean()), float(low), float(high))


def task_metrics(correct: np.ndarray, ce: np.ndarray, task_id: str) -> dict[str, Estimate]:
    """All per-task metrics with 95% bootstrap CIs over streams (seeded by ``task_id``).

    One set of stream resamples serves every metric (they are then paired, as they should be:
    each resample is one hypothetical set of streams).
    """
    correct = np.asarray(correct, dtype=np.float64)
    n_streams, n_scored = correct.shape
    columns: dict[str, np.ndarray] = {"accuracy": correct.mean(axis=1)}
    for k in POSITIONS:
        if n_scored >= k:
            columns[f"acc_at_{k}"] = correct[:, k - 1]
    columns["acc_at_last"] = correct[:, -1]
    columns["online_ce"] = np.asarray(ce, dtype=np.float64)
    table = np.stack(list(columns.values()), axis=1)  # [S, M]
    idx = stable_seed(task_id).integers(0, n_streams, size=(N_BOOTSTRAP, n_streams))
    means = table[idx].mean(axis=1)  # [B, M]
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    point = table.mean(axis=0)
    return {
        name: Estimate(float(point[j]), float(low[j]), float(high[j]))
        for j, name in enumerate(columns)
    }


def learning_curve(correct: np.ndarray, n_points: int = 25) -> list[tuple[int, float]]:
    """Accuracy over streams against position, averaged in ``n_points`` equal windows.

    Returns ``(last position of the window (1-indexed), mean accuracy in the window)``.
    """
    correct = np.asarray(correct, dtype=np.float64)
    per_step = correct.mean(axis=0)
    edges = np.unique(np.linspace(0, len(per_step), min(n_points, len(per_step)) + 1).astype(int))
    return [(int(hi), _round(per_step[lo:hi].mean())) for lo, hi in itertools.pairwise(edges)]


# --- across tasks -------------------------------------------------------------------------


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the sorted values (trim 25% each side)."""
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(values)
    cut = int(np.floor(0.25 * n))
    return float(values[cut : n - cut].mean())


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each row of ``samples`` ([B, N]); a partial sort suffices for the middle half."""
    n = samples.shape[1]
    cut = int(np.floor(0.25 * n))
    if cut == 0:
        return samples.mean(axis=1)
    middle = np.partition(samples, [cut, n - cut - 1], axis=1)[:, cut : n - cut]
    return middle.mean(axis=1)


def stratified_bootstrap_iqm(
    per_task: Sequence[np.ndarray],
    label: str = "iqm",
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """IQM of the pooled per-stream scores with a stratified-bootstrap CI.

    Each resample draws, for every task independently, as many streams as it has with
    replacement (stratified by task), pools them, and takes the IQM.
    """
    if not per_task:
        raise ValueError("need at least one task")
    rng = stable_seed("stratified", label)
    parts = []
    for scores in per_task:
        scores = np.asarray(scores, dtype=np.float64)
        parts.append(scores[rng.integers(0, len(scores), size=(n_boot, len(scores)))])
    boot = _iqm_rows(np.concatenate(parts, axis=1))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return Estimate(iqm(np.concatenate([np.ravel(s) for s in per_task])), float(low), float(high))


#: Statistics :func:`stratified_bootstrap_gap` can summarise a group of tasks with.
GROUP_STATISTICS = ("iqm", "mean")


def _group_statistic(per_task: Sequence[np.ndarray], statistic: str) -> float:
    if statistic == "iqm":
        return iqm(np.concatenate([np.ravel(s) for s in per_task]))
    return float(np.mean([np.mean(s) for s in per_task]))


def _resampled_group(
    per_task: Sequence[np.ndarray], statistic: str, rng: np.random.Generator, n_boot: int
) -> np.ndarray:
    """``[n_boot]`` values of the group statistic, streams resampled within each task."""
    parts = []
    for scores in per_task:
        scores = np.asarray(scores, dtype=np.float64)
        parts.append(scores[rng.integers(0, len(scores), size=(n_boot, len(scores)))])
    if statistic == "iqm":
        return _iqm_rows(np.concatenate(parts, axis=1))
    return np.mean([part.mean(axis=1) for part in parts], axis=0)


def stratified_bootstrap_group(
    per_task: Sequence[np.ndarray],
    label: str,
    statistic: str = "mean",
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """One group's score (``statistic`` as in :func:`stratified_bootstrap_gap`) with its CI."""
    if statistic not in GROUP_STATISTICS:
        raise ValueError(f"statistic must be one of {GROUP_STATISTICS}, not {statistic!r}")
    if not per_task:
        raise ValueError("need at least one task")
    boot = _resampled_group(per_task, statistic, stable_seed("group", statistic, label), n_boot)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return Estimate(_group_statistic(per_task, statistic), float(low), float(high))


def stratified_bootstrap_gap(
    in_distribution: Sequence[np.ndarray],
    ood: Sequence[np.ndarray],
    label: str = "ood_gap",
    statistic: str = "iqm",
    n_boot: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
) -> tuple[Estimate, Estimate, Estimate]:
    """In-distribution score, OOD score and the OOD gap (in − OOD), with stratified CIs.

    Each argument is a list of per-task arrays of per-stream scores. A group of tasks is
    summarised by ``statistic``: ``"iqm"``, the IQM of its pooled streams (as the headline), or
    ``"mean"``, :math:`\\frac1K\\sum_k \\bar s_k`, the mean over its K tasks of their mean
    score (every dataset weighs the same). The gap is
    :math:`g = S(\\text{in}) - S(\\text{ood})`. One bootstrap serves all three: each resample
    draws every task's streams with replacement (stratified by task) and recomputes both
    groups, so the gap's CI accounts for both groups' noise. Positive ``g``: the learner does
    worse outside its meta-training distribution.
    """
    if statistic not in GROUP_STATISTICS:
        raise ValueError(f"statistic must be one of {GROUP_STATISTICS}, not {statistic!r}")
    if not in_distribution or not ood:
        raise ValueError("need at least one in-distribution and one OOD task")
    rng = stable_seed("gap", statistic, label)
    boot_in = _resampled_group(in_distribution, statistic, rng, n_boot)
    boot_ood = _resampled_group(ood, statistic, rng, n_boot)
    tail = (1.0 - confidence) / 2.0
    point_in = _group_statistic(in_distribution, statistic)
    point_ood = _group_statistic(ood, statistic)
    out = []
    for point, boot in ((point_in, boot_in), (point_ood, boot_ood), (point_in - point_ood, None)):
        samples = boot_in - boot_ood if boot is None else boot
        low, high = np.quantile(samples, [tail, 1.0 - tail])
        out.append(Estimate(float(point), float(low), float(high)))
    return out[0], out[1], out[2]


def _prob_greater(x: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney estimate of P(X > Y) + P(X = Y)/2 for independent samples."""
    x = np.asarray(x, dtype=np.float64)[:, None]
    y = np.asarray(y, dtype=np.float64)[None, :]
    return float((x > y).mean() + 0.5 * (x == y).mean())


def probability_of_improvement(
    x_tasks: Mapping[str, np.ndarray], y_tasks: Mapping[str, np.ndarray]
) -> float | None:
    """P(X > Y) averaged over the tasks both entries ran; None when they share no task."""
    shared = sorted(set(x_tasks) & set(y_tasks))
    if not shared:
        return None
    return float(np.mean([_prob_greater(x_tasks[t], y_tasks[t]) for t in shared]))


def tied_ranks(estimates: Sequence[Estimate]) -> list[int]:
    """Ranks (1 = best, higher score is better) in which statistically tied entries share a rank.

    Rule: ``rank_i = 1 + #{j : low_j > high_i}``, the number of entries whose whole CI lies
    above entry i's CI. Two entries with overlapping CIs never outrank each other, so e.g.
    three mutually overlapping entries all get rank 1; an entry whose CI is entirely below two
    others gets rank 3.
    """
    return [1 + sum(other.low > est.high for other in estimates) for est in estimates]
