"""The engine's behaviours: frozen layers, nested models, large pooling windows, the kernel
switch, and the first-run compile notice, on both kernel paths."""

from __future__ import annotations

import time

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import _accel, config
from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D
from cnnlab.ops.pool import pool2d_naive

KERNELS = ["reference", "fast"]


def blobs(n=64, seed=0, size=6):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(0, 0.3, size=(n, size, size, 1)).astype(np.float32)
    for i, label in enumerate(labels):
        x[i, 2 * label : 2 * label + 2, :, 0] += 2.0
    return x, labels


def cnn():
    return cl.Sequential(
        [
            cl.layers.Input((6, 6, 1)),
            Conv2D(4, 2, activation="relu"),
            MaxPool2D(),
            Flatten(),
            Dense(5, activation="relu"),
            Dense(3, activation="softmax"),
        ]
    )


# ----------------------------------------------------------------- frozen layers
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("recompile", [False, True])
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("frozen_index", [0, 3])
def test_a_layer_frozen_after_the_first_fit_keeps_its_weights_bit_for_bit(kernels, recompile, optimizer, frozen_index):
    x, labels = blobs()
    cl.set_seed(0)
    model = cnn()
    with config.using_kernels(kernels):
        model.compile(optimizer, "sparse_categorical_crossentropy")
        model.fit(x, labels, epochs=1, batch_size=16, verbose=0)
        frozen = model.layers[frozen_index]
        frozen.trainable = False
        if recompile:
            model.compile(optimizer, "sparse_categorical_crossentropy")
        kept = frozen.get_weights()
        others = [layer.get_weights() for layer in model.layers if layer is not frozen and layer.weights]
        model.fit(x, labels, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(frozen.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(a, b)
    moved = [layer.get_weights() for layer in model.layers if layer is not frozen and layer.weights]
    assert all(not np.array_equal(a[0], b[0]) for a, b in zip(moved, others, strict=True))
    trainable = sum(w.size for w in model.trainable_weights)
    assert trainable == model.count_params() - frozen.count_params()


@pytest.mark.parametrize("kernels", KERNELS)
def test_unfreezing_keeps_the_optimizer_state_of_the_other_weights(kernels):
    """The Adam moments follow each weight when the set of trainable weights changes."""
    x, labels = blobs()
    cl.set_seed(0)
    model = cnn()
    with config.using_kernels(kernels):
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, labels, epochs=1, batch_size=16, verbose=0)
        last = model.layers[-1]
        store = model._engine.store
        lo, hi = store.span(last, "kernel")
        m_before = model.optimizer._slots["m"][lo:hi].copy()
        model.layers[0].trainable = False
        model._engine.plan(np.dtype(np.float32), training=True)  # rebinds the store
        lo2, hi2 = store.span(last, "kernel")
        assert (lo2, hi2) != (lo, hi)  # the conv kernel and bias left the front of the array
        np.testing.assert_array_equal(model.optimizer._slots["m"][lo2:hi2], m_before)


# ----------------------------------------------------------------- nested models
@pytest.mark.parametrize("kernels", KERNELS)
def test_a_sequential_nested_in_a_sequential_predicts_trains_summarises_and_saves(kernels, tmp_path):
    x, labels = blobs()
    cl.set_seed(4)
    features = cl.Sequential([Conv2D(4, 2, activation="relu"), MaxPool2D(), Flatten()], name="features")
    model = cl.Sequential([cl.layers.Input((6, 6, 1)), features, Dense(3, activation="softmax")])
    cl.set_seed(4)
    flat = cnn_without_hidden()
    flat.set_weights(model.get_weights())
    assert [layer.name for layer in model.layers] == ["features", "dense_1"] or len(model.layers) == 2
    with config.using_kernels(kernels):
        np.testing.assert_array_equal(model.predict(x), flat.predict(x))
        for m in (model, flat):
            m.compile("adam", "sparse_categorical_crossentropy")
            cl.set_seed(9)
            m.fit(x, labels, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(model.get_weights(), flat.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the same leaf layers run in the same order
    lines = []
    model.summary(print_fn=lines.append)
    assert any("features (Sequential)" in line and "(None, 16)" in line and " 20 " in line for line in lines)
    assert "Total params: 71" in "\n".join(lines)
    path = model.save(tmp_path / "nested.cnnlab")
    again = cl.models.load_model(path)
    assert type(again.layers[0]) is cl.Sequential and len(again.layers[0].layers) == 3
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    features.trainable = False
    kept = features.get_weights()
    with config.using_kernels(kernels):
        model.fit(x, labels, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(features.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(a, b)


def cnn_without_hidden():
    return cl.Sequential(
        [cl.layers.Input((6, 6, 1)), Conv2D(4, 2, activation="relu"), MaxPool2D(), Flatten(), Dense(3, "softmax")]
    )


def test_nested_model_errors():
    inner = cl.Sequential([Dense(2)])
    with pytest.raises(ValueError, match="cannot contain itself"):
        inner.add(inner)
    with pytest.raises(ValueError, match="expected a list of layers"):
        cl.Sequential(Dense(2))


# ----------------------------------------------------------------- large pooling windows
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize(("pool", "strides"), [((12, 12), None), ((14, 14), (1, 1)), ((12, 13), (3, 2))])
def test_large_max_pool_windows_train_with_the_loop_reference_gradient(kernels, pool, strides):
    """Windows of 144+ cells: the winner index must hold every offset (int8 could not)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 28, 28, 3))
    layer = MaxPool2D(pool, strides=strides)
    model = cl.Sequential([cl.layers.Input((28, 28, 3)), layer, Flatten(), Dense(2)])
    config.set_floatx("float64")
    try:
        model = cl.Sequential([cl.layers.Input((28, 28, 3)), layer, Flatten(), Dense(2)])
        model.compile("sgd", "mse")
        with config.using_kernels(kernels):
            plan = model._engine.plan(np.dtype(np.float64), training=True)
            unit = plan.steps[0].unit
            y = unit.forward(x, training=True)
            dy = rng.normal(size=y.shape)
            dx = unit.backward(dy)
            unit.release()
    finally:
        config.set_floatx("float32")
    np.testing.assert_array_equal(y, pool2d_naive(x, pool, strides, "valid", "max"))
    # loop reference of the gradient: each dy goes to the first maximum of its window
    s = strides or pool
    expected = np.zeros_like(x)
    for n in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                for c in range(y.shape[3]):
                    window = x[n, i * s[0] : i * s[0] + pool[0], j * s[1] : j * s[1] + pool[1], c]
                    r, q = np.unravel_index(int(np.argmax(window)), window.shape)
                    expected[n, i * s[0] + r, j * s[1] + q, c] += dy[n, i, j, c]
    np.testing.assert_allclose(dx, expected, rtol=0, atol=1e-12 * np.abs(dy).max() * 100)


# ----------------------------------------------------------------- the switch
def test_set_kernels_checks_its_argument_and_the_environment_default(monkeypatch):
    with pytest.raises(ValueError, match="expected 'reference' or 'fast', received 'numba'"):
        config.set_kernels("numba")
    monkeypatch.setattr(config, "_KERNELS", None)
    monkeypatch.setenv("CNNLAB_KERNELS", "reference")
    assert config.kernels() == "reference"
    monkeypatch.setattr(config, "_KERNELS", None)
    monkeypatch.setenv("CNNLAB_KERNELS", "quick")
    with pytest.raises(ValueError, match="CNNLAB_KERNELS: expected 'reference' or 'fast'"):
        config.kernels()
    monkeypatch.setattr(config, "_KERNELS", "fast")


@pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed")
def test_compilation_is_announced_and_kept_out_of_epoch_times(capsys, monkeypatch):
    """A compile during an epoch is announced once, before the wait, and its seconds are
    taken out of the epoch's time shown (the stand-in 'compiles' for one second)."""
    x, labels = blobs()
    cl.set_seed(0)
    model = cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    fake = {"n": 0}

    class FakeWatch:
        """Stands in for numba's compile events."""

        def __init__(self, on_first):
            self.on_first, self.seconds = on_first, 0.0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    from cnnlab.engine import training

    original = training.Engine.train_batch

    def train_batch(self, plan, xb, yb, *args):
        if fake["n"] == 0:
            watch.on_first()
            time.sleep(1.0)
            watch.seconds += 1.0
        fake["n"] += 1
        return original(self, plan, xb, yb, *args)

    def make_watch(on_first):
        global watch
        watch = FakeWatch(on_first)
        return watch

    monkeypatch.setattr(_accel, "CompileWatch", make_watch)
    monkeypatch.setattr(training.Engine, "train_batch", train_batch)
    model.fit(x, labels, epochs=1, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert out.count("compiling kernels for this CPU, once") == 1
    assert out.index("compiling kernels") < out.index("4/4")
    assert model.kernel_compile_seconds == 1.0
    last = out.strip().splitlines()[-1]
    assert last.startswith("4/4") and " 0s " in last  # not "1s": compilation is not training time


@pytest.mark.slow
@pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed")
def test_without_a_writable_cache_kernels_compile_in_memory_and_say_so_once():
    """A user who can write neither the package directory nor a cache directory: numba finds no
    place to cache ("no locator available"); cnnlab says so once and still trains."""
    import subprocess
    import sys

    script = """
import warnings
from numba.core import caching
caching.CacheImpl._locator_classes = []   # as for a read-only install and no writable cache dir
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    import numpy as np, cnnlab as cl
    from cnnlab import _accel
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype("float32")
    model = cl.Sequential([cl.layers.Input((6, 6, 1)), cl.layers.Conv2D(2, 3), cl.layers.Flatten(), cl.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(x, np.zeros((8, 2), "float32"), verbose=0)
notices = [str(w.message) for w in said if issubclass(w.category, _accel.KernelNotice)]
assert not _accel.CACHE and len(notices) == 1 and "no writable place to cache" in notices[0], notices
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
