"""``load``, ``status``, ``is_available``, ``fetch`` and ``verify_dataset``: the data layer's API."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsml_bench.data import embedded, formats, store
from vsml_bench.data.dataset import Dataset
from vsml_bench.data.errors import ChecksumMismatch, DataError, DatasetNotFound
from vsml_bench.data.registry import DatasetSpec, FileSpec, spec

PathLike = str | os.PathLike[str]


def _get_spec(name: str) -> DatasetSpec:
    # Looked up at call time (not import time) so tests can swap registry entries.
    return spec(name)


def _base_info(s: DatasetSpec, split: str) -> dict[str, Any]:
    return {
        "title": s.title,
        "licence": s.licence,
        "source": s.source,
        "urls": list(s.urls()),
        "value_max": s.value_max,
        "mean": s.mean,
        "std": s.std,
        "notes": s.notes,
    }


def load(
    name: str,
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = False,
    **options: Any,
) -> Dataset:
    """Load one split of a dataset into memory.

    Args:
      name: a registry name (see :func:`names`).
      split: e.g. ``"train"``, ``"test"``, ``"background_small1"``, ``"letters_train"``; each
        dataset's splits are listed by ``spec(name).splits``. A dataset without a ``"train"`` split
        (notmnist, cifar10_jpeg) must be asked for its split explicitly.
      data_dir: a folder searched first (``<data_dir>/<dataset>/<files>`` or the files directly).
      download: fetch missing files from the mirrors into the cache (after verification).
      **options: only for the synthetic sets: ``sum_sign`` takes ``n=10000, dim=16, seed=0``;
        ``random`` takes ``n=1000, dim=16, n_classes=10, seed=0``.

    Returns:
      A :class:`Dataset`: images as raw ``uint8 [N, H, W, C]`` (``x / info["value_max"]`` is in
      ``[0, 1]``: 255 for photos/scans, 16 for digits), tabular and synthetic data as
      ``float32 [N, D]``, labels ``int32`` in ``0 .. n_classes - 1``. ``info`` holds the licence,
      sources, normalisation statistics and, for file-backed sets, the verified checksums and
      the paths read.

    Raises:
      DatasetNotFound: the files are missing (lists them, the folders searched, and the fetch
        command). ChecksumMismatch: a file's bytes are not the published ones.
    """
    s = _get_spec(name)
    s.check_split(split)
    if options and s.kind != "synthetic":
        raise DataError(f"dataset {name!r} takes no options (got {', '.join(sorted(options))})")
    info = _base_info(s, split)
    if s.embedded:
        x, y, extra = _load_embedded(s, split, options)
        n_classes = int(extra.get("options", {}).get("n_classes", s.n_classes[split]))
        info.update(extra)
        if s.kind == "tabular":
            info["mean"], info["std"] = extra["mean"], extra["std"]
        return Dataset(name=name, split=split, x=x, y=y, n_classes=n_classes, info=info)

    files, paths = _resolve(s, split, data_dir, download)
    digests = tuple(f.checksum[1] for f in files)
    info["files"] = {
        f.name: {"path": str(p), "checksum": f"{f.checksum[0]}:{f.checksum[1]}"}
        for f, p in zip(files, paths, strict=True)
    }
    key = store.ParsedKey(name, split, digests)
    cached = store.load_parsed(key)
    if cached is not None:
        x, y, extra = cached
    else:
        try:
            x, y, extra = _parse(s, split, files, paths)
        except (PermissionError, IsADirectoryError) as error:  # verified by stamp, now unreadable
            raise store.unreadable(Path(error.filename or paths[0]), error, s.name) from None
        _check_parsed(s, split, x, y)
        store.save_parsed(key, x, y, extra)
    info.update(extra)
    return Dataset(name=name, split=split, x=x, y=y, n_classes=s.n_classes[split], info=info)


def _load_embedded(s: DatasetSpec, split: str, options: dict[str, Any]):
    if s.name == "digits":
        return embedded.digits()
    if s.kind == "tabular":
        return embedded.tabular(s.name)
    if s.name == "sum_sign":
        return embedded.sum_sign(split, **options)
    if s.name == "random":
        return embedded.random_labels(split, **options)
    raise DataError(f"dataset {s.name!r} has no embedded loader")  # registry bug


def _parse(s: DatasetSpec, split: str, files: list[FileSpec], paths: list[Path]):
    if s.name in ("mnist", "fashion_mnist", "kmnist", "notmnist"):
        return formats.load_idx(paths)
    if s.name == "emnist":
        return formats.load_emnist(paths, split)
    if s.name == "svhn":
        return formats.load_svhn(paths)
    if s.name == "cifar10":
        return formats.load_cifar10(paths, split)
    if s.name == "omniglot" and split == "all_runs":
        return formats.load_omniglot_runs(paths)
    if s.name == "omniglot":
        return formats.load_omniglot(paths)
    if s.name == "cifar10_jpeg":
        return formats.load_jpeg_tar(paths)
    raise DataError(f"dataset {s.name!r} has no parser")  # registry bug


def _check_parsed(s: DatasetSpec, split: str, x: np.ndarray, y: np.ndarray) -> None:
    """Guard the contract every consumer relies on (shape, dtype, label range)."""
    n = s.n_classes[split]
    if s.input_shape is not None and tuple(x.shape[1:]) != tuple(s.input_shape):
        raise formats.FormatError(
            f"{s.name}/{split} parsed to images of shape {x.shape[1:]}, not {s.input_shape}"
        )
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
        raise formats.FormatError(
            f"{s.name}/{split} has labels outside 0..{n - 1} ({int(y.min())}..{int(y.max())})"
        )


# --------------------------------------------------------------------------------------------
# Finding the files of a split


def _alternatives(s: DatasetSpec, split: str) -> tuple[tuple[str, ...], ...]:
    s.check_split(split)
    return s.splits[split]


def _resolve(
    s: DatasetSpec, split: str, data_dir: PathLike | None, download: bool
) -> tuple[list[FileSpec], list[Path]]:
    """Pick the first alternative whose files are all present (downloading the first
    alternative's missing files if allowed), verify every file, return specs and paths."""
    alternatives = _alternatives(s, split)
    for names_ in alternatives:
        files = [s.files[n] for n in names_]
        paths = [store.locate(s, f, data_dir) for f in files]
        if all(p is not None for p in paths):
            paths = [_verified(s, f, p, download) for f, p in zip(files, paths, strict=True)]  # type: ignore[arg-type]
            return files, paths
    if download:
        names_ = next((a for a in alternatives if all(s.files[n].urls for n in a)), None)
        if names_ is not None:
            files = [s.files[n] for n in names_]
            paths = []
            for f in files:
                p = store.locate(s, f, data_dir)
                if p is None:
                    p = store.download(f, _download_dir(s))
                paths.append(_verified(s, f, p, download))
            return files, paths
    raise not_found(s, split, data_dir)


def _download_dir(s: DatasetSpec) -> Path:
    return store.cache_dir() / (s.folders or (s.name,))[0]


def _verified(s: DatasetSpec, f: FileSpec, path: Path, download: bool) -> Path:
    """Verify ``path``; a bad copy in *our cache* is replaced when downloads are allowed (a
    user's own folders are never touched: their bad file is reported)."""
    try:
        store.verify(path, f, progress=True, dataset=s.name)
        return path
    except ChecksumMismatch:
        in_cache = path.resolve().is_relative_to(store.cache_dir().resolve())
        if not (download and in_cache and f.urls):
            raise
    path.unlink()
    fresh = store.download(f, _download_dir(s))
    store.verify(fresh, f, progress=True, dataset=s.name)
    return fresh


def not_found(s: DatasetSpec, split: str, data_dir: PathLike | None = None) -> DatasetNotFound:
    """The one-sentence error for a split whose files are missing."""
    alternatives = _alternatives(s, split)
    wanted = []
    for names_ in alternatives:
        wanted.append(
            " + ".join(
                f"{n} ({s.files[n].checksum[0]} {s.files[n].checksum[1]})"
                for n in names_
                if store.locate(s, s.files[n], data_dir) is None
            )
        )
    searched = tuple(str(d) for d in store.candidate_dirs(s, data_dir))
    fetchable = any(all(s.files[n].urls for n in a) for a in alternatives)
    how = (
        f"run `vsml-bench data fetch {s.name}` (or load(..., download=True)), or put the files in "
        "one of those folders (or set VSML_BENCH_DATA)"
        if fetchable
        else "no public mirror is known, so copy the files into one of those folders (or set "
        "VSML_BENCH_DATA)"
    )
    return DatasetNotFound(
        f"dataset {s.name!r} split {split!r} needs {' or '.join(wanted)}, which is in none of "
        f"{', '.join(searched)}; {how}",
        dataset=s.name,
        split=split,
        missing=tuple(wanted),
        searched=searched,
    )


# --------------------------------------------------------------------------------------------
# Status, availability, verification, fetching


def is_available(name: str, split: str | None = None, data_dir: PathLike | None = None) -> bool:
    """Cheap check (no hashing, no parsing): are the files of ``split`` (default: the dataset's
    default split) present somewhere in the lookup path? Always True for embedded datasets."""
    s = _get_spec(name)
    split = s.default_split if split is None else split
    if s.embedded:
        s.check_split(split)
        return True
    return any(
        all(store.locate(s, s.files[n], data_dir) is not None for n in names_)
        for names_ in _alternatives(s, split)
    )


@dataclass
class FileStatus:
    """Where one file was found and whether it is known to verify."""

    name: str
    path: str | None  # None: missing
    verified: bool | None  # None: not checked (no stamp and verify=False)
    error: str | None = None


@dataclass
class SplitStatus:
    split: str
    files: list[FileStatus] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.files) and all(f.path is not None for f in self.files)

    @property
    def verified(self) -> bool:
        return self.found and all(f.verified for f in self.files)


def status(
    name: str, data_dir: PathLike | None = None, verify: bool = False
) -> dict[str, SplitStatus]:
    """Per split: the files (of the first alternative found, else of the first alternative),
    where each was found or None, and whether it verified. Never parses. With ``verify=False``
    only existing verification stamps count; ``verify=True`` hashes unverified files (then
    stamps them). Embedded splits report no files and are always found and verified."""
    s = _get_spec(name)
    result: dict[str, SplitStatus] = {}
    for split, alternatives in s.splits.items():
        if s.embedded:
            result[split] = SplitStatus(split, [FileStatus("(embedded)", "embedded", True)])
            continue
        chosen = alternatives[0]
        for names_ in alternatives:
            if all(store.locate(s, s.files[n], data_dir) is not None for n in names_):
                chosen = names_
                break
        st = SplitStatus(split)
        for n in chosen:
            f = s.files[n]
            path = store.locate(s, f, data_dir)
            verified: bool | None = None
            error = None
            if path is not None:
                if store.is_verified(path, f):
                    verified = True
                elif verify:
                    try:
                        store.verify(path, f, progress=True, dataset=s.name)
                        verified = True
                    except ChecksumMismatch as e:
                        verified, error = False, str(e)
            st.files.append(FileStatus(n, None if path is None else str(path), verified, error))
        result[split] = st
    return result


def verify_dataset(name: str, data_dir: PathLike | None = None) -> dict[str, str]:
    """Hash every present file of ``name`` (stamps ignored); return ``{path: checksum}``.

    Raises :class:`ChecksumMismatch` at the first bad file and :class:`DatasetNotFound` when
    no file of the dataset is present at all.
    """
    s = _get_spec(name)
    checked: dict[str, str] = {}
    for f in s.files.values():
        path = store.locate(s, f, data_dir)
        if path is not None:
            checked[str(path)] = store.verify(
                path, f, progress=True, use_stamp=False, dataset=s.name
            )
    if s.files and not checked:
        raise not_found(s, s.default_split, data_dir)
    return checked


def fetch(
    name: str, splits: list[str] | None = None, data_dir: PathLike | None = None
) -> list[Path]:
    """Make every file of ``splits`` (default: all) present and verified, downloading into the
    cache what is missing. Returns the paths."""
    s = _get_spec(name)
    if s.embedded:
        return []
    paths: list[Path] = []
    for split in splits or list(s.splits):
        _, found = _resolve(s, split, data_dir, download=True)
        paths.extend(p for p in found if p not in paths)
    return paths
