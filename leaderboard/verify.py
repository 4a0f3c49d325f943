"""Verification of a results file: recompute what can be recomputed, re-run what cannot.

``vsml-bench verify FILE`` checks, in order (cheap checks first, each refusal with its own exit
status, :class:`Exit`):

1. the file itself (schema, strict types, names, spec, every aggregate; exit 2 on failure);
2. the meta-parameters of the learner its spec names hash to the recorded ``meta_params_sha256``
   (exit 5);
3. its ``meta_trained_on`` is what that learner declares (exit 3): declaring extra
   meta-training data would move tasks out of the OOD headline;
4. every task marked "not run: data missing" really has no data here (exit 4);
5. every task marked "not run: learner supports at most C classes" is one the learner
   really cannot run: its meta-parameters fix C outputs (exit 6);
6. its ``learner.config`` is the config that learner builds (exit 7): the file's options are
   provenance that a reader trusts, and a re-run uses the built ones;
7. ``n`` streams drawn uniformly without replacement from the ``N`` streams of the tasks that
   ran re-run bit for bit (exit 1 if any differs, 0 if all agree).

**Detection guarantee.** A forger who edits ``f`` of the ``N`` streams (and recomputes the
aggregates so the file validates) escapes only if none of the ``n`` re-run streams is forged:
:math:`P(\\text{miss}) = \\binom{N-f}{n} / \\binom{N}{n}` (hypergeometric). By default ``n`` is
the smallest number with :math:`P(\\text{miss}) \\le 5\\%` at :math:`f = \\lceil 0.05 N\\rceil`, so
a file with at least 5% forged streams is caught with probability at least 95% (more forged
streams only lower :math:`P(\\text{miss})`). The guarantee needs the draw to be unpredictable:
the seed comes from the operating system (:mod:`secrets`) unless ``--seed`` repeats a run.
"""

from __future__ import annotations

import enum
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vsml_bench.errors import UserError

#: Default guarantee: files with at least this fraction of forged streams ...
FORGED_FRACTION = 0.05
#: ... are caught with at least this probability.
DETECTION = 0.95
#: Seeds are at most this many bits (NumPy seeds any non-negative integer; this keeps them short).
SEED_BITS = 63


class Exit(enum.IntEnum):
    """Exit statuses of ``vsml-bench verify``."""

    OK = 0  #: every re-run stream agrees with the file
    STREAMS_DIFFER = 1  #: at least one re-run stream differs from the file
    USER_ERROR = 2  #: the file is invalid or an option is wrong (one-line error)
    META_TRAINED_ON = 3  #: meta_trained_on differs from the learner's declaration
    DATA_PRESENT = 4  #: a task marked "not run: data missing" has its data here
    PARAMS_SHA256 = 5  #: the learner's meta-parameters do not hash to the recorded sha256
    CLASS_LIMIT = 6  #: a task marked "at most C classes" that the learner could have run
    CONFIG = 7  #: learner.config differs from the config the learner spec builds


class Refusal(UserError):
    """A check that failed on a valid file; ``code`` is its :class:`Exit` status."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


def miss_probability(pool: int, n: int, forged: int) -> float:
    """P(none of ``n`` streams drawn without replacement from ``pool`` is one of ``forged``)."""
    if n > pool - forged:
        return 0.0
    return math.comb(pool - forged, n) / math.comb(pool, n)


def forged_streams(pool: int, fraction: float = FORGED_FRACTION) -> int:
    """The fewest forged streams that make up ``fraction`` of ``pool`` (at least one)."""
    return max(1, math.ceil(fraction * pool - 1e-9))


def streams_for_detection(
    pool: int, fraction: float = FORGED_FRACTION, detection: float = DETECTION
) -> int:
    """Smallest ``n`` with ``1 - miss_probability(pool, n, ceil(fraction * pool)) >= detection``."""
    if pool < 1:
        raise ValueError("the pool of streams is empty")
    forged = forged_streams(pool, fraction)
    for n in range(1, pool + 1):
        if 1.0 - miss_probability(pool, n, forged) >= detection:
            return n
    return pool


def fresh_seed() -> int:
    """A seed no submitter can predict (the OS's randomness)."""
    return secrets.randbits(SEED_BITS)


def check_seed(seed: Any) -> int:
    """``seed`` if it is a non-negative integer of at most :data:`SEED_BITS` bits."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**SEED_BITS:
        raise UserError(f"--seed must be an integer from 0 to 2**{SEED_BITS} - 1, not {seed}")
    return seed


def check_params(doc: Mapping[str, Any], learner: Any) -> None:
    """Refuse (exit 5) when the learner's meta-parameters are not the recorded ones."""
    from vsml_bench.leaderboard import harness

    sha = None if learner.meta_params is None else harness.meta_params_sha256(learner.meta_params)
    recorded = doc["learner"]["meta_params_sha256"]
    if sha != recorded:
        raise Refusal(
            Exit.PARAMS_SHA256,
            f"the file records meta_params_sha256 {recorded} but the meta-parameters of "
            f"{doc['learner']['spec']} hash to {sha}",
        )


def check_meta_trained_on(doc: Mapping[str, Any], learner: Any) -> None:
    """Refuse (exit 3) when the file's meta-training data is not what the learner declares."""
    declared = sorted(set(learner.meta_trained_on))
    recorded = doc["learner"]["meta_trained_on"]
    if recorded != declared:
        raise Refusal(
            Exit.META_TRAINED_ON,
            f"the file says meta_trained_on {recorded} but {doc['learner']['spec']} declares "
            f"{declared}, which decides the OOD headline",
        )


def check_missing_data(doc: Mapping[str, Any], data_dir: Any = None) -> None:
    """Refuse (exit 4) when a task marked "not run: data missing" has its data here."""
    from vsml_bench.leaderboard import harness, schema
    from vsml_bench.leaderboard.suites import SUITES

    suite = SUITES[doc["suite"]["id"]]
    for entry in doc["tasks"]:
        if entry["status"] != schema.MISSING:
            continue
        if harness.task_available(suite.task(entry["task_id"]), data_dir):
            raise Refusal(
                Exit.DATA_PRESENT,
                f"task {entry['task_id']} is marked {schema.MISSING!r} but its data is present "
                "here; a file must include every task whose data exists",
            )


def check_class_limits(doc: Mapping[str, Any], learner: Any) -> None:
    """Refuse (exit 6) when a task's "at most C classes" status is false for the learner."""
    from vsml_bench.leaderboard import schema

    problem = schema.class_limit_problem(doc, learner)
    if problem is not None:
        raise Refusal(Exit.CLASS_LIMIT, f"the file says {problem}")


def check_config(doc: Mapping[str, Any], learner: Any) -> None:
    """Refuse (exit 7) when the file's ``learner.config`` is not what its learner builds."""
    from vsml_bench.leaderboard import schema

    problem = schema.config_problem(doc, learner)
    if problem is not None:
        raise Refusal(Exit.CONFIG, f"the file says {problem}")


@dataclass(frozen=True)
class Plan:
    """Which streams a verification re-runs, and the guarantee that buys."""

    seed: int
    pool: int
    n_streams: int
    forged: int  #: forged streams of the guarantee, ceil(FORGED_FRACTION * pool)
    detection: float  #: P(catch) of a file with ``forged`` forged streams

    def describe(self) -> str:
        return (
            f"a file with >= {FORGED_FRACTION:.0%} forged streams (>= {self.forged} of "
            f"{self.pool}) is caught with probability >= {self.detection:.1%}"
        )


def plan(doc: Mapping[str, Any], n_streams: int | None, seed: int | None) -> Plan:
    """The default (or requested) number of streams and the seed, with their guarantee."""
    from vsml_bench.leaderboard import harness

    pool = len(harness.stream_pool(doc))
    if pool == 0:
        raise UserError("the results file has no task that ran, so there is nothing to verify")
    n = streams_for_detection(pool) if n_streams is None else min(n_streams, pool)
    forged = forged_streams(pool)
    return Plan(
        seed=fresh_seed() if seed is None else check_seed(seed),
        pool=pool,
        n_streams=n,
        forged=forged,
        detection=1.0 - miss_probability(pool, n, forged),
    )


def verify(
    doc: Mapping[str, Any], learner: Any, the_plan: Plan, data_dir: Any = None
) -> list[dict[str, Any]]:
    """Run checks 2-7 on a validated ``doc``; raises :class:`Refusal`, returns stream records."""
    from vsml_bench.leaderboard import harness

    check_params(doc, learner)
    check_meta_trained_on(doc, learner)
    check_missing_data(doc, data_dir)
    check_class_limits(doc, learner)
    check_config(doc, learner)
    picks = harness.pick_streams(doc, the_plan.n_streams, the_plan.seed)
    return harness.rerun_picked(doc, learner, picks, data_dir)
