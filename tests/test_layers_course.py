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


# ---------------------------------------------------------------- shape and activation layers
from cnnlab.layers import (  # noqa: E402
    Activation,
    Cropping2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    LeakyReLU,
    Permute,
    ReLU,
    Rescaling,
    Reshape,
    Softmax,
    SpatialDropout2D,
    UpSampling2D,
    ZeroPadding2D,
)
from cnnlab.ops import activations as act_ops  # noqa: E402
from cnnlab.ops.reshaping import global_pool2d_naive, upsample_nearest, upsample_nearest_naive  # noqa: E402

X4 = np.random.default_rng(7).normal(size=(2, 4, 5, 3))

GRADIENT_LAYERS = [
    (lambda: GlobalAveragePooling2D(), X4),
    (lambda: GlobalAveragePooling2D(keepdims=True), X4),
    (lambda: GlobalMaxPooling2D(), X4),
    (lambda: GlobalMaxPooling2D(keepdims=True), X4),
    (lambda: ZeroPadding2D(((1, 0), (2, 1))), X4),
    (lambda: Cropping2D(((1, 1), (0, 2))), X4),
    (lambda: UpSampling2D((2, 3)), X4),
    (lambda: Reshape((5, -1)), X4),
    (lambda: Permute((3, 1, 2)), X4),
    (lambda: Rescaling(0.5, offset=-1.0), X4),
    (lambda: Rescaling([1.0, 2.0, -0.5]), X4),
    (lambda: ReLU(), X4),
    (lambda: ReLU(max_value=0.8, negative_slope=0.1, threshold=0.3), X4),
    (lambda: LeakyReLU(), X4),
    (lambda: Softmax(), X4),
    (lambda: Softmax(axis=1), X4),
]


@pytest.mark.parametrize("make,x", GRADIENT_LAYERS, ids=lambda v: "" if isinstance(v, np.ndarray) else "")
def test_layer_gradients(make, x):
    layer = make()
    # keep finite differences away from the kinks of ReLU-like functions
    x = np.where(np.abs(x - 0.3) < 1e-3, 0.5, x)
    x = np.where(np.abs(x - 0.8) < 1e-3, 0.5, x)
    check_gradients(layer, x, training=True)


def test_spatial_dropout_drops_whole_maps_and_gradient_uses_the_mask():
    cl.set_random_seed(3)
    layer = SpatialDropout2D(0.5)
    x = np.ones((4, 3, 3, 6), "float32")
    y = layer(x, training=True)
    per_map = y.reshape(4, 9, 6)
    assert np.all((per_map == 0).all(axis=1) | (per_map == 2).all(axis=1))
    assert 0 < (per_map == 0).all(axis=1).sum() < 24
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)
    np.testing.assert_array_equal(layer(x), x)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 4), w=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), seed=st.integers(0, 999))
def test_upsampling_matches_loop_reference(h, w, sh, sw, seed):
    x = np.random.default_rng(seed).normal(size=(2, h, w, 2))
    np.testing.assert_array_equal(upsample_nearest(x, (sh, sw)), upsample_nearest_naive(x, (sh, sw)))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 4), w=st.integers(1, 4), seed=st.integers(0, 999), kind=st.sampled_from(["avg", "max"]))
def test_global_pooling_matches_loop_reference(h, w, seed, kind):
    cl.config.set_floatx("float64")
    x = np.random.default_rng(seed).normal(size=(2, h, w, 3))
    layer = GlobalAveragePooling2D() if kind == "avg" else GlobalMaxPooling2D()
    np.testing.assert_allclose(layer(x), global_pool2d_naive(x, kind), rtol=1e-12)


def test_global_max_pooling_shares_the_gradient_of_ties():
    layer = GlobalMaxPooling2D()
    x = np.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(np.array([[1.0]]))[0, :, :, 0], [[0, 0.5], [0.5, 0]])


ACTIVATION_NAMES = [
    "elu",
    "selu",
    "gelu",
    "silu",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "relu6",
    "leaky_relu",
    "exponential",
    "tanh",
    "sigmoid",
]


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_gradients(name):
    x = np.random.default_rng(8).normal(size=(3, 5)) * 2.5
    x = np.where(np.abs(np.abs(x) - 3) < 1e-3, 1.0, x)  # away from hard_sigmoid's kinks
    check_gradients(Activation(name), x)
    cl.clear_session()
    check_gradients(Dense(3, activation=name), x)
    check_gradients(Conv2D(2, 2, activation=name), x.reshape(1, 3, 5, 1))


def test_activation_formulas():
    x = np.array([-4.0, -1.0, 0.0, 1.0, 25.0])
    np.testing.assert_allclose(act_ops.hard_sigmoid(x), np.clip(x + 3, 0, 6) / 6)  # Keras 3: relu6(x + 3) / 6
    np.testing.assert_allclose(act_ops.selu(np.array([-1.0, 1.0])), [-1.1113307, 1.0507010], rtol=1e-6)
    np.testing.assert_allclose(act_ops.gelu(np.array([1.0])), [0.8413447460685429], rtol=1e-12)  # exact, not tanh
    np.testing.assert_allclose(act_ops.softplus(x), np.logaddexp(0, x), rtol=1e-12)
    assert act_ops.get("swish") == "silu" and act_ops.get("ELU") == "elu"
    assert LeakyReLU().negative_slope == 0.3 and act_ops.leaky_relu(np.array([-1.0]))[0] == -0.2


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Reshape((4, 4))(np.zeros((2, 3, 5))), r"input has 15 values per sample .* holds 16"),
        (lambda: Reshape((4, -1))(np.zeros((2, 3, 5))), r"15 values per sample .* not a multiple of 4"),
        (lambda: Reshape((-1, -1)), "at most one -1"),
        (lambda: Permute((1, 3)), r"invalid permutation argument dims=\(1, 3\)"),
        (lambda: Permute((2, 1))(np.zeros((2, 3, 4, 5))), "reorders 2 axes"),
        (lambda: Cropping2D(2)(np.zeros((1, 4, 6, 1))), r"must be smaller than the spatial size .*\(1, 4, 6, 1\)"),
        (lambda: ZeroPadding2D((1, 2, 3)), "should be either an int"),
        (lambda: UpSampling2D(interpolation="bilinear"), "expected 'nearest'"),
        (lambda: ReLU(max_value=-1.0), "max_value cannot be None or a negative value"),
        (lambda: LeakyReLU(negative_slope=-0.1), "negative_slope cannot be None or a negative value"),
        (lambda: Softmax(axis=0)(np.zeros((2, 3))), "axis=0 is not a feature axis"),
        (lambda: Rescaling("a"), "expected scale to be a number"),
        (lambda: GlobalAveragePooling2D()(np.zeros((2, 3, 4))), "min_ndim=4"),
        (lambda: Activation("mish"), "unknown activation 'mish'"),
    ],
)
def test_course_layer_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_course_layers_save_and_train(tmp_path):
    model = cl.Sequential(
        [
            Input((6, 6, 1)),
            Rescaling(1 / 255),
            ZeroPadding2D(1),
            Conv2D(4, 3, activation="elu"),
            BatchNormalization(),
            ReLU(max_value=6.0),
            SpatialDropout2D(0.1),
            Cropping2D(((1, 0), (0, 1))),
            UpSampling2D(2),
            Conv2D(3, 3, strides=2, activation="gelu"),
            LeakyReLU(),
            Permute((2, 1, 3)),
            Reshape((-1, 3)),
            Reshape((4, 4, 3)),
            GlobalMaxPooling2D(keepdims=True),
            GlobalAveragePooling2D(),
            Dense(3, activation="swish"),
            Softmax(),
        ]
    )
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, size=(16, 6, 6, 1)).astype("uint8"), np.arange(16) % 3
    model.compile(cl.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    loaded = cl.models.load_model(model.save(tmp_path / "course.cnnlab"))
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
