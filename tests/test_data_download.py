"""The download path, without network: file:// mirrors and a substituted opener."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fixtures_data import corrupt_payload, random_images, use_files, write_idx_split

from vsml_bench import data
from vsml_bench.data import store
from vsml_bench.data.registry import FileSpec


@pytest.fixture(autouse=True)
def _no_real_data(monkeypatch, fresh_cache):
    # An empty cache per test: these tests check exactly what gets cached.
    monkeypatch.delenv("VSML_BENCH_DATA", raising=False)


def _mirror(tmp_path, name="good"):
    """A folder served through file:// holding a small mnist test split."""
    rng = np.random.default_rng(1)
    folder = tmp_path / name
    x, y = random_images(rng, 7), rng.integers(0, 10, 7).astype(np.uint8)
    files = write_idx_split(folder, "t10k", x, y, urls=(folder.as_uri() + "/",))
    return folder, files, x, y


def _with_urls(files: dict[str, FileSpec], *prefixes: str) -> dict[str, FileSpec]:
    return {
        n: FileSpec(n, payload_md5=f.payload_md5, urls=tuple(p + n for p in prefixes))
        for n, f in files.items()
    }


def test_load_downloads_into_cache_only_when_allowed(tmp_path, monkeypatch):
    _folder, files, x, y = _mirror(tmp_path)
    use_files(monkeypatch, "mnist", files)
    with pytest.raises(data.DatasetNotFound):
        data.load("mnist", "test")
    assert not (store.cache_dir() / "mnist").exists()
    ds = data.load("mnist", "test", download=True)
    np.testing.assert_array_equal(ds.x[..., 0], x)
    np.testing.assert_array_equal(ds.y, y)
    cached = store.cache_dir() / "mnist" / "t10k-images-idx3-ubyte.gz"
    assert cached.is_file()
    assert not list((store.cache_dir() / "mnist").glob(".*"))  # no temp files left
    assert data.is_available("mnist", "test")


def test_mirrors_are_tried_in_order(tmp_path, monkeypatch):
    folder, files, x, _ = _mirror(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    for n in files:  # the first mirror serves corrupt bytes, the second does not exist
        (bad / n).write_bytes((folder / n).read_bytes())
        corrupt_payload(bad / n)
    urls = (bad.as_uri() + "/", (tmp_path / "missing").as_uri() + "/", folder.as_uri() + "/")
    use_files(monkeypatch, "mnist", _with_urls(files, *urls))
    paths = data.fetch("mnist", ["test"])
    assert all(p.parent == store.cache_dir() / "mnist" for p in paths)
    np.testing.assert_array_equal(data.load("mnist", "test").x[..., 0], x)


def test_all_mirrors_bad_leaves_nothing(tmp_path, monkeypatch):
    folder, files, _, _ = _mirror(tmp_path)
    for n in files:
        corrupt_payload(folder / n)
    use_files(monkeypatch, "mnist", files)
    with pytest.raises(data.DownloadError, match="payload_md5") as e:
        data.load("mnist", "test", download=True)
    assert isinstance(e.value, data.DataError) and "\n" not in str(e.value)
    target = store.cache_dir() / "mnist"
    assert not target.exists() or not any(target.iterdir())
    assert not (store.cache_dir() / "arrays").exists()


class _DyingResponse(io.RawIOBase):
    """Serves half of the bytes, then the process is 'killed' (KeyboardInterrupt)."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.served = False
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, n=-1):
        if self.served:
            raise KeyboardInterrupt
        self.served = True
        return self.payload[: len(self.payload) // 2]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_interrupted_download_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    folder, files, _, _ = _mirror(tmp_path)
    use_files(monkeypatch, "mnist", files)
    monkeypatch.setattr(
        store,
        "_urlopen",
        lambda url, timeout=60.0: _DyingResponse((folder / url.rsplit("/", 1)[1]).read_bytes()),
    )
    with pytest.raises(KeyboardInterrupt):
        data.load("mnist", "test", download=True)
    target = store.cache_dir() / "mnist"
    assert not (target / "t10k-images-idx3-ubyte.gz").exists()
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(target.glob("*"))  # the temporary file was removed too
    assert not data.is_available("mnist", "test")


def test_downloaded_file_is_renamed_only_after_verification(tmp_path, monkeypatch):
    """Between streaming and verification the data lives under a temporary name only."""
    _folder, files, _, _ = _mirror(tmp_path)
    use_files(monkeypatch, "mnist", files)
    seen = []
    real_verify = store.verify

    def spying_verify(path, file, **kwargs):
        seen.append((path.name, (path.parent / file.name).exists()))
        return real_verify(path, file, **kwargs)

    monkeypatch.setattr(store, "verify", spying_verify)
    data.fetch("mnist", ["test"])
    first_checks = [s for s in seen if s[0].endswith(".part")]
    assert first_checks and not any(final_exists for _, final_exists in first_checks)


def test_no_mirror_gives_a_clear_error(tmp_path):
    with pytest.raises(data.DatasetNotFound, match="no public mirror"):
        data.load("cifar10_jpeg", "test", data_dir=tmp_path, download=True)


def test_a_corrupt_cached_copy_is_replaced_only_when_downloading(tmp_path, monkeypatch):
    folder, files, x, _ = _mirror(tmp_path)
    use_files(monkeypatch, "mnist", files)
    data.fetch("mnist", ["test"])
    cached = store.cache_dir() / "mnist" / "t10k-images-idx3-ubyte.gz"
    corrupt_payload(cached)
    with pytest.raises(data.ChecksumMismatch):
        data.load("mnist", "test")
    np.testing.assert_array_equal(data.load("mnist", "test", download=True).x[..., 0], x)
    # a bad file in a user's folder is reported, never deleted
    user = tmp_path / "user" / "mnist"
    user.mkdir(parents=True)
    for n in files:
        (user / n).write_bytes((folder / n).read_bytes())
    corrupt_payload(user / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(data.ChecksumMismatch):
        data.load("mnist", "test", data_dir=tmp_path / "user", download=True)
    assert (user / "t10k-images-idx3-ubyte.gz").exists()
