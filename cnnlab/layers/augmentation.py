"""Image augmentation layers with Keras 3's names, arguments and arithmetic: ``RandomFlip``,
``RandomTranslation``, ``RandomRotation``, ``RandomZoom``, ``RandomContrast``.

They change the images only in training (``fit``, or ``layer(x, training=True)``) and are the
identity at inference, as in Keras. Random draws come from cnnlab's generator
(:func:`cnnlab.set_random_seed`), or from the layer's own generator when ``seed=`` is given.
Like Keras they accept integer or float images of any value range and output floats
(``RandomContrast`` at inference returns its input unchanged, dtype included, as Keras does).

``x: (N, H, W, C) -> (N, H, W, C)``, or one image ``(H, W, C) -> (H, W, C)``.

The resampling (translation, rotation, zoom) is :mod:`cnnlab.ops.resample`; backward is its
transpose, so a gradient flows through these layers if anything before them trains.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab import config
from cnnlab.errors import InvalidArgumentError
from cnnlab.layers.base import Layer
from cnnlab.ops import resample as ops
from cnnlab.random import generator


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def factor_range(
    factor: Any, argument: str, owner: str, low: float, high: float, low_open: bool = False
) -> tuple[float, float]:
    """Keras's factor rule: a number ``f`` means ``(-|f|, |f|)``, a pair ``(a, b)`` means
    ``(min, max)``; every number must lie in ``[low, high]`` (``(low, high]`` if ``low_open``)."""
    interval = f"{'(' if low_open else '['}{low}, {high}]"

    def bad(detail: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"{owner}: expected {argument} to be a number or a pair of numbers in the range {interval}, "
            f"received {argument}={factor!r}{detail}. For example {argument}=0.1 or {argument}=(-0.1, 0.2)."
        )

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) for v in factor):
            raise bad("")
        given = [float(v) for v in factor]
    elif _is_number(factor):
        given = [float(factor)]
    else:
        raise bad("")
    for v in given:  # Keras checks the numbers given, then derives the range
        if not np.isfinite(v) or v > high or v < low or (low_open and v == low):
            raise bad(f" ({v} is outside {interval})")
    if len(given) == 1:
        return -abs(given[0]), abs(given[0])
    lower, upper = sorted(given)
    return lower, upper


class _ImageAugmentation(Layer):
    """Shared checks and the training/inference switch; subclasses implement ``augment`` and
    ``augment_backward`` on float batches ``(N, H, W, C)``."""

    def __init__(self, seed: int | None = None, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise InvalidArgumentError(
                f"{type(self).__name__}: cnnlab works channels_last only; received data_format={data_format!r}. "
                'Pass data_format="channels_last" (or leave it out) and give images as (N, H, W, C).'
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise InvalidArgumentError(
                f"{type(self).__name__}: expected seed to be a non-negative integer or None, received {seed!r}."
            )
        self.seed = None if seed is None else int(seed)
        # Keras gives a layer with a seed its own SeedGenerator; without one it follows the global seed
        self._own_rng = None if seed is None else np.random.default_rng(self.seed)

    def rng(self) -> np.random.Generator:
        return self._own_rng if self._own_rng is not None else generator()

    def check_rank(self, x: np.ndarray) -> None:
        if x.ndim not in (3, 4):
            raise self._incompatible(
                f"expected images of rank 3 (one image (H, W, C)) or 4 (a batch (N, H, W, C)), found ndim={x.ndim}.",
                x.shape,
                ". Add the channel axis for grayscale images: x[..., None]." if x.ndim == 2 else "",
            )

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.check_rank(x)
        self._cache = None
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(config.floatx())  # Keras casts images to the compute dtype (floats out)
        if not training:
            return x
        single = x.ndim == 3
        batch = x[None] if single else x
        y = self.augment(batch)
        self._cache = (self._cache, single)
        return y[0] if single else y

    def forward_for_gradients(self, x: np.ndarray) -> np.ndarray:
        """For explanations of a trained model's prediction: the inference identity (no random
        transform, no random numbers drawn)."""
        return self.forward(x, training=False)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        if not need_dx:
            return None
        if self._cache is None:  # inference forward: the identity
            return dy
        state, single = self._cache
        dx = self.augment_backward(dy[None] if single else dy, state)
        return dx[0] if single else dx

    def augment(self, x: np.ndarray) -> np.ndarray:
        """Transform a float batch; set ``self._cache`` to what backward needs."""
        raise NotImplementedError

    def augment_backward(self, dy: np.ndarray, state: Any) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(_ImageAugmentation):
    """Flips each image with probability 1/2, like ``keras.layers.RandomFlip``.

    ``mode``: ``"horizontal"`` (left-right), ``"vertical"`` (top-bottom) or
    ``"horizontal_and_vertical"`` (default). As in Keras 3, the last mode draws ONE decision per
    image and applies both flips together (a half turn) or neither.

    >>> RandomFlip()(np.arange(4.0).reshape(1, 2, 2, 1))[0, :, :, 0]  # inference: unchanged
    array([[0., 1.],
           [2., 3.]], dtype=float32)
    """

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise InvalidArgumentError(
                f"RandomFlip: unknown mode {mode!r}. Expected one of {', '.join(map(repr, self.MODES))}."
            )
        self.mode = mode

    def _flip(self, x: np.ndarray, flips: np.ndarray) -> np.ndarray:
        out = x.copy()
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            out[flips] = out[flips][:, :, ::-1]
        if self.mode in ("vertical", "horizontal_and_vertical"):
            out[flips] = out[flips][:, ::-1]
        return out

    def augment(self, x: np.ndarray) -> np.ndarray:
        flips = self.rng().random(x.shape[0]) <= 0.5  # Keras: uniform(0, 1) <= 0.5
        self._cache = flips
        return self._flip(x, flips)

    def augment_backward(self, dy: np.ndarray, state: Any) -> np.ndarray:
        return self._flip(dy, state)  # a flip is its own transpose

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


class _Resampling(_ImageAugmentation):
    """An augmentation that resamples through an affine transform (Keras's fill modes)."""

    def __init__(
        self, fill_mode: str = "reflect", interpolation: str = "bilinear", fill_value: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.fill_mode = ops.check_fill_mode(fill_mode, owner)
        self.interpolation = ops.check_interpolation(interpolation, owner)
        if not _is_number(fill_value) or not np.isfinite(fill_value):
            raise InvalidArgumentError(f"{owner}: expected fill_value to be a finite number, received {fill_value!r}.")
        self.fill_value = float(fill_value)

    def transforms(self, n: int, height: int, width: int) -> np.ndarray:
        """Draw one Keras transform ``(8,)`` per image -> ``(N, 8)``."""
        raise NotImplementedError

    def augment(self, x: np.ndarray) -> np.ndarray:
        plan = ops.resample_plan(self.transforms(*x.shape[:3]), x.shape, self.interpolation, self.fill_mode)
        self._cache = plan
        return ops.resample_forward(x, plan, self.fill_value)

    def augment_backward(self, dy: np.ndarray, state: Any) -> np.ndarray:
        return ops.resample_backward(dy, state)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


class RandomTranslation(_Resampling):
    """Shifts each image by a random fraction of its size, like ``keras.layers.RandomTranslation``.

    ``height_factor``/``width_factor``: a number ``f`` in ``[-1, 1]`` draws the shift from
    ``[-|f|, |f|]`` of the height/width, a pair ``(a, b)`` from ``[a, b]`` (positive: down/right).
    Pixels shifted in follow ``fill_mode`` (default ``"reflect"``).
    """

    def __init__(self, height_factor: Any, width_factor: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_range = factor_range(height_factor, "height_factor", "RandomTranslation", -1.0, 1.0)
        self.width_range = factor_range(width_factor, "width_factor", "RandomTranslation", -1.0, 1.0)

    def transforms(self, n: int, height: int, width: int) -> np.ndarray:
        rng = self.rng()
        dy = rng.uniform(*self.height_range, size=n) * height  # Keras draws the height shift first
        dx = rng.uniform(*self.width_range, size=n) * width
        return ops.translation_transforms(dx, dy)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomRotation(_Resampling):
    """Rotates each image about its centre by a random angle, like ``keras.layers.RandomRotation``.

    ``factor`` is a fraction of a full turn: ``f`` in ``[-1, 1]`` draws the angle from
    ``[-|f|*360, |f|*360]`` degrees, a pair ``(a, b)`` from ``[a*360, b*360]`` (positive:
    counter-clockwise).
    """

    def __init__(self, factor: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor
        self.factor_range = factor_range(factor, "factor", "RandomRotation", -1.0, 1.0)

    def transforms(self, n: int, height: int, width: int) -> np.ndarray:
        lower, upper = self.factor_range
        angles = self.rng().uniform(lower * 360.0, upper * 360.0, size=n)
        return ops.rotation_transforms(angles, height, width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_Resampling):
    """Zooms each image in or out about its centre, like ``keras.layers.RandomZoom``.

    ``height_factor`` ``f`` in ``(-1, 1]`` draws the zoom from ``[1 - |f|, 1 + |f|]`` (a pair
    ``(a, b)``: ``[1 + a, 1 + b]``); positive values zoom OUT (the image looks smaller), negative
    values zoom in. ``width_factor=None`` (default) zooms both axes by the same draw, keeping the
    aspect ratio.
    """

    def __init__(self, height_factor: Any, width_factor: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_range = factor_range(height_factor, "height_factor", "RandomZoom", -1.0, 1.0, low_open=True)
        self.width_range = (
            None
            if width_factor is None
            else factor_range(width_factor, "width_factor", "RandomZoom", -1.0, 1.0, low_open=True)
        )

    def transforms(self, n: int, height: int, width: int) -> np.ndarray:
        rng = self.rng()
        zoom_y = rng.uniform(1.0 + self.height_range[0], 1.0 + self.height_range[1], size=n)
        zoom_x = zoom_y if self.width_range is None else rng.uniform(*(1.0 + np.array(self.width_range)), size=n)
        return ops.zoom_transforms(zoom_x, zoom_y, height, width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomContrast(_ImageAugmentation):
    """Scales each image's deviations from its per-channel mean by a random factor, like
    ``keras.layers.RandomContrast``: ``y = clip((x - mean) * f + mean, *value_range)``, one ``f``
    per image, ``mean`` over height and width per channel.

    ``factor``: a pair ``(a, b)`` in ``[0, 1]`` draws ``f`` from ``[1 - a, 1 + b]``. A single number
    ``c`` becomes the pair ``(0, c)`` -- so ``f`` is drawn from ``[1, 1 + c]`` and contrast only
    rises. That is what Keras 3 computes (its ``_set_factor`` bounds the lower end at 0), though its
    docstring suggests ``[1 - c, 1 + c]``; pass ``(c, c)`` for the symmetric range.
    ``value_range`` (default ``(0, 255)``): the range images are clipped to.
    """

    def __init__(self, factor: Any, value_range: Any = (0, 255), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor
        if isinstance(factor, (tuple, list)):
            lower, upper = factor_range(factor, "factor", "RandomContrast", 0.0, 1.0)
        elif _is_number(factor) and 0 <= float(factor) <= 1:
            lower, upper = 0.0, float(factor)  # Keras: [max(-f, 0), f]
        else:
            factor_range(factor, "factor", "RandomContrast", 0.0, 1.0)  # raises the message
            raise AssertionError("unreachable")
        self.factor_range = (lower, upper)
        if (
            not isinstance(value_range, (tuple, list))
            or len(value_range) != 2
            or not all(_is_number(v) for v in value_range)
            or not value_range[0] < value_range[1]
        ):
            raise InvalidArgumentError(
                f"RandomContrast: expected value_range to be a pair (low, high) with low < high, received "
                f"{value_range!r}. Use (0, 255) for pixels in 0..255 or (0, 1) for pixels scaled to 0..1."
            )
        self.value_range = (float(value_range[0]), float(value_range[1]))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training:  # Keras returns the images untouched (no cast) at inference
            self.check_rank(x)
            self._cache = None
            return x
        return super().forward(x, training=True)

    def augment(self, x: np.ndarray) -> np.ndarray:
        lower, upper = self.factor_range
        factors = self.rng().uniform(1.0 - lower, 1.0 + upper, size=x.shape[0]).astype(x.dtype)
        self._cache = (x, factors)
        return ops.adjust_contrast(x, factors, self.value_range)

    def augment_backward(self, dy: np.ndarray, state: Any) -> np.ndarray:
        x, factors = state
        return ops.adjust_contrast_backward(x, factors, self.value_range, dy)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "value_range": list(self.value_range)}
