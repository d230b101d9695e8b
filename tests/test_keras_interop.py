"""Files cnnlab writes, loaded by real Keras 3 (the ``interop`` extra: ``pip install -e '.[interop]'``,
which ``./dev`` installs: Keras and torch for its CPU backend).

Keras runs in a subprocess of this very Python (``sys.executable``) with ``KERAS_BACKEND=torch``
(the backend is chosen before Keras is imported), for predictions and for one training step.
``CNNLAB_KERAS_PYTHON`` may name another interpreter that has Keras (e.g. a separate virtual
environment). Skipped, with the reason, only where Keras cannot be installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from tests.numerics import a64, assert_within, gamma, unit_roundoff
from tests.test_keras_files import prediction_bound, small_model

KERAS_PYTHON = os.environ.get("CNNLAB_KERAS_PYTHON") or (sys.executable if importlib.util.find_spec("keras") else None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        KERAS_PYTHON is None,
        reason="Keras is not installed: pip install -e '.[interop]' (or set CNNLAB_KERAS_PYTHON to a Python with it)",
    ),
]
U = unit_roundoff("float32")

PREDICT = """
import sys, numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
data = np.load(sys.argv[2])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model.predict(data["x"], verbose=0)))
"""

TRAIN = """
import sys, numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
data = np.load(sys.argv[2])
model.train_on_batch(data["x"], data["y"])
np.savez(sys.argv[3], *[keras.ops.convert_to_numpy(w) for w in model.get_weights()],
         iterations=keras.ops.convert_to_numpy(model.optimizer.iterations))
"""


def run_keras(script: str, backend: str, *args: Path) -> None:
    # CNNLAB_KERAS_BACKEND may choose another backend for the predictions (e.g. numpy or jax)
    backend = os.environ.get("CNNLAB_KERAS_BACKEND", "torch") if backend == "predict" else "torch"
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [KERAS_PYTHON, "-c", script, *map(str, args)], env=env, capture_output=True, text=True, timeout=600
    )
    if backend == "torch" and "No module named 'torch'" in done.stderr:
        pytest.skip("torch is not installed with Keras: the training check needs Keras's torch backend")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_loads_cnnlab_file_and_predicts_the_same(tmp_path, suffix):
    model = small_model(dropout=True)
    path = model.save(tmp_path / f"net{suffix}")
    x = np.random.default_rng(5).random((4, 8, 8, 2), dtype=np.float32)
    np.savez(tmp_path / "data.npz", x=x)
    run_keras(PREDICT, "predict", path, tmp_path / "data.npz", tmp_path / "keras.npy")
    theirs = np.load(tmp_path / "keras.npy")
    assert_within(model.predict(x), theirs, 2 * prediction_bound(model, x), f"Keras on cnnlab's {suffix}")


OPTIMIZERS = {
    "sgd_momentum": lambda: cl.optimizers.SGD(0.1, momentum=0.9),
    # the learning rate at step 2 is 0.025: Keras must have the schedule and the step count
    "sgd_schedule": lambda: cl.optimizers.SGD(cl.schedules.ExponentialDecay(0.1, 1, 0.5), momentum=0.9),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_keras_continues_cnnlab_training(tmp_path, name):
    """One Keras train_on_batch after loading equals one cnnlab step: same optimizer state."""
    model = cl.Sequential(
        [
            cl.layers.Input((5, 5, 1)),
            cl.layers.Conv2D(2, 2, activation="relu"),
            cl.layers.Flatten(),
            cl.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(OPTIMIZERS[name](), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x, y = rng.random((8, 5, 5, 1), dtype=np.float32), rng.integers(0, 3, 8)
    for i in range(2):
        model.train_on_batch(x[i::2], y[i::2])
    path = model.save(tmp_path / "net.keras")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    run_keras(TRAIN, "torch", path, tmp_path / "batch.npz", tmp_path / "after.npz")
    start = model.get_weights()
    model.train_on_batch(x, y)
    after = np.load(tmp_path / "after.npz")
    assert int(after["iterations"]) == 3
    k = 8 * 4 * 4  # the longest gradient sum: batch x conv positions (see test_keras_files)
    for i, (mine, before) in enumerate(zip(model.get_weights(), start, strict=True)):
        theirs = after[f"arr_{i}"]
        step = a64(theirs - before).max()
        bound = 2 * gamma(k, "float32") * k * max(step, 1e-6) + 4 * U * a64(theirs)
        assert_within(mine, theirs, bound, f"weight {i} after Keras's step")


def functional_model() -> cl.Model:
    """A small residual CNN: SeparableConv2D and a shortcut joined by Add, two pooling branches joined
    by Concatenate, DepthwiseConv2D and a grouped Conv2D."""
    x = cl.Input((8, 8, 2), name="image")
    h = cl.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(x)
    s = cl.layers.SeparableConv2D(4, 3, padding="same", name="sep")(h)
    h = cl.layers.Add(name="residual")([h, s])
    h = cl.layers.DepthwiseConv2D(3, name="depthwise")(h)
    h = cl.layers.Conv2D(4, 1, groups=2, activation="relu", name="grouped")(h)
    a = cl.layers.GlobalAveragePooling2D(name="gap")(h)
    m = cl.layers.GlobalMaxPooling2D(name="gmp")(h)
    y = cl.layers.Dense(3, activation="softmax", name="probs")(cl.layers.Concatenate(name="concat")([a, m]))
    return cl.Model(x, y, name="residual_net")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_loads_cnnlab_functional_file_and_predicts_the_same(tmp_path, suffix):
    """Tolerance: both sides are float32 computations of one function; cnnlab's distance from it is
    estimated by a float64 run of the same model, Keras's taken to be at most twice that plus a few
    roundings of the result."""
    model = functional_model()
    x = np.random.default_rng(5).random((4, 8, 8, 2), dtype=np.float32)
    model.predict(x)
    path = model.save(tmp_path / f"net{suffix}")
    np.savez(tmp_path / "data.npz", x=x)
    run_keras(PREDICT, "predict", path, tmp_path / "data.npz", tmp_path / "keras.npy")
    theirs = np.load(tmp_path / "keras.npy")
    got = model.predict(x)
    cl.config.set_floatx("float64")
    try:
        twin = cl.Model.from_config(model.get_config())
        twin.set_weights([a64(w) for w in model.get_weights()])
        exact = twin.predict(a64(x))
    finally:
        cl.config.set_floatx("float32")
    bound = 3 * np.abs(a64(got) - exact) + 8 * U * np.abs(exact)
    assert_within(got, theirs, bound, f"Keras on cnnlab's functional {suffix}")


def test_keras_continues_cnnlab_training_of_a_functional_model(tmp_path):
    """One Keras train_on_batch after loading equals one cnnlab step (Adam: the slots must be in
    Keras's variable order for a graph too)."""
    model = functional_model()
    model.compile(cl.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x, y = rng.random((8, 8, 8, 2), dtype=np.float32), rng.integers(0, 3, 8)
    for i in range(2):
        model.train_on_batch(x[i::2], y[i::2])
    path = model.save(tmp_path / "net.keras")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    run_keras(TRAIN, "torch", path, tmp_path / "batch.npz", tmp_path / "after.npz")
    start = model.get_weights()
    model.train_on_batch(x, y)
    after = np.load(tmp_path / "after.npz")
    assert int(after["iterations"]) == 3
    k = 8 * 8 * 8 * 9  # the longest gradient sum: batch x positions x 3x3 window
    for i, (mine, before) in enumerate(zip(model.get_weights(), start, strict=True)):
        theirs = after[f"arr_{i}"]
        step = a64(theirs - before).max()
        # Adam's step is lr * m / (sqrt(v) + eps): relative rounding of the gradients moves it by at most
        # a few gamma_k of the step, except where the gradient is ~0 (m/sqrt(v) then is ill-conditioned)
        bound = 2 * gamma(k, "float32") * k * max(step, 1e-6) + 4 * U * a64(theirs)
        assert_within(mine, theirs, bound, f"weight {i} after Keras's step")


TRAIN_AND_SAVE = """
import sys, json, numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
data = np.load(sys.argv[2])
model.train_on_batch(data["x"], data["y"])
np.savez(sys.argv[3], *[keras.ops.convert_to_numpy(w) for w in model.get_weights()],
         iterations=keras.ops.convert_to_numpy(model.optimizer.iterations),
         loss=json.dumps({"class_name": type(model.loss).__name__, **model.loss.get_config()}))
model.save(sys.argv[4])
"""

FROM_LOGITS = {
    "sparse": (lambda: cl.losses.SparseCategoricalCrossentropy(from_logits=True), False),
    "binary_smoothing": (lambda: cl.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), True),
}


@pytest.mark.parametrize("name", list(FROM_LOGITS))
def test_from_logits_loss_round_trips_through_keras(tmp_path, name):
    """A loss with from_logits=True (a last Dense without softmax) written by cnnlab: Keras reads it
    as such (its next step equals cnnlab's), and the file Keras writes back loads compiled in cnnlab
    with the same loss."""
    import json

    make, onehot = FROM_LOGITS[name]
    model = cl.Sequential(
        [cl.layers.Input((5, 5, 1)), cl.layers.Conv2D(2, 2, activation="relu"), cl.layers.Flatten(), cl.layers.Dense(3)]
    )
    model.compile(cl.optimizers.Adam(0.01), make())
    rng = np.random.default_rng(3)
    x, labels = rng.random((8, 5, 5, 1), dtype=np.float32), rng.integers(0, 3, 8)
    y = np.eye(3, dtype=np.float32)[labels] if onehot else labels
    for i in range(2):
        model.train_on_batch(x[i::2], y[i::2])
    path = model.save(tmp_path / "net.keras")
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    run_keras(TRAIN_AND_SAVE, "torch", path, tmp_path / "batch.npz", tmp_path / "after.npz", tmp_path / "back.keras")
    after = np.load(tmp_path / "after.npz")
    keras_loss = json.loads(str(after["loss"]))
    assert keras_loss["class_name"] == type(model.loss).__name__ and keras_loss["from_logits"] is True
    assert keras_loss.get("label_smoothing", 0.0) == model.loss.get_config().get("label_smoothing", 0.0)
    start = model.get_weights()
    model.train_on_batch(x, y)
    assert int(after["iterations"]) == 3
    k = 8 * 4 * 4  # the longest gradient sum: batch x conv positions
    for i, (mine, before) in enumerate(zip(model.get_weights(), start, strict=True)):
        theirs = after[f"arr_{i}"]
        step = a64(theirs - before).max()
        bound = 2 * gamma(k, "float32") * k * max(step, 1e-6) + 4 * U * a64(theirs)
        assert_within(mine, theirs, bound, f"weight {i} after Keras's step")
    back = cl.models.load_model(tmp_path / "back.keras")
    assert back.compiled and type(back.loss) is type(model.loss)
    assert back.loss.get_config() == model.loss.get_config() and back.loss.from_logits
    assert back.optimizer.iterations == 3
