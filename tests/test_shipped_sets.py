"""Every shipped meta-parameter set loads, fits its learner, and reproduces its model card.

A card states the held-out score its set was selected by (``held_out_eval_at_exported_step``)
and how to get it: the training run's held-out families, streams and seed. Re-running that
evaluation from the shipped file must give the card's numbers, so a set whose card does not
reproduce it cannot ship.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from vsml_bench import agents
from vsml_bench.agents import pretrained
from vsml_bench.protocol import TaskSpec

SHIPPED = [(learner, name) for learner, names in pretrained.shipped().items() for name in names]
#: Sets selected by a held-out evaluation on task families (those `vsml-bench train` + `export`
#: write); a set made otherwise (the backprop clone, selected on its own supervised objective)
#: documents its own reproduction.
SELECTED = [
    (learner, name)
    for learner, name in SHIPPED
    if (pretrained.load(name, learner=learner)[1].get("data") or {}).get("eval_families")
]


@pytest.mark.parametrize(("learner_name", "set_name"), SHIPPED)
def test_shipped_set_loads_with_a_complete_card(learner_name: str, set_name: str) -> None:
    meta_params, card = pretrained.load(set_name, learner=learner_name)
    for field in ("config", "command", "meta_trained_on", "hardware", "sha256"):
        assert field in card, field
    learner = agents.make(learner_name, pretrained=set_name)
    assert learner.meta_trained_on == tuple(card["meta_trained_on"])
    # Size-agnostic sets fit any task; fixed-size ones the shape they declare.
    spec = learner.fixed_spec or TaskSpec((49,), 10)
    fresh = jax.eval_shape(lambda key: learner.meta_init(key, spec), jax.random.key(0))
    assert jax.tree.structure(fresh) == jax.tree.structure(meta_params)
    for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(meta_params), strict=True):
        assert np.shape(a) == np.shape(b)


@pytest.mark.slow
@pytest.mark.parametrize(("learner_name", "set_name"), SELECTED)
def test_shipped_set_reproduces_its_cards_held_out_score(learner_name: str, set_name: str) -> None:
    if not os.environ.get("VSML_BENCH_DATA"):
        pytest.skip("VSML_BENCH_DATA is unset: the held-out datasets are not available")
    from vsml_bench.agents.meta.loop import run_keys
    from vsml_bench.agents.meta.tasks import TaskFamily, build_evaluator

    _, card = pretrained.load(set_name, learner=learner_name)
    data = card["data"]
    families = [TaskFamily.from_dict(f) for f in data["eval_families"]]
    _, _, eval_key = run_keys(card["train"]["seed"])
    learner = agents.make(learner_name, pretrained=set_name)
    evaluate = build_evaluator(
        learner, families, n_streams=data.get("eval_streams") or 64, key=eval_key
    )
    scores = {name: float(v) for name, v in evaluate(learner.meta_params).items()}
    expected = card["held_out_eval_at_exported_step"]
    assert scores.keys() == expected.keys()
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=2e-3), name
