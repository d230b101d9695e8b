"""Elementwise activations and their gradients, by Keras name.

Each backward takes the forward *output* ``y`` (what the layer keeps) and the
upstream gradient ``dy``, and returns the gradient with respect to the input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab.errors import InvalidArgumentError


def relu(x: np.ndarray) -> np.ndarray:
    """Example:

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    return np.maximum(x, 0, out=np.empty_like(x))


def relu_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    # y > 0 exactly where x > 0; Keras/TF also give gradient 0 at x == 0.
    # dy is the caller's temporary, so it is reused instead of allocating.
    np.multiply(dy, y > 0, out=dy)
    return dy


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum so large logits do not overflow.

    >>> softmax(np.array([[1000.0, 1000.0]]))
    array([[0.5, 0.5]])
    """
    z = x - x.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return flush_subnormals(z)


def flush_subnormals(a: np.ndarray) -> np.ndarray:
    """Set subnormal values of ``a`` to zero, in place, and return ``a``.

    Large logits (raw 0..255 pixels) give softmax outputs like exp(-90) ~ 1e-39, which
    are subnormal in float32; every later operation on them is ~100x slower on x86 and a
    training epoch slowed down by half as they spread. TensorFlow's CPU kernels flush such
    values to zero, so doing the same keeps Keras's numbers.

    >>> flush_subnormals(np.array([1e-40, 1e-30, -1e-41], dtype=np.float32))
    array([0.e+00, 1.e-30, 0.e+00], dtype=float32)
    """
    if a.dtype.kind == "f":
        np.copyto(a, 0, where=np.abs(a) < np.finfo(a.dtype).tiny)
    return a


def softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Example:

    >>> sigmoid(np.array([0.0]))
    array([0.5])
    """
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def sigmoid_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * y * (1 - y)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def tanh_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * (1 - y * y)


def linear(x: np.ndarray) -> np.ndarray:
    return x


def linear_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy


Activation = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray, np.ndarray], np.ndarray]]

ACTIVATIONS: dict[str, Activation] = {
    "linear": (linear, linear_backward),
    "relu": (relu, relu_backward),
    "softmax": (softmax, softmax_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
}


#: libraries whose functions of a built-in's name compute that built-in (tf.nn.relu, keras.activations.relu)
KNOWN_LIBRARIES = ("cnnlab", "tensorflow", "keras", "tf_keras", "torch", "jax", "numpy")


def from_known_library(function: object) -> bool:
    """Whether ``function`` comes from a library whose same-named functions are the built-ins.

    A user's own ``def relu(x): ...`` is not: it may compute something else, so it must never be
    silently replaced by the built-in of its name."""
    module = getattr(function, "__module__", None) or ""
    return module.split(".")[0] in KNOWN_LIBRARIES


def get(name: object, owner: str = "layer") -> str:
    """Normalise an activation argument to its name (``None`` means 'linear')."""
    if name is None:
        return "linear"
    if callable(name) and getattr(name, "__name__", None) in ACTIVATIONS:
        if from_known_library(name):
            return name.__name__  # e.g. cl.ops.activations.relu, tf.nn.relu, keras.activations.relu
        raise InvalidArgumentError(
            f"{owner}: activation={name!r} is your own function named like the built-in {name.__name__!r}; "
            "cnnlab computes activations and their gradients itself and cannot run other functions. "
            f"Pass activation={name.__name__!r} if the built-in is what you mean, or rename your function."
        )
    if isinstance(name, str) and name.lower() in ACTIVATIONS:
        return name.lower()
    raise InvalidArgumentError(
        f"{owner}: unknown activation {name!r}. Expected one of "
        f"{', '.join(repr(k) for k in ACTIVATIONS)} (or None for linear)."
    )
