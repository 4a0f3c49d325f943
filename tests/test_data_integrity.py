"""The data caches are tied to content hashes; damaged data and caches are never loaded as good.

* Verification stamps hold the file's identity (size, mtime, ctime, inode, device) and a
  fingerprint; small files are hashed on every load. A same-size edit that restores the mtime
  is caught.
* Parsed ``.npy`` entries carry a manifest of sha256s: an edited ``y.npy`` is discarded and the
  verified source files are parsed again.
* Temporary files of a killed load are removed by the next one; unreadable files are one line.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import idx_bytes, md5, random_images, use_files, write_idx_split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsml_bench import data
from vsml_bench.data import formats, registry, store
from vsml_bench.errors import UserError


@pytest.fixture(autouse=True)
def _no_real_data(monkeypatch, fresh_cache):
    monkeypatch.delenv("VSML_BENCH_DATA", raising=False)


def _fixture(root: Path, monkeypatch, n: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    x, y = random_images(rng, n), rng.integers(0, 10, n).astype(np.uint8)
    use_files(monkeypatch, "mnist", write_idx_split(root / "mnist", "t10k", x, y))
    return x, y


def _same_size_edit_keeping_mtime(path: Path, edit) -> None:
    """Change the content, keep the size, and set the mtime back (as rsync -t or tar would)."""
    st = path.stat()
    data_ = edit(path.read_bytes())
    assert len(data_) == st.st_size
    path.write_bytes(data_)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def _relabel(gz: bytes) -> bytes:
    payload = bytearray(gzip.decompress(gz))
    payload[-1] = (payload[-1] + 1) % 10  # the last label, another class
    out = gzip.compress(bytes(payload), mtime=0)
    return out if len(out) == len(gz) else out[: len(gz)].ljust(len(gz), b"\0")


def test_a_same_size_label_edit_with_the_old_mtime_is_caught(tmp_path, monkeypatch):
    _fixture(tmp_path, monkeypatch)
    data.load("mnist", "test", data_dir=tmp_path)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    _same_size_edit_keeping_mtime(labels, _relabel)
    with pytest.raises(data.ChecksumMismatch, match=str(labels)):
        data.load("mnist", "test", data_dir=tmp_path)


def test_a_large_file_edit_with_the_old_size_and_mtime_is_caught(tmp_path, monkeypatch):
    """Above ALWAYS_HASH_BELOW a stamp is trusted only for the same identity (ctime, inode):
    a program cannot set ctime back, so the edit forces a full hash."""
    monkeypatch.setattr(store, "ALWAYS_HASH_BELOW", 0)  # treat the fixture files as large
    _fixture(tmp_path, monkeypatch)
    data.load("mnist", "test", data_dir=tmp_path)
    images = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    spec = registry.spec("mnist").files[images.name]
    assert store.is_verified(images, spec)
    time.sleep(0.01)  # a later ctime whatever the clock's resolution
    _same_size_edit_keeping_mtime(images, lambda b: b[:-9] + bytes([b[-9] ^ 1]) + b[-8:])
    assert not store.is_verified(images, spec)
    with pytest.raises(data.ChecksumMismatch):
        data.load("mnist", "test", data_dir=tmp_path)


def test_large_verified_files_are_not_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "ALWAYS_HASH_BELOW", 0)
    _fixture(tmp_path, monkeypatch)
    first = data.load("mnist", "test", data_dir=tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("a stamped file was hashed again")

    monkeypatch.setattr(store, "compute_checksum", forbidden)
    monkeypatch.setattr(formats, "load_idx", forbidden)
    second = data.load("mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(first.y, second.y)


def _entry(name="mnist") -> Path:
    (entry,) = store.iter_cached(name)
    return entry


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("target", ["y.npy", "x.npy", "info.json"])
def test_an_edited_cache_file_is_discarded_and_parsed_again(tmp_path, monkeypatch, target, large):
    if large:
        monkeypatch.setattr(store, "ALWAYS_HASH_BELOW", 0)
    x, y = _fixture(tmp_path, monkeypatch)
    data.load("mnist", "test", data_dir=tmp_path)
    path = _entry() / target
    if target == "info.json":
        path.write_text(json.dumps({"forged": 1}))
    else:
        _same_size_edit_keeping_mtime(path, lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    ds = data.load("mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(ds.x[..., 0], x)
    assert "forged" not in ds.info
    # The entry was rebuilt from the verified source files and is intact again.
    assert store.load_parsed(store.ParsedKey("mnist", "test", _digests())) is not None


def _digests() -> tuple[str, ...]:
    s = registry.spec("mnist")
    return tuple(s.files[n].checksum[1] for n in s.splits["test"][0])


def test_a_cache_entry_without_its_manifest_is_not_trusted(tmp_path, monkeypatch):
    _, y = _fixture(tmp_path, monkeypatch)
    data.load("mnist", "test", data_dir=tmp_path)
    entry = _entry()
    (entry / "manifest.json").unlink()
    np.save(entry / "y.npy", np.zeros_like(y, np.int32))
    np.testing.assert_array_equal(data.load("mnist", "test", data_dir=tmp_path).y, y)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_files_of_dead_or_old_writers_are_removed_live_ones_kept(tmp_path, monkeypatch):
    _fixture(tmp_path, monkeypatch)
    folder = store.ParsedKey("mnist", "test", _digests()).folder()
    folder.parent.mkdir(parents=True)
    dead = folder.parent / f".{folder.name}.tmp-{store._HOST}-{_dead_pid()}-abc"
    live = folder.parent / f".{folder.name}.tmp-{store._HOST}-{os.getppid()}-abc"
    old = folder.parent / f".{folder.name}.x7k2q9"  # the untagged name of older versions
    other_host = folder.parent / f".{folder.name}.tmp-elsewhere-1-abc"
    for d in (dead, live, old, other_host):
        d.mkdir()
        (d / "x.npy").write_bytes(b"\0" * 1000)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    two_days_ago = time.time() - 2 * 86400
    (folder.parent / ".old.tmp").write_bytes(b"")
    os.utime(folder.parent / ".old.tmp", (two_days_ago, two_days_ago))
    data.load("mnist", "test", data_dir=tmp_path)
    left = sorted(p.name for p in folder.parent.iterdir())
    assert left == sorted([live.name, other_host.name, folder.name])


_KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import numpy as np
from fixtures_data import write_idx_split, random_images
from vsml_bench import data
from vsml_bench.data import registry
rng = np.random.default_rng(0)
files = write_idx_split(Path({root!r}) / "mnist", "t10k", random_images(rng, 20),
                        rng.integers(0, 10, 20).astype(np.uint8))
registry.REGISTRY["mnist"] = registry.REGISTRY["mnist"].with_files(files)
if sys.argv[1] == "kill":
    real_save = np.save
    def save(path, *a, **k):
        real_save(path, *a, **k)
        os.kill(os.getpid(), signal.SIGKILL)  # killed mid-way through writing the cache entry
    np.save = save
ds = data.load("mnist", "test", data_dir={root!r})
print(len(ds))
"""


def test_a_load_killed_while_caching_leaves_nothing_after_the_next_load(tmp_path, fresh_cache):
    script = tmp_path / "load.py"
    script.write_text(
        _KILL_SCRIPT.format(tests=str(Path(__file__).parent), root=str(tmp_path / "data"))
    )
    env = {**os.environ, "VSML_BENCH_CACHE": str(fresh_cache), "JAX_PLATFORMS": "cpu"}
    run = [sys.executable, str(script)]
    killed = subprocess.run([*run, "kill"], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    arrays = fresh_cache / "arrays" / "mnist"
    (temp,) = arrays.iterdir()  # the half-written entry, under its temporary name
    assert temp.name.startswith(".") and (temp / "x.npy").exists()
    ok = subprocess.run([*run, "load"], env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.strip() == "20", ok.stderr
    assert [p.name for p in arrays.iterdir()] == [
        store.ParsedKey("mnist", "test", _digests_of(tmp_path / "data" / "mnist")).folder().name
    ]


def _digests_of(folder: Path) -> tuple[str, ...]:
    return tuple(
        md5(gzip.decompress((folder / f"t10k-{k}-ubyte.gz").read_bytes()))
        for k in ("images-idx3", "labels-idx1")
    )


def test_unreadable_files_are_one_line(tmp_path, monkeypatch):
    _fixture(tmp_path, monkeypatch)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    with monkeypatch.context() as m:
        m.setattr(store, "compute_checksum", denied)
        with pytest.raises(data.UnreadableFile) as err:
            data.load("mnist", "test", data_dir=tmp_path)
    message = str(err.value)
    assert "Permission denied" in message and "chmod" in message and "\n" not in message
    assert isinstance(err.value, UserError)
    # Verified earlier, unreadable now (stamps need no read access): still one line.
    monkeypatch.setattr(store, "ALWAYS_HASH_BELOW", 0)
    data.load("mnist", "test", data_dir=tmp_path)
    for entry in store.iter_cached("mnist"):
        store._discard(entry)
    monkeypatch.setattr(formats, "load_idx", lambda paths: denied(labels))
    with pytest.raises(data.UnreadableFile, match=str(labels)):
        data.load("mnist", "test", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# Fuzzing: hostile data files and damaged caches


@st.composite
def hostile_idx(draw) -> tuple[bytes, bytes]:
    """(images payload, labels payload): valid IDX files damaged in their header or body."""
    n = draw(st.integers(0, 6))
    x = random_images(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), n)
    images = bytearray(idx_bytes(x))
    labels = bytearray(idx_bytes(np.asarray(draw(st.lists(st.integers(0, 255), min_size=n,
                                                          max_size=n)), np.uint8)))  # fmt: skip
    for target in (images, labels):
        for _ in range(draw(st.integers(0, 3))):
            if not target:
                break
            at = draw(st.integers(0, len(target) - 1))
            action = draw(st.sampled_from(["set", "cut", "grow"]))
            if action == "set":
                target[at] = draw(st.integers(0, 255))
            elif action == "cut":
                del target[at:]
            else:
                target[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(images), bytes(labels)


def test_fuzz_hostile_data_files_and_damaged_caches(tmp_path_factory, monkeypatch, request):
    """>= 300 hostile files under --runslow (CI), a quick sample otherwise. Each example writes
    an MNIST test split whose bytes *pass* verification (its checksums are put in the registry,
    so the parser sees them) and then damages the parsed cache entry: the load returns the
    right arrays or raises a one-line DataError; never a traceback, never a damaged cache."""
    examples = 300 if request.config.getoption("--runslow") else 25
    seen = {"loaded": 0, "refused": 0}

    @given(files=hostile_idx(), damage=st.sampled_from(["x.npy", "y.npy", "info.json", "none"]),
           junk=st.binary(max_size=64))  # fmt: skip
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def check(files, damage, junk):
        root = tmp_path_factory.mktemp("hostile")
        monkeypatch.setenv("VSML_BENCH_CACHE", str(root / "cache"))
        folder = root / "mnist"
        folder.mkdir()
        specs = {}
        for name, payload in zip(
            ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"), files, strict=True
        ):
            (folder / name).write_bytes(gzip.compress(payload, mtime=0))
            specs[name] = registry.FileSpec(name, payload_md5=md5(payload))
        use_files(monkeypatch, "mnist", specs)
        try:
            first = data.load("mnist", "test", data_dir=root)
        except data.DataError as error:
            assert "\n" not in str(error)
            seen["refused"] += 1
            assert not list((root / "cache").rglob("*.npy"))  # nothing cached from bad bytes
            return
        seen["loaded"] += 1
        assert first.y.min(initial=0) >= 0 and first.y.max(initial=0) < 10
        if damage != "none":
            path = _entry() / damage
            path.write_bytes(path.read_bytes()[: len(junk)] + junk)
        again = data.load("mnist", "test", data_dir=root)
        np.testing.assert_array_equal(first.x, again.x)
        np.testing.assert_array_equal(first.y, again.y)

    check()
    assert seen["loaded"] + seen["refused"] >= examples
    assert seen["loaded"] > 0 and seen["refused"] > 0
