"""The learner registry: built-ins, user registration, entry-point plug-ins, `vsml-bench learners`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest

from vsml_bench import agents
from vsml_bench.agents import registry
from vsml_bench.errors import UserError
from vsml_bench.protocol import Learner, TaskSpec

BUILTINS = {
    "vsml",
    "sgd",
    "adam",
    "meta_rnn",
    "hebbian",
    "fast_weights",
    "transformer",
    "nearest_mean",
    "knn",
    "chance",
}


def _tiny_learner(**config) -> Learner:
    import jax.numpy as jnp

    return Learner(
        name="tiny",
        meta_init=lambda key, spec: {},
        init=lambda meta, key, spec: jnp.zeros((spec.n_classes,)),
        step=lambda meta, state, obs: (state, state),
        config=dict(config),
        description="a test learner",
    )


@pytest.fixture
def clean_registry():
    """Restore the registry after a test that registers things."""
    saved = dict(registry._registry)
    yield
    registry._registry.clear()
    registry._registry.update(saved)
    registry._reset_plugins_for_tests()


@pytest.mark.slow
def test_builtins_are_listed_without_importing_them():
    code = (
        "import sys; from vsml_bench.agents import learner_names; names = learner_names(); "
        "print(','.join(names)); "
        "print(any(m.startswith('vsml_bench.agents.baselines.') for m in sys.modules)); "
        "print('vsml_bench.agents.vsml' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(out[0].split(",")) >= BUILTINS
    assert out[1:] == ["False", "False"]


def test_make_builds_registered_learners_and_unknown_names_are_user_errors():
    learner = agents.make("vsml", micro_ticks=1)
    assert learner.name == "vsml" and learner.has_meta_params
    assert learner.config["micro_ticks"] == 1
    with pytest.raises(UserError, match=r"Unknown learner 'nope'.*vsml"):
        agents.make("nope")


def test_register_learner(clean_registry):
    agents.register_learner("tiny", _tiny_learner, description="tiny one")
    assert "tiny" in agents.learner_names()
    learner = agents.make("tiny", alpha=2)
    assert learner.config == {"alpha": 2}
    with pytest.raises(ValueError, match="already registered"):
        agents.register_learner("tiny", _tiny_learner)
    agents.register_learner("tiny", f"{__name__}:_tiny_learner", overwrite=True)
    assert agents.make("tiny").description == "a test learner"
    with pytest.raises(TypeError):
        agents.register_learner("bad", 42)


def test_factory_that_returns_no_learner_is_reported(clean_registry):
    agents.register_learner("not_a_learner", lambda **config: object())
    with pytest.raises(agents.BrokenLearnerError, match="not a Learner"):
        agents.make("not_a_learner")


def _write_plugin(root, dist: str, module: str, entry_points: dict[str, str], source: str):
    """A throwaway installed distribution: a module plus a ``.dist-info`` with entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[vsml_bench.learners]\n" + "\n".join(lines) + "\n")
    (info / "RECORD").write_text("")


PLUGIN_SOURCE = """
    import jax.numpy as jnp
    from vsml_bench.protocol import Learner

    def echo(**config):
        return Learner(
            name="echo_plugin",
            meta_init=lambda key, spec: {"scale": jnp.ones(())},
            init=lambda meta, key, spec: jnp.zeros((spec.n_classes,)),
            step=lambda meta, state, obs: (state, state * meta["scale"]),
            config=dict(config),
            description="echoes its state (plug-in test)",
            has_meta_params=True,
        )
"""


def test_entry_point_plugin_shows_up_and_a_broken_one_breaks_nothing(
    tmp_path, monkeypatch, clean_registry, capsys
):
    _write_plugin(
        tmp_path,
        "throwaway_learners",
        "throwaway_learners_mod",
        {
            "echo_plugin": "throwaway_learners_mod:echo",
            "broken_plugin": "throwaway_missing_module:factory",
        },
        PLUGIN_SOURCE,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._reset_plugins_for_tests()

    names = agents.learner_names()
    assert {"echo_plugin", "broken_plugin"} <= set(names) and set(names) >= BUILTINS
    learner = agents.make("echo_plugin", k=1)
    assert learner.has_meta_params and learner.config == {"k": 1}
    learner.init({}, None, TaskSpec((3,), 4))

    with (
        pytest.warns(UserWarning, match=r"broken_plugin.*throwaway_learners"),
        pytest.raises(agents.BrokenLearnerError, match="broken_plugin"),
    ):
        agents.make("broken_plugin")
    assert agents.make("vsml").name == "vsml"  # everything else still works

    from vsml_bench.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["learners"]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "echoes its state" in rows["echo_plugin"] and " yes " in rows["echo_plugin"]
    assert "plugin:throwaway_learners" in rows["echo_plugin"]
    assert " broken " in rows["broken_plugin"]
    assert " yes " in rows["vsml"]

    assert main(["learners", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["echo_plugin"]["has_meta_params"] is True
    assert listed["broken_plugin"]["error"] and listed["broken_plugin"]["has_meta_params"] is None


def test_plugin_cannot_shadow_a_builtin(tmp_path, monkeypatch, clean_registry):
    _write_plugin(
        tmp_path, "shadowing_dist", "shadow_mod", {"vsml": "shadow_mod:echo"}, PLUGIN_SOURCE
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._reset_plugins_for_tests()
    with pytest.warns(UserWarning, match="'vsml' from shadowing_dist ignored"):
        agents.learner_names()
    assert agents.make("vsml").description.startswith("VSML")


@pytest.mark.slow
def test_learners_command_in_a_fresh_process(tmp_path):
    """What a user runs: the console entry with a plug-in installed on the path."""
    _write_plugin(
        tmp_path, "throwaway_cli_dist", "throwaway_cli_mod", {"cli_echo": "throwaway_cli_mod:echo"},
        PLUGIN_SOURCE,
    )  # fmt: skip
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "vsml_bench", "learners"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert "cli_echo" in names and names >= BUILTINS
