"""Reproductions of the VSML paper's experiments, one module per experiment.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and is reached as
``vsml-bench experiment NAME`` (see :mod:`.cli`); the flags they share and their ``Config``
records are in :mod:`.options`. An experiment writes its raw JSON, a plot and
a Markdown table into ``--out``; ``docs/results.md`` gives the command that regenerates each.
"""
