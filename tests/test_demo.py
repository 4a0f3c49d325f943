"""``vsml-bench demo``: runs the built-in learners, prints a ranked table, writes the page."""

import pytest

from vsml_bench import cli, demo


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    code = cli.main(
        [
            "demo",
            "--out-dir",
            str(out),
            "--n-streams",
            "3",
            "--stream-length",
            "20",
            "--learners",
            "nearest_mean,chance",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("offline-v0 (demo size")
    ranked = [line.split()[1] for line in lines[3:5]]
    assert ranked == ["nearest_mean", "chance"]  # a real learner beats uniform logits
    assert "report:" in printed
    page = (out / "index.html").read_text()
    assert "nearest_mean" in page and "<svg" in page
    assert len(list((out / "results").glob("*.json"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_default_demo_learners_skip_untrained_meta_learners():
    learners, skipped = demo.demo_learners()
    names = [spec for spec, _ in learners]
    assert {"sgd", "adam", "hebbian", "fast_weights", "nearest_mean", "knn", "chance"} <= set(names)
    assert "meta_rnn" not in names and "transformer" not in names
    assert any(line.startswith("meta_rnn:") for line in skipped)
    # The pretrained VSML runs when it ships; otherwise the skip says why.
    assert "vsml:mnist" in names or any(line.startswith("vsml:mnist:") for line in skipped)


def test_demo_rejects_bad_sizes(tmp_path, capsys):
    code = cli.main(["demo", "--out-dir", str(tmp_path), "--n-streams", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--n-streams must be a positive integer" in err and "Traceback" not in err
