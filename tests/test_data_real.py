"""Real data: runs when VSML_BENCH_DATA points at the shared data folder (as in CI).

Skipped, with the reason, when VSML_BENCH_DATA is unset; when it is set, missing files fail.
"""

from __future__ import annotations

import csv
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vsml_bench import cli, data
from vsml_bench.data import store

pytestmark = pytest.mark.skipif(
    not os.environ.get("VSML_BENCH_DATA"),
    reason="VSML_BENCH_DATA is not set (point it at the shared data folder to run real-data tests)",
)


@pytest.fixture(scope="module")
def data_root() -> Path:
    for part in os.environ["VSML_BENCH_DATA"].split(os.pathsep):
        if part and (Path(part) / "MANIFEST.tsv").is_file():
            return Path(part)
    pytest.fail(f"no MANIFEST.tsv in any VSML_BENCH_DATA folder ({os.environ['VSML_BENCH_DATA']})")


def _manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _registry_file(folder: str, name: str):
    for dataset in data.names():
        s = data.spec(dataset)
        if folder in s.folders and name in s.files:
            return s, s.files[name]
    return None, None


def test_every_manifest_file_verifies(data_root):
    rows = _manifest(data_root)
    assert rows, "MANIFEST.tsv is empty"
    covered = 0
    for row in rows:
        path = data_root / row["path"]
        assert path.is_file(), f"{path} listed in MANIFEST.tsv is missing"
        assert path.stat().st_size == int(row["bytes"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256_of_file"], path
        folder, name = row["path"].split("/", 1)
        _spec, file = _registry_file(folder, name)
        if file is None:
            continue  # READMEs and licences
        covered += 1
        payload = row["md5_of_decompressed_payload"]
        if payload:
            assert file.payload_md5 == payload, f"registry payload md5 of {row['path']}"
        else:
            assert file.checksum == ("sha256", row["sha256_of_file"]), row["path"]
        # the loader's own check, ignoring any stamp
        store.verify(path, file, use_stamp=False)
    assert covered >= 14  # every data file of the manifest is known to the registry


@pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_like(name, split, n):
    ds = data.load(name, split)
    assert ds.x.shape == (n, 28, 28, 1) and ds.x.dtype == np.uint8
    assert ds.n_classes == 10 and sorted(np.unique(ds.y)) == list(range(10))
    if name == "fashion_mnist":
        np.testing.assert_array_equal(np.bincount(ds.y), [n // 10] * 10)


def test_mnist_statistics_match_the_registry():
    ds = data.load("mnist", "train")
    # A contiguous third of the set (a strided subset is biased: MNIST's order has structure).
    x = ds.x[:20000].astype(np.float32) / ds.info["value_max"]
    assert abs(x.mean() - data.spec("mnist").mean) < 2e-3
    assert abs(x.std() - data.spec("mnist").std) < 2e-3


def test_notmnist():
    ds = data.load("notmnist", "test")
    assert ds.x.shape == (10000, 28, 28, 1) and ds.n_classes == 10
    assert sorted(np.unique(ds.y)) == list(range(10))


@pytest.mark.parametrize("split", ["background_small1", "background_small2"])
def test_omniglot_every_character_is_a_class(data_root, split):
    ds = data.load("omniglot", split)
    with zipfile.ZipFile(data_root / "omniglot" / f"images_{split}.zip") as zf:
        characters = {n.rsplit("/", 1)[0] for n in zf.namelist() if n.endswith(".png")}
    assert ds.n_classes == len(characters) == len(ds.info["classes"])
    assert ds.x.shape == (20 * len(characters), 105, 105, 1)
    np.testing.assert_array_equal(np.bincount(ds.y), [20] * len(characters))
    assert set(np.unique(ds.x)) == {0, 255}


def test_cifar10_jpeg():
    ds = data.load("cifar10_jpeg", "test")
    assert ds.name == "cifar10_jpeg"
    assert ds.x.shape == (10000, 32, 32, 3) and ds.x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(ds.y), [1000] * 10)
    # natural images: channel means near CIFAR-10's (the JPEG copy keeps the statistics)
    assert abs(ds.x.mean() / 255 - data.spec("cifar10").mean) < 0.02


def test_digits():
    ds = data.load("digits")
    assert ds.x.shape == (1797, 8, 8, 1)


def test_status_of_the_shared_folder(capsys):
    assert cli.main(["data", "status"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    for name in ("mnist", "fashion_mnist", "notmnist", "cifar10_jpeg"):
        assert rows[name].rstrip().endswith("verified") and " missing" not in rows[name], rows[name]
    assert "verified: background_small1, background_small2, all_runs" in rows["omniglot"]
    for name in ("kmnist", "emnist", "svhn", "cifar10"):
        if not data.is_available(name, data.spec(name).default_split):
            assert f"missing (get it with `vsml-bench data fetch {name}`)" in rows[name]
