"""compile / fit / evaluate / predict behaviour."""

from __future__ import annotations

import signal
import warnings

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import _accel, config
from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnlab.models import TrainingStopped
from tests.numerics import a64, assert_within, sum_bound

needs_numba = pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed")


def blobs(n=300, seed=0):
    """Three separable classes of 6x6 images: a bright row band per class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(0, 0.3, size=(n, 6, 6, 1))
    for i, label in enumerate(labels):
        x[i, 2 * label : 2 * label + 2, :, 0] += 2.0
    return x, labels


def cnn(units=3):
    return cl.Sequential(
        [
            cl.layers.Input((6, 6, 1)),
            Conv2D(4, 2, activation="relu"),
            MaxPool2D(),
            Flatten(),
            Dense(units, activation="softmax"),
        ]
    )


def test_fit_learns_and_history_has_keras_keys():
    cl.set_seed(1)
    x, labels = blobs()
    model = cnn()
    model.compile(cl.optimizers.Adam(0.01), "categorical_crossentropy", ["accuracy"])
    history = model.fit(x, cl.utils.to_categorical(labels), epochs=5, batch_size=16, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 5 and history.epoch == [0, 1, 2, 3, 4]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, cl.utils.to_categorical(labels), verbose=0)
    assert acc > 0.9
    assert model.evaluate(x, cl.utils.to_categorical(labels), verbose=0, return_dict=True) == {
        "loss": loss,
        "accuracy": acc,
    }


def test_sparse_labels_and_sgd():
    cl.set_seed(2)
    x, labels = blobs()
    model = cnn()
    model.compile(cl.optimizers.SGD(0.1, momentum=0.5), "sparse_categorical_crossentropy", "accuracy")
    model.fit(x, labels, epochs=4, verbose=0)
    assert model.evaluate(x, labels, verbose=0)[1] > 0.9


def test_validation_split_takes_last_samples_before_shuffling():
    x, labels = blobs(100)
    seen = []

    class Spy(cl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs)

    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, labels, epochs=1, validation_split=0.3, verbose=0, callbacks=[Spy()])
    expected = model.evaluate(x[70:], labels[70:], verbose=0)
    assert seen[0]["val_loss"] == pytest.approx(expected[0], rel=1e-6)


def test_evaluate_matches_manual_mean_and_predict_chunks(monkeypatch):
    x, labels = blobs(50)
    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    p = model.predict(x)
    manual = -np.log(p[np.arange(50), labels]).mean()
    assert model.evaluate(x, labels, verbose=0)[0] == pytest.approx(manual, rel=1e-5)
    assert model.evaluate(x, labels, verbose=0)[1] == pytest.approx((p.argmax(1) == labels).mean())
    # a tiny chunk budget must give the same predictions
    monkeypatch.setattr("cnnlab.engine.training.CHUNK_BYTES", 1)
    np.testing.assert_array_equal(model.predict(x), p)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_nan_loss_stops_with_last_finite_weights():
    x, labels = blobs(64)
    model = cl.Sequential([cl.layers.Input((6, 6, 1)), Flatten(), Dense(3)])
    model.compile(cl.optimizers.SGD(1e3), "mse")
    y = np.eye(3)[labels] * 1e17  # finite at first, then the huge steps overflow
    before = None

    class Keep(cl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            nonlocal before
            before = self.model.get_weights()

    with pytest.warns(TrainingStopped, match=r"epoch 1, step \d+"):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[Keep()])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def dense_net(units=3):
    """A model the compiled dense step (cnnlab.dense_step) trains, with Adam and float32."""
    return cl.Sequential(
        [cl.layers.Input((6, 6, 1)), Flatten(), Dense(8, activation="relu"), Dense(units, activation="softmax")]
    )


@pytest.mark.parametrize("make", [cnn, dense_net])
def test_ctrl_c_keeps_history_and_whole_updates(make):
    x, labels = blobs(64)
    model = make()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    steps = []

    class Interrupt(cl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            steps.append(self.model.optimizer.iterations)
            if len(steps) == 5:
                signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, labels, batch_size=8, epochs=2, verbose=0, callbacks=[Interrupt()])
    assert model.history is not None and model.optimizer.iterations == 5
    assert steps == [1, 2, 3, 4, 5]
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_early_stopping_restores_best_weights():
    x, labels = blobs(60)
    model = cnn()
    model.compile(cl.optimizers.SGD(5.0), "sparse_categorical_crossentropy")  # diverging on purpose
    stop = cl.callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(x, labels, epochs=30, verbose=0, callbacks=[stop])
    assert len(history.epoch) < 30
    best = int(np.argmin(history.history["loss"]))
    assert stop.best_epoch == best


def test_progress_output(capsys):
    x, labels = blobs(64)
    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, labels, batch_size=32, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "2/2 [==============================] - " in out and "/step - loss: " in out and " - accuracy: " in out
    model.fit(x, labels, epochs=1, verbose=2)
    line = capsys.readouterr().out.splitlines()[-1]
    assert "[" not in line and "loss:" in line
    model.fit(x, labels, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_float64_training():
    cl.config.set_floatx("float64")
    x, labels = blobs(30)
    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=1, verbose=0)
    assert model.get_weights()[0].dtype == np.float64
    assert model.predict(x).dtype == np.float64


def test_config_round_trip():
    model = cnn()
    clone = cl.Sequential.from_config(model.get_config())
    assert [type(layer).__name__ for layer in clone.layers] == [type(layer).__name__ for layer in model.layers]
    assert clone.count_params() == model.count_params()
    assert clone.layers[0].get_config() == model.layers[0].get_config()


def _update(opt, fused):
    if fused and _accel.AVAILABLE:
        from cnnlab._accel import optim

        return optim.update_for(opt, np.dtype(np.float32))
    return opt.apply


@pytest.mark.parametrize("fused", [True, False])
def test_adam_state_of_units_without_gradient_never_goes_subnormal(fused):
    # m decays by 0.9 per step once the gradient is 0: after ~850 steps it would be subnormal,
    # which makes every later update ~20x slower on x86 (measured in benchmarks/RESULTS.md)
    w = np.ones(8192, np.float32)
    opt = cl.optimizers.Adam()
    update = _update(opt, fused)
    update(w, np.full(w.size, 1e-3, np.float32))
    zero = np.zeros(w.size, np.float32)
    for _ in range(1000):
        update(w, zero)
    m = opt._slots["m"]
    tiny = np.finfo(np.float32).tiny
    assert not np.any((m != 0) & (np.abs(m) < tiny))
    assert np.all(m == 0)


@pytest.mark.parametrize("fused", [True, False])
def test_periodic_flush_zeroes_exactly_the_subnormal_slot_values(fused):
    flush = None
    if fused and _accel.AVAILABLE:
        from cnnlab._accel import kernels

        flush = kernels.flush_tiny
    tiny = np.finfo(np.float32).tiny
    values = np.array([tiny / 2, -tiny / 3, tiny, -tiny, 1e-30, 0.5, -2.0, 0.0] * 4, np.float32)
    opt = cl.optimizers.Adam()
    opt._slots = {"m": values.copy(), "v": values.reshape(4, 8).copy()}
    opt._flush_subnormals(flush)
    expected = np.where(np.abs(values) < tiny, 0, values)
    np.testing.assert_array_equal(opt._slots["m"], expected)
    np.testing.assert_array_equal(opt._slots["v"], expected.reshape(4, 8))
    assert np.count_nonzero(expected != values) == 8


def test_softmax_outputs_are_never_subnormal():
    from cnnlab.ops.activations import softmax

    p = softmax(np.array([[0.0, -90.0, -200.0]], np.float32))  # exp(-90) ~ 8e-40 is subnormal
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])


@needs_numba
def test_fused_adam_gives_the_same_numbers_as_numpy():
    from cnnlab._accel import optim

    rng = np.random.default_rng(3)
    w0 = rng.normal(size=50_000).astype(np.float32)
    results = []
    for fused in (True, False):
        opt = cl.optimizers.Adam()
        update = optim.update_for(opt, np.dtype(np.float32)) if fused else opt.apply
        w = w0.copy()
        for step in range(4):
            update(w, np.random.default_rng(step).normal(size=w.size).astype(np.float32))
        results.append((w, opt._slots["m"], opt._slots["v"], opt.iterations))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)  # the same elementwise operations in the same order


@needs_numba
@pytest.mark.parametrize(
    ("pool", "strides", "padding"),
    [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 1), "valid"), ((12, 12), (1, 1), "valid")],
)
def test_fast_max_pool_gives_the_numbers_of_the_reference(pool, strides, padding):
    from cnnlab._accel.pool import FastMaxPool

    rng = np.random.default_rng(4)
    x = rng.integers(-3, 3, size=(6, 15, 14, 8)).astype(np.float32)  # many ties
    layer = MaxPool2D(pool, strides=strides, padding=padding)
    y = layer.forward(x, training=True)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = layer.backward(dy)
    unit = FastMaxPool(layer)
    y2 = unit.forward(x, training=True)
    dx2 = unit.backward(dy)
    np.testing.assert_array_equal(y2, y)  # pooling compares and moves values: exact
    # overlapping windows add several dy into one cell in the reference's order: exact too
    np.testing.assert_array_equal(dx2.view(np.uint32), dx.view(np.uint32))


@needs_numba
@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (dict(filters=30, kernel_size=2, activation="relu"), (16, 28, 28, 1)),  # small K: one-pass kernel
        (dict(filters=6, kernel_size=3, strides=2, padding="same"), (8, 15, 14, 1)),
        (dict(filters=5, kernel_size=2, activation="relu", padding="same"), (8, 13, 13, 8)),  # compiled im2col
        (dict(filters=4, kernel_size=(2, 3), dilation_rate=2, activation="relu"), (6, 12, 11, 6)),
        (dict(filters=7, kernel_size=5, activation="tanh", padding="same"), (4, 10, 9, 3)),
    ],
    ids=str,
)
def test_fast_conv_matches_the_reference_layer(cfg, shape):
    from cnnlab._accel.conv import FastConv
    from cnnlab.ops.conv import im2col

    rng = np.random.default_rng(11)
    x = rng.normal(size=shape).astype(np.float32)
    cl.set_seed(2)
    layer = Conv2D(**cfg)
    layer.build((None, *shape[1:]))
    y = layer.forward(x, training=True)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = layer.backward(dy.copy())
    grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.release()
    unit = FastConv(layer)
    y2 = unit.forward(x, training=True)
    dx2 = unit.backward(dy.copy())
    cols = im2col(x, layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)
    k = cols.shape[-1] * cols.shape[-2] * cols.shape[-3]
    w = a64(layer.kernel).reshape(k, -1)
    assert_within(y2, y, sum_bound(a64(cols).reshape(-1, k) @ w + a64(layer.bias), k, np.float32).reshape(y.shape))
    # the activation's derivative is at most 1 for relu/linear/tanh: |dz| <= |dy|
    dz = a64(dy).reshape(-1, layer.filters)
    n = dz.shape[0]
    assert_within(layer.grads["kernel"].reshape(k, -1), grads["kernel"].reshape(k, -1),
                  sum_bound(a64(cols).reshape(-1, k).T @ dz, n, np.float32), "kernel")  # fmt: skip
    assert_within(layer.grads["bias"], grads["bias"], sum_bound(dz.sum(0), n, np.float32), "bias")
    # dx sums at most kh*kw*filters products per cell
    terms = layer.kernel.size
    assert_within(dx2, dx, sum_bound(dz.max() * w.max() * terms, terms, np.float32), "dx")


def test_plan_gives_the_cores_to_the_work_and_names_its_units():
    mlp = cl.Sequential([cl.layers.Input((4,)), Dense(3)])
    mlp.compile("sgd", "mse")
    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    with config.using_kernels("reference"):
        assert model.plan() == [
            "kernels: reference",
            "layers 0..0: Conv2D (reference)",
            "layers 1..1: MaxPooling2D (reference)",
            "layers 2..2: Flatten (reference)",
            "layers 3..3: Dense (reference)",
        ]
        assert not model._engine.plan(np.dtype(np.float32), True).compiled_threads
    with config.using_kernels("fast"):
        plan = model._engine.plan(np.dtype(np.float32), True)
        assert plan.compiled_threads == _accel.AVAILABLE
        assert not mlp._engine.plan(np.dtype(np.float32), True).compiled_threads
        if _accel.AVAILABLE:
            assert model.plan()[1] == "layers 0..1: ConvPool (accelerated)"
