"""``Conv2D``: state and shapes around :mod:`cnnlab.ops.conv`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.layers.activated import ActivationMixin
from cnnlab.layers.base import Layer, Shape, check_initializer
from cnnlab.layers.weight_rules import WeightRulesMixin
from cnnlab.ops import activations as act_ops
from cnnlab.ops.conv import conv2d_backward, conv2d_forward, conv2d_forward_cols
from cnnlab.ops.shapes import normalize_padding, normalize_tuple, window_output_hw


class Conv2D(ActivationMixin, WeightRulesMixin, Layer):
    """2-D convolution, like ``keras.layers.Conv2D`` (channels_last).

    ``x: (N, H, W, C_in) -> (N, H_out, W_out, filters)``; kernel ``(kh, kw, C_in/groups, filters)``,
    bias ``(filters,)``; ``activation`` applied after the bias. ``groups=G`` splits the channels and
    the filters into ``G`` groups, each convolved separately (both must be divisible by ``G``).

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
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise InvalidArgumentError(f"Conv2D: expected filters to be a positive integer, received {filters!r}.")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size", "Conv2D")
        self.strides = normalize_tuple(strides, "strides", "Conv2D")
        self.padding = normalize_padding(padding, "Conv2D")
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate", "Conv2D")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise InvalidArgumentError(
                f"Conv2D: strides > 1 cannot be combined with dilation_rate > 1 (as in Keras); "
                f"received strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise InvalidArgumentError(f"Conv2D: expected groups to be a positive integer, received {groups!r}.")
        self.groups = int(groups)
        if self.filters % self.groups:
            raise InvalidArgumentError(
                f"Conv2D: filters={self.filters} is not divisible by groups={self.groups} (as in Keras, each group "
                f"gets filters/groups filters). Use a number of filters that is a multiple of {self.groups}, "
                f"e.g. filters={self._multiple(self.filters)}, or a groups value that divides {self.filters}."
            )
        self.activation = act_ops.get(activation, "Conv2D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer", "Conv2D")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", "Conv2D")

    @property
    def kernel(self) -> np.ndarray | None:
        return self._weights.get("kernel")

    @property
    def bias(self) -> np.ndarray | None:
        return self._weights.get("bias")

    def build(self, input_shape: Shape) -> None:
        self.compute_output_shape(input_shape)  # raises if the output would be empty
        c_in = int(input_shape[-1])  # type: ignore[arg-type]
        if c_in % self.groups:
            raise InvalidArgumentError(
                f'Conv2D "{self.name}": the input has {c_in} channels, which is not divisible by '
                f"groups={self.groups} (each group convolves C_in/groups channels). Use an input with a multiple "
                f"of {self.groups} channels, e.g. {self._multiple(c_in)}, or a groups value that divides {c_in}."
            )
        self.add_weight("kernel", (*self.kernel_size, c_in // self.groups, self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 4:
            raise InvalidArgumentError(
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
        c_in = self.kernel.shape[2] * self.groups
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

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        args = (self.strides, self.padding, self.dilation_rate, self.groups)
        if training:
            z, cols = conv2d_forward_cols(x, self.kernel, self.bias, *args)
            self._cache = (cols, x.shape)
        else:
            z = conv2d_forward(x, self.kernel, self.bias, *args)
        return self.activate(z, training)

    def backward(self, dy: np.ndarray, need_dx: bool = True, from_logits: bool = False) -> np.ndarray | None:
        cols, x_shape = self._cache
        args = (self.strides, self.padding, self.dilation_rate)
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
            groups=self.groups,
        )
        self.grads["kernel"] = dw
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def _multiple(self, value: int) -> int:
        """The nearest multiple of ``groups`` above ``value`` (for error messages)."""
        return -(-value // self.groups) * self.groups

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
            "groups": self.groups,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }
