"""Wall time of ``vsml-bench demo`` (the 3-minute budget), compile included.

``pytest tests/benchmarks/test_bench_demo.py --benchmark-enable`` times the full default demo;
each round gets an empty XLA cache, so compilation (the dominant cost) is counted, as on a
user's first run. With benchmarks disabled (the default test run) it runs a tiny demo once.
"""

from vsml_bench import demo


def test_bench_demo(benchmark, tmp_path, monkeypatch):
    rounds = iter(range(1000))

    def fresh_cache():
        cache = tmp_path / f"cache{next(rounds)}"
        monkeypatch.setenv("VSML_BENCH_CACHE", str(cache))
        return (), {}

    if benchmark.disabled:
        kwargs = dict(n_streams=2, stream_length=10, learner_specs=["chance"])
    else:
        kwargs = {}

    def run():
        entries, _ = demo.run_demo(tmp_path / "demo", progress=False, **kwargs)
        return entries

    entries = benchmark.pedantic(run, setup=fresh_cache, rounds=1, warmup_rounds=1)
    assert entries and all(e["summary"]["n_tasks_run"] == 6 for e in entries)
