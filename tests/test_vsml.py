"""VSML: faithfulness to the public code's semantics (against an independent NumPy model), size
invariance, permutation equivariance, options, determinism, stability and gradients."""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vsml_bench.agents import TaskSpec, make
from vsml_bench.agents import vsml as V
from vsml_bench.errors import UserError

M, S = 8, 16  # default message and state sizes

# ---------------------------------------------------------------------------------------------
# An independent NumPy model of the public VSML code (cell by cell, loops, float64), written
# from the VSML paper and the public code's structure: per-layer incoming messages, a forward
# tick over all layers, then (backward_pass) a reverse tick right after it.
# ---------------------------------------------------------------------------------------------


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_ln(x, scale, offset):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * scale + offset


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def np_cell(p, fwd, bwd, h, c, layer_norm):
    """One sub-RNN step: gates [fwd, bwd, h] W + b in order i, g, f, o; shifts +5 f, −5 i."""
    w, b = p["custom_lstm"]["linear"]["w"], p["custom_lstm"]["linear"]["b"]
    z = np.concatenate([fwd, bwd, h]) @ w + b
    i, g, f, o = np.split(z, 4)
    c = _sig(f + 5.0) * c + _sig(i - 5.0) * np.tanh(g)
    h = _sig(o) * np.tanh(c)
    fo = h @ p["linear"]["w"] + p["linear"]["b"]
    bo = h @ p["linear_1"]["w"] + p["linear_1"]["b"]
    if layer_norm:
        fo = _np_ln(fo, p["layer_norm"]["scale"], p["layer_norm"]["offset"])
        bo = _np_ln(bo, p["layer_norm_1"]["scale"], p["layer_norm_1"]["offset"])
    return fo, bo, h, c


def np_dense(p, fwd_in, bwd_in, h, c, micro_ticks, layer_norm):
    n_in, n_out = h.shape[:2]
    h, c = h.copy(), c.copy()
    for _ in range(micro_ticks):
        fo = np.zeros((n_in, n_out, M))
        bo = np.zeros((n_in, n_out, M))
        for a in range(n_in):
            for b in range(n_out):
                fo[a, b], bo[a, b], h[a, b], c[a, b] = np_cell(
                    p, fwd_in[a], bwd_in[b], h[a, b], c[a, b], layer_norm
                )
    return fo.mean(0), bo.mean(1), h, c


def np_conv(p, fwd_in, bwd_in, h, c, micro_ticks, stride, layer_norm):
    """Conv layer by explicit loops over output positions and kernel entries."""
    k, _, n_ic, n_oc = h.shape[:4]
    height, width = fwd_in.shape[:2]
    ho, wo = bwd_in.shape[:2]
    pad = k // 2
    for _ in range(micro_ticks):
        hs, cs = [], []
        fo = np.zeros((ho, wo, k, k, n_ic, n_oc, M))
        bo = np.zeros((ho, wo, k, k, n_ic, n_oc, M))
        for pi in range(ho):
            for pj in range(wo):
                hp, cp = h.copy(), c.copy()
                for u in range(k):
                    for v in range(k):
                        xi, xj = pi * stride + u - pad, pj * stride + v - pad
                        inside = 0 <= xi < height and 0 <= xj < width
                        for ic in range(n_ic):
                            fwd = fwd_in[xi, xj, ic] if inside else np.zeros(M)
                            for oc in range(n_oc):
                                out = np_cell(
                                    p,
                                    fwd,
                                    bwd_in[pi, pj, oc],
                                    h[u, v, ic, oc],
                                    c[u, v, ic, oc],
                                    layer_norm,
                                )
                                fo[pi, pj, u, v, ic, oc], bo[pi, pj, u, v, ic, oc] = out[:2]
                                hp[u, v, ic, oc], cp[u, v, ic, oc] = out[2:]
                hs.append(hp)
                cs.append(cp)
        h, c = np.mean(hs, axis=0), np.mean(cs, axis=0)
    fwd_out = fo.mean(axis=(2, 3, 4))
    bwd_out = np.zeros((height, width, n_ic, M))
    per_slot = bo.mean(axis=5)  # mean over output channels
    for pi in range(ho):
        for pj in range(wo):
            for u in range(k):
                for v in range(k):
                    xi, xj = pi * stride + u - pad, pj * stride + v - pad
                    if 0 <= xi < height and 0 <= xj < width:
                        bwd_out[xi, xj] += per_slot[pi, pj, u, v]
    return fwd_out, bwd_out / (k * k), h, c


class NumpyVSML:
    """The public code's tick structure over a stream of (x_t, y_t).

    ``names[(i, reverse)]`` is the Haiku module name of the sub-RNN that layer ``i`` uses in the
    forward (``reverse=False``) or reverse sweep, written out by hand per test case (see
    :data:`CASES`): the project's ``rnn_name`` is not consulted, so a layer that picks up the
    wrong parameter set cannot agree with this model.
    """

    def __init__(self, cfg: V.VSMLConfig, params, layers, names):
        self.cfg, self.params = cfg, _np(params)
        self.layers = [_np(layer._asdict()) for layer in layers]
        self.names = names
        self.shapes = None

    def _tick(self, error, x, reverse):
        cfg, layers = self.cfg, self.layers
        first = layers[0]["fwd_in"]
        layers[0]["fwd_in"] = np.zeros_like(first)
        layers[0]["fwd_in"][..., 0] = x.reshape(first.shape[:-1])
        layers[-1]["bwd_in"] = error
        out = None
        order = range(len(layers))[::-1] if reverse else range(len(layers))
        for i in order:
            ls = layers[i]
            p = self.params[self.names[(i, reverse)]]
            if isinstance(cfg.layers[i], V.ConvLayer):
                fo, bo, ls["h"], ls["c"] = np_conv(
                    p,
                    ls["fwd_in"],
                    ls["bwd_in"],
                    ls["h"],
                    ls["c"],
                    cfg.micro_ticks,
                    cfg.layers[i].stride,
                    cfg.layer_norm,
                )
            else:
                fo, bo, ls["h"], ls["c"] = np_dense(
                    p,
                    ls["fwd_in"].reshape(-1, M),
                    ls["bwd_in"].reshape(-1, M),
                    ls["h"],
                    ls["c"],
                    cfg.micro_ticks,
                    cfg.layer_norm,
                )
            if i > 0:
                layers[i - 1]["bwd_in"] = bo.reshape(layers[i - 1]["bwd_in"].shape)
            if i < len(layers) - 1:
                layers[i + 1]["fwd_in"] = fo.reshape(layers[i + 1]["fwd_in"].shape)
            else:
                out = fo
        return out

    def run(self, xs, ys, n_classes):
        cfg = self.cfg
        error = np.zeros((n_classes, M))
        all_logits = []
        for x, y in zip(xs, ys, strict=True):
            out = self._tick(error, np.asarray(x, np.float64), reverse=False)
            logits = out[:, cfg.output_index]
            if cfg.tanh_bound:  # 0 switches the soft clip off, as in the public code
                logits = cfg.tanh_bound * np.tanh(logits / cfg.tanh_bound)
            all_logits.append(logits)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            onehot = np.eye(n_classes)[y]
            error = np.zeros((n_classes, M))
            error[:, 0] = probs - onehot
            if cfg.feed_label:
                error[:, 1] = onehot
            if cfg.backward_pass:
                self._tick(error, np.asarray(x, np.float64), reverse=True)
                error = np.zeros((n_classes, M))
        return np.stack(all_logits)


def _run_learner(learner, meta_params, state, xs, ys, n_classes):
    """Feed the stream through ``learner.step`` (prev_label = y_{t-1}, "none" at t = 0)."""
    step = jax.jit(learner.step)
    logits = []
    prev = n_classes
    for x, y in zip(xs, ys, strict=True):
        state, out = step(meta_params, state, {"x": x, "prev_label": jnp.int32(prev)})
        logits.append(np.asarray(out))
        prev = int(y)
    return np.stack(logits), state


def _perturbed_meta_params(learner, spec, key, scale=0.5):
    """Fresh θ plus noise on every leaf (biases and LayerNorm too), so no option is a no-op."""
    params = learner.meta_init(key, spec)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [
        leaf + scale * jax.random.normal(k, leaf.shape)
        for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(tree, leaves)


def _stream(key, input_shape, n_classes, length):
    kx, ky = jax.random.split(key)
    xs = jax.random.normal(kx, (length, *input_shape))
    ys = jax.random.randint(ky, (length,), 0, n_classes)
    return xs, np.asarray(ys)


_DEEP = [{"type": "dense", "size": 2}, {"type": "dense"}]
_CONV_CONV = [
    {"type": "conv", "channels": 2},
    {"type": "conv", "channels": 1},
    {"type": "dense"},
]

#: case -> (options, input shape, classes, Haiku names). The names, written out by hand as the
#: public code's Haiku modules are named (``sub_rnn``, ``sub_rnn_1``, ... in creation order:
#: one per layer with layerwise_params, then the reverse sweep's with separate_backward_rnn),
#: are ``(forward names per layer, reverse-sweep names per layer)``; None: one shared
#: ``sub_rnn``.
CASES = {
    "default": ({}, (3,), 2, None),
    "one_micro_tick": ({"micro_ticks": 1}, (3,), 2, None),
    "three_micro_ticks": ({"micro_ticks": 3}, (3,), 2, None),
    "feed_label": ({"feed_label": True}, (3,), 3, None),
    "layer_norm": ({"layer_norm": True}, (3,), 2, None),
    "output_index_0_no_bound": ({"output_index": 0, "tanh_bound": 0.0}, (3,), 2, None),
    "deep": ({"layers": _DEEP}, (3,), 2, None),
    "deep_backward_pass": ({"backward_pass": True, "layers": _DEEP}, (3,), 2, None),
    "deep_separate_backward": (
        {"backward_pass": True, "separate_backward_rnn": True, "layers": _DEEP},
        (3,),
        2,
        (["sub_rnn", "sub_rnn"], ["sub_rnn_1", "sub_rnn_1"]),
    ),
    "deep_layerwise": (
        {"layerwise_params": True, "layers": _DEEP},
        (3,),
        2,
        (["sub_rnn", "sub_rnn_1"], ["sub_rnn", "sub_rnn_1"]),
    ),
    "deep_layerwise_backward_pass": (
        {"backward_pass": True, "layerwise_params": True, "layers": _DEEP},
        (3,),
        2,
        (["sub_rnn", "sub_rnn_1"], ["sub_rnn", "sub_rnn_1"]),
    ),
    "deep_layerwise_separate_backward": (
        {
            "backward_pass": True,
            "separate_backward_rnn": True,
            "layerwise_params": True,
            "feed_label": True,
            "layers": _DEEP,
        },
        (3,),
        2,
        (["sub_rnn", "sub_rnn_1"], ["sub_rnn_2", "sub_rnn_3"]),
    ),
    "conv": ({"layers": [{"type": "conv", "channels": 2}, {"type": "dense"}]}, (4, 4, 1), 2, None),
    "conv_stride2_layer_norm": (
        {
            "layer_norm": True,
            "layers": [{"type": "conv", "channels": 1, "stride": 2}, {"type": "dense"}],
        },
        (5, 5, 2),
        2,
        None,
    ),
    # A conv layer after a conv layer: its backward messages (window sums / k^2) reach the
    # first conv layer, next tick or (backward_pass) in the same tick's reverse sweep.
    "conv_conv_dense": ({"layers": _CONV_CONV, "micro_ticks": 1}, (4, 4, 1), 2, None),
    "conv_conv_dense_backward_pass": (
        {"layers": _CONV_CONV, "micro_ticks": 1, "backward_pass": True},
        (4, 4, 1),
        2,
        None,
    ),
}


def _names(case: str) -> dict[tuple[int, bool], str]:
    options, _, _, names = CASES[case]
    n_layers = len(options.get("layers", [{}]))
    if names is None:
        return {(i, reverse): "sub_rnn" for i in range(n_layers) for reverse in (False, True)}
    forward, backward = names
    assert len(forward) == len(backward) == n_layers
    return {
        **{(i, False): n for i, n in enumerate(forward)},
        **{(i, True): n for i, n in enumerate(backward)},
    }


def _slow_case(case: str) -> bool:
    # Conv cases compile for tens of seconds; one conv->conv case runs by default (conv->conv
    # alone uses a conv layer's backward messages).
    return case in ("conv", "conv_stride2_layer_norm", "conv_conv_dense")


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.slow) if _slow_case(c) else c for c in sorted(CASES)],
)
def test_matches_numpy_model_of_public_code(case):
    options, input_shape, n_classes, _ = CASES[case]
    learner = make("vsml", **options)
    spec = TaskSpec(input_shape, n_classes)
    params = _perturbed_meta_params(learner, spec, jax.random.key(3))
    # Exactly the modules the public code would create (no more, no fewer).
    assert set(params) == set(_names(case).values())
    state = learner.init(params, jax.random.key(4), spec)
    xs, ys = _stream(jax.random.key(5), input_shape, n_classes, 4)
    reference = NumpyVSML(V.make_config(**options), params, state.layers, _names(case)).run(
        np.asarray(xs), ys, n_classes
    )
    ours, _ = _run_learner(learner, params, state, xs, ys, n_classes)
    np.testing.assert_allclose(ours, reference, rtol=2e-4, atol=2e-5)
    # The options are not no-ops: every case's logits move over the stream.
    assert np.abs(np.diff(ours, axis=0)).max() > 1e-4


def test_one_by_one_layer_step_against_numpy_lstm():
    """A 1x1 dense layer, one micro tick, given messages: exactly one LSTM step + both heads."""
    learner = make("vsml")
    params = _perturbed_meta_params(learner, TaskSpec((1,), 1), jax.random.key(0))["sub_rnn"]
    rng = np.random.default_rng(0)
    fwd, bwd = rng.normal(size=(1, M)), rng.normal(size=(1, M))
    h, c = rng.normal(size=(1, 1, S)) * 0.5, rng.normal(size=(1, 1, S))
    got = V.dense_update(
        params, jnp.asarray(h), jnp.asarray(c), jnp.asarray(fwd), jnp.asarray(bwd), micro_ticks=1
    )
    p = _np(params)
    w, b = p["custom_lstm"]["linear"]["w"], p["custom_lstm"]["linear"]["b"]
    # Plain textbook LSTM, written out gate by gate (columns i | g | f | o).
    x = np.concatenate([fwd[0], bwd[0], h[0, 0]])
    gate_i = _sig(x @ w[:, 0:S] + b[0:S] - 5.0)
    gate_g = np.tanh(x @ w[:, S : 2 * S] + b[S : 2 * S])
    gate_f = _sig(x @ w[:, 2 * S : 3 * S] + b[2 * S : 3 * S] + 5.0)
    gate_o = _sig(x @ w[:, 3 * S :] + b[3 * S :])
    c_new = gate_f * c[0, 0] + gate_i * gate_g
    h_new = gate_o * np.tanh(c_new)
    np.testing.assert_allclose(np.asarray(got[0])[0, 0], h_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got[1])[0, 0], c_new, rtol=1e-5, atol=1e-6)
    fwd_out = h_new @ p["linear"]["w"] + p["linear"]["b"]
    bwd_out = h_new @ p["linear_1"]["w"] + p["linear_1"]["b"]
    np.testing.assert_allclose(np.asarray(got[2])[0], fwd_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got[3])[0], bwd_out, rtol=1e-5, atol=1e-6)


def test_micro_ticks_repeat_the_cell_with_fixed_messages():
    learner = make("vsml")
    params = _perturbed_meta_params(learner, TaskSpec((4,), 3), jax.random.key(1))["sub_rnn"]
    rng = np.random.default_rng(1)
    h, c = jnp.asarray(rng.normal(size=(4, 3, S)) * 0.3), jnp.asarray(rng.normal(size=(4, 3, S)))
    fwd, bwd = jnp.asarray(rng.normal(size=(4, M))), jnp.asarray(rng.normal(size=(3, M)))
    once = V.dense_update(params, h, c, fwd, bwd, 1)
    twice = V.dense_update(params, once[0], once[1], fwd, bwd, 1)
    fused = V.dense_update(params, h, c, fwd, bwd, 2)
    for a, b in zip(twice, fused, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(once[0]), np.asarray(fused[0]))


@pytest.mark.slow
def test_backward_pass_and_feed_label_change_what_the_cells_see():
    spec = TaskSpec((3,), 2)
    deep = [{"type": "dense", "size": 2}, {"type": "dense"}]
    xs, ys = _stream(jax.random.key(9), (3,), 2, 3)
    results = {}
    for name, options in {
        "plain": {"layers": deep},
        "backward_pass": {"layers": deep, "backward_pass": True},
        "feed_label": {"layers": deep, "feed_label": True},
    }.items():
        learner = make("vsml", **options)
        params = _perturbed_meta_params(make("vsml", layers=deep), spec, jax.random.key(2))
        state = learner.init(params, jax.random.key(4), spec)
        results[name], _ = _run_learner(learner, params, state, xs, ys, 2)
    # t = 0 sees no error/label either way; afterwards the options matter.
    for name in ("backward_pass", "feed_label"):
        np.testing.assert_allclose(results[name][0], results["plain"][0], rtol=1e-6)
        assert not np.allclose(results[name][1:], results["plain"][1:], atol=1e-6)


@pytest.mark.slow
def test_no_label_means_zero_error():
    """Few-shot: prev_label == n_classes gives the same step whatever the previous logits."""
    learner = make("vsml")
    spec = TaskSpec((5,), 3)
    params = _perturbed_meta_params(learner, spec, jax.random.key(0))
    state = learner.init(params, jax.random.key(1), spec)
    state = state._replace(has_prev=jnp.bool_(True))
    other = state._replace(logits=jnp.asarray([3.0, -1.0, 0.5]))
    x = jnp.linspace(-1, 1, 5)
    none = {"x": x, "prev_label": jnp.int32(3)}
    _, a = learner.step(params, state, none)
    _, b = learner.step(params, other, none)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    labelled = {"x": x, "prev_label": jnp.int32(1)}
    _, c = learner.step(params, state, labelled)
    _, d = learner.step(params, other, labelled)
    assert not np.allclose(np.asarray(c), np.asarray(d))


@pytest.mark.slow
def test_permuting_inputs_with_their_state_rows_gives_the_same_logits():
    learner = make("vsml")
    spec = TaskSpec((6,), 4)
    params = _perturbed_meta_params(learner, spec, jax.random.key(0))
    state = learner.init(params, jax.random.key(1), spec)
    perm = np.array([3, 0, 5, 1, 4, 2])
    layer = state.layers[0]
    permuted = state._replace(
        layers=(layer._replace(h=layer.h[perm], c=layer.c[perm], fwd_in=layer.fwd_in[perm]),)
    )
    xs, ys = _stream(jax.random.key(2), (6,), 4, 5)
    a, _ = _run_learner(learner, params, state, xs, ys, 4)
    b, _ = _run_learner(learner, params, permuted, xs[:, perm], ys, 4)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _digits_stream(n_classes: int, length: int, seed: int = 0):
    from vsml_bench.data import load

    data = load("digits")
    x = np.asarray(data.x, np.float32).reshape(len(data), -1) / 16.0
    x = (x - x.mean()) / x.std()
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(data.y < n_classes)
    idx = rng.choice(keep, size=length, replace=True)
    return x[idx], np.asarray(data.y)[idx]


def _scan_logits(learner, params, spec, xs, ys, key):
    prev = jnp.concatenate([jnp.asarray([spec.n_classes]), jnp.asarray(ys[:-1])]).astype(jnp.int32)

    @jax.jit
    def run(params, xs, prev):
        state = learner.init(params, key, spec)

        def body(state, inp):
            x, y = inp
            return learner.step(params, state, {"x": x, "prev_label": y})

        return jax.lax.scan(body, state, (xs, prev))[1]

    return run(params, jnp.asarray(xs), prev)


@pytest.mark.slow
def test_one_meta_parameter_set_runs_on_any_size_and_class_count():
    learner = make("vsml")
    params = learner.meta_init(jax.random.key(0), TaskSpec((64,), 10))
    # 8x8 digits with 2 and 10 classes (real data), 28x28 inputs with 2, 10 and 62 classes.
    for n_classes in (2, 10):
        xs, ys = _digits_stream(n_classes, 20)
        logits = _scan_logits(
            learner, params, TaskSpec((64,), n_classes), xs, ys, jax.random.key(1)
        )
        assert logits.shape == (20, n_classes) and bool(jnp.isfinite(logits).all())
    for n_classes in (2, 10, 62):
        spec = TaskSpec((28, 28, 1), n_classes)
        xs, ys = _stream(jax.random.key(n_classes), (28, 28, 1), n_classes, 3)
        logits = _scan_logits(learner, params, spec, xs, ys, jax.random.key(1))
        assert logits.shape == (3, n_classes) and bool(jnp.isfinite(logits).all())


@pytest.mark.slow
def test_real_mnist_runs_with_the_digits_meta_parameters():
    if not os.environ.get("VSML_BENCH_DATA"):
        pytest.skip("VSML_BENCH_DATA is unset: the real MNIST files are not reachable here")
    from vsml_bench.data import load

    data = load("mnist", split="test")  # fails loudly when the data dir lacks MNIST
    learner = make("vsml")
    params = learner.meta_init(jax.random.key(0), TaskSpec((64,), 10))
    x = np.asarray(data.x[:5], np.float32) / 255.0
    x = (x - 0.1307) / 0.3081
    logits = _scan_logits(
        learner, params, TaskSpec(x.shape[1:], 10), x, np.asarray(data.y[:5]), jax.random.key(1)
    )
    assert logits.shape == (5, 10) and bool(jnp.isfinite(logits).all())


@pytest.mark.slow
def test_deterministic_given_key():
    learner = make("vsml")
    spec = TaskSpec((64,), 10)
    params = learner.meta_init(jax.random.key(0), spec)
    again = learner.meta_init(jax.random.key(0), spec)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again), strict=True)
    )
    xs, ys = _digits_stream(10, 30)
    a = _scan_logits(learner, params, spec, xs, ys, jax.random.key(7))
    b = _scan_logits(learner, params, spec, xs, ys, jax.random.key(7))
    c = _scan_logits(learner, params, spec, xs, ys, jax.random.key(8))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))


@pytest.mark.slow
def test_no_nan_or_inf_over_a_2000_step_digits_stream():
    learner = make("vsml")
    spec = TaskSpec((64,), 10)
    xs, ys = _digits_stream(10, 2000, seed=1)
    for scale, key in ((0.0, 0), (1.0, 1)):  # fresh θ, and a strongly perturbed θ
        params = _perturbed_meta_params(learner, spec, jax.random.key(key), scale=scale)
        logits = _scan_logits(learner, params, spec, xs, ys, jax.random.key(2))
        assert logits.shape == (2000, 10)
        assert bool(jnp.isfinite(logits).all())
        assert float(jnp.abs(logits).max()) <= 100.0


def test_meta_parameters_layout_and_count():
    learner = make("vsml")
    params = learner.meta_init(jax.random.key(0), TaskSpec((64,), 10))
    assert set(params) == {"sub_rnn"}
    sub = params["sub_rnn"]
    assert sub["custom_lstm"]["linear"]["w"].shape == (2 * M + S, 4 * S)
    assert sub["linear"]["w"].shape == (S, M) and sub["linear_1"]["w"].shape == (S, M)
    assert V.count_meta_params(params) == 2384  # "about 2.4k"
    # Biases start at zero (the gate shifts are constants of the cell).
    assert not np.any(np.asarray(sub["custom_lstm"]["linear"]["b"]))
    # Haiku-named public-code parameters import to the same tree.
    haiku = {
        "vsml_rnn/~/sub_rnn/~/custom_lstm/linear": dict(sub["custom_lstm"]["linear"]),
        "vsml_rnn/~/sub_rnn/~/linear": dict(sub["linear"]),
        "vsml_rnn/~/sub_rnn/~/linear_1": dict(sub["linear_1"]),
    }
    imported = V.meta_params_from_haiku(haiku)
    assert jax.tree.structure(imported) == jax.tree.structure(params)
    # Values, not only the tree: every leaf lands where the same Haiku name put it.
    for a, b in zip(jax.tree.leaves(imported), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Several modules with distinct values (as a layerwise, separate-backward run saves them):
    # each value goes to its own module, float32, and non-sub-RNN entries are ignored.
    rng = np.random.default_rng(0)
    two = {
        f"vsml_rnn/~/{module}/~/{part}": {
            "w": rng.normal(size=shape).astype(np.float64),
            "b": rng.normal(size=shape[1:]).astype(np.float64),
        }
        for module in ("sub_rnn", "sub_rnn_1")
        for part, shape in (
            ("custom_lstm/linear", (2 * M + S, 4 * S)),
            ("linear", (S, M)),
            ("linear_1", (S, M)),
        )
    }
    two["vsml_rnn/~/other/~/linear"] = {"w": np.zeros(3)}
    imported = V.meta_params_from_haiku(two)
    assert set(imported) == {"sub_rnn", "sub_rnn_1"}
    for name, leaves in two.items():
        if "sub_rnn" not in name:
            continue
        module, _, part = name.removeprefix("vsml_rnn/~/").partition("/~/")
        node = imported[module]
        for key in part.split("/"):
            node = node[key]
        for leaf in ("w", "b"):
            assert node[leaf].dtype == jnp.float32
            np.testing.assert_array_equal(node[leaf], leaves[leaf].astype(np.float32))
    per_layer = make("vsml", layerwise_params=True, layers=[{"type": "dense", "size": 4}, {}])
    assert set(per_layer.meta_init(jax.random.key(0), TaskSpec((3,), 2))) == {
        "sub_rnn",
        "sub_rnn_1",
    }


def test_initial_state_follows_the_public_code():
    learner = make("vsml")
    spec = TaskSpec((400,), 10)
    state = learner.init(learner.meta_init(jax.random.key(0), spec), jax.random.key(1), spec)
    layer = state.layers[0]
    assert not np.any(np.asarray(layer.h))
    c = np.asarray(layer.c)
    assert not np.any(c[..., S // 2 :])
    rand = c[..., : S // 2] * math.sqrt(400)  # truncated normal (±2) times 1/sqrt(fan-in)
    assert np.abs(rand).max() <= 2.0 + 1e-5
    assert 0.8 < rand.std() < 0.92  # a ±2-truncated unit normal has std ≈ 0.88


@pytest.mark.slow
def test_gradients_are_finite_and_remat_does_not_change_them():
    spec = TaskSpec((5,), 3)
    xs, ys = _stream(jax.random.key(0), (5,), 3, 6)
    prev = jnp.concatenate([jnp.asarray([3]), jnp.asarray(ys[:-1])]).astype(jnp.int32)

    def loss_for(learner):
        def loss(params):
            state = learner.init(params, jax.random.key(1), spec)

            def body(state, inp):
                x, y_prev, y = inp
                state, logits = learner.step(params, state, {"x": x, "prev_label": y_prev})
                return state, -jax.nn.log_softmax(logits)[y]

            return jax.lax.scan(body, state, (xs, prev, jnp.asarray(ys)))[1].mean()

        return jax.jit(jax.grad(loss))

    with_remat, without = make("vsml"), make("vsml", remat=False)
    params = _perturbed_meta_params(with_remat, spec, jax.random.key(2))
    g1, g2 = loss_for(with_remat)(params), loss_for(without)(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        assert bool(jnp.isfinite(a).all())
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(g1))


@pytest.mark.parametrize(
    "micro_ticks",
    [pytest.param(1, marks=pytest.mark.slow), 2, pytest.param(3, marks=pytest.mark.slow)],
)
def test_hand_written_tick_gradient_matches_autodiff(micro_ticks):
    """``dense_ticks``' custom VJP against reverse-mode autodiff of the same loop, under vmap."""
    keys = jax.random.split(jax.random.key(micro_ticks), 6)
    w_h = 0.3 * jax.random.normal(keys[0], (S, 4 * S))
    row = jax.random.normal(keys[1], (2, 5, 4 * S))  # 2 streams, 5 inputs, 3 outputs
    col = jax.random.normal(keys[2], (2, 3, 4 * S))
    h = 0.5 * jax.random.normal(keys[3], (2, 5, 3, S))
    c = jax.random.normal(keys[4], (2, 5, 3, S))
    weights = jax.random.normal(keys[5], (2, 2, 5, 3, S))

    def autodiff_ticks(w_h, row, col, h, c, micro_ticks):
        for _ in range(micro_ticks):
            h, c = V._dense_tick(w_h, row, col, h, c)
        return h, c

    def loss_of(ticks):
        def loss(w_h, row, col, h, c):
            new_h, new_c = jax.vmap(ticks, in_axes=(None, 0, 0, 0, 0, None))(
                w_h, row, col, h, c, micro_ticks
            )
            return jnp.sum(weights[0] * new_h) + jnp.sum(weights[1] * jnp.sin(new_c))

        # Jitted: one compile of the whole gradient instead of one per primitive, eagerly.
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))

    ours = loss_of(V.dense_ticks)(w_h, row, col, h, c)
    reference = loss_of(autodiff_ticks)(w_h, row, col, h, c)
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="Unknown VSML option"):
        make("vsml", micro_tick=2)
    with pytest.raises(UserError, match="last VSML layer"):
        make("vsml", layers=[{"type": "dense", "size": 3}])
    learner = make("vsml", layers=[{"type": "conv", "channels": 2}, {"type": "dense"}])
    with pytest.raises(UserError, match="image input"):
        learner.init({}, jax.random.key(0), TaskSpec((13,), 3))


def test_pretrained_unknown_name_is_a_user_error_naming_the_available_ones():
    from vsml_bench.agents import pretrained

    with pytest.raises(UserError) as info:
        make("vsml", pretrained="no-such-set")
    names = getattr(pretrained, "names", lambda: [])()
    for name in names:
        assert name in str(info.value)


def test_pretrained_sets_meta_params_and_provenance():
    from vsml_bench.agents import pretrained

    names = getattr(pretrained, "names", lambda: [])()
    if "mnist" not in names:
        pytest.skip("no shipped 'mnist' meta-parameters in this checkout yet")
    learner = make("vsml", pretrained="mnist")
    assert learner.meta_params is not None and learner.meta_trained_on
    assert learner.config["pretrained"] == "mnist"
    spec = TaskSpec((64,), 10)
    xs, ys = _digits_stream(10, 10)
    logits = _scan_logits(learner, learner.meta_params, spec, xs, ys, jax.random.key(0))
    assert bool(jnp.isfinite(logits).all())
