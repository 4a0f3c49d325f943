"""``vsml-bench data status|verify|fetch``: inventory, checksum verification and download."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser(
        "status",
        help="table of datasets: splits, where found, verified",
        description="List every dataset with its splits, where its files were found and "
        "whether they verify (files not yet verified are hashed once; the result is cached).",
    )
    p.add_argument("--data-dir", help="a folder searched before VSML_BENCH_DATA and the cache")
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="do not hash files that have no cached verification (faster)",
    )

    p = sub.add_parser(
        "verify",
        help="re-hash the files of one dataset (or all present ones)",
        description="Hash every present file of NAME (default: every dataset) against its "
        "published payload checksum, ignoring cached results; exits non-zero on any mismatch.",
    )
    p.add_argument("name", nargs="?", help="dataset name (see `vsml-bench data status`)")
    p.add_argument("--data-dir", help="a folder searched before VSML_BENCH_DATA and the cache")

    p = sub.add_parser(
        "fetch",
        help="download a dataset's missing files into the cache",
        description="Download the missing files of NAME from its mirrors into the cache "
        "(VSML_BENCH_CACHE or ~/.cache/vsml-bench), verifying each before it is kept.",
    )
    p.add_argument("name", help="dataset name (see `vsml-bench data status`)")
    p.add_argument(
        "--split", action="append", help="only this split (repeatable; default: all splits)"
    )
    p.add_argument("--data-dir", help="a folder searched before VSML_BENCH_DATA and the cache")


def run(args: argparse.Namespace) -> int:
    return {"status": _status, "verify": _verify, "fetch": _fetch}[args.data_command](args)


def _status(args: argparse.Namespace) -> int:
    from vsml_bench import data

    rows = []
    corrupt = 0
    for name in data.names():
        s = data.spec(name)
        st = data.status(name, data_dir=args.data_dir, verify=not args.no_verify)
        if s.embedded:
            rows.append((name, _short_splits(list(st)), "embedded", "yes (ships with the code)"))
            continue
        groups: dict[str, list[str]] = {}
        places: list[str] = []
        for split, ss in st.items():
            if not ss.found:
                state = "missing"
            elif ss.verified:
                state = "verified"
            elif any(f.verified is False for f in ss.files):
                state = "CORRUPT"
                corrupt += 1
            else:
                state = "found, not verified"
            groups.setdefault(state, []).append(split)
            for f in ss.files:
                if f.path is not None:
                    folder = f.path.rsplit("/", 1)[0]
                    if folder not in places:
                        places.append(folder)
        splits = _short_splits(list(st))
        if len(groups) == 1:
            (state,) = groups
            verdict = state
        else:
            verdict = "; ".join(f"{state}: {', '.join(sp)}" for state, sp in groups.items())
        if "missing" in groups:
            verdict += f" (get it with `vsml-bench data fetch {name}`)"
        rows.append((name, splits, ", ".join(places) or "-", verdict))
    _print_table(("dataset", "splits", "where found", "verified"), rows)
    if corrupt:
        print(
            f"\n{corrupt} split(s) have files that fail verification; see `vsml-bench data verify`"
        )
        return 1
    return 0


def _short_splits(splits: list[str]) -> str:
    """EMNIST has 12 splits: show them as ``{byclass,bymerge,...}_{train,test}`` (short rows)."""
    parts = [s.rsplit("_", 1) for s in splits]
    if len(splits) > 4 and all(len(p) == 2 for p in parts):
        stems = list(dict.fromkeys(p[0] for p in parts))
        tails = list(dict.fromkeys(p[1] for p in parts))
        return f"{{{','.join(stems)}}}_{{{','.join(tails)}}}"
    return ", ".join(splits)


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, tuple("-" * len(h) for h in header), *rows):
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, str(row[-1])]))


def _verify(args: argparse.Namespace) -> int:
    from vsml_bench import data
    from vsml_bench.data.errors import ChecksumMismatch, DataError

    names = [args.name] if args.name else list(data.names())
    failures: list[ChecksumMismatch] = []
    n_ok = 0
    for name in names:
        s = data.spec(name)
        if s.embedded:
            continue
        try:
            checked = data.verify_dataset(name, data_dir=args.data_dir)
        except ChecksumMismatch as error:
            if args.name:
                raise
            failures.append(error)
            continue
        except data.DatasetNotFound:
            if args.name:
                raise
            continue
        for path in checked:
            print(f"ok  {name:14s} {path}")
            n_ok += 1
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise DataError(
            f"{len(failures)} files failed verification ({', '.join(f.path for f in failures)}); "
            "run `vsml-bench data verify NAME` on each dataset for details"
        )
    print(f"{n_ok} file(s) verified")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from vsml_bench import data

    s = data.spec(args.name)
    if s.embedded:
        print(f"{args.name} ships with the code; nothing to fetch")
        return 0
    for split in args.split or []:
        s.check_split(split)
    paths = data.fetch(args.name, splits=args.split, data_dir=args.data_dir)
    for path in paths:
        print(f"ok  {path}")
    return 0
