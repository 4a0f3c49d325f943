"""The learner interface, re-exported from :mod:`vsml_bench.protocol` (its home).

Kept because the README names ``vsml_bench.agents.api``; new code imports
``vsml_bench.protocol`` (or ``vsml_bench``) instead.
"""

from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec

__all__ = ["Learner", "Observation", "PyTree", "TaskSpec"]
