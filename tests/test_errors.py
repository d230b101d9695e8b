"""Every user error is raised (never asserted) with what was expected, what was received, and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.layers import AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D


def built_conv(channels=1, **kwargs):
    layer = Conv2D(2, (2, 2), **kwargs)
    layer(np.zeros((1, 4, 4, channels), "float32"))
    return layer


def test_missing_channel_axis_hint():
    with pytest.raises(ValueError, match=r"found ndim=3.*x\[\.\.\., None\].*x\[None\]"):
        Conv2D(1, 2)(np.zeros((5, 4, 4), "float32"))


def test_channel_count_differs_from_build():
    layer = built_conv(channels=3)
    with pytest.raises(
        ValueError,
        match=r"expected axis -1 of input shape to have value 3, but received input with shape \(1, 4, 4, 1\)",
    ):
        layer(np.zeros((1, 4, 4, 1), "float32"))


def test_output_size_not_positive_shows_formula():
    with pytest.raises(
        ValueError, match=r"floor\(\(n - \(k-1\)\*d - 1\) / s\) \+ 1 = floor\(\(2 - \(3-1\)\*1 - 1\) / 1\) \+ 1 = 0"
    ):
        Conv2D(1, 3)(np.zeros((1, 2, 2, 1), "float32"))
    with pytest.raises(ValueError, match=r"padding='same'"):
        MaxPool2D(pool_size=3)(np.zeros((1, 2, 2, 1)))


def test_dense_forgotten_flatten_hint():
    layer = Dense(3)
    layer(np.zeros((1, 784), "float32"))
    with pytest.raises(ValueError, match=r"did you forget a Flatten\(\) layer"):
        layer(np.zeros((1, 28, 28, 1), "float32"))


def test_dense_integer_input():
    with pytest.raises(ValueError, match=r"int32.*astype"):
        Dense(2)(np.zeros((1, 3), np.int32))


def test_set_weights_before_build():
    with pytest.raises(ValueError, match=r"has no weights yet.*layer\(x\)"):
        Conv2D(1, 2).set_weights([np.zeros((2, 2, 1, 1)), np.zeros(1)])


def test_set_weights_wrong_count():
    with pytest.raises(ValueError, match=r"expects 2 weight array\(s\) \(kernel, bias\), received 1"):
        built_conv().set_weights([np.zeros((2, 2, 1, 2))])


def test_set_weights_wrong_shape_names_slot():
    with pytest.raises(ValueError, match=r'weight "bias" must have shape \(2,\), received shape \(3,\)'):
        built_conv().set_weights([np.zeros((2, 2, 1, 2)), np.zeros(3)])


def test_set_weights_pytorch_layout_hint():
    layer = Conv2D(4, (3, 2))
    layer(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"PyTorch's \(out, in, kh, kw\).*w.transpose\(2, 3, 1, 0\)"):
        layer.set_weights([np.zeros((4, 3, 3, 2)), np.zeros(4)])
    dense = Dense(4)
    dense(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"pass w.T"):
        dense.set_weights([np.zeros((4, 3)), np.zeros(4)])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Conv2D(0, 2), r"filters to be a positive integer, received 0"),
        (lambda: Conv2D(1, (2, 0)), r"kernel_size to hold integers >= 1"),
        (lambda: Conv2D(1, "3"), r"kernel_size to be an integer or a tuple of 2 integers"),
        (lambda: Conv2D(1, 2, padding="full"), r"padding to be 'valid' or 'same', received 'full'"),
        (lambda: Conv2D(1, 2, activation="swishy"), r"unknown activation 'swishy'"),
        (lambda: Conv2D(1, 2, strides=2, dilation_rate=2), r"strides > 1 cannot be combined"),
        (lambda: MaxPool2D(pool_size=-1), r"pool_size to hold integers >= 1"),
        (lambda: AveragePooling2D(padding=3), r"padding to be 'valid' or 'same'"),
        (lambda: Dense(-2), r"units to be a positive integer"),
        (lambda: Dropout(1.0), r"rate to be a number in \[0, 1\)"),
        (lambda: cl.optimizers.Adam(learning_rate=-1), r"learning_rate to be a finite positive number"),
        (lambda: cl.optimizers.get("adamw2"), r"Unknown optimizer 'adamw2'"),
        (lambda: cl.losses.get("hinge2"), r"Unknown loss 'hinge2'"),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def small_model(loss="categorical_crossentropy"):
    model = cl.Sequential([cl.layers.Input((4, 4, 1)), Flatten(), Dense(3, activation="softmax")])
    model.compile("adam", loss, ["accuracy"])
    return model


X = np.random.default_rng(0).normal(size=(10, 4, 4, 1))
Y_INT = np.arange(10) % 3
Y = cl.utils.to_categorical(Y_INT, 3)


def test_fit_before_compile():
    model = cl.Sequential([Flatten(), Dense(3)])
    with pytest.raises(RuntimeError, match=r"must be compiled first.*model.compile"):
        model.fit(X, Y)


def test_length_mismatch():
    with pytest.raises(ValueError, match=r"same number of samples; received x with 10 and y with 9"):
        small_model().fit(X, Y[:9], verbose=0)


def test_integer_labels_with_categorical_loss():
    with pytest.raises(ValueError, match=r"to_categorical\(y\).*sparse_categorical_crossentropy"):
        small_model().fit(X, Y_INT, verbose=0)


def test_one_hot_labels_with_sparse_loss():
    with pytest.raises(ValueError, match=r"one-hot-like labels of shape \(10, 3\).*categorical_crossentropy"):
        small_model("sparse_categorical_crossentropy").fit(X, Y, verbose=0)


def test_label_count_differs_from_units():
    with pytest.raises(ValueError, match=r"labels of shape \(10, 4\) do not match the model's output \(10, 3\)"):
        small_model().fit(X, cl.utils.to_categorical(np.arange(10) % 4, 4), verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in 0..2 .* received labels from 0 to 3"):
        small_model("sparse_categorical_crossentropy").fit(X, np.arange(10) % 4, verbose=0)


def test_nan_in_x():
    bad = X.copy()
    bad[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite value"):
        small_model().fit(bad, Y, verbose=0)


def test_model_input_shape_mismatch_hint():
    with pytest.raises(ValueError, match=r"channel axis is missing: use x\[\.\.\., None\]"):
        small_model().predict(np.zeros((2, 4, 4)))
