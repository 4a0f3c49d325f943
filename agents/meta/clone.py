"""Learning-algorithm cloning (VSML paper §3.2): supervise VSML's sub-RNNs to run backprop.

The network being cloned. Each dense layer ``l`` maps its input ``x ∈ ℝ^A`` to ``y ∈ ℝ^B``;
cell ``(a, b)`` of the VSML layer stands for the weight ``s_ab`` and the bias ``β_ab``, which it
keeps in two fixed components of its LSTM cell state (the readout, fixed, not learned)::

    s_ab = c_ab[0]            (a component of c's random half: the usual random weight init)
    β_ab = ρ u_ab,  u_ab = c_ab[S/2],  ρ = η_β / η
                              (the first component of c's zero half: biases start at 0)

and, because VSML's forward message out of a layer is the *mean* over its inputs, the layer is

.. math::

    y_b = \\frac{1}{A}\\sum_a κ\\,\\bigl(\\tanh(x_a)\\, s_{ab} + β_{ab}\\bigr),

i.e. ``y = tanh(x) W + B`` with ``W = κ s / A`` and ``B = κ mean_a β``; the logits are the last
layer's ``y``. The cloned learning rule is backprop with a tanh on every layer's input. With
``δ_b`` the error arriving at output ``b`` (for the last layer, ``softmax(ŷ) − onehot(y)`` of the
previous example, as VSML computes it), every cell is to

.. math::

    \\text{forward: } & m^{\\rightarrow}_{ab} = κ\\,(\\tanh(x_a)\\, s_{ab} + β_{ab})
        \\qquad(\\text{component 0; the others } 0) \\\\
    \\text{backward: } & m^{\\leftarrow}_{ab} = κ_δ\\, δ_b\\, s_{ab}\\, (1 - \\tanh^2 x_a),
        \\quad Δs_{ab} = -η \\tanh(x_a)\\, δ_b, \\quad Δu_{ab} = -η\\, δ_b

(``Δβ = ρ Δu = -η_β δ``: the bias is stored ``1/ρ`` times larger than it acts, so that its
component changes as much per step as the weight's and both are cloned to the same precision)

so the error handed to the layer below is ``δ_a = mean_b m^←_ab``. This is exact backprop of the
cross-entropy with one learning rate per layer and parameter kind: for the last layer
``Δs = -(ηA/κ) ∂L/∂s`` and, for its bias ``b = mean_a β``, ``Δb = -(η_β/κ) ∂L/∂b``; the error
it hands down is ``λ = κ_δ A / (κ B)`` times ``∂L/∂x`` (``A, B`` its fan-in and fan-out), so the
layer below runs SGD with both rates scaled by ``λ`` (:func:`effective_sgd_rates`;
:func:`backprop_learner` runs these very equations, and its tests check them against
``jax.grad``). Defaults (:class:`BackpropRule`): ``κ = 128, κ_δ = 1, η = 0.03, η_β = 0.001``.

How VSML is asked to do it. The learner runs with ``backward_pass=True`` and
``separate_backward_rnn=True``: per example, a reverse sweep by the *backward* sub-RNN
(``sub_rnn_1``) sees each layer's stored input ``x_{t-1}`` and the error ``δ_{t-1}`` and must apply
``Δs, Δβ`` and emit ``m^←``; then the forward tick by the *forward* sub-RNN (``sub_rnn``) sees
``x_t`` (and, in hidden layers, the stale error of the sweep) and must emit ``m^→`` while leaving
``s, β`` unchanged. The prediction is component 0 of the last layer's forward message
(``output_index=0``). After cloning, the normal VSML learner with this config runs forward-only.

The cloning loss (teacher forcing: targets are computed from each cell's *own* current ``s, β``
and the messages it actually receives, under ``stop_gradient``), summed over the terms and
averaged over cells and the ``T`` examples of a stream of random inputs ``x ~ U(-3, 3)`` and
random errors ``δ = softmax(z) − onehot(y)``, ``z ~ N(0, σ_z²)``:

.. math::

    \\mathcal L = \\mathbb E\\Big[
      \\big(\\tfrac{m^{\\rightarrow}_0 - \\hat m^{\\rightarrow}}{κ}\\big)^2
      + \\big\\|\\tfrac{m^{\\rightarrow}_{1:}}{κ}\\big\\|^2
      + \\big(\\tfrac{Δc_0 - \\hat{Δs}}{η}\\big)^2 + \\big(\\tfrac{Δc_{S/2} - \\hat{Δu}}{η}\\big)^2
      + \\big(\\tfrac{m^{\\leftarrow}_0 - \\hat m^{\\leftarrow}}{κ_δ}\\big)^2
      + \\big\\|\\tfrac{m^{\\leftarrow}_{1:}}{κ_δ}\\big\\|^2
      + \\big(\\tfrac{Δc_0}{η}\\big)^2_{\\text{fwd}} + \\big(\\tfrac{Δc_{S/2}}{η}\\big)^2_{\\text{fwd}}
    \\Big]

(``Δc`` over the sweep, resp. over the forward tick for the last two terms; each term may be
weighted, :func:`weighted_loss`, e.g. the first one up to sharpen the forward pass). Shallow
(``A → C``) and deep (``A → H → C``) networks are two task groups of one :class:`Objective`; in
the deep one the hidden layer's inputs and errors are the VSML's own messages. Half of the
streams start from stored weights spread over ``U(-w_max, w_max)`` (and bias components ``u``
over ``U(-b_max, b_max)``), so that the rule is cloned over the range a long stream reaches.

Two phases. Adam on this loss from a fresh ``θ`` stalls with the update ``Δs`` cloned for
negative inputs only (likely because an input gate in ``(0, 1)`` times a value linear in ``δ``
has a ``δ``-slope of one sign, so the sign flip with ``x`` takes a circuit over both micro
ticks). The shipped 2,000-step clone sat on that plateau: held-out ``dw`` term 0.050 where a
cell that changes nothing scores about 0.1, slope of ``Δs`` on its target 0.74 for ``x < 0``
and -0.05 for ``x > 0`` (:func:`update_slopes`), so on MNIST the inked pixels (all ``x > 0``)
learnt at about 5% of the rule's rate. On streams of two examples (one sweep from fresh cells)
the same loss leaves the plateau within about 700 steps (``dw`` 5e-4, both slopes 1.0), and
the long streams trained on afterwards keep both halves. So cloning starts with
:func:`prefit` (:class:`Prefit`).

Scale. Message sizes of ``κ ≈ 10²`` are far from the ``O(1)`` scale of a fresh head, and Adam
moves a parameter by about its learning rate per step; so the trainable parameters ``θ'`` hold
the two message heads divided by ``κ`` and ``κ_δ``, and :func:`deployed_meta_params` multiplies
them back (a reparametrisation: the heads get ``κ``-times larger meta-learning steps). Only
``deployed_meta_params(θ')`` is ever run as the learner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp

from vsml_bench.agents import vsml
from vsml_bench.agents.meta.objective import Objective, TaskGroup
from vsml_bench.protocol import Learner, Observation, PyTree, TaskSpec


@dataclass(frozen=True)
class BackpropRule:
    """The constants of the cloned rule (module docstring): ``κ, κ_δ, η, η_β`` and the readout.

    The defaults were chosen by running :func:`backprop_learner` on streams of the MNIST
    *train* split (2,000 examples, 784 px; 8 streams per setting): a late-stream accuracy near
    its best there (κ 32-128, η 0.01-0.3, η_β 0-0.01, κ_δ 1-128 tried), while the stored
    weights stay within about ``±1.5``, inside an LSTM cell's comfortable range.
    """

    weight_scale: float = 128.0  # κ
    error_scale: float = 1.0  # κ_δ
    learning_rate: float = 0.03  # η
    bias_learning_rate: float = 0.001  # η_β
    weight_index: int = 0
    bias_index: int | None = None  # None: state_size // 2, the first zero-initialised component

    def bias_component(self, state_size: int) -> int:
        return state_size // 2 if self.bias_index is None else self.bias_index

    @property
    def bias_readout(self) -> float:
        """``ρ = η_β / η``: the bias is ``β = ρ c[S/2]``, so that its component changes by
        ``-η δ``, as much as the weight's does (equal precision for both updates)."""
        return self.bias_learning_rate / self.learning_rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clone_config(hidden: int | None = None, **options: Any) -> vsml.VSMLConfig:
    """The VSML config that runs a cloned rule: reverse sweep by its own sub-RNN, output 0.

    ``hidden``: size of one hidden dense layer (the deep network); None: one layer.
    """
    layers = [{"type": "dense"}] if not hidden else [{"type": "dense", "size": int(hidden)}, {}]
    defaults = {
        "backward_pass": True,
        "separate_backward_rnn": True,
        "output_index": 0,
        "layers": layers,
    }
    return vsml.make_config(**{**defaults, **options})


def deployed_meta_params(trainable: PyTree, rule: BackpropRule) -> PyTree:
    """``θ' → θ``: the forward sub-RNN's forward head times ``κ``, the backward sub-RNN's
    backward head times ``κ_δ`` (everything else as is)."""

    def scaled(module: dict, head: str, factor: float) -> dict:
        return {**module, head: jax.tree.map(lambda a: a * factor, module[head])}

    out = dict(trainable)
    out["sub_rnn"] = scaled(out["sub_rnn"], "linear", rule.weight_scale)
    out["sub_rnn_1"] = scaled(out["sub_rnn_1"], "linear_1", rule.error_scale)
    return out


def trainable_meta_params(deployed: PyTree, rule: BackpropRule) -> PyTree:
    """The inverse of :func:`deployed_meta_params`."""
    inverse = BackpropRule(1.0 / rule.weight_scale, 1.0 / rule.error_scale)
    return deployed_meta_params(deployed, inverse)


def backprop_targets(
    rule: BackpropRule, x: jax.Array, delta: jax.Array, s: jax.Array, u: jax.Array
) -> dict[str, jax.Array]:
    """What every cell ``(a, b)`` of a layer should compute (module docstring).

    Args:
      x: ``[A]`` the layer's inputs (component 0 of its forward message in).
      delta: ``[B]`` the errors at its outputs (component 0 of its backward message in).
      s, u: ``[A, B]`` the stored weights and bias components (the bias is ``ρ u``).
    Returns:
      ``{"forward": κ (tanh(x) s + ρ u), "backward": κ_δ δ s (1 − tanh² x),
      "dw": −η tanh(x) δ, "du": −η δ}``, each ``[A, B]``.
    """
    t = jnp.tanh(x)[:, None]
    d = delta[None, :]
    return {
        "forward": rule.weight_scale * (t * s + rule.bias_readout * u),
        "backward": rule.error_scale * d * s * (1.0 - t * t),
        "dw": -rule.learning_rate * t * d,
        "du": -rule.learning_rate * jnp.broadcast_to(d, s.shape),
    }


# ---------------------------------------------------------------------------------------------
# The VSML layers, run as the learner runs them, with every cell's messages and changes exposed.
# ---------------------------------------------------------------------------------------------

_TERMS = (
    "forward",
    "forward_rest",
    "dw",
    "db",
    "backward",
    "backward_rest",
    "keep_w",
    "keep_b",
)


def _msq(a: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(a))


def layer_dicts(state: Any) -> tuple[dict, ...]:
    """The layers of a VSML state (from :func:`vsml.init_state`) as plain dicts
    ``{"h", "c", "fwd_in", "bwd_in"}``: the form :func:`sweep` and :func:`forward` pass on."""
    layers = state.layers if hasattr(state, "layers") else state["layers"]
    return tuple(
        dict(layer._asdict()) if hasattr(layer, "_asdict") else dict(layer) for layer in layers
    )


def _cells(
    params: PyTree, config: vsml.VSMLConfig, layer: dict, head: str
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One layer's micro ticks: ``(h, c, fwd_out, bwd_out, per-cell head output [A, B, M])``."""
    msg = config.msg_size
    h, c, fwd_out, bwd_out = vsml.dense_update(
        params,
        layer["h"],
        layer["c"],
        layer["fwd_in"].reshape(-1, msg),
        layer["bwd_in"].reshape(-1, msg),
        config.micro_ticks,
        config.layer_norm,
    )
    per_cell = h @ params[head]["w"] + params[head]["b"]
    return h, c, fwd_out, bwd_out, per_cell


def sweep(
    config: vsml.VSMLConfig,
    rule: BackpropRule,
    meta_params: PyTree,
    layers: tuple[dict, ...],
    error: jax.Array,
) -> tuple[tuple[dict, ...], dict[str, jax.Array]]:
    """The reverse sweep of one example (as :func:`vsml.make_step` runs it) and its loss terms.

    ``error``: ``[C]`` the last layer's error. Returns the new layers and, per term, the mean
    squared normalised deviation summed over layers.
    """
    layers = list(layers)
    msg = config.msg_size
    layers[-1] = {**layers[-1], "bwd_in": jnp.zeros((error.shape[0], msg)).at[:, 0].set(error)}
    w_i, b_i = rule.weight_index, rule.bias_component(config.state_size)
    terms = {k: jnp.zeros(()) for k in ("dw", "db", "backward", "backward_rest")}
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i] = dict(layers[i])
        params = meta_params[config.rnn_name(i, backward=True)]
        c_old = layer["c"]
        h, c, fwd_out, bwd_out, per_cell = _cells(params, config, layer, "linear_1")
        target = jax.lax.stop_gradient(
            backprop_targets(
                rule, layer["fwd_in"][:, 0], layer["bwd_in"][:, 0], c_old[..., w_i], c_old[..., b_i]
            )
        )
        terms["dw"] += _msq((c[..., w_i] - c_old[..., w_i] - target["dw"]) / rule.learning_rate)
        terms["db"] += _msq((c[..., b_i] - c_old[..., b_i] - target["du"]) / rule.learning_rate)
        terms["backward"] += _msq((per_cell[..., 0] - target["backward"]) / rule.error_scale)
        terms["backward_rest"] += _msq(per_cell[..., 1:] / rule.error_scale)
        layer["h"], layer["c"] = h, c
        if i > 0:
            layers[i - 1] = {**layers[i - 1], "bwd_in": bwd_out}
        if i < len(layers) - 1:
            layers[i + 1] = {**layers[i + 1], "fwd_in": fwd_out}
    return tuple(layers), terms


def forward(
    config: vsml.VSMLConfig,
    rule: BackpropRule,
    meta_params: PyTree,
    layers: tuple[dict, ...],
    x: jax.Array,
) -> tuple[tuple[dict, ...], jax.Array, dict[str, jax.Array]]:
    """The forward tick of one example (the error is consumed by the sweep: zero here).

    Returns the new layers, the last layer's forward message ``[C, M]`` and the loss terms.
    """
    layers = list(layers)
    msg = config.msg_size
    layers[0] = {**layers[0], "fwd_in": jnp.zeros((x.shape[0], msg)).at[:, 0].set(x)}
    layers[-1] = {**layers[-1], "bwd_in": jnp.zeros_like(layers[-1]["bwd_in"])}
    w_i, b_i = rule.weight_index, rule.bias_component(config.state_size)
    terms = {k: jnp.zeros(()) for k in ("forward", "forward_rest", "keep_w", "keep_b")}
    out = None
    for i in range(len(layers)):
        layer = layers[i] = dict(layers[i])
        params = meta_params[config.rnn_name(i)]
        c_old = layer["c"]
        h, c, fwd_out, bwd_out, per_cell = _cells(params, config, layer, "linear")
        x_in, zero = layer["fwd_in"][:, 0], jnp.zeros(c_old.shape[1])
        fwd_target = jax.lax.stop_gradient(
            backprop_targets(rule, x_in, zero, c_old[..., w_i], c_old[..., b_i])["forward"]
        )
        terms["forward"] += _msq((per_cell[..., 0] - fwd_target) / rule.weight_scale)
        terms["forward_rest"] += _msq(per_cell[..., 1:] / rule.weight_scale)
        terms["keep_w"] += _msq((c[..., w_i] - c_old[..., w_i]) / rule.learning_rate)
        terms["keep_b"] += _msq((c[..., b_i] - c_old[..., b_i]) / rule.learning_rate)
        layer["h"], layer["c"] = h, c
        if i > 0:
            layers[i - 1] = {**layers[i - 1], "bwd_in": bwd_out}
        if i < len(layers) - 1:
            layers[i + 1] = {**layers[i + 1], "fwd_in": fwd_out}
        else:
            out = fwd_out
    return tuple(layers), out, terms


@dataclass(frozen=True)
class CloneTask:
    """One family of cloning streams: a network shape and the random stream it sees.

    Attributes:
      input_size, n_classes: ``A`` and ``C``; hidden: the hidden layer's size (None: shallow).
      stream_length: ``T`` examples, backpropagated through.
      input_range: inputs ``x ~ U(-r, r)``.
      max_logit_scale: errors use ``z ~ N(0, σ_z²)`` with ``σ_z ~ U(0, this)`` per stream.
      weight_range, bias_range: ``w_max, b_max`` of the spread initial weights and biases.
      spread_fraction: fraction of streams that start from the spread weights.
    """

    input_size: int = 16
    n_classes: int = 6
    hidden: int | None = None
    stream_length: int = 16
    input_range: float = 3.0
    max_logit_scale: float = 5.0
    weight_range: float = 1.0
    bias_range: float = 0.3
    spread_fraction: float = 0.5

    @property
    def name(self) -> str:
        sizes = [self.input_size, *([self.hidden] if self.hidden else []), self.n_classes]
        return ("deep " if self.hidden else "shallow ") + "-".join(map(str, sizes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _spread_init(
    layers: tuple[dict, ...], key: jax.Array, task: CloneTask, rule: BackpropRule, state_size: int
) -> tuple[dict, ...]:
    """With probability ``spread_fraction``, replace the stored weights and biases by spread
    ones (the same draw decides for every layer of the stream)."""
    w_i, b_i = rule.weight_index, rule.bias_component(state_size)
    use_key, *layer_keys = jax.random.split(key, 1 + len(layers))
    spread = jax.random.uniform(use_key) < task.spread_fraction
    out = []
    for layer, layer_key in zip(layers, layer_keys, strict=True):
        c = layer["c"]
        kw, kb = jax.random.split(layer_key)
        w = jax.random.uniform(
            kw, c.shape[:-1], minval=-task.weight_range, maxval=task.weight_range
        )
        b = jax.random.uniform(kb, c.shape[:-1], minval=-task.bias_range, maxval=task.bias_range)
        c = c.at[..., w_i].set(jnp.where(spread, w, c[..., w_i]))
        c = c.at[..., b_i].set(jnp.where(spread, b, c[..., b_i]))
        out.append({**layer, "c": c})
    return tuple(out)


def random_stream(task: CloneTask, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(x [T, A], error [T, C])``: uniform inputs and softmax-minus-one-hot errors."""
    kx, kz, ks, ky = jax.random.split(key, 4)
    xs = jax.random.uniform(
        kx, (task.stream_length, task.input_size), minval=-task.input_range, maxval=task.input_range
    )
    scale = jax.random.uniform(ks, (), maxval=task.max_logit_scale)
    z = scale * jax.random.normal(kz, (task.stream_length, task.n_classes))
    labels = jax.random.randint(ky, (task.stream_length,), 0, task.n_classes)
    errors = jax.nn.softmax(z) - jax.nn.one_hot(labels, task.n_classes)
    return xs, errors


def clone_terms(
    config: vsml.VSMLConfig,
    rule: BackpropRule,
    meta_params: PyTree,
    layers: tuple[dict, ...],
    xs: jax.Array,
    errors: jax.Array,
) -> dict[str, jax.Array]:
    """Every loss term averaged over a stream: per example ``t`` the sweep with ``errors[t-1]``
    (the error of ``x_{t-1}``; none at ``t = 0``) and a forward tick on ``x_t``.
    ``meta_params`` are the deployed ones."""

    def example(layers, inputs):
        t, x, error = inputs
        swept, sweep_terms = sweep(config, rule, meta_params, layers, error)
        # As in the learner, there is no sweep before the first example (computed and dropped:
        # one program for every step compiles in half the time of a separate first step).
        has_prev = t > 0
        layers = jax.tree.map(lambda new, old: jnp.where(has_prev, new, old), swept, layers)
        layers, _, forward_terms = forward(config, rule, meta_params, layers, x)
        sweep_terms = {k: jnp.where(has_prev, v, 0.0) for k, v in sweep_terms.items()}
        return layers, {**sweep_terms, **forward_terms}

    example = jax.checkpoint(example, prevent_cse=False) if config.remat else example
    n = xs.shape[0]
    previous_errors = jnp.concatenate([jnp.zeros_like(errors[:1]), errors[:-1]])
    _, per_example = jax.lax.scan(example, layers, (jnp.arange(n), xs, previous_errors))
    sweeps = ("dw", "db", "backward", "backward_rest")
    return {k: jnp.sum(v) / (max(n - 1, 1) if k in sweeps else n) for k, v in per_example.items()}


def clone_loss_terms(
    task: CloneTask, rule: BackpropRule, config: vsml.VSMLConfig, trainable: PyTree, key: jax.Array
) -> dict[str, jax.Array]:
    """The terms of the cloning loss of one random stream of ``task`` (trainable ``θ'``)."""
    meta_params = deployed_meta_params(trainable, rule)
    init_key, spread_key, stream_key = jax.random.split(key, 3)
    spec = TaskSpec((task.input_size,), task.n_classes)
    state = vsml.init_state(config, meta_params, init_key, spec)
    layers = _spread_init(layer_dicts(state), spread_key, task, rule, config.state_size)
    xs, errors = random_stream(task, stream_key)
    return clone_terms(config, rule, meta_params, layers, xs, errors)


def weighted_loss(
    terms: Mapping[str, jax.Array], weights: Mapping[str, float] | None = None
) -> jax.Array:
    """``Σ_k w_k term_k`` over the loss terms (``w_k = 1`` for a term ``weights`` omits)."""
    weights = weights or {}
    unknown = sorted(set(weights) - set(_TERMS))
    if unknown:
        raise ValueError(f"no cloning loss term named {unknown}; the terms are {list(_TERMS)}")
    return sum(weights.get(k, 1.0) * terms[k] for k in _TERMS)


def clone_objective(
    tasks: tuple[CloneTask, ...],
    rule: BackpropRule,
    vsml_options: dict[str, Any] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Objective:
    """An :class:`Objective` with one group per task family, equal shares; each loss is the
    :func:`weighted_loss` of the terms of :func:`clone_loss_terms`."""
    groups = []
    for task in tasks:
        config = clone_config(task.hidden, **(vsml_options or {}))

        def loss_fn(trainable, key, data, task=task, config=config):
            del data
            return weighted_loss(clone_loss_terms(task, rule, config, trainable, key), weights)

        groups.append(TaskGroup(task.name, loss_fn, 1.0, None))
    return Objective(tuple(groups))


def held_out_terms(
    tasks: tuple[CloneTask, ...],
    rule: BackpropRule,
    trainable: PyTree,
    key: jax.Array,
    n_streams: int,
    vsml_options: dict[str, Any] | None = None,
) -> dict[str, jax.Array]:
    """Mean loss terms over ``n_streams`` fixed streams per task family (``key`` fixed by the
    caller, so that the numbers compare across steps), plus their sum ``"loss"``."""
    out: dict[str, jax.Array] = {}
    for index, task in enumerate(tasks):
        config = clone_config(task.hidden, **(vsml_options or {}))
        keys = jax.random.split(jax.random.fold_in(key, index), n_streams)
        terms = jax.vmap(lambda k, c=config, t=task: clone_loss_terms(t, rule, c, trainable, k))(
            keys
        )
        for name, value in terms.items():
            out[name] = out.get(name, 0.0) + jnp.mean(value) / len(tasks)
    out["loss"] = weighted_loss(out)
    return out


@dataclass(frozen=True)
class Prefit:
    """Phase 0 of cloning: ``steps`` Adam steps (global-norm clip 1) on ``n_tasks`` streams of
    ``stream_length`` examples of the shallow task families (the update rule is the same per cell
    in every layer, and the shallow streams cost half). 0 steps: no phase 0."""

    steps: int = 1500
    n_tasks: int = 32
    learning_rate: float = 0.003
    stream_length: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prefit(
    trainable: PyTree,
    tasks: tuple[CloneTask, ...],
    rule: BackpropRule,
    key: jax.Array,
    settings: Prefit,
    vsml_options: dict[str, Any] | None = None,
) -> tuple[PyTree, dict[str, float]]:
    """Phase 0 (module docstring): ``θ'`` after ``settings.steps`` steps on short streams of the
    shallow families of ``tasks``, and ``{"loss_first", "loss_last"}`` (mean training loss of the
    first and the last tenth of the steps)."""
    import optax

    from vsml_bench.agents.meta.bptt import bptt_gradient, bptt_optimizer

    short = tuple(
        CloneTask(**{**t.to_dict(), "stream_length": settings.stream_length})
        for t in tasks
        if not t.hidden
    )
    if not short:
        raise ValueError("prefit needs at least one shallow task family (hidden=None)")
    objective = clone_objective(short, rule, vsml_options)
    optimizer = bptt_optimizer(settings.learning_rate, 1.0)

    @jax.jit
    def step(theta, opt_state, step_key):
        loss, grad = bptt_gradient(objective, theta, step_key, n_tasks=settings.n_tasks)
        updates, opt_state = optimizer.update(grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, loss

    theta = jax.tree.map(jnp.asarray, trainable)
    opt_state = optimizer.init(theta)
    losses = []
    for t in range(settings.steps):
        theta, opt_state, loss = step(theta, opt_state, jax.random.fold_in(key, t))
        losses.append(loss)
    tenth = max(1, settings.steps // 10)
    summary = (
        {
            "loss_first": float(jnp.mean(jnp.stack(losses[:tenth]))),
            "loss_last": float(jnp.mean(jnp.stack(losses[-tenth:]))),
        }
        if losses
        else {}
    )
    return theta, summary


def update_slopes(
    meta_params: PyTree,
    rule: BackpropRule,
    key: jax.Array,
    input_size: int = 24,
    n_classes: int = 6,
    n_layers: int = 16,
    vsml_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """How much of the update rule a clone applies, by the sign of the input (deployed ``θ``).

    Fresh cells of ``n_layers`` shallow layers see a forward tick on ``x ~ U(-3, 3)`` and one
    sweep with random errors (as :func:`random_stream` draws them); returns the least-squares
    slope of the change of ``c[..., weight_index]`` on its target ``-η tanh(x) δ`` over the cells
    with ``x < 0`` (``"negative"``) and ``x > 0`` (``"positive"``): 1 for the exact rule, 0 for
    a cell that ignores those inputs.
    """
    config = clone_config(**(vsml_options or {}))
    task = CloneTask(input_size, n_classes, None, stream_length=1)
    spec = TaskSpec((input_size,), n_classes)

    def one(layer_key):
        init_key, stream_key = jax.random.split(layer_key)
        layers = layer_dicts(vsml.init_state(config, meta_params, init_key, spec))
        xs, errors = random_stream(task, stream_key)
        layers, _, _ = forward(config, rule, meta_params, layers, xs[0])
        swept, _ = sweep(config, rule, meta_params, layers, errors[0])
        w = rule.weight_index
        change = swept[0]["c"][..., w] - layers[0]["c"][..., w]
        target = -rule.learning_rate * jnp.tanh(xs[0])[:, None] * errors[0][None, :]
        return change, target, jnp.broadcast_to(xs[0][:, None], change.shape)

    change, target, x = jax.jit(jax.vmap(one))(jax.random.split(key, n_layers))

    def slope(mask):
        return float(jnp.sum(mask * change * target) / jnp.sum(mask * target * target))

    return {"negative": slope(x < 0), "positive": slope(x > 0)}


# ---------------------------------------------------------------------------------------------
# The rule itself, as a learner: exact backprop that the clone is compared with.
# ---------------------------------------------------------------------------------------------


def backprop_learner(
    rule: BackpropRule | None = None, hidden: int | None = None, state_size: int = 16
) -> Learner:
    """Online backprop of the network of the module docstring, batch 1 (the clone's teacher).

    Per step: the error of the previous example ``δ = softmax(ŷ_{t-1}) − onehot(y_{t-1})``
    updates every layer from the top, ``Δs = -η tanh(x) δᵀ``, ``Δu = -η δ`` (the state's ``"b"``
    holds the bias components ``u`` of the outputs, the bias is ``ρ u``), and is passed
    down as ``δ_a = mean_b κ_δ δ_b s_ab (1 − tanh² x_a)`` (with the layer's weights before its
    update); then ``x_t`` is predicted. The initial weights are those a VSML learner with
    :func:`clone_config` stores in ``c[..., 0]`` for the same key (so, run on the same streams,
    the clone and its teacher start from identical weights); biases start at 0.
    """
    rule = rule or BackpropRule()
    config = clone_config(hidden, state_size=state_size)

    def sizes(spec: TaskSpec) -> list[int]:
        return [spec.input_size, *([hidden] if hidden else []), spec.n_classes]

    def init(meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> PyTree:
        del meta_params
        state = vsml.init_state(config, {}, key, TaskSpec((spec.input_size,), spec.n_classes))
        weights = tuple(layer["c"][..., rule.weight_index] for layer in layer_dicts(state))
        dims = sizes(spec)
        return {
            "w": weights,
            "b": tuple(jnp.zeros((n,), jnp.float32) for n in dims[1:]),
            "inputs": tuple(jnp.zeros((n,), jnp.float32) for n in dims[:-1]),
            "logits": jnp.zeros((spec.n_classes,), jnp.float32),
            "has_prev": jnp.zeros((), jnp.bool_),
        }

    def step(meta_params: PyTree, state: PyTree, obs: Observation) -> tuple[PyTree, jax.Array]:
        del meta_params
        n_classes = state["logits"].shape[0]
        label = jnp.asarray(obs["prev_label"], jnp.int32)
        labelled = state["has_prev"] & (label < n_classes)
        onehot = jax.nn.one_hot(label, n_classes, dtype=jnp.float32)
        delta = jnp.where(labelled, jax.nn.softmax(state["logits"]) - onehot, 0.0)
        weights, biases = list(state["w"]), list(state["b"])
        for i in range(len(weights) - 1, -1, -1):
            target = backprop_targets(rule, state["inputs"][i], delta, weights[i], biases[i])
            delta = jnp.mean(target["backward"], axis=1)
            weights[i] = weights[i] + target["dw"]
            biases[i] = biases[i] + target["du"][0]
        x = jnp.reshape(jnp.asarray(obs["x"], jnp.float32), (-1,))
        inputs = []
        for w, b in zip(weights, biases, strict=True):
            inputs.append(x)
            x = jnp.mean(backprop_targets(rule, x, jnp.zeros_like(b), w, b)["forward"], axis=0)
        logits = 100.0 * jnp.tanh(x / 100.0)  # VSML's soft clip, so the errors match
        return {
            "w": tuple(weights),
            "b": tuple(biases),
            "inputs": tuple(inputs),
            "logits": logits,
            "has_prev": jnp.ones((), jnp.bool_),
        }, logits

    kind = f"{hidden}-unit hidden layer" if hidden else "one layer"
    return Learner(
        name="backprop_clone_teacher",
        meta_init=lambda key, spec: {},
        init=init,
        step=step,
        config={"rule": rule.to_dict(), "hidden": hidden or 0},
        description=f"online backprop, the rule VSML clones ({kind}, tanh inputs)",
        has_meta_params=False,
    )


def effective_sgd_rates(rule: BackpropRule, sizes: list[int]) -> list[tuple[float, float]]:
    """``(η_s, η_b)`` per layer such that :func:`backprop_learner`'s rule is plain SGD,
    ``Δs = -η_s ∂L/∂s`` and ``Δb = -η_b ∂L/∂b``, on the network ``y = κ (mean_a tanh(x_a) s_ab
    + b_b)`` with ``sizes = [A, (H,) C]`` and ``L`` the cross-entropy of the last ``y``.

    For a layer whose error is ``λ ∂L/∂y``: ``∂L/∂s_ab = (κ/A) tanh(x_a) ∂L/∂y_b`` and
    ``∂L/∂b_b = κ ∂L/∂y_b``, so ``η_s = λ η A / κ`` and ``η_b = λ η_β / κ``; the last layer has
    ``λ = 1``."""
    rates = []
    scale = 1.0  # λ: the error a layer receives is λ ∂L/∂y of its outputs
    for layer in range(len(sizes) - 2, -1, -1):
        fan_in, fan_out = sizes[layer], sizes[layer + 1]
        rates.append(
            (
                scale * rule.learning_rate * fan_in / rule.weight_scale,
                scale * rule.bias_learning_rate / rule.weight_scale,
            )
        )
        # The error it passes down, mean_b κ_δ δ_b s_ab (1 − tanh² x_a), is (κ_δ A / κ B) λ
        # times ∂L/∂x_a, since ∂y_b/∂x_a = (κ / A) s_ab (1 − tanh² x_a).
        scale *= rule.error_scale * fan_in / (rule.weight_scale * fan_out)
    return rates[::-1]


__all__ = [
    "BackpropRule",
    "CloneTask",
    "Prefit",
    "backprop_learner",
    "backprop_targets",
    "clone_config",
    "clone_loss_terms",
    "clone_objective",
    "deployed_meta_params",
    "effective_sgd_rates",
    "held_out_terms",
    "prefit",
    "trainable_meta_params",
    "update_slopes",
]
