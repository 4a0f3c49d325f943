"""Atomic file writes: the one way the library writes a file a reader might see half-written.

``atomic_write_bytes(path, data)`` writes ``data`` to a new temporary file in ``path``'s folder,
flushes it to disk (``fsync``), and renames it over ``path`` (``os.replace``, atomic on POSIX and
Windows within one file system). A reader, or a run resumed after a crash, therefore sees either
the old file or the whole new one, never a prefix; on any error the temporary file is removed
and ``path`` is untouched.

Permissions are those of any new file: the temporary file is created with mode ``0o666`` and
the kernel applies the process umask (usually giving ``0o644``), so checkpoints, results and
shipped meta-parameters are readable by others exactly as if written with ``open``. (``mkstemp``
would make them private, ``0o600``.)
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename); return the path.

    Creates missing parent folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # 48 random bits collided; draw another name
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # Without the fsync a crash soon after the rename can leave ``path`` empty.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))
