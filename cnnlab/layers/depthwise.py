"""``DepthwiseConv2D`` and ``SeparableConv2D``: state and shapes around :mod:`cnnlab.ops.depthwise`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.layers.activated import ActivationMixin
from cnnlab.layers.base import Layer, Shape, check_initializer
from cnnlab.layers.weight_rules import WeightRulesMixin
from cnnlab.ops import activations as act_ops
from cnnlab.ops.depthwise import (
    depthwise_conv2d_backward,
    depthwise_conv2d_forward_padded,
    separable_conv2d_backward,
    separable_conv2d_forward_parts,
)
from cnnlab.ops.shapes import normalize_padding, normalize_tuple, window_output_hw


def positive_int(value: object, argument: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{owner}: expected {argument} to be a positive integer, received {value!r}.")
    return int(value)


class _DepthwiseBase(ActivationMixin, WeightRulesMixin, Layer):
    """What DepthwiseConv2D and SeparableConv2D share: arguments, shapes, the depthwise kernel."""

    min_ndim = 4
    accepts_integers = False
    owner = "DepthwiseConv2D"

    def _init_geometry(
        self,
        kernel_size: Any,
        strides: Any,
        padding: Any,
        depth_multiplier: Any,
        dilation_rate: Any,
        activation: Any,
        use_bias: Any,
    ) -> None:
        owner = self.owner
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size", owner)
        self.strides = normalize_tuple(strides, "strides", owner)
        self.padding = normalize_padding(padding, owner)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", owner)
        # Keras 3's depthwise and separable layers (unlike Conv2D) accept strides and dilation together
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate", owner)
        self.activation = act_ops.get(activation, owner)
        self.use_bias = bool(use_bias)

    @property
    def bias(self) -> np.ndarray | None:
        return self._weights.get("bias")

    def _out_channels(self, c_in: int) -> int:
        return c_in * self.depth_multiplier

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 4:
            raise InvalidArgumentError(
                f'{self.owner} "{self.name}": expected an input shape (batch, height, width, channels), '
                f"received {tuple(input_shape)}."
            )
        ho, wo = window_output_hw(
            (int(input_shape[1]), int(input_shape[2])),  # type: ignore[arg-type]
            self.kernel_size,
            self.strides,
            self.padding,
            self.dilation_rate,
            f'{self.owner} "{self.name}"',
        )
        c_in = input_shape[3]
        return (input_shape[0], ho, wo, None if c_in is None else self._out_channels(int(c_in)))

    def _input_channels(self) -> int:
        return int(self._weights["kernel" if "kernel" in self._weights else "depthwise_kernel"].shape[2])

    def check_built_shape(self, x: np.ndarray) -> None:
        if x.ndim != 4:
            raise self._incompatible(f"expected ndim=4, found ndim={x.ndim}.", x.shape)
        c_in = self._input_channels()
        if x.shape[-1] != c_in:
            raise self._incompatible(
                f"expected axis -1 of input shape to have value {c_in}, but received input "
                f"with shape {tuple(x.shape)}.",
                x.shape,
                f". The layer was built for {c_in} channel(s); use a new {self.owner} for other inputs.",
            )
        self.compute_output_shape(x.shape)

    def work_bytes_per_sample(self, input_shape: tuple[int, ...]) -> int:
        _, ho, wo, c_out = self.compute_output_shape(input_shape)
        padded = (input_shape[1] + self.kernel_size[0] * self.dilation_rate[0]) * (
            input_shape[2] + self.kernel_size[1] * self.dilation_rate[1]
        )
        mid = ho * wo * input_shape[3] * self.depth_multiplier
        return int((padded * input_shape[3] + 2 * mid + 2 * ho * wo * c_out) * np.dtype(self.dtype_of()).itemsize)

    def dtype_of(self) -> np.dtype:
        return next(iter(self._weights.values())).dtype

    def release(self) -> None:
        super().release()
        self.release_activation()

    def _layout_hint(self, slot: str, shape: tuple[int, ...]) -> str:
        expected = self._weights[slot].shape
        if slot in ("kernel", "depthwise_kernel") and len(shape) == 4 and shape[1] == 1:
            kh, kw, c_in, dm = expected
            if tuple(shape) == (c_in * dm, 1, kh, kw):
                return (
                    " It looks like PyTorch's grouped (C*dm, 1, kh, kw) order; convert it with "
                    f"w.reshape({c_in}, {dm}, {kh}, {kw}).transpose(2, 3, 0, 1)."
                )
        return ""

    def _geometry_config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "depth_multiplier": self.depth_multiplier,
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


class DepthwiseConv2D(_DepthwiseBase):
    """Depthwise 2-D convolution, like ``keras.layers.DepthwiseConv2D`` (channels_last).

    ``x: (N, H, W, C) -> (N, H_out, W_out, C*depth_multiplier)``; kernel ``(kh, kw, C, depth_multiplier)``
    (Keras's weight name ``kernel``), bias ``(C*depth_multiplier,)``. Each input channel is convolved
    with its own ``depth_multiplier`` kernels; output channel ``c*depth_multiplier + m`` comes from
    input channel ``c`` and kernel ``m``. ``activation`` is applied after the bias.

    >>> layer = DepthwiseConv2D(2, name="demo_depthwise")
    >>> x = np.arange(18, dtype="float32").reshape(1, 3, 3, 2)
    >>> _ = layer(x)
    >>> [w.shape for w in layer.weights]
    [(2, 2, 2, 1), (2,)]
    >>> layer.set_weights([np.ones((2, 2, 2, 1)), np.array([0.0, 100.0])])
    >>> layer(x)[0, 0, 0].tolist()  # channel 0: 0+2+6+8; channel 1: 1+3+7+9 + 100
    [16.0, 120.0]
    """

    rule_prefixes = {"depthwise": "kernel", "bias": "bias"}
    owner = "DepthwiseConv2D"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_geometry(kernel_size, strides, padding, depth_multiplier, dilation_rate, activation, use_bias)
        self.depthwise_initializer = check_initializer(depthwise_initializer, "depthwise_initializer", self.owner)
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", self.owner)

    @property
    def kernel(self) -> np.ndarray | None:
        return self._weights.get("kernel")

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # raises if the output would be empty
        c_in = int(input_shape[-1])  # type: ignore[arg-type]
        self.add_weight("kernel", (*self.kernel_size, c_in, self.depth_multiplier), self.depthwise_initializer)
        if self.use_bias:
            self.add_weight("bias", (c_in * self.depth_multiplier,), self.bias_initializer)
        super().build(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        z, xp = depthwise_conv2d_forward_padded(
            x, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate
        )
        self._cache = (xp, x.shape) if training else None
        return self.activate(z, training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        xp, x_shape = self._cache
        dz = self.activation_backward(dy, from_logits)
        dx, dw, db = depthwise_conv2d_backward(
            dz, xp, x_shape, self.kernel, self.strides, self.padding, self.dilation_rate, need_dx
        )
        self.store_grad("kernel", dw)
        if self.use_bias:
            self.store_grad("bias", db)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            **self._geometry_config(),
            "depthwise_initializer": self.depthwise_initializer,
            "bias_initializer": self.bias_initializer,
        }


class SeparableConv2D(_DepthwiseBase):
    """Depthwise-separable 2-D convolution, like ``keras.layers.SeparableConv2D`` (channels_last).

    ``x: (N, H, W, C) -> (N, H_out, W_out, filters)``: a depthwise convolution (no bias) with
    ``depthwise_kernel (kh, kw, C, depth_multiplier)``, then a 1x1 convolution with
    ``pointwise_kernel (1, 1, C*depth_multiplier, filters)`` and ``bias (filters,)``, then the
    activation. Weights in Keras's order: ``[depthwise_kernel, pointwise_kernel, bias]``.

    >>> layer = SeparableConv2D(1, 2, name="demo_separable")
    >>> x = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    >>> _ = layer(x)
    >>> [w.shape for w in layer.weights]
    [(2, 2, 2, 1), (1, 1, 2, 1), (1,)]
    >>> layer.set_weights([np.ones((2, 2, 2, 1)), np.array([1.0, 10.0]).reshape(1, 1, 2, 1), np.array([0.5])])
    >>> layer(x).ravel().tolist()  # channel sums 12 and 16: 12*1 + 16*10 + 0.5
    [172.5]
    """

    rule_prefixes = {"depthwise": "depthwise_kernel", "pointwise": "pointwise_kernel", "bias": "bias"}
    owner = "SeparableConv2D"

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        dilation_rate: int | tuple[int, int] = (1, 1),
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: str = "glorot_uniform",
        pointwise_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters", self.owner)
        self._init_geometry(kernel_size, strides, padding, depth_multiplier, dilation_rate, activation, use_bias)
        self.depthwise_initializer = check_initializer(depthwise_initializer, "depthwise_initializer", self.owner)
        self.pointwise_initializer = check_initializer(pointwise_initializer, "pointwise_initializer", self.owner)
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", self.owner)

    @property
    def depthwise_kernel(self) -> np.ndarray | None:
        return self._weights.get("depthwise_kernel")

    @property
    def pointwise_kernel(self) -> np.ndarray | None:
        return self._weights.get("pointwise_kernel")

    def _out_channels(self, c_in: int) -> int:
        return self.filters

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # raises if the output would be empty
        c_in = int(input_shape[-1])  # type: ignore[arg-type]
        dm = self.depth_multiplier
        self.add_weight("depthwise_kernel", (*self.kernel_size, c_in, dm), self.depthwise_initializer)
        self.add_weight("pointwise_kernel", (1, 1, c_in * dm, self.filters), self.pointwise_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        z, xp, mid = separable_conv2d_forward_parts(
            x, self.depthwise_kernel, self.pointwise_kernel, self.bias, self.strides, self.padding, self.dilation_rate
        )
        self._cache = (xp, mid, x.shape) if training else None
        return self.activate(z, training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        xp, mid, x_shape = self._cache
        dz = self.activation_backward(dy, from_logits)
        dx, d_depthwise, d_pointwise, db = separable_conv2d_backward(
            dz,
            xp,
            mid,
            x_shape,
            self.depthwise_kernel,
            self.pointwise_kernel,
            self.strides,
            self.padding,
            self.dilation_rate,
            need_dx,
        )
        self.store_grad("depthwise_kernel", d_depthwise)
        self.store_grad("pointwise_kernel", d_pointwise)
        if self.use_bias:
            self.store_grad("bias", db)
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            **self._geometry_config(),
            "depthwise_initializer": self.depthwise_initializer,
            "pointwise_initializer": self.pointwise_initializer,
            "bias_initializer": self.bias_initializer,
        }
