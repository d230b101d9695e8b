"""Fast kernels against the plain-loop references, over random configurations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import _accel
from cnnlab.ops import conv2d_forward, conv2d_naive, pool2d_naive
from cnnlab.ops.pool import avg_pool2d_forward, max_pool2d_forward
from cnnlab.ops.shapes import conv_output_length


@st.composite
def conv_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strided = draw(st.booleans())
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if strided else (1, 1)
    dilation = (1, 1) if strided else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    h = draw(st.integers((kh - 1) * dilation[0] + 1, 12))
    w = draw(st.integers((kw - 1) * dilation[1] + 1, 12))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    return n, h, w, c, f, (kh, kw), strides, padding, dilation, seed


@settings(max_examples=60, deadline=None)
@given(conv_case())
def test_conv2d_matches_loop_reference(case):
    n, h, w, c, f, kernel, strides, padding, dilation, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, w, c))
    k = rng.normal(size=(*kernel, c, f))
    b = rng.normal(size=f)
    fast = conv2d_forward(x, k, b, strides, padding, dilation)
    slow = conv2d_naive(x, k, b, strides, padding, dilation)
    assert fast.shape == slow.shape
    assert fast.shape[1] == conv_output_length(h, kernel[0], strides[0], padding, dilation[0])
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)


@st.composite
def pool_case(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.sampled_from(["valid", "same"]))
    h, w = draw(st.integers(ph, 9)), draw(st.integers(pw, 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return n, h, w, c, (ph, pw), strides, padding, draw(st.integers(0, 2**31))


@settings(max_examples=60, deadline=None)
@given(pool_case(), st.booleans())
def test_max_pool_matches_loop_reference(case, integers):
    n, h, w, c, pool, strides, padding, seed = case
    rng = np.random.default_rng(seed)
    # integers from a small range make ties and keep the dtype question honest
    x = rng.integers(-5, 5, size=(n, h, w, c)) if integers else rng.normal(size=(n, h, w, c))
    fast = max_pool2d_forward(x, pool, strides, padding)
    assert fast.dtype == x.dtype
    np.testing.assert_array_equal(fast, pool2d_naive(x, pool, strides, padding, "max"))


@settings(max_examples=60, deadline=None)
@given(pool_case())
def test_avg_pool_matches_loop_reference(case):
    n, h, w, c, pool, strides, padding, seed = case
    x = np.random.default_rng(seed).normal(size=(n, h, w, c))
    fast = avg_pool2d_forward(x, pool, strides, padding)
    np.testing.assert_allclose(fast, pool2d_naive(x, pool, strides, padding, "avg"), rtol=1e-12, atol=1e-12)


@st.composite
def fast_pool_case(draw):
    """Windows up to 4x4 (overlapping or not), strides 1..4, both paddings, C 1..9 (vector tails)."""
    n, h, w, c, pool, strides, padding, seed = draw(pool_case())
    strides = strides or pool
    if draw(st.booleans()):  # strides wider than the window skip cells
        strides = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return n, h, w, draw(st.integers(1, 9)), pool, strides, padding, seed


def _bits(a: np.ndarray) -> np.ndarray:
    """The bytes of ``a`` (so -0.0 != 0.0 and NaN == NaN of the same payload)."""
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed")
@settings(max_examples=80, deadline=None)
@given(fast_pool_case(), st.sampled_from(["normal", "ties", "nan", "inf"]), st.sampled_from(["float32", "float64"]))
def test_compiled_max_pool_is_the_reference_bit_for_bit(case, values, dtype):
    """FastMaxPool's forward, winners and backward against ops.pool: the same bytes (pooling
    only compares, moves and adds the same dy in the same order), ties going to the first
    maximum, NaN winning as its first occurrence, -inf windows next to 'same' padding, -0.0 dy."""
    from cnnlab._accel.pool import FastMaxPool
    from cnnlab.layers import MaxPooling2D
    from cnnlab.ops.pool import max_pool2d_backward, max_pool2d_forward_argmax

    n, h, w, c, pool, strides, padding, seed = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 2, size=(n, h, w, c)).astype(dtype)  # ties everywhere
    if values == "normal":
        x = rng.normal(size=x.shape).astype(dtype)
    elif values == "nan":
        x[rng.random(x.shape) < 0.2] = np.nan
    elif values == "inf":  # whole windows of -inf: the first cell (maybe padding) wins
        x[rng.random(x.shape) < 0.6] = -np.inf
    y_ref, arg_ref = max_pool2d_forward_argmax(x, pool, strides, padding)
    dy = rng.integers(-3, 3, size=y_ref.shape).astype(dtype) * rng.normal(size=y_ref.shape).astype(dtype)
    dy[rng.random(dy.shape) < 0.2] = -0.0
    dx_ref = max_pool2d_backward(dy, arg_ref, x.shape, pool, strides, padding)

    unit = FastMaxPool(MaxPooling2D(pool, strides=strides, padding=padding))
    y = unit.forward(x, training=True)
    np.testing.assert_array_equal(_bits(y), _bits(y_ref))
    np.testing.assert_array_equal(unit._cache[0], arg_ref)
    np.testing.assert_array_equal(_bits(unit.backward(dy)), _bits(dx_ref))


@pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize("shape", [(0, 5, 4, 3), (2, 5, 4, 0)])
def test_compiled_max_pool_on_empty_arrays_runs_the_layer(shape):
    from cnnlab._accel.pool import FastMaxPool
    from cnnlab.layers import MaxPooling2D

    unit = FastMaxPool(MaxPooling2D(3, strides=2, padding="same"))
    x = np.zeros(shape, np.float32)
    y = unit.forward(x, training=True)
    assert y.shape == (shape[0], 3, 2, shape[3]) and unit.backward(y).shape == x.shape
