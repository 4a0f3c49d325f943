"""`vsml-bench data status|verify|fetch` through the real CLI entry point (cli.main)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from fixtures_data import random_images, use_files, write_idx_split

from vsml_bench import cli


@pytest.fixture
def run_cli(capsys):
    """``vsml-bench data ...`` in-process: (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["data", *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(autouse=True)
def _no_real_data(monkeypatch, fresh_cache):
    # An empty cache per test: these tests check exactly what gets cached.
    monkeypatch.delenv("VSML_BENCH_DATA", raising=False)


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(name + " "))


def test_status_shows_found_and_missing_with_fetch_hint(tmp_path, monkeypatch, run_cli):
    rng = np.random.default_rng(0)
    files = write_idx_split(
        tmp_path / "mnist", "train", random_images(rng, 3), np.zeros(3, np.uint8)
    )
    files |= write_idx_split(
        tmp_path / "mnist", "t10k", random_images(rng, 2), np.ones(2, np.uint8)
    )
    use_files(monkeypatch, "mnist", files)
    code, out, err = run_cli("status", "--data-dir", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["dataset", "splits", "where", "found", "verified"]
    mnist = _row(out, "mnist")
    assert str(tmp_path / "mnist") in mnist and mnist.rstrip().endswith("verified")
    kmnist = _row(out, "kmnist")
    assert "missing" in kmnist and "vsml-bench data fetch kmnist" in kmnist
    assert "embedded" in _row(out, "digits")


def test_status_flags_a_corrupt_file(tmp_path, monkeypatch, run_cli):
    rng = np.random.default_rng(0)
    files = write_idx_split(tmp_path / "mnist", "t10k", random_images(rng, 2), np.ones(2, np.uint8))
    use_files(monkeypatch, "mnist", files)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"junk"))
    code, out, _ = run_cli("status", "--data-dir", str(tmp_path))
    assert code == 1 and "CORRUPT" in _row(out, "mnist")


def test_verify_corrupted_real_name_fails_with_one_sentence(tmp_path, run_cli):
    """The published checksums: a corrupted mnist/t10k-images-idx3-ubyte.gz must fail."""
    bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(100)))
    code, _out, err = run_cli("verify", "mnist", "--data-dir", str(tmp_path))
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert str(bad) in lines[0] and "2646ac647ad5339dbf082846283269ea" in lines[0]
    # a truncated copy gives the same kind of error
    bad.write_bytes(bad.read_bytes()[:10])
    code, _, err = run_cli("verify", "mnist", "--data-dir", str(tmp_path))
    assert code != 0 and len(err.strip().splitlines()) == 1 and "truncated" in err


def test_verify_all_reports_ok_files(tmp_path, monkeypatch, run_cli):
    rng = np.random.default_rng(0)
    files = write_idx_split(tmp_path / "mnist", "t10k", random_images(rng, 2), np.ones(2, np.uint8))
    use_files(monkeypatch, "mnist", files)
    code, out, _ = run_cli("verify", "--data-dir", str(tmp_path))
    assert code == 0 and out.count("ok  mnist") == 2 and "2 file(s) verified" in out


def test_verify_missing_dataset_is_a_user_error(tmp_path, run_cli):
    code, _, err = run_cli("verify", "svhn", "--data-dir", str(tmp_path))
    assert code == 2 and "vsml-bench data fetch svhn" in err and "Traceback" not in err


def test_fetch(tmp_path, monkeypatch, run_cli):
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    files = write_idx_split(
        mirror, "t10k", random_images(rng, 2), np.ones(2, np.uint8), urls=(mirror.as_uri() + "/",)
    )
    use_files(monkeypatch, "mnist", files)
    code, out, err = run_cli("fetch", "mnist", "--split", "test")
    assert code == 0, err
    assert out.count("ok  ") == 2
    code, out, _ = run_cli("fetch", "digits")
    assert code == 0 and "nothing to fetch" in out
    code, _, err = run_cli("fetch", "mnist", "--split", "validation")
    assert code == 2 and "no split 'validation'" in err
    code, _, err = run_cli("fetch", "nosuchset")
    assert code == 2 and "unknown dataset" in err


def test_verify_corrupted_mnist_through_the_installed_command(tmp_path):
    """The acceptance check as a user runs it: a separate process, the real dispatcher."""
    import os
    import subprocess
    import sys

    bad = tmp_path / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(64)))
    env = {k: v for k, v in os.environ.items() if k != "VSML_BENCH_DATA"}
    env["VSML_BENCH_DATA"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "vsml_bench", "data", "verify", "mnist"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "failed verification" in err[0] and str(bad) in err[0]
