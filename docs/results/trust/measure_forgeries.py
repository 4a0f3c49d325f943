"""Measure default ``vsml-bench verify`` against random forgeries of a committed results file.

Each trial forges exactly ``ceil(5% N)`` of the file's ``N`` streams (the hardest case the
guarantee covers), drawn with a seeded generator, and checks the forgery with verify's own
code: a fresh OS seed (:func:`verify.plan` with ``seed=None``), the default number of streams,
the real draw and the real comparison. A forged stream is changed in one of three ways, chosen
at random: ``perfect`` (every prediction right: the forgery that moves a headline), ``one_bit``
(one wrong prediction made right: the smallest change to the bits) or ``ce`` (the stream's
cross-entropy scaled by 0.9, bits untouched). Every forged stream differs from the true one.

The true streams are re-run once, all of them, with the real learner, and served from memory to
verify (the learner is deterministic: a stream re-runs identically, checked first). The first
``--validated`` forgeries are also rebuilt with every aggregate recomputed and pass
:func:`schema.validate_results` (what ``submit`` checks); verify does not read aggregates, so
the others edit the raw scores only.

For every trial the script also records whether the draw contains a forged stream; verify
must refuse exactly those trials (``mismatches`` counts the others and must be 0).

Usage (from the repository root)::

    python docs/results/trust/measure_forgeries.py sgd__offline-v0__9449634518.json \
        --trials 5000 --seed 12 --out docs/results/trust/forgeries_sgd_offline.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np

from vsml_bench.io import atomic_write_text
from vsml_bench.leaderboard import harness, metrics, schema, verify
from vsml_bench.leaderboard.suites import get_suite

KINDS = ("perfect", "one_bit", "ce")


def forge_stream(raw: dict, i: int, kind: str, rng: np.random.Generator) -> None:
    """Change stream ``i`` of a task's raw scores in place (it always differs afterwards)."""
    bits = metrics.decode_bits(raw["correct"][i], raw["n_scored"])
    if kind == "perfect":
        bits[:] = True
    elif kind == "one_bit":
        bits[rng.choice(np.flatnonzero(~bits))] = True
    else:
        raw["ce"][i] = round(raw["ce"][i] * 0.9, 6)
    raw["correct"][i] = metrics.encode_bits(bits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a file in the package's leaderboard/results/")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, required=True, help="seed of the forgeries")
    parser.add_argument("--validated", type=int, default=20)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    base = schema.read_results(schema.RESULTS_DIR / args.file)
    learner = harness.learner_from_spec(base["learner"]["spec"], schema.RESULTS_DIR)
    pool = harness.stream_pool(base)

    real_run_task, real_meta_params = harness.run_task, harness._task_meta_params
    truth_by_task: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    meta_by_task: dict[str, object] = {}

    def memo_meta_params(learner, task, data_dir):
        if task.task_id not in meta_by_task:
            meta_by_task[task.task_id] = real_meta_params(learner, task, data_dir)
        return meta_by_task[task.task_id]

    def memo_run_task(learner, task, meta_params, stream_ids=None, data_dir=None):
        if task.task_id not in truth_by_task:
            truth_by_task[task.task_id] = real_run_task(learner, task, meta_params, None, data_dir)
        correct, ce = truth_by_task[task.task_id]
        return correct[np.asarray(stream_ids)], ce[np.asarray(stream_ids)]

    harness.run_task, harness._task_meta_params = memo_run_task, memo_meta_params
    t0 = time.process_time()
    everything = verify.Plan(0, len(pool), len(pool), 0, 1.0)
    assert all(r["agree"] for r in verify.verify(base, learner, everything)), "file does not re-run"
    rerun_cpu = time.process_time() - t0
    print(f"all {len(pool)} streams of {args.file} re-run identically ({rerun_cpu:.0f} CPU-s)")

    suite = get_suite(base["suite"]["id"])
    rng = np.random.default_rng(args.seed)
    n_forged = verify.forged_streams(len(pool))
    caught = drawn_forged = mismatches = validated = 0
    for trial in range(args.trials):
        doc = copy.deepcopy(base)
        by_id = {t["task_id"]: t for t in doc["tasks"]}
        forged = [pool[j] for j in rng.choice(len(pool), n_forged, replace=False)]
        for task_id, i in forged:
            forge_stream(by_id[task_id]["raw"], i, KINDS[rng.integers(len(KINDS))], rng)
        if trial < args.validated:  # the forgery passes every check submit makes
            results = {}
            for task in doc["tasks"]:
                if task["status"] != "ok":
                    results[task["task_id"]] = {"status": task["status"]}
                    continue
                correct, ce = metrics.decode_task_raw(task["raw"])
                results[task["task_id"]] = {"correct": correct, "ce": ce}
            doc = schema.build_document(
                suite=suite,
                learner=doc["learner"],
                provenance=doc["provenance"],
                task_results=results,
            )
            schema.validate_results(doc, require_official=True)
            validated += 1
        the_plan = verify.plan(doc, None, None)  # fresh OS seed, default number of streams
        refused = not all(r["agree"] for r in verify.verify(doc, learner, the_plan))
        picks = harness.pick_streams(doc, the_plan.n_streams, the_plan.seed)
        hit = bool({(t, i) for t, ids in picks.items() for i in ids} & set(forged))
        caught += refused
        drawn_forged += hit
        mismatches += refused != hit
    rate = caught / args.trials
    se = math.sqrt(the_plan.detection * (1 - the_plan.detection) / args.trials)
    figures = {
        "file": args.file,
        "trials": args.trials,
        "forgery_seed": args.seed,
        "pool": len(pool),
        "forged_per_file": n_forged,
        "streams_rerun": the_plan.n_streams,
        "stated_detection": round(the_plan.detection, 6),
        "caught": caught,
        "catch_rate": round(rate, 6),
        "standard_error": round(se, 6),
        "draws_with_a_forged_stream": drawn_forged,
        "mismatches": mismatches,
        "validated_forgeries": validated,
        "cpu_s": round(time.process_time() - t0, 1),
    }
    print(json.dumps(figures, indent=1))
    if args.out:
        atomic_write_text(args.out, json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
