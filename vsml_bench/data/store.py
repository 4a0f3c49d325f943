"""Finding, verifying, downloading and caching dataset files.

Lookup order for a file: the explicit ``data_dir``, then every directory in ``VSML_BENCH_DATA``
(``os.pathsep``-separated), then the user cache (``VSML_BENCH_CACHE`` or ``~/.cache/vsml-bench``);
inside each, ``<dir>/<folder>/<file>`` for each folder name the registry accepts (an explicit
``data_dir`` may also hold the files directly). Downloads go to the cache.

Safety rules: bytes are parsed only after their checksum matched; a download streams into a
temporary file in the destination folder, is verified, and only then renamed (atomically) to its
final name, so an interrupted or corrupt download never appears under that name.

Two caches keep repeated loads cheap, both tied to content hashes:
* a verification stamp per (path, expected checksum) and the file's identity: size, mtime,
  ctime, inode and device. ``ctime`` cannot be set back by a program (``os.utime`` sets only
  mtime and atime), so an edit that keeps the size and restores the mtime still changes the
  identity; the stamp also holds a fingerprint (sha256 of the first and last 64 KiB) that must
  match. Files under :data:`ALWAYS_HASH_BELOW` bytes (label files, small tables) are hashed in
  full on every load instead, which costs less than a millisecond;
* parsed arrays as ``.npy``, in a folder keyed by the checksums of the files they came from, with
  a ``manifest.json`` holding the sha256 of every array file and the identity it had when
  hashed. A file whose identity changed is hashed again; a mismatch (an edited ``y.npy``)
  discards the entry, which is parsed again from the verified source files.

A killed first load can leave temporary files and folders behind; their names carry the host
and process id, and the next load removes those of dead processes (and any older than a day).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from vsml_bench.data.errors import ChecksumMismatch, DownloadError, UnreadableFile
from vsml_bench.data.registry import DatasetSpec, FileSpec
from vsml_bench.io import atomic_write_bytes

# Bump when a parser changes what it returns: old parsed caches are then ignored.
# 2: cache folders carry manifest.json (content hashes of the arrays).
PARSED_FORMAT_VERSION = 2
#: Files smaller than this are hashed in full on every verification (no stamp is trusted).
ALWAYS_HASH_BELOW = 1 << 20
#: Bytes at each end of a file that a stamp's fingerprint hashes.
_FINGERPRINT_BYTES = 1 << 16
#: Temporary files and folders older than this are stale whoever made them (seconds).
_STALE_AFTER_S = 24 * 3600
#: Temporaries without a host/pid tag are stale after this long (seconds).
_UNTAGGED_STALE_AFTER_S = 3600
_HOST = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def cache_dir() -> Path:
    """``VSML_BENCH_CACHE`` if set, else ``~/.cache/vsml-bench``."""
    env = os.environ.get("VSML_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vsml-bench"


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories searched, in order (``data_dir``, ``VSML_BENCH_DATA``, cache)."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    for part in os.environ.get("VSML_BENCH_DATA", "").split(os.pathsep):
        if part.strip():
            roots.append(Path(part.strip()).expanduser())
    roots.append(cache_dir())
    seen: set[Path] = set()
    unique = []
    for root in roots:
        if root not in seen:
            seen.add(root)
            unique.append(root)
    return unique


def candidate_dirs(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every folder that may hold ``spec``'s files, in lookup order."""
    dirs: list[Path] = []
    folders = spec.folders or (spec.name,)
    if spec.name not in folders:
        folders = (*folders, spec.name)
    for i, root in enumerate(search_roots(data_dir)):
        dirs.extend(root / folder for folder in folders)
        if i == 0 and data_dir is not None:
            dirs.append(root)  # an explicit data_dir may point straight at the files
    return dirs


def locate(
    spec: DatasetSpec, file: FileSpec, data_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The first existing copy of ``file`` in lookup order, or None (no hashing)."""
    for folder in candidate_dirs(spec, data_dir):
        for name in file.alternative_names:
            path = folder / name
            if path.is_file():
                return path
    return None


# ---------------------------------------------------------------------------------------------
# Hashing and verification


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _hash_stream(stream: IO[bytes], algo: str, progress: Callable[[int], None] | None) -> str:
    h = hashlib.new(algo)
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
        if progress is not None:
            progress(len(chunk))
    return h.hexdigest()


class _CountingReader:
    """Wraps a raw file so the progress bar advances by compressed bytes read."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None):
        self.raw = raw
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if self.progress is not None and data:
            self.progress(len(data))
        return data


def compute_checksum(path: Path, kind: str, progress: Callable[[int], None] | None = None) -> str:
    """Hex digest of ``kind`` (``payload_md5``, ``sha256`` or ``md5``) for ``path``.

    ``payload_md5`` hashes the gzip-decompressed stream when the file starts with the gzip magic
    bytes, else the file itself. Raises :class:`ChecksumMismatch`-friendly ``OSError`` subclasses
    (``EOFError``, ``zlib.error``) for a truncated or corrupt gzip stream; callers convert them.
    """
    if kind == "payload_md5":
        if _is_gzip(path):
            with (
                open(path, "rb") as raw,
                gzip.GzipFile(fileobj=_CountingReader(raw, progress)) as payload,  # type: ignore[arg-type]
            ):
                return _hash_stream(payload, "md5", None)
        kind = "md5"
    with open(path, "rb") as f:
        return _hash_stream(f, kind, progress)


def identity(st: os.stat_result) -> list[int]:
    """What changes whenever a file's contents may have: size, mtime, ctime, inode, device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def fingerprint(path: Path) -> str:
    """sha256 of the size and the first and last 64 KiB: a cheap check that a file is the one a
    stamp was written for (the full hash is what the stamp vouches for)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(str(size).encode())
        h.update(f.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            f.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            h.update(f.read(_FINGERPRINT_BYTES))
    return h.hexdigest()


def _stamp_path(path: Path, file: FileSpec) -> Path:
    kind, digest = file.checksum
    ident = "|".join(str(v) for v in identity(path.stat()))
    key = f"{path.resolve()}|{ident}|{kind}|{digest}"
    return cache_dir() / "verified" / hashlib.sha256(key.encode()).hexdigest()[:32]


def is_verified(path: Path, file: FileSpec) -> bool:
    """Whether ``path`` is known to match ``file``'s checksum without hashing it in full.

    True when a stamp for the file's current identity (size, mtime, ctime, inode, device)
    exists, names the expected digest and the file's fingerprint still matches. Small files
    (under :data:`ALWAYS_HASH_BELOW` bytes) are never taken on trust: they are hashed now.
    """
    try:
        if path.stat().st_size < ALWAYS_HASH_BELOW:
            kind, expected = file.checksum
            return compute_checksum(path, kind) == expected
        record = json.loads(_stamp_path(path, file).read_text())
        return record == {"checksum": list(file.checksum), "fingerprint": fingerprint(path)}
    except (OSError, ValueError, EOFError, zlib.error):
        return False


def unreadable(path: Path, error: OSError, dataset: str | None) -> UnreadableFile:
    return UnreadableFile(
        f"cannot read {path} ({error.strerror or error}); make it readable by this user "
        f"(e.g. chmod a+r) or remove it from the data folders"
        + (f" and run `vsml-bench data fetch {dataset}`" if dataset else "")
    )


def verify(
    path: Path,
    file: FileSpec,
    *,
    progress: bool = False,
    use_stamp: bool = True,
    write_stamp: bool = True,
    dataset: str | None = None,
) -> str:
    """Check ``path`` against ``file``'s deciding checksum; return the digest.

    Raises :class:`ChecksumMismatch` naming the file and both digests. A successful check writes
    a stamp (keyed by path, size, mtime and expected digest) so the next call is free.
    """
    kind, expected = file.checksum
    small = path.stat().st_size < ALWAYS_HASH_BELOW  # hashed below in any case
    if use_stamp and not small and is_verified(path, file):
        return expected
    bar = _progress_bar(path, progress)
    try:
        actual = compute_checksum(path, kind, bar.update if bar is not None else None)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        if isinstance(error, PermissionError | IsADirectoryError):
            raise unreadable(path, error, dataset) from None
        raise ChecksumMismatch(
            str(path),
            kind,
            expected,
            "unreadable (truncated or corrupt gzip data)",
            dataset,
        ) from None
    finally:
        if bar is not None:
            bar.close()
    if actual != expected:
        raise ChecksumMismatch(str(path), kind, expected, actual, dataset)
    if not write_stamp or path.stat().st_size < ALWAYS_HASH_BELOW:
        return actual
    record = {"checksum": [kind, expected], "fingerprint": fingerprint(path)}
    with contextlib.suppress(OSError):  # a read-only cache only costs speed
        atomic_write_bytes(_stamp_path(path, file), json.dumps(record).encode())
    return expected


def _progress_bar(path: Path, enabled: bool):
    if not enabled:
        return None
    size = path.stat().st_size
    if size < (8 << 20):  # small files verify faster than a bar renders
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=size, unit="B", unit_scale=True, desc=f"verify {path.name}", leave=False, disable=None
    )


# ---------------------------------------------------------------------------------------------
# Download


def _urlopen(url: str, timeout: float = 60.0):
    """Indirection so tests can substitute an opener (no network in tests)."""
    request = urllib.request.Request(url, headers={"User-Agent": "vsml-bench"})
    return urllib.request.urlopen(request, timeout=timeout)


def download(file: FileSpec, dest_dir: Path, *, progress: bool = True) -> Path:
    """Download ``file`` into ``dest_dir`` from its mirrors in order; return the final path.

    Each attempt streams into a temporary file next to the destination, verifies the payload
    checksum, and renames atomically; a failed, corrupt or interrupted attempt leaves nothing
    under the final name (and removes its temporary file unless the process is killed outright,
    in which case a ``.<name>.*.part`` file may remain, never the final name).
    """
    if not file.urls:
        raise DownloadError(
            f"{file.name} has no known download mirror; copy it into {dest_dir} by hand"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(dest_dir)
    final = dest_dir / file.name
    failures: list[str] = []
    for url in file.urls:
        fd, tmp_name = tempfile.mkstemp(
            dir=dest_dir, prefix=_temp_prefix(file.name), suffix=".part"
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, _urlopen(url) as response:
                total = _content_length(response) or file.size
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        desc=file.name,
                        leave=False,
                        disable=None,
                    )
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
            verify(tmp, file, use_stamp=False, write_stamp=False)
            os.replace(tmp, final)
            return final
        except ChecksumMismatch as error:
            failures.append(f"{url}: {error.kind} {error.actual} != {error.expected}")
        except OSError as error:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {error}")
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    raise DownloadError(
        f"could not download {file.name} ({'; '.join(failures)}); check the network or copy the "
        f"file into {dest_dir} by hand"
    )


def _content_length(response: Any) -> int | None:
    try:
        value = response.headers.get("Content-Length")
        return int(value) if value else None
    except (AttributeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Parsed-array cache


@dataclass(frozen=True)
class ParsedKey:
    name: str
    split: str
    digests: tuple[str, ...]

    def folder(self) -> Path:
        blob = json.dumps([PARSED_FORMAT_VERSION, self.name, self.split, list(self.digests)])
        key = hashlib.sha256(blob.encode()).hexdigest()[:24]
        return cache_dir() / "arrays" / self.name / f"{self.split}-{key}"


_ARRAY_FILES = ("x.npy", "y.npy", "info.json")


def _temp_prefix(name: str) -> str:
    """``.<name>.tmp-<host>-<pid>-``: whose temporary file this is, for :func:`clean_stale`."""
    return f".{name}.tmp-{_HOST}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its files
    return True


def _is_stale(entry: Path, now: float) -> bool:
    """Whether ``entry`` (a dot-named temporary file or folder) belongs to no live writer."""
    name = entry.name
    if not name.startswith("."):  # cache entries and user files never start with a dot
        return False
    try:
        age = now - entry.lstat().st_mtime
    except OSError:
        return False
    if age > _STALE_AFTER_S:
        return True
    if ".tmp-" not in name:
        # Untagged (written by an older version, or by vsml_bench.io): a load writes its
        # temporaries within minutes, so one an hour old has no live writer.
        return age > _UNTAGGED_STALE_AFTER_S
    tag = name.rpartition(".tmp-")[2].split("-")
    if len(tag) >= 3 and tag[0] == _HOST and tag[1].isdigit():
        return int(tag[1]) != os.getpid() and not _pid_alive(int(tag[1]))
    return False  # another host's: only age tells


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` left by killed writers; return them.

    Only dot-named entries are candidates (the cache's own entries never start with a dot):
    those tagged with this host and a process id that no longer runs, untagged ones older than
    an hour, and any older than a day. Errors are ignored (cleanup is best-effort; a read-only
    cache only costs disk space).
    """
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if _is_stale(entry, now):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return _hash_stream(f, "sha256", None)


def _entry_intact(folder: Path, manifest: dict[str, Any]) -> bool:
    """Whether every array file still has the content hash the manifest records.

    A file whose identity is the one recorded (and that is not small) is taken as it is; any
    other is hashed in full: after ``cp -p`` or a restore it is accepted once its hash matches,
    after an edit (even one that keeps size and mtime) it is not.
    """
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(_ARRAY_FILES):
        return False
    for name in _ARRAY_FILES:
        record = files[name]
        path = folder / name
        st = path.stat()
        if not isinstance(record, dict) or record.get("size") != st.st_size:
            return False
        if st.st_size >= ALWAYS_HASH_BELOW and record.get("identity") == identity(st):
            continue
        if _sha256_file(path) != record.get("sha256"):
            return False
    return True


def _discard(folder: Path) -> None:
    """Move a damaged cache entry out of the way (a tagged temp name), then delete it."""
    aside = folder.with_name(f"{_temp_prefix(folder.name)}{os.urandom(4).hex()}")
    with contextlib.suppress(OSError):
        os.replace(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)


def load_parsed(key: ParsedKey) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """The cached arrays for ``key``, or None (absent, or damaged: then it is discarded).

    Every file is checked against the sha256 in the entry's manifest (see the module docstring),
    so an edited ``y.npy`` or ``info.json`` is never loaded; the caller parses the verified
    source files again. Stale temporary folders of killed loads are removed first.
    """
    folder = key.folder()
    clean_stale(folder.parent)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if not isinstance(manifest, dict) or manifest.get("sources") != list(key.digests):
            raise ValueError("manifest of other sources")
        if not _entry_intact(folder, manifest):
            raise ValueError("content changed")
        x = np.load(folder / "x.npy", allow_pickle=False)
        y = np.load(folder / "y.npy", allow_pickle=False)
        extra = json.loads((folder / "info.json").read_text())
        if not isinstance(extra, dict):
            raise ValueError("info.json is not an object")
    except FileNotFoundError:
        if folder.exists():
            _discard(folder)  # a folder without its manifest or arrays: not ours to trust
        return None
    except (OSError, ValueError, EOFError):
        _discard(folder)
        return None
    return x, y, extra


def save_parsed(key: ParsedKey, x: np.ndarray, y: np.ndarray, extra: dict[str, Any]) -> None:
    """Write the arrays and their manifest into a temp folder, then rename it into place
    (readers never see half an entry)."""
    folder = key.folder()
    if folder.exists():
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_temp_prefix(folder.name)))
    except OSError:
        return  # a read-only cache only costs speed
    try:
        np.save(tmp / "x.npy", x, allow_pickle=False)
        np.save(tmp / "y.npy", y, allow_pickle=False)
        (tmp / "info.json").write_text(json.dumps(extra))
        files = {}
        for name in _ARRAY_FILES:
            st = (tmp / name).stat()
            files[name] = {
                "sha256": _sha256_file(tmp / name),
                "size": st.st_size,
                # Renaming the folder leaves the files' inodes and ctimes as they are.
                "identity": identity(st),
            }
        manifest = {"format": PARSED_FORMAT_VERSION, "sources": list(key.digests), "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        os.replace(tmp, folder)
    except OSError:
        pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def iter_cached(name: str) -> Iterator[Path]:
    folder = cache_dir() / "arrays" / name
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if not p.name.startswith("."))
