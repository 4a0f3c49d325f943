"""Parsers for the upstream file formats. Every function here receives files already verified.

All parsers return ``(x, y, extra)`` with ``x`` uint8 ``[N, H, W, C]``, ``y`` int32 ``[N]`` and
``extra`` a JSON-serialisable dict (e.g. class names). Archives are read member by member in
memory: nothing is extracted to disk, so member paths cannot escape anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsml_bench.data.errors import ChecksumMismatch, DataError
from vsml_bench.data.registry import CIFAR10_CLASSES, CIFAR10_PYTHON_MEMBER_MD5

Parsed = tuple[np.ndarray, np.ndarray, dict[str, Any]]


class FormatError(DataError):
    """A verified file did not have the expected layout (should not happen with real data)."""


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


# --------------------------------------------------------------------------------------------
# IDX (MNIST family)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx_bytes(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode an IDX payload: magic ``00 00 <dtype> <ndim>``, ``ndim`` big-endian uint32 sizes,
    then the values in C order."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise FormatError(f"{source} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FormatError(f"{source} is cut short inside its header ({len(data)} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize  # exact: sizes are up to 2^32 each
    if len(data) - header != expected:
        raise FormatError(f"{source} holds {len(data) - header} bytes of values, not {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def parse_idx_pair(images: bytes, labels: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    x = parse_idx_bytes(images, f"{source} images")
    y = parse_idx_bytes(labels, f"{source} labels")
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise FormatError(f"{source}: images {x.shape} and labels {y.shape} do not match")
    return np.ascontiguousarray(x[..., None], dtype=np.uint8), y.astype(np.int32)


def load_idx(paths: list[Path]) -> Parsed:
    """``paths = [images, labels]`` (``.gz`` or decompressed)."""
    images, labels = paths
    x, y = parse_idx_pair(_read_maybe_gzip(images), _read_maybe_gzip(labels), str(images.parent))
    return x, y, {}


# --------------------------------------------------------------------------------------------
# EMNIST: IDX gz files inside gzip.zip


def load_emnist(paths: list[Path], split: str) -> Parsed:
    """``split`` is ``<variant>_<train|test>``. Members ``gzip/emnist-<variant>-<part>-...``.

    EMNIST stores each image transposed relative to MNIST; we transpose it back. The letters
    variant labels 1..26; we shift them to 0..25 so labels are always ``0 .. n_classes - 1``.
    """
    (archive,) = paths
    variant, part = split.rsplit("_", 1)
    stem = f"gzip/emnist-{variant}-{part}"
    with zipfile.ZipFile(archive) as zf:
        images = gzip.decompress(zf.read(f"{stem}-images-idx3-ubyte.gz"))
        labels = gzip.decompress(zf.read(f"{stem}-labels-idx1-ubyte.gz"))
    x, y = parse_idx_pair(images, labels, f"{archive}:{stem}")
    x = np.ascontiguousarray(x.transpose(0, 2, 1, 3))
    if variant == "letters":
        y = y - 1
    return x, y.astype(np.int32), {}


# --------------------------------------------------------------------------------------------
# SVHN: MATLAB v5 .mat


def load_svhn(paths: list[Path]) -> Parsed:
    """``X`` is ``(32, 32, 3, N)``; ``y`` is ``(N, 1)`` with 10 meaning the digit 0."""
    import scipy.io

    (path,) = paths
    mat = scipy.io.loadmat(path)
    x = np.ascontiguousarray(np.asarray(mat["X"], np.uint8).transpose(3, 0, 1, 2))
    y = np.asarray(mat["y"]).reshape(-1).astype(np.int32)
    if len(x) != len(y):
        raise FormatError(f"{path}: {len(x)} images but {len(y)} labels")
    y = np.where(y == 10, 0, y).astype(np.int32)
    return x, y, {}


# --------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_records(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes, row-major)."""
    record = 1 + 3 * 32 * 32
    if len(data) % record:
        raise FormatError(f"{source} is not a whole number of CIFAR-10 records")
    rows = np.frombuffer(data, np.uint8).reshape(-1, record)
    y = rows[:, 0].astype(np.int32)
    x = rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except the NumPy array reconstructors a CIFAR batch needs."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            # Python-3 protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"): harmless.
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise FormatError(f"refusing to unpickle {module}.{name} from a CIFAR-10 batch")


def load_cifar10(paths: list[Path], split: str) -> Parsed:
    """Binary tarball (``cifar-10-batches-bin/*.bin``) or python tarball (member md5s checked
    before a NumPy-only unpickler reads them)."""
    (archive,) = paths
    wanted = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        binary = archive.name.startswith("cifar-10-binary") or any(
            n.startswith("cifar-10-batches-bin/") for n in members
        )
        for batch in wanted:
            member = (
                f"cifar-10-batches-bin/{batch}.bin" if binary else f"cifar-10-batches-py/{batch}"
            )
            if member not in members:
                raise FormatError(f"{archive} has no member {member}")
            data = tar.extractfile(members[member]).read()  # type: ignore[union-attr]
            if binary:
                x, y = _cifar_records(data, f"{archive}:{member}")
            else:
                actual = hashlib.md5(data).hexdigest()
                expected = CIFAR10_PYTHON_MEMBER_MD5[batch]
                if actual != expected:
                    raise ChecksumMismatch(f"{archive}:{member}", "md5", expected, actual)
                d = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
                x = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                y = np.asarray(d[b"labels"], np.int32)
            xs.append(x)
            ys.append(y)
    return (
        np.ascontiguousarray(np.concatenate(xs)),
        np.concatenate(ys),
        {"classes": list(CIFAR10_CLASSES)},
    )


# --------------------------------------------------------------------------------------------
# Omniglot: zip of <top>/<alphabet>/<character>/<drawer>.png


def _decode_png_gray(data: bytes, source: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im.convert("L"), np.uint8)


def load_omniglot(paths: list[Path]) -> Parsed:
    """One class per (alphabet, character), numbered in sorted order; images ``[105, 105, 1]``
    with 255 = background (Omniglot's PNGs are 1-bit, True = white)."""
    (archive,) = paths
    with zipfile.ZipFile(archive) as zf:
        pngs = sorted(n for n in zf.namelist() if n.lower().endswith(".png"))
        if not pngs:
            raise FormatError(f"{archive} holds no PNG images")
        classes: dict[str, int] = {}
        xs, ys = [], []
        for name in pngs:
            parts = name.split("/")
            if len(parts) < 3:
                raise FormatError(f"{archive}: {name} is not <alphabet>/<character>/<image>.png")
            character = "/".join(parts[-3:-1])
            label = classes.setdefault(character, len(classes))
            xs.append(_decode_png_gray(zf.read(name), f"{archive}:{name}"))
            ys.append(label)
    shapes = {a.shape for a in xs}
    if len(shapes) != 1:
        raise FormatError(f"{archive}: images of different sizes {sorted(shapes)}")
    x = np.stack(xs)[..., None]
    return x, np.asarray(ys, np.int32), {"classes": list(classes)}


def load_omniglot_runs(paths: list[Path]) -> Parsed:
    """Lake et al.'s one-shot classification runs (``all_runs.zip``) as a dataset of episodes.

    The zip holds ``runNN/training/classKK.png`` (one image of each of the run's ``W`` classes),
    ``runNN/test/itemMM.png`` (``W`` test images) and ``runNN/class_labels.txt``, one line
    ``runNN/test/itemMM.png runNN/training/classKK.png`` per test image naming its class.
    Run ``r`` (0-based, sorted order) becomes rows ``2 W r .. 2 W r + 2 W - 1``: first its
    training images in class order (class ``k`` gets label ``W r + k``), then its test items in
    item order, each labelled with its class's label. Every class has exactly one test item
    (the published protocol); anything else is a :class:`FormatError`. ``info["episodes"]``
    gives ``n_runs`` and ``n_way``, so the run ``r`` episode is exactly that block of rows.
    """
    (archive,) = paths
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        runs = sorted({n.split("/", 1)[0] for n in names if "/" in n})
        if not runs:
            raise FormatError(f"{archive} holds no runNN/ folders")
        xs, ys, classes, n_way = [], [], [], None
        for r, run in enumerate(runs):
            training = sorted(
                n for n in names if n.startswith(f"{run}/training/") and n.endswith(".png")
            )
            tests = sorted(n for n in names if n.startswith(f"{run}/test/") and n.endswith(".png"))
            if n_way is None:
                n_way = len(training)
            if not training or len(training) != n_way or len(tests) != n_way:
                raise FormatError(
                    f"{archive}: {run} has {len(training)} training and {len(tests)} test images; "
                    f"every run needs {n_way or 'the same number of'} of each"
                )
            label_of = {name: r * n_way + k for k, name in enumerate(training)}
            try:
                lines = zf.read(f"{run}/class_labels.txt").decode("ascii").split("\n")
            except KeyError:
                raise FormatError(f"{archive}: {run}/class_labels.txt is missing") from None
            pairs = dict(line.split() for line in lines if line.strip())
            matched = [label_of.get(pairs.get(item, "")) for item in tests]
            if None in matched or sorted(matched) != sorted(label_of.values()):
                raise FormatError(
                    f"{archive}: {run}/class_labels.txt does not give each training class "
                    "exactly one test item"
                )
            for name in training + tests:
                xs.append(_decode_png_gray(zf.read(name), f"{archive}:{name}"))
            ys.extend(label_of.values())
            ys.extend(matched)
            classes.extend(name.rsplit(".", 1)[0].replace("/training/", "/") for name in training)
    shapes = {a.shape for a in xs}
    if len(shapes) != 1:
        raise FormatError(f"{archive}: images of different sizes {sorted(shapes)}")
    x = np.stack(xs)[..., None]
    episodes = {"n_runs": len(runs), "n_way": n_way}
    return x, np.asarray(ys, np.int32), {"classes": classes, "episodes": episodes}


# --------------------------------------------------------------------------------------------
# CIFAR-10 JPEG copy: tar.gz of <top>/<class>/<n>.jpg


def load_jpeg_tar(paths: list[Path]) -> Parsed:
    """Decode every ``<class>/<n>.jpg`` with Pillow (RGB, 32x32); classes in CIFAR-10 order."""
    from PIL import Image

    (archive,) = paths
    index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    items: list[tuple[int, str, np.ndarray]] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.lower().endswith((".jpg", ".jpeg")):
                continue
            class_name = member.name.split("/")[-2]
            if class_name not in index:
                raise FormatError(f"{archive}: {member.name} is in an unknown class folder")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            with Image.open(io.BytesIO(data)) as im:
                rgb = np.asarray(im.convert("RGB"), np.uint8)
            items.append((index[class_name], member.name, rgb))
    if not items:
        raise FormatError(f"{archive} holds no JPEG images")
    items.sort(key=lambda t: (t[0], t[1]))  # deterministic whatever the tar order
    x = np.stack([t[2] for t in items])
    y = np.asarray([t[0] for t in items], np.int32)
    return x, y, {"classes": list(CIFAR10_CLASSES)}
