"""``vsml-bench envs``: list the registered environment IDs and whether their data is present.

Reads only the data registry and looks for files (no parsing, no JAX), so it is fast.
"""

from __future__ import annotations

import argparse
import json
import os

#: Input size of the synthetic sets when no ``dim`` option is given (the data layer's default).
_SYNTHETIC_DIM = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--available", action="store_true", help="only IDs whose data is present here"
    )
    parser.add_argument(
        "--kind", choices=("online", "few_shot"), help="only online or only few-shot IDs"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    parser.add_argument("--data-dir", help="a folder searched before VSML_BENCH_DATA and the cache")


def rows(data_dir: str | os.PathLike | None = None) -> list[dict[str, object]]:
    """One dict per registered ID: id, kind, dataset, classes, input_shape, default split,
    the splits whose files are present, whether the default one is, and whether any is."""
    from vsml_bench import data
    from vsml_bench.envs.factory import DEFAULT_N_WAY
    from vsml_bench.envs.registration import all_env_ids

    out = []
    present_cache: dict[str, list[str]] = {}
    for env_id, kind, dataset in all_env_ids():
        spec = data.spec(dataset)
        split = spec.default_split
        if dataset not in present_cache:
            present_cache[dataset] = [
                s for s in spec.splits if data.is_available(dataset, s, data_dir=data_dir)
            ]
        n = spec.n_classes_of(split)
        classes = n if kind == "online" else min(DEFAULT_N_WAY, n)
        shape = spec.input_shape or (_SYNTHETIC_DIM,)
        out.append(
            {
                "id": env_id,
                "kind": kind,
                "dataset": dataset,
                "classes": classes,
                "dataset_classes": n,
                "input_shape": list(shape),
                "default_split": split,
                "present_splits": present_cache[dataset],
                "default_split_present": split in present_cache[dataset],
                "available": bool(present_cache[dataset]),
            }
        )
    return out


def _table(items: list[dict[str, object]]) -> str:
    header = ("ID", "kind", "classes", "input", "split", "data")
    lines = []
    for r in items:
        shape = "x".join(str(s) for s in r["input_shape"])  # type: ignore[union-attr]
        classes = (
            str(r["classes"])
            if r["kind"] == "online"
            else f"{r['classes']}-way of {r['dataset_classes']}"
        )
        present = r["present_splits"]
        others = [s for s in present if s != r["default_split"]]  # type: ignore[union-attr]
        if r["default_split_present"]:
            data_col = "present" + (f" (also: {', '.join(others)})" if others else "")
        elif others:
            data_col = f"split={'|'.join(others)} only"
        else:
            data_col = "missing"
        lines.append((r["id"], r["kind"], classes, shape, r["default_split"], data_col))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, row)) for row in [header, *lines])


def run(args: argparse.Namespace) -> int:
    items = rows(args.data_dir)
    if args.kind:
        items = [r for r in items if r["kind"] == args.kind]
    if args.available:
        items = [r for r in items if r["available"]]
    if args.json:
        for r in items:
            print(json.dumps(r))
        return 0
    print(_table(items))
    missing = sorted({str(r["dataset"]) for r in items if not r["available"]})
    if missing:
        print(
            f"\nmissing data: {', '.join(missing)}; `vsml-bench data fetch NAME` downloads it, "
            "or point VSML_BENCH_DATA at a folder that holds it"
        )
    return 0
