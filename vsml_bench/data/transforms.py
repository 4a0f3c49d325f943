"""Pure, seeded task transforms that work on NumPy arrays and inside ``jax.jit``.

Two kinds of functions:

* **Samplers** draw the random part of a task from a JAX key (typed ``jax.random.key`` or an
  ``int`` seed): :func:`glorot_uniform`, :func:`random_projection`, :func:`pixel_permutation`,
  :func:`label_permutation`, :func:`class_subset`, :func:`sample_from_classes`. Given a key they
  return JAX arrays and are jittable (sizes are static Python ints). Given an ``int`` seed they
  return NumPy arrays, equal to what ``jax.random.key(seed)`` gives, so a NumPy pipeline and a
  JAX pipeline seeded alike see the same task.
* **Appliers** are deterministic array maps: :func:`to_unit`, :func:`normalise`, :func:`resize`,
  :func:`grayscale`, :func:`flatten`, :func:`project`, :func:`permute_pixels`, :func:`relabel`.
  A NumPy input gives a NumPy output (computed with NumPy); a JAX array or tracer gives a JAX
  output, so they can be used inside ``jit``/``vmap``.

Images are ``[..., H, W, C]``; vectors are ``[..., D]``. A typical VSML task::

    x = normalise(ds.x, *dataset_stats(ds))            # [N, H, W, C] float32
    x = resize(x, (7, 7), "area")                       # optional pooling
    x = flatten(x, batch_dims=1)                        # [N, D]
    w = random_projection(key_proj, x.shape[-1])        # Glorot-uniform [D, D]
    x = project(x, w)
    classes = class_subset(key_cls, ds.n_classes, k)    # new label i <- old class classes[i]
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # np.ndarray | jax.Array
KeyLike = Any  # jax.Array (typed key) | int seed

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma


def _xp(x: Array):
    """NumPy for NumPy inputs (and Python scalars/lists), jax.numpy for JAX arrays/tracers."""
    return jnp if isinstance(x, jax.Array) else np


def _key(key_or_seed: KeyLike) -> tuple[jax.Array, bool]:
    """(typed key, whether to return NumPy)."""
    if isinstance(key_or_seed, int | np.integer):
        return jax.random.key(int(key_or_seed)), True
    return key_or_seed, False


def _out(value: jax.Array, as_numpy: bool) -> Array:
    return np.asarray(value) if as_numpy else value


# --------------------------------------------------------------------------------------------
# Value scaling and normalisation


def to_unit(x: Array, value_max: float = 255.0) -> Array:
    """``x / value_max`` as float32: raw pixels to ``[0, 1]`` (value_max 255, or 16 for digits)."""
    xp = _xp(x)
    return xp.asarray(x, xp.float32) / xp.float32(value_max)


def normalise(x: Array, mean: Any, std: Any, value_max: float = 1.0) -> Array:
    """``(x / value_max - mean) / std`` as float32.

    ``mean``/``std`` are scalars (image statistics of ``[0, 1]`` values, from the registry) or
    per-feature vectors broadcast over the last axis (tabular sets). A zero std (a constant
    feature) is treated as 1 so the feature becomes 0 instead of NaN.
    """
    xp = _xp(x)
    mean = xp.asarray(mean, xp.float32)
    std = xp.asarray(std, xp.float32)
    std = xp.where(std == 0, xp.float32(1), std)
    return (to_unit(x, value_max) - mean) / std


def dataset_stats(ds: Any) -> tuple[Any, Any, float]:
    """``(mean, std, value_max)`` for :func:`normalise` from a loaded ``Dataset``'s ``info``
    (scalars for images, per-feature lists for tabular sets, 0/1 for synthetic data)."""
    info = ds.info
    mean = info.get("mean")
    std = info.get("std")
    return (
        (0.0 if mean is None else mean),
        (1.0 if std is None else std),
        info.get("value_max", 1.0),
    )


# --------------------------------------------------------------------------------------------
# Geometry


@lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """``M [n_out, n_in]`` with ``out = M @ in`` along one axis.

    area: output pixel ``i`` averages the input interval ``[i s, (i+1) s)``, ``s = n_in/n_out``,
    each input pixel weighted by its overlap (exact box filter; integer factors = mean pooling).
    bilinear: half-pixel centres, ``src = (i + 0.5) s - 0.5`` clamped to the image, linear
    interpolation between the two neighbours (no antialiasing).
    """
    m = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    if method == "area":
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(math.floor(lo), min(math.ceil(hi), n_in)):
                m[i, j] = (min(hi, j + 1) - max(lo, j)) / scale
    elif method == "bilinear":
        for i in range(n_out):
            src = min(max((i + 0.5) * scale - 0.5, 0.0), n_in - 1)
            j0 = math.floor(src)
            j1 = min(j0 + 1, n_in - 1)
            frac = src - j0
            m[i, j0] += 1 - frac
            m[i, j1] += frac
    else:
        raise ValueError(f"resize method must be 'area' or 'bilinear', not {method!r}")
    return m.astype(np.float32)


def resize(x: Array, size: tuple[int, int], method: str = "area") -> Array:
    """Resize images ``[..., H, W, C] -> [..., h, w, C]`` (float32) with separable linear maps
    ``out = M_h x M_w^T``; see :func:`_resize_matrix` for ``"area"`` and ``"bilinear"``."""
    xp = _xp(x)
    h_in, w_in = x.shape[-3], x.shape[-2]
    mh = xp.asarray(_resize_matrix(int(h_in), int(size[0]), method))
    mw = xp.asarray(_resize_matrix(int(w_in), int(size[1]), method))
    x = xp.asarray(x, xp.float32)
    if xp is np:  # contract one axis at a time with BLAS instead of a naive 3-operand loop
        return np.einsum("oh,...hwc,pw->...opc", mh, x, mw, optimize=True)
    return jnp.einsum("oh,...hwc,pw->...opc", mh, x, mw)


def grayscale(x: Array) -> Array:
    """RGB ``[..., 3] -> [..., 1]`` by BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (float32);
    single-channel input is returned as float32 unchanged."""
    xp = _xp(x)
    x = xp.asarray(x, xp.float32)
    if x.shape[-1] == 1:
        return x
    if x.shape[-1] != 3:
        raise ValueError(f"grayscale needs 1 or 3 channels, got {x.shape[-1]}")
    return x @ xp.asarray(_GRAY_WEIGHTS, xp.float32)[:, None]


def flatten(x: Array, batch_dims: int = 0) -> Array:
    """Keep the first ``batch_dims`` axes, flatten the rest: ``[B..., H, W, C] -> [B..., HWC]``."""
    return x.reshape((*x.shape[:batch_dims], -1))


# --------------------------------------------------------------------------------------------
# Random input maps


def glorot_uniform(key: KeyLike, d_in: int, d_out: int, dtype: Any = jnp.float32) -> Array:
    """``W [d_in, d_out]`` with entries i.i.d. ``U(-a, a)``, ``a = sqrt(6 / (d_in + d_out))``
    (variance ``2 / (d_in + d_out)``), the VSML task projection."""
    k, as_numpy = _key(key)
    limit = math.sqrt(6.0 / (d_in + d_out))
    w = jax.random.uniform(k, (d_in, d_out), dtype, minval=-limit, maxval=limit)
    return _out(w, as_numpy)


def random_projection(key: KeyLike, dim: int, dtype: Any = jnp.float32) -> Array:
    """Square Glorot-uniform matrix ``[dim, dim]``: ``a = sqrt(6 / (2 dim)) = sqrt(3 / dim)``."""
    return glorot_uniform(key, dim, dim, dtype)


def project(x: Array, w: Array) -> Array:
    """``x @ w`` over the last axis: ``[..., d_in] -> [..., d_out]`` (float32)."""
    xp = _xp(x)
    return xp.asarray(x, xp.float32) @ xp.asarray(w, xp.float32)


def pixel_permutation(key: KeyLike, n: int) -> Array:
    """A uniformly random permutation of ``range(n)`` (int32)."""
    k, as_numpy = _key(key)
    return _out(jax.random.permutation(k, n).astype(jnp.int32), as_numpy)


def permute_pixels(x: Array, perm: Array) -> Array:
    """``x[..., perm]`` on flattened inputs ``[..., D]`` (flatten images first)."""
    xp = _xp(x)
    return xp.take(x, xp.asarray(perm), axis=-1)


# --------------------------------------------------------------------------------------------
# Labels


def label_permutation(key: KeyLike, n_classes: int) -> Array:
    """``perm [n_classes]``: old label ``c`` becomes ``perm[c]`` (a bijection, int32)."""
    return pixel_permutation(key, n_classes)


def class_subset(key: KeyLike, n_classes: int, k: int) -> Array:
    """``classes [k]``: ``k`` distinct classes of ``0..n_classes-1`` in random order (int32).

    New label ``i`` stands for old class ``classes[i]``, so the random order is also the label
    permutation; ``k == n_classes`` gives a pure label permutation (inverse of
    :func:`label_permutation`'s convention). Use :func:`label_map` / :func:`relabel` to map labels.
    """
    if not 1 <= k <= n_classes:
        raise ValueError(
            f"class_subset needs 1 <= k <= n_classes, got k={k}, n_classes={n_classes}"
        )
    kk, as_numpy = _key(key)
    return _out(jax.random.permutation(kk, n_classes)[:k].astype(jnp.int32), as_numpy)


def label_map(classes: Array, n_classes: int) -> Array:
    """``m [n_classes]`` with ``m[classes[i]] = i`` and ``-1`` for classes not in the subset."""
    xp = _xp(classes)
    classes = xp.asarray(classes)
    k = classes.shape[0]
    base = xp.full((n_classes,), -1, xp.int32)
    if xp is np:
        base[classes] = np.arange(k, dtype=np.int32)
        return base
    return base.at[classes].set(jnp.arange(k, dtype=jnp.int32))


def relabel(y: Array, mapping: Array) -> Array:
    """``mapping[y]``: apply a :func:`label_map` or :func:`label_permutation` to labels."""
    xp = _xp(y)
    return xp.take(xp.asarray(mapping), xp.asarray(y), axis=0)


def class_index_table(y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Precompute (once, in NumPy) ``table [n_classes, max_count]`` of example indices per class
    (padded by repeating each class's first index) and ``counts [n_classes]``, for jittable
    sampling with :func:`sample_from_classes`."""
    y = np.asarray(y)
    counts = np.bincount(y, minlength=n_classes).astype(np.int32)
    table = np.zeros((n_classes, max(int(counts.max()), 1)), np.int32)
    for c in range(n_classes):
        idx = np.flatnonzero(y == c).astype(np.int32)
        if len(idx):
            table[c, : len(idx)] = idx
            table[c, len(idx) :] = idx[0]
    return table, counts


def sample_from_classes(
    key: KeyLike, table: Array, counts: Array, classes: Array, n: int
) -> tuple[Array, Array]:
    """Draw ``n`` examples, each of a uniformly chosen class of ``classes`` and then uniformly
    within that class (with replacement). Returns ``(indices [n], new_labels [n])`` where
    ``new_labels[t] = i`` means the example is of class ``classes[i]``. Jittable for static ``n``.
    """
    k, as_numpy = _key(key)
    k_label, k_index = jax.random.split(k)
    classes = jnp.asarray(classes)
    labels = jax.random.randint(k_label, (n,), 0, classes.shape[0], dtype=jnp.int32)
    original = classes[labels]
    counts = jnp.asarray(counts)
    u = jax.random.uniform(k_index, (n,))
    # floor(u * count) is uniform over 0..count-1; the clip guards u -> 1.0 rounding.
    pos = jnp.minimum((u * counts[original]).astype(jnp.int32), counts[original] - 1)
    indices = jnp.asarray(table)[original, pos]
    return _out(indices, as_numpy), _out(labels, as_numpy)
