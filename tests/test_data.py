"""Loaders against fixtures in the exact upstream formats, lookup order, caches and errors."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    corrupt_payload,
    idx_bytes,
    random_images,
    truncate,
    use_files,
    write_cifar_binary,
    write_cifar_python,
    write_emnist_zip,
    write_idx_split,
    write_jpeg_tar,
    write_omniglot_zip,
    write_svhn_mat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from vsml_bench import data
from vsml_bench.data import formats, registry, store
from vsml_bench.data.registry import CIFAR10_CLASSES
from vsml_bench.errors import UserError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _cache_is_empty() -> bool:
    """No parsed arrays and no verification stamps were written."""
    cache = store.cache_dir()
    arrays = list((cache / "arrays").rglob("*.npy")) if (cache / "arrays").exists() else []
    stamps = list((cache / "verified").iterdir()) if (cache / "verified").exists() else []
    return not arrays and not stamps


@pytest.fixture(autouse=True)
def _no_real_data(monkeypatch, fresh_cache):
    # An empty cache per test: these tests check exactly what gets cached.
    # Fixture tests must not find the real files through VSML_BENCH_DATA.
    monkeypatch.delenv("VSML_BENCH_DATA", raising=False)


# --------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_every_design_dataset():
    expected = {
        "digits", "iris", "wine", "breast_cancer", "sum_sign", "random",
        "mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "svhn", "omniglot",
        "notmnist", "cifar10_jpeg",
    }  # fmt: skip
    assert set(data.names()) == expected
    for name in data.names():
        s = data.spec(name)
        assert s.licence and s.source and s.splits
        assert set(s.n_classes) == set(s.splits)
        for alternatives in s.splits.values():
            for names_ in alternatives:
                assert all(n in s.files for n in names_)
        if s.kind == "image":
            assert s.mean is not None and s.std is not None and s.value_max > 1


def test_mnist_spec_has_published_payload_checksums():
    s = data.spec("mnist")
    f = s.files["t10k-images-idx3-ubyte.gz"]
    assert f.payload_md5 == "2646ac647ad5339dbf082846283269ea"
    assert f.sha256 == "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    assert f.urls[0].startswith("https://")
    assert (s.mean, s.std) == (0.1307, 0.3081)


def test_unknown_names_are_user_errors():
    with pytest.raises(data.UnknownDataset, match="known datasets are") as e:
        data.load("mnsit")
    assert isinstance(e.value, UserError)
    with pytest.raises(data.UnknownSplit, match="splits are train"):
        data.load("digits", "validation")
    with pytest.raises(data.UnknownSplit):
        data.load("notmnist", "train")  # only the test sample has known checksums


# --------------------------------------------------------------------------------------------
# Embedded


def test_digits_embedded():
    ds = data.load("digits")
    assert ds.x.shape == (1797, 8, 8, 1) and ds.x.dtype == np.uint8
    assert ds.x.max() == 16 and ds.info["value_max"] == 16
    assert ds.y.dtype == np.int32 and ds.n_classes == 10
    assert sorted(np.unique(ds.y)) == list(range(10))
    assert data.is_available("digits") and data.is_available("digits", "train")


@pytest.mark.parametrize(("name", "shape", "k"), [
    ("iris", (150, 4), 3), ("wine", (178, 13), 3), ("breast_cancer", (569, 30), 2),
])  # fmt: skip
def test_tabular(name, shape, k):
    ds = data.load(name)
    assert ds.x.shape == shape and ds.x.dtype == np.float32 and ds.n_classes == k
    assert len(ds.info["mean"]) == shape[1]
    np.testing.assert_allclose(ds.info["mean"], ds.x.mean(0), rtol=1e-5)


def test_sum_sign_is_seeded_and_labels_are_the_sign():
    a = data.load("sum_sign", n=500, dim=7, seed=3)
    b = data.load("sum_sign", n=500, dim=7, seed=3)
    c = data.load("sum_sign", n=500, dim=7, seed=4)
    t = data.load("sum_sign", "test", n=500, dim=7, seed=3)
    assert a.x.shape == (500, 7) and a.x.dtype == np.float32
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x) and not np.array_equal(a.x, t.x)
    np.testing.assert_array_equal(a.y, (a.x.sum(1) > 0).astype(np.int32))
    assert 0.3 < a.y.mean() < 0.7
    # per-example means: the spread of row means exceeds what i.i.d. N(0,1) rows would give
    assert a.x.mean(1).std() > 2 / np.sqrt(7)


def test_random_labels_options_and_defaults():
    d = data.load("random")
    assert d.x.shape == (1000, 16) and d.n_classes == 10
    r = data.load("random", n=64, dim=3, n_classes=4, seed=1)
    assert r.x.shape == (64, 3) and r.n_classes == 4 and set(np.unique(r.y)) <= {0, 1, 2, 3}
    with pytest.raises(data.DataError, match="no option 'size'"):
        data.load("random", size=3)
    with pytest.raises(data.DataError, match="takes no options"):
        data.load("digits", seed=1)


# --------------------------------------------------------------------------------------------
# IDX family


def _mnist_fixture(root: Path, rng, monkeypatch, name="mnist", folder="mnist", n=(30, 10)):
    xtr, ytr = random_images(rng, n[0]), rng.integers(0, 10, n[0]).astype(np.uint8)
    xte, yte = random_images(rng, n[1]), rng.integers(0, 10, n[1]).astype(np.uint8)
    files = write_idx_split(root / folder, "train", xtr, ytr)
    files |= write_idx_split(root / folder, "t10k", xte, yte)
    use_files(monkeypatch, name, files)
    return (xtr, ytr), (xte, yte)


@pytest.mark.parametrize(("name", "folder"), [
    ("mnist", "mnist"), ("fashion_mnist", "fashion-mnist"), ("fashion_mnist", "fashion_mnist"),
    ("kmnist", "kmnist"),
])  # fmt: skip
def test_idx_loaders(tmp_path, rng, monkeypatch, name, folder):
    (xtr, ytr), (xte, yte) = _mnist_fixture(tmp_path, rng, monkeypatch, name, folder)
    train = data.load(name, "train", data_dir=tmp_path)
    test = data.load(name, "test", data_dir=tmp_path)
    np.testing.assert_array_equal(train.x[..., 0], xtr)
    np.testing.assert_array_equal(train.y, ytr)
    np.testing.assert_array_equal(test.x[..., 0], xte)
    np.testing.assert_array_equal(test.y, yte)
    assert train.x.shape == (30, 28, 28, 1) and train.y.dtype == np.int32
    assert train.info["licence"] == data.spec(name).licence
    assert "payload_md5:" in next(iter(train.info["files"].values()))["checksum"]


def test_notmnist_has_only_test(tmp_path, rng, monkeypatch):
    x, y = random_images(rng, 12), (np.arange(12) % 10).astype(np.uint8)
    use_files(monkeypatch, "notmnist", write_idx_split(tmp_path / "notmnist", "t10k", x, y))
    ds = data.load("notmnist", "test", data_dir=tmp_path)
    assert ds.n_classes == 10 and len(ds) == 12
    assert data.spec("notmnist").default_split == "test"


def test_decompressed_copy_verifies_by_payload(tmp_path, rng, monkeypatch):
    """A copy stored without .gz (or re-compressed) has the same payload md5 and loads."""
    x, y = random_images(rng, 5), rng.integers(0, 10, 5).astype(np.uint8)
    files = write_idx_split(tmp_path / "mnist", "t10k", x, y, compress=False)
    use_files(monkeypatch, "mnist", files)
    assert not (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    np.testing.assert_array_equal(data.load("mnist", "test", data_dir=tmp_path).x[..., 0], x)


@pytest.mark.parametrize("damage", [corrupt_payload, truncate])
def test_idx_damaged_copy_is_rejected_and_nothing_cached(tmp_path, rng, monkeypatch, damage):
    _mnist_fixture(tmp_path, rng, monkeypatch)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    damage(path)
    with pytest.raises(data.ChecksumMismatch) as e:
        data.load("mnist", "test", data_dir=tmp_path)
    message = str(e.value)
    assert str(path) in message and e.value.expected in message
    assert e.value.actual in message and "vsml-bench data fetch mnist" in message
    assert isinstance(e.value, UserError) and "\n" not in message
    assert _cache_is_empty()


def test_unverified_bytes_are_never_parsed(tmp_path, rng, monkeypatch):
    _mnist_fixture(tmp_path, rng, monkeypatch)
    corrupt_payload(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz")

    def parse_called(*args, **kwargs):
        raise AssertionError("parser ran on unverified bytes")

    monkeypatch.setattr(formats, "load_idx", parse_called)
    with pytest.raises(data.ChecksumMismatch):
        data.load("mnist", "train", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# Lookup order, caches, status


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, rng, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    xa = random_images(rng, 4)
    xb = random_images(rng, 4)
    y = np.zeros(4, np.uint8)
    fa = write_idx_split(a / "mnist", "t10k", xa, y)
    write_idx_split(b / "mnist", "t10k", xb, y)
    # the registry can only hold one checksum per file: give each copy its own run
    use_files(monkeypatch, "mnist", fa)
    monkeypatch.setenv("VSML_BENCH_DATA", os.pathsep.join([str(tmp_path / "nowhere"), str(a)]))
    ds = data.load("mnist", "test")
    np.testing.assert_array_equal(ds.x[..., 0], xa)
    assert ds.info["files"]["t10k-images-idx3-ubyte.gz"]["path"].startswith(str(a))
    # an explicit data_dir wins over VSML_BENCH_DATA (b holds other bytes: checksum error)
    with pytest.raises(data.ChecksumMismatch, match=str(b)):
        data.load("mnist", "test", data_dir=b)
    # the cache is searched last
    monkeypatch.delenv("VSML_BENCH_DATA")
    assert not data.is_available("mnist", "test")
    cache_copy = store.cache_dir() / "mnist"
    write_idx_split(cache_copy, "t10k", xa, y)
    assert data.is_available("mnist", "test")
    assert (
        data.load("mnist", "test")
        .info["files"]["t10k-images-idx3-ubyte.gz"]["path"]
        .startswith(str(cache_copy))
    )


def test_second_load_uses_stamps_and_parsed_cache(tmp_path, rng, monkeypatch):
    # Files under ALWAYS_HASH_BELOW are hashed on every load; treat the fixtures as large.
    monkeypatch.setattr(store, "ALWAYS_HASH_BELOW", 0)
    _mnist_fixture(tmp_path, rng, monkeypatch)
    first = data.load("mnist", "train", data_dir=tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(store, "compute_checksum", forbidden)
    monkeypatch.setattr(formats, "load_idx", forbidden)
    second = data.load("mnist", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.y, second.y)


def test_a_changed_file_is_verified_again(tmp_path, rng, monkeypatch):
    _mnist_fixture(tmp_path, rng, monkeypatch)
    data.load("mnist", "test", data_dir=tmp_path)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    corrupt_payload(path)
    os.utime(path, ns=(1, 1))  # a new mtime, whatever the clock resolution
    with pytest.raises(data.ChecksumMismatch):
        data.load("mnist", "test", data_dir=tmp_path)


def test_missing_files_error_lists_files_places_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VSML_BENCH_DATA", str(tmp_path / "shared"))
    with pytest.raises(data.DatasetNotFound) as e:
        data.load("kmnist", "test", data_dir=tmp_path / "mine")
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert "bf305b8cd328700fbc17f5acbc2856d2" in msg  # the payload md5 to provide
    for place in (tmp_path / "mine" / "kmnist", tmp_path / "shared" / "kmnist", store.cache_dir()):
        assert str(place) in msg
    assert "vsml-bench data fetch kmnist" in msg and "\n" not in msg
    assert isinstance(e.value, UserError) and e.value.searched
    assert not data.is_available("kmnist", "test")
    # no mirror known: the message says so instead of suggesting fetch
    with pytest.raises(data.DatasetNotFound, match="no public mirror"):
        data.load("cifar10_jpeg", "test", data_dir=tmp_path)


def test_status_reports_without_parsing(tmp_path, rng, monkeypatch):
    # Stamps are what status trusts for large files; treat the (small) fixtures as large.
    monkeypatch.setattr(store, "ALWAYS_HASH_BELOW", 0)
    _mnist_fixture(tmp_path, rng, monkeypatch)
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").unlink()

    def forbidden(*args, **kwargs):
        raise AssertionError("status must not parse")

    monkeypatch.setattr(formats, "load_idx", forbidden)
    st = data.status("mnist", data_dir=tmp_path)
    assert not st["train"].found
    assert st["train"].files[0].path is None and st["train"].files[1].path is not None
    assert st["test"].found and st["test"].files[0].verified is None  # not hashed yet
    st = data.status("mnist", data_dir=tmp_path, verify=True)
    assert st["test"].verified
    assert data.status("mnist", data_dir=tmp_path)["test"].verified  # stamp remembered
    corrupt_payload(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz")
    os.utime(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", ns=(1, 1))
    st = data.status("mnist", data_dir=tmp_path, verify=True)
    assert not st["test"].verified and st["test"].files[1].verified is False
    assert "failed verification" in st["test"].files[1].error
    assert data.status("digits")["train"].verified


# --------------------------------------------------------------------------------------------
# EMNIST


def test_emnist_zip_all_variants_transposition_and_letters(tmp_path, rng, monkeypatch):
    splits = {}
    for variant, k in registry.EMNIST_VARIANTS.items():
        for part in ("train", "test"):
            lo = 1 if variant == "letters" else 0
            y = rng.integers(lo, lo + k, 8).astype(np.uint8)
            splits[f"{variant}_{part}"] = (random_images(rng, 8), y)
    use_files(monkeypatch, "emnist", write_emnist_zip(tmp_path / "emnist", splits))
    for split, (x, y) in splits.items():
        ds = data.load("emnist", split, data_dir=tmp_path)
        np.testing.assert_array_equal(ds.x[..., 0], x)  # transposition undone
        shift = 1 if split.startswith("letters") else 0
        np.testing.assert_array_equal(ds.y, y.astype(np.int32) - shift)
        assert ds.n_classes == registry.EMNIST_VARIANTS[split.rsplit("_", 1)[0]]


@pytest.mark.parametrize("damage", [corrupt_payload, truncate])
def test_emnist_damaged(tmp_path, rng, monkeypatch, damage):
    splits = {"digits_test": (random_images(rng, 3), np.zeros(3, np.uint8))}
    use_files(monkeypatch, "emnist", write_emnist_zip(tmp_path / "emnist", splits))
    damage(tmp_path / "emnist" / "gzip.zip")
    with pytest.raises(data.ChecksumMismatch, match=r"gzip\.zip"):
        data.load("emnist", "digits_test", data_dir=tmp_path)
    assert _cache_is_empty()


# --------------------------------------------------------------------------------------------
# SVHN


def _svhn(tmp_path, rng, monkeypatch):
    x = random_images(rng, 6, 32, 32, 3)
    y = np.array([10, 1, 2, 10, 9, 5], np.uint8)
    use_files(monkeypatch, "svhn", write_svhn_mat(tmp_path / "svhn", "test_32x32.mat", x, y))
    return x, y


def test_svhn_mat(tmp_path, rng, monkeypatch):
    x, y = _svhn(tmp_path, rng, monkeypatch)
    ds = data.load("svhn", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, np.where(y == 10, 0, y))
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 0, 9, 5])


@pytest.mark.parametrize("damage", [corrupt_payload, truncate])
def test_svhn_damaged(tmp_path, rng, monkeypatch, damage):
    _svhn(tmp_path, rng, monkeypatch)
    damage(tmp_path / "svhn" / "test_32x32.mat")
    with pytest.raises(data.ChecksumMismatch, match=r"test_32x32\.mat"):
        data.load("svhn", "test", data_dir=tmp_path)
    assert _cache_is_empty()


# --------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_arrays(rng):
    train = (random_images(rng, 10, 32, 32, 3), rng.integers(0, 10, 10).astype(np.uint8))
    test = (random_images(rng, 4, 32, 32, 3), rng.integers(0, 10, 4).astype(np.uint8))
    return train, test


def test_cifar10_binary(tmp_path, rng, monkeypatch):
    train, test = _cifar_arrays(rng)
    use_files(monkeypatch, "cifar10", write_cifar_binary(tmp_path / "cifar10", train, test))
    tr = data.load("cifar10", "train", data_dir=tmp_path)
    te = data.load("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(tr.x, train[0])  # HWC, RGB order kept
    np.testing.assert_array_equal(tr.y, train[1])
    np.testing.assert_array_equal(te.x, test[0])
    assert tr.info["classes"] == list(CIFAR10_CLASSES)


def test_cifar10_python_tarball_checks_members_then_restricted_unpickle(tmp_path, rng, monkeypatch):
    train, test = _cifar_arrays(rng)
    spec, member_md5 = write_cifar_python(tmp_path / "cifar10", train, test)
    use_files(monkeypatch, "cifar10", spec)
    monkeypatch.setattr(formats, "CIFAR10_PYTHON_MEMBER_MD5", member_md5)
    te = data.load("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(te.x, test[0])
    np.testing.assert_array_equal(te.y, test[1])
    # with the published member md5s, these fixture members are refused before unpickling
    monkeypatch.setattr(formats, "CIFAR10_PYTHON_MEMBER_MD5", registry.CIFAR10_PYTHON_MEMBER_MD5)
    with pytest.raises(data.ChecksumMismatch, match="data_batch_1"):
        data.load("cifar10", "train", data_dir=tmp_path)


def test_cifar10_python_refuses_foreign_globals(tmp_path, rng, monkeypatch):
    train, test = _cifar_arrays(rng)
    spec, member_md5 = write_cifar_python(tmp_path / "cifar10", train, test, poison=True)
    use_files(monkeypatch, "cifar10", spec)
    monkeypatch.setattr(formats, "CIFAR10_PYTHON_MEMBER_MD5", member_md5)
    with pytest.raises(formats.FormatError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        data.load("cifar10", "test", data_dir=tmp_path)


@pytest.mark.parametrize("damage", [corrupt_payload, truncate])
def test_cifar10_damaged(tmp_path, rng, monkeypatch, damage):
    train, test = _cifar_arrays(rng)
    use_files(monkeypatch, "cifar10", write_cifar_binary(tmp_path / "cifar10", train, test))
    damage(tmp_path / "cifar10" / "cifar-10-binary.tar.gz")
    with pytest.raises(data.ChecksumMismatch, match="cifar-10-binary"):
        data.load("cifar10", "test", data_dir=tmp_path)
    assert _cache_is_empty()


# --------------------------------------------------------------------------------------------
# Omniglot


def test_omniglot_one_class_per_character(tmp_path, rng, monkeypatch):
    spec, images = write_omniglot_zip(
        tmp_path / "omniglot", "images_background_small1.zip", {"Bb": 2, "Aa": 3}, 2, rng, size=12
    )
    use_files(monkeypatch, "omniglot", spec)
    monkeypatch.setitem(
        registry.REGISTRY,
        "omniglot",
        registry.dataclasses.replace(
            registry.REGISTRY["omniglot"],
            input_shape=(12, 12, 1),
            n_classes={**registry.REGISTRY["omniglot"].n_classes, "background_small1": 5},
        ),
    )
    ds = data.load("omniglot", "background_small1", data_dir=tmp_path)
    assert ds.x.shape == (10, 12, 12, 1) and ds.n_classes == 5
    assert ds.info["classes"] == [
        "Aa/character01", "Aa/character02", "Aa/character03", "Bb/character01", "Bb/character02",
    ]  # fmt: skip
    np.testing.assert_array_equal(np.bincount(ds.y), [2] * 5)
    first = sorted(images)[0]
    np.testing.assert_array_equal(ds.x[0, ..., 0], images[first])
    assert set(np.unique(ds.x)) <= {0, 255}


@pytest.mark.parametrize("damage", [corrupt_payload, truncate])
def test_omniglot_damaged(tmp_path, rng, monkeypatch, damage):
    spec, _ = write_omniglot_zip(
        tmp_path / "omniglot", "images_evaluation.zip", {"A": 1}, 2, rng, size=8
    )
    use_files(monkeypatch, "omniglot", spec)
    damage(tmp_path / "omniglot" / "images_evaluation.zip")
    with pytest.raises(data.ChecksumMismatch, match=r"images_evaluation\.zip"):
        data.load("omniglot", "evaluation", data_dir=tmp_path)
    assert _cache_is_empty()


# --------------------------------------------------------------------------------------------
# CIFAR-10 JPEG copy


def test_cifar10_jpeg_tarball(tmp_path, rng, monkeypatch):
    name = "cifar10_test_jpeg_YoongiKim.tar.gz"
    use_files(
        monkeypatch, "cifar10_jpeg", write_jpeg_tar(tmp_path / "cifar10-jpeg-q75", name, 3, rng)
    )
    ds = data.load("cifar10_jpeg", "test", data_dir=tmp_path)
    assert ds.name == "cifar10_jpeg" and ds.x.shape == (30, 32, 32, 3) and ds.x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.y), [3] * 10)
    # each class was a flat colour 20 c + 10 (+0..2 noise): JPEG keeps it within a few levels
    levels = ds.x.reshape(30, -1).mean(1)
    np.testing.assert_allclose(levels, 20 * ds.y + 11, atol=4)


@pytest.mark.parametrize("damage", [corrupt_payload, truncate])
def test_cifar10_jpeg_damaged(tmp_path, rng, monkeypatch, damage):
    name = "cifar10_test_jpeg_YoongiKim.tar.gz"
    use_files(monkeypatch, "cifar10_jpeg", write_jpeg_tar(tmp_path / "cifar10_jpeg", name, 1, rng))
    damage(tmp_path / "cifar10_jpeg" / name)
    with pytest.raises(data.ChecksumMismatch, match="YoongiKim"):
        data.load("cifar10_jpeg", "test", data_dir=tmp_path)
    assert _cache_is_empty()


# --------------------------------------------------------------------------------------------
# Format edge cases


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_idx_roundtrip(shape, seed):
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(formats.parse_idx_bytes(idx_bytes(arr)), arr)


def test_idx_rejects_wrong_magic_and_length():
    good = idx_bytes(np.zeros((2, 3), np.uint8))
    with pytest.raises(formats.FormatError, match="bad magic"):
        formats.parse_idx_bytes(b"\x01" + good[1:])
    with pytest.raises(formats.FormatError, match="holds 5 bytes of values, not 6"):
        formats.parse_idx_bytes(good[:-1])


def test_verified_but_malformed_file_is_a_one_sentence_user_error(tmp_path, monkeypatch):
    """If a registry checksum ever named a file of the wrong layout, the user still gets one
    sentence (FormatError is a UserError), never a numpy traceback."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    payloads = {
        "t10k-images-idx3-ubyte.gz": idx_bytes(np.zeros((3, 28, 28), np.uint8)),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.zeros(4, np.uint8)),  # one label too many
    }
    files = {}
    for name, payload in payloads.items():
        (folder / name).write_bytes(gzip.compress(payload))
        files[name] = registry.FileSpec(name, payload_md5=hashlib.md5(payload).hexdigest())
    use_files(monkeypatch, "mnist", files)
    with pytest.raises(formats.FormatError, match="do not match") as e:
        data.load("mnist", "test", data_dir=tmp_path)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    assert not list(store.cache_dir().rglob("*.npy"))
