"""Versioned evaluation suites: which tasks a learner is scored on, how many streams, which seeds.

A suite is frozen once published: changing a task, its kwargs, the number of streams, the stream
length or a seed changes the numbers, so it needs a new suite ID (``offline-v1``...). Every task
runs ``n_streams`` independent streams (each a fresh task sample: class subset, label
permutation, projection... as the env defines it) from ``jax.random.key(seed)``.

* ``offline-v0``: datasets that need no files (scikit-learn's bundled sets and synthetic ones).
* ``ood-v0``: the VSML paper's meta-test family: MNIST-like sets, natural images, Omniglot,
  and the synthetic tasks. Tasks whose files are absent are recorded "not run: data missing".
* ``fewshot-v0``: few-shot episodes (support with labels, then scored queries with labels
  withheld): Omniglot 20-way 1-shot on Lake et al.'s 20 published one-shot runs
  (``all_runs.zip``; one stream per run, the classic protocol), Omniglot 5-way 1-shot and
  5-shot on the evaluation alphabets (disjoint from the background alphabets a learner may be
  meta-trained on), and Fashion-MNIST 5-way 5-shot. Scored like the online suites: accuracy
  over the scored (query) steps with bootstrap CIs, in/out-of-distribution flags, IQM ranks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from vsml_bench.data.registry import REGISTRY
from vsml_bench.deprecation import renamed
from vsml_bench.envs.registration import DATASET_IDS, env_id
from vsml_bench.errors import UserError

#: Datasets that ship with the package (no files needed), as the data registry says.
EMBEDDED_DATASETS = frozenset(name for name, spec in REGISTRY.items() if spec.embedded)

#: Dataset name -> the part of its env ID after ``Online``/``FewShot`` (the inverse of
#: :data:`vsml_bench.envs.registration.DATASET_IDS`, the one table of registered datasets).
ENV_NAMES: Mapping[str, str] = MappingProxyType(
    {dataset: id_name for id_name, dataset in DATASET_IDS.items()}
)


class UnknownSuite(UserError):
    """A suite ID that is not defined."""


@dataclass(frozen=True)
class Task:
    """One task of a suite: an env ID with kwargs, run for ``n_streams`` streams from ``seed``."""

    task_id: str
    dataset: str
    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    n_streams: int = 64
    stream_length: int = 500
    seed: int = 0
    episodes: str | None = None

    @property
    def few_shot(self) -> bool:
        """A ``FewShot<Dataset>`` task: its length is ``n_way * (k_shot + n_query)``, not an option."""
        return self.env_id.split("/")[-1].startswith("FewShot")

    @property
    def n_scored(self) -> int:
        """Scored steps per stream: every online step; the ``n_way * n_query`` few-shot queries."""
        if self.few_shot:
            return int(self.env_kwargs["n_way"]) * int(self.env_kwargs["n_query"])
        return self.stream_length

    @property
    def n_classes(self) -> int | None:
        """Classes of one stream: ``n_way`` (few-shot), the ``n_classes`` option, else those of
        the dataset's split (None when the registry cannot tell)."""
        kwargs = dict(self.env_kwargs)
        if self.few_shot:
            return int(kwargs["n_way"])
        if "n_classes" in kwargs:
            return int(kwargs["n_classes"])
        counts = dict(REGISTRY[self.dataset].n_classes)
        if kwargs.get("split") in counts:
            return int(counts[kwargs["split"]])
        values = set(counts.values())
        return int(values.pop()) if len(values) == 1 else None

    def make_kwargs(self) -> dict[str, Any]:
        """The kwargs passed to ``vsml_bench.envs.make`` (the suite's, plus an online length)."""
        if self.few_shot:
            return dict(self.env_kwargs)
        return {**self.env_kwargs, "stream_length": self.stream_length}

    def to_dict(self) -> dict[str, Any]:
        """The task's definition; the suite's fingerprint hashes these records."""
        out = {
            "task_id": self.task_id,
            "dataset": self.dataset,
            "env_id": self.env_id,
            "env_kwargs": dict(self.env_kwargs),
            "n_streams": self.n_streams,
            "stream_length": self.stream_length,
            "seed": self.seed,
        }
        if self.episodes is not None:  # absent for sampled streams: older fingerprints hold
            out["episodes"] = self.episodes
        return out

    to_json = renamed("to_dict")


@dataclass(frozen=True)
class Suite:
    """A versioned list of tasks. ``official`` is False for resized copies (e.g. the demo)."""

    suite_id: str
    description: str
    tasks: tuple[Task, ...]
    official: bool = True

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise KeyError(task_id)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of all task definitions (what makes numbers comparable)."""
        text = json.dumps([t.to_dict() for t in self.tasks], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def resized(self, n_streams: int | None = None, stream_length: int | None = None) -> Suite:
        """A smaller, unofficial copy (same seeds) for demos and tests; never submittable."""
        tasks = tuple(
            replace(
                t,
                n_streams=min(n_streams or t.n_streams, t.n_streams)
                if t.episodes  # a published set has only so many episodes
                else n_streams or t.n_streams,
                # a few-shot episode's length is n_way * (k_shot + n_query), not an option
                stream_length=t.stream_length if t.few_shot else stream_length or t.stream_length,
            )
            for t in self.tasks
        )
        return replace(self, tasks=tasks, official=False)

    def subset(self, task_ids: Sequence[str]) -> Suite:
        """An unofficial copy with only ``task_ids`` (in suite order); unknown IDs are an error."""
        unknown = sorted(set(task_ids) - {t.task_id for t in self.tasks})
        if unknown:
            known = ", ".join(t.task_id for t in self.tasks)
            raise UnknownSuite(
                f"suite {self.suite_id} has no task {unknown[0]!r}; its tasks are: {known}"
            )
        tasks = tuple(t for t in self.tasks if t.task_id in set(task_ids))
        return replace(self, tasks=tasks, official=False)


def _task(dataset: str, seed: int, n_streams: int, stream_length: int, **kwargs: Any) -> Task:
    return Task(
        task_id=dataset,
        dataset=dataset,
        env_id=env_id("online", ENV_NAMES[dataset]),
        env_kwargs=MappingProxyType(dict(kwargs)),
        n_streams=n_streams,
        stream_length=stream_length,
        seed=seed,
    )


# Seeds are arbitrary but fixed; each task has its own so streams never coincide across tasks.
_OFFLINE = ("digits", "iris", "wine", "breast_cancer", "sum_sign", "random")
_OOD = (
    "mnist",
    "fashion_mnist",
    "kmnist",
    "emnist",
    "cifar10",
    "svhn",
    "notmnist",
    "omniglot",
    "cifar10_jpeg",
    "sum_sign",
    "random",
)

# Meta-test splits where the dataset has one; natural images are resized to 16x16 (768 inputs,
# as many as MNIST) so every learner's cost stays comparable; Omniglot and EMNIST streams use a
# random 10-class subset per stream (as in the VSML paper's tasks).
_OOD_KWARGS: Mapping[str, Mapping[str, Any]] = {
    "mnist": {"split": "test"},
    "fashion_mnist": {"split": "test"},
    "kmnist": {"split": "test"},
    "emnist": {"split": "balanced_test", "n_classes": 10},
    "cifar10": {"split": "test", "image_size": 16},
    "svhn": {"split": "test", "image_size": 16},
    "notmnist": {"split": "test"},
    "omniglot": {"split": "background_small1", "image_size": 28, "n_classes": 10},
    "cifar10_jpeg": {"split": "test", "image_size": 16},
    "sum_sign": {"split": "test"},
    "random": {"split": "test"},
}

#: Fixed-episode sets a task can name (``Task.episodes``) -> what they are. The harness runs
#: stream ``i`` of such a task on published episode ``i`` instead of a sampled one.
EPISODES: Mapping[str, str] = MappingProxyType(
    {
        "omniglot_all_runs": "Lake et al. (2015) one-shot classification runs: 20 runs, each "
        "20 training images (one per class, all of one evaluation alphabet) then 20 test images "
        "to classify; the omniglot split all_runs (all_runs.zip)",
    }
)


def _few_shot_task(
    task_id: str,
    dataset: str,
    seed: int,
    n_streams: int,
    n_way: int,
    k_shot: int,
    n_query: int,
    episodes: str | None = None,
    **kwargs: Any,
) -> Task:
    shape = {"n_way": n_way, "k_shot": k_shot, "n_query": n_query}
    return Task(
        task_id=task_id,
        dataset=dataset,
        env_id=env_id("few_shot", ENV_NAMES[dataset]),
        env_kwargs=MappingProxyType({**kwargs, **shape}),
        n_streams=n_streams,
        stream_length=n_way * (k_shot + n_query),
        seed=seed,
        episodes=episodes,
    )


# Omniglot at 28x28 as in ood-v0 (and the usual few-shot protocol); 15 queries per class as in
# the standard 5-way benchmarks; 256 episodes per sampled task. The published runs are used
# as they are: class order as in the files, labels not permuted.
_FEWSHOT = (
    _few_shot_task(
        "omniglot_runs_20way_1shot",
        "omniglot",
        3000,
        20,
        20,
        1,
        1,
        episodes="omniglot_all_runs",
        split="all_runs",
        image_size=28,
        permute_labels=False,
    ),
    _few_shot_task(
        "omniglot_5way_1shot", "omniglot", 3001, 256, 5, 1, 15, split="evaluation", image_size=28
    ),
    _few_shot_task(
        "omniglot_5way_5shot", "omniglot", 3002, 256, 5, 5, 15, split="evaluation", image_size=28
    ),
    _few_shot_task("fashion_mnist_5way_5shot", "fashion_mnist", 3003, 256, 5, 5, 15, split="test"),
)

SUITES: Mapping[str, Suite] = MappingProxyType(
    {
        "offline-v0": Suite(
            "offline-v0",
            "Embedded datasets (no files): sklearn digits, iris, wine, breast cancer, "
            "sum-sign and random-label memorisation; 64 streams of 300 examples.",
            tuple(_task(name, 1000 + i, 64, 300) for i, name in enumerate(_OFFLINE)),
        ),
        "ood-v0": Suite(
            "ood-v0",
            "The VSML meta-test family: MNIST-like sets, natural images, Omniglot, "
            "and synthetic tasks; 64 streams of 300 examples from each test split.",
            tuple(
                _task(name, 2000 + i, 64, 300, **_OOD_KWARGS[name]) for i, name in enumerate(_OOD)
            ),
        ),
        "fewshot-v0": Suite(
            "fewshot-v0",
            "Few-shot episodes: Omniglot 20-way 1-shot on the 20 published one-shot runs, "
            "Omniglot 5-way 1-/5-shot on the evaluation alphabets, Fashion-MNIST 5-way 5-shot; "
            "accuracy on the queries.",
            _FEWSHOT,
        ),
    }
)


def get_suite(suite_id: str) -> Suite:
    """The suite called ``suite_id``; raises :class:`UnknownSuite` naming the known IDs."""
    try:
        return SUITES[suite_id]
    except KeyError:
        known = ", ".join(sorted(SUITES))
        raise UnknownSuite(f"unknown suite {suite_id!r}; choose one of: {known}") from None
