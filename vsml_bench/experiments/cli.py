"""``vsml-bench experiment NAME``: run one of the paper's experiments.

    vsml-bench experiment generalization --out docs/results/generalization
    vsml-bench experiment invariance --out docs/results/invariance

Each experiment lives in its own module of this package; only the chosen one is imported.
"""

from __future__ import annotations

import argparse
import importlib

# experiment -> (module, one-line help)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "generalization": (
        "vsml_bench.experiments.generalization",
        "meta-trained learners in and out of their meta-training distribution (Figure 8)",
    ),
    "clone-backprop": (
        "vsml_bench.experiments.clone_backprop",
        "meta-train VSML to implement backprop, then run it forward-only (paper §3.2)",
    ),
    "invariance": (
        "vsml_bench.experiments.invariance",
        "one set of meta-parameters across class counts, resolutions and permutations (§4.3)",
    ),
    "introspection": (
        "vsml_bench.experiments.introspection",
        "accuracy and confidence on the k-th example of a class (§5)",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, (module_name, help_text) in EXPERIMENTS.items():
        experiment_parser = sub.add_parser(name, help=help_text, description=help_text)
        experiment_parser.set_defaults(_module=module_name)
        # Every experiment's options are added, but its module is imported only here, when the
        # parser is built; the modules keep their heavy imports inside run().
        importlib.import_module(module_name).add_arguments(experiment_parser)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._module).run(args) or 0)
