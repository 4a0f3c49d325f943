"""``make(env_id, **kwargs) -> (env, params)``: build a functional environment (gymnax style).

All data work that does not depend on the task happens here, once: load the split through
``vsml_bench.data``, resize images, flatten, index the examples of each class. Per-task work
(class subset, label permutation, projection, pixel permutation, example order) happens in the
env's ``reset`` on device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vsml_bench.envs.core import ACTION_TYPES, ClassificationEnv, ClassificationParams
from vsml_bench.envs.fewshot import FewShotClassification, FewShotParams
from vsml_bench.envs.online import OnlineClassification, OnlineParams
from vsml_bench.envs.registration import all_env_ids, parse_env_id
from vsml_bench.errors import UserError

ENV_CLASSES: dict[str, type[ClassificationEnv]] = {
    "online": OnlineClassification,
    "few_shot": FewShotClassification,
}
DEFAULT_STREAM_LENGTH = 500
DEFAULT_N_WAY = 5
DEFAULT_K_SHOT = 1
DEFAULT_N_QUERY = 5


class UnknownEnv(UserError, KeyError):
    """An env ID that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidEnvConfig(UserError, ValueError):
    """Keyword arguments that no task of the dataset can satisfy (names the limit)."""


def env_for(params: ClassificationParams) -> ClassificationEnv:
    """The functional env that goes with ``params``."""
    return FewShotClassification() if isinstance(params, FewShotParams) else OnlineClassification()


def _load(dataset: str, split: str | None, data_dir: Any, download: bool, options: dict):
    from vsml_bench import data

    spec = data.spec(dataset)
    split = spec.default_split if split is None else split
    spec.check_split(split)
    if options and spec.kind != "synthetic":
        raise InvalidEnvConfig(
            f"unknown option(s) {', '.join(sorted(options))} for dataset {dataset!r}; "
            "see help(vsml_bench.envs.make) for the options"
        )
    return data.load(dataset, split=split, data_dir=data_dir, download=download, **options)


def _prepare_inputs(ds, image_size: int | None, normalise: bool):
    """``(x [N, D], example shape, scale, shift)``: flattened inputs, model input ``x*scale+shift``.

    Images with scalar statistics keep their stored ``uint8`` values (4x less device memory)
    and are normalised at reset, on the ``T`` examples of a stream only:
    ``(x / value_max - mean) / std = x * scale + shift``. Everything else (tabular sets with
    per-feature statistics, resized images) is normalised here, once, with
    :func:`vsml_bench.data.transforms.normalise`.
    """
    from vsml_bench.data import transforms

    mean, std, value_max = transforms.dataset_stats(ds)
    if not normalise:
        mean, std = 0.0, 1.0
    x = ds.x
    if image_size is not None:
        if not ds.is_image:
            raise InvalidEnvConfig(
                f"image_size applies to image datasets only, and {ds.name!r} is not one; "
                "drop the image_size option"
            )
        # Resizing is linear, so it commutes with the affine normalisation applied later.
        x = np.asarray(transforms.resize(x, (image_size, image_size)))
    shape = tuple(int(s) for s in x.shape[1:])
    flat = transforms.flatten(x, batch_dims=1)
    if flat.dtype == np.uint8 and np.ndim(mean) == 0 and np.ndim(std) == 0:
        std = float(std) or 1.0
        return flat, shape, 1.0 / (float(value_max) * std), -float(mean) / std
    flat = transforms.normalise(flat, mean, std, value_max)
    return np.asarray(flat, np.float32), shape, 1.0, 0.0


def make(env_id: str, **kwargs: Any) -> tuple[ClassificationEnv, ClassificationParams]:
    """Build the functional env and its params for a registered ID.

    Args:
      env_id: e.g. ``"vsml_bench/OnlineMNIST-v0"`` (the namespace may be omitted).
      **kwargs: options:
        ``split`` (default: the dataset's default split), ``stream_length`` (online, default
        500), ``n_classes`` (online: a random subset of the dataset's classes; default all),
        ``n_way``/``k_shot``/``n_query`` (few-shot; defaults 5/1/5, ``n_way`` at most the
        dataset's classes), ``projection`` (Glorot-uniform random projection, default False),
        ``permute_labels`` (default True), ``permute_pixels`` (default False), ``image_size``
        (resize images to ``image_size x image_size``), ``normalise`` (by dataset statistics,
        default True), ``invert_inputs`` (negate the normalised inputs: dark strokes on a bright
        background become bright on dark and back; default False), ``flatten`` (``obs["x"]`` as ``[D]``, default True), ``action_type``
        (``"discrete"`` or ``"logits"``), ``data_dir``, ``download``; synthetic datasets also
        take their generator's options (``sum_sign``: ``n``, ``dim``, ``seed``; ``random``:
        ``n``, ``dim``, ``seed``).

    Raises:
      UnknownEnv: the ID is not registered.
      InvalidEnvConfig: options no task can satisfy (the message names the limit).
      vsml_bench.data.DatasetNotFound: the dataset's files are missing (with the fetch hint).
    """
    try:
        kind, dataset = parse_env_id(env_id)
    except ValueError:
        known = ", ".join(i for i, _, _ in all_env_ids()[:3])
        raise UnknownEnv(
            f"unknown environment {env_id!r}; IDs look like {known}, ... "
            "(`vsml-bench envs` lists them all)"
        ) from None
    return make_from(kind, dataset, **kwargs)


def make_from(
    kind: str,
    dataset: str,
    *,
    split: str | None = None,
    stream_length: int | None = None,
    n_classes: int | None = None,
    n_way: int | None = None,
    k_shot: int | None = None,
    n_query: int | None = None,
    projection: bool = False,
    permute_labels: bool = True,
    permute_pixels: bool = False,
    image_size: int | None = None,
    normalise: bool = True,
    invert_inputs: bool = False,
    flatten: bool = True,
    action_type: str = "discrete",
    data_dir: Any = None,
    download: bool = False,
    **data_options: Any,
) -> tuple[ClassificationEnv, ClassificationParams]:
    """:func:`make` from a kind (``"online"``/``"few_shot"``) and a data registry name."""
    import jax.numpy as jnp

    if action_type not in ACTION_TYPES:
        raise InvalidEnvConfig(
            f"action_type must be one of {', '.join(ACTION_TYPES)}, not {action_type!r}"
        )
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise InvalidEnvConfig(f"image_size must be a positive integer, not {image_size!r}")
    if kind == "online":
        for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
            if value is not None:
                raise InvalidEnvConfig(
                    f"{name} is a few-shot option; use a FewShot<Dataset>-v0 ID, or n_classes "
                    "and stream_length for online streams"
                )
    else:
        if n_classes is not None:
            raise InvalidEnvConfig("few-shot tasks take n_way (classes per episode), not n_classes")
        if stream_length is not None:
            raise InvalidEnvConfig(
                "a few-shot episode has n_way * (k_shot + n_query) steps; set those, "
                "not stream_length"
            )

    from vsml_bench.data import transforms

    ds = _load(dataset, split, data_dir, download, data_options)
    x, shape, scale, shift = _prepare_inputs(ds, image_size, normalise)
    if invert_inputs:  # the model input x * scale + shift, negated: free at run time
        scale, shift = -scale, -shift
    y = np.asarray(ds.y, np.int32)
    c_data = int(ds.n_classes)
    index, count = transforms.class_index_table(y, c_data)
    input_shape = (math.prod(shape),) if flatten else shape
    common = dict(
        x=jnp.asarray(x),
        y=jnp.asarray(y),
        class_index=jnp.asarray(index),
        class_count=jnp.asarray(count),
        dataset=dataset,
        split=ds.split,
        n_dataset_classes=c_data,
        input_shape=tuple(int(s) for s in input_shape),
        example_shape=shape,
        x_scale=float(scale),
        x_shift=float(shift),
        projection=bool(projection),
        permute_labels=bool(permute_labels),
        permute_pixels=bool(permute_pixels),
        action_type=action_type,
    )
    where = f"{dataset} ({ds.split})"
    if kind == "online":
        n = c_data if n_classes is None else int(n_classes)
        if not 2 <= n <= c_data:
            raise InvalidEnvConfig(
                f"n_classes must be between 2 and {c_data}, the classes of {where}; got {n}"
            )
        if np.count_nonzero(count) < n:
            raise InvalidEnvConfig(
                f"only {np.count_nonzero(count)} classes of {where} have examples; "
                f"n_classes={n} is too many"
            )
        t = DEFAULT_STREAM_LENGTH if stream_length is None else int(stream_length)
        if t < 1:
            raise InvalidEnvConfig(f"stream_length must be at least 1, got {t}")
        params: ClassificationParams = OnlineParams(n_classes=n, stream_length=t, **common)
        return OnlineClassification(), params

    way = min(DEFAULT_N_WAY, c_data) if n_way is None else int(n_way)
    k = DEFAULT_K_SHOT if k_shot is None else int(k_shot)
    q = DEFAULT_N_QUERY if n_query is None else int(n_query)
    if not 2 <= way <= c_data:
        raise InvalidEnvConfig(
            f"n_way must be between 2 and {c_data}, the classes of {where}; got {way}"
        )
    if k < 1 or q < 1:
        raise InvalidEnvConfig(f"k_shot and n_query must be at least 1, got {k} and {q}")
    # Any class may be drawn, so every class must hold k_shot + n_query distinct examples.
    fewest = int(count.min())
    if k + q > fewest:
        raise InvalidEnvConfig(
            f"k_shot + n_query = {k + q} exceeds {fewest}, the examples of the smallest class of "
            f"{where}; use k_shot + n_query <= {fewest}"
        )
    params = FewShotParams(
        n_classes=way, stream_length=way * (k + q), k_shot=k, n_query=q, **common
    )
    return FewShotClassification(), params
