"""Write the Keras parity fixtures in tests/fixtures/ (run once, commit the .npz files).

Run in a separate virtualenv that has TensorFlow and Keras (never a dependency of cnnlab):

    python -m venv ../keras-env && ../keras-env/bin/pip install tensorflow-cpu keras
    KERAS_BACKEND=tensorflow ../keras-env/bin/python tools/make_keras_fixtures.py

Every fixture holds random inputs and weights and what real Keras computed from them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
rng = np.random.default_rng(20261122)

CONV_CASES = [
    # (n, h, w, c_in, filters, kernel, strides, padding, dilation, activation)
    (2, 5, 5, 1, 2, (2, 2), (1, 1), "valid", (1, 1), None),
    (2, 7, 6, 3, 4, (3, 3), (2, 2), "same", (1, 1), None),
    (1, 8, 8, 2, 3, (3, 3), (2, 2), "same", (1, 1), "relu"),
    (1, 7, 7, 2, 3, (2, 2), (2, 2), "same", (1, 1), None),
    (2, 9, 8, 2, 2, (3, 2), (1, 1), "same", (2, 2), None),
    (1, 9, 9, 1, 2, (3, 3), (1, 1), "valid", (2, 1), "tanh"),
    (3, 6, 5, 3, 5, (1, 1), (2, 1), "valid", (1, 1), "sigmoid"),
    (2, 10, 10, 4, 3, (4, 3), (3, 2), "same", (1, 1), None),
    (1, 28, 28, 1, 30, (2, 2), (1, 1), "valid", (1, 1), "relu"),
]

POOL_CASES = [
    # (kind, n, h, w, c, pool, strides, padding, integers)
    ("max", 2, 5, 5, 2, (2, 2), None, "valid", False),
    ("max", 2, 5, 5, 2, (2, 2), None, "same", False),
    ("max", 1, 7, 6, 3, (3, 3), (2, 2), "same", True),
    ("max", 1, 6, 6, 1, (3, 3), (1, 1), "valid", True),
    ("max", 1, 8, 7, 2, (2, 3), (2, 1), "same", False),
    ("avg", 2, 5, 5, 2, (2, 2), None, "same", False),
    ("avg", 1, 7, 6, 3, (3, 3), (2, 2), "same", False),
    ("avg", 1, 6, 6, 1, (3, 3), (1, 1), "valid", False),
    ("avg", 1, 8, 7, 2, (2, 3), (2, 1), "same", False),
]


def conv_fixtures() -> dict[str, np.ndarray]:
    out = {}
    for i, (n, h, w, c, f, k, s, p, d, act) in enumerate(CONV_CASES):
        layer = keras.layers.Conv2D(f, k, strides=s, padding=p, dilation_rate=d, activation=act)
        x = rng.normal(size=(n, h, w, c)).astype("float32")
        layer.build(x.shape)
        kernel = rng.normal(size=layer.kernel.shape).astype("float32")
        bias = rng.normal(size=(f,)).astype("float32")
        layer.set_weights([kernel, bias])
        out[f"conv{i}_x"], out[f"conv{i}_kernel"], out[f"conv{i}_bias"] = x, kernel, bias
        out[f"conv{i}_y"] = np.asarray(layer(x))
        out[f"conv{i}_args"] = np.array([repr((f, k, s, p, d, act))])
    return out


def pool_fixtures() -> dict[str, np.ndarray]:
    out = {}
    for i, (kind, n, h, w, c, pool, s, p, ints) in enumerate(POOL_CASES):
        cls = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
        layer = cls(pool_size=pool, strides=s, padding=p)
        # few distinct values so that windows hold ties
        x = (
            rng.integers(-3, 4, size=(n, h, w, c)).astype("float32")
            if ints
            else rng.normal(size=(n, h, w, c)).astype("float32")
        )
        out[f"pool{i}_x"] = x
        out[f"pool{i}_y"] = np.asarray(layer(x))
        out[f"pool{i}_args"] = np.array([repr((kind, pool, s, p))])
    return out


def dense_fixtures() -> dict[str, np.ndarray]:
    layer = keras.layers.Dense(4, activation="softmax")
    x = (rng.normal(size=(3, 2, 5)) * 3).astype("float32")
    layer.build(x.shape)
    kernel = rng.normal(size=(5, 4)).astype("float32")
    bias = rng.normal(size=(4,)).astype("float32")
    layer.set_weights([kernel, bias])
    return {"dense_x": x, "dense_kernel": kernel, "dense_bias": bias, "dense_y": np.asarray(layer(x))}


def training_fixtures() -> dict[str, np.ndarray]:
    """Three train_on_batch steps of a small CNN from fixed weights, per optimizer.

    Inputs are raw 0..255 values, as in the lecture, so softmax saturates and the
    from-logits cross-entropy matters."""
    out = {}
    x = rng.integers(0, 256, size=(8, 6, 6, 1)).astype("float32")
    labels = rng.integers(0, 3, size=8)
    y = np.eye(3, dtype="float32")[labels]
    out["train_x"], out["train_y"] = x, y
    optimizers = {
        "adam": lambda: keras.optimizers.Adam(),
        "sgd": lambda: keras.optimizers.SGD(learning_rate=0.001),
        "sgd_momentum": lambda: keras.optimizers.SGD(learning_rate=0.001, momentum=0.9),
        "sgd_nesterov": lambda: keras.optimizers.SGD(learning_rate=0.001, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(),
        "rmsprop_momentum": lambda: keras.optimizers.RMSprop(momentum=0.5),
    }
    initial = None
    for name, make in optimizers.items():
        model = keras.Sequential(
            [
                keras.Input((6, 6, 1)),
                keras.layers.Conv2D(3, (2, 2), activation="relu"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(5, activation="relu"),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        if initial is None:
            initial = [(rng.normal(size=w.shape) * 0.05).astype("float32") for w in model.get_weights()]
            for j, w in enumerate(initial):
                out[f"train_w0_{j}"] = w
        model.set_weights(initial)
        model.compile(optimizer=make(), loss="categorical_crossentropy", metrics=["accuracy"])
        losses = []
        for _ in range(3):
            losses.append(model.train_on_batch(x, y, return_dict=True)["loss"])
        for j, w in enumerate(model.get_weights()):
            out[f"train_{name}_w3_{j}"] = w
        out[f"train_{name}_losses"] = np.array(losses, dtype="float64")
        out[f"train_{name}_eval"] = np.array(model.evaluate(x, y, verbose=0), dtype="float64")
    return out


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    data = {**conv_fixtures(), **pool_fixtures(), **dense_fixtures(), **training_fixtures()}
    data["versions"] = np.array([f"keras {keras.__version__}, backend {keras.backend.backend()}"])
    target = OUT / "keras_parity.npz"
    np.savez_compressed(target, **data)
    print(f"wrote {target} ({len(data)} arrays) with {data['versions'][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
