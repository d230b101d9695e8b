"""Every number of the lecture digest (shared/seeds/README.md), sections 1 to 4.

Expected values are the digest's own hand arithmetic, written out literally.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D


def pool2d(x, **kwargs):
    return MaxPool2D(**kwargs)(x)


# ---------------------------------------------------------------- section 2: MaxPool2D
def test_maxpool_default_on_4x4():
    out = pool2d(np.arange(16).reshape(1, 4, 4, 1))
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 7], [13, 15]])


def test_maxpool_on_6x6():
    out = pool2d(np.arange(36).reshape(1, 6, 6, 1))
    np.testing.assert_array_equal(out[0, :, :, 0], [[7, 9, 11], [19, 21, 23], [31, 33, 35]])


def test_maxpool_3x3_on_6x6():
    out = pool2d(np.arange(36).reshape(1, 6, 6, 1), pool_size=(3, 3))
    np.testing.assert_array_equal(out[0, :, :, 0], [[14, 17], [32, 35]])


def test_maxpool_5x5_valid_and_same():
    x = np.arange(25).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(pool2d(x, pool_size=(2, 2))[0, :, :, 0], [[6, 8], [16, 18]])
    np.testing.assert_array_equal(
        pool2d(x, pool_size=(2, 2), padding="same")[0, :, :, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]]
    )


def test_maxpool_batch_of_two():
    out = pool2d(np.arange(32).reshape(2, 4, 4, 1))
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(out[1, :, :, 0], [[21, 23], [29, 31]])


def test_maxpool_three_channels_pooled_separately_and_integer_kept():
    x = np.arange(48).reshape(1, 4, 4, 3)
    np.testing.assert_array_equal(x[0, 0, :, 0], [0, 3, 6, 9])
    out = pool2d(x)
    np.testing.assert_array_equal(out[0, :, :, 0], [[15, 21], [39, 45]])
    assert np.issubdtype(out.dtype, np.integer)


# ---------------------------------------------------------------- section 3: Conv2D
def test_conv2d_rejects_3d_input_with_keras_wording():
    with pytest.raises(ValueError, match=r"expected min_ndim=4, found ndim=3. Full shape received: \(1, 4, 4\)"):
        Conv2D(1, (2, 2))(np.arange(16).reshape(1, 4, 4).astype("float32"))


def test_conv2d_rejects_int64_input():
    with pytest.raises(ValueError, match=r"int64.*x.astype\(\"float32\"\)"):
        Conv2D(1, (2, 2))(np.arange(16).reshape(1, 4, 4, 1))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_conv2d_float_inputs_give_float32(dtype):
    out = Conv2D(1, (2, 2))(np.arange(16).reshape(1, 4, 4, 1).astype(dtype))
    assert out.dtype == np.float32 and out.shape == (1, 3, 3, 1)


def test_conv2d_weights_are_lazy_then_keras_shaped():
    layer = Conv2D(1, (3, 3))
    assert layer.weights == []
    layer(np.zeros((1, 4, 4, 1), "float32"))
    assert layer.weights[0].shape == (3, 3, 1, 1)
    assert layer.weights[1].shape == (1,)
    np.testing.assert_array_equal(layer.weights[1], [0.0])


def test_conv2d_seed_makes_weights_repeatable():
    cl.set_seed(43052)
    a = Conv2D(1, (2, 2))
    a(np.zeros((1, 4, 4, 1), "float32"))
    cl.set_seed(43052)
    b = Conv2D(1, (2, 2))
    b(np.zeros((1, 4, 4, 1), "float32"))
    np.testing.assert_array_equal(a.kernel, b.kernel)
    limit = np.sqrt(6 / (4 + 4))  # glorot: fan_in = fan_out = 2*2*1
    assert np.all(np.abs(a.kernel) <= limit) and not np.all(a.kernel == 0)


def test_conv2d_output_00_is_window_times_kernel_plus_bias():
    layer = Conv2D(1, (2, 2))
    x = np.arange(16).reshape(1, 4, 4, 1).astype("float32")
    layer(x)
    w = layer.kernel[:, :, 0, 0]
    layer.set_weights([layer.kernel, np.array([0.7])])
    expected = 0 * w[0, 0] + 1 * w[0, 1] + 4 * w[1, 0] + 5 * w[1, 1] + 0.7
    assert layer(x)[0, 0, 0, 0] == pytest.approx(expected, rel=1e-6)


def _quarter_kernel_layer(x):
    layer = Conv2D(1, (2, 2))
    layer(x)
    layer.set_weights([np.full((2, 2, 1, 1), 1 / 4), np.array([3.0])])
    return layer


def test_conv2d_quarter_kernel_on_4x4():
    x = np.arange(16).reshape(1, 4, 4, 1).astype("float64")
    out = _quarter_kernel_layer(x)(x)
    np.testing.assert_array_equal(out[0, :, :, 0], [[5.5, 6.5, 7.5], [9.5, 10.5, 11.5], [13.5, 14.5, 15.5]])


def test_conv2d_quarter_kernel_on_two_images():
    x = np.arange(32).reshape(2, 4, 4, 1).astype("float64")
    out = _quarter_kernel_layer(x)(x)
    np.testing.assert_array_equal(out[1, :, :, 0], [[21.5, 22.5, 23.5], [25.5, 26.5, 27.5], [29.5, 30.5, 31.5]])


def test_conv2d_quarter_kernel_on_two_5x5_images():
    x = np.arange(50).reshape(2, 5, 5, 1).astype("float64")
    out = _quarter_kernel_layer(x)(x)
    assert out.shape == (2, 4, 4, 1)
    assert out[0, 0, 0, 0] == 6.0 and out[1, 0, 0, 0] == 31.0
    # each output is the mean of a 2x2 window (top-left value + 3) plus the bias 3
    np.testing.assert_array_equal(out[0, :, :, 0], np.arange(25).reshape(5, 5)[:4, :4] + 3 + 3)


def test_conv2d_3x3_kernel_on_ones_gives_kernel_sum():
    layer = Conv2D(1, (3, 3))
    out = layer(np.ones((1, 4, 4, 1), "float32"))
    np.testing.assert_allclose(out[0, :, :, 0], np.full((2, 2), layer.kernel.sum()), rtol=1e-5, atol=1e-6)


def test_conv2d_worked_5x5_example():
    image = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]])
    kernel = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]])
    layer = Conv2D(1, (3, 3))
    x = image.reshape(1, 5, 5, 1).astype("float32")
    layer(x)
    layer.set_weights([kernel.reshape(3, 3, 1, 1), np.array([0])])
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[12, 12, 17], [10, 17, 19], [9, 6, 14]])


def test_conv2d_four_filters_on_one_window():
    layer = Conv2D(4, (2, 2))
    out = layer(np.ones((1, 2, 2, 1), "float32"))
    assert out.shape == (1, 1, 1, 4)
    np.testing.assert_allclose(out[0, 0, 0], layer.kernel.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)


def test_conv2d_four_filters_three_channels():
    layer = Conv2D(4, (2, 2))
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 3)).astype("float32")
    out = layer(x)
    w = layer.kernel
    for k in range(4):
        expected = np.sum(x[0, :, :, 0] * w[..., 0, k] + x[0, :, :, 1] * w[..., 1, k] + x[0, :, :, 2] * w[..., 2, k])
        assert out[0, 0, 0, k] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_conv2d_relu_clips_negatives():
    x = np.arange(16).reshape(1, 4, 4, 1).astype("float32")
    layer = Conv2D(1, (2, 2), activation="relu")
    layer(x)
    layer.set_weights([np.full((2, 2, 1, 1), -1.0), np.array([20.0])])
    # window sums are 10, 14, 18, ... so 20 - sum is positive only in the first cells
    expected = np.maximum(20 - np.array([[10, 14, 18], [26, 30, 34], [42, 46, 50]]), 0)
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], expected)


# ---------------------------------------------------------------- section 4: the exercise
def test_vertical_edge_exercise():
    image = np.zeros((6, 6))
    image[:, 3:] = 1
    layer = Conv2D(1, (2, 2))
    x = image.reshape(1, 6, 6, 1)
    layer(x)
    layer.set_weights([np.array([[-1, 1], [-1, 1]]).reshape(2, 2, 1, 1), np.array([0])])
    expected = np.zeros((5, 5))
    expected[:, 2] = 2
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], expected)


# ---------------------------------------------------------------- section 1: the two networks
def _net1():
    return cl.Sequential(
        [Flatten()] + [Dense(500, activation="relu") for _ in range(4)] + [Dense(10, activation="softmax")]
    )


def _net2():
    return cl.Sequential(
        [
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Flatten(),
            Dense(10, activation="softmax"),
        ]
    )


def test_network_parameter_counts_and_summary(capsys):
    net1, net2 = _net1(), _net2()
    net1.build((None, 28, 28, 1))
    net2.build((None, 28, 28, 1))
    assert net1.count_params() == 392_500 + 250_500 * 3 + 5_010 == 1_149_010
    assert net2.count_params() == 150 + 3_630 + 10_810 == 14_590
    assert round(14_590 / 1_149_010, 4) == 0.0127
    net2.summary()
    text = capsys.readouterr().out
    for piece in [
        "(None, 27, 27, 30)",
        "(None, 13, 13, 30)",
        "(None, 12, 12, 30)",
        "(None, 6, 6, 30)",
        "(None, 1080)",
        "(None, 10)",
        "Total params: 14,590",
        "conv2d (Conv2D)",
        "max_pooling2d_1 (MaxPooling2D)",
        "10,810",
    ]:
        assert piece in text, piece


def test_unbuilt_summary_says_so(capsys):
    _net2().summary()
    assert "not built yet" in capsys.readouterr().out


def test_shape_trace_layer_by_layer():
    net2 = _net2()
    x = np.zeros((7, 28, 28, 1))
    net2(x)
    c1, m1, c2, m2, flttn, dns = net2.layers
    shapes = []
    out = x
    for layer in (c1, m1, c2, m2, flttn, dns):
        out = layer(out)
        shapes.append(out.shape)
    assert shapes == [(7, 27, 27, 30), (7, 13, 13, 30), (7, 12, 12, 30), (7, 6, 6, 30), (7, 1080), (7, 10)]
