"""Shared test setup: no test may write outside its tmp dirs; slow tests run on request.

``python -m pytest`` is the quick default run (under 3 minutes on two cores, on one xdist
worker per core: ``pyproject.toml``'s ``addopts``);
``python -m pytest --runslow`` adds the tests marked ``@pytest.mark.slow`` (end-to-end
training and CLI runs, fresh-interpreter checks, long property and agreement checks) and the
benchmarks under ``tests/benchmarks`` (run once as plain tests): what ``.ci/run`` runs.
``pytest tests/benchmarks --benchmark-enable`` times the benchmarks without ``--runslow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (the full suite .ci/run runs)",
    )


BENCHMARKS = Path(__file__).parent / "benchmarks"


def pytest_configure(config):
    """The quick run compiles with XLA's backend (LLVM) optimisation off: its tests are small
    programs whose time is mostly compilation (3:09 -> 1:56 on two cores). ``--runslow`` and
    ``--benchmark-enable`` keep the default level, which long tests, timings and users run at;
    an explicit level in ``XLA_FLAGS`` wins. Runs in every xdist worker too, before any test
    touches a JAX backend."""
    flags = os.environ.get("XLA_FLAGS", "")
    full = config.getoption("--runslow") or config.getoption("--benchmark-enable", default=False)
    if not full and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Run in this process, not on xdist workers (pyproject's ``-n auto``), when timing
    benchmarks (a parallel run would time contention) or debugging with ``--pdb``."""
    if config.getoption("--benchmark-enable", default=False) or config.getoption("usepdb"):
        config.option.numprocesses = 0
        config.option.dist = "no"


def pytest_collection_modifyitems(config, items):
    timing = config.getoption("--benchmark-enable", default=False)
    for item in items:
        # Benchmarks compile and run full-size programs: slow unless they are being timed.
        if BENCHMARKS in item.path.parents and not timing:
            item.add_marker(pytest.mark.slow)
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow (.ci/run does)")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("vsml-bench-cache")


@pytest.fixture(autouse=True)
def _tmp_cache(_session_cache, monkeypatch):
    """Point the dataset cache (verification stamps, parsed arrays, downloads) at a tmp dir
    shared by the session: tests never read a user's cache nor leave files behind, and a real
    dataset is verified and parsed once per session rather than once per test."""
    monkeypatch.setenv("VSML_BENCH_CACHE", str(_session_cache))
    return _session_cache


@pytest.fixture
def fresh_cache(tmp_path_factory, monkeypatch):
    """An empty cache for this test alone (tests that check what gets cached)."""
    cache = tmp_path_factory.mktemp("vsml-bench-fresh-cache")
    monkeypatch.setenv("VSML_BENCH_CACHE", str(cache))
    return cache
