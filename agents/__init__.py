"""Learners: the learner API, the registry, VSML and the baselines.

``vsml_bench.agents.make(name, **config) -> Learner``; ``register_learner(name, factory)``;
third-party learners join through the entry-point group ``vsml_bench.learners``.
Importing this package is cheap: learners are imported when first made.
"""

from vsml_bench.agents.registry import (
    ENTRY_POINT_GROUP,
    BrokenLearnerError,
    LearnerInfo,
    UnknownLearnerError,
    describe_learner,
    get_factory,
    learner_descriptions,
    learner_names,
    make,
    register_learner,
)
from vsml_bench.protocol import Learner, Observation, TaskSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "BrokenLearnerError",
    "Learner",
    "LearnerInfo",
    "Observation",
    "TaskSpec",
    "UnknownLearnerError",
    "describe_learner",
    "get_factory",
    "learner_descriptions",
    "learner_names",
    "make",
    "register_learner",
]
