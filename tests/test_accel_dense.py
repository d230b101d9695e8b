"""The compiled dense-network kernels and training step against the reference arithmetic.

Each compiled kernel is compared with the exact result (float64) of the same inputs, within
the rounding bound of the sums it computes (tests/numerics.py), one call at a time from
identical state; the Adam update on the compiled gradient must equal NumPy's bit for bit
(the same elementwise operations in the same order).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import _accel, config
from cnnlab.layers import Dense, Dropout, Flatten
from cnnlab.models import TrainingStopped
from tests.numerics import a64, assert_within, sum_bound

pytestmark = [pytest.mark.numerics]

if _accel.AVAILABLE:
    from cnnlab._accel import blas, dense
    from cnnlab._accel.dense import DenseStep

needs_sgemm = pytest.mark.skipif(
    not _accel.AVAILABLE or blas.sgemm() is None, reason="needs numba and NumPy's OpenBLAS"
)


def mlp(hidden="relu", last="softmax", units=(37, 19)):
    """Sizes that are not multiples of 16, so the threads' blocks have ragged edges."""
    return cl.Sequential(
        [
            cl.layers.Input((6, 5, 1)),
            Flatten(),
            Dense(units[0], activation=hidden),
            Dense(units[1], activation="linear", use_bias=False),
            Dense(units[0], activation=hidden),
            Dense(4, activation=last),
        ]
    )


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 6, 5, 1)).astype(np.float32)  # raw pixels, as in the lecture
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    return x, y


@needs_sgemm
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("m", "k", "n"), [(16, 30, 37), (32, 37, 19), (5, 19, 4), (64, 100, 33)])
@pytest.mark.parametrize("relu", [True, False])
def test_forward_kernel_is_the_matmul_within_rounding(threads, m, k, n, relu):
    rng = np.random.default_rng(m * k + n)
    x = (rng.normal(size=(m, k)) * 50).astype(np.float32)
    w = rng.normal(size=(k, n)).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    y = np.empty((m, n), np.float32)
    with _accel.num_threads(threads):
        dense.forward(blas.sgemm(), _accel.threads(), x, w, b, relu, y)
    exact = x.astype(np.float64) @ w.astype(np.float64) + b
    if relu:
        exact = np.maximum(exact, 0)  # 1-Lipschitz: the bound carries over
    assert_within(y, exact, sum_bound(a64(x) @ a64(w) + a64(b), k, np.float32), "x @ w + b")


@needs_sgemm
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("m", "k", "n"), [(16, 37, 19), (32, 19, 37), (7, 30, 4)])
@pytest.mark.parametrize("mask", [True, False])
def test_backward_kernel_gradients_within_rounding_and_adam_bit_for_bit(threads, m, k, n, mask):
    rng = np.random.default_rng(k * n + m)
    x = np.maximum(rng.normal(size=(m, k)), 0).astype(np.float32) * 10
    dz = rng.normal(size=(m, n)).astype(np.float32) * 1e-2
    w0 = rng.normal(size=k * n).astype(np.float32)
    b0 = rng.normal(size=n).astype(np.float32)
    opt = cl.optimizers.Adam(0.01)
    opt.iterations = 3
    moments = [np.abs(rng.normal(size=s)).astype(np.float32) * 1e-3 for s in (k * n, k * n, n, n)]
    w, b = w0.copy(), b0.copy()
    gw, gb = np.empty_like(w), np.empty_like(b)
    mw, vw, mb, vb = (a.copy() for a in moments)
    dx, dx_t = np.empty_like(x), np.empty((k, m), np.float32)
    with _accel.num_threads(threads):
        dense.backward(blas.sgemm(), _accel.threads(), x, dz, w, gw, mw, vw, b, gb, mb, vb,
                       opt.constants(np.float32), True, mask, dx, dx_t)  # fmt: skip
    w64 = w0.reshape(k, n).astype(np.float64)
    assert_within(gw.reshape(k, n), x.astype(np.float64).T @ dz, sum_bound(a64(x).T @ a64(dz), m, np.float32), "gw")
    assert_within(gb, dz.astype(np.float64).sum(0), sum_bound(a64(dz).sum(0), m, np.float32), "gb")
    expected_dx = (dz.astype(np.float64) @ w64.T) * ((x > 0) if mask else 1)
    assert_within(dx, expected_dx, sum_bound(a64(dz) @ np.abs(w64).T, n, np.float32), "dx")
    # the update of each weight from the gradient the kernel computed: NumPy's Adam, bit for bit
    for params, grads, (m_ref, v_ref), got in (
        (w0, gw, moments[:2], (w, mw, vw)),
        (b0, gb, moments[2:], (b, mb, vb)),
    ):
        ref = cl.optimizers.Adam(0.01)
        ref.iterations = 3
        ref._slots = {"m": m_ref.copy(), "v": v_ref.copy()}
        expected = params.copy()
        ref._update(expected, grads)
        np.testing.assert_array_equal(got[0], expected)
        np.testing.assert_array_equal(got[1], ref._slots["m"])
        np.testing.assert_array_equal(got[2], ref._slots["v"])


def forward_bound(model, x):
    """Bound on |fast - reference| of the last layer's logits: each layer's own rounding
    (2*gamma_(K+1) (|a| @ |W| + |b|)) plus the error it receives, carried through |W| (ReLU is
    1-Lipschitz, whichever side of 0 each path puts a value)."""
    a = x.reshape(len(x), -1).astype(np.float64)
    err = np.zeros_like(a)
    dense_layers = [layer for layer in model.layers if isinstance(layer, Dense)]
    for layer in dense_layers:
        w = layer.kernel.astype(np.float64)
        b = layer.bias.astype(np.float64) if layer.use_bias else 0
        z = a @ w + b
        err = sum_bound(np.abs(a) @ np.abs(w) + np.abs(b), w.shape[0], np.float32) + err @ np.abs(w)
        if layer is not dense_layers[-1] and layer.activation == "relu":
            z = np.maximum(z, 0)
        a = z
    return a, err


@needs_sgemm
@pytest.mark.parametrize("threads", [1, 2])
def test_one_compiled_step_from_identical_state_matches_the_reference_step(threads):
    x, y = data(32)
    cl.set_seed(3)
    model = mlp()
    model.compile(cl.optimizers.Adam(0.01), "categorical_crossentropy")
    before = model.get_weights()
    logits_ref, bound = forward_bound(model, x)
    with config.using_kernels("fast"), _accel.num_threads(threads):
        plan = model._engine.plan(np.dtype(np.float32), training=True)
        assert isinstance(plan.whole_step, DenseStep)
        values, _, updated = model._engine.train_batch(plan, x, y)
    assert updated and model.optimizer.iterations == 1
    # the logits the compiled step computed, through the loss: compare the per-sample losses
    z = logits_ref
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -np.log(np.sum(p * y, 1))
    # d(loss)/d(logit) is bounded by 1 in each logit (softmax minus one-hot), so the loss moves by at
    # most the largest logit error of its row, plus a few roundings of the loss itself
    allowed = bound.max(1) * 2 + 8 * np.finfo(np.float32).eps * np.maximum(expected, 1)
    assert_within(values, expected, allowed, "per-sample loss")
    # only Adam's update moved the weights, and each by at most the learning rate (+ rounding)
    for after, was in zip(model.get_weights(), before, strict=True):
        assert np.all(np.abs(after - was) <= 0.01 * (1 + 1e-5) + np.finfo(np.float32).eps * np.abs(was))


def test_fit_takes_the_compiled_step_only_where_it_applies():
    def whole_step(layers, optimizer="adam", dtype="float32"):
        previous = config.floatx()
        config.set_floatx(dtype)
        try:
            model = cl.Sequential([cl.layers.Input((6, 5, 1)), *layers])
            model.compile(optimizer, "categorical_crossentropy")
            with config.using_kernels("fast"):
                plan = model._engine.plan(np.dtype(dtype), training=True)
            return type(plan.whole_step).__name__ if plan.whole_step is not None else None
        finally:
            config.set_floatx(previous)

    if not _accel.AVAILABLE or blas.sgemm() is None:
        assert whole_step([Flatten(), Dense(8, activation="relu"), Dense(4)]) is None
        return
    assert whole_step([Flatten(), Dense(8, activation="relu"), Dense(4, activation="softmax")]) == "DenseStep"
    assert whole_step([Flatten(), Dense(8, activation="tanh"), Dense(4, activation="softmax")]) is None
    assert whole_step([Flatten(), Dense(8), Dropout(0.5), Dense(4, activation="softmax")]) is None
    assert whole_step([Flatten(), Dense(8), Dense(4, activation="softmax")], optimizer="sgd") is None
    assert whole_step([Dense(8), Flatten(), Dense(4, activation="softmax")]) is None  # Dense on 3-d inputs
    frozen = Dense(8)
    frozen.trainable = False
    assert whole_step([Flatten(), frozen, Dense(4, activation="softmax")]) is None
    assert whole_step([Flatten(), Dense(8), Dense(4)], dtype="float64") is None
    with config.using_kernels("reference"):
        model = mlp()
        model.compile("adam", "categorical_crossentropy")
        assert model._engine.plan(np.dtype(np.float32), training=True).whole_step is None


@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_infinite_loss_stops_before_any_update(kernels):
    x, _ = data(64)
    cl.set_seed(1)
    model = mlp(last="linear")
    model.compile("adam", "mse")
    before = model.get_weights()
    y = np.full((64, 4), 1e30, np.float32)  # squared error overflows float32 at once
    with config.using_kernels(kernels), pytest.warns(TrainingStopped, match=r"epoch 1, step 1\b"):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_sgemm
@pytest.mark.parametrize("n", [1, 255, 600])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_predict_matches_the_reference_forward(n, threads):
    x, _ = data(n)
    cl.set_seed(4)
    model = mlp(last="linear")
    model.build((None, 6, 5, 1))
    with config.using_kernels("fast"), _accel.num_threads(threads):
        assert model._engine.plan(np.dtype(np.float32), training=False).whole_predict is not None
        out = model.predict(x)
    exact, bound = forward_bound(model, x)
    assert out.shape == (n, 4)
    assert_within(out, exact, bound, "predict")


@needs_sgemm
def test_compiled_predict_without_flatten_and_with_one_layer():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 7)).astype(np.float32)
    model = cl.Sequential([cl.layers.Input((7,)), Dense(3)])
    with config.using_kernels("fast"):
        assert model._engine.plan(np.dtype(np.float32), training=False).whole_predict is not None
        out = model.predict(x)
    exact = x.astype(np.float64) @ model.layers[0].kernel + model.layers[0].bias
    assert_within(out, exact, sum_bound(a64(x) @ a64(model.layers[0].kernel) + a64(model.layers[0].bias), 7, "f4"))
