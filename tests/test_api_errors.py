"""Clear errors instead of silent rounding or deep NumPy errors (issue 11, items 11 and 14)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.errors import ArgumentTypeError, InvalidArgumentError
from cnnlab.layers import Conv2D, Dense, Input


@pytest.mark.parametrize("shape", [(28.5, 28, 1), (True, 2), (0, 3), ("28", 28)])
def test_input_shape_is_never_rounded(shape):
    with pytest.raises(InvalidArgumentError, match=r"Input: expected shape to hold whole numbers >= 1"):
        Input(shape)


def test_input_shape_argument_must_be_a_tuple():
    with pytest.raises(ArgumentTypeError, match=r"Conv2D: expected input_shape to be a tuple.*\(28,\)"):
        Conv2D(1, 2, input_shape=28)
    assert Input((28.0, 28)).shape == (28, 28)


def model(units, activation, loss):
    m = cl.Sequential([Input((3,)), Dense(units, activation=activation)])
    m.compile("adam", loss)
    return m


X = np.ones((4, 3))


def test_negative_one_hot_labels():
    with pytest.raises(InvalidArgumentError, match=r"categorical_crossentropy: expected labels in \[0, 1\].*-1"):
        model(2, "softmax", "categorical_crossentropy").fit(X, np.array([[-1.0, 2.0]] * 4), verbose=0)


def test_binary_crossentropy_refuses_class_numbers():
    with pytest.raises(InvalidArgumentError, match=r"binary_crossentropy: expected labels in \[0, 1\].*0 to 3"):
        model(1, "sigmoid", "binary_crossentropy").fit(X, np.arange(4).reshape(4, 1), verbose=0)


def test_nan_in_one_hot_labels_is_blamed_on_the_labels():
    with pytest.raises(InvalidArgumentError, match=r"y contains 4 NaN or infinite label"):
        model(2, "softmax", "categorical_crossentropy").fit(X, np.array([[np.nan, 1.0]] * 4), verbose=0)


def test_string_labels():
    with pytest.raises(InvalidArgumentError, match=r"y: expected numeric labels, received dtype <U"):
        model(2, "softmax", "sparse_categorical_crossentropy").fit(X, np.array(list("abab")), verbose=0)


def test_zero_samples_give_an_empty_result_of_the_right_shape():
    m = cl.Sequential([Input((4, 4, 1)), Conv2D(2, 2), cl.layers.Flatten(), Dense(3)])
    assert m.predict(np.zeros((0, 4, 4, 1))).shape == (0, 3)
    assert Dense(5)(np.zeros((0, 2))).shape == (0, 5)
