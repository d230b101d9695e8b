"""NaN in max pooling (issue 11, item 6): it propagates like np.max (and PyTorch's and TensorFlow's
MaxPool), on the reference and the compiled path alike, and explain names the first NaN as winner."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.layers import Conv2D, Input, MaxPool2D
from cnnlab.ops.pool import max_pool2d_forward_argmax, pool2d_naive

KERNELS = ("reference", "fast")


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize(("pool", "strides", "padding"), [(2, 2, "valid"), (3, 1, "same"), (2, 1, "valid")])
def test_nan_propagates_wherever_it_is_in_the_window(kernels, pool, strides, padding):
    rng = np.random.default_rng(pool * 10 + strides)
    x = rng.normal(size=(3, 7, 6, 5)).astype("float32")
    x[rng.random(x.shape) < 0.08] = np.nan
    expected = pool2d_naive(x, (pool, pool), (strides, strides), padding)
    with cl.config.using_kernels(kernels):
        model = cl.Sequential([Input((7, 6, 5)), MaxPool2D(pool, strides, padding=padding)])
        assert np.array_equal(model.predict(x, verbose=0), expected, equal_nan=True)
    assert np.isnan(expected).any() and not np.isnan(expected).all()


@pytest.mark.parametrize("kernels", KERNELS)
def test_fused_conv_pool_propagates_nan(kernels):
    x = np.ones((2, 8, 8, 1), "float32")
    x[0, 5, 3, 0] = np.nan  # not the first cell of its pooling window
    with cl.config.using_kernels(kernels):
        cl.set_random_seed(1)
        model = cl.Sequential([Input((8, 8, 1)), Conv2D(4, 1, activation="relu"), MaxPool2D()])
        y = model.predict(x, verbose=0)
    assert np.isnan(y[0, 2, 1]).all() and np.isnan(y).sum() == 4 and not np.isnan(y[1]).any()


def test_first_nan_is_the_winner_and_gets_the_gradient():
    x = np.array([1.0, np.nan, 5.0, np.nan]).reshape(1, 2, 2, 1)
    y, arg = max_pool2d_forward_argmax(x)
    assert np.isnan(y).all() and arg.ravel().tolist() == [1]


def test_explain_names_the_nan_and_serialises_it():
    x = np.array([[1.0, np.nan], [0.0, 0.5]]).reshape(1, 2, 2, 1)
    e = cl.explain(MaxPool2D(), x, at=(0, 0, 0, 0))
    assert e.winner == (0, 1)
    assert "max(1, nan, 0, 0.5000) = nan" in str(e) and "input[0, 0, 1, 0] (first NaN" in str(e)
    data = json.loads(json.dumps(e.to_dict(), allow_nan=False))
    assert data["output"] == "nan" and data["window"][0][1] == "nan"
