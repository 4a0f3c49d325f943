"""Datasets that need no files: scikit-learn's bundled sets and two synthetic generators."""

from __future__ import annotations

from typing import Any

import numpy as np

from vsml_bench.data.errors import DataError

Parsed = tuple[np.ndarray, np.ndarray, dict[str, Any]]

# Synthetic defaults (documented in load()).
SUM_SIGN_DEFAULTS = {"n": 10_000, "dim": 16, "seed": 0}
RANDOM_DEFAULTS = {"n": 1_000, "dim": 16, "n_classes": 10, "seed": 0}
# A split's generator seed is derived from (seed, split) so train and test never share inputs.
_SPLIT_STREAM = {"train": 0, "test": 1}
#: The largest synthetic input array (``float32 [n, dim]``) a generator builds, in bytes.
MAX_BYTES = 8 * 2**30


def digits() -> Parsed:
    """All 1797 images of scikit-learn's ``load_digits``, ``uint8 [1797, 8, 8, 1]`` in 0..16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.asarray(d.images, np.uint8)[..., None]  # values are integral counts 0..16
    return x, np.asarray(d.target, np.int32), {"value_range": [0, 16]}


def tabular(name: str) -> Parsed:
    """``float32 [N, D]`` raw features (not standardised) and int32 labels."""
    from sklearn import datasets

    loader = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }[name]
    d = loader()
    x = np.asarray(d.data, np.float32)
    # Per-feature statistics of the whole set: what normalise() uses for tabular data.
    extra = {
        "feature_names": [str(f) for f in d.feature_names],
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
    }
    return x, np.asarray(d.target, np.int32), extra


def _rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_STREAM[split]])


def _check(options: dict[str, Any], allowed: dict[str, Any], name: str) -> dict[str, Any]:
    unknown = set(options) - set(allowed)
    if unknown:
        raise DataError(
            f"dataset {name!r} has no option {sorted(unknown)[0]!r}; its options are "
            f"{', '.join(f'{k}={v}' for k, v in allowed.items())}"
        )
    merged = {**allowed, **options}
    for key, value in merged.items():
        # Integers only: int(1.5) would silently build another dataset than the one asked for.
        if not isinstance(value, int | np.integer) or isinstance(value, bool | np.bool_):
            raise DataError(f"dataset {name!r} needs an integer {key}, not {value!r}")
        low = 0 if key == "seed" else 1
        if value < low:
            raise DataError(f"dataset {name!r} needs {key} >= {low}, got {value}")
    merged = {key: int(value) for key, value in merged.items()}
    nbytes = 4 * merged["n"] * merged["dim"]
    if nbytes > MAX_BYTES:
        raise DataError(
            f"dataset {name!r} with n={merged['n']} and dim={merged['dim']} would need "
            f"{nbytes} bytes, more than the {MAX_BYTES}-byte limit; use a smaller n or dim"
        )
    return merged


def sum_sign(split: str, **options: Any) -> Parsed:
    """Label = sign of the input sum.

    For example i: ``mu_i ~ N(0, 1)``, ``x_i = mu_i + e_i`` with ``e_i ~ N(0, I_dim)``, label
    ``y_i = 1[sum_j x_ij > 0]``. The per-example mean ``mu_i`` makes the sign depend on the
    whole input, not on any single feature. Options: ``n`` (10000), ``dim`` (16), ``seed`` (0).
    """
    o = _check(options, SUM_SIGN_DEFAULTS, "sum_sign")
    rng = _rng(o["seed"], split)
    mu = rng.standard_normal((int(o["n"]), 1))
    x = (mu + rng.standard_normal((int(o["n"]), int(o["dim"])))).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int32)
    return x, y, {"options": o}


def random_labels(split: str, **options: Any) -> Parsed:
    """Fixed random inputs ``x_i ~ N(0, I_dim)`` with labels uniform over ``n_classes``:
    nothing to generalise, only to memorise. Options: ``n`` (1000), ``dim`` (16),
    ``n_classes`` (10), ``seed`` (0)."""
    o = _check(options, RANDOM_DEFAULTS, "random")
    rng = _rng(o["seed"], split)
    x = rng.standard_normal((int(o["n"]), int(o["dim"]))).astype(np.float32)
    y = rng.integers(0, int(o["n_classes"]), int(o["n"])).astype(np.int32)
    return x, y, {"options": o}
