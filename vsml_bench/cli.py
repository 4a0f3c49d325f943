"""The ``vsml-bench`` command line.

Each command group lives beside the code it drives, in a module exposing
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches, so that
``vsml-bench --help`` stays fast and a broken optional part cannot break the others.
User mistakes (:class:`vsml_bench.errors.UserError` and its subclasses) print one sentence
and exit with status 2, without a traceback; Ctrl-C exits with 130. A reader that closes the
pipe early (``vsml-bench envs | head``) ends the command quietly with status 141 (128 + SIGPIPE,
what a shell reports for a process killed by SIGPIPE), as Unix tools do.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from vsml_bench.errors import UserError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("vsml_bench.demo", "run the built-in learners on the offline suite and rank them"),
    "data": ("vsml_bench.data.cli", "list, verify and fetch datasets"),
    "envs": ("vsml_bench.envs.cli", "list the registered environment IDs"),
    "learners": ("vsml_bench.agents.cli", "list the registered learners"),
    "train": ("vsml_bench.agents.meta.cli", "meta-train a learner"),
    "plot": ("vsml_bench.agents.meta.plot", "plot the curves of a training run"),
    "study": ("vsml_bench.agents.meta.study", "compare training runs at equal CPU time"),
    "export": ("vsml_bench.agents.meta.export", "ship a run's meta-parameters with a model card"),
    "compare": ("vsml_bench.agents.meta.compare", "VSML against tuned SGD/Adam, same streams"),
    "tune": ("vsml_bench.agents.baselines.tune", "sweep the learning rate of SGD or Adam"),
    "evaluate": ("vsml_bench.leaderboard.cli_evaluate", "score a learner on a suite"),
    "submit": ("vsml_bench.leaderboard.cli_submit", "validate a results file and add it"),
    "verify": ("vsml_bench.leaderboard.cli_verify", "re-run streams of a results file"),
    "leaderboard": ("vsml_bench.leaderboard.cli_render", "render the leaderboard table and page"),
    "experiment": ("vsml_bench.experiments.cli", "reproduce one of the VSML paper's experiments"),
}


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The top-level parser; only ``command``'s module is imported (keeps ``--help`` fast)."""
    from vsml_bench import __version__

    parser = argparse.ArgumentParser(
        prog="vsml-bench",
        description="A benchmark for learned learning algorithms.",
    )
    parser.add_argument("--version", action="version", version=f"vsml-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            chosen = importlib.import_module(module_name)
            chosen.add_arguments(command_parser)
    return parser, chosen


#: Exit status after the reader of stdout went away: 128 + SIGPIPE, as a shell reports it.
EXIT_BROKEN_PIPE = 141


def _discard_stdout() -> None:
    """Point stdout's file descriptor at /dev/null.

    After the reader closed the pipe, the interpreter's final flush of what is still buffered
    would raise BrokenPipeError again (a traceback at exit); Python's documented remedy is to
    redirect the descriptor. Streams without a descriptor (captured in tests) are left alone.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _dispatch(sys.argv[1:] if argv is None else list(argv))
        finally:
            # Flush here, not at exit (also after --help's SystemExit), so that a closed pipe
            # surfaces inside this try rather than as a traceback at interpreter shutdown.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _dispatch(argv: list[str]) -> int:
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser, module = build_parser(command)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except UserError as error:
        print(f"vsml-bench {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vsml-bench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
