"""The results file: its JSON Schema, strict parsing, semantic checks, aggregates, and storage.

A results file (``schemas/results-v1.json``) holds one learner's raw per-stream scores on one
suite, its provenance, and aggregates. Aggregates are never trusted: :func:`validate_results`
recomputes every one of them from the raw scores (:func:`aggregate`) and rejects a file whose
stored numbers differ, with one sentence naming the first disagreement.

Hostile input is expected (the submit command takes files from strangers): the size is capped
before parsing, NaN/Infinity, duplicate keys and absurd nesting are rejected, the schema bounds
every array and string, and the stored file name is derived here, never taken from the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.errors import UserError
from vsml_bench.io import atomic_write_text
from vsml_bench.leaderboard import metrics
from vsml_bench.leaderboard.suites import EMBEDDED_DATASETS, SUITES

FORMAT = "vsml-bench/results"
SCHEMA_VERSION = 1
#: Larger files are refused before parsing (64 streams x 11 tasks x 500 steps is ~100 kB).
MAX_FILE_BYTES = 16 * 1024 * 1024
MISSING = "not run: data missing"
#: Stored aggregates are rounded to 6 decimals; allow for the rounding of both sides.
TOLERANCE = 2.5e-6
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class ResultsError(UserError):
    """A results file that is unreadable, malformed, or whose numbers do not add up."""


@cache
def load_schema() -> dict[str, Any]:
    """The results JSON Schema shipped in the package."""
    text = resources.files("vsml_bench.leaderboard").joinpath("schemas/results-v1.json").read_text()
    return json.loads(text)


# --- parsing ------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in results files")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400 overflows to inf
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def parse_results(data: bytes) -> Any:
    """Strict JSON parsing of an untrusted results file (size-capped, finite numbers only)."""
    if len(data) > MAX_FILE_BYTES:
        raise ResultsError(
            f"results file is {len(data)} bytes, more than the {MAX_FILE_BYTES} allowed; "
            "store compact raw scores as `vsml-bench evaluate` writes them"
        )
    try:
        return json.loads(
            data.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicates,
        )
    except RecursionError:
        raise ResultsError("results file is nested too deeply to be a results file") from None
    except (UnicodeDecodeError, ValueError) as error:
        # json.JSONDecodeError is a ValueError; so are the hooks' complaints.
        raise ResultsError(f"results file is not valid JSON: {_short(str(error))}") from None


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read, parse and fully validate a results file; raises :class:`ResultsError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ResultsError(
                f"results file {path.name} is {size} bytes, more than the {MAX_FILE_BYTES} allowed"
            )
        data = path.read_bytes()
    except OSError as error:
        raise ResultsError(f"cannot read results file {path}: {error.strerror or error}") from None
    return validate_results(parse_results(data))


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(path: Any) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts).lstrip(".") or "the top level"


# --- aggregates ---------------------------------------------------------------------------


def distribution_of(dataset: str, meta_trained_on: Any) -> str:
    """``"in-distribution"`` when the learner's meta-training saw ``dataset``, else ``"ood"``."""
    return "in-distribution" if dataset in set(meta_trained_on or ()) else "ood"


def task_aggregates(task_id: str, correct: np.ndarray, ce: np.ndarray) -> dict[str, Any]:
    """``metrics`` and ``curve`` of one task from its raw scores."""
    return {
        "metrics": {k: v.to_json() for k, v in metrics.task_metrics(correct, ce, task_id).items()},
        "curve": [list(point) for point in metrics.learning_curve(correct)],
    }


def summary(tasks: list[Mapping[str, Any]], decoded: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Headline (IQM over OOD tasks) and all-task IQM, with stratified-bootstrap CIs.

    ``decoded`` maps task_id -> per-stream accuracies of the tasks that ran.
    """
    ran = [t for t in tasks if t["status"] == "ok"]
    ood = [t for t in ran if t["distribution"] == "ood"]

    def iqm_of(group: list[Mapping[str, Any]], label: str) -> dict[str, float] | None:
        if not group:
            return None
        scores = [decoded[t["task_id"]] for t in group]
        return metrics.stratified_bootstrap_iqm(scores, label=label).to_json()

    return {
        "headline": iqm_of(ood, "headline"),
        "all_tasks": iqm_of(ran, "all_tasks"),
        "n_tasks_run": len(ran),
        "n_ood_tasks_run": len(ood),
        "n_tasks_missing": len(tasks) - len(ran),
    }


def stream_accuracies(doc: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """task_id -> per-stream mean online accuracy, for the tasks of a *validated* file that ran."""
    out = {}
    for task in doc["tasks"]:
        if task["status"] == "ok":
            correct, _ = metrics.decode_task_raw(task["raw"])
            out[task["task_id"]] = correct.mean(axis=1)
    return out


# --- validation ---------------------------------------------------------------------------


def _schema_errors(doc: Any) -> str | None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return None
    return f"{_where(error.absolute_path)}: {_short(error.message)}"


def _bounded_json(value: Any, what: str, limit: int = 20000) -> None:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise ResultsError(f"results file is invalid: {what} is not plain JSON") from None
    if len(text) > limit:
        raise ResultsError(f"results file is invalid: {what} is longer than {limit} characters")


def _compare(stored: Any, expected: Any, where: str) -> None:
    """Raise on the first number that differs by more than :data:`TOLERANCE`."""
    if isinstance(expected, dict):
        if not isinstance(stored, dict) or set(stored) != set(expected):
            raise ResultsError(
                f"results file disagrees with its raw scores: {where} should have the fields "
                f"{sorted(expected)}; re-create it with `vsml-bench evaluate`"
            )
        for key in expected:
            _compare(stored[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        if not isinstance(stored, list) or len(stored) != len(expected):
            raise ResultsError(
                f"results file disagrees with its raw scores: {where} should have "
                f"{len(expected)} entries; re-create it with `vsml-bench evaluate`"
            )
        for i, (s, e) in enumerate(zip(stored, expected, strict=True)):
            _compare(s, e, f"{where}[{i}]")
    elif expected is None or isinstance(expected, bool | str):
        if stored != expected:
            raise ResultsError(
                f"results file disagrees with its raw scores: {where} is {_short(repr(stored), 40)} "
                f"but should be {expected!r}"
            )
    else:
        if (
            isinstance(stored, bool)
            or not isinstance(stored, int | float)
            or abs(stored - expected) > TOLERANCE
        ):
            raise ResultsError(
                f"results file disagrees with its raw scores: {where} is {_short(repr(stored), 40)} "
                f"but the raw scores give {expected!r}; re-create it with `vsml-bench evaluate`"
            )


def validate_results(doc: Any, *, require_official: bool = False) -> dict[str, Any]:
    """Validate a parsed results document; return it unchanged or raise :class:`ResultsError`.

    Checks, in order: the JSON Schema; the suite (known ID, matching fingerprint and task
    definitions for official suites; ``require_official`` refuses resized runs); unique task
    IDs; the in-distribution/OOD marking against ``learner.meta_trained_on``; "data missing"
    only for file-backed datasets; the raw scores (decodable, one row per stream, one bit per
    example); and finally every stored aggregate against its recomputation.
    """
    problem = _schema_errors(doc)
    if problem is not None:
        raise ResultsError(f"results file does not match the results-v1 schema at {problem}")
    _bounded_json(doc["learner"]["config"], "learner.config")
    suite_id = doc["suite"]["id"]
    suite = SUITES.get(suite_id)
    if suite is None:
        raise ResultsError(
            f"results file names unknown suite {suite_id!r}; known suites: {', '.join(sorted(SUITES))}"
        )
    if doc["suite"]["official"]:
        if doc["suite"]["fingerprint"] != suite.fingerprint():
            raise ResultsError(
                f"results file's suite fingerprint does not match {suite_id}; "
                "it was made with a different version of the suite definitions"
            )
        expected = [t.to_json() for t in suite.tasks]
        got = [{k: t[k] for k in expected[0]} for t in doc["tasks"]]
        if got != expected:
            raise ResultsError(
                f"results file's tasks differ from the definition of {suite_id}; "
                "run `vsml-bench evaluate` on the unmodified suite"
            )
    elif require_official:
        raise ResultsError(
            "results file comes from a resized or partial (unofficial) suite run, which cannot be "
            "submitted; evaluate without --n-streams/--stream-length/--tasks"
        )
    else:
        # Unofficial runs may change sizes and drop tasks, never what a task is.
        defined = {t.task_id: t.to_json() for t in suite.tasks}
        for task in doc["tasks"]:
            want = defined.get(task["task_id"])
            fixed = ("dataset", "env_id", "env_kwargs", "seed")
            if want is None or any(task[k] != want[k] for k in fixed):
                raise ResultsError(
                    f"results file's task {task['task_id']!r} is not a task of {suite_id} "
                    "(dataset, env ID, kwargs and seed must match the suite definition)"
                )

    task_ids = [t["task_id"] for t in doc["tasks"]]
    if len(set(task_ids)) != len(task_ids):
        raise ResultsError("results file lists a task more than once")
    trained_on = doc["learner"]["meta_trained_on"]
    decoded: dict[str, np.ndarray] = {}
    for i, task in enumerate(doc["tasks"]):
        where = f"tasks[{i}] ({task['task_id']})"
        _bounded_json(task["env_kwargs"], f"{where}.env_kwargs")
        want = distribution_of(task["dataset"], trained_on)
        if task["distribution"] != want:
            raise ResultsError(
                f"results file marks {where} as {task['distribution']} but the learner's "
                f"meta_trained_on makes it {want}"
            )
        if task["status"] != "ok":
            if task["dataset"] in EMBEDDED_DATASETS:
                raise ResultsError(
                    f"results file says data is missing for {where}, but {task['dataset']} "
                    "ships with the package"
                )
            continue
        try:
            correct, ce = metrics.decode_task_raw(task["raw"])
        except metrics.RawScoreError as error:
            raise ResultsError(f"results file has bad raw scores in {where}: {error}") from None
        if correct.shape[0] != task["n_streams"]:
            raise ResultsError(
                f"results file has {correct.shape[0]} streams in {where} but declares "
                f"n_streams={task['n_streams']}"
            )
        if correct.shape[1] > task["stream_length"]:
            raise ResultsError(
                f"results file scores {correct.shape[1]} examples per stream in {where}, more "
                f"than its stream_length {task['stream_length']}"
            )
        expected_aggs = task_aggregates(task["task_id"], correct, ce)
        _compare(task["metrics"], expected_aggs["metrics"], f"{where}.metrics")
        _compare(task["curve"], expected_aggs["curve"], f"{where}.curve")
        decoded[task["task_id"]] = correct.mean(axis=1)
    _compare(doc["summary"], summary(doc["tasks"], decoded), "summary")
    return doc


# --- storage ------------------------------------------------------------------------------


def dump_results(doc: Mapping[str, Any]) -> str:
    """Canonical text of a results file (compact raw rows, stable key order)."""
    return json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n"


def entry_file_name(doc: Mapping[str, Any]) -> str:
    """A safe file name for a leaderboard entry, derived only from validated fields.

    ``<slug of learner name>__<suite>__<10 hex of sha256(name)>.json``: the slug keeps it
    readable, the hash keeps two names with the same slug apart; resubmitting under the same
    learner name on the same suite replaces the earlier entry.
    """
    name = doc["learner"]["name"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "learner"
    suite = re.sub(r"[^a-z0-9]+", "-", doc["suite"]["id"].lower()).strip("-") or "suite"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{slug}__{suite}__{digest}.json"


def store_entry(doc: Mapping[str, Any], results_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write a validated entry into ``results_dir`` (default: the package's ``results/``)."""
    root = Path(results_dir or RESULTS_DIR).resolve()
    target = (root / entry_file_name(doc)).resolve()
    # Belt and braces: the name has no separators, but never write outside the results folder.
    if target.parent != root:
        raise ResultsError("refusing to write a leaderboard entry outside the results folder")
    return atomic_write_text(target, dump_results(doc))


def submit(path: str | os.PathLike[str], results_dir: str | os.PathLike[str] | None = None) -> Path:
    """Validate ``path`` (official suites only), recompute its aggregates, and store it."""
    data_path = Path(path)
    try:
        size = data_path.stat().st_size
    except OSError as error:
        raise ResultsError(f"cannot read results file {path}: {error.strerror or error}") from None
    if size > MAX_FILE_BYTES:
        raise ResultsError(f"results file is {size} bytes, more than the {MAX_FILE_BYTES} allowed")
    try:
        data = data_path.read_bytes()
    except OSError as error:
        raise ResultsError(f"cannot read results file {path}: {error.strerror or error}") from None
    doc = validate_results(parse_results(data), require_official=True)
    return store_entry(doc, results_dir)


def load_entries(
    results_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Valid entries in ``results_dir`` sorted by file name, and one line per file rejected.

    An invalid file (hand-edited, stale schema) is reported, not fatal: it must not break the
    page for every other entry.
    """
    root = Path(results_dir or RESULTS_DIR)
    entries, problems = [], []
    for path in sorted(root.glob("*.json")):
        try:
            entries.append(read_results(path))
        except ResultsError as error:
            problems.append(f"{path.name}: {error}")
    return entries, problems


def build_document(
    *,
    suite: Any,
    learner: Mapping[str, Any],
    provenance: Mapping[str, Any],
    task_results: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Assemble a results document with every aggregate computed from the raw scores.

    ``task_results`` maps task_id -> ``{"correct": bool[S, T], "ce": float[S], "env_spec",
    "wall_time_s"}`` for tasks that ran, or ``{"status": MISSING}``; tasks absent from it are
    not in the document yet (a partial, resumable file).
    """
    tasks = []
    decoded = {}
    for task in suite.tasks:
        if task.task_id not in task_results:
            continue
        result = task_results[task.task_id]
        entry: dict[str, Any] = {
            **task.to_json(),
            "distribution": distribution_of(task.dataset, learner.get("meta_trained_on", ())),
        }
        if result.get("status", "ok") != "ok":
            entry.update(status=MISSING, env_spec=None, wall_time_s=0.0)
            tasks.append(entry)
            continue
        correct = np.asarray(result["correct"], dtype=bool)
        ce = np.asarray(result["ce"], dtype=np.float64)
        raw = metrics.encode_task_raw(correct, ce)
        # Aggregate the values as stored (ce rounded), so a recomputation matches exactly.
        correct, ce = metrics.decode_task_raw(raw)
        entry.update(
            status="ok",
            env_spec=result.get("env_spec"),
            wall_time_s=round(float(result.get("wall_time_s", 0.0)), 3),
            raw=raw,
            **task_aggregates(task.task_id, correct, ce),
        )
        decoded[task.task_id] = correct.mean(axis=1)
        tasks.append(entry)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "suite": {
            "id": suite.suite_id,
            "fingerprint": suite.fingerprint(),
            "official": suite.official,
        },
        "learner": dict(learner),
        "provenance": dict(provenance),
        "tasks": tasks,
        "summary": summary(tasks, decoded),
    }
