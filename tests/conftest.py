"""Shared test setup: no test may write outside its tmp dirs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Point the dataset cache (verification stamps, parsed arrays, downloads) at a fresh tmp
    dir for every test, so tests neither read a user's cache nor leave files behind."""
    cache = tmp_path_factory.mktemp("vsml-bench-cache")
    monkeypatch.setenv("VSML_BENCH_CACHE", str(cache))
    return cache
