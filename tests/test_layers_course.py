"""The course layers of issue 12: gradients (finite differences in float64), loop references,
non-trainable weights, Keras-style errors and the saving round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab.layers import BatchNormalization, Conv2D, Dense, Flatten, Input
from cnnlab.models.summary import summary_lines
from cnnlab.ops.normalization import batch_norm_naive
from tests.test_gradients import numeric_grad


def check_gradients(layer, x, training=True, seed=0, rtol=1e-5, atol=1e-7):
    """Loss = sum(forward(x, training) * R); compare backward's dx and weight gradients with
    central differences of the same forward (float64)."""
    cl.config.set_floatx("float64")
    x = np.asarray(x, dtype=np.float64)
    layer(x)  # build
    r = np.random.default_rng(seed).normal(size=layer.forward(x, training=training).shape)

    def loss():
        return float((layer.forward(x, training=training) * r).sum())

    layer.forward(x, training=training)
    dx = layer.backward(r.copy())
    grads = {key: np.array(g) for key, g in layer.grads.items()}
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=rtol, atol=atol)
    for key in layer.trainable_keys():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, layer._weights[key]), rtol=rtol, atol=atol)
    return grads


# ---------------------------------------------------------------- BatchNormalization
BN_CASES = [
    (dict(), (4, 3, 3, 2)),
    (dict(axis=1), (3, 2, 4)),
    (dict(axis=-2, center=False), (5, 3, 2)),
    (dict(scale=False, epsilon=0.1), (6, 4)),
]


@pytest.mark.parametrize("cfg,shape", BN_CASES, ids=str)
def test_batch_norm_training_gradients(cfg, shape):
    layer = BatchNormalization(**cfg, momentum=1.0)  # momentum 1: the moving stats stay put
    x = np.random.default_rng(1).normal(size=shape) * 2 + 0.5
    check_gradients(layer, x, training=True)


def test_frozen_batch_norm_gradients():
    x = np.random.default_rng(2).normal(size=(4, 3, 3, 2))
    layer = BatchNormalization()
    layer(x)
    layer.set_weights([np.array([1.5, 0.5]), np.array([0.1, -0.2]), np.array([0.3, -0.1]), np.array([2.0, 0.5])])
    layer.trainable = False  # frozen: training=True behaves as inference, moving stats fixed
    before = layer.get_weights()
    check_gradients(layer, x, training=True)
    for a, b in zip(before, layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 5),
    c=st.integers(1, 3),
    axis=st.sampled_from([-1, 1]),
    seed=st.integers(0, 10**6),
)
def test_batch_norm_matches_loop_reference(n, c, axis, seed):
    cl.config.set_floatx("float64")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, 3) if axis == 1 else (n, 3, c)) * 3 + 1
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    layer = BatchNormalization(axis=axis, momentum=0.9)
    layer(x)
    layer.set_weights([gamma, beta, np.zeros(c), np.ones(c)])
    y = layer(x, training=True)
    want, mean, var = batch_norm_naive(x, gamma, beta, 1e-3, axis)
    np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(layer.get_weights()[2], 0.1 * mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.get_weights()[3], 0.9 + 0.1 * var, rtol=1e-9)


def test_batch_norm_inference_uses_moving_statistics():
    layer = BatchNormalization(epsilon=0.0)
    layer(np.zeros((1, 2), "float32"))
    layer.set_weights([np.array([2.0, 1.0]), np.array([1.0, 0.0]), np.array([1.0, -1.0]), np.array([4.0, 1.0])])
    np.testing.assert_allclose(layer(np.array([[3.0, 0.0]])), [[3.0, 1.0]])


def bn_model():
    return cl.Sequential([Input((4, 4, 2)), Conv2D(3, 3), BatchNormalization(), Flatten(), Dense(2)])


def test_batch_norm_moving_statistics_are_non_trainable():
    model = bn_model()
    bn = model.layers[1]
    assert bn.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    text = "\n".join(summary_lines(model))
    assert "Trainable params: 89 " in text and "Non-trainable params: 6 " in text
    assert "batch_normalization" in text and "(BatchNormalization)" in text
    model.compile(cl.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4, 4, 2)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    slots = model._engine.store.slots
    assert [key for layer, key in slots if layer is bn] == ["gamma", "beta"]
    assert model._engine.store.flat.size == 89
    # moving statistics moved (forward pass), gamma/beta moved (optimizer)
    gamma, beta, mean, var = bn.get_weights()
    assert not np.allclose(mean, 0) and not np.allclose(var, 1) and not np.allclose(gamma, 1)


def test_frozen_batch_norm_keeps_all_weights_during_fit():
    model = bn_model()
    bn = model.layers[1]
    bn.trainable = False
    assert len(model.non_trainable_weights) == 4
    model.compile(cl.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4, 4, 2)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    before = bn.get_weights()
    conv_before = model.layers[0].get_weights()[0]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(before, bn.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(conv_before, model.layers[0].get_weights()[0])  # gradient flowed through


@pytest.mark.parametrize(
    "cfg,shape,match",
    [
        (dict(axis=3), (None, 4, 5), r"axis=3 does not exist for inputs of rank 3 \(shape \(None, 4, 5\)\)"),
        (dict(axis=0), (None, 4), r"axis=0 is the batch axis"),
        (dict(axis=-4), (None, 4, 5), r"Expected an axis in 1..2 or -2..-1"),
    ],
)
def test_batch_norm_axis_errors(cfg, shape, match):
    with pytest.raises(ValueError, match=match):
        BatchNormalization(**cfg).build(shape)


@pytest.mark.parametrize(
    "cfg,match",
    [
        (dict(axis="last"), "expected axis to be an integer"),
        (dict(momentum=1.5), r"expected momentum in \[0, 1\]"),
        (dict(epsilon=-1.0), "expected epsilon >= 0"),
        (dict(gamma_initializer="he"), "unknown gamma_initializer 'he'"),
    ],
)
def test_batch_norm_argument_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        BatchNormalization(**cfg)


def test_batch_norm_wrong_channels_after_build():
    layer = BatchNormalization()
    layer(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.zeros((2, 4), "float32"))


def test_batch_norm_saving_round_trip(tmp_path):
    model = bn_model()
    model.compile(cl.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4, 4, 2)).astype("float32"), rng.normal(size=(16, 2)).astype("float32")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    loaded = cl.models.load_model(model.save(tmp_path / "bn.cnnlab"))
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)  # keeps training
