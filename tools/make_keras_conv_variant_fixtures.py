"""Write tests/fixtures/keras_conv_variants.npz: what real Keras 3 computes for DepthwiseConv2D,
SeparableConv2D and Conv2D(groups=...) (run once, commit the .npz; Keras is never a dependency of cnnlab).

Run in a separate virtualenv with Keras and the PyTorch backend:

    python3 -m venv ../keras-venv && ../keras-venv/bin/pip install torch keras numpy
    KERAS_BACKEND=torch ../keras-venv/bin/python tools/make_keras_conv_variant_fixtures.py

For every layer case ``{name}``: ``{name}_class``, ``{name}_kwargs`` (a Python literal), the
input ``{name}_x``, the weights ``{name}_w0, _w1, ...`` set before calling (in Keras's order),
Keras's weight names ``{name}_weight_names`` and its config keys ``{name}_config_keys``, and the
output ``{name}_y``. One SGD ``train_on_batch`` step of a small model holding all three layers:
``step_x``, ``step_y``, ``step_w*`` (start), ``step_loss``, ``step_after_w*``, ``step_predict``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras_conv_variants.npz"
rng = np.random.default_rng(20261124)


def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.normal(size=shape) * scale).astype("float32")


# (name, class, kwargs, input shape)
LAYER_CASES = [
    ("dw_3x3", "DepthwiseConv2D", {"kernel_size": 3}, (2, 6, 5, 3)),
    (
        "dw_dm2_same_s2",
        "DepthwiseConv2D",
        {"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2},
        (2, 7, 6, 3),
    ),
    ("dw_dilated", "DepthwiseConv2D", {"kernel_size": 2, "dilation_rate": 2, "padding": "same"}, (2, 6, 6, 2)),
    (
        "dw_rect_relu_nobias",
        "DepthwiseConv2D",
        {"kernel_size": (3, 2), "strides": (2, 1), "depth_multiplier": 3, "activation": "relu", "use_bias": False},
        (2, 7, 5, 2),
    ),
    (
        "dw_s2_d2_same",
        "DepthwiseConv2D",
        {"kernel_size": 2, "strides": 2, "dilation_rate": 2, "padding": "same"},
        (2, 7, 8, 2),
    ),
    ("sep_3x3_same", "SeparableConv2D", {"filters": 4, "kernel_size": 3, "padding": "same"}, (2, 5, 5, 3)),
    (
        "sep_dm2_s2_relu",
        "SeparableConv2D",
        {"filters": 5, "kernel_size": 2, "strides": 2, "depth_multiplier": 2, "activation": "relu"},
        (2, 7, 6, 3),
    ),
    (
        "sep_dilated_nobias",
        "SeparableConv2D",
        {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "use_bias": False},
        (2, 7, 7, 2),
    ),
    ("grp2_same", "Conv2D", {"filters": 6, "kernel_size": 3, "padding": "same", "groups": 2}, (2, 5, 5, 4)),
    (
        "grp3_s2",
        "Conv2D",
        {"filters": 3, "kernel_size": 2, "strides": 2, "groups": 3, "activation": "tanh"},
        (2, 6, 7, 6),
    ),
    (
        "grp4_depthwise_like",
        "Conv2D",
        {"filters": 8, "kernel_size": (2, 3), "groups": 4, "use_bias": False},
        (2, 5, 6, 4),
    ),
]


def main() -> None:
    keras.utils.set_random_seed(0)
    out: dict[str, np.ndarray] = {
        "keras_version": np.array(keras.__version__),
        "backend": np.array(keras.backend.backend()),
    }
    for name, cls, kwargs, shape in LAYER_CASES:
        layer = getattr(keras.layers, cls)(**kwargs)
        x = normal(*shape)
        layer.build(x.shape)
        values = [normal(*w.shape, scale=0.5) for w in layer.weights]
        layer.set_weights(values)
        out[f"{name}_class"] = np.array(cls)
        out[f"{name}_kwargs"] = np.array(repr(kwargs))
        out[f"{name}_x"] = x
        out[f"{name}_weight_names"] = np.array([v.name for v in layer.weights])
        out[f"{name}_config_keys"] = np.array(sorted(layer.get_config()))
        for i, w in enumerate(values):
            out[f"{name}_w{i}"] = w
        out[f"{name}_y"] = keras.ops.convert_to_numpy(layer(x))

    # one SGD step of a model with all three layers (forward, backward through each, the update)
    model = keras.Sequential(
        [
            keras.Input((7, 7, 4)),
            keras.layers.Conv2D(6, 3, padding="same", groups=2, activation="relu"),
            keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, activation="relu"),
            keras.layers.SeparableConv2D(4, 2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    x, y = normal(6, 7, 7, 4), rng.integers(0, 3, 6)
    start = [normal(*w.shape, scale=0.5) for w in model.get_weights()]
    model.set_weights(start)
    out["step_weight_names"] = np.array([v.path for v in model.weights])
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
