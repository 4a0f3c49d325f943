"""``make(env_id, **kwargs) -> (env, params)``: build a functional environment (gymnax style).

All data work that does not depend on the task happens here, once: load the split through
``vsml_bench.data``, resize images, flatten, index the examples of each class. Per-task work
(class subset, label permutation, projection, pixel permutation, example order) happens in the
env's ``reset`` on device.
"""

from __future__ import annotations

import inspect
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
#: The most memory one ``make`` (or ``make_vec``) may plan for its streams, in bytes. Sizes
#: beyond it are refused at build time with the number they would need, instead of failing deep
#: inside XLA (or the OS) on an allocation of tens of gigabytes.
MAX_BYTES = 16 * 2**30
#: The largest seed ``reset(seed=...)`` takes (a JAX key holds a signed 64-bit seed).
MAX_SEED = 2**63 - 1


class UnknownEnv(UserError, KeyError):
    """An env ID that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidEnvConfig(UserError, ValueError):
    """Keyword arguments that no task of the dataset can satisfy (names the limit)."""


_BOOL_OPTIONS = (
    "projection",
    "permute_labels",
    "permute_pixels",
    "normalise",
    "invert_inputs",
    "flatten",
    "download",
)
_INT_OPTIONS = ("stream_length", "n_classes", "n_way", "k_shot", "n_query", "image_size")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy) and not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_types(options: dict[str, Any]) -> None:
    """Refuse options of the wrong type instead of coercing them.

    ``bool("false")`` is True and ``int(1.5)`` is 1, so coercion would silently build another
    task than the one asked for: bool options take ``True``/``False`` only, integer options
    integers only (not floats, not bools), ``split`` and ``action_type`` strings.
    """
    for name in _BOOL_OPTIONS:
        value = options[name]
        if not isinstance(value, bool | np.bool_):
            raise InvalidEnvConfig(f"{name} must be True or False, not {value!r}")
    for name in _INT_OPTIONS:
        value = options[name]
        if value is not None and not is_int(value):
            raise InvalidEnvConfig(
                f"{name} must be an integer, not {value!r} ({type(value).__name__})"
            )
    for name in ("split", "action_type"):
        value = options[name]
        if value is not None and not isinstance(value, str):
            raise InvalidEnvConfig(f"{name} must be a string, not {value!r}")


def format_bytes(n: float) -> str:
    """``25.6 GB``-style size (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_bytes(nbytes: int, what: str, fix: str) -> None:
    """Raise :class:`InvalidEnvConfig` if ``nbytes`` exceeds :data:`MAX_BYTES`.

    ``what`` says what would take the memory, ``fix`` which option to lower.
    """
    if nbytes > MAX_BYTES:
        raise InvalidEnvConfig(
            f"{what} would need {format_bytes(nbytes)} ({nbytes} bytes), more than the "
            f"{format_bytes(MAX_BYTES)} limit (vsml_bench.envs.factory.MAX_BYTES); {fix}"
        )


def stream_bytes(params: ClassificationParams, lazy: bool | None = None) -> int:
    """Bytes one stream of ``params`` holds on device: what ``reset`` builds and keeps.

    ``int32`` labels and example indices ``[T]``; unless the stream is lazy (and it is not when
    the task projects or permutes its inputs), the transformed inputs ``float32[T, D]``; and
    the task's ``float32[D, D]`` projection or ``int32[D]`` pixel permutation.
    """
    lazy = params.lazy_inputs if lazy is None else lazy
    t, d = int(params.stream_length), int(params.input_size)
    nbytes = 8 * t
    if not lazy or params.projection or params.permute_pixels:
        nbytes += 4 * t * d
    if params.projection:
        nbytes += 4 * d * d
    if params.permute_pixels:
        nbytes += 4 * d
    return nbytes


def check_streams_fit(
    params: ClassificationParams, n_streams: int, lazy: bool | None = None
) -> None:
    """Refuse ``n_streams`` streams of ``params`` whose state exceeds :data:`MAX_BYTES`."""
    nbytes = int(n_streams) * stream_bytes(params, lazy)
    check_bytes(
        nbytes,
        f"{n_streams} stream(s) of {params.stream_length} steps with {params.input_size} inputs"
        + (" and a projection" if params.projection else ""),
        "use fewer streams, a shorter stream or a smaller image_size",
    )


def check_seed(seed: Any) -> int | None:
    """``seed`` if it is None or an integer in ``0 .. 2**63 - 1``, else a :class:`UserError`.

    Gymnasium takes non-negative integers; a JAX key (``jax.random.key(seed)``) holds a signed
    64-bit seed, so larger integers cannot be represented and are refused rather than wrapped.
    """
    if seed is None:
        return None
    if not is_int(seed) or not 0 <= int(seed) <= MAX_SEED:
        raise InvalidEnvConfig(
            f"seed must be None or an integer in 0..2**63-1, not {seed!r}; "
            "pass a non-negative 63-bit integer (e.g. seed % 2**63)"
        )
    return int(seed)


def check_num_envs(num_envs: Any) -> int:
    """``num_envs`` if it is a positive integer (not a bool), else :class:`InvalidEnvConfig`."""
    if not is_int(num_envs) or int(num_envs) < 1:
        raise InvalidEnvConfig(f"num_envs must be a positive integer, not {num_envs!r}")
    return int(num_envs)


def _make_from_defaults() -> dict[str, Any]:
    """The default of every named option of :func:`make_from`."""
    parameters = inspect.signature(make_from).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


def env_for(params: ClassificationParams) -> ClassificationEnv:
    """The functional env that goes with ``params`` (its dynamics; its ``default_params`` are
    those of a bare env, the embedded digits: the params do not record every make option)."""
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
        # The resized split is float32 [N, S, S, C] (plus the input copy while it is built).
        n, c = int(x.shape[0]), int(x.shape[-1])
        check_bytes(
            4 * n * image_size * image_size * c,
            f"resizing the {n} images of {ds.name!r} to {image_size}x{image_size}",
            "use a smaller image_size",
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
      InvalidEnvConfig: options no task can satisfy (the message names the limit); options of
        the wrong type (nothing is coerced: ``"false"`` is not a bool, ``1.5`` or ``True`` not
        an integer); sizes whose memory would exceed :data:`MAX_BYTES` (with the bytes needed).
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

    options = dict(
        split=split,
        stream_length=stream_length,
        n_classes=n_classes,
        n_way=n_way,
        k_shot=k_shot,
        n_query=n_query,
        projection=projection,
        permute_labels=permute_labels,
        permute_pixels=permute_pixels,
        image_size=image_size,
        normalise=normalise,
        invert_inputs=invert_inputs,
        flatten=flatten,
        action_type=action_type,
        download=download,
    )
    _check_types(options)
    # What the env keeps to rebuild these params (its default_params): the options given.
    defaults = _make_from_defaults()
    recipe = {k: v for k, v in {**options, "data_dir": data_dir}.items() if v != defaults[k]}
    recipe.update(data_options)
    if action_type not in ACTION_TYPES:
        raise InvalidEnvConfig(
            f"action_type must be one of {', '.join(ACTION_TYPES)}, not {action_type!r}"
        )
    if image_size is not None and image_size < 1:
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
        check_streams_fit(params, 1, lazy=False)
        return OnlineClassification(dataset, **recipe), params

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
    check_streams_fit(params, 1, lazy=False)
    return FewShotClassification(dataset, **recipe), params
