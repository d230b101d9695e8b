"""cnnlab against outputs computed once with real Keras 3 (tests/fixtures/keras_parity.npz,
written by tools/make_keras_fixtures.py; Keras is not needed to run these tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.layers import AveragePooling2D, Conv2D, Dense, Flatten, MaxPooling2D

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "keras_parity.npz")


def cases(prefix):
    return sorted(int(k[len(prefix) : -len("_args")]) for k in FIXTURES if k.startswith(prefix) and k.endswith("_args"))


@pytest.mark.parametrize("i", cases("conv"))
def test_conv2d_matches_keras(i):
    filters, kernel, strides, padding, dilation, activation = ast.literal_eval(str(FIXTURES[f"conv{i}_args"][0]))
    layer = Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation, activation=activation)
    x = FIXTURES[f"conv{i}_x"]
    layer(x)
    layer.set_weights([FIXTURES[f"conv{i}_kernel"], FIXTURES[f"conv{i}_bias"]])
    np.testing.assert_allclose(layer(x), FIXTURES[f"conv{i}_y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("i", cases("pool"))
def test_pooling_matches_keras(i):
    kind, pool, strides, padding = ast.literal_eval(str(FIXTURES[f"pool{i}_args"][0]))
    cls = MaxPooling2D if kind == "max" else AveragePooling2D
    out = cls(pool_size=pool, strides=strides, padding=padding)(FIXTURES[f"pool{i}_x"])
    np.testing.assert_allclose(out, FIXTURES[f"pool{i}_y"], rtol=1e-6, atol=1e-6)


def test_dense_softmax_on_rank3_matches_keras():
    layer = Dense(4, activation="softmax")
    x = FIXTURES["dense_x"]
    layer(x)
    layer.set_weights([FIXTURES["dense_kernel"], FIXTURES["dense_bias"]])
    np.testing.assert_allclose(layer(x), FIXTURES["dense_y"], rtol=1e-5, atol=1e-7)


OPTIMIZERS = {
    "adam": lambda: cl.optimizers.Adam(),
    "sgd": lambda: cl.optimizers.SGD(learning_rate=0.001),
    "sgd_momentum": lambda: cl.optimizers.SGD(learning_rate=0.001, momentum=0.9),
    "sgd_nesterov": lambda: cl.optimizers.SGD(learning_rate=0.001, momentum=0.9, nesterov=True),
    "rmsprop": lambda: cl.optimizers.RMSprop(),
    "rmsprop_momentum": lambda: cl.optimizers.RMSprop(momentum=0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_training_steps_match_keras(name):
    model = cl.Sequential(
        [
            cl.layers.Input((6, 6, 1)),
            Conv2D(3, (2, 2), activation="relu"),
            MaxPooling2D(),
            Flatten(),
            Dense(5, activation="relu"),
            Dense(3, activation="softmax"),
        ]
    )
    initial = [FIXTURES[f"train_w0_{j}"] for j in range(6)]
    model.set_weights(initial)
    model.compile(optimizer=OPTIMIZERS[name](), loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = FIXTURES["train_x"], FIXTURES["train_y"]
    losses = [model.train_on_batch(x, y)[0] for _ in range(3)]
    np.testing.assert_allclose(losses, FIXTURES[f"train_{name}_losses"], rtol=2e-4)
    for j, w in enumerate(model.get_weights()):
        expected = FIXTURES[f"train_{name}_w3_{j}"]
        scale = np.abs(expected - initial[j]).max() + 1e-12
        # the change made by three steps must agree to float32 precision
        np.testing.assert_allclose((w - initial[j]) / scale, (expected - initial[j]) / scale, atol=2e-3, err_msg=str(j))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), FIXTURES[f"train_{name}_eval"], rtol=2e-4)
