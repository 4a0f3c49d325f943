"""vsml_bench.io: atomic writes with the permissions of a new file."""

from __future__ import annotations

import os
import stat

import pytest

from vsml_bench.io import atomic_write_bytes, atomic_write_text


def test_writes_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    assert atomic_write_text(path, "first ü\n") == path
    assert path.read_bytes() == "first ü\n".encode()
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]  # no temp files left


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write_bytes(tmp_path / "x.bin", b"1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 minus the umask, not mkstemp's 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.txt"
    path.write_text("old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
