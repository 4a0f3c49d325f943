"""Run provenance: what code, software and hardware produced a result.

One record for every output that has to say where it came from (leaderboard results, a
meta-training run's ``config.json``, the model card of shipped meta-parameters)::

    {"package_version": "0.1.0", "git_commit": "a5e5db7...[-dirty]" | None,
     "python": "3.11.7", "jax_version": "0.4.35", "numpy_version": "2.1.3",
     "hardware": {"cpu": "...", "n_cpus": 2, "platform": "Linux-...", "devices": ["TFRT_CPU_0"],
                  "processes": 1}}

Each part is computed once per process (the git calls and the device query are not free).
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

# The checkout root when the package runs from a source tree (vsml_bench/ sits directly below).
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


@cache
def git_commit() -> str | None:
    """``HEAD`` of the checkout the package runs from, ``-dirty`` if tracked files changed.

    None when the package is not run from a git checkout (e.g. an installed wheel).
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=_SOURCE_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--"],
            cwd=_SOURCE_ROOT,
            capture_output=True,
            timeout=30,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return None


@cache
def _hardware() -> tuple[tuple[str, Any], ...]:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # Strings are capped at 300 characters and lists at 64 items, as the results schema allows.
    return (
        ("cpu", cpu[:300]),
        ("n_cpus", os.cpu_count() or 0),
        ("platform", platform.platform()[:300]),
        ("devices", tuple(str(d)[:300] for d in jax.devices()[:64])),
        ("processes", jax.process_count()),
    )


def hardware() -> dict[str, Any]:
    """CPU model, core count, OS, JAX devices and JAX processes (a fresh dict each call)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in _hardware()}


def environment() -> dict[str, Any]:
    """Package version, git commit, Python/JAX/NumPy versions and :func:`hardware`."""
    import jax
    import numpy as np

    from vsml_bench import __version__

    return {
        "package_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "hardware": hardware(),
    }
