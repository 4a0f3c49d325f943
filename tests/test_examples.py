"""The scripts in examples/ run as a user runs them (a fresh interpreter, embedded data only)
and print what their docstrings and the README's tour promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    """Run ``examples/<name>`` in a fresh interpreter without dataset files; return stdout."""
    env = {k: v for k, v in os.environ.items() if k != "VSML_BENCH_DATA"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=EXAMPLES,  # not the repo root: the script must not depend on where it is run
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", line)]


def test_every_example_is_tested():
    tested = {"01_gym_env.py", "02_functional_rollout.py", "03_plug_in_learner.py"}
    tested |= {"04_evaluate_and_submit.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_01_gym_env():
    out = run_example("01_gym_env.py")
    line = next(x for x in out.splitlines() if x.startswith("nearest-mean accuracy"))
    accuracies = numbers(line.split(":")[1])
    assert len(accuracies) == 5 and min(accuracies) > 0.6  # chance is 0.1
    assert "action space:      Discrete(10)" in out
    assert "module-prefix form: vsml_bench/OnlineDigits-v0 first prev_label: 10" in out


@pytest.mark.slow
def test_02_functional_rollout():
    out = run_example("02_functional_rollout.py", "--streams", "16")
    lines = [x for x in out.splitlines() if "accuracy on examples 91-100" in x]
    assert [x.split("  ")[0] for x in lines] == [
        "VSML, meta-trained on MNIST",
        "online SGD, lr 0.1",
    ]
    assert all(numbers(x)[-1] > 0.5 for x in lines)  # both learn digits (chance 0.1)


def test_02_functional_rollout_says_when_real_data_is_missing(tmp_path):
    # An empty data folder and an empty cache: the real-data form of the tour must say which
    # dataset is missing, in one line and without a traceback.
    env = {**os.environ, "VSML_BENCH_DATA": str(tmp_path), "VSML_BENCH_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "02_functional_rollout.py"), "--env-id",
         "vsml_bench/OnlineFashionMNIST-v0", "--split", "test"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: " in result.stderr and "fashion_mnist" in result.stderr
    assert "Traceback" not in result.stderr


def test_03_plug_in_learner():
    out = run_example("03_plug_in_learner.py")
    lines = out.splitlines()
    assert len([x for x in lines if x.startswith("meta-step")]) == 4
    first, last = lines[0], lines[-1]
    assert first.startswith("mean online accuracy with lr 0.010:")
    lr_before, acc_before = numbers(first)
    lr_after, acc_after = numbers(last)
    # The meta-gradient raises the too-small learning rate, and that learns faster.
    assert lr_after > 2 * lr_before
    assert acc_after > acc_before + 0.05


@pytest.mark.slow
def test_04_evaluate_and_submit():
    out = run_example("04_evaluate_and_submit.py")
    assert "headline IQM (OOD)" in out
    assert "accepted 'nearest_mean' on offline-v0" in out
    assert "4/4 streams agree" in out
    assert re.search(r"^\| 1 \| nearest\\_mean \| 0\.\d{3} ", out, re.M)
