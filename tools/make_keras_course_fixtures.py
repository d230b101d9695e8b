"""Write tests/fixtures/keras_course.npz: what real Keras 3 computes for the course layers of
issue 12 (run once, commit the .npz; Keras is never a dependency of cnnlab).

Run in a separate virtualenv with Keras and the PyTorch backend:

    python3 -m venv ../keras-venv && ../keras-venv/bin/pip install torch keras h5py numpy
    KERAS_BACKEND=torch ../keras-venv/bin/python tools/make_keras_course_fixtures.py

For every layer case ``{name}``: ``{name}_class`` and ``{name}_kwargs`` (a Python literal),
the input ``{name}_x``, the weights ``{name}_w0, _w1, ...`` set before calling, Keras's outputs
``{name}_train`` (``training=True``) and ``{name}_infer`` (``training=False``), and for
BatchNormalization the weights after the training call (``{name}_after_w0, ...``).
Activations: ``act_{name}_x`` / ``act_{name}_y``. One train_on_batch step of a small model with
BatchNormalization and SGD: ``step_*``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras_course.npz"
rng = np.random.default_rng(20261123)


def normal(*shape: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return (rng.normal(size=shape) * scale + shift).astype("float32")


# (name, class, kwargs, input, weights or None)
LAYER_CASES = [
    ("bn4d", "BatchNormalization", {}, normal(8, 3, 3, 4, scale=2, shift=0.5), "bn"),
    ("bn_axis1", "BatchNormalization", {"axis": 1, "momentum": 0.9, "epsilon": 0.01}, normal(6, 3, 5, shift=-1), "bn"),
    ("bn_nocenter", "BatchNormalization", {"center": False}, normal(7, 5, scale=3), "bn"),
    ("gap", "GlobalAveragePooling2D", {}, normal(2, 5, 4, 3), None),
    ("gap_keep", "GlobalAveragePooling2D", {"keepdims": True}, normal(2, 5, 4, 3), None),
    ("gmp", "GlobalMaxPooling2D", {}, normal(2, 5, 4, 3), None),
    ("gmp_keep", "GlobalMaxPooling2D", {"keepdims": True}, normal(2, 5, 4, 3), None),
    ("zeropad", "ZeroPadding2D", {"padding": ((1, 2), (0, 3))}, normal(2, 3, 4, 2), None),
    ("crop", "Cropping2D", {"cropping": ((1, 0), (2, 1))}, normal(2, 5, 6, 2), None),
    ("upsample", "UpSampling2D", {"size": (2, 3)}, normal(2, 3, 2, 2), None),
    ("reshape", "Reshape", {"target_shape": (6, -1)}, normal(2, 3, 4, 2), None),
    ("permute", "Permute", {"dims": (3, 1, 2)}, normal(2, 3, 4, 2), None),
    ("spatial_dropout", "SpatialDropout2D", {"rate": 0.3}, normal(2, 3, 3, 4), None),
    (
        "rescaling",
        "Rescaling",
        {"scale": 1 / 127.5, "offset": -1.0},
        rng.integers(0, 256, (2, 4, 4, 1)).astype("float32"),
        None,
    ),
    ("relu", "ReLU", {}, normal(3, 7, scale=3), None),
    ("relu_args", "ReLU", {"max_value": 2.5, "negative_slope": 0.1, "threshold": 0.5}, normal(3, 7, scale=3), None),
    ("relu6", "ReLU", {"max_value": 6.0}, normal(3, 7, scale=5), None),
    ("leaky", "LeakyReLU", {}, normal(3, 7, scale=3), None),
    ("leaky_02", "LeakyReLU", {"negative_slope": 0.2}, normal(3, 7, scale=3), None),
    ("softmax", "Softmax", {}, normal(3, 6, scale=4), None),
    ("softmax_axis1", "Softmax", {"axis": 1}, normal(2, 4, 3, scale=4), None),
]

ACTIVATION_NAMES = [
    "elu", "selu", "gelu", "silu", "swish", "softplus", "softsign", "hard_sigmoid",
    "relu6", "leaky_relu", "exponential", "tanh", "sigmoid",
]  # fmt: skip


def bn_weights(layer: keras.layers.Layer) -> list[np.ndarray]:
    return [
        (
            rng.uniform(0.5, 1.5, size=w.shape)
            if name in ("gamma", "moving_variance")
            else rng.normal(size=w.shape) * 0.3
        ).astype("float32")
        for name, w in ((v.name, v) for v in layer.weights)
    ]


def main() -> None:
    keras.utils.set_random_seed(0)
    out: dict[str, np.ndarray] = {
        "keras_version": np.array(keras.__version__),
        "backend": np.array(keras.backend.backend()),
    }
    for name, cls, kwargs, x, weights in LAYER_CASES:
        make = getattr(keras.layers, cls)
        infer_layer, train_layer = make(**kwargs), make(**kwargs)
        infer_layer.build(x.shape)
        train_layer.build(x.shape)
        values = bn_weights(infer_layer) if weights == "bn" else []
        if values:
            infer_layer.set_weights(values)
            train_layer.set_weights(values)
        out[f"{name}_class"] = np.array(cls)
        out[f"{name}_kwargs"] = np.array(repr(kwargs))
        out[f"{name}_x"] = x
        for i, w in enumerate(values):
            out[f"{name}_w{i}"] = w
        out[f"{name}_infer"] = keras.ops.convert_to_numpy(infer_layer(x, training=False))
        if cls != "SpatialDropout2D":  # random masks cannot match; inference is the identity
            out[f"{name}_train"] = keras.ops.convert_to_numpy(train_layer(x, training=True))
        for i, w in enumerate(train_layer.get_weights() if values else []):
            out[f"{name}_after_w{i}"] = w
    for act in ACTIVATION_NAMES:
        x = np.concatenate([normal(40, scale=3), np.array([-30, -3, 0, 3, 6, 25], "float32")])
        out[f"act_{act}_x"] = x
        out[f"act_{act}_y"] = keras.ops.convert_to_numpy(keras.activations.get(act)(x))

    # one SGD step of a model with BatchNormalization (batch statistics, moving update, gradients)
    model = keras.Sequential(
        [
            keras.Input((5, 5, 2)),
            keras.layers.Conv2D(3, 3),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    x, y = normal(8, 5, 5, 2), rng.integers(0, 3, 8)
    start = [
        *(normal(*w.shape, scale=0.5) for w in model.layers[0].get_weights()),
        *bn_weights(model.layers[1]),
        *(normal(*w.shape, scale=0.5) for w in model.layers[4].get_weights()),
    ]
    model.set_weights(start)
    out["step_x"], out["step_y"] = x, y
    for i, w in enumerate(start):
        out[f"step_w{i}"] = w
    out["step_loss"] = np.array(model.train_on_batch(x, y), "float32")
    for i, w in enumerate(model.get_weights()):
        out[f"step_after_w{i}"] = w
    out["step_predict"] = model.predict(x, verbose=0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT.name}: {len(out)} arrays, Keras {keras.__version__} ({keras.backend.backend()})")


if __name__ == "__main__":
    main()
