"""``BatchNormalization``: state and modes around :mod:`cnnlab.ops.normalization`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.layers.base import Layer, Shape, check_initializer, format_shape
from cnnlab.ops.normalization import batch_norm_backward, batch_norm_forward, broadcast_shape, moments


class BatchNormalization(Layer):
    """Normalizes each feature of ``axis``, like ``keras.layers.BatchNormalization``.

    ``x: (N, ..., C) -> (N, ..., C)`` (same shape); weights ``[gamma, beta, moving_mean,
    moving_variance]``, each ``(C,)`` (``gamma`` only with ``scale``, ``beta`` only with ``center``).

    * training (``fit``, or ``layer(x, training=True)``): ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``
      with the batch's mean and biased variance, and, in the same forward pass (as Keras does),
      ``moving = moving * momentum + batch_statistic * (1 - momentum)``. The update happens
      even if the step is then skipped for a non-finite loss, as in Keras.
    * inference: the same with the moving statistics.
    * ``trainable = False`` runs the layer in inference mode during ``fit`` too (Keras 3's rule,
      for fine-tuning); the moving statistics are never trainable weights, so they appear
      under "Non-trainable params" in ``summary()``.

    >>> bn = BatchNormalization(epsilon=0.0, name="demo_bn")
    >>> bn(np.array([[1.0], [3.0]]), training=True).ravel()
    array([-1.,  1.], dtype=float32)
    >>> [w.tolist() for w in bn.get_weights()]  # moving stats moved 1% of the way
    [[1.0], [0.0], [0.019999999552965164], [1.0]]
    """

    min_ndim = 2
    accepts_integers = False

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: str = "zeros",
        gamma_initializer: str = "ones",
        moving_mean_initializer: str = "zeros",
        moving_variance_initializer: str = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(
                f"BatchNormalization: expected axis to be an integer (the feature axis, e.g. -1), received {axis!r}."
            )
        for argument, value in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ValueError(f"BatchNormalization: expected {argument} to be a number, received {value!r}.")
        if not 0 <= momentum <= 1:
            raise ValueError(
                f"BatchNormalization: expected momentum in [0, 1], received {momentum!r}. Keras uses 0.99."
            )
        if epsilon < 0:
            raise ValueError(
                f"BatchNormalization: expected epsilon >= 0 (it keeps the division finite), received {epsilon!r}. "
                "Keras uses 1e-3."
            )
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        owner = "BatchNormalization"
        self.beta_initializer = check_initializer(beta_initializer, "beta_initializer", owner)
        self.gamma_initializer = check_initializer(gamma_initializer, "gamma_initializer", owner)
        self.moving_mean_initializer = check_initializer(moving_mean_initializer, "moving_mean_initializer", owner)
        self.moving_variance_initializer = check_initializer(
            moving_variance_initializer, "moving_variance_initializer", owner
        )

    # ------------------------------------------------------------ shapes
    def _axis_for(self, ndim: int, shape: tuple) -> int:
        """``axis`` as a non-negative index for inputs of rank ``ndim``; a clear error otherwise."""
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 0 < axis < ndim:
            what = "is the batch axis" if axis == 0 else "does not exist"
            raise ValueError(
                f'BatchNormalization "{self.name}": axis={self.axis} {what} for inputs of rank {ndim} '
                f"(shape {format_shape(shape)}). Expected an axis in 1..{ndim - 1} or -{ndim - 1}..-1, "
                f"the axis of the features: axis=-1 for channels_last images (N, H, W, C)."
            )
        return axis

    def build(self, input_shape: Shape) -> None:
        axis = self._axis_for(len(input_shape), tuple(input_shape))
        size = input_shape[axis]
        if size is None:
            raise ValueError(
                f'BatchNormalization "{self.name}": axis {self.axis} of input shape {format_shape(input_shape)} '
                "must have a known size (it sets the number of gamma/beta values)."
            )
        shape = (int(size),)
        if self.scale:
            self.add_weight("gamma", shape, self.gamma_initializer)
        if self.center:
            self.add_weight("beta", shape, self.beta_initializer)
        self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", shape, self.moving_variance_initializer, trainable=False)
        super().build(input_shape)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._axis_for(len(input_shape), tuple(input_shape))
        return tuple(input_shape)

    def check_built_shape(self, x: np.ndarray) -> None:
        axis = self._axis_for(x.ndim, x.shape)
        size = self._weights["moving_mean"].shape[0]
        if x.shape[axis] != size:
            raise self._incompatible(
                f"expected axis {self.axis} of input shape to have value {size}, but received input "
                f"with shape {tuple(x.shape)}.",
                x.shape,
            )

    # ------------------------------------------------------------ computing
    def _param(self, key: str, ndim: int, axis: int) -> np.ndarray | None:
        value = self._weights.get(key)
        return None if value is None else value.reshape(broadcast_shape(ndim, axis, value.shape[0]))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        # Keras 3: a frozen BN layer always infers
        return self._normalize(x, batch_statistics=training and self.trainable, keep=training)

    def forward_for_gradients(self, x: np.ndarray) -> np.ndarray:
        """The moving statistics (inference), with the cache ``backward`` needs; nothing is updated."""
        return self._normalize(x, batch_statistics=False, keep=True)

    def _normalize(self, x: np.ndarray, batch_statistics: bool, keep: bool) -> np.ndarray:
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(config.floatx())
        axis = self._axis_for(x.ndim, x.shape)
        axes = tuple(i for i in range(x.ndim) if i != axis)
        gamma, beta = self._param("gamma", x.ndim, axis), self._param("beta", x.ndim, axis)
        if batch_statistics:
            mean, variance = moments(x, axes)
            # Keras's moving-average update, done in the forward pass as Keras does
            for key, value in (("moving_mean", mean), ("moving_variance", variance)):
                moving = self._weights[key]
                moving[...] = moving * self.momentum + value.reshape(-1) * (1.0 - self.momentum)
        else:
            mean = self._param("moving_mean", x.ndim, axis).astype(x.dtype, copy=False)
            variance = self._param("moving_variance", x.ndim, axis).astype(x.dtype, copy=False)
        y, inv_std = batch_norm_forward(x, mean, variance, gamma, beta, self.epsilon)
        if keep:
            self._cache = ((x - mean) * inv_std, inv_std, axes, batch_statistics)
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        x_hat, inv_std, axes, batch_statistics = self._cache
        gamma = self._param("gamma", dy.ndim, next(i for i in range(dy.ndim) if i not in axes))
        dx, dgamma, dbeta = batch_norm_backward(dy, x_hat, inv_std, gamma, axes, batch_statistics)
        if self.scale:
            self.store_grad("gamma", dgamma)
        if self.center:
            self.store_grad("beta", dbeta)
        return dx if need_dx else None

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": self.beta_initializer,
            "gamma_initializer": self.gamma_initializer,
            "moving_mean_initializer": self.moving_mean_initializer,
            "moving_variance_initializer": self.moving_variance_initializer,
        }
