"""Analytic gradients of every layer and loss against central finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import losses
from cnnlab.layers import Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPooling2D

EPS = 1e-6


def numeric_grad(f, array):
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * EPS)
    return grad


def check_layer(layer, x, seed=0):
    """Loss = sum(out * R) for a fixed random R; compare dL/dx and dL/dweights."""
    cl.config.set_floatx("float64")
    layer(x)  # build
    rng = np.random.default_rng(seed)
    r = rng.normal(size=layer.forward(x, training=True).shape)

    def loss():
        return float((layer.forward(x, training=False) * r).sum())

    layer.forward(x, training=True)
    dx = layer.backward(r.copy())
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    for key, w in layer._weights.items():
        np.testing.assert_allclose(layer.grads[key], numeric_grad(loss, w), rtol=1e-5, atol=1e-7, err_msg=key)


CONV_CONFIGS = [
    dict(filters=2, kernel_size=2),
    dict(filters=3, kernel_size=(3, 2), strides=2, padding="same"),
    dict(filters=2, kernel_size=3, strides=(2, 1), padding="valid"),
    dict(filters=2, kernel_size=2, dilation_rate=2, padding="same"),
    dict(filters=2, kernel_size=3, padding="same", activation="tanh"),
    dict(filters=2, kernel_size=2, activation="sigmoid"),
    dict(filters=2, kernel_size=2, activation="relu", use_bias=False),
]


@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=str)
def test_conv2d_gradients(cfg):
    x = np.random.default_rng(1).normal(size=(2, 6, 5, 2))
    check_layer(Conv2D(**cfg), x)


POOL_CONFIGS = [
    dict(pool_size=2),
    dict(pool_size=3, strides=1),  # overlapping windows accumulate
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=(2, 3), strides=(1, 2), padding="same"),
]


@pytest.mark.parametrize("cfg", POOL_CONFIGS, ids=str)
@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
def test_pool_gradients(cls, cfg):
    # distinct values keep max pooling differentiable for the finite differences
    x = np.random.default_rng(2).permutation(2 * 7 * 6 * 2).reshape(2, 7, 6, 2) / 10.0
    check_layer(cls(**cfg), x)


def test_max_pool_tie_gradient_goes_to_first_maximum_row_major():
    x = np.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    layer = MaxPooling2D()
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])


def test_max_pool_overlapping_windows_accumulate():
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 5.0  # the centre wins all four 2x2 windows
    layer = MaxPooling2D(pool_size=2, strides=1)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 2, 2, 1)))
    assert dx[0, 1, 1, 0] == 4.0 and dx.sum() == 4.0


@pytest.mark.parametrize("activation", ["relu", "softmax", "sigmoid", "tanh", None])
def test_dense_gradients(activation):
    x = np.random.default_rng(3).normal(size=(3, 4))
    check_layer(Dense(5, activation=activation), x)


def test_dense_on_rank3_gradients():
    check_layer(Dense(3), np.random.default_rng(4).normal(size=(2, 3, 4)))


@pytest.mark.parametrize("activation", ["relu", "softmax", "sigmoid", "tanh"])
def test_activation_layer_gradients(activation):
    check_layer(Activation(activation), np.random.default_rng(5).normal(size=(3, 4)))


def test_flatten_gradient():
    check_layer(Flatten(), np.random.default_rng(6).normal(size=(2, 3, 2, 2)))


def test_dropout_gradient_uses_the_same_mask():
    cl.set_seed(0)
    layer = Dropout(0.4)
    x = np.random.default_rng(7).normal(size=(4, 50)) + 3
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, y / x)
    kept = dx != 0
    np.testing.assert_allclose(dx[kept], 1 / 0.6)
    assert 0.4 < 1 - kept.mean() + 0.15 and 1 - kept.mean() < 0.55


LOSSES = [
    (losses.CategoricalCrossentropy(), "softmax", "onehot"),
    (losses.SparseCategoricalCrossentropy(), "softmax", "sparse"),
    (losses.BinaryCrossentropy(), "sigmoid", "binary"),
    (losses.MeanSquaredError(), None, "dense"),
]


CASES = [(*case, use_logits) for case in LOSSES for use_logits in (True, False) if case[1] or not use_logits]


@pytest.mark.parametrize(("loss", "act", "kind", "use_logits"), CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_loss_gradients(loss, act, kind, use_logits):
    rng = np.random.default_rng(8)
    z = rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, 5)
    y = {
        "onehot": np.eye(4)[labels],
        "sparse": labels,
        "binary": rng.integers(0, 2, (5, 4)).astype(float),
        "dense": rng.normal(size=(5, 4)),
    }[kind]
    from cnnlab.ops.activations import ACTIVATIONS

    if use_logits:

        def f():
            return float(loss.value_and_grad(y, ACTIVATIONS[act][0](z), z)[0].mean())

        grad = loss.value_and_grad(y, ACTIVATIONS[act][0](z), z)[1]
        np.testing.assert_allclose(grad, numeric_grad(f, z), rtol=1e-5, atol=1e-8)
    else:
        p = ACTIVATIONS[act][0](z) if act else z

        def g():
            return float(loss.value_and_grad(y, p, None)[0].mean())

        grad = loss.value_and_grad(y, p, None)[1]
        np.testing.assert_allclose(grad, numeric_grad(g, p), rtol=1e-5, atol=1e-8)


def test_from_logits_and_from_probabilities_agree_when_not_saturated():
    rng = np.random.default_rng(9)
    z = rng.normal(size=(6, 3))
    y = np.eye(3)[rng.integers(0, 3, 6)]
    loss = losses.CategoricalCrossentropy()
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(loss.value_and_grad(y, p, z)[0], loss.value_and_grad(y, p, None)[0], rtol=1e-12)
    np.testing.assert_allclose(
        losses.categorical_crossentropy(y, z, from_logits=True), losses.categorical_crossentropy(y, p), rtol=1e-12
    )


def test_saturated_softmax_still_has_a_gradient_from_logits():
    z = np.array([[300.0, 0.0, -300.0]])  # raw-pixel scale logits
    y = np.array([[0.0, 0.0, 1.0]])
    loss = losses.CategoricalCrossentropy()
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    _, from_probs = loss.value_and_grad(y, p, None)
    values, from_logits = loss.value_and_grad(y, p, z)
    assert np.all(from_probs == 0)  # clipped probabilities: the trap the TF backend avoids
    np.testing.assert_allclose(from_logits, p - y)
    assert values[0] == pytest.approx(600.0)


FROM_LOGITS_LOSSES = {
    "cce": lambda: losses.CategoricalCrossentropy(from_logits=True),
    "cce_smoothing": lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3),
    "scce": lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
    "bce": lambda: losses.BinaryCrossentropy(from_logits=True),
    "bce_smoothing": lambda: losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.3),
}


def _labels(name: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if name == "scce":
        return rng.integers(0, shape[1], shape[0])
    if name.startswith("cce"):
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    return rng.uniform(size=shape)  # binary cross-entropy takes any targets in [0, 1]


@pytest.mark.parametrize("name", sorted(FROM_LOGITS_LOSSES))
def test_from_logits_loss_gradients(name):
    """``from_logits=True``: the gradient of the batch mean with respect to the outputs (the
    logits) against central differences, with logits large enough to saturate a softmax."""
    rng = np.random.default_rng(4)
    z = rng.normal(scale=3.0, size=(5, 4))
    y = _labels(name, rng, z.shape)
    loss = FROM_LOGITS_LOSSES[name]()
    assert loss.logits_activation is None  # the outputs are the logits: no fusing with a last softmax

    def mean_loss():
        return float(loss.value_and_grad(y, z, None)[0].mean())

    np.testing.assert_allclose(loss.value_and_grad(y, z, None)[1], numeric_grad(mean_loss, z), rtol=1e-6, atol=1e-9)


def test_from_logits_values_against_independent_formulas():
    """Keras's definitions written out directly (log of a softmax computed with exp and a sum; the
    sigmoid's log), on logits small enough for the direct formulas to be exact in float64; and the
    stable forms stay finite where the direct ones overflow."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(6, 3))
    labels = rng.integers(0, 3, 6)
    onehot = np.eye(3)[labels]
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    smoothed = onehot * 0.8 + 0.2 / 3
    cce = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    np.testing.assert_allclose(cce.per_sample(onehot, z), -(smoothed * np.log(softmax)).sum(1), rtol=1e-13)
    np.testing.assert_allclose(
        losses.SparseCategoricalCrossentropy(from_logits=True).per_sample(labels, z),
        -np.log(softmax[np.arange(6), labels]),
        rtol=1e-13,
    )
    t = rng.uniform(size=(6, 3))
    sigmoid = 1 / (1 + np.exp(-z))
    direct = -(t * np.log(sigmoid) + (1 - t) * np.log(1 - sigmoid)).mean(1)
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True).per_sample(t, z), direct, rtol=1e-12)
    np.testing.assert_allclose(losses.binary_crossentropy(t, z, from_logits=True), direct, rtol=1e-12)
    np.testing.assert_allclose(
        losses.categorical_crossentropy(onehot, z, from_logits=True, label_smoothing=0.2),
        -(smoothed * np.log(softmax)).sum(1),
        rtol=1e-13,
    )
    # far-out logits: -log(sigmoid(-800)) = 800 + log(1 + e^-800); -log_softmax picks the gap
    huge = np.array([[800.0, -800.0]])
    values = losses.BinaryCrossentropy(from_logits=True).per_sample(np.array([[0.0, 1.0]]), huge)
    assert values.tolist() == [800.0]
    assert losses.SparseCategoricalCrossentropy(from_logits=True).per_sample(np.array([1]), huge).tolist() == [1600.0]


def test_from_logits_is_checked_and_serialized():
    with pytest.raises(ValueError, match=r"from_logits to be True or False, received 'yes'"):
        losses.CategoricalCrossentropy(from_logits="yes")
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert loss.serialize() == {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}}
    again = losses.get(losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1).serialize())
    assert (again.from_logits, again.label_smoothing) == (True, 0.1)
    assert losses.CategoricalCrossentropy().serialize() == "categorical_crossentropy"
