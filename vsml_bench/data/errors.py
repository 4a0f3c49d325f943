"""Errors of the data layer; each message is one sentence that says how to fix the problem."""

from __future__ import annotations

from vsml_bench.errors import UserError


class DataError(UserError):
    """Base class of every data-layer error."""


class UnknownDataset(DataError, KeyError):
    """A dataset name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownSplit(DataError, KeyError):
    """A split the dataset does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatasetNotFound(DataError, FileNotFoundError):
    """The files of a split are in none of the places searched (and no download was allowed).

    Attributes:
      dataset, split: what was asked for.
      missing: the expected file names with their checksums.
      searched: the folders looked in.
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str = "",
        split: str = "",
        missing: tuple[str, ...] = (),
        searched: tuple[str, ...] = (),
    ):
        super().__init__(message)
        self.dataset = dataset
        self.split = split
        self.missing = missing
        self.searched = searched

    def __str__(self) -> str:
        return str(self.args[0])


class ChecksumMismatch(DataError):
    """A file's bytes are not the published ones (corrupt, truncated or a different version).

    Attributes:
      path: the file.
      kind: which checksum (``payload_md5``, ``sha256``, ``md5``).
      expected, actual: the two hex digests (``actual`` may describe why none could be computed).
    """

    def __init__(
        self, path: str, kind: str, expected: str, actual: str, dataset: str | None = None
    ):
        self.path = path
        self.kind = kind
        self.expected = expected
        self.actual = actual
        self.dataset = dataset
        fix = f"`vsml-bench data fetch {dataset}`" if dataset else "a fresh download"
        super().__init__(
            f"{path} failed verification: its {kind} is {actual} but {expected} was expected; "
            f"delete it and replace it with the published file (e.g. {fix})"
        )


class DownloadError(DataError):
    """Every mirror of a file failed."""


class UnreadableFile(DataError):
    """A data file that exists but cannot be read (permissions, a folder in its place)."""
