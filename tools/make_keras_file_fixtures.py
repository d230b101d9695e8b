"""Write small model files with real Keras 3, for tests/test_keras_files.py.

Run in an environment with Keras 3 (any backend; torch was used), from the repository root:

    KERAS_BACKEND=torch python tools/make_keras_file_fixtures.py

It writes into tests/fixtures/keras_files/:

* ``cnn_bn.keras``: a trained Sequential CNN (Conv2D, BatchNormalization, MaxPooling2D, Dropout,
  Flatten, Dense) compiled with Adam;
* ``layers_mix.keras``: every other layer cnnlab maps (padding, cropping, upsampling, average
  pooling, activation layers, permute, reshape, rescaling, spatial dropout), SGD with momentum;
* ``gmp_rmsprop.h5`` (legacy HDF5): Conv2D without bias, BatchNormalization without center,
  MaxPooling2D, Dropout, GlobalMaxPooling2D, Dense, RMSprop;
* ``resume_sgd.keras``: a functional model that is a plain chain of layers (no dropout), trained
  two SGD-momentum steps;
* ``residual_sep.keras`` and ``residual_sep.h5`` (Keras 3's legacy writer): a functional residual
  CNN (RandomFlip, Conv2D, SeparableConv2D, BatchNormalization, Add, DepthwiseConv2D, Conv2D with
  groups, two pooling branches joined by Concatenate), trained with Adam; its inputs and Keras's
  predictions in ``functional_expected.npz`` (``x``, ``y``) with the weights in Keras's order
  (``w_<i>``). ``python tools/make_keras_file_fixtures.py functional`` writes only these;
* ``expected.npz``: for each file ``<stem>_x`` inputs and ``<stem>_y`` Keras's predictions;
  ``cnn_bn_opt_<i>`` the Keras optimizer's variables in order with their paths in ``cnn_bn_opt_paths``;
  ``resume_sgd_xb``/``_yb`` a batch and ``resume_sgd_after_<i>`` the weights after one more
  ``train_on_batch`` in Keras.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import keras
import numpy as np
from keras import layers

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras_files"


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, steps: int) -> None:
    for i in range(steps):
        model.train_on_batch(x[i % 2 :: 2], y[i % 2 :: 2])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(13)
    rng = np.random.default_rng(13)
    expected: dict[str, np.ndarray] = {}

    # --- a CNN with BatchNormalization and Dropout, Adam; .keras and legacy .h5
    cnn = keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Conv2D(6, (2, 2), padding="same"),
            layers.Activation("relu"),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(5, activation="softmax"),
        ],
        name="cnn_bn",
    )
    cnn.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((8, 10, 10, 3), dtype=np.float32)
    train(cnn, x, rng.integers(0, 5, 8), 4)
    cnn.save(OUT / "cnn_bn.keras")
    expected["cnn_bn_x"] = x[:4]
    expected["cnn_bn_y"] = keras.ops.convert_to_numpy(cnn.predict(x[:4], verbose=0))
    variables = cnn.optimizer.variables
    expected["cnn_bn_opt_paths"] = np.array([v.path for v in variables])
    for i, v in enumerate(variables):
        expected[f"cnn_bn_opt_{i}"] = keras.ops.convert_to_numpy(v.value)

    # --- the other layers cnnlab maps, SGD with momentum
    mix = keras.Sequential(
        [
            keras.Input((9, 9, 2)),
            layers.Rescaling(0.5, offset=-0.25),
            layers.ZeroPadding2D(((1, 0), (2, 1))),
            layers.Conv2D(3, 3, strides=2, activation="tanh"),
            layers.UpSampling2D(2),
            layers.Cropping2D(((1, 0), (0, 1))),
            layers.AveragePooling2D(2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.SpatialDropout2D(0.1),
            layers.Conv2D(4, 1, dilation_rate=1),
            layers.ReLU(max_value=1.0),
            layers.Permute((2, 1, 3)),
            layers.GlobalAveragePooling2D(keepdims=True),
            layers.Reshape((4,)),
            layers.Dense(3),
            layers.Softmax(),
        ],
        name="layers_mix",
    )
    mix.compile(keras.optimizers.SGD(0.05, momentum=0.9), "categorical_crossentropy")
    x = rng.random((8, 9, 9, 2), dtype=np.float32)
    train(mix, x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)], 3)
    mix.save(OUT / "layers_mix.keras")
    expected["layers_mix_x"] = x[:4]
    expected["layers_mix_y"] = keras.ops.convert_to_numpy(mix.predict(x[:4], verbose=0))

    # --- no bias, no center, global max pooling, RMSprop; legacy .h5
    gmp = keras.Sequential(
        [
            keras.Input((7, 7, 1)),
            layers.Conv2D(5, 3, padding="same", use_bias=False),
            layers.BatchNormalization(center=False),
            layers.MaxPooling2D(2, strides=1),
            layers.Dropout(0.2),
            layers.Conv2D(4, 2, activation="relu"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(3, activation="softmax"),
        ],
        name="gmp_rmsprop",
    )
    gmp.compile(keras.optimizers.RMSprop(0.01), "sparse_categorical_crossentropy")
    x = rng.random((8, 7, 7, 1), dtype=np.float32)
    train(gmp, x, rng.integers(0, 3, 8), 3)
    gmp.save(OUT / "gmp_rmsprop.h5")
    expected["gmp_rmsprop_x"] = x[:4]
    expected["gmp_rmsprop_y"] = keras.ops.convert_to_numpy(gmp.predict(x[:4], verbose=0))

    # --- a functional model that is a plain chain; resuming training: one more Keras step after saving
    inputs = keras.Input((5, 5, 1))
    h = layers.Conv2D(2, 2, activation="relu")(inputs)
    h = layers.Flatten()(h)
    outputs = layers.Dense(3, activation="softmax")(h)
    resume = keras.Model(inputs, outputs, name="resume_sgd")
    resume.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    x = rng.random((8, 5, 5, 1), dtype=np.float32)
    y = rng.integers(0, 3, 8)
    train(resume, x, y, 2)
    resume.save(OUT / "resume_sgd.keras")
    expected["resume_sgd_x"] = x[:4]
    expected["resume_sgd_y"] = keras.ops.convert_to_numpy(resume.predict(x[:4], verbose=0))
    expected["resume_sgd_xb"], expected["resume_sgd_yb"] = x, y
    resume.train_on_batch(x, y)
    for i, w in enumerate(resume.get_weights()):
        expected[f"resume_sgd_after_{i}"] = w

    np.savez_compressed(OUT / "expected.npz", **expected, keras_version=np.array(keras.__version__))
    total = sum(p.stat().st_size for p in OUT.iterdir())
    backend = os.environ.get("KERAS_BACKEND")
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, Keras {keras.__version__} ({backend})")


def functional() -> None:
    """The functional fixtures (their own seed and expected file, so the others stay as they are)."""
    OUT.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(17)
    rng = np.random.default_rng(17)
    inputs = keras.Input((12, 12, 2), name="image")
    h = layers.RandomFlip("horizontal", name="flip")(inputs)
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(h)
    s = layers.SeparableConv2D(8, 3, padding="same", name="sep")(h)
    s = layers.BatchNormalization(name="bn")(s)
    h = layers.Add(name="residual")([h, s])
    h = layers.Activation("relu", name="relu")(h)
    h = layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")(h)
    h = layers.Conv2D(8, 1, groups=4, activation="relu", name="grouped")(h)
    a = layers.GlobalAveragePooling2D(name="gap")(h)
    m = layers.GlobalMaxPooling2D(name="gmp")(h)
    h = layers.Concatenate(name="concat")([a, m])
    outputs = layers.Dense(4, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs, name="residual_sep")
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((8, 12, 12, 2), dtype=np.float32)
    train(model, x, rng.integers(0, 4, 8), 4)
    model.save(OUT / "residual_sep.keras")
    model.save(OUT / "residual_sep.h5")
    expected = {"x": x[:4], "y": keras.ops.convert_to_numpy(model.predict(x[:4], verbose=0))}
    for i, w in enumerate(model.get_weights()):
        expected[f"w_{i}"] = w
    np.savez_compressed(OUT / "functional_expected.npz", **expected, keras_version=np.array(keras.__version__))
    print(f"wrote the functional fixtures, Keras {keras.__version__} ({os.environ.get('KERAS_BACKEND')})")


if __name__ == "__main__":
    if sys.argv[1:] != ["functional"]:
        main()
    functional()
