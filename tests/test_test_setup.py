"""The test setup itself: when the suite leaves its xdist workers for this process, and when
it compiles without XLA's backend optimisation."""

from __future__ import annotations

import os
from types import SimpleNamespace

import conftest
import pytest


class _Config:
    def __init__(self, **options):
        self.option = SimpleNamespace(numprocesses="auto", dist="loadfile")
        self._options = {
            "--benchmark-enable": False,
            "usepdb": False,
            "--runslow": False,
            **options,
        }

    def getoption(self, name, default=None):
        return self._options.get(name, default)


@pytest.mark.parametrize(
    "options, in_process",
    [({}, False), ({"--benchmark-enable": True}, True), ({"usepdb": True}, True)],
)
def test_timing_and_debugging_run_in_this_process(options, in_process):
    config = _Config(**options)
    conftest.pytest_cmdline_main(config)
    expected = (0, "no") if in_process else ("auto", "loadfile")
    assert (config.option.numprocesses, config.option.dist) == expected


@pytest.mark.parametrize(
    "options, before, after",
    [
        ({}, None, "--xla_backend_optimization_level=0"),
        ({}, "--a=1", "--a=1 --xla_backend_optimization_level=0"),
        ({}, "--xla_backend_optimization_level=2", "--xla_backend_optimization_level=2"),
        ({"--runslow": True}, None, None),
        ({"--benchmark-enable": True}, "--a=1", "--a=1"),
    ],
)
def test_only_the_quick_run_compiles_unoptimised(monkeypatch, options, before, after):
    if before is None:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", before)
    conftest.pytest_configure(_Config(**options))
    assert os.environ.get("XLA_FLAGS") == after
