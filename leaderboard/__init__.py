"""The leaderboard: suites, the evaluation harness, metrics, results files, and rendering.

* :mod:`~vsml_bench.leaderboard.suites`: versioned task lists (``offline-v0``, ``ood-v0``,
  ``fewshot-v0``).
* :mod:`~vsml_bench.leaderboard.harness`: ``evaluate(learner, suite, out)`` (resumable) and
  ``pick_streams``/``rerun_picked`` (what ``vsml-bench verify`` re-runs).
* :mod:`~vsml_bench.leaderboard.metrics`: per-task bootstrap CIs, IQM with stratified bootstrap
  CIs, the OOD gap (in-distribution minus OOD) with its CI, probability of improvement, ranks
  with ties (NumPy, seeded).
* :mod:`~vsml_bench.leaderboard.schema`: the results JSON Schema (v2; v1 files still load),
  strict parsing, semantic checks and recomputation of every aggregate, safe storage under
  ``results/``.
* :mod:`~vsml_bench.leaderboard.identity`: safe entry names, confusable skeletons, and the
  spec grammar (registered learners, shipped or content-addressed parameters, never paths).
* :mod:`~vsml_bench.leaderboard.verify`: what ``vsml-bench verify`` checks, its exit statuses,
  and the number of re-run streams that catches a file with >= 5% forged streams w.p. >= 95%.
* :mod:`~vsml_bench.leaderboard.render`: the Markdown table and the static HTML page (each
  entry's OOD gap and in-distribution vs OOD bars; untrained entries give way to trained ones).

Command line: ``vsml-bench evaluate | submit | verify | leaderboard`` and ``vsml-bench demo``.
"""
