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
    name="tester",
    p=0.7,
    seed=0,
    suite_id="offline-v0",
    trained_on=(),
    missing=(),
    spec="chance",
    sha=None,
    n_scored=None,
    config=None,
):
    """A valid document with synthetic raw scores (no envs needed).

    The defaults make a submittable file: ``chance`` declares no meta-training data and no
    meta-parameters. Other ``trained_on``/``sha`` values validate but are refused by submit.
    ``config`` defaults to what a plain registered spec builds (submit checks it).
    """
    suite = get_suite(suite_id)
    rng = np.random.default_rng(seed)
    results = {}
    for task in suite.tasks:
        if task.task_id in missing:
            results[task.task_id] = {"status": schema.MISSING}
            continue
        results[task.task_id] = {
            "correct": rng.random((task.n_streams, n_scored or task.stream_length)) < p,
            "ce": rng.random(task.n_streams) * 2,
            "env_spec": None,
            "wall_time_s": 0.5,
        }
    learner = {
        "name": name,
        "spec": spec,
        "config": built_config(spec) if config is None else config,
        "meta_trained_on": list(trained_on),
        "meta_params_sha256": sha,
    }
    return schema.build_document(
        suite=suite, learner=learner, provenance=PROVENANCE, task_results=results
    )


def built_config(spec):
    """The ``learner.config`` a plain registered spec (``sgd``) builds; ``{}`` for others."""
    from vsml_bench import agents
    from vsml_bench.leaderboard import harness

    if not isinstance(spec, str) or ":" in spec or spec not in agents.learner_names():
        return {}
    return harness.learner_record(agents.make(spec), spec)["config"]


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


def test_distribution_and_headline_use_meta_trained_on():
    doc = make_doc(trained_on=("digits",))
    schema.validate_results(copy.deepcopy(doc), require_official=True)
    marks = {t["task_id"]: t["distribution"] for t in doc["tasks"]}
    assert marks["digits"] == "in-distribution"
    assert {v for k, v in marks.items() if k != "digits"} == {"ood"}
    assert doc["summary"]["n_ood_tasks_run"] == 5
    assert doc["summary"]["headline"] != doc["summary"]["all_tasks"]


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
    doc["tasks"][0]["distribution"] = "in-distribution"
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


@pytest.mark.parametrize("name", ["名前", "vsml (pretrained: mnist)", "a.b-c_d+e", "Σ-net 2"])
def test_safe_names_are_stored_under_a_derived_file_name(tmp_path, name):
    stored = schema.submit(write(tmp_path, make_doc(name=name)), tmp_path / "results")
    assert stored.parent == (tmp_path / "results").resolve()
    assert stored.name.endswith(".json") and "/" not in stored.name and ".." not in stored.name
    assert schema.read_results(stored)["learner"]["name"] == name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "results"]


@pytest.mark.parametrize(
    "name, match",
    [
        ("../../etc/passwd", "must start with a letter"),
        ("a/b\\c", "contains '/'"),
        ("\x00evil", "non-printable character U\\+0000"),
        ("<img src=x onerror=alert(1)>", "must start with a letter"),
        ("x<script>", "contains '<'"),
        ("ｓｇｄ", "not NFKC-normalised"),
        ("s\u200bgd", "non-printable character U\\+200B"),
        ("sgd\u202e", "non-printable"),
        ("sgd ", "trailing or repeated spaces"),
        ("a  b", "trailing or repeated spaces"),
        ("x" * 81, "longer than 80"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_unsafe_names_are_rejected_before_anything_is_written(tmp_path, name, match):
    path = tmp_path / "in.json"
    path.write_bytes(json.dumps(make_doc(name=name)).encode())  # \ud800 stays escaped JSON
    with pytest.raises(schema.ResultsError, match=match) as info:
        schema.submit(path, tmp_path / "results")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "results").exists()


def test_resubmitting_the_same_learner_replaces_its_entry_and_keeps_history(tmp_path):
    results = tmp_path / "results"
    first = schema.submit(write(tmp_path, make_doc(p=0.6)), results)
    old_text = first.read_text()
    second = schema.submit(write(tmp_path, make_doc(p=0.8)), results)
    assert first == second and sorted(p.name for p in results.glob("*.json")) == [first.name]
    assert schema.read_results(second)["summary"]["headline"]["value"] > 0.75
    history = list((results / "history").iterdir())
    assert len(history) == 1 and history[0].read_text() == old_text


@pytest.mark.slow
def test_a_name_belongs_to_one_learner_on_the_whole_board(tmp_path):
    results = tmp_path / "results"
    schema.submit(write(tmp_path, make_doc(name="adam", spec="adam")), results)
    # Same learner on another suite: the same entry name is fine.
    schema.submit(write(tmp_path, make_doc(name="adam", spec="adam", suite_id="ood-v0")), results)
    # Chance-level results under an existing name are refused, on any suite ...
    for suite_id in ("offline-v0", "ood-v0"):
        doc = make_doc(name="adam", p=0.1, suite_id=suite_id)
        with pytest.raises(schema.ResultsError, match="already has 'adam' with another spec"):
            schema.submit(write(tmp_path, doc), results)
    # ... and so are look-alikes of it.
    for fake in ("аdam", "ADAM", "a-d-a-m", "Αdam", "adám", "ad_am"):
        with pytest.raises(schema.ResultsError, match="confusable with the existing entry 'adam'"):
            schema.submit(write(tmp_path, make_doc(name=fake)), results)
    assert len(list(results.glob("*.json"))) == 2
    assert not (results / "history").exists()
    # --replace retires every file of the old learner under that name, keeping them.
    old = sorted(p.read_text() for p in results.glob("*.json"))
    stored, moved = schema.submit_entry(
        write(tmp_path, make_doc(name="adam")), results, replace=True
    )
    assert sorted(p.read_text() for p in moved) == old
    assert all(p.parent == results.resolve() / "history" for p in moved)
    assert [p.name for p in results.glob("*.json")] == [stored.name]
    assert schema.read_results(stored)["learner"]["spec"] == "chance"


def test_board_rejects_clashing_files_copied_in_by_hand(tmp_path):
    results = tmp_path / "results"
    schema.submit(write(tmp_path, make_doc(name="sgd", spec="sgd")), results)
    (results / "zz-copy.json").write_text(schema.dump_results(make_doc(name="ѕgd")))
    (results / "zz-other.json").write_text(
        schema.dump_results(make_doc(name="sgd", suite_id="ood-v0"))
    )
    entries, problems = schema.load_entries(results)
    assert [e["learner"]["spec"] for e in entries] == ["sgd"]
    assert len(problems) == 2 and all("clashes with the entry 'sgd'" in p for p in problems)


@pytest.mark.parametrize(
    "spec",
    [
        "vsml:/dev/zero",
        "vsml:../..",
        "sgd:../../etc/passwd",
        "vsml:params/../../x.msgpack",
        "vsml:params/abc.msgpack",
        "vsml:runs/x/best.msgpack",
        "synthetic",
        "vsml:nope",
        "SGD",
        "sgd ",
        "",
    ],
)
def test_specs_are_not_paths(tmp_path, monkeypatch, spec):
    from vsml_bench.leaderboard import harness

    def no_files(*args, **kwargs):
        raise AssertionError("a file was opened for a spec that is not valid")

    monkeypatch.setattr(harness, "learner_from_spec", no_files)
    monkeypatch.setattr(harness, "build_learner", no_files)
    doc = make_doc(spec=spec)
    match = r"learner\.spec|schema"
    with pytest.raises(schema.ResultsError, match=match):
        schema.validate_results(copy.deepcopy(doc))
    with pytest.raises(schema.ResultsError, match=match):
        schema.submit(write(tmp_path, doc), tmp_path / "results")


def test_parameter_files_must_sit_under_the_results_folder_and_hash_to_their_name(tmp_path):
    sha = "ab" * 32
    doc = make_doc(spec=f"vsml:params/{sha}.msgpack", sha=sha)
    schema.validate_results(copy.deepcopy(doc), require_official=True)  # the grammar is fine
    with pytest.raises(schema.ResultsError, match=r"cannot read meta-parameter file .*params/ab"):
        schema.submit(write(tmp_path, doc), tmp_path / "results")
    params = tmp_path / "results" / "params"
    params.mkdir(parents=True)
    (params / f"{sha}.msgpack").write_bytes(b"not the bytes that hash to the name")
    with pytest.raises(schema.ResultsError, match="does not hash to its name"):
        schema.submit(write(tmp_path, doc), tmp_path / "results")
    os.mkfifo(params / f"{'cd' * 32}.msgpack")
    fifo_doc = make_doc(spec=f"vsml:params/{'cd' * 32}.msgpack", sha="cd" * 32)
    with pytest.raises(schema.ResultsError, match="not a regular file"):
        schema.submit(write(tmp_path, fifo_doc), tmp_path / "results")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["params"]


def test_meta_training_data_and_parameters_must_be_the_declared_ones(tmp_path):
    # Declaring extra meta-training data would move digits out of the OOD headline.
    with pytest.raises(schema.ResultsError, match=r"chance declares \[\]"):
        schema.submit(write(tmp_path, make_doc(trained_on=("digits",))), tmp_path / "r")
    # Shipped VSML meta-parameters declare mnist and have a known hash.
    with pytest.raises(schema.ResultsError, match="hash to"):
        schema.submit(
            write(tmp_path, make_doc(spec="vsml:mnist", trained_on=("mnist",))), tmp_path / "r"
        )
    with pytest.raises(schema.ResultsError, match=r"declares \['mnist'\]"):
        schema.submit(write(tmp_path, make_doc(spec="vsml:mnist")), tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "config, match",
    [
        ({"learning_rate": 0.5, "hidden": 0}, "'learning_rate' is 0.5 but sgd builds 0.1"),
        ({"learning_rate": 0.1, "hidden": 0.0}, "'hidden' is 0.0 but sgd builds 0"),
        ({"learning_rate": 0.1}, "'hidden' is absent but sgd builds 0"),
        (
            {"learning_rate": 0.1, "hidden": 0, "momentum": 0.9},
            "'momentum' is 0.9 but sgd builds absent",
        ),
    ],
)
def test_the_config_must_be_what_the_spec_builds(tmp_path, config, match):
    # learner.config is provenance a reader trusts (and the identity of an entry): an official
    # file's spec has no options, so its config is exactly what the spec builds.
    doc = make_doc(spec="sgd", config=config)
    schema.validate_results(copy.deepcopy(doc), require_official=True)  # the file itself is fine
    with pytest.raises(schema.ResultsError) as err:
        schema.submit(write(tmp_path, doc), tmp_path / "r")
    assert match in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()
    schema.submit(write(tmp_path, make_doc(spec="sgd")), tmp_path / "r")  # the built one passes


@pytest.mark.parametrize(
    "path, value",
    [
        (("tasks", 0, "n_streams"), 64.0),
        (("tasks", 0, "seed"), 1000.0),
        (("tasks", 0, "stream_length"), 300.0),
        (("tasks", 0, "raw", "n_scored"), 300.0),
        (("tasks", 0, "curve", 0, 0), 12.0),
        (("schema_version",), 1.0),
        (("summary", "n_tasks_run"), 6.0),
        (("tasks", 0, "n_streams"), True),
        (("suite", "official"), 1),
    ],
)
def test_integers_must_be_json_integers(base_doc, path, value):
    doc = _set(copy.deepcopy(base_doc), path, value)
    _reject(doc, "schema")


def test_official_env_kwargs_compare_by_json_type():
    doc = make_doc(suite_id="ood-v0")
    doc["tasks"][4]["env_kwargs"]["image_size"] = 16.0  # cifar10: == 16 in Python
    _reject(doc, "differ from the definition")


def test_official_streams_must_score_every_step():
    doc = make_doc(n_scored=1)
    # Built with 1 scored step per stream where every offline-v0 stream scores 300.
    _reject(doc, "scores 1 examples per stream .* scores all 300")


@pytest.mark.parametrize(
    "path",
    [
        ("learner", "spec"),
        ("learner", "description"),
        ("provenance", "command"),
        ("provenance", "hardware", "cpu"),
        ("tasks", 0, "env_spec"),
    ],
)
@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "bell\x07", "line\nbreak", "\u2028"])
def test_strings_must_be_printable_unicode(tmp_path, base_doc, path, bad):
    doc = _set(copy.deepcopy(base_doc), path, bad)
    with pytest.raises(schema.ResultsError, match=r"lone surrogate|non-printable"):
        schema.submit(write(tmp_path, json.dumps(doc)), tmp_path / "results")
    doc = copy.deepcopy(base_doc)
    doc["learner"]["config"][bad] = 1
    with pytest.raises(schema.ResultsError, match=r"lone surrogate|non-printable"):
        schema.submit(write(tmp_path, json.dumps(doc)), tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_submit_refuses_special_files_without_reading_them(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it for reading would block without O_NONBLOCK
    for path, match in [
        ("/dev/zero", "not a regular file"),
        (fifo, "not a regular file"),
        (tmp_path, "is a folder"),
        (tmp_path / "absent.json", "cannot read results file"),
    ]:
        with pytest.raises(schema.ResultsError, match=match):
            schema.submit(path, tmp_path / "results")
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    with pytest.raises(schema.ResultsError, match="is a file, not a folder"):
        schema.submit(write(tmp_path, make_doc()), target)
    assert target.read_text() == "not a folder"


COMMITTED = sorted((Path(schema.RESULTS_DIR)).glob("*.json"))


@pytest.mark.slow
def test_the_committed_board_is_consistent():
    assert len(COMMITTED) >= 20
    entries, problems = schema.load_entries()
    assert problems == [] and len(entries) == len(COMMITTED)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_every_committed_results_file_passes_submit(tmp_path, path):
    """Each committed entry goes through submit's whole validation into a fresh board."""
    stored = schema.submit(path, tmp_path / "results")
    assert stored.name == path.name
    assert json.loads(stored.read_text()) == json.loads(path.read_text())


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


#: Hostile files per fuzz run: a quick default; the slow run (``--runslow``, as CI runs it) does
#: at least 1,000, or ``VSML_BENCH_FUZZ_EXAMPLES`` when set.
FUZZ_QUICK = 60
FUZZ_FULL = max(1000, int(os.environ.get("VSML_BENCH_FUZZ_EXAMPLES", "0") or 0))

BOARD_NAMES = ["chance", "сhance", "CHANCE", "ch\u200bance", "chаnce", "adam", "Ѕgd", "chance "]
HOSTILE_SPECS = [
    "vsml:/dev/zero",
    "vsml:../..",
    "vsml:params/" + "0" * 64 + ".msgpack",
    "vsml:mnist",
    "sgd",
    "nearest_mean",
    "chance:mnist",
    "chance\ud800",
]


@st.composite
def hostile_files(draw, base, rebuild):
    """Bytes of a hostile results file derived from the valid ``base``.

    ``rebuild(learner=..., missing=...)`` re-assembles ``base`` with every aggregate recomputed,
    for coordinated forgeries that pass the number checks (declaring meta-training data,
    claiming data is missing, another spec or parameter hash): only the declaration, data and
    identity checks can refuse those.
    """
    kind = draw(st.integers(0, 9))
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
    elif kind == 5:  # non-finite numbers, lone surrogates and whole-number floats in the text
        text = json.dumps(doc)
        token = draw(
            st.sampled_from(["NaN", "-Infinity", "1e400", '"\\ud800"', "{}", "64.0", "1000.0"])
        )
        key = draw(st.sampled_from(['"value": ', '"ce": [', '"seed": ', '"n_streams": ']))
        at = text.index(key)
        at = text.index(" ", at) + 1 + (text[text.index(" ", at) + 1] == "[")
        end = min(text.index(c, at) for c in ",]}" if c in text[at:])
        return (text[:at] + token + text[end:]).encode()
    elif kind == 6:  # raw bits corrupted or resized
        row = draw(st.sampled_from(["", "A", "////", "AAAA" * 200, "not base64!", "=" * 4]))
        doc["tasks"][draw(st.integers(0, 5))]["raw"]["correct"][0] = row
    elif kind == 7:  # coordinated: more meta-training data, another spec or parameter hash
        learner = draw(
            st.sampled_from(
                [
                    {"meta_trained_on": ["digits"]},
                    {"meta_trained_on": ["digits", "iris", "wine"]},
                    {"meta_params_sha256": "ab" * 32},
                    {"spec": draw(st.sampled_from(HOSTILE_SPECS))},
                ]
            )
        )
        doc = rebuild(learner=learner)
    elif kind == 8:  # coordinated: tasks claimed "not run: data missing"
        doc = rebuild(missing=draw(st.sets(st.sampled_from(["digits", "iris", "random"]))))
    else:  # names: look-alikes of each other and of the board's names
        doc["learner"]["name"] = draw(st.sampled_from(BOARD_NAMES) | hostile_text)
    return json.dumps(doc, allow_nan=True).encode()


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _rebuilder(path):
    """``rebuild(learner=..., missing=...)`` for :func:`hostile_files`, from a committed file."""
    from vsml_bench.leaderboard import metrics

    doc = schema.read_results(path)
    decoded = {
        t["task_id"]: dict(zip(("correct", "ce"), metrics.decode_task_raw(t["raw"]), strict=True))
        for t in doc["tasks"]
    }

    def rebuild(learner=(), missing=()):
        results = {
            k: ({"status": schema.MISSING} if k in missing else v) for k, v in decoded.items()
        }
        return schema.build_document(
            suite=get_suite(doc["suite"]["id"]),
            learner={**doc["learner"], **dict(learner)},
            provenance=doc["provenance"],
            task_results=results,
        )

    return doc, rebuild


def _fuzz_submit_and_verify(root, n_examples):
    """Submit and verify hostile files through the CLI; return how many each accepted.

    Invariants: no traceback (the CLI turns every user error into exit 2; anything else
    escapes and fails the test), one-line errors, nothing written outside ``root/results``,
    and nothing accepted that changes a headline: a file that both submit and verify accept
    has the base file's summary.
    """
    import contextlib
    import io

    from vsml_bench import cli

    base, rebuild = _rebuilder(CHANCE_OFFLINE)
    results = root / "results"
    before = set(os.listdir(root))
    seen = {"submitted": 0, "verified": 0, "rejected": 0, "examples": 0}

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
        if code not in (0, 1):
            assert err.getvalue().count("\n") == 1, err.getvalue()  # one line
        return code

    # verify's seed is drawn like the file: it varies from run to run (Hypothesis seeds each run
    # afresh and prints the failing example, seed included, with how to repeat it) and never
    # decides the outcome, since no hostile file forges a stream (that is measured apart).
    @given(data=hostile_files(base, rebuild), seed=st.integers(0, 2**63 - 1))
    @settings(
        max_examples=n_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(data, seed):
        seen["examples"] += 1
        path = root / "submission.json"
        path.write_bytes(data)
        submitted = run("submit", str(path), "--results-dir", str(results)) == 0
        verified = run("verify", str(path), "--seed", str(seed)) == 0
        seen["submitted"] += submitted
        seen["verified"] += verified
        seen["rejected"] += not submitted
        if submitted and verified:
            doc = json.loads(data)
            assert doc["summary"] == base["summary"]
            assert doc["learner"]["meta_trained_on"] == []

    check()
    assert seen["examples"] >= n_examples
    assert set(os.listdir(root)) - before <= {"submission.json", "results"}
    for stored in results.rglob("*") if results.exists() else []:
        assert stored.parent in (results, results / "history")
    return seen


CHANCE_OFFLINE = schema.RESULTS_DIR / "chance__offline-v0__6cb09fe72a.json"


@pytest.mark.slow
def test_fuzz_submit_and_verify_with_hostile_files(tmp_path):
    seen = _fuzz_submit_and_verify(tmp_path, FUZZ_QUICK)
    assert seen["rejected"] > FUZZ_QUICK // 2


@pytest.mark.slow
def test_fuzz_submit_and_verify_with_1000_hostile_files(tmp_path):
    seen = _fuzz_submit_and_verify(tmp_path, FUZZ_FULL)
    assert seen["examples"] >= 1000 and seen["rejected"] > 0.8 * seen["examples"]


def test_a_shipped_set_belongs_to_its_learner():
    from vsml_bench.leaderboard import identity

    identity.check_spec_registered("vsml:mnist")
    # nearest_mean has nothing to meta-learn, so it ships no set called mnist, though vsml does.
    with pytest.raises(
        identity.IdentityError, match=r"does not ship for nearest_mean \(shipped: none"
    ):
        identity.check_spec_registered("nearest_mean:mnist")
    with pytest.raises(identity.IdentityError, match="does not ship for vsml"):
        identity.check_spec_registered("vsml:omniglot")
