"""The accelerated training-mode BatchNormalization (cnnlab._accel.batchnorm) against the reference
arithmetic of cnnlab.ops.normalization, within rounding bounds (tests/numerics.py).

The unit sums in float64, the reference in float32 (NumPy's pairwise sums), so the means differ by
at most the reference's own error on a sum of ``m`` terms: ``2*gamma_m * mean(|x|)`` for ``E[x]``,
``2*gamma_m * mean(x^2)`` for ``E[x^2]``. Everything elementwise is the reference's expression in
the reference's order, so with the same statistics it gives the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import _accel
from cnnlab.layers import BatchNormalization
from cnnlab.ops.normalization import batch_norm_backward, batch_norm_forward, moments
from tests.numerics import a64, assert_within, sum_bound, unit_roundoff

pytestmark = [pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed"), pytest.mark.numerics]

shapes = st.sampled_from([(5, 3), (2, 3, 4, 7), (8, 5, 5, 16), (3, 1, 1, 2), (64, 4, 4, 3)])


def moment_bounds(x2: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Largest differences of two computations of the mean and of Keras's variance ``E[x^2] - E[x]^2``."""
    m = x2.shape[0]
    mean = x2.astype(np.float64).mean(0)
    bound_mean = sum_bound(a64(x2).mean(0), m, dtype)
    bound_square = sum_bound((a64(x2) ** 2).mean(0), m, dtype)
    u = unit_roundoff(dtype)
    # var = ex2 - mean^2: the error of ex2, of mean^2 through the mean, and the two roundings
    bound_var = bound_square + (2 * np.abs(mean) + bound_mean) * bound_mean + 4 * u * ((a64(x2) ** 2).mean(0) + mean**2)
    return bound_mean, bound_var


def gradient_bounds(x2, dy2, gamma, dgamma_ref, bound_mean, bound_var, dtype):
    """Bounds on dgamma and dx of two computations of BatchNormalization's training backward whose
    batch statistics differ within (bound_mean, bound_var): x_hat moves by at most ``bound_xhat``
    (first order, doubled, plus 8 roundings), inv_std by ``inv_std^3 * bound_var``; each then passes
    through dgamma = sum(dy * x_hat) and dx = (gamma * inv_std / m) * (m dy - dbeta - x_hat dgamma)."""
    m = x2.shape[0]
    u = unit_roundoff(dtype)
    inv_std = 1 / np.sqrt(x2.astype(np.float64).var(0) - bound_var + 1e-3)
    centered = np.abs(x2.astype(np.float64) - x2.astype(np.float64).mean(0)) + bound_mean
    bound_xhat = 2 * (inv_std * bound_mean + centered * inv_std**3 / 2 * bound_var) + 8 * u * inv_std * centered
    x_hat = centered * inv_std
    bound_dbeta = sum_bound(a64(dy2).sum(0), m, dtype)
    bound_dgamma = sum_bound((a64(dy2) * x_hat).sum(0), m, dtype) + (a64(dy2) * bound_xhat).sum(0)
    dgamma = a64(dgamma_ref) + bound_dgamma
    magnitude = m * a64(dy2) + a64(dy2).sum(0) + x_hat * dgamma
    scale = a64(gamma) * inv_std / m
    bound_dx = scale * (bound_dbeta + x_hat * bound_dgamma + dgamma * bound_xhat)
    bound_dx = bound_dx + a64(gamma) * inv_std**3 * bound_var / m * magnitude + sum_bound(scale * magnitude, 3, dtype)
    return bound_dgamma, bound_dx


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes, dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16), offset=st.floats(-3, 3)
)
def test_moments_and_normalization_match_the_reference(shape, dtype, seed, offset):
    from cnnlab._accel.batchnorm import batch_moments, normalize

    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) + offset).astype(dtype)
    x2 = x.reshape(-1, shape[-1])
    axes = tuple(range(len(shape) - 1))
    mean_ref, var_ref = moments(x, axes)
    mean, var = batch_moments(x2)
    assert mean.dtype == var.dtype == dtype
    bound_mean, bound_var = moment_bounds(x2, dtype)
    assert_within(mean, mean_ref.reshape(-1), bound_mean, "mean")
    assert_within(var, var_ref.reshape(-1), bound_var, "variance")

    # the same statistics: the same numbers as the reference expression, y and x_hat
    gamma, beta = rng.normal(size=shape[-1]).astype(dtype), rng.normal(size=shape[-1]).astype(dtype)
    y_ref, inv_std = batch_norm_forward(x, mean_ref, np.abs(var_ref), gamma, beta, 1e-3)
    inv_std = inv_std.reshape(-1)
    y, x_hat = np.empty_like(x2), np.empty_like(x2)
    normalize(x2, mean_ref.reshape(-1), inv_std, inv_std * gamma, beta, True, False, dtype(0), y, x_hat)
    np.testing.assert_array_equal(y.reshape(shape), y_ref)
    np.testing.assert_array_equal(x_hat, ((x - mean_ref) * inv_std).reshape(x2.shape))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_backward_matches_the_reference(shape, dtype, seed):
    from cnnlab._accel.batchnorm import column_sums, input_gradient

    rng = np.random.default_rng(seed)
    x_hat = rng.normal(size=shape).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    inv_std, gamma = rng.uniform(0.5, 2, shape[-1]).astype(dtype), rng.normal(size=shape[-1]).astype(dtype)
    axes = tuple(range(len(shape) - 1))
    dx_ref, dgamma_ref, dbeta_ref = batch_norm_backward(dy, x_hat, inv_std, gamma, axes, True)

    dy2, xh2 = dy.reshape(-1, shape[-1]), x_hat.reshape(-1, shape[-1])
    m = dy2.shape[0]
    dbeta, dgamma = column_sums(dy2, xh2).astype(dtype)
    bound_dbeta = sum_bound(a64(dy2).sum(0), m, dtype)
    bound_dgamma = sum_bound((a64(dy2) * a64(xh2)).sum(0), m, dtype)
    assert_within(dbeta, dbeta_ref, bound_dbeta, "dbeta")
    assert_within(dgamma, dgamma_ref, bound_dgamma, "dgamma")

    scale = inv_std * gamma
    dx = np.empty_like(dy2)
    no_relu = (dy2, False, dtype(0))  # (y, relu, zero): y not read without the ReLU
    input_gradient(dy2, *no_relu, xh2, scale / m, dtype(m), dbeta_ref, dgamma_ref, dx)
    np.testing.assert_array_equal(dx.reshape(shape), dx_ref)  # same sums in: the same expression
    input_gradient(dy2, *no_relu, xh2, scale / m, dtype(m), dbeta, dgamma, dx)
    # the sums' errors pass through (scale/m) * (. - dbeta - x_hat * dgamma), plus its 4 roundings
    magnitude = a64(scale / m) * (m * a64(dy2) + a64(dbeta) + a64(xh2) * a64(dgamma))
    bound = a64(scale / m) * (bound_dbeta + a64(xh2) * bound_dgamma) + sum_bound(magnitude, 3, dtype)
    assert_within(dx.reshape(shape), dx_ref, bound.reshape(shape), "dx")


def test_unit_updates_moving_statistics_and_gradients_like_the_layer():
    from cnnlab._accel.batchnorm import FastBatchNorm

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(16, 6, 6, 5)) * 3 + 1).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    gamma_beta = [rng.normal(size=5).astype(np.float32) for _ in range(2)]
    results = []
    for fast in (False, True):
        layer = BatchNormalization(momentum=0.9)
        layer.build(x.shape)
        layer.set_weights([*gamma_beta, np.zeros(5), np.ones(5)])
        unit = FastBatchNorm(layer) if fast else layer
        y = unit.forward(x, training=True)
        dx = unit.backward(dy.copy())
        inference = unit.forward(x, training=False)
        results.append((y, dx, {k: v.copy() for k, v in layer.grads.items()}, layer.get_weights(), inference))
    (y_ref, dx_ref, g_ref, w_ref, inf_ref), (y, dx, g, w, inf) = results
    x2 = x.reshape(-1, 5)
    bound_mean, bound_var = moment_bounds(x2, np.float32)
    u = unit_roundoff(np.float32)
    # moving = moving * 0.9 + stat * 0.1: the statistic's error times 0.1 and two roundings
    assert_within(w[2], w_ref[2], 0.1 * bound_mean + 4 * u * a64(w_ref[2]), "moving mean")
    assert_within(w[3], w_ref[3], 0.1 * bound_var + 4 * u * a64(w_ref[3]), "moving variance")
    # y = (x - mean) * gamma * inv_std + beta, inv_std = (var + eps)^-1/2: first-order propagation of
    # the statistics' errors (|d inv_std / d var| = inv_std^3 / 2), doubled for the second order,
    # plus the expression's own roundings
    var = x2.astype(np.float64).var(0)
    inv_std = 1 / np.sqrt(var - bound_var + 1e-3)
    gamma = a64(w_ref[0])
    centered = a64(x2 - x2.astype(np.float64).mean(0)) + bound_mean
    bound_y = 2 * gamma * (inv_std * bound_mean + centered * inv_std**3 / 2 * bound_var)
    bound_y = bound_y + 8 * u * (gamma * inv_std * centered + a64(w_ref[1]))
    assert_within(y.reshape(x2.shape), y_ref.reshape(x2.shape), bound_y, "y")
    assert set(g) == set(g_ref) == {"gamma", "beta"}
    # the batch statistics only move x_hat by rounding: the sums' bounds, x_hat itself up to ~bound_y/gamma
    assert_within(g["beta"], g_ref["beta"], sum_bound(a64(dy).reshape(-1, 5).sum(0), x2.shape[0], np.float32), "dbeta")
    bound_dgamma, bound_dx = gradient_bounds(
        x2, dy.reshape(-1, 5), w_ref[0], g_ref["gamma"], bound_mean, bound_var, np.float32
    )
    assert_within(g["gamma"], g_ref["gamma"], bound_dgamma, "dgamma")
    assert_within(dx.reshape(x2.shape), dx_ref.reshape(x2.shape), bound_dx, "dx")
    np.testing.assert_array_equal(inf, unit.layer.forward(x, training=False))  # inference: the layer itself


def test_fused_relu_is_numpys_relu_forward_and_backward():
    from cnnlab._accel.batchnorm import normalize, relu_gradient
    from cnnlab.ops.activations import relu_backward

    x = np.array([[-2.0, -0.0, 0.0, 3.0, np.nan, -np.inf, np.inf, 1e-30]], np.float32)
    zero, ones = np.float32(0), np.ones(x.shape[1], np.float32)
    mean = np.zeros(x.shape[1], np.float32)
    y, x_hat = np.empty_like(x), np.empty_like(x)
    normalize(x, mean, ones, ones, mean, False, True, zero, y, x_hat)
    expected = np.maximum(x, 0)
    np.testing.assert_array_equal(y, expected)
    assert np.array_equal(np.signbit(y), np.signbit(expected))
    dy = np.array([[-1.0, 2.0, -np.inf, np.nan, -3.0, 4.0, -0.5, 5.0]], np.float32)
    dz = np.array([[relu_gradient(g, v, zero) for g, v in zip(dy[0], y[0], strict=True)]], np.float32)
    with np.errstate(invalid="ignore"):  # inf * 0
        ref = relu_backward(y, dy.copy())
    np.testing.assert_array_equal(dz, ref)
    assert np.array_equal(np.signbit(dz), np.signbit(ref))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_backward_passes_with_the_relu_are_the_passes_on_its_gradient(seed, dtype):
    """The ReLU's gradient applied as dy is read gives the numbers of dz = relu_backward(y, dy)
    written out first and then read: the same values summed and combined in the same order."""
    from cnnlab._accel.batchnorm import column_sums, gradient_sums, input_gradient
    from cnnlab.ops.activations import relu_backward

    rng = np.random.default_rng(seed)
    y = np.maximum(rng.normal(size=(50, 6)), 0).astype(dtype)
    dy, x_hat = rng.normal(size=(2, 50, 6)).astype(dtype)
    dy[0, 0], y[1, 1], dy[2, 2] = -np.inf, 0, np.nan  # inf * 0 = nan where y <= 0
    with np.errstate(invalid="ignore"):
        dz = relu_backward(y, dy.copy())
        zero = dtype(0)
        sums = gradient_sums(dy, y, True, zero, x_hat)
        ref_sums = column_sums(dz, x_hat)
        assert np.array_equal(sums, ref_sums, equal_nan=True)
        scale, dbeta, dgamma = rng.uniform(0.5, 2, (3, 6)).astype(dtype)
        dx, dx_ref = np.empty_like(dy), np.empty_like(dy)
        input_gradient(dy, y, True, zero, x_hat, scale / 50, dtype(50), dbeta, dgamma, dx)
        input_gradient(dz, dz, False, zero, x_hat, scale / 50, dtype(50), dbeta, dgamma, dx_ref)
    assert np.array_equal(dx, dx_ref, equal_nan=True) and np.isnan(dx).any()


def test_batchnorm_relu_pair_is_one_unit_with_the_layers_numbers():
    import cnnlab as cl
    from cnnlab._accel.batchnorm import FastBatchNorm

    layers = cl.layers
    bn, relu = layers.BatchNormalization(), layers.Activation("relu")
    chain = [layers.Conv2D(2, 1), bn, relu, layers.Flatten(), layers.Dense(2)]
    unit, count = FastBatchNorm.match(chain, 1, np.dtype(np.float32), len(chain) - 1)
    assert count == 2 and unit.layers == (bn, relu)
    assert FastBatchNorm.match(chain[:3], 1, np.dtype(np.float32), 2)[1] == 1  # relu is the last layer
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    bn.build(x.shape)
    dy = rng.normal(size=x.shape).astype(np.float32)
    y = unit.forward(x, training=True)
    dx = unit.backward(dy.copy())
    grads = {k: v.copy() for k, v in bn.grads.items()}
    unit.release()
    bn.set_weights([np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)])
    bn.grads.clear()
    y_ref = relu.forward(bn.forward(x, training=True), training=True)
    dx_ref = bn.backward(relu.backward(dy.copy()))
    # 36 values per feature: the statistics differ by a few ulps at most; compare with their bound
    x2 = x.reshape(-1, 2)
    bound_mean, bound_var = moment_bounds(x2, np.float32)
    u = unit_roundoff(np.float32)
    inv_std = 1 / np.sqrt(x2.astype(np.float64).var(0) - bound_var + 1e-3)
    centered = a64(x2 - x2.astype(np.float64).mean(0)) + bound_mean
    bound_y = 2 * (inv_std * bound_mean + centered * inv_std**3 / 2 * bound_var) + 8 * u * inv_std * centered
    assert_within(y.reshape(x2.shape), y_ref.reshape(x2.shape), bound_y, "y")
    assert np.array_equal(y > 0, y_ref > 0) or np.all(a64(y_ref)[(y > 0) != (y_ref > 0)] <= bound_y.max())
    assert set(grads) == {"gamma", "beta"} and dx.shape == dx_ref.shape
    assert_within(grads["beta"], bn.grads["beta"], sum_bound(a64(dy).reshape(-1, 2).sum(0), 36, np.float32), "dbeta")
    if np.array_equal(y > 0, y_ref > 0):  # the same ReLU mask: the BatchNormalization gradients compare
        dz = np.where(y_ref.reshape(x2.shape) > 0, dy.reshape(x2.shape), 0)
        bound_dgamma, bound_dx = gradient_bounds(
            x2, dz, np.ones(2), bn.grads["gamma"], bound_mean, bound_var, np.float32
        )
        assert_within(grads["gamma"], bn.grads["gamma"], bound_dgamma, "dgamma")
        assert_within(dx.reshape(x2.shape), dx_ref.reshape(x2.shape), bound_dx, "dx")
