"""vsml_bench.provenance: one record of code, software and hardware for every output."""

from __future__ import annotations

import json
import re

from vsml_bench import __version__
from vsml_bench.provenance import environment, git_commit


def test_environment_record():
    record = environment()
    assert list(record) == [
        "package_version",
        "git_commit",
        "python",
        "jax_version",
        "numpy_version",
        "hardware",
    ]
    assert record["package_version"] == __version__
    commit = record["git_commit"]
    # The pattern the results schema accepts; None outside a git checkout.
    assert commit is None or re.fullmatch(r"[0-9a-f]{7,64}(-dirty)?", commit)
    assert commit == git_commit()
    hardware = record["hardware"]
    assert set(hardware) == {"cpu", "n_cpus", "platform", "devices", "processes"}
    assert hardware["n_cpus"] >= 1 and hardware["processes"] >= 1 and hardware["devices"]
    json.dumps(record)  # goes into JSON files as it is


def test_hardware_is_a_fresh_copy():
    first = environment()["hardware"]
    first["devices"].append("tampered")
    assert "tampered" not in environment()["hardware"]["devices"]
