"""The README's tour and the scripts in examples/ run as a user runs them (a fresh interpreter,
embedded data only unless marked otherwise) and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_python(args: list[str], with_data: bool = False) -> str:
    """Run ``python ARGS`` in a fresh interpreter, outside the repository; return stdout.

    Without ``with_data`` the run sees no dataset files (``VSML_BENCH_DATA`` unset).
    """
    env = dict(os.environ)
    if not with_data:
        env.pop("VSML_BENCH_DATA", None)
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=EXAMPLES,  # not the repo root: nothing may depend on where it is run
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_example(name: str, *args: str) -> str:
    return run_python([str(EXAMPLES / name), *args])


def tour_blocks() -> list[str]:
    """The Python code blocks of the README's "two-minute tour" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = text.split("\n## A two-minute tour\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", tour, re.S)


def check_printed_as_commented(code: str, out: str) -> None:
    """Each ``print(...)  # SHOWN: words`` line of ``code`` printed SHOWN (numbers rounded as
    shown), in order."""
    shown = re.findall(r"^print\(.*\)  # ([^:\n]*)", code, re.M)
    printed = out.strip().splitlines()
    assert len(printed) == len(shown) > 0, (printed, shown)
    for got, want in zip(printed, shown, strict=True):
        try:
            decimals = len(want.split(".")[1]) if "." in want else 0
            assert round(float(got), decimals) == float(want), (got, want)
        except ValueError:  # not a number: printed exactly
            assert got == want.strip()


@pytest.mark.slow
def test_readme_tour_runs_as_written_without_data_files():
    embedded = tour_blocks()[0]
    assert "FashionMNIST" not in embedded  # the first block needs no files
    check_printed_as_commented(embedded, run_python(["-c", embedded]))


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("VSML_BENCH_DATA"),
    reason="VSML_BENCH_DATA is not set (the tour's real-data block needs Fashion-MNIST)",
)
def test_readme_tour_real_data_block():
    embedded, real = tour_blocks()[:2]
    out = run_python(["-c", embedded + real], with_data=True)
    check_printed_as_commented(embedded + real, out)


def numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", line)]


def test_every_example_is_tested():
    tested = {"01_gym_env.py", "02_functional_rollout.py", "03_plug_in_learner.py"}
    tested |= {"04_evaluate_and_submit.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.slow
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


@pytest.mark.slow
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
