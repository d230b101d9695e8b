"""Argument normalisation and output-shape arithmetic, shared by layers, ``summary()``
and the explainer (Keras: ``standardize_tuple``, ``compute_conv_output_shape``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError

PADDINGS = ("valid", "same")


def whole_sizes(value: object, name: str, owner: str) -> tuple[int, ...]:
    """A shape argument as a tuple of whole numbers >= 1 (``28.5`` or ``True`` are refused, never rounded).

    >>> whole_sizes((28, 28, 1), "shape", "Input")
    (28, 28, 1)
    """
    from cnnlab.errors import ArgumentTypeError

    if not isinstance(value, (tuple, list)):
        raise ArgumentTypeError(
            f"{owner}: expected {name} to be a tuple of sizes without the batch axis, e.g. (28, 28, 1); "
            f"received {value!r}. For one axis write ({value!r},)."
        )
    sizes = []
    for d in value:
        whole = isinstance(d, (int, np.integer)) or (isinstance(d, (float, np.floating)) and float(d).is_integer())
        if isinstance(d, bool) or not whole or d < 1:
            raise InvalidArgumentError(
                f"{owner}: expected {name} to hold whole numbers >= 1, received {tuple(value)!r}; "
                "sizes are never rounded, so pass e.g. (28, 28, 1)."
            )
        sizes.append(int(d))
    return tuple(sizes)


def normalize_tuple(value: object, name: str, owner: str, allow_zero: bool = False) -> tuple[int, int]:
    """Turn ``3`` or ``(3, 3)`` into ``(3, 3)``; reject anything else with a clear message.

    >>> normalize_tuple(2, "kernel_size", "Conv2D")
    (2, 2)
    >>> normalize_tuple((3, 1), "strides", "Conv2D")
    (3, 1)
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair: Sequence[object] = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = value
    else:
        raise InvalidArgumentError(
            f"{owner}: expected {name} to be an integer or a tuple of 2 integers, "
            f"received {value!r}. Pass e.g. {name}=2 or {name}=(2, 2)."
        )
    low = 0 if allow_zero else 1
    for item in pair:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or item < low:
            raise InvalidArgumentError(f"{owner}: expected {name} to hold integers >= {low}, received {value!r}.")
    return int(pair[0]), int(pair[1])


def normalize_padding(value: object, owner: str) -> str:
    """``'valid'``/``'same'`` in any case; anything else is an error.

    >>> normalize_padding("SAME", "Conv2D")
    'same'
    """
    text = str(value).lower() if isinstance(value, str) else None
    if text not in PADDINGS:
        raise InvalidArgumentError(f"{owner}: expected padding to be 'valid' or 'same', received {value!r}.")
    return text


def conv_output_length(n: int, k: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Output length along one axis, as Keras computes it.

    'valid': ``floor((n - (k-1)*d - 1) / s) + 1``; 'same': ``ceil(n / s)``.

    >>> conv_output_length(28, 2, 1, "valid")
    27
    >>> conv_output_length(27, 2, 2, "valid")
    13
    >>> conv_output_length(5, 2, 2, "same")
    3
    """
    if padding == "same":
        return -(-n // stride)
    return (n - (k - 1) * dilation - 1) // stride + 1


def same_padding(n: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding for 'same': total ``P = max((ceil(n/s)-1)*s + (k-1)*d + 1 - n, 0)``,
    ``P // 2`` before and the rest after, as TensorFlow does.

    >>> same_padding(5, 2, 2)
    (0, 1)
    >>> same_padding(4, 3, 1)
    (1, 1)
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def padding_amounts(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    dilation: tuple[int, int] = (1, 1),
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) padding for a 2-D window op."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return (
        same_padding(hw[0], kernel[0], strides[0], dilation[0]),
        same_padding(hw[1], kernel[1], strides[1], dilation[1]),
    )


def window_output_hw(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    dilation: tuple[int, int] = (1, 1),
    owner: str = "layer",
) -> tuple[int, int]:
    """(H_out, W_out) of a 2-D window op; a size below 1 is an error that shows the formula.

    >>> window_output_hw((28, 28), (2, 2), (1, 1), "valid")
    (27, 27)
    """
    out = tuple(
        conv_output_length(n, k, s, padding, d) for n, k, s, d in zip(hw, kernel, strides, dilation, strict=True)
    )
    if min(out) < 1:
        axis = 0 if out[0] < 1 else 1
        n, k, s, d = hw[axis], kernel[axis], strides[axis], dilation[axis]
        name = "height" if axis == 0 else "width"
        if n == 0 or padding == "same":  # 'same' gives ceil(n / s) >= 1 for every n >= 1
            raise ShapeError(
                f"{owner}: the input ({hw[0]}x{hw[1]}) has size 0 along the {name} axis, so the output would "
                f"have size {out[axis]}: with padding={padding!r} the output size is "
                + (f"ceil(n / s) = ceil({n} / {s})" if padding == "same" else "floor((n - (k-1)*d - 1) / s) + 1")
                + f" = {out[axis]}. Give inputs with at least one row and one column."
            )
        raise ShapeError(
            f"{owner}: the output would have size {out[axis]} along the "
            f"{name} axis: with padding='valid', "
            f"floor((n - (k-1)*d - 1) / s) + 1 = floor(({n} - ({k}-1)*{d} - 1) / {s}) + 1 "
            f"= {out[axis]}. The input ({hw[0]}x{hw[1]}) is smaller than the window "
            f"({(k - 1) * d + 1} wide); use a smaller kernel_size/pool_size, a larger "
            "input, or padding='same'."
        )
    return out  # type: ignore[return-value]
