"""Results files: schema, semantic checks, recomputation, safe storage, and a hostile-input fuzz."""

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsml_bench.leaderboard import schema
from vsml_bench.leaderboard.suites import get_suite

PROVENANCE = {
    "package_version": "0.1.0",
    "git_commit": None,
    "hardware": {"cpu": "test", "n_cpus": 2},
    "created_utc": "2026-01-01T00:00:00Z",
    "wall_time_s": 1.0,
}


def make_doc(
    name="tester", p=0.7, seed=0, suite_id="offline-v0", trained_on=("digits",), missing=()
):
    """A valid document with synthetic raw scores (no envs needed)."""
    suite = get_suite(suite_id)
    rng = np.random.default_rng(seed)
    results = {}
    for task in suite.tasks:
        if task.task_id in missing:
            results[task.task_id] = {"status": schema.MISSING}
            continue
        results[task.task_id] = {
            "correct": rng.random((task.n_streams, task.stream_length)) < p,
            "ce": rng.random(task.n_streams) * 2,
            "env_spec": None,
            "wall_time_s": 0.5,
        }
    learner = {
        "name": name,
        "spec": "synthetic",
        "config": {"lr": 0.1},
        "meta_trained_on": list(trained_on),
        "meta_params_sha256": None,
    }
    return schema.build_document(
        suite=suite, learner=learner, provenance=PROVENANCE, task_results=results
    )


@pytest.fixture(scope="module")
def base_doc():
    return make_doc()


def write(tmp_path, doc, name="in.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str | bytes) else doc)
    return path


def test_valid_document_round_trips(tmp_path, base_doc):
    assert schema.validate_results(copy.deepcopy(base_doc), require_official=True) == base_doc
    stored = schema.submit(write(tmp_path, base_doc), tmp_path / "results")
    assert stored.parent == (tmp_path / "results").resolve()
    assert schema.read_results(stored) == base_doc
    entries, problems = schema.load_entries(tmp_path / "results")
    assert entries == [base_doc] and problems == []
    # Compact: raw scores of 6 tasks x 64 streams x 300 examples in well under 100 kB.
    assert stored.stat().st_size < 100_000


def test_distribution_and_headline_use_meta_trained_on(base_doc):
    marks = {t["task_id"]: t["distribution"] for t in base_doc["tasks"]}
    assert marks["digits"] == "in-distribution"
    assert {v for k, v in marks.items() if k != "digits"} == {"ood"}
    assert base_doc["summary"]["n_ood_tasks_run"] == 5
    assert base_doc["summary"]["headline"] != base_doc["summary"]["all_tasks"]


def _reject(doc, match, official=True):
    with pytest.raises(schema.ResultsError, match=match) as info:
        schema.validate_results(doc, require_official=official)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_tampered_aggregates_are_rejected(base_doc):
    doc = copy.deepcopy(base_doc)
    doc["tasks"][2]["metrics"]["accuracy"]["value"] += 0.01
    msg = _reject(doc, "disagrees with its raw scores")
    assert "tasks[2]" in msg and "accuracy" in msg
    doc = copy.deepcopy(base_doc)
    doc["summary"]["headline"]["high"] = 0.99
    _reject(doc, "summary.headline.high")
    doc = copy.deepcopy(base_doc)
    doc["tasks"][0]["curve"][3][1] = 0.0
    _reject(doc, "curve")
    doc = copy.deepcopy(base_doc)
    doc["tasks"][1]["raw"]["ce"][0] += 1.0  # raw changed, aggregates not
    _reject(doc, "online_ce")


def test_semantic_checks(base_doc):
    doc = copy.deepcopy(base_doc)
    doc["tasks"][0]["distribution"] = "ood"
    _reject(doc, "meta_trained_on")
    doc = copy.deepcopy(base_doc)
    doc["tasks"][1]["status"] = schema.MISSING
    for key in ("raw", "metrics", "curve"):
        del doc["tasks"][1][key]
    _reject(doc, "ships with the package")
    doc = copy.deepcopy(base_doc)
    doc["tasks"][0]["seed"] = 7
    _reject(doc, "differ from the definition")
    doc = copy.deepcopy(base_doc)
    doc["suite"]["official"] = False
    _reject(doc, "cannot be submitted")
    doc = copy.deepcopy(base_doc)
    doc["suite"]["official"] = False
    doc["tasks"][0]["env_kwargs"] = {"download": True}
    _reject(doc, "is not a task of offline-v0", official=False)
    doc = copy.deepcopy(base_doc)
    doc["suite"]["id"] = "nope-v9"
    _reject(doc, "unknown suite")
    doc = copy.deepcopy(base_doc)
    doc["tasks"][0]["raw"]["correct"].pop()
    _reject(doc, "streams|ce values")


def test_missing_data_tasks_are_recorded_not_dropped():
    doc = make_doc(suite_id="ood-v0", trained_on=("mnist",), missing=("kmnist", "emnist", "svhn"))
    schema.validate_results(doc, require_official=True)
    statuses = {t["task_id"]: t["status"] for t in doc["tasks"]}
    assert statuses["kmnist"] == "not run: data missing" and statuses["mnist"] == "ok"
    assert doc["summary"]["n_tasks_missing"] == 3
    assert doc["summary"]["n_ood_tasks_run"] == 7  # 11 - 3 missing - mnist (in-distribution)


@pytest.mark.parametrize(
    "text, match",
    [
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b'{"a": 1e999}', "not valid JSON"),
        (b'{"a": 1, "a": 2}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "schema"),
        (b'"x"', "schema"),
        (b"1" * 5000, "not valid JSON"),  # beyond Python's int digit limit
    ],
)
def test_parser_rejects_hostile_bytes(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_bytes(text)
    with pytest.raises(schema.ResultsError, match=match):
        schema.submit(path, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_oversized_file_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MAX_FILE_BYTES", 1000)
    path = write(tmp_path, " " * 2000)
    with pytest.raises(schema.ResultsError, match="more than the 1000 allowed"):
        schema.submit(path, tmp_path / "results")


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "a/b\\c", "..", "/", "\x00evil", "<img src=x onerror=alert(1)>", "名前"],
)
def test_hostile_names_are_stored_under_a_safe_derived_file_name(tmp_path, name):
    doc = make_doc(name=name)
    stored = schema.submit(write(tmp_path, doc), tmp_path / "results")
    assert stored.parent == (tmp_path / "results").resolve()
    assert stored.name.endswith(".json") and "/" not in stored.name and ".." not in stored.name
    assert schema.read_results(stored)["learner"]["name"] == name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "results"]


def test_resubmitting_replaces_the_entry(tmp_path):
    first = schema.submit(write(tmp_path, make_doc(p=0.6)), tmp_path / "results")
    second = schema.submit(write(tmp_path, make_doc(p=0.8)), tmp_path / "results")
    assert first == second and len(list((tmp_path / "results").iterdir())) == 1
    assert schema.read_results(second)["summary"]["headline"]["value"] > 0.75


# --- fuzz ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_text = st.sampled_from(
    ["../../x", "/etc/passwd", "..\\..\\x", "a/../../b", "\x00", "<script>alert(1)</script>", ""]
) | st.text(max_size=300)


def _paths(obj, prefix=()):
    """Every (path) inside a JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        # Sample a few list positions only: raw rows are long.
        for i in sorted({0, len(obj) - 1} & set(range(len(obj)))):
            yield from _paths(obj[i], (*prefix, i))


def _set(doc, path, value):
    if not path:
        return value
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return doc


@st.composite
def hostile_files(draw, base):
    kind = draw(st.integers(0, 6))
    doc = copy.deepcopy(base)
    paths = list(_paths(base))
    if kind == 0:  # an arbitrary JSON value as the whole file
        return json.dumps(draw(json_values)).encode()
    if kind == 1:  # one field replaced by an arbitrary value (wrong types, wrong shapes)
        doc = _set(doc, draw(st.sampled_from(paths)), draw(json_values))
    elif kind == 2:  # hostile names and identifiers
        field = draw(
            st.sampled_from(
                [
                    ("learner", "name"),
                    ("learner", "spec"),
                    ("suite", "id"),
                    ("tasks", 0, "task_id"),
                    ("tasks", 0, "dataset"),
                    ("tasks", 0, "env_id"),
                ]
            )
        )
        doc = _set(doc, field, draw(hostile_text))
    elif kind == 3:  # a number nudged: aggregates that disagree with raw scores
        numeric = [p for p in paths if isinstance(_get(base, p), float) and "raw" not in p]
        path = draw(st.sampled_from(numeric))
        doc = _set(doc, path, _get(base, path) + draw(st.sampled_from([1e-5, -1e-3, 0.2, 1e300])))
    elif kind == 4:  # huge arrays
        n = draw(st.sampled_from([4097, 20000]))
        doc["tasks"][0]["raw"]["ce"] = [0.5] * n
        if draw(st.booleans()):
            doc["tasks"][0]["raw"]["correct"] = ["AAAA"] * n
    elif kind == 5:  # non-finite numbers and raw garbage in the text
        text = json.dumps(doc)
        token = draw(st.sampled_from(["NaN", "-Infinity", "1e400", '"\\ud800"', "{}"]))
        at = text.index(draw(st.sampled_from(['"value": ', '"ce": [', '"seed": '])))
        at = text.index(" ", at) + 1 + (text[text.index(" ", at) + 1] == "[")
        end = min(text.index(c, at) for c in ",]}" if c in text[at:])
        return (text[:at] + token + text[end:]).encode()
    else:  # raw bits corrupted or resized
        row = draw(st.sampled_from(["", "A", "////", "AAAA" * 200, "not base64!", "=" * 4]))
        doc["tasks"][draw(st.integers(0, 5))]["raw"]["correct"][0] = row
    return json.dumps(doc, allow_nan=True).encode()


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def test_fuzz_validator_with_hostile_files(tmp_path_factory, base_doc):
    root = tmp_path_factory.mktemp("fuzz")
    results = root / "results"
    before = set(os.listdir(root))
    seen = {"accepted": 0, "rejected": 0}

    @given(data=hostile_files(base_doc))
    @settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    def check(data):
        path = root / "submission.json"
        path.write_bytes(data)
        try:
            stored = schema.submit(path, results)
        except schema.ResultsError as error:
            assert "\n" not in str(error)
            seen["rejected"] += 1
        else:  # a mutation can be harmless (e.g. a new name): it must be stored safely
            assert stored.parent == results.resolve()
            seen["accepted"] += 1

    check()
    assert seen["rejected"] + seen["accepted"] >= 1000
    assert seen["rejected"] > 900
    # Nothing written anywhere but the submission itself and the results folder.
    assert set(os.listdir(root)) - before <= {"submission.json", "results"}
    for stored in results.glob("*") if results.exists() else []:
        assert stored.is_file() and Path(stored).parent == results
