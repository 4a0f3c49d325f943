"""``vsml-bench learners``: list every registered learner, its description and meta-parameters."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    from vsml_bench.agents.registry import describe_learner, learner_names

    infos = [describe_learner(name) for name in learner_names()]
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    width = max(len(info.name) for info in infos)
    print(f"{'name':<{width}}  meta-params  description")
    for info in infos:
        if info.error is not None:
            meta = "broken"
            text = f"{info.description} [cannot load: {info.error}]".strip()
        else:
            meta = "yes" if info.has_meta_params else "no"
            text = info.description
        if info.source != "builtin":
            text = f"{text} ({info.source})"
        print(f"{info.name:<{width}}  {meta:<11}  {text}")
    return 0
