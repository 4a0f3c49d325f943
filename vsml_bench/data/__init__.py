"""The data layer: a registry of datasets, verified loading, caching and task transforms.

Quick use::

    from vsml_bench import data
    ds = data.load("digits")                 # embedded, no files: uint8 [1797, 8, 8, 1], 0..16
    ds = data.load("mnist", "test")          # file-backed: searched in data_dir, VSML_BENCH_DATA,
                                             # the cache; downloaded only with download=True
    x01 = ds.x / ds.info["value_max"]        # pixels in [0, 1]
    data.is_available("kmnist", "train")     # cheap: are the files there?
    data.spec("mnist").mean                  # registry facts

Transforms for tasks (NumPy and jittable JAX) are in :mod:`vsml_bench.data.transforms`.
"""

from vsml_bench.data.dataset import Dataset
from vsml_bench.data.errors import (
    ChecksumMismatch,
    DataError,
    DatasetNotFound,
    DownloadError,
    UnknownDataset,
    UnknownSplit,
    UnreadableFile,
)
from vsml_bench.data.loader import (
    FileStatus,
    SplitStatus,
    fetch,
    is_available,
    load,
    status,
    verify_dataset,
)
from vsml_bench.data.registry import DatasetSpec, FileSpec, names, spec
from vsml_bench.data.store import cache_dir

__all__ = [
    "ChecksumMismatch",
    "DataError",
    "Dataset",
    "DatasetNotFound",
    "DatasetSpec",
    "DownloadError",
    "FileSpec",
    "FileStatus",
    "SplitStatus",
    "UnknownDataset",
    "UnknownSplit",
    "UnreadableFile",
    "cache_dir",
    "fetch",
    "is_available",
    "load",
    "names",
    "spec",
    "status",
    "verify_dataset",
]
