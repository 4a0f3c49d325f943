"""The leaderboard: suites, the evaluation harness, metrics, results files, and rendering.

* :mod:`~vsml_bench.leaderboard.suites`: versioned task lists (``offline-v0``, ``ood-v0``).
* :mod:`~vsml_bench.leaderboard.harness`: ``evaluate(learner, suite, out)`` (resumable) and
  ``rerun_streams`` (what ``vsml-bench verify`` runs).
* :mod:`~vsml_bench.leaderboard.metrics`: per-task bootstrap CIs, IQM with stratified bootstrap
  CIs, probability of improvement, ranks with ties (NumPy, seeded).
* :mod:`~vsml_bench.leaderboard.schema`: the results-v1 JSON Schema, strict parsing, semantic
  checks and recomputation of every aggregate, safe storage under ``results/``.
* :mod:`~vsml_bench.leaderboard.render`: the Markdown table and the static HTML page.

Command line: ``vsml-bench evaluate | submit | verify | leaderboard`` and ``vsml-bench demo``.
"""
