"""The accelerated DepthwiseConv2D / SeparableConv2D unit (cnnlab._accel.depthwise.FastDepthwise)
against the reference layers, within rounding bounds (tests/numerics.py).

Depthwise: each output sums ``kh*kw`` products (the bias added after); the kernel gradient sums
``N*Ho*Wo`` products per weight (float64 partials in the unit, float32 in the reference); the
input gradient sums at most ``kh*kw*dm`` products per input cell. Separable: the pointwise matmul
sums ``C*dm`` products, the same BLAS call in both; the depthwise gradients then see a ``d_mid``
that itself carries the pointwise rounding, so their bound adds that error times ``|operand|``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import _accel
from cnnlab.layers import DepthwiseConv2D, SeparableConv2D
from cnnlab.ops.conv import im2col
from cnnlab.ops.shapes import padding_amounts
from cnnlab.ops.windows import unpad_hw, window_slice
from tests.numerics import assert_within, sum_bound

pytestmark = [pytest.mark.skipif(not _accel.AVAILABLE, reason="numba is not installed"), pytest.mark.numerics]


def run(unit, layer, x, dy, need_dx):
    y_infer = unit.forward(x, training=False)
    y = unit.forward(x, training=True)
    dx = unit.backward(dy.copy(), need_dx=need_dx)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    unit.release()
    layer.grads.clear()
    np.testing.assert_array_equal(y_infer, y)
    return y, dx, grads


def windows(x: np.ndarray, layer) -> np.ndarray:
    """``(N, Ho, Wo, kh, kw, C)`` float64 windows of ``x`` as the layer reads them (zeros outside)."""
    return im2col(x.astype(np.float64), layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)


def scatter(per_cell: np.ndarray, x_shape: tuple[int, ...], layer) -> np.ndarray:
    """Add ``per_cell: (N, Ho, Wo, kh, kw, C)`` back into the input cells the windows read."""
    hw = x_shape[1:3]
    pads = padding_amounts(hw, layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)
    out = np.zeros((x_shape[0], hw[0] + sum(pads[0]), hw[1] + sum(pads[1]), x_shape[3]))
    for di in range(layer.kernel_size[0]):
        for dj in range(layer.kernel_size[1]):
            out[window_slice(di, dj, per_cell.shape[1:3], layer.strides, layer.dilation_rate)] += per_cell[
                :, :, :, di, dj
            ]
    return unpad_hw(out, pads, hw)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    separable=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float32, np.float64]),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    strides=st.sampled_from([(1, 1), (2, 2), (2, 1)]),
    dilation=st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 3)]),
    padding=st.sampled_from(["valid", "same"]),
    channels=st.integers(1, 9),
    depth_multiplier=st.integers(1, 3),
    use_bias=st.booleans(),
    need_dx=st.booleans(),
    batch=st.integers(1, 4),
)
def test_fast_depthwise_matches_reference_within_rounding(
    data, separable, dtype, kernel, strides, dilation, padding, channels, depth_multiplier, use_bias, need_dx, batch
):
    from cnnlab._accel.depthwise import FastDepthwise

    if strides != (1, 1):
        dilation = (1, 1)  # Keras rejects strides > 1 together with dilation > 1
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    h = data.draw(st.integers(span[0], span[0] + 6))
    w = data.draw(st.integers(span[1], span[1] + 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.normal(size=(batch, h, w, channels)).astype(dtype)
    geometry = dict(strides=strides, padding=padding, dilation_rate=dilation, depth_multiplier=depth_multiplier)
    filters = data.draw(st.integers(1, 6))
    layer = (
        SeparableConv2D(filters, kernel, use_bias=use_bias, **geometry)
        if separable
        else DepthwiseConv2D(kernel, use_bias=use_bias, **geometry)
    )
    layer.build(x.shape)
    layer.set_weights([rng.normal(size=v.shape).astype(dtype) for v in layer.get_weights()])
    kernel_w = (layer.depthwise_kernel if separable else layer.kernel).astype(np.float64)
    dm, k = depth_multiplier, kernel[0] * kernel[1]

    # float64 depthwise products: |mid| and the exact mid from the same windows
    cols = windows(x, layer)  # (N, Ho, Wo, kh, kw, C)
    abs_mid = np.einsum("nijabc,abcm->nijcm", np.abs(cols), np.abs(kernel_w)).reshape(*cols.shape[:3], -1)
    mid_exact = np.einsum("nijabc,abcm->nijcm", cols, kernel_w).reshape(abs_mid.shape)
    bound_mid = sum_bound(abs_mid, k, dtype)
    if separable:
        pw = layer.pointwise_kernel.astype(np.float64).reshape(channels * dm, filters)
        bound_y = sum_bound(abs_mid @ np.abs(pw), channels * dm + 1, dtype) + bound_mid @ np.abs(pw)
        out_shape = (*abs_mid.shape[:3], filters)
    else:
        bound_y = bound_mid + sum_bound(abs_mid, 1, dtype)
        out_shape = abs_mid.shape
    dy = rng.normal(size=out_shape).astype(dtype)

    y_ref, dx_ref, g_ref = run(layer, layer, x, dy, need_dx)
    y_fast, dx_fast, g_fast = run(FastDepthwise(layer), layer, x, dy, need_dx)
    assert y_fast.dtype == y_ref.dtype == dtype and y_fast.shape == y_ref.shape == out_shape
    assert_within(y_fast, y_ref, bound_y, "y")
    assert set(g_fast) == set(g_ref)

    # the gradient at the depthwise output (separable: through the pointwise kernel) and its error
    dy64 = np.abs(dy.astype(np.float64))
    if separable:
        d_mid = dy64 @ np.abs(pw.T)
        bound_dmid = sum_bound(d_mid, filters, dtype)
        rows = abs_mid.reshape(-1, channels * dm)
        bound_pw = sum_bound(
            rows.T @ dy64.reshape(-1, filters) + bound_mid.reshape(rows.shape).T @ dy64.reshape(-1, filters),
            rows.shape[0],
            dtype,
        )
        assert_within(
            g_fast["pointwise_kernel"],
            g_ref["pointwise_kernel"],
            bound_pw.reshape(layer.pointwise_kernel.shape),
            "d_pointwise",
        )
    else:
        d_mid, bound_dmid = dy64, np.zeros_like(dy64)
    d_mid5 = d_mid.reshape(*d_mid.shape[:3], channels, dm)
    bound_dmid5 = bound_dmid.reshape(d_mid5.shape)
    key = "depthwise_kernel" if separable else "kernel"
    m = int(np.prod(d_mid.shape[:3]))
    abs_dw = np.einsum("nijabc,nijcm->abcm", np.abs(cols), d_mid5 + bound_dmid5)
    assert_within(g_fast[key], g_ref[key], sum_bound(abs_dw, m + 1, dtype), "d_kernel")
    if use_bias:
        assert_within(g_fast["bias"], g_ref["bias"], sum_bound(dy64.reshape(-1, dy.shape[-1]).sum(0), m, dtype), "bias")
    if need_dx:
        # |dx| from every (window cell, multiplier) product, scattered as the windows read x
        per_cell = np.einsum("nijcm,abcm->nijabc", d_mid5 + bound_dmid5, np.abs(kernel_w))
        abs_dx = scatter(per_cell, x.shape, layer)
        assert_within(dx_fast, dx_ref, sum_bound(abs_dx, k * dm + 1, dtype), "dx")
    else:
        assert dx_fast is None and dx_ref is None
    # and against the exact float64 depthwise sums (one computation: c = 1)
    if not separable:
        b = layer.bias.astype(np.float64) if use_bias else 0.0
        assert_within(y_fast, mid_exact + b, sum_bound(abs_mid + np.abs(b), k + 1, dtype, c=1), "y vs exact")


def test_the_fast_plan_runs_both_layers_with_the_unit():
    import cnnlab as cl

    layers = cl.layers
    model = cl.Sequential(
        [
            layers.Input((6, 6, 2)),
            layers.DepthwiseConv2D(3),
            layers.SeparableConv2D(3, 2),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    with cl.config.using_kernels("fast"):
        model.predict(np.zeros((1, 6, 6, 2), np.float32), verbose=0)
        plan = model.plan(training=False)
    assert [line.split(": ")[1] for line in plan[1:3]] == ["FastDepthwise (accelerated)"] * 2


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 300),
    cols=st.integers(1, 70),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_bias_add_and_bias_gradient_are_numpys_numbers(rows, cols, dtype, seed):
    """The compiled ``z += b`` and ``dz.sum(axis=0)`` (the reference layers' expressions) give NumPy's
    bytes: an elementwise add, and rows added one after another, as NumPy reduces the first axis."""
    from cnnlab._accel.depthwise import add_bias, bias_gradient

    rng = np.random.default_rng(seed)
    # magnitudes over 6 decades: another summation order would change the rounding
    a = (rng.normal(size=(rows, cols)) * 10.0 ** rng.uniform(-3, 3, (rows, cols))).astype(dtype)
    b = rng.normal(size=cols).astype(dtype)
    np.testing.assert_array_equal(bias_gradient(a), a.sum(axis=0))
    expected = a + b
    add_bias(a, b)
    np.testing.assert_array_equal(a, expected)
