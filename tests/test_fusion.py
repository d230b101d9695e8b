"""The fused Conv2D -> MaxPooling2D training unit against the two layers run separately."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import _accel, config
from cnnlab.layers import Conv2D, MaxPool2D
from tests.numerics import a64, assert_within, sum_bound

if _accel.AVAILABLE:
    from cnnlab._accel.conv_pool import ConvPool

pytestmark = [pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed"), pytest.mark.numerics]


def separate(conv, pool, x, dy, need_dx):
    """Reference: the layers' own forward and backward (BLAS / NumPy arithmetic)."""
    y = pool.forward(conv.forward(x, training=True), training=True)
    dx = conv.backward(pool.backward(dy.copy()), need_dx=need_dx)
    grads = {k: v.copy() for k, v in conv.grads.items()}
    conv.release()
    pool.release()
    conv.grads.clear()
    return y, dx, grads


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    filters=st.integers(1, 5),
    channels=st.integers(1, 8),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    strides=st.sampled_from([(1, 1), (2, 1), (2, 2)]),
    dilation=st.sampled_from([(1, 1), (2, 1)]),
    padding=st.sampled_from(["valid", "same"]),
    pool=st.sampled_from([(2, 2), (3, 2), (1, 2)]),
    activation=st.sampled_from(["relu", "linear"]),
    use_bias=st.booleans(),
    need_dx=st.booleans(),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_fused_pair_matches_separate_layers(
    data, filters, channels, kernel, strides, dilation, padding, pool, activation, use_bias, need_dx, dtype
):
    """float64 takes NumPy's matmul in the fused forward, float32 (with K > 16) the compiled sgemm path."""
    if strides != (1, 1) and dilation != (1, 1):
        dilation = (1, 1)  # Keras rejects strides > 1 together with dilation > 1
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    size = data.draw(st.integers(6, 11))
    x = rng.normal(size=(3, size, size + 1, channels)).astype(dtype)
    # ties: a few repeated values make several cells of a window equal
    x[rng.random(x.shape) < 0.2] = 0.5
    conv = Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        activation=activation,
        use_bias=use_bias,
    )
    mp = MaxPool2D(pool)
    previous = config.floatx()
    config.set_floatx(dtype)
    try:
        conv.build((None, *x.shape[1:]))
    finally:
        config.set_floatx(previous)
    conv.set_weights([rng.normal(size=w.shape) for w in conv.get_weights()])
    if use_bias:
        conv.set_weights([conv.kernel, rng.normal(size=filters)])
    h = conv.forward(x)
    if h.shape[1] < pool[0] or h.shape[2] < pool[1]:
        return
    conv.release()
    pooled_shape = mp.compute_output_shape(h.shape)
    dy = rng.normal(size=pooled_shape).astype(dtype)
    ref_y, ref_dx, ref_grads = separate(conv, mp, x, dy, need_dx)

    unit = ConvPool(conv, mp)
    assert ConvPool.applies(conv, mp, x.dtype)
    y = unit.forward(x)
    dx = unit.backward(dy, need_dx=need_dx)
    unit.release()
    # forward: each value a sum of K products plus the bias, summed by another kernel (compiled
    # loop, sgemm blocks) in possibly another order; ReLU and max are 1-Lipschitz
    k = conv.kernel.size // filters
    magnitude = a64(x).max() * a64(conv.kernel).reshape(k, filters).sum(0) + (a64(conv.bias) if use_bias else 0)
    assert_within(y, ref_y, sum_bound(magnitude, k, dtype), "pooled output")
    # gradients: the same terms summed in another order; each gradient sums at most one term per
    # pooled output (its winner), of size |dy| times the largest factor
    terms = a64(dy).sum()
    bounds = {"kernel": sum_bound(terms * a64(x).max(), dy.size, dtype), "bias": sum_bound(terms, dy.size, dtype)}
    for key, value in ref_grads.items():
        assert_within(conv.grads[key], value, bounds[key], key)
    if need_dx:
        assert_within(dx, ref_dx, sum_bound(terms * a64(conv.kernel).max(), dy.size, dtype), "dx")
    else:
        assert dx is None


def test_overlapping_or_padded_pooling_is_not_fused():
    conv = Conv2D(2, 3)
    conv.build((None, 8, 8, 1))
    assert ConvPool.applies(conv, MaxPool2D(2), np.float32)
    assert not ConvPool.applies(conv, MaxPool2D(2, strides=1), np.float32)
    assert not ConvPool.applies(conv, MaxPool2D(2, padding="same"), np.float32)
    assert not ConvPool.applies(Conv2D(2, 3, activation="tanh"), MaxPool2D(2), np.float32)
