"""Fast kernels against the plain-loop references, over random configurations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
