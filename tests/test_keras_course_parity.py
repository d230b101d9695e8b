"""The course layers against outputs computed once with real Keras 3 (tests/fixtures/keras_course.npz,
written by tools/make_keras_course_fixtures.py with the torch backend; Keras is not needed here).

Tolerances follow from float32 rounding (tests/numerics.py): a sum of ``n`` terms may differ by
``2 * gamma_n * sum |terms|`` between two summation orders; an elementwise function by a few units
in the last place of its result plus what the function's slope makes of one rounding of its input.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import layers
from cnnlab.ops import activations as act_ops
from tests.numerics import a64, assert_within, gamma, unit_roundoff

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "keras_course.npz")
U = unit_roundoff("float32")
CASES = sorted(k[: -len("_class")] for k in FIXTURES if k.endswith("_class"))


def weights_of(prefix: str) -> list[np.ndarray]:
    out, i = [], 0
    while f"{prefix}_w{i}" in FIXTURES:
        out.append(FIXTURES[f"{prefix}_w{i}"])
        i += 1
    return out


def make_layer(name: str) -> layers.Layer:
    cls = getattr(layers, str(FIXTURES[f"{name}_class"]))
    layer = cls(**ast.literal_eval(str(FIXTURES[f"{name}_kwargs"])))
    x = FIXTURES[f"{name}_x"]
    layer(x)
    if weights_of(name):
        layer.set_weights(weights_of(name))
    return layer


def bn_bounds(layer, x: np.ndarray, gamma_: np.ndarray, training: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rounding bounds for BatchNormalization's output and batch mean.

    The mean of ``n`` values: ``dmean = 2 gamma_n mean|x|``; ``E[x^2] - E[x]^2``:
    ``dvar = 2 gamma_n E[x^2] + 2 |mean| dmean + 2u (E[x^2] + mean^2)``; ``1/sqrt(var + eps)``
    moves by ``inv^3 / 2 * dvar`` plus 2 ulps. ``y = (x - mean) * gamma * inv + beta`` adds 4
    roundings of the terms' sizes."""
    axis = layer.axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    x64 = x.astype(np.float64)
    n = x.size // x.shape[axis]
    g = np.abs(gamma_.astype(np.float64)).reshape(shape)
    weights = layer.get_weights()
    beta = np.abs(weights[1].astype(np.float64)).reshape(shape) if layer.center else 0.0
    if training:
        mean = x64.mean(axis=axes, keepdims=True)
        var = (x64 * x64).mean(axis=axes, keepdims=True) - mean**2
        dmean = 2 * gamma(n + 1, "float32") * a64(x).mean(axis=axes, keepdims=True)
        sq = (x64 * x64).mean(axis=axes, keepdims=True)
        dvar = 2 * gamma(n + 1, "float32") * sq + 2 * np.abs(mean) * dmean + 2 * U * (sq + mean**2)
    else:
        mean = weights[-2].astype(np.float64).reshape(shape)
        var = weights[-1].astype(np.float64).reshape(shape)
        dmean = dvar = 0.0
    inv = 1 / np.sqrt(var + layer.epsilon)
    dinv = inv**3 / 2 * dvar + 2 * U * inv
    centered = np.abs(x64 - mean)
    bound = g * inv * dmean + centered * g * dinv + 4 * U * (centered * g * inv + beta)
    return bound, dmean


@pytest.mark.parametrize("name", CASES)
def test_layer_matches_keras(name):
    x = FIXTURES[f"{name}_x"]
    cls = str(FIXTURES[f"{name}_class"])
    for mode in ("infer", "train"):
        if f"{name}_{mode}" not in FIXTURES:
            continue
        layer = make_layer(name)
        got = layer(x, training=mode == "train")
        want = FIXTURES[f"{name}_{mode}"]
        assert got.shape == want.shape and got.dtype == np.float32
        if cls == "BatchNormalization":
            bound, dmean = bn_bounds(layer, x, FIXTURES[f"{name}_w0"], mode == "train")
            assert_within(got, want, bound, f"{name} {mode}")
            if mode == "train":  # moving = moving * momentum + batch * (1 - momentum), both stats
                after = [FIXTURES[f"{name}_after_w{i}"] for i in range(len(layer.weights))]
                for i, (mine, theirs) in enumerate(zip(layer.get_weights(), after, strict=True)):
                    limit = (1 - layer.momentum) * 8 * a64(x).max() ** 2 * gamma(x.size, "float32") + 4 * U * a64(mine)
                    assert_within(mine, theirs, limit, f"{name} weight {i} after a training call")
        elif cls in ("GlobalAveragePooling2D",):
            n = x.shape[1] * x.shape[2]
            assert_within(got, want, 2 * gamma(n + 1, "float32") * a64(x).mean(axis=(1, 2)).reshape(want.shape), name)
        elif cls == "Softmax":
            axis = layer.axis
            n = x.shape[axis]
            # exp of each term (2 ulps), the sum of n terms, the division
            assert_within(got, want, (2 * gamma(n + 4, "float32")) * a64(want), name)
        elif cls in ("Rescaling", "ReLU", "LeakyReLU"):
            assert_within(got, want, 4 * U * (a64(got) + a64(x)), name)
        else:  # padding, cropping, upsampling, reshaping, max: values are moved, not computed
            np.testing.assert_array_equal(got, want, err_msg=name)


ACTS = sorted(k[len("act_") : -len("_x")] for k in FIXTURES if k.startswith("act_") and k.endswith("_x"))


@pytest.mark.parametrize("name", ACTS)
def test_activation_matches_keras(name):
    x, want = FIXTURES[f"act_{name}_x"], FIXTURES[f"act_{name}_y"]
    got = layers.Activation(name)(x[None])[0]
    assert got.dtype == np.float32
    # a few ulps of the result, plus the slope times one rounding of the input (float32 kernels
    # round their intermediates, e.g. x / sqrt(2) in gelu or x + 3 in hard_sigmoid)
    x64 = x.astype(np.float64)
    forward, backward = act_ops.ACTIVATIONS[act_ops.get(name)]
    slope = np.abs(backward(x64, forward(x64), np.ones_like(x64)))
    bound = 8 * U * (a64(want) + slope * (a64(x) + 3)) + 1e-45
    if name == "gelu":
        # 0.5 * x * (1 + erf(x / sqrt(2))): for x << 0 the sum cancels, so a few ulps of erf (~1)
        # become an absolute error of 0.5 * |x| * 8u in the result
        bound += 0.5 * a64(x) * 8 * U
    assert_within(got, want, bound, name)


def test_training_step_with_batch_norm_matches_keras():
    model = cl.Sequential(
        [
            layers.Input((5, 5, 2)),
            layers.Conv2D(3, 3),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(cl.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    start = weights_of("step")
    model.set_weights(start)
    x, y = FIXTURES["step_x"], FIXTURES["step_y"]
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    loss = history.history["loss"][0]
    assert abs(loss - float(FIXTURES["step_loss"])) <= 64 * U * abs(loss)
    after = model.get_weights()
    # the longest reduction in a gradient: batch x positions x channels of the conv (8*3*3*3);
    # the bound is 2 gamma_K times lr * K * max|gradient|, generous but derived from the sums
    k = 8 * 3 * 3 * 3
    for i, (mine, start_w) in enumerate(zip(after, start, strict=True)):
        theirs = FIXTURES[f"step_after_w{i}"]
        step = a64(theirs - start_w).max()
        bound = 2 * gamma(k, "float32") * k * max(step, 1e-6) + 4 * U * a64(theirs)
        assert_within(mine, theirs, bound, f"weight {i} after one step")
    # moving statistics were updated in the forward pass (weights 4 and 5 are moving mean/variance)
    assert not np.array_equal(after[4], start[4]) and not np.array_equal(after[5], start[5])
