"""Data-layer benchmarks: `python -m pytest tests/benchmarks/test_bench_data.py --benchmark-enable`.

Without ``--benchmark-enable`` (the default addopts) each runs once as a plain test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fixtures_data import random_images, use_files, write_idx_split

from vsml_bench import data
from vsml_bench.data import store
from vsml_bench.data import transforms as T


@pytest.fixture
def mnist_fixture(tmp_path, monkeypatch, fresh_cache):
    """10k MNIST-format images (the size of MNIST's test split) in a private data dir."""
    monkeypatch.delenv("VSML_BENCH_DATA", raising=False)
    rng = np.random.default_rng(0)
    x, y = random_images(rng, 10000), rng.integers(0, 10, 10000).astype(np.uint8)
    use_files(monkeypatch, "mnist", write_idx_split(tmp_path / "mnist", "t10k", x, y))
    return tmp_path


def test_bench_load_cold(benchmark, mnist_fixture):
    """Verify (payload md5 through gunzip) + parse + write the parsed cache."""

    def cold():
        for sub in ("verified", "arrays"):
            folder = store.cache_dir() / sub
            if folder.exists():
                import shutil

                shutil.rmtree(folder)
        return data.load("mnist", "test", data_dir=mnist_fixture)

    ds = benchmark.pedantic(cold, rounds=3, warmup_rounds=1)
    assert len(ds) == 10000


def test_bench_load_cached(benchmark, mnist_fixture):
    """Second and later loads: a stat per file, a stamp lookup, two np.load calls."""
    data.load("mnist", "test", data_dir=mnist_fixture)
    ds = benchmark.pedantic(
        lambda: data.load("mnist", "test", data_dir=mnist_fixture), rounds=10, warmup_rounds=1
    )
    assert ds.x.shape == (10000, 28, 28, 1)


def test_bench_task_transforms_jit(benchmark):
    """One VSML-style task on a batch of 100 MNIST-sized inputs, under jit: normalise, area
    pooling to 14x14, flatten, sample a Glorot projection and a pixel permutation, apply them."""
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (100, 28, 28, 1), np.uint8))

    @jax.jit
    def task(key, x):
        kw, kp = jax.random.split(key)
        z = T.flatten(T.resize(T.normalise(x, 0.1307, 0.3081, 255.0), (14, 14)), batch_dims=1)
        w = T.random_projection(kw, z.shape[-1])
        return T.permute_pixels(T.project(z, w), T.pixel_permutation(kp, z.shape[-1]))

    key = jax.random.key(0)
    out = benchmark.pedantic(lambda: task(key, x).block_until_ready(), rounds=20, warmup_rounds=2)
    assert out.shape == (100, 196)
