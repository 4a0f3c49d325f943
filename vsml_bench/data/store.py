"""Finding, verifying, downloading and caching dataset files.

Lookup order for a file: the explicit ``data_dir``, then every directory in ``VSML_BENCH_DATA``
(``os.pathsep``-separated), then the user cache (``VSML_BENCH_CACHE`` or ``~/.cache/vsml-bench``);
inside each, ``<dir>/<folder>/<file>`` for each folder name the registry accepts (an explicit
``data_dir`` may also hold the files directly). Downloads go to the cache.

Safety rules: bytes are parsed only after their checksum matched; a download streams into a
temporary file in the destination folder, is verified, and only then renamed (atomically) to its
final name, so an interrupted or corrupt download never appears under that name.

Two caches keep repeated loads cheap:
* a verification stamp per (path, size, mtime, expected checksum), so a verified 50 MB file is not
  hashed again until it changes;
* parsed arrays as ``.npy``, keyed by the expected checksums of the files they came from.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from vsml_bench.data.errors import ChecksumMismatch, DownloadError
from vsml_bench.data.registry import DatasetSpec, FileSpec
from vsml_bench.io import atomic_write_bytes

# Bump when a parser changes what it returns: old parsed caches are then ignored.
PARSED_FORMAT_VERSION = 1
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


def _stamp_path(path: Path, file: FileSpec) -> Path:
    st = path.stat()
    kind, digest = file.checksum
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{kind}|{digest}"
    return cache_dir() / "verified" / hashlib.sha256(key.encode()).hexdigest()[:32]


def is_verified(path: Path, file: FileSpec) -> bool:
    """Whether a stamp says ``path`` (at its current size and mtime) matched ``file``'s checksum."""
    try:
        return _stamp_path(path, file).is_file()
    except OSError:
        return False


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
    if use_stamp and is_verified(path, file):
        return expected
    bar = _progress_bar(path, progress)
    try:
        actual = compute_checksum(path, kind, bar.update if bar is not None else None)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        if isinstance(error, FileNotFoundError | PermissionError):
            raise
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
    if not write_stamp:
        return actual
    with contextlib.suppress(OSError):  # a read-only cache only costs speed
        atomic_write_bytes(_stamp_path(path, file), f"{kind} {expected}\n".encode())
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
    final = dest_dir / file.name
    failures: list[str] = []
    for url in file.urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{file.name}.", suffix=".part")
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


def load_parsed(key: ParsedKey) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """The cached arrays for ``key``, or None (a damaged cache entry counts as absent)."""
    folder = key.folder()
    try:
        x = np.load(folder / "x.npy", allow_pickle=False)
        y = np.load(folder / "y.npy", allow_pickle=False)
        extra = json.loads((folder / "info.json").read_text())
    except (OSError, ValueError):
        return None
    return x, y, extra


def save_parsed(key: ParsedKey, x: np.ndarray, y: np.ndarray, extra: dict[str, Any]) -> None:
    """Write the arrays into a temp folder and rename it into place (readers never see half)."""
    folder = key.folder()
    if folder.exists():
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    except OSError:
        return  # a read-only cache only costs speed
    try:
        np.save(tmp / "x.npy", x, allow_pickle=False)
        np.save(tmp / "y.npy", y, allow_pickle=False)
        (tmp / "info.json").write_text(json.dumps(extra))
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
