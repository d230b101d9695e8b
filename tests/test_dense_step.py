"""The compiled training step of dense networks against the layer-by-layer step."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cnnlab as cl
from cnnlab import _fused, config, dense_step
from cnnlab.dense_step import DenseStep, available
from cnnlab.layers import Dense, Dropout, Flatten
from cnnlab.models import TrainingStopped

pytestmark = pytest.mark.skipif(not available(), reason="needs numba and NumPy's OpenBLAS")


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


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("last", "loss"), [("softmax", "categorical_crossentropy"), ("linear", "mse")])
def test_compiled_step_matches_the_layer_by_layer_step(threads, last, loss):
    x, y = data()
    models = []
    for _ in range(2):
        cl.set_seed(3)
        model = mlp(last=last)
        model.compile(cl.optimizers.Adam(0.01), loss)
        model._bind_parameters()
        models.append(model)
    compiled, plain = models
    assert DenseStep.applies(compiled, np.dtype(np.float32))
    step = DenseStep(compiled)
    with threadpool_limits(1, "blas"), _fused.num_threads(threads):
        for start in range(0, len(x), 16):
            xb, yb = x[start : start + 16], y[start : start + 16]
            values, out = step.run(xb, yb)
            ref_values, ref_out = plain._train_step(xb, yb)
            plain.optimizer.apply(plain._flat, plain._flat_grads)
            np.testing.assert_allclose(values, ref_values, rtol=1e-5)
            np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(compiled._flat_grads, plain._flat_grads, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(compiled._flat, plain._flat, rtol=1e-5, atol=1e-6)
    assert compiled.optimizer.iterations == plain.optimizer.iterations == 6
    for key in ("m", "v"):
        np.testing.assert_allclose(compiled.optimizer._slots[key], plain.optimizer._slots[key], rtol=1e-4, atol=1e-9)


def test_fit_takes_the_compiled_step_and_learns_the_same(monkeypatch):
    x, y = data(256)
    results = []
    calls = []
    original = DenseStep.run
    monkeypatch.setattr(DenseStep, "run", lambda self, xb, yb: calls.append(1) or original(self, xb, yb))
    for use in (True, False):
        monkeypatch.setattr(DenseStep, "applies", staticmethod(lambda model, dtype, use=use: use))
        cl.set_seed(5)
        model = mlp()
        model.compile("adam", "categorical_crossentropy", ["accuracy"])
        calls.clear()
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
        assert len(calls) == (24 if use else 0)
        results.append((history.history["loss"], model.get_weights()))
    (loss_a, w_a), (loss_b, w_b) = results
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-4)
    for a, b in zip(w_a, w_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_models_the_compiled_step_does_not_cover():
    def compiled(layers, optimizer="adam"):
        model = cl.Sequential([cl.layers.Input((6, 5, 1)), *layers])
        model.compile(optimizer, "categorical_crossentropy")
        model._bind_parameters()
        return DenseStep.applies(model, np.dtype(np.float32))

    assert compiled([Flatten(), Dense(8, activation="relu"), Dense(4, activation="softmax")])
    assert not compiled([Flatten(), Dense(8, activation="tanh"), Dense(4, activation="softmax")])
    assert not compiled([Flatten(), Dense(8), Dropout(0.5), Dense(4, activation="softmax")])
    assert not compiled([Flatten(), Dense(8), Dense(4, activation="softmax")], optimizer="sgd")
    assert not compiled([Dense(8), Flatten(), Dense(4, activation="softmax")])  # Dense on 3-d inputs
    frozen = Dense(8)
    frozen.trainable = False
    assert not compiled([Flatten(), frozen, Dense(4, activation="softmax")])
    previous = config.floatx()
    config.set_floatx("float64")
    try:
        model = mlp()
        model.compile("adam", "categorical_crossentropy")
        model._bind_parameters()
        assert not DenseStep.applies(model, np.dtype(np.float64))
    finally:
        config.set_floatx(previous)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_infinite_loss_stops_before_any_update():
    x, _ = data(64)
    cl.set_seed(1)
    model = mlp(last="linear")
    model.compile("adam", "mse")
    before = model.get_weights()
    y = np.full((64, 4), 1e30, np.float32)  # squared error overflows float32 at once
    with pytest.warns(TrainingStopped, match=r"epoch 1, step 1\b"):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert model.optimizer.iterations == 0
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [1, 255, 600])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_predict_matches_the_layer_by_layer_forward(n, threads):
    x, _ = data(n)
    cl.set_seed(4)
    model = mlp(last="softmax")
    model.build((None, 6, 5, 1))
    assert dense_step.covers(model, np.dtype(np.float32))
    with _fused.num_threads(threads):
        out = model.predict(x)
    expected = model._predict_array(x)  # layer by layer, in NumPy
    assert out.shape == expected.shape == (n, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_compiled_predict_without_flatten_and_with_one_layer():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 7)).astype(np.float32)
    for layers in ([Dense(3)], [Dense(20, activation="relu"), Dense(2, activation="sigmoid")]):
        model = cl.Sequential([cl.layers.Input((7,)), *layers])
        assert dense_step.covers(model, np.dtype(np.float32))
        np.testing.assert_allclose(model.predict(x), model._predict_array(x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model(x), model._predict_array(x), rtol=1e-5, atol=1e-6)


def test_without_numpys_openblas_everything_takes_the_general_path(monkeypatch):
    """NumPy built against another BLAS (MKL, Accelerate): no sgemm to call, same results."""
    from cnnlab import _blas
    from cnnlab.layers import Conv2D, MaxPool2D

    def cnn():  # conv2 has K = 2*2*6 = 24 > 16: its fused forward would call sgemm
        return cl.Sequential(
            [
                cl.layers.Input((12, 12, 1)),
                Conv2D(6, 2, activation="relu"),
                MaxPool2D(),
                Conv2D(4, 2, activation="relu"),
                MaxPool2D(),
                Flatten(),
                Dense(4),
            ]
        )

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(64, 12, 12, 1)).astype(np.float32)
    x, y = data(64)
    results = []
    for found in (True, False):
        if not found:
            monkeypatch.setattr(_blas, "sgemm", lambda: None)
        for make, inputs in ((mlp, x), (cnn, images)):
            cl.set_seed(2)
            model = make()
            model.compile("adam", "mse")
            model._bind_parameters()
            assert DenseStep.applies(model, np.dtype(np.float32)) == (found and make is mlp)
            history = model.fit(inputs, y, batch_size=16, epochs=2, verbose=0)
            results.append((history.history["loss"], model.predict(inputs)))
    for (loss_a, out_a), (loss_b, out_b) in zip(results[:2], results[2:], strict=True):
        np.testing.assert_allclose(loss_a, loss_b, rtol=1e-4)
        np.testing.assert_allclose(out_a, out_b, rtol=1e-3, atol=1e-3 * np.abs(out_b).max())
