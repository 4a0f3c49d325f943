"""VSML: Variable Shared Meta Learning (Kirsch & Schmidhuber, NeurIPS 2021), fast and faithful.

Every weight ``(a, b)`` of a layer is a tiny LSTM (the *sub-RNN*); all of them share one parameter
set ``θ`` (about 2.4k numbers for the defaults), so one ``θ`` runs on any input size and class count.
Per example (one *tick*) each layer updates its cells ``micro_ticks`` times with fixed messages:

.. math::

    z_{ab} &= [\\overrightarrow{m}_a,\\ \\overleftarrow{m}_b,\\ h_{ab}]\\, W + w_0
            \\qquad (\\text{columns } i, g, f, o) \\\\
    c_{ab} &\\leftarrow σ(f + 5)\\, c_{ab} + σ(i - 5)\\, \\tanh g, \\qquad
    h_{ab} \\leftarrow σ(o) \\tanh c_{ab} \\\\
    \\overrightarrow{m}'_b &= \\tfrac{1}{A} \\textstyle\\sum_a (h_{ab} W_f + w_f), \\qquad
    \\overleftarrow{m}'_a = \\tfrac{1}{B} \\textstyle\\sum_b (h_{ab} W_b + w_b)

The input pixel ``x_a`` is component 0 of layer 1's forward message; the error of the previous
example ``softmax(ŷ) − onehot(y)`` (zero at t = 0 and when no label is given) is component 0 of the
last layer's backward message (``feed_label``: the one-hot label is component 1). The prediction is
component ``output_index`` of the last layer's forward message, soft-clipped
``ŷ = bound · tanh(· / bound)``. Forward messages cross every layer in one tick; backward messages
move back one layer per tick, unless ``backward_pass`` adds a reverse sweep that consumes the error.

Speed: the maps are factored. ``[m_a, m_b, h] W = m_a W_in + m_b W_back + h W_h``: the message
projections are computed once per input row / output column instead of once per cell, and the
output heads are applied after the mean over cells (exact by linearity; with ``layer_norm`` the
heads run per cell, as they must). The per-cell work is then one ``[N, 16] × [16, 64]`` product and
the gate arithmetic, fused over micro ticks; streams are ``vmap``-ed and time is ``lax.scan``-ed by
the caller.

Parameter layout (kept compatible with the public Haiku code, see :func:`meta_params_from_haiku`)::

    {"sub_rnn": {"custom_lstm": {"linear": {"w": [2M+S, 4S], "b": [4S]}},
                 "linear":   {"w": [S, M], "b": [M]},      # forward-message head
                 "linear_1": {"w": [S, M], "b": [M]},      # backward-message head
                 "layer_norm": {"scale", "offset"}, "layer_norm_1": {...}}}   # only with layer_norm

With ``layerwise_params`` the layers use ``sub_rnn``, ``sub_rnn_1``, … (Haiku's naming), and with
``separate_backward_rnn`` the reverse sweep uses the next ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vsml_bench.deprecation import warn_key_access
from vsml_bench.errors import UserError
from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec

# The gate shifts are constants of the cell (not stored in the bias): a fresh cell forgets
# nothing (forget gate ≈ σ(5)) and writes almost nothing (input gate ≈ σ(−5)).
FORGET_SHIFT = 5.0
INPUT_SHIFT = -5.0


class VSMLConfigError(UserError):
    """A VSML option is invalid."""


# ---------------------------------------------------------------------------------------------
# The sub-RNN as a Flax module (Haiku-compatible names). Used for ``meta_init`` and as the
# per-cell reference the fast path is tested against.
# ---------------------------------------------------------------------------------------------


def _truncated_normal(stddev: float):
    """Haiku's ``TruncatedNormal``: a normal cut at ±2 std, times ``stddev`` (no re-scaling)."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)

    return init


class HaikuLinear(nn.Module):
    """``y = x w + b`` with Haiku's parameter names and default init (``w ~ TN(1/√fan_in)``)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        w = self.param("w", _truncated_normal(1.0 / math.sqrt(fan_in)), (fan_in, self.features))
        b = self.param("b", nn.initializers.zeros, (self.features,))
        return x @ w + b


class HaikuLayerNorm(nn.Module):
    """LayerNorm over the last axis with Haiku's names (``scale``, ``offset``) and ``eps=1e-5``."""

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        offset = self.param("offset", nn.initializers.zeros, (x.shape[-1],))
        return _layer_norm(x, scale, offset, self.eps)


def _layer_norm(x: jax.Array, scale: jax.Array, offset: jax.Array, eps: float = 1e-5) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * scale + offset


class CustomLSTM(nn.Module):
    """The LSTM of the sub-RNN (Haiku name ``custom_lstm``; its weight matrix is ``linear``).

    Gates ``[inputs, h] w + b`` in column order i, g, f, o;
    ``c' = σ(f + 5) c + σ(i − 5) tanh g``, ``h' = σ(o) tanh c'``.
    """

    state_size: int

    @nn.compact
    def __call__(
        self, inputs: jax.Array, h: jax.Array, c: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        linear = HaikuLinear(4 * self.state_size, name="linear")
        x_and_h = jnp.concatenate([inputs, h], axis=-1)
        z = linear(x_and_h)
        i, g, f, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f + FORGET_SHIFT) * c + jax.nn.sigmoid(i + INPUT_SHIFT) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, c


class SubRNN(nn.Module):
    """One VSML cell: ``(fwd_msg, bwd_msg, (h, c)) -> (fwd_msg', bwd_msg', (h', c'))``.

    Works on any leading batch shape. Parameter tree (Haiku names): ``custom_lstm/linear``,
    ``linear`` (forward head), ``linear_1`` (backward head), optional ``layer_norm``(``_1``).
    """

    state_size: int = 16
    msg_size: int = 8
    layer_norm: bool = False

    @nn.compact
    def __call__(
        self, fwd_msg: jax.Array, bwd_msg: jax.Array, h: jax.Array, c: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        inputs = jnp.concatenate([fwd_msg, bwd_msg], axis=-1)
        h, c = CustomLSTM(self.state_size, name="custom_lstm")(inputs, h, c)
        fwd = HaikuLinear(self.msg_size, name="linear")(h)
        bwd = HaikuLinear(self.msg_size, name="linear_1")(h)
        if self.layer_norm:
            fwd = HaikuLayerNorm(name="layer_norm")(fwd)
            bwd = HaikuLayerNorm(name="layer_norm_1")(bwd)
        return fwd, bwd, h, c


# ---------------------------------------------------------------------------------------------
# Configuration: layers and options.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseLayer:
    """A dense VSML layer: one cell per (input, output) pair. ``size=None``: the class count."""

    size: int | None = None


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D conv VSML layer (SAME padding): one cell per kernel entry ``(u, v, in_ch, out_ch)``.

    Each cell runs at every output position with that position's messages; its new state is the
    mean over positions (the public code's semantics). Forward message out of position ``p``,
    channel ``o``: the mean over the kernel window and input channels; backward message into input
    position ``x``: the sum over the ``k²`` window slots that read ``x`` (absent slots count as
    zero) divided by ``k²``, of the mean over output channels.
    """

    channels: int
    kernel_size: int = 3
    stride: int = 1


@dataclass(frozen=True)
class VSMLConfig:
    """All VSML options (a JSON record through :meth:`to_dict`, back through :meth:`from_dict`)."""

    state_size: int = 16
    msg_size: int = 8
    micro_ticks: int = 2
    init_rand_proportion: float = 0.5
    tanh_bound: float = 100.0
    output_index: int = 1
    feed_label: bool = False
    backward_pass: bool = False
    separate_backward_rnn: bool = False
    layer_norm: bool = False
    layerwise_params: bool = False
    layers: tuple[DenseLayer | ConvLayer, ...] = (DenseLayer(),)
    remat: bool = True

    def __post_init__(self) -> None:
        if self.state_size < 1 or self.msg_size < 2 or self.micro_ticks < 1:
            raise VSMLConfigError(
                "VSML needs state_size >= 1, msg_size >= 2 and micro_ticks >= 1; "
                f"got {self.state_size}, {self.msg_size}, {self.micro_ticks}."
            )
        if not 0 <= self.output_index < self.msg_size:
            raise VSMLConfigError(
                f"VSML output_index must be in 0..{self.msg_size - 1}, got {self.output_index}."
            )
        if not self.layers:
            raise VSMLConfigError("VSML needs at least one layer; pass layers=[{'type': 'dense'}].")
        if not isinstance(self.layers[-1], DenseLayer) or self.layers[-1].size is not None:
            raise VSMLConfigError(
                "The last VSML layer must be dense without a size (its outputs are the classes)."
            )
        for layer in self.layers[:-1]:
            if isinstance(layer, DenseLayer) and (layer.size is None or layer.size < 1):
                raise VSMLConfigError("Hidden dense VSML layers need a positive 'size'.")
            if isinstance(layer, ConvLayer) and (
                layer.channels < 1 or layer.kernel_size < 1 or layer.kernel_size % 2 == 0
            ):
                raise VSMLConfigError(
                    "Conv VSML layers need channels >= 1 and an odd kernel_size (SAME padding)."
                )
        if self.tanh_bound < 0:
            raise VSMLConfigError("tanh_bound must be >= 0 (0 switches the soft clip off).")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON types (layers as ``{"type": "dense", ...}`` dicts)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "layers"}
        out["layers"] = [_layer_to_dict(layer) for layer in self.layers]
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> VSMLConfig:
        """The config of a :meth:`to_dict` record, e.g. the ``config`` of a model card."""
        return make_config(**record)

    @property
    def n_rnns(self) -> int:
        n = len(self.layers) if self.layerwise_params else 1
        return 2 * n if (self.backward_pass and self.separate_backward_rnn) else n

    def rnn_name(self, layer: int, backward: bool = False) -> str:
        """Haiku module name of the sub-RNN a layer uses (``sub_rnn``, ``sub_rnn_1``, ...)."""
        n = len(self.layers) if self.layerwise_params else 1
        index = layer if self.layerwise_params else 0
        if backward and self.backward_pass and self.separate_backward_rnn:
            index += n
        return "sub_rnn" if index == 0 else f"sub_rnn_{index}"


def _layer_to_dict(layer: DenseLayer | ConvLayer) -> dict[str, Any]:
    if isinstance(layer, DenseLayer):
        return {"type": "dense"} if layer.size is None else {"type": "dense", "size": layer.size}
    return {
        "type": "conv",
        "channels": layer.channels,
        "kernel_size": layer.kernel_size,
        "stride": layer.stride,
    }


def _layer_from_any(spec: Any) -> DenseLayer | ConvLayer:
    if isinstance(spec, DenseLayer | ConvLayer):
        return spec
    if isinstance(spec, Mapping):
        spec = dict(spec)
        kind = spec.pop("type", "dense")
        try:
            if kind == "dense":
                return DenseLayer(**spec)
            if kind == "conv":
                return ConvLayer(**spec)
        except TypeError as error:
            raise VSMLConfigError(f"Bad VSML layer spec {spec!r}: {error}.") from None
        raise VSMLConfigError(f"Unknown VSML layer type {kind!r}; use 'dense' or 'conv'.")
    raise VSMLConfigError(
        f"A VSML layer spec must be a dict like {{'type': 'dense'}}, got {spec!r}."
    )


@dataclass(frozen=True)
class _LayerShape:
    """Resolved shapes of one layer for a task (static)."""

    kind: str  # "dense" | "conv"
    in_shape: tuple[int, ...]  # leading shape of the incoming forward message
    out_shape: tuple[int, ...]  # leading shape of the incoming backward message
    cell_shape: tuple[int, ...]  # leading shape of h and c
    fan_in: int  # scale of the random cell-state init (the public code's shape[0])
    kernel_size: int = 1
    stride: int = 1


def resolve_layers(config: VSMLConfig, spec: TaskSpec) -> tuple[_LayerShape, ...]:
    """Shapes of every layer for ``spec`` (conv layers need an image input ``[H, W, C]``)."""
    shapes = []
    current: tuple[int, ...] = tuple(spec.input_shape)
    for index, layer in enumerate(config.layers):
        if isinstance(layer, ConvLayer):
            if len(current) == 2:
                current = (*current, 1)
            if len(current) != 3:
                raise VSMLConfigError(
                    f"VSML conv layer {index} needs an image input [H, W, C], got {current}; "
                    "make the env with flatten=False, or use dense layers for tabular data."
                )
            height, width, channels = current
            k, s = layer.kernel_size, layer.stride
            out = (-(-height // s), -(-width // s), layer.channels)
            shapes.append(
                _LayerShape("conv", current, out, (k, k, channels, layer.channels), k, k, s)
            )
            current = out
        else:
            n_in = math.prod(current)
            n_out = spec.n_classes if layer.size is None else layer.size
            shapes.append(_LayerShape("dense", (n_in,), (n_out,), (n_in, n_out), n_in))
            current = (n_out,)
    return tuple(shapes)


# ---------------------------------------------------------------------------------------------
# The fast layer updates.
# ---------------------------------------------------------------------------------------------


def _split_lstm(params: PyTree, msg_size: int) -> tuple[jax.Array, ...]:
    lin = params["custom_lstm"]["linear"]
    w, b = lin["w"], lin["b"]
    return w[:msg_size], w[msg_size : 2 * msg_size], w[2 * msg_size :], b


def _sigmoid(x: jax.Array) -> jax.Array:
    """``σ(x) = (1 + tanh(x/2)) / 2``: the same function, but XLA:CPU's ``logistic`` costs
    several times its ``tanh`` (exp plus a division, fused less well); +4-6% on the forward."""
    return 0.5 + 0.5 * jnp.tanh(0.5 * x)


def _gates(z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    i, g, f, o = jnp.split(z, 4, axis=-1)
    c = _sigmoid(f + FORGET_SHIFT) * c + _sigmoid(i + INPUT_SHIFT) * jnp.tanh(g)
    h = _sigmoid(o) * jnp.tanh(c)
    return h, c


def _head(params: PyTree, name: str, ln_name: str, h: jax.Array, layer_norm: bool) -> jax.Array:
    out = h @ params[name]["w"] + params[name]["b"]
    if layer_norm:
        out = _layer_norm(out, params[ln_name]["scale"], params[ln_name]["offset"])
    return out


def _dense_tick(
    w_h: jax.Array, row: jax.Array, col: jax.Array, h: jax.Array, c: jax.Array
) -> tuple[jax.Array, jax.Array]:
    # Broadcast inside the gate fusion: an [A, B, 4S] drive tensor would go through memory.
    return _gates(h @ w_h + row[:, None, :] + col[None, :, :], c)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def dense_ticks(
    w_h: jax.Array, row: jax.Array, col: jax.Array, h: jax.Array, c: jax.Array, micro_ticks: int
) -> tuple[jax.Array, jax.Array]:
    """``micro_ticks`` LSTM updates of every cell ``(a, b)`` of ``h, c [A, B, S]``, driven by
    ``row [A, 4S]`` and ``col [B, 4S]``.

    The backward pass is written by hand. Per tick, with ``z = h W_h + row_a + col_b``, the gate
    values ``i' = σ(i − 5), g' = tanh g, f' = σ(f + 5), o' = σ(o)`` and ``τ = tanh c'``::

        c̄' = c̄'_out + h̄' o' (1 − τ²)                 c̄ = c̄' f'
        z̄  = [c̄' g' i'(1 − i'), c̄' i'(1 − g'²), c̄' c f'(1 − f'), h̄' τ o'(1 − o')]
        h̄  = z̄ W_hᵀ     W̄_h += Σ_ab hᵀ z̄     row̄_a += Σ_b z̄     col̄_b += Σ_a z̄

    It stores nothing but the inputs and recomputes each tick's gates, and it computes ``z̄``
    once per tick; reverse-mode autodiff of the same loop gave XLA a graph in which the gate
    gradients were recomputed per consumer and transposed before the weight product.
    """
    for _ in range(micro_ticks):
        h, c = _dense_tick(w_h, row, col, h, c)
    return h, c


def _dense_ticks_fwd(w_h, row, col, h, c, micro_ticks):
    return dense_ticks(w_h, row, col, h, c, micro_ticks), (w_h, row, col, h, c)


def _dense_ticks_bwd(micro_ticks, residuals, cotangents):
    w_h, row, col, h, c = residuals
    dh, dc = cotangents
    inputs = [(h, c)]
    for _ in range(micro_ticks - 1):
        inputs.append(_dense_tick(w_h, row, col, *inputs[-1]))
    dw_h, drow, dcol = jnp.zeros_like(w_h), jnp.zeros_like(row), jnp.zeros_like(col)
    for h, c in reversed(inputs):
        i, g, f, o = jnp.split(h @ w_h + row[:, None, :] + col[None, :, :], 4, axis=-1)
        i, g, f, o = _sigmoid(i + INPUT_SHIFT), jnp.tanh(g), _sigmoid(f + FORGET_SHIFT), _sigmoid(o)
        tau = jnp.tanh(f * c + i * g)
        dc = dc + dh * o * (1 - tau * tau)
        # z̄ per gate (i, g, f, o), never concatenated: XLA computed a concatenated z̄ twice
        # (once per layout its readers wanted).
        dz = (
            dc * g * i * (1 - i),
            dc * i * (1 - g * g),
            dc * c * f * (1 - f),
            dh * tau * o * (1 - o),
        )
        dc = dc * f
        dh = sum(dz_k @ w_k.T for dz_k, w_k in zip(dz, jnp.split(w_h, 4, axis=-1), strict=True))
        dw_h = dw_h + jnp.concatenate([jnp.einsum("abk,abg->kg", h, dz_k) for dz_k in dz], -1)
        drow = drow + jnp.concatenate([jnp.sum(dz_k, axis=1) for dz_k in dz], -1)
        dcol = dcol + jnp.concatenate([jnp.sum(dz_k, axis=0) for dz_k in dz], -1)
    return dw_h, drow, dcol, dh, dc


dense_ticks.defvjp(_dense_ticks_fwd, _dense_ticks_bwd)


def dense_update(
    params: PyTree,
    h: jax.Array,
    c: jax.Array,
    fwd_in: jax.Array,
    bwd_in: jax.Array,
    micro_ticks: int,
    layer_norm: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``micro_ticks`` updates of a dense VSML layer with fixed messages.

    Args:
      h, c: ``[A, B, S]`` cell states; fwd_in: ``[A, M]``; bwd_in: ``[B, M]``.
    Returns:
      ``(h, c, fwd_out [B, M], bwd_out [A, M])``: the messages after the last micro tick.
    """
    msg = fwd_in.shape[-1]
    w_fwd, w_bwd, w_h, b = _split_lstm(params, msg)
    # Factored projections: once per input row and once per output column, not per cell.
    row = fwd_in @ w_fwd  # [A, 4S]
    col = bwd_in @ w_bwd + b  # [B, 4S]
    h, c = dense_ticks(w_h, row, col, h, c, micro_ticks)
    if layer_norm:
        # LayerNorm is not linear: the heads must run per cell before the mean.
        fwd_out = jnp.mean(_head(params, "linear", "layer_norm", h, True), axis=0)
        bwd_out = jnp.mean(_head(params, "linear_1", "layer_norm_1", h, True), axis=1)
    else:
        fwd_out = _head(params, "linear", "", jnp.mean(h, axis=0), False)
        bwd_out = _head(params, "linear_1", "", jnp.mean(h, axis=1), False)
    return h, c, fwd_out, bwd_out


def _conv_windows(x: jax.Array, k: int, stride: int, out_hw: tuple[int, int]) -> jax.Array:
    """``[H, W, ...] -> [Ho, Wo, k, k, ...]``: the SAME-padded window each output position reads."""
    pad = k // 2
    padded = jnp.pad(x, ((pad, pad), (pad, pad)) + ((0, 0),) * (x.ndim - 2))
    ho, wo = out_hw
    rows = (jnp.arange(ho) * stride)[:, None] + jnp.arange(k)[None, :]  # [Ho, k]
    cols = (jnp.arange(wo) * stride)[:, None] + jnp.arange(k)[None, :]  # [Wo, k]
    return padded[rows[:, None, :, None], cols[None, :, None, :]]  # [Ho, Wo, k, k, ...]


def conv_update(
    params: PyTree,
    h: jax.Array,
    c: jax.Array,
    fwd_in: jax.Array,
    bwd_in: jax.Array,
    micro_ticks: int,
    stride: int,
    layer_norm: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``micro_ticks`` updates of a conv VSML layer (see :class:`ConvLayer`).

    Args:
      h, c: ``[k, k, I, O, S]``; fwd_in: ``[H, W, I, M]``; bwd_in: ``[Ho, Wo, O, M]``.
    Returns:
      ``(h, c, fwd_out [Ho, Wo, O, M], bwd_out [H, W, I, M])``.
    """
    k = h.shape[0]
    height, width = fwd_in.shape[:2]
    ho, wo = bwd_in.shape[:2]
    msg = fwd_in.shape[-1]
    w_fwd, w_bwd, w_h, b = _split_lstm(params, msg)
    row = _conv_windows(fwd_in @ w_fwd, k, stride, (ho, wo))  # [Ho, Wo, k, k, I, 4S]
    col = bwd_in @ w_bwd + b  # [Ho, Wo, O, 4S]
    drive = row[..., :, None, :] + col[:, :, None, None, None, :, :]  # [Ho,Wo,k,k,I,O,4S]
    for _ in range(micro_ticks):
        # Every position starts from the shared kernel state; the new state is the position mean.
        h_pos, c_pos = _gates(drive + h @ w_h, c)
        h, c = jnp.mean(h_pos, axis=(0, 1)), jnp.mean(c_pos, axis=(0, 1))
    # Messages come from the per-position states of the last micro tick.
    if layer_norm:
        fwd = _head(params, "linear", "layer_norm", h_pos, True)
        fwd_out = jnp.mean(fwd, axis=(2, 3, 4))
        bwd = jnp.mean(_head(params, "linear_1", "layer_norm_1", h_pos, True), axis=5)
    else:
        fwd_out = _head(params, "linear", "", jnp.mean(h_pos, axis=(2, 3, 4)), False)
        bwd = _head(params, "linear_1", "", jnp.mean(h_pos, axis=5), False)
    # bwd: [Ho, Wo, k, k, I, M]; scatter each window slot back onto the input it read.
    pad = k // 2
    acc = jnp.zeros((height + 2 * pad + k * stride, width + 2 * pad + k * stride, *bwd.shape[4:]))
    for u in range(k):
        for v in range(k):
            acc = acc.at[
                u : u + stride * (ho - 1) + 1 : stride, v : v + stride * (wo - 1) + 1 : stride
            ].add(bwd[:, :, u, v])
    bwd_out = acc[pad : pad + height, pad : pad + width] / (k * k)
    return h, c, fwd_out, bwd_out


# ---------------------------------------------------------------------------------------------
# The learner.
# ---------------------------------------------------------------------------------------------


def _layer_params(config: VSMLConfig, meta_params: PyTree, index: int, backward: bool) -> PyTree:
    return meta_params[config.rnn_name(index, backward)]


class LayerState(NamedTuple):
    """One layer's per-stream state: its cells and the messages it will read next tick.

    Shapes for a dense layer ``A → B`` (``S`` state size, ``M`` message size): ``h``, ``c``
    ``[A, B, S]``; ``fwd_in`` ``[A, M]``; ``bwd_in`` ``[B, M]``. A conv layer's cells are
    ``[k, k, I, O, S]`` and its messages carry the image's ``[H, W, ·]`` leading axes.
    """

    h: jax.Array
    c: jax.Array
    fwd_in: jax.Array  # forward messages of the layer's inputs (component 0 of layer 1's: x)
    bwd_in: jax.Array  # backward messages of its outputs (the last layer's: the error)

    def __getitem__(self, key):
        # VSML states were dicts: layer["h"] still reads (with a DeprecationWarning).
        return warn_key_access(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


class VSMLState(NamedTuple):
    """Per-stream VSML state: every layer's cells and messages, and the previous prediction."""

    layers: tuple[LayerState, ...]
    logits: jax.Array  # [C] the previous example's prediction (its error enters this tick)
    has_prev: jax.Array  # bool[]: False until the first prediction, so t = 0 carries no error

    def __getitem__(self, key):
        # VSML states were dicts: state["layers"] still reads (with a DeprecationWarning).
        return warn_key_access(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


def init_state(
    config: VSMLConfig, meta_params: PyTree, key: jax.Array, spec: TaskSpec
) -> VSMLState:
    """Fresh per-stream state: per layer ``h = 0``; ``c``'s first ``⌊S·p⌋`` dims ``TN(±2)/√fan_in``,
    the rest 0; zero messages; zero previous logits."""
    del meta_params  # the initial state does not depend on θ
    layers = []
    keys = jax.random.split(key, len(config.layers))
    n_rand = int(config.state_size * config.init_rand_proportion)
    for layer_key, shape in zip(keys, resolve_layers(config, spec), strict=True):
        rand = _truncated_normal(1.0 / math.sqrt(shape.fan_in))(
            layer_key, (*shape.cell_shape, n_rand)
        )
        zeros = jnp.zeros((*shape.cell_shape, config.state_size - n_rand), jnp.float32)
        layers.append(
            LayerState(
                h=jnp.zeros((*shape.cell_shape, config.state_size), jnp.float32),
                c=jnp.concatenate([rand, zeros], axis=-1),
                fwd_in=jnp.zeros((*shape.in_shape, config.msg_size), jnp.float32),
                bwd_in=jnp.zeros((*shape.out_shape, config.msg_size), jnp.float32),
            )
        )
    return VSMLState(
        layers=tuple(layers),
        logits=jnp.zeros((spec.n_classes,), jnp.float32),
        has_prev=jnp.zeros((), jnp.bool_),
    )


def _tick(
    config: VSMLConfig,
    shapes: tuple[_LayerShape, ...],
    meta_params: PyTree,
    layers: tuple[LayerState, ...],
    error_msg: jax.Array,
    reverse: bool,
) -> tuple[tuple[LayerState, ...], jax.Array]:
    """One tick: every layer runs its micro ticks in order (reverse order for the reverse sweep).

    A layer's new forward message becomes the next layer's incoming one (used in the same
    forward tick); its backward message becomes the previous layer's (used in the same reverse
    sweep, or in the next tick). Returns the new layer states and the last layer's forward message.
    """
    layers = list(layers)
    layers[-1] = layers[-1]._replace(bwd_in=error_msg)
    out = None
    order = range(len(layers) - 1, -1, -1) if reverse else range(len(layers))
    for i in order:
        layer, shape = layers[i], shapes[i]
        params = _layer_params(config, meta_params, i, reverse)
        if shape.kind == "dense":
            h, c, fwd_out, bwd_out = dense_update(
                params,
                layer.h,
                layer.c,
                layer.fwd_in.reshape(-1, config.msg_size),
                layer.bwd_in.reshape(-1, config.msg_size),
                config.micro_ticks,
                config.layer_norm,
            )
        else:
            h, c, fwd_out, bwd_out = conv_update(
                params,
                layer.h,
                layer.c,
                layer.fwd_in,
                layer.bwd_in,
                config.micro_ticks,
                shape.stride,
                config.layer_norm,
            )
        layers[i] = layer._replace(h=h, c=c)
        if i > 0:
            prev = layers[i - 1]
            layers[i - 1] = prev._replace(bwd_in=bwd_out.reshape(prev.bwd_in.shape))
        if i < len(layers) - 1:
            nxt = layers[i + 1]
            layers[i + 1] = nxt._replace(fwd_in=fwd_out.reshape(nxt.fwd_in.shape))
        else:
            out = fwd_out
    return tuple(layers), out


def make_step(config: VSMLConfig, spec: TaskSpec):
    """``step(meta_params, state, obs) -> (state, logits)`` for one stream of ``spec``."""
    shapes = resolve_layers(config, spec)
    n_classes = spec.n_classes
    msg = config.msg_size

    def step(
        meta_params: PyTree, state: VSMLState, obs: Observation
    ) -> tuple[VSMLState, jax.Array]:
        label = jnp.asarray(obs["prev_label"], jnp.int32)
        labelled = jnp.logical_and(state.has_prev, label < n_classes)
        # one_hot of the "none" label n_classes is all zeros.
        onehot = jax.nn.one_hot(label, n_classes, dtype=jnp.float32)
        # Cross-entropy gradient w.r.t. the (tanh-bounded) logits of the previous example.
        error = jnp.where(labelled, jax.nn.softmax(state.logits) - onehot, 0.0)
        error_msg = jnp.zeros((n_classes, msg), jnp.float32).at[:, 0].set(error)
        if config.feed_label:
            error_msg = error_msg.at[:, 1].set(jnp.where(labelled, onehot, 0.0))
        layers = state.layers
        if config.backward_pass:
            # The public code sweeps back right after the forward tick of the previous example;
            # the inputs it sees (layer 1's forward message = x_{t-1}) are still in the state.
            swept, _ = _tick(config, shapes, meta_params, layers, error_msg, reverse=True)
            layers = jax.tree.map(
                lambda new, old: jnp.where(state.has_prev, new, old), swept, layers
            )
            error_msg = jnp.zeros_like(error_msg)
        x = jnp.asarray(obs["x"], jnp.float32).reshape(shapes[0].in_shape)
        fwd_in = jnp.zeros((*shapes[0].in_shape, msg), jnp.float32).at[..., 0].set(x)
        layers = (layers[0]._replace(fwd_in=fwd_in), *layers[1:])
        layers, out = _tick(config, shapes, meta_params, layers, error_msg, reverse=False)
        logits = out[:, config.output_index]
        if config.tanh_bound:
            logits = config.tanh_bound * jnp.tanh(logits / config.tanh_bound)
        return VSMLState(layers, logits, has_prev=jnp.ones((), jnp.bool_)), logits

    if config.remat:
        # Under jax.grad over a scanned stream, keep only the step's inputs and recompute the
        # micro ticks on the way back: memory O(T × state) instead of O(T × micro ticks × gates).
        step = jax.checkpoint(step, prevent_cse=False)
    return step


def meta_init(config: VSMLConfig, key: jax.Array, spec: TaskSpec | None = None) -> PyTree:
    """Fresh meta-parameters ``θ`` (Haiku's init: ``w ~ TN(±2)/√fan_in``, ``b = 0``)."""
    del spec  # θ does not depend on the task
    module = SubRNN(config.state_size, config.msg_size, config.layer_norm)
    m, s = jnp.zeros((config.msg_size,)), jnp.zeros((config.state_size,))
    names = [config.rnn_name(0)]
    for i in range(len(config.layers)):
        for backward in (False, True):
            name = config.rnn_name(i, backward)
            if name not in names:
                names.append(name)
    keys = jax.random.split(key, len(names))
    return {name: module.init(k, m, m, s, s)["params"] for name, k in zip(names, keys, strict=True)}


def meta_params_from_haiku(params: Mapping[str, Mapping[str, Any]]) -> PyTree:
    """Convert public-code Haiku params to this layout.

    Haiku names modules ``vsml_rnn/~/sub_rnn/~/custom_lstm/linear`` (``/~/``: built in a
    constructor, ``/``: built in a call); everything from the ``sub_rnn*`` part on becomes the
    nested path here, so ``{"w", "b"}`` land at ``out["sub_rnn"]["custom_lstm"]["linear"]``.
    """
    out: dict[str, Any] = {}
    for full_name, leaves in params.items():
        path = full_name.replace("/~/", "/").split("/")
        start = next((i for i, part in enumerate(path) if part.startswith("sub_rnn")), None)
        if start is None:
            continue
        node = out
        for part in path[start:]:
            node = node.setdefault(part, {})
        node.update({k: jnp.asarray(v, jnp.float32) for k, v in leaves.items()})
    return out


def count_meta_params(meta_params: PyTree) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(meta_params)))


_DESCRIPTION = (
    "VSML: every weight a tiny shared LSTM, learning by forward message passing (Kirsch & "
    "Schmidhuber 2021)"
)


def make_config(**config: Any) -> VSMLConfig:
    """Build a :class:`VSMLConfig` from keyword options (``layers`` as dicts or layer objects)."""
    known = set(VSMLConfig.__dataclass_fields__)
    unknown = sorted(set(config) - known)
    if unknown:
        raise VSMLConfigError(
            f"Unknown VSML option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."
        )
    if "layers" in config:
        config["layers"] = tuple(_layer_from_any(spec) for spec in config["layers"])
    return VSMLConfig(**config)


def vsml(pretrained: str | None = None, **config: Any) -> Learner:
    """The VSML learner. Options: see :class:`VSMLConfig`; ``pretrained="mnist"`` loads shipped θ.

    One meta-parameter set runs on any input shape and class count (``TaskSpec``).
    """
    meta_params = None
    trained_on: tuple[str, ...] = ()
    if pretrained is not None:
        from vsml_bench.agents import pretrained as shipped

        meta_params, card = shipped.load(pretrained)
        card_config = dict(card.get("config", {}) or {})
        for key, value in card_config.items():
            config.setdefault(key, value)
        trained_on = tuple(card.get("meta_trained_on", card.get("datasets", ())))
    cfg = make_config(**config)
    steps: dict[TaskSpec, Any] = {}

    def _step_for(spec: TaskSpec):
        if spec not in steps:
            steps[spec] = make_step(cfg, spec)
        return steps[spec]

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> VSMLState:
        return init_state(cfg, meta_params, key, spec)

    def step(
        meta_params: PyTree, state: VSMLState, obs: Observation
    ) -> tuple[VSMLState, jax.Array]:
        spec = _spec_from_state(cfg, state)
        return _step_for(spec)(meta_params, state, obs)

    out_config = cfg.to_dict()
    if pretrained is not None:
        out_config["pretrained"] = pretrained
    return Learner(
        name="vsml",
        meta_init=lambda key, spec: meta_init(cfg, key, spec),
        init=init,
        step=step,
        config=out_config,
        description=_DESCRIPTION,
        has_meta_params=True,
        meta_trained_on=trained_on,
        meta_params=meta_params,
    )


def _spec_from_state(config: VSMLConfig, state: VSMLState) -> TaskSpec:
    """Recover the (static) task shape from the state's array shapes, so ``step`` needs no spec."""
    first = state.layers[0].fwd_in
    n_classes = state.logits.shape[-1]
    return TaskSpec(tuple(first.shape[:-1]), n_classes)
