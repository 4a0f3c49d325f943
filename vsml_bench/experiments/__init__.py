"""Reproductions of the VSML paper's experiments, one module per experiment.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is reached as
``vsml-bench experiment NAME`` (see :mod:`.cli`). An experiment writes its raw JSON, a plot and
a Markdown table into ``--out``; ``docs/results.md`` gives the command that regenerates each.
"""
