"""The accelerated Conv2D unit (cnnlab._accel.conv.FastConv) against the reference layer.

Every comparison is bounded by rounding-error analysis (tests/numerics.py), never by a picked
tolerance: the forward pass sums ``K = kh*kw*C_in`` products and the bias, the kernel gradient
``N*Ho*Wo`` products (plus the reduction of per-thread partial sums), the bias gradient
``N*Ho*Wo`` terms and the input gradient ``F`` products per window cell and up to ``kh*kw``
overlapping cells.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import _accel, config
from cnnlab.layers import Conv2D
from cnnlab.ops.conv import conv2d_backward_input, conv2d_naive, im2col
from cnnlab.ops.shapes import window_output_hw
from tests.numerics import gamma, sum_bound, unit_roundoff

pytestmark = [pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed"), pytest.mark.numerics]

#: error of one evaluation of NumPy's tanh / the sigmoid in ulps of the result (|result| <= 1):
#: both implementations apply the same NumPy function to their own z, so their outputs differ by
#: at most Lipschitz * |dz| + 2 such errors (NumPy documents <= 4 ulp for its SIMD float32 tanh)
ACT_ULPS = 4

#: Lipschitz constant of each activation, and of its derivative written in terms of y
#: (relu: the mask is made equal, see below; tanh: 1 - y^2 -> 2|y| <= 2; sigmoid: y(1-y) -> 1)
LIPSCHITZ = {"linear": 1.0, "relu": 1.0, "tanh": 1.0, "sigmoid": 0.25}
DERIV_LIPSCHITZ = {"linear": 0.0, "relu": 0.0, "tanh": 2.0, "sigmoid": 1.0}


def build(conv: Conv2D, x: np.ndarray) -> None:
    previous = config.floatx()
    config.set_floatx(x.dtype.name)
    try:
        conv.build(x.shape)
    finally:
        config.set_floatx(previous)


def derivative(activation: str, y: np.ndarray) -> np.ndarray:
    return {
        "linear": lambda: np.ones_like(y),
        "relu": lambda: (y > 0).astype(y.dtype),
        "tanh": lambda: 1 - y * y,
        "sigmoid": lambda: y * (1 - y),
    }[activation]()


def reference(conv: Conv2D, x: np.ndarray, dy: np.ndarray, need_dx: bool):
    y = conv.forward(x, training=True)
    dx = conv.backward(dy.copy(), need_dx=need_dx)
    grads = {k: v.copy() for k, v in conv.grads.items()}
    conv.release()
    conv.grads.clear()
    return y, dx, grads


def fast(conv: Conv2D, x: np.ndarray, dy: np.ndarray, need_dx: bool):
    from cnnlab._accel.conv import FastConv

    unit = FastConv(conv)
    y_infer = unit.forward(x, training=False)
    y = unit.forward(x, training=True)
    dx = unit.backward(dy.copy(), need_dx=need_dx)
    grads = {k: v.copy() for k, v in conv.grads.items()}
    unit.release()
    conv.grads.clear()
    np.testing.assert_array_equal(y_infer, y)  # inference and training compute the same numbers
    return y, dx, grads


def assert_within(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray, what: str) -> None:
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), f"{what}: |diff| {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}"


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float32, np.float64]),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    strides=st.sampled_from([(1, 1), (2, 2), (2, 1), (3, 2)]),
    dilation=st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 3)]),
    padding=st.sampled_from(["valid", "same"]),
    channels=st.integers(1, 12),
    filters=st.integers(1, 20),
    activation=st.sampled_from(["relu", "linear", "tanh", "sigmoid"]),
    use_bias=st.booleans(),
    need_dx=st.booleans(),
    batch=st.integers(1, 5),
)
def test_fast_conv_matches_reference_within_rounding(
    data, dtype, kernel, strides, dilation, padding, channels, filters, activation, use_bias, need_dx, batch
):
    if strides != (1, 1):
        dilation = (1, 1)  # Keras rejects strides > 1 together with dilation > 1
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    h = data.draw(st.integers(span[0], span[0] + 9))
    w = data.draw(st.integers(span[1], span[1] + 9))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.normal(size=(batch, h, w, channels)).astype(dtype)
    conv = Conv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                  activation=activation, use_bias=use_bias)  # fmt: skip
    build(conv, x)
    weights = [rng.normal(size=conv.kernel.shape) * 0.5]
    if use_bias:
        weights.append(rng.normal(size=filters))
    conv.set_weights(weights)
    u = unit_roundoff(dtype)

    # forward bound: K products plus the bias, |X| @ |W| + |b| from the same im2col'd operands
    cols = im2col(x.astype(np.float64), kernel, strides, padding, dilation)
    n, ho, wo = cols.shape[:3]
    k = kernel[0] * kernel[1] * channels
    w64 = conv.kernel.astype(np.float64).reshape(k, filters)
    b64 = conv.bias.astype(np.float64) if use_bias else np.zeros(filters)
    abs_z = (np.abs(cols.reshape(-1, k)) @ np.abs(w64) + np.abs(b64)).reshape(n, ho, wo, filters)
    bound_z = sum_bound(abs_z, k + 1, dtype, c=2)
    bound_y = LIPSCHITZ[activation] * bound_z
    if activation in ("tanh", "sigmoid"):
        bound_y = bound_y + 2 * ACT_ULPS * 2 * u

    z_exact = (cols.reshape(-1, k) @ w64 + b64).reshape(n, ho, wo, filters)
    dy = rng.normal(size=z_exact.shape).astype(dtype)
    if activation == "relu":
        # where the two z may fall on either side of 0 the ReLU masks may differ: no gradient there
        dy[np.abs(z_exact) <= bound_z] = 0

    y_ref, dx_ref, g_ref = reference(conv, x, dy, need_dx)
    y_fast, dx_fast, g_fast = fast(conv, x, dy, need_dx)
    assert y_fast.dtype == y_ref.dtype == dtype
    assert_within(y_fast, y_ref, bound_y, "y")

    # against the float64 loop reference (one computation against the exact sum: c = 1)
    if activation == "linear" and n * ho * wo * filters * k <= 20_000:
        naive = conv2d_naive(x, conv.kernel, conv.bias if use_bias else None, strides, padding, dilation)
        slack = sum_bound(abs_z, k + 1, np.float64, c=1)  # the loop's own float64 rounding
        assert_within(y_fast, naive, sum_bound(abs_z, k + 1, dtype, c=1) + slack, "y vs conv2d_naive")

    # dz = dy * f'(y): the two sides' y differ by <= bound_y, their f' by <= DERIV_LIPSCHITZ * that,
    # and each side rounds dy * f'(y) with up to three operations (1 - y*y, then * dy)
    y64 = y_ref.astype(np.float64)
    dz = np.abs(dy.astype(np.float64) * derivative(activation, y64))
    ddz = np.abs(dy) * (DERIV_LIPSCHITZ[activation] * bound_y)
    if activation in ("tanh", "sigmoid"):
        ddz = ddz + 2 * 3 * u * np.abs(dy) * 2  # |f'| <= 1 and |intermediate| <= 2 on each side
    dz_hi = dz + ddz

    m = n * ho * wo
    parts = _accel.threads()
    cols2 = np.abs(cols.reshape(m, k))
    bound_dw = sum_bound(cols2.T @ dz_hi.reshape(m, filters), m + parts, dtype) + cols2.T @ ddz.reshape(m, filters)
    assert_within(g_fast["kernel"].reshape(k, filters), g_ref["kernel"].reshape(k, filters), bound_dw, "dW")
    if use_bias:
        dz2, ddz2 = dz_hi.reshape(m, filters), ddz.reshape(m, filters)
        assert_within(g_fast["bias"], g_ref["bias"], sum_bound(dz2.sum(0), m + parts, dtype) + ddz2.sum(0), "db")
    if not need_dx:
        assert dx_fast is None and dx_ref is None
        return
    # dx: F products per window cell, then up to kh*kw overlapping cells summed (col2im)
    absw = np.abs(conv.kernel.astype(np.float64))
    args = (cols.shape, x.shape, absw, strides, padding, dilation)
    terms = conv2d_backward_input(dz_hi, *args)
    bound_dx = sum_bound(terms, filters + kernel[0] * kernel[1], dtype) + conv2d_backward_input(ddz, *args)
    assert dx_fast.dtype == dtype
    assert_within(dx_fast, dx_ref, bound_dx, "dx")


def test_blocks_span_images_and_threads_split_the_batch():
    """A large batch of small images (many blocks per thread, blocks crossing image borders) and a
    batch smaller than the thread count take the blocked float32 path and stay within the bounds."""
    from cnnlab._accel import conv as fast_conv

    rng = np.random.default_rng(1)
    for batch, size in ((37, 5), (1, 9)):
        x = rng.normal(size=(batch, size, size, 8)).astype(np.float32)
        conv = Conv2D(24, 3, padding="same", activation="linear")
        build(conv, x)
        unit = fast_conv.FastConv(conv)
        if fast_conv.blas.sgemm() is not None:
            assert unit._blocked(x.dtype)
        ho, wo = window_output_hw((size, size), (3, 3), (1, 1), "same")
        dy = rng.normal(size=(batch, ho, wo, 24)).astype(np.float32)
        y_ref, dx_ref, g_ref = reference(conv, x, dy, True)
        y, dx, g = fast(conv, x, dy, True)
        cols = np.abs(im2col(x.astype(np.float64), (3, 3), (1, 1), "same")).reshape(-1, 72)
        absw = np.abs(conv.kernel.astype(np.float64)).reshape(72, 24)
        assert_within(y, y_ref, sum_bound((cols @ absw).reshape(y.shape), 73, np.float32), "y")
        m = cols.shape[0]
        bound_dw = sum_bound(cols.T @ np.abs(dy.reshape(m, 24)), m + _accel.threads(), np.float32)
        assert_within(g["kernel"].reshape(72, 24), g_ref["kernel"].reshape(72, 24), bound_dw, "dW")
        assert gamma(m, np.float32) < 1
        assert dx.shape == dx_ref.shape


def test_conv_pool_hands_large_float32_layers_to_fast_conv(monkeypatch):
    """Above SPLIT_COLS_BYTES ConvPool runs FastConv then FastMaxPool: exactly their numbers."""
    from cnnlab._accel import conv_pool
    from cnnlab._accel.conv import FastConv
    from cnnlab._accel.pool import FastMaxPool
    from cnnlab.layers import MaxPooling2D

    monkeypatch.setattr(conv_pool, "SPLIT_COLS_BYTES", 0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 10, 10, 6)).astype(np.float32)
    conv, pool = Conv2D(8, 3, padding="same", activation="relu"), MaxPooling2D(2)
    build(conv, x)
    dy = rng.normal(size=(4, 5, 5, 8)).astype(np.float32)
    unit = conv_pool.ConvPool(conv, pool)
    y = unit.forward(x, True)
    dx = unit.backward(dy.copy(), True)
    grads = {k: v.copy() for k, v in conv.grads.items()}
    unit.release()
    conv.grads.clear()
    assert unit._split_active == (FastConv(conv)._blocked(x.dtype))
    fc, fp = FastConv(conv), FastMaxPool(pool)
    np.testing.assert_array_equal(y, fp.forward(fc.forward(x, True), True))
    np.testing.assert_array_equal(dx, fc.backward(fp.backward(dy.copy(), True), True))
    for name, value in grads.items():
        np.testing.assert_array_equal(value, conv.grads[name])
