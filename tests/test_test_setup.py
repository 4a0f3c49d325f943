"""The test setup itself: when the suite leaves its xdist workers for this process."""

from __future__ import annotations

from types import SimpleNamespace

import conftest
import pytest


class _Config:
    def __init__(self, **options):
        self.option = SimpleNamespace(numprocesses="auto", dist="loadfile")
        self._options = {"--benchmark-enable": False, "usepdb": False, **options}

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
