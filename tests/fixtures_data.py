"""Writers of small dataset fixtures in the exact upstream file formats, for the data tests.

Each writer puts the files where a data dir expects them and returns ``{file name: FileSpec}``
with the fixture's own checksums, so a test can swap them into the registry entry
(:func:`use_files`) and run the real loaders on them. Corruption helpers make a damaged copy
that must be rejected.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from vsml_bench.data import registry
from vsml_bench.data.registry import CIFAR10_CLASSES, FileSpec


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def use_files(monkeypatch, name: str, files: dict[str, FileSpec]) -> registry.DatasetSpec:
    """Swap fixture checksums (and URLs) into the registry entry of ``name`` for one test."""
    new = registry.REGISTRY[name].with_files(files)
    monkeypatch.setitem(registry.REGISTRY, name, new)
    return new


# ---------------------------------------------------------------------------------------------
# IDX (MNIST family)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding: ``00 00 08 <ndim>``, big-endian uint32 dims, uint8 values."""
    array = np.ascontiguousarray(array, np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def random_images(rng: np.random.Generator, n: int, h: int = 28, w: int = 28, c: int = 0):
    shape = (n, h, w) if c == 0 else (n, h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write_idx_split(
    folder: Path,
    prefix: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    compress: bool = True,
    urls: tuple[str, ...] = (),
) -> dict[str, FileSpec]:
    """Write ``<prefix>-images-idx3-ubyte.gz`` and ``<prefix>-labels-idx1-ubyte.gz`` (``prefix``
    is ``train`` or ``t10k``); with ``compress=False`` the decompressed names are written."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = {}
    for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
        name = f"{prefix}-{kind}-ubyte.gz"
        payload = idx_bytes(arr)
        if compress:
            (folder / name).write_bytes(gzip.compress(payload, mtime=0))
        else:
            (folder / name[:-3]).write_bytes(payload)
        specs[name] = FileSpec(name, payload_md5=md5(payload), urls=tuple(u + name for u in urls))
    return specs


# ---------------------------------------------------------------------------------------------
# EMNIST gzip.zip


def write_emnist_zip(
    folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, FileSpec]:
    """``splits``: ``"<variant>_<part>" -> (x [N, 28, 28] in MNIST orientation, y as stored)``.
    Images are written transposed, as NIST stores them."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for split, (x, y) in splits.items():
            variant, part = split.rsplit("_", 1)
            stem = f"gzip/emnist-{variant}-{part}"
            zf.writestr(
                f"{stem}-images-idx3-ubyte.gz",
                gzip.compress(idx_bytes(x.transpose(0, 2, 1)), mtime=0),
            )
            zf.writestr(f"{stem}-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(y), mtime=0))
    data = buf.getvalue()
    (folder / "gzip.zip").write_bytes(data)
    return {"gzip.zip": FileSpec("gzip.zip", md5=md5(data))}


# ---------------------------------------------------------------------------------------------
# SVHN .mat (MATLAB v5)


def write_svhn_mat(folder: Path, name: str, x: np.ndarray, y: np.ndarray) -> dict[str, FileSpec]:
    """``x [N, 32, 32, 3]`` uint8, ``y`` in 1..10 (10 = digit 0), stored as SVHN does:
    ``X (32, 32, 3, N)``, ``y (N, 1)``."""
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    scipy.io.savemat(
        path, {"X": np.ascontiguousarray(x.transpose(1, 2, 3, 0)), "y": y.reshape(-1, 1)}
    )
    return {name: FileSpec(name, payload_md5=md5(path.read_bytes()))}


# ---------------------------------------------------------------------------------------------
# CIFAR-10 tarballs


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def cifar_records(x: np.ndarray, y: np.ndarray) -> bytes:
    """Binary batch: per image 1 label byte then R, G, B planes of 32x32 bytes."""
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    return np.concatenate([y.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def write_cifar_binary(
    folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> dict[str, FileSpec]:
    """``cifar-10-binary.tar.gz``: ``cifar-10-batches-bin/data_batch_{1..5}.bin`` (train split
    in 5 equal parts), ``test_batch.bin``, ``batches.meta.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        xs, ys = np.array_split(train[0], 5), np.array_split(train[1], 5)
        for i, (xb, yb) in enumerate(zip(xs, ys, strict=True), start=1):
            _tar_add(tar, f"cifar-10-batches-bin/data_batch_{i}.bin", cifar_records(xb, yb))
        _tar_add(tar, "cifar-10-batches-bin/test_batch.bin", cifar_records(*test))
        _tar_add(tar, "cifar-10-batches-bin/batches.meta.txt", "\n".join(CIFAR10_CLASSES).encode())
    data = buf.getvalue()
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    return {"cifar-10-binary.tar.gz": FileSpec("cifar-10-binary.tar.gz", sha256=sha256(data))}


def write_cifar_python(
    folder: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    poison: bool = False,
) -> tuple[dict[str, FileSpec], dict[str, str]]:
    """``cifar-10-python.tar.gz`` with pickled batches ``{b"data": uint8 [N, 3072] (CHW),
    b"labels": list}``. Returns the file spec and the member md5s. ``poison=True`` makes the
    test batch a pickle that would call ``os.system`` if unpickled freely."""
    folder.mkdir(parents=True, exist_ok=True)

    def batch(x, y):
        return pickle.dumps(
            {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"labels": [int(v) for v in y]},
            protocol=2,
        )

    class _Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    members = {}
    xs, ys = np.array_split(train[0], 5), np.array_split(train[1], 5)
    for i, (xb, yb) in enumerate(zip(xs, ys, strict=True), start=1):
        members[f"data_batch_{i}"] = batch(xb, yb)
    members["test_batch"] = pickle.dumps(_Evil(), protocol=2) if poison else batch(*test)
    members["batches.meta"] = pickle.dumps({b"label_names": list(CIFAR10_CLASSES)}, protocol=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            _tar_add(tar, f"cifar-10-batches-py/{name}", data)
    data = buf.getvalue()
    (folder / "cifar-10-python.tar.gz").write_bytes(data)
    spec = {"cifar-10-python.tar.gz": FileSpec("cifar-10-python.tar.gz", sha256=sha256(data))}
    return spec, {name: md5(d) for name, d in members.items()}


# ---------------------------------------------------------------------------------------------
# Omniglot zip of 1-bit PNGs


def png_1bit(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image.astype(bool)).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_omniglot_zip(
    folder: Path,
    zip_name: str,
    alphabets: dict[str, int],
    n_drawers: int,
    rng: np.random.Generator,
    size: int = 105,
) -> tuple[dict[str, FileSpec], dict[str, np.ndarray]]:
    """``<zip stem>/<alphabet>/characterNN/<id>_<drawer>.png`` for ``alphabets = {name:
    n_characters}``. Returns the spec and ``{member name: image (0/255 uint8)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = zip_name[: -len(".zip")]
    images = {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{stem}/", b"")
        for alphabet, n_chars in alphabets.items():
            zf.writestr(f"{stem}/{alphabet}/", b"")
            for c in range(1, n_chars + 1):
                zf.writestr(f"{stem}/{alphabet}/character{c:02d}/", b"")
                for d in range(1, n_drawers + 1):
                    img = rng.random((size, size)) > 0.1  # mostly white, like strokes on paper
                    name = f"{stem}/{alphabet}/character{c:02d}/{c:04d}_{d:02d}.png"
                    zf.writestr(name, png_1bit(img))
                    images[name] = img.astype(np.uint8) * 255
    data = buf.getvalue()
    (folder / zip_name).write_bytes(data)
    return {zip_name: FileSpec(zip_name, sha256=sha256(data))}, images


# ---------------------------------------------------------------------------------------------
# CIFAR-10 JPEG tarball


def write_jpeg_tar(
    folder: Path, name: str, per_class: int, rng: np.random.Generator
) -> dict[str, FileSpec]:
    """``test/<class>/<nnnn>.jpg`` (32x32 RGB) for every CIFAR-10 class, as a ``.tar.gz``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        for class_name in reversed(CIFAR10_CLASSES):  # an order the loader must not rely on
            for i in range(per_class):
                # A flat colour per class survives JPEG well enough to check the class mapping.
                level = 20 * CIFAR10_CLASSES.index(class_name) + 10
                img = np.full((32, 32, 3), level, np.uint8)
                img += rng.integers(0, 3, img.shape, dtype=np.uint8)
                jb = io.BytesIO()
                Image.fromarray(img).save(jb, format="JPEG", quality=75)
                _tar_add(tar, f"test/{class_name}/{i:04d}.jpg", jb.getvalue())
    payload = tar_buf.getvalue()
    data = gzip.compress(payload, mtime=0)
    (folder / name).write_bytes(data)
    return {name: FileSpec(name, payload_md5=md5(payload), sha256=sha256(data))}


# ---------------------------------------------------------------------------------------------
# Damage


def corrupt_payload(path: Path) -> None:
    """Change one payload byte; a gzip file stays a valid gzip (re-compressed), so only the
    checksum can catch it."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        payload = bytearray(gzip.decompress(data))
        payload[len(payload) // 2] ^= 0xFF
        path.write_bytes(gzip.compress(bytes(payload), mtime=0))
    else:
        raw = bytearray(data)
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    """Cut the file in half (an interrupted copy or download)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_omniglot_runs_zip(
    folder: Path, n_runs: int, n_way: int, rng: np.random.Generator, size: int = 105
) -> tuple[dict[str, FileSpec], np.ndarray, dict[str, np.ndarray]]:
    """``all_runs.zip`` as published: ``runNN/`` with ``training/classKK.png``,
    ``test/itemMM.png`` and ``class_labels.txt`` (``runNN/test/itemMM.png
    runNN/training/classKK.png`` per line, CRLF-free, in item order), folders listed as members.

    Returns the spec, ``true_class int[n_runs, n_way]`` (0-based class of each test item) and
    ``{member name: image (0/255 uint8)}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, np.ndarray] = {}
    true_class = np.stack([rng.permutation(n_way) for _ in range(n_runs)])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in range(n_runs):
            run = f"run{r + 1:02d}"
            zf.writestr(f"{run}/", b"")
            lines = [
                f"{run}/test/item{m + 1:02d}.png {run}/training/class{true_class[r, m] + 1:02d}.png"
                for m in range(n_way)
            ]
            zf.writestr(f"{run}/class_labels.txt", "\n".join(lines) + "\n")
            for sub, stem in (("test", "item"), ("training", "class")):
                zf.writestr(f"{run}/{sub}/", b"")
                for k in range(n_way):
                    img = rng.random((size, size)) > 0.1
                    name = f"{run}/{sub}/{stem}{k + 1:02d}.png"
                    zf.writestr(name, png_1bit(img))
                    images[name] = img.astype(np.uint8) * 255
    data = buf.getvalue()
    (folder / "all_runs.zip").write_bytes(data)
    return {"all_runs.zip": FileSpec("all_runs.zip", sha256=sha256(data))}, true_class, images
