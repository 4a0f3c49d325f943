"""The results file: its JSON Schema, strict parsing, semantic checks, aggregates, and storage.

A results file (``schemas/results-v2.json``) holds one learner's raw per-stream scores on one
suite, its provenance, and aggregates. Aggregates are never trusted: :func:`validate_results`
recomputes every one of them from the raw scores (:func:`summary`, :func:`task_aggregates`)
and rejects a file whose stored numbers differ, with one sentence naming the first
disagreement.

Versions. v2 adds the task status "not run: learner supports at most C classes" (a
fixed-size learner on a task with more classes, :func:`too_many_classes`) and, to the summary,
the in-distribution IQM and the OOD gap (in-distribution IQM minus the headline). v1 files
still validate (against ``schemas/results-v1.json``) and :func:`read_results` returns them
upgraded in memory (:func:`upgrade`: v1 statuses are v2 statuses; the summary is recomputed
from the raw scores); the file on disk is left as it is.

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
import stat
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.errors import UserError
from vsml_bench.io import atomic_write_text
from vsml_bench.leaderboard import identity, metrics
from vsml_bench.leaderboard.suites import EMBEDDED_DATASETS, SUITES

FORMAT = "vsml-bench/results"
SCHEMA_VERSION = 2
#: Versions this package validates; older ones are upgraded in memory (:func:`upgrade`).
READABLE_VERSIONS = (1, 2)
#: Larger files are refused before parsing (64 streams x 11 tasks x 500 steps is ~100 kB).
MAX_FILE_BYTES = 16 * 1024 * 1024
MISSING = "not run: data missing"
_TOO_MANY_CLASSES = re.compile(r"not run: learner supports at most ([1-9][0-9]{0,5}) classes")
#: Stored aggregates are rounded to 6 decimals; allow for the rounding of both sides.
TOLERANCE = 2.5e-6
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Replaced entries are moved here (under the results folder), never deleted.
HISTORY_DIR = "history"


class ResultsError(UserError):
    """A results file that is unreadable, malformed, or whose numbers do not add up."""


def too_many_classes(max_classes: int) -> str:
    """The status of a task with more classes than the learner's ``max_classes`` outputs."""
    return f"not run: learner supports at most {int(max_classes)} classes"


def max_classes_of(status: str) -> int | None:
    """``C`` of a :func:`too_many_classes` status; None for any other status."""
    match = _TOO_MANY_CLASSES.fullmatch(status)
    return None if match is None else int(match.group(1))


@cache
def load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The results JSON Schema of ``version`` shipped in the package."""
    path = f"schemas/results-v{int(version)}.json"
    return json.loads(resources.files("vsml_bench.leaderboard").joinpath(path).read_text())


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


def read_bounded(path: str | os.PathLike[str], what: str = "results file") -> bytes:
    """The bytes of a regular file of at most :data:`MAX_FILE_BYTES`, else :class:`ResultsError`.

    The file is opened non-blocking and checked with ``fstat`` on the open descriptor, so a
    FIFO, a device such as ``/dev/zero`` or a folder is refused without blocking or reading,
    and at most ``MAX_FILE_BYTES + 1`` bytes are ever read (a file may grow after the check).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise ResultsError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ResultsError(f"{what} {path} is {kind}; pass a file")
        if info.st_size > MAX_FILE_BYTES:
            raise ResultsError(
                f"{what} {path.name} is {info.st_size} bytes, more than the "
                f"{MAX_FILE_BYTES} allowed"
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ResultsError(f"cannot read {what} {path}: {error.strerror or error}") from None
    finally:
        os.close(fd)
    return data


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read, parse and fully validate a results file, upgraded to the current version.

    Raises :class:`ResultsError`.
    """
    return upgrade(validate_results(parse_results(read_bounded(path))))


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
        "metrics": {k: v.to_dict() for k, v in metrics.task_metrics(correct, ce, task_id).items()},
        "curve": [list(point) for point in metrics.learning_curve(correct)],
    }


def summary(
    tasks: list[Mapping[str, Any]],
    decoded: Mapping[str, np.ndarray],
    version: int = SCHEMA_VERSION,
) -> dict[str, Any]:
    """Headline (IQM over OOD tasks), all-task IQM and (v2) the OOD gap, with stratified CIs.

    ``decoded`` maps task_id -> per-stream accuracies of the tasks that ran. From v2 on:
    ``in_distribution``, the IQM over the in-distribution tasks that ran (None without any),
    and ``ood_gap`` = ``in_distribution - headline`` with the CI of
    :func:`metrics.stratified_bootstrap_gap` (None unless both groups ran).
    """
    ran = [t for t in tasks if t["status"] == "ok"]
    ood = [t for t in ran if t["distribution"] == "ood"]
    in_dist = [t for t in ran if t["distribution"] != "ood"]

    def scores(group: list[Mapping[str, Any]]) -> list[np.ndarray]:
        return [decoded[t["task_id"]] for t in group]

    def iqm_of(group: list[Mapping[str, Any]], label: str) -> dict[str, float] | None:
        if not group:
            return None
        return metrics.stratified_bootstrap_iqm(scores(group), label=label).to_dict()

    out: dict[str, Any] = {
        "headline": iqm_of(ood, "headline"),
        "all_tasks": iqm_of(ran, "all_tasks"),
        "n_tasks_run": len(ran),
        "n_ood_tasks_run": len(ood),
        "n_tasks_missing": len(tasks) - len(ran),
    }
    if version >= 2:
        gap = None
        if in_dist and ood:
            gap = metrics.stratified_bootstrap_gap(scores(in_dist), scores(ood))[2].to_dict()
        out.update(in_distribution=iqm_of(in_dist, "in_distribution"), ood_gap=gap)
    return out


def stream_accuracies(doc: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """task_id -> per-stream mean online accuracy, for the tasks of a *validated* file that ran."""
    out = {}
    for task in doc["tasks"]:
        if task["status"] == "ok":
            correct, _ = metrics.decode_task_raw(task["raw"])
            out[task["task_id"]] = correct.mean(axis=1)
    return out


# --- validation ---------------------------------------------------------------------------


@cache
def _validator(version: int = SCHEMA_VERSION) -> Any:
    """A Draft 2020-12 validator whose ``integer`` is a JSON integer, not any whole number.

    The standard's ``integer`` accepts ``64.0`` (and Python's ``True``); results files must say
    ``64``: a float where an integer belongs is a forged or broken file, not a rounding.
    """
    import jsonschema

    def is_integer(_checker: Any, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer)
    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    return strict(load_schema(version))


def version_of(doc: Any) -> int:
    """The readable schema version ``doc`` declares, else the current one (to report against)."""
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    readable = type(version) is int and version in READABLE_VERSIONS
    return version if readable else SCHEMA_VERSION


def _schema_errors(doc: Any, version: int) -> str | None:
    import jsonschema

    validator = _validator(version)
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


def _check_text(value: Any, path: tuple[Any, ...] = ()) -> None:
    """Refuse any string (key or value) that is not printable, valid Unicode text.

    A lone surrogate or a control character in a name, a spec or a provenance field can break
    the terminal that prints it and the page that renders it; nothing needs one.
    """
    if isinstance(value, str):
        problem = identity.text_problem(value)
        if problem is not None:
            raise ResultsError(f"results file is invalid: the text at {_where(path)} {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_text(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, (*path, i))


def _canonical(value: Any) -> str:
    """JSON text that tells ``16`` from ``16.0`` and ``true`` from ``1`` (Python's == does not)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_learner_block(learner: Mapping[str, Any]) -> None:
    """The name and spec rules of :mod:`identity` (no file is opened)."""
    problem = identity.name_problem(learner["name"])
    if problem is not None:
        raise ResultsError(f"results file is invalid: learner.name {problem}")
    try:
        identity.check_spec_registered(learner["spec"])
    except identity.IdentityError as error:
        raise ResultsError(
            f"results file is invalid: learner.spec {_short(repr(learner['spec']), 60)} {error}"
        ) from None


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

    Checks, in order: the JSON Schema of the version the file declares (JSON integers only
    where integers belong; v1 files are checked as v1, see :func:`upgrade`); printable,
    valid Unicode in every string; the learner's name and spec rules (:mod:`identity`); the suite (known ID, matching fingerprint and task
    definitions for official suites; ``require_official`` refuses resized runs); unique task
    IDs; the in-distribution/OOD marking against ``learner.meta_trained_on``; "data missing"
    only for file-backed datasets, "learner supports at most C classes" only for tasks with
    more than C classes; the raw scores (decodable, one row per stream, one bit per
    example); and finally every stored aggregate against its recomputation.
    """
    version = version_of(doc)
    problem = _schema_errors(doc, version)
    if problem is not None:
        raise ResultsError(
            f"results file does not match the results-v{version} schema at {problem}"
        )
    _check_text(doc)
    check_learner_block(doc["learner"])
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
        expected = [t.to_dict() for t in suite.tasks]
        keys = set().union(*expected)  # "episodes" only on fixed-episode tasks
        got = [{k: t[k] for k in keys if k in t} for t in doc["tasks"]]
        if _canonical(got) != _canonical(expected):
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
        defined = {t.task_id: t.to_dict() for t in suite.tasks}
        for task in doc["tasks"]:
            want = defined.get(task["task_id"])
            fixed = ("dataset", "env_id", "env_kwargs", "seed")
            if (
                want is None
                or any(_canonical(task[k]) != _canonical(want[k]) for k in fixed)
                or task.get("episodes") != want.get("episodes")
            ):
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
            limit = max_classes_of(task["status"])
            if limit is None and task["dataset"] in EMBEDDED_DATASETS:
                raise ResultsError(
                    f"results file says data is missing for {where}, but {task['dataset']} "
                    "ships with the package"
                )
            n_classes = suite.task(task["task_id"]).n_classes
            if limit is not None and n_classes is not None and n_classes <= limit:
                raise ResultsError(
                    f"results file says {where} was not run because the learner supports at "
                    f"most {limit} classes, but the task has only {n_classes}"
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
        defined = suite.task(task["task_id"]) if doc["suite"]["official"] else None
        if defined is not None and correct.shape[1] != defined.n_scored:
            # An official suite scores every online step and every few-shot query; fewer is a
            # truncated run.
            what = " queries" if defined.few_shot else ""
            raise ResultsError(
                f"results file scores {correct.shape[1]} examples per stream in {where}, but "
                f"{suite_id} scores all {defined.n_scored}{what}; re-run `vsml-bench evaluate`"
            )
        expected_aggs = task_aggregates(task["task_id"], correct, ce)
        _compare(task["metrics"], expected_aggs["metrics"], f"{where}.metrics")
        _compare(task["curve"], expected_aggs["curve"], f"{where}.curve")
        decoded[task["task_id"]] = correct.mean(axis=1)
    _compare(doc["summary"], summary(doc["tasks"], decoded, version), "summary")
    return doc


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """A *validated* document in the current version's form; current ones come back as they are.

    v1 -> v2: every v1 status is a v2 status, so only the summary changes; it is recomputed
    from the raw scores (adding ``in_distribution`` and ``ood_gap``). The result validates
    as v2.
    """
    if doc["schema_version"] == SCHEMA_VERSION:
        return doc
    return {
        **doc,
        "schema_version": SCHEMA_VERSION,
        "summary": summary(doc["tasks"], stream_accuracies(doc)),
    }


# --- storage ------------------------------------------------------------------------------


def dump_results(doc: Mapping[str, Any]) -> str:
    """Canonical text of a results file (compact raw rows, stable key order)."""
    return json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n"


def entry_file_name(doc: Mapping[str, Any]) -> str:
    """A safe file name for a leaderboard entry, derived only from validated fields.

    ``<slug of learner name>__<suite>__<10 hex of sha256(name)>.json``: the slug keeps it
    readable, the hash keeps two names with the same slug apart. Which submissions may take
    an existing file's place is decided by :func:`check_identity`.
    """
    name = doc["learner"]["name"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "learner"
    suite = re.sub(r"[^a-z0-9]+", "-", doc["suite"]["id"].lower()).strip("-") or "suite"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{slug}__{suite}__{digest}.json"


def results_root(results_dir: str | os.PathLike[str] | None = None) -> Path:
    """The results folder, resolved; a path that exists but is not a folder is an error."""
    root = Path(results_dir or RESULTS_DIR)
    if root.exists() and not root.is_dir():
        raise ResultsError(f"--results-dir {root} is a file, not a folder; pass a folder")
    return root.resolve()


def _board(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, learner block)`` of the entries in ``root`` whose learner block is readable.

    Only the learner block is needed to check names and identities, so files are parsed but
    not fully validated (a broken entry is reported by :func:`load_entries`, not here).
    """
    board = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        try:
            doc = parse_results(read_bounded(path))
            learner = doc["learner"]
            if isinstance(learner.get("name"), str):
                board.append((path, learner))
        except (ResultsError, TypeError, KeyError, AttributeError):
            continue
    return board


def check_declared_learner(
    doc: Mapping[str, Any], results_dir: str | os.PathLike[str] | None = None
) -> None:
    """The file's ``meta_trained_on`` and ``meta_params_sha256`` must be what its spec declares.

    The learner is built from the (validated) spec: a registered learner's own declaration, a
    shipped model card, or a parameter file under the results folder whose bytes hash to its
    name. Declaring extra meta-training data would move tasks out of the OOD headline.
    """
    from vsml_bench.leaderboard import harness

    learner_block = doc["learner"]
    try:
        learner = harness.learner_from_spec(learner_block["spec"], results_root(results_dir))
    except UserError as error:
        raise ResultsError(f"cannot build the results file's learner: {error}") from None
    declared = sorted(set(learner.meta_trained_on))
    if learner_block["meta_trained_on"] != declared:
        raise ResultsError(
            f"results file says learner.meta_trained_on is {learner_block['meta_trained_on']} "
            f"but {learner_block['spec']} declares {declared}; evaluate without "
            "--meta-trained-on, or ship a model card that declares the data"
        )
    problem = class_limit_problem(doc, learner)
    if problem is not None:
        raise ResultsError(f"results file says {problem}")
    sha = None if learner.meta_params is None else harness.meta_params_sha256(learner.meta_params)
    if learner_block["meta_params_sha256"] != sha:
        raise ResultsError(
            f"results file's learner.meta_params_sha256 is {learner_block['meta_params_sha256']} "
            f"but the meta-parameters of {learner_block['spec']} hash to {sha}"
        )
    problem = config_problem(doc, learner)
    if problem is not None:
        raise ResultsError(f"results file says {problem}")


def config_problem(doc: Mapping[str, Any], learner: Any) -> str | None:
    """How the file's ``learner.config`` differs from the config ``learner`` builds, or None.

    An official file's spec names a learner without options (``evaluate --learner-config``
    makes a run unofficial), so its config must be exactly what the spec builds: the
    registered defaults, or a parameter file's model card. The first differing option is named.
    """
    from vsml_bench.leaderboard import harness

    def canonical(value: Any) -> str:  # JSON text: 1, 1.0 and true are different options
        return json.dumps(value, sort_keys=True)

    recorded = doc["learner"]["config"]
    built = harness.learner_record(learner, doc["learner"]["spec"])["config"]
    if canonical(recorded) == canonical(built):
        return None
    if not isinstance(recorded, dict):
        return f"learner.config is {_short(canonical(recorded), 60)}, not a JSON object"

    def differs(k: str) -> bool:
        if (k in recorded) != (k in built):
            return True
        return canonical(recorded[k]) != canonical(built[k])

    key = min(k for k in set(recorded) | set(built) if differs(k))

    def show(config: Mapping[str, Any]) -> str:
        return _short(canonical(config[key]), 60) if key in config else "absent"

    return (
        f"learner.config {key!r} is {show(recorded)} but {doc['learner']['spec']} builds "
        f"{show(built)}; evaluate with the spec alone (no --learner-config) and submit that file"
    )


def class_limit_problem(doc: Mapping[str, Any], learner: Any) -> str | None:
    """Why a task's "at most C classes" status is false for ``learner``, or None if all hold.

    Only a learner whose meta-parameters fix its number of outputs (``learner.fixed_spec``)
    can skip a task for that reason, and ``C`` must be that number: otherwise the status
    would hide a task the learner could have run.
    """
    spec = learner.fixed_spec
    for task in doc["tasks"]:
        limit = max_classes_of(task["status"])
        if limit is None or (spec is not None and spec.n_classes == limit):
            continue
        has = "runs any number of classes" if spec is None else f"has {spec.n_classes} outputs"
        return (
            f"task {task['task_id']} was not run because the learner supports at most {limit} "
            f"classes, but {doc['learner']['spec']} {has}"
        )
    return None


def check_identity(
    doc: Mapping[str, Any], board: list[tuple[Path, dict[str, Any]]], *, replace: bool = False
) -> list[Path]:
    """Files of ``board`` this entry replaces (to move to history); raise on a name clash.

    A name identifies one learner (spec, meta-parameters, config) on the whole board: an entry
    with a confusable name (same :func:`identity.skeleton`, different text) is refused; one
    with the same name but another identity is refused unless ``replace``, which retires every
    file of that name with another identity. The same learner re-submitted on a suite replaces
    its own earlier file there.
    """
    learner = doc["learner"]
    mine = identity.skeleton(learner["name"])
    own_id = identity.learner_identity(learner)
    target = entry_file_name(doc)
    retire = []
    for path, other in board:
        if identity.skeleton(other["name"]) != mine:
            continue
        if other["name"] != learner["name"]:
            raise ResultsError(
                f"learner name {learner['name']!r} is confusable with the existing entry "
                f"{other['name']!r}; choose a clearly different --name"
            )
        if identity.learner_identity(other) != own_id:
            if not replace:
                raise ResultsError(
                    f"the board already has {other['name']!r} with another spec, meta-parameters "
                    "or config; choose another --name, or pass --replace to retire the old "
                    "entries (kept under results/history/)"
                )
            retire.append(path)
        elif path.name == target:
            retire.append(path)  # the same learner re-run on this suite: keep the old file
    return retire


def store_entry(
    doc: Mapping[str, Any],
    results_dir: str | os.PathLike[str] | None = None,
    retire: Sequence[Path] = (),
) -> tuple[Path, list[Path]]:
    """Move ``retire`` into ``results/history/``, then write ``doc``; returns both locations."""
    root = results_root(results_dir)
    target = (root / entry_file_name(doc)).resolve()
    # Belt and braces: the name has no separators, but never write outside the results folder.
    if target.parent != root:
        raise ResultsError("refusing to write a leaderboard entry outside the results folder")
    moved = []
    if retire:
        history = root / HISTORY_DIR
        history.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        for path in retire:
            if path.resolve().parent != root:
                continue
            destination = history / f"{path.stem}.{stamp}.json"
            os.replace(path, destination)
            moved.append(destination)
    return atomic_write_text(target, dump_results(doc)), moved


def submit_entry(
    path: str | os.PathLike[str],
    results_dir: str | os.PathLike[str] | None = None,
    *,
    replace: bool = False,
) -> tuple[Path, list[Path]]:
    """Validate ``path`` (official suites only) and store it; returns (stored, moved to history).

    Order: the results folder, the file (a regular file, size-capped, before reading), the
    schema and every recomputable number, the learner's declaration (meta-training data and
    meta-parameter hash), then the name against the board. Nothing is written unless all pass.
    """
    root = results_root(results_dir)
    doc = validate_results(parse_results(read_bounded(path)), require_official=True)
    check_declared_learner(doc, root)
    retire = check_identity(doc, _board(root), replace=replace)
    try:
        return store_entry(doc, root, retire)
    except OSError as error:
        raise ResultsError(
            f"cannot store the entry in {root}: {error.strerror or error}; check the folder"
        ) from None


def submit(
    path: str | os.PathLike[str],
    results_dir: str | os.PathLike[str] | None = None,
    *,
    replace: bool = False,
) -> Path:
    """:func:`submit_entry`, returning only where the entry was stored."""
    return submit_entry(path, results_dir, replace=replace)[0]


def load_entries(
    results_dir: str | os.PathLike[str] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Valid entries in ``results_dir`` sorted by file name, and one line per file rejected.

    An invalid file (hand-edited, stale schema) is reported, not fatal: it must not break the
    page for every other entry. A file whose name is confusable with an earlier file's, or
    that reuses its name for another learner (a file copied in by hand), is rejected too.
    """
    root = Path(results_dir or RESULTS_DIR)
    entries, problems = [], []
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted(root.glob("*.json")):
        try:
            doc = read_results(path)
            first = seen.setdefault(identity.skeleton(doc["learner"]["name"]), doc["learner"])
            if first is not doc["learner"] and (
                first["name"] != doc["learner"]["name"]
                or identity.learner_identity(first) != identity.learner_identity(doc["learner"])
            ):
                raise ResultsError(
                    f"learner name {doc['learner']['name']!r} clashes with the entry "
                    f"{first['name']!r} of another learner"
                )
            entries.append(doc)
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
    "wall_time_s"}`` for tasks that ran, or ``{"status": MISSING}`` (or
    :func:`too_many_classes`) for tasks that did not; tasks absent from it are not in the
    document yet (a partial, resumable file).
    """
    tasks = []
    decoded = {}
    for task in suite.tasks:
        if task.task_id not in task_results:
            continue
        result = task_results[task.task_id]
        entry: dict[str, Any] = {
            **task.to_dict(),
            "distribution": distribution_of(task.dataset, learner.get("meta_trained_on", ())),
        }
        if result.get("status", "ok") != "ok":
            entry.update(status=result["status"], env_spec=None, wall_time_s=0.0)
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
        if result.get("adaptation") is not None:  # how a fixed-size learner was fed the task
            entry["adaptation"] = dict(result["adaptation"])
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
