"""Example 1: a task as a Gymnasium environment, on the embedded digits (no files, no network).

``vsml_bench/OnlineDigits-v0`` is an online classification stream: each step shows one 8x8
digit (``obs["x"]``, 64 normalised pixels) and the label of the *previous* digit
(``obs["prev_label"]``, 10 = "none yet"); the action is a class and the reward is 1 when it is
right. A learner therefore predicts first and learns one step later, the protocol every
learner in this benchmark follows.

The learner here is a few lines of NumPy: predict the class whose running mean of past
examples is nearest, then add the example to its class mean once its label arrives.

Run: ``python examples/01_gym_env.py`` (about 5 s).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import vsml_bench  # noqa: F401  (importing registers the vsml_bench/... environment IDs)


def run_stream(env: gym.Env, seed: int) -> float:
    """Run one episode with an online nearest-class-mean learner; return its accuracy."""
    obs, _ = env.reset(seed=seed)
    n_classes = int(env.action_space.n)
    sums = np.zeros((n_classes, obs["x"].size))
    counts = np.zeros(n_classes)
    rng = np.random.default_rng(seed)  # for guesses before any class has been seen
    prev_x = None
    while True:
        label = int(obs["prev_label"])
        if label < n_classes:  # the previous example's label arrived: learn from it
            sums[label] += prev_x
            counts[label] += 1
        seen = counts > 0
        if seen.any():
            means = sums[seen] / counts[seen, None]
            distances = ((means - obs["x"]) ** 2).sum(axis=1)
            action = int(np.flatnonzero(seen)[distances.argmin()])
        else:
            action = int(rng.integers(n_classes))
        prev_x = obs["x"]
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return float(info["accuracy"])


def main() -> None:
    env = gym.make("vsml_bench/OnlineDigits-v0", stream_length=200)
    print("observation space:", env.observation_space)
    print("action space:     ", env.action_space)
    accuracies = [run_stream(env, seed) for seed in range(5)]
    print("nearest-mean accuracy over 5 streams of 200:", " ".join(f"{a:.3f}" for a in accuracies))
    env.close()

    # The module-prefix form imports vsml_bench itself: handy in configs and other tools.
    env = gym.make("vsml_bench:vsml_bench/OnlineDigits-v0", stream_length=10)
    obs, _ = env.reset(seed=0)
    print("module-prefix form:", env.spec.id, "first prev_label:", int(obs["prev_label"]))
    env.close()


if __name__ == "__main__":
    main()
