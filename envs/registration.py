"""Gymnasium registration of every ``vsml_bench/...`` environment ID.

Called by ``import vsml_bench``; it must stay cheap, so it neither loads data nor imports JAX:
Gymnasium gets string entry points, resolved only when an env is made.

IDs are ``vsml_bench/Online<Dataset>-v0`` and ``vsml_bench/FewShot<Dataset>-v0`` for every
dataset below. Bump an ID's version whenever its streams could change for the same seed.
"""

from __future__ import annotations

NAMESPACE = "vsml_bench"
VERSION = 0

#: ID name -> data registry name (``vsml_bench.data``); the one table of registered datasets.
DATASET_IDS: dict[str, str] = {
    "Digits": "digits",
    "MNIST": "mnist",
    "FashionMNIST": "fashion_mnist",
    "KMNIST": "kmnist",
    "EMNIST": "emnist",
    "CIFAR10": "cifar10",
    "SVHN": "svhn",
    "Omniglot": "omniglot",
    "NotMNIST": "notmnist",
    "CIFAR10JPEG": "cifar10_jpeg",
    "SumSign": "sum_sign",
    "Random": "random",
    "Iris": "iris",
    "Wine": "wine",
    "BreastCancer": "breast_cancer",
}

#: kind -> ID prefix.
KINDS: dict[str, str] = {"online": "Online", "few_shot": "FewShot"}

_ENTRY = "vsml_bench.envs.gym_env:ClassificationGymEnv"
_VECTOR_ENTRY = "vsml_bench.envs.gym_env:ClassificationVectorEnv"


def env_id(kind: str, dataset_id_name: str) -> str:
    """``env_id("online", "MNIST") == "vsml_bench/OnlineMNIST-v0"``."""
    return f"{NAMESPACE}/{KINDS[kind]}{dataset_id_name}-v{VERSION}"


def all_env_ids() -> list[tuple[str, str, str]]:
    """``[(env_id, kind, dataset), ...]`` for every registered environment."""
    return [
        (env_id(kind, id_name), kind, dataset)
        for kind in KINDS
        for id_name, dataset in DATASET_IDS.items()
    ]


def parse_env_id(env_id_: str) -> tuple[str, str]:
    """``"vsml_bench/OnlineMNIST-v0" -> ("online", "mnist")``; ValueError if unknown.

    The namespace may be omitted (``"OnlineMNIST-v0"``).
    """
    for full, kind, dataset in all_env_ids():
        if env_id_ in (full, full.split("/", 1)[1]):
            return kind, dataset
    raise ValueError(env_id_)


def register_envs() -> None:
    """Register every ID with Gymnasium; calling it again changes nothing."""
    import gymnasium as gym

    for full, kind, dataset in all_env_ids():
        if full in gym.registry:
            continue
        gym.register(
            id=full,
            entry_point=_ENTRY,
            vector_entry_point=_VECTOR_ENTRY,
            kwargs={"kind": kind, "dataset": dataset},
            # Episodes truncate themselves at stream_length, which the make options set: the
            # env fills spec.max_episode_steps in itself (gym_env._EpisodeLengthSpec), and no
            # TimeLimit wrapper adds a per-step cost. Neither can this choose the async start
            # method: a registered vector_kwargs would reach, and break, the default vector env
            # too, so the envs refuse to run in a forked child instead (gym_env._check_process).
            max_episode_steps=None,
            disable_env_checker=False,
        )
