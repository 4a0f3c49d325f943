"""Two house conventions, checked over the whole package so that a new module cannot drift.

**Records.** A class whose instances go into a JSON file (configs, task definitions, estimates,
adaptation records) turns itself into a dict of JSON types with ``to_dict()`` (dict, list, str,
int, float, bool, None: no tuples, arrays or objects), and reads one back with the classmethod
``from_dict(record)`` where a record is complete enough, so that ``from_dict(r).to_dict() == r``.
JSON *text* is made only at the file boundary (``json.dumps`` of those dicts), as in Flax and
gymnax. No class of ours has ``to_json``/``from_json``/``as_dict`` methods: ``to_json()`` is
Gymnasium's ``EnvSpec`` API, and an old name kept for users is a
``vsml_bench.deprecation.renamed`` alias, which warns. Library code neither calls those aliases
nor bypasses ``to_dict`` with ``dataclasses.asdict`` (allowed only inside a ``to_dict``).

**Learner states.** Every built-in learner's ``init`` returns a ``NamedTuple`` (the convention of
optax's optimizer states and of most JAX baselines): fields by name, a fixed pytree structure,
no registration needed. Sub-states are NamedTuples too (``VSMLState.layers``); model parameters
inside a state and meta-parameters stay nested dicts (Flax's convention).
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from test_import_direction import discover_modules

from vsml_bench.agents import registry
from vsml_bench.protocol import TaskSpec

MODULES: dict[str, Path] = discover_modules()
# Method names that would make a second serialisation convention.
OTHER_RECORD_METHODS = {"to_json", "from_json", "as_dict", "asdict", "to_json_dict", "json"}
RECORD_CALLS = OTHER_RECORD_METHODS - {"asdict", "json"}  # asdict: its own rule; .json(): requests


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text())


def _classes(tree: ast.Module):
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _is_renamed_alias(value: ast.expr) -> bool:
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name | ast.Attribute)
        and (getattr(value.func, "id", None) or getattr(value.func, "attr", None)) == "renamed"
    )


def _where(module: str, node: ast.AST) -> str:
    return f"{MODULES[module]}:{node.lineno}"


def test_no_class_defines_a_second_record_method():
    found = []
    for module in MODULES:
        for cls in _classes(_tree(module)):
            for node in cls.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    if node.name in OTHER_RECORD_METHODS:
                        found.append(f"{_where(module, node)} {cls.name}.{node.name}")
                elif isinstance(node, ast.Assign):
                    for target in node.targets:
                        name = getattr(target, "id", None)
                        if name in OTHER_RECORD_METHODS and not _is_renamed_alias(node.value):
                            found.append(f"{_where(module, node)} {cls.name}.{name}")
    assert not found, (
        "Records are to_dict()/from_dict(); rename these (keep the old name as "
        f"`old = vsml_bench.deprecation.renamed('to_dict')` if users call it): {found}"
    )


def _receiver(node: ast.Attribute) -> str:
    value = node.value
    return getattr(value, "id", None) or getattr(value, "attr", None) or ""


def _method_calls_and_asdict(tree: ast.Module):
    """Yield ``(node, kind)`` for ``x.to_json()``-style calls and ``asdict`` calls outside a
    ``to_dict`` method."""

    def visit(node: ast.AST, in_to_dict: bool):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_to_dict = node.name == "to_dict"
        if isinstance(node, ast.Call):
            func = node.func
            # Gymnasium's EnvSpec.to_json() is the one to_json in use (spec / env.spec).
            if (
                isinstance(func, ast.Attribute)
                and func.attr in RECORD_CALLS
                and not _receiver(func).endswith("spec")
            ):
                yield node, f".{func.attr}()"
            name = getattr(func, "id", None) or getattr(func, "attr", None)
            if name == "asdict" and not in_to_dict:
                yield node, "asdict()"
        for child in ast.iter_child_nodes(node):
            yield from visit(child, in_to_dict)

    yield from visit(tree, False)


def test_library_code_records_with_to_dict():
    found = [
        f"{_where(module, node)} {kind}"
        for module in MODULES
        for node, kind in _method_calls_and_asdict(_tree(module))
    ]
    assert not found, f"Record with obj.to_dict() (asdict only inside a to_dict): {found}"


def test_the_call_rule_catches_a_planted_record_call():
    planted = ast.parse(
        "def f(estimate, env, config):\n"
        "    env.spec.to_json()\n"
        "    estimate.to_json()\n"
        "    record.as_dict()\n"
        "    dataclasses.asdict(config)\n"
        "class C:\n"
        "    def to_dict(self):\n"
        "        return dataclasses.asdict(self)\n"
    )
    kinds = [kind for _, kind in _method_calls_and_asdict(planted)]
    assert kinds == [".to_json()", ".as_dict()", "asdict()"]


def _record_classes() -> list[str]:
    """``module:Class`` of every class that defines ``to_dict``, found without importing."""
    out = []
    for module in MODULES:
        for cls in _classes(_tree(module)):
            if any(
                isinstance(node, ast.FunctionDef) and node.name == "to_dict" for node in cls.body
            ):
                out.append(f"{module}:{cls.name}")
    return sorted(out)


def _samples() -> dict[str, list]:
    """Instances that exercise every branch of a record (classes with required fields)."""
    from vsml_bench.agents import vsml
    from vsml_bench.agents.meta import presets
    from vsml_bench.agents.meta.loop import TrainConfig
    from vsml_bench.agents.meta.tasks import TaskFamily
    from vsml_bench.envs import adaptation
    from vsml_bench.leaderboard import metrics, suites

    digits, learner = TaskSpec((8, 8, 1), 10), TaskSpec((16,), 10)
    return {
        "vsml_bench.agents.vsml:VSMLConfig": [
            vsml.VSMLConfig(),
            vsml.make_config(
                layers=[
                    {"type": "conv", "channels": 2, "stride": 2},
                    {"type": "dense", "size": 5},
                    {"type": "dense"},
                ],
                backward_pass=True,
                separate_backward_rnn=True,
            ),
        ],
        "vsml_bench.agents.meta.loop:TrainConfig": [
            TrainConfig(),
            TrainConfig(method="bptt", clip_norm=None, truncation=20, schedule="cosine"),
        ],
        "vsml_bench.agents.meta.tasks:TaskFamily": [
            TaskFamily("vsml_bench/OnlineDigits-v0", {"stream_length": 10}, 0.5, "digits")
        ],
        "vsml_bench.agents.meta.presets:Preset": list(presets.PRESETS.values()),
        "vsml_bench.agents.registry:LearnerInfo": [registry.describe_learner("sgd")],
        "vsml_bench.envs.adaptation:Adaptation": [
            adaptation.Adaptation(digits, learner, "resize", (8, 8, 1), image_size=4),
            adaptation.Adaptation(TaskSpec((4,), 3), learner, "projection", (4,), seed=3),
        ],
        "vsml_bench.leaderboard.metrics:Estimate": [metrics.Estimate(0.5, 0.25, 0.75)],
        **{
            f"vsml_bench.experiments.{name}:Config": [
                experiment.CPU,
                experiment.PAPER,
            ]
            for name in ("clone_backprop", "introspection", "invariance")
            for experiment in [importlib.import_module(f"vsml_bench.experiments.{name}")]
        },
        "vsml_bench.leaderboard.suites:Task": [
            task for suite in suites.SUITES.values() for task in suite.tasks
        ],
    }


@pytest.mark.parametrize("qualified", _record_classes())
def test_every_record_is_json_types_and_reads_back(qualified):
    module, name = qualified.split(":")
    cls = getattr(importlib.import_module(module), name)
    instances = _samples().get(qualified)
    if instances is None:
        try:
            instances = [cls()]
        except TypeError:
            pytest.fail(f"{qualified} needs required fields: give it samples in _samples().")
    for instance in instances:
        record = instance.to_dict()
        # JSON types only: a tuple or a NumPy number would change on the way through a file.
        assert json.loads(json.dumps(record, allow_nan=False)) == record, qualified
        if hasattr(cls, "from_dict"):
            assert cls.from_dict(record).to_dict() == record, qualified


def test_from_dict_restores_the_config_itself():
    from vsml_bench.agents import vsml
    from vsml_bench.agents.meta.loop import TrainConfig

    config = vsml.make_config(layers=[{"type": "conv", "channels": 2}, {"type": "dense"}])
    assert vsml.VSMLConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    train = TrainConfig(method="bptt", truncation=20)
    assert TrainConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train


def test_renamed_methods_warn_and_return_the_same_record():
    from vsml_bench.leaderboard import metrics, suites

    estimate = metrics.Estimate(0.5, 0.25, 0.75)
    with pytest.warns(DeprecationWarning, match=r"Estimate\.to_json\(\) is deprecated.*to_dict"):
        assert estimate.to_json() == estimate.to_dict()
    task = suites.SUITES["offline-v0"].tasks[0]
    with pytest.warns(DeprecationWarning, match="to_dict"):
        assert task.to_json() == task.to_dict()


# --- learner states -----------------------------------------------------------------------


def _is_named_tuple(value) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


BUILTINS = [
    # scikit-learn takes seconds to import: its case runs with the slow tests.
    pytest.param(name, marks=pytest.mark.slow) if name == "sklearn_sgd" else name
    for name in registry.learner_names()
    if registry._registry[name].source == "builtin"
]


def _abstract_state(learner, spec):
    """``(meta_params, state)`` as shapes only: traced, never compiled or run (fast)."""
    meta_params = jax.eval_shape(lambda key: learner.meta_init(key, spec), jax.random.key(0))
    state = jax.eval_shape(
        lambda m, key: learner.init(m, key, spec), meta_params, jax.random.key(1)
    )
    return meta_params, state


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_learner_state_is_a_named_tuple(name):
    learner = registry.make(name)
    spec = TaskSpec((6,), 3)
    if learner.config.get("python"):  # a Python learner runs eagerly, not under a trace
        meta_params = learner.meta_init(jax.random.key(0), spec)
        state = learner.init(meta_params, jax.random.key(1), spec)
    else:
        meta_params, state = _abstract_state(learner, spec)
        # Stepping keeps the type and the tree structure (a lax.scan carry).
        obs = {"x": jax.ShapeDtypeStruct((6,), "float32"), "prev_label": jnp.int32(3)}
        new_state, _ = jax.eval_shape(learner.step, meta_params, state, obs)
        assert type(new_state) is type(state)
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert _is_named_tuple(state), f"{name}.init returns {type(state).__name__}, not a NamedTuple"
    assert isinstance(meta_params, dict), f"{name}: meta-parameters are a (nested) dict"


def test_vsml_state_fields_and_the_dict_access_it_replaced():
    from vsml_bench.agents import vsml

    learner = registry.make("vsml", layers=[{"type": "dense", "size": 4}, {"type": "dense"}])
    _, state = _abstract_state(learner, TaskSpec((6,), 3))
    assert isinstance(state, vsml.VSMLState)
    assert all(isinstance(layer, vsml.LayerState) for layer in state.layers)
    assert state.layers[0].h.shape == (6, 4, 16) and state.layers[1].bwd_in.shape == (3, 8)
    # Code written for the old dict state keeps reading it, with a warning; integers index.
    with pytest.warns(DeprecationWarning, match=r"use \.layers"):
        layers = state["layers"]
    with pytest.warns(DeprecationWarning, match=r"use \.c"):
        assert layers[0]["c"] is state.layers[0].c
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert state[1] is state.logits
    with pytest.raises(KeyError):
        state["weights"]
