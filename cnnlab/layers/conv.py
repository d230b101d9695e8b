"""``Conv2D``: state and shapes around :mod:`cnnlab.ops.conv`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import _fused
from cnnlab.layers.activated import ActivationMixin
from cnnlab.layers.base import Layer, Shape, check_initializer
from cnnlab.ops import activations as act_ops
from cnnlab.ops.conv import conv2d_backward, conv2d_backward_input, conv2d_forward, conv2d_forward_cols, im2col
from cnnlab.ops.shapes import normalize_padding, normalize_tuple, window_output_hw

#: largest kh*kw*C_in for which the compiled one-pass kernel replaces BLAS (measured:
#: 4 -> 2.0 vs 0.34 ms forward; at 120 BLAS wins, 0.55 vs 1.3 ms; benchmarks/RESULTS.md)
FUSED_MAX_K = 16


class Conv2D(ActivationMixin, Layer):
    """2-D convolution, like ``keras.layers.Conv2D`` (channels_last).

    ``x: (N, H, W, C_in) -> (N, H_out, W_out, filters)``; kernel ``(kh, kw, C_in, filters)``,
    bias ``(filters,)``; ``activation`` applied after the bias.

    >>> layer = Conv2D(1, (2, 2), name="demo")
    >>> layer.weights
    []
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> _ = layer(x)  # the first call creates the weights
    >>> layer.set_weights([np.full((2, 2, 1, 1), 0.25), np.array([3.0])])
    >>> layer(x)[0, :, :, 0]
    array([[ 5.5,  6.5,  7.5],
           [ 9.5, 10.5, 11.5],
           [13.5, 14.5, 15.5]], dtype=float32)
    """

    min_ndim = 4
    accepts_integers = False

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv2D: expected filters to be a positive integer, received {filters!r}.")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size", "Conv2D")
        self.strides = normalize_tuple(strides, "strides", "Conv2D")
        self.padding = normalize_padding(padding, "Conv2D")
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate", "Conv2D")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(
                f"Conv2D: strides > 1 cannot be combined with dilation_rate > 1 (as in Keras); "
                f"received strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        self.activation = act_ops.get(activation, "Conv2D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer", "Conv2D")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", "Conv2D")
        self._fused_active = False

    @property
    def kernel(self) -> np.ndarray | None:
        return self._weights.get("kernel")

    @property
    def bias(self) -> np.ndarray | None:
        return self._weights.get("bias")

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # raises if the output would be empty
        c_in = int(input_shape[-1])  # type: ignore[arg-type]
        self.add_weight("kernel", (*self.kernel_size, c_in, self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 4:
            raise ValueError(
                f'Conv2D "{self.name}": expected an input shape (batch, height, width, channels), '
                f"received {tuple(input_shape)}."
            )
        ho, wo = window_output_hw(
            (int(input_shape[1]), int(input_shape[2])),  # type: ignore[arg-type]
            self.kernel_size,
            self.strides,
            self.padding,
            self.dilation_rate,
            f'Conv2D "{self.name}"',
        )
        return (input_shape[0], ho, wo, self.filters)

    def check_built_shape(self, x: np.ndarray) -> None:
        if x.ndim != 4:
            raise self._incompatible(f"expected ndim=4, found ndim={x.ndim}.", x.shape)
        c_in = self.kernel.shape[2]
        if x.shape[-1] != c_in:
            raise self._incompatible(
                f"expected axis -1 of input shape to have value {c_in}, but received input "
                f"with shape {tuple(x.shape)}.",
                x.shape,
                f". The layer was built for {c_in} channel(s); use a new Conv2D for other inputs.",
            )
        self.compute_output_shape(x.shape)

    def work_bytes_per_sample(self, input_shape: tuple[int, ...]) -> int:
        _, ho, wo, _ = self.compute_output_shape(input_shape)
        k = self.kernel.size // self.filters
        return int(ho * wo * (k + 2 * self.filters) * self.kernel.dtype.itemsize)

    def _fused_ok(self, x: np.ndarray) -> bool:
        """The compiled one-pass kernel pays off when the inner size kh*kw*C_in is small."""
        return (
            _fused.AVAILABLE
            and self.activation in ("relu", "linear")
            and x.dtype in (np.float32, np.float64)
            and self.kernel.size // self.filters <= FUSED_MAX_K
        )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        args = (self.strides, self.padding, self.dilation_rate)
        self._fused_active = self._fused_ok(x)
        if self._fused_active:
            cols = im2col(x, self.kernel_size, *args)
            n, ho, wo = cols.shape[:3]
            y = np.empty((n * ho * wo, self.filters), dtype=x.dtype)
            bias = self.bias if self.use_bias else np.zeros(self.filters, x.dtype)
            _fused.small_matmul_bias_relu(
                cols.reshape(n * ho * wo, -1),
                _fused.pad_filters(self.kernel.reshape(-1, self.filters)),
                _fused.pad_filters(bias),
                self.activation == "relu",
                y,
            )
            y = y.reshape(n, ho, wo, self.filters)
            if training:
                self._cache = (cols, x.shape)
                self._activated_output, self.last_logits = y, None
            return y
        if training:
            z, cols = conv2d_forward_cols(x, self.kernel, self.bias, *args)
            self._cache = (cols, x.shape)
        else:
            z = conv2d_forward(x, self.kernel, self.bias, *args)
        return self.activate(z, training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        cols, x_shape = self._cache
        args = (self.strides, self.padding, self.dilation_rate)
        if self._fused_active and not from_logits:
            return self._fused_backward(dy, cols, x_shape, need_dx)
        dz = self.activation_backward(dy, from_logits)
        dx, dw, db = conv2d_backward(
            dz,
            cols,
            x_shape,
            self.kernel,
            *args,
            need_dx,
            dw_out=self.grads.get("kernel"),
            db_out=self.grads.get("bias"),
        )
        self.grads["kernel"] = dw
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def _fused_backward(self, dy, cols, x_shape, need_dx):
        # masked in place by the kernel: dy is the caller's temporary, as in every backward
        dz = np.ascontiguousarray(dy, dtype=self.kernel.dtype)
        m = dz.size // self.filters
        chunks = max(1, min(64, m // 512))
        k = self.kernel.size // self.filters
        dw_parts = np.empty((chunks, k, self.filters), dz.dtype)
        db_parts = np.empty((chunks, self.filters), dz.dtype)
        _fused.small_matmul_bias_relu_backward(
            cols.reshape(m, k),
            self._activated_output.reshape(m, self.filters),
            dz.reshape(m, self.filters),
            self.activation == "relu",
            dw_parts,
            db_parts,
        )
        self.store_grad("kernel", dw_parts.sum(axis=0).reshape(self.kernel.shape))
        if self.use_bias:
            self.store_grad("bias", db_parts.sum(axis=0))
        if not need_dx:
            return None
        args = (self.strides, self.padding, self.dilation_rate)
        return conv2d_backward_input(dz, cols.shape, x_shape, self.kernel, *args)

    def release(self) -> None:
        super().release()
        self.release_activation()

    def _layout_hint(self, slot: str, shape: tuple[int, ...]) -> str:
        expected = self._weights[slot].shape
        if slot == "kernel" and len(shape) == 4 and tuple(shape[i] for i in (2, 3, 1, 0)) == expected:
            return " It looks like PyTorch's (out, in, kh, kw) order; convert it with w.transpose(2, 3, 1, 0)."
        return ""

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }
