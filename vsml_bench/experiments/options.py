"""The options every experiment shares: its command-line flags and its ``Config`` record.

An experiment has a ``Config`` dataclass with two presets, ``CPU`` (the default) and ``PAPER``
(``--paper``); every flag whose name is a field of the ``Config`` overrides that field
(:func:`config_from_args`). The flags below mean the same in every experiment, so they are
defined once here; the experiment adds its own after them.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from vsml_bench.errors import UserError

C = TypeVar("C")


def positive(text: str) -> int:
    """argparse ``type=`` for a count: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_common(parser: argparse.ArgumentParser, *, out: str, paper_help: str) -> None:
    """``--out`` (default ``out``), ``--paper``, ``--datasets``, ``--seed``, ``--split`` and
    ``--no-progress``."""
    parser.add_argument("--out", default=out, help="output folder")
    parser.add_argument("--paper", action="store_true", help=paper_help)
    parser.add_argument("--datasets", nargs="+", default=None, help="data registry names")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--split", default=None, help="split of the reported streams (test)")
    add_no_progress(parser)


def add_lineup(
    parser: argparse.ArgumentParser, *, document: str, streams_help: str | None = None
) -> None:
    """The options of an experiment that runs a lineup (:mod:`.lineup`) on test streams and
    writes ``OUT/<document>``: ``--learners``, ``--streams``, ``--length``, ``--tune-split``
    and ``--render-only``."""
    parser.add_argument(
        "--learners",
        nargs="+",
        default=None,
        help="learner specs (NAME, NAME:SET, NAME:PATH); sgd/adam are tuned on the train "
        "split (default: every shipped meta-trained set, then sgd adam)",
    )
    parser.add_argument("--streams", type=positive, default=None, help=streams_help)
    parser.add_argument("--length", type=positive, default=None, help="examples per stream")
    parser.add_argument(
        "--tune-split", default=None, help="split SGD/Adam tune their rate on (train)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help=f"redraw the plot and table from OUT/{document} without running anything",
    )


def config_from_args(args: argparse.Namespace, cpu: C, paper: C) -> C:
    """``paper`` if ``--paper`` else ``cpu``, with every flag given that names a field applied
    on top (lists become tuples: configs are frozen and hashable)."""
    config = paper if args.paper else cpu
    changes = {}
    for field in dataclasses.fields(config):
        value = getattr(args, field.name, None)
        if value is not None:
            changes[field.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A ``Config``'s record: its fields as JSON types (tuples as lists)."""
    record = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        record[field.name] = list(value) if isinstance(value, tuple) else value
    return record


def config_from_dict(cls: type[C], record: Mapping[str, Any]) -> C:
    """The ``Config`` of a :func:`config_to_dict` record (e.g. a results file's ``"config"``)."""
    fields = dataclasses.fields(cls)
    names = {field.name for field in fields}
    experiment = cls.__module__.rpartition(".")[2]
    unknown = sorted(set(record) - names)
    if unknown:
        raise UserError(
            f"unknown {experiment} config field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    missing = [
        f.name
        for f in fields
        if f.name not in record
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"the {experiment} config record lacks {', '.join(missing)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})
