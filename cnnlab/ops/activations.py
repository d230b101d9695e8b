"""Elementwise activations and their gradients, by Keras name.

Each backward takes the forward *output* ``y`` (what the layer keeps) and the
upstream gradient ``dy``, and returns the gradient with respect to the input.
"""

from __future__ import annotations

import math
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


# ---------------------------------------------------------------- Keras 3's other activations
# Forward formulas follow Keras 3's torch backend (torch.nn.functional); backward functions take
# the input ``x``, the output ``y`` and ``dy`` and return the gradient with respect to ``x``.

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise (``expm1`` keeps small ``x`` exact).

    >>> elu(np.array([-1.0, 2.0])).round(4)
    array([-0.6321,  2.    ])
    """
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return dy * np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))).astype(dy.dtype, copy=False)


def selu(x: np.ndarray) -> np.ndarray:
    """``scale * elu(x, alpha)`` with Klambauer et al.'s constants (Keras ``selu``)."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def selu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return SELU_SCALE * elu_backward(x, y, dy, SELU_ALPHA)


_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function elementwise (``math.erf`` in float64; NumPy has none)."""
    return _ERF(np.asarray(x, np.float64)).astype(np.float64).astype(np.result_type(x, np.float32))


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``0.5 * x * (1 + erf(x / sqrt(2)))``: the activation named ``"gelu"`` in Keras 3
    (``keras.activations.gelu(x, approximate=False)``).

    >>> gelu(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.1587,  0.    ,  0.8413])
    """
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def gelu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return dy * (cdf + x * pdf)


def silu(x: np.ndarray) -> np.ndarray:
    """``x * sigmoid(x)`` (Keras ``silu``, also named ``swish``).

    >>> silu(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.7311])
    """
    return x * sigmoid(x)


def silu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    s = sigmoid(x)
    return dy * s * (1 + x * (1 - s))


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))``, and ``x`` itself above 20 (torch's threshold; the difference is below
    float32 rounding there).

    >>> softplus(np.array([0.0, 30.0])).round(4)
    array([ 0.6931, 30.    ])
    """
    return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


def softplus_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * np.where(x > 20, 1, sigmoid(x)).astype(dy.dtype, copy=False)


def softsign(x: np.ndarray) -> np.ndarray:
    """``x / (1 + |x|)``.

    >>> softsign(np.array([-3.0, 1.0]))
    array([-0.75,  0.5 ])
    """
    return x / (1 + np.abs(x))


def softsign_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy / np.square(1 + np.abs(x))


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """Keras 3's ``relu6(x + 3) / 6``: 0 below -3, 1 above 3, ``x / 6 + 0.5`` between (Keras 2 used
    ``0.2 * x + 0.5``).

    >>> hard_sigmoid(np.array([-4.0, 0.0, 1.5, 4.0]))
    array([0.  , 0.5 , 0.75, 1.  ])
    """
    return np.clip(x / 6 + 0.5, 0, 1)


def hard_sigmoid_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * ((x > -3) & (x < 3)) / 6


def relu6(x: np.ndarray) -> np.ndarray:
    """``min(max(x, 0), 6)``.

    >>> relu6(np.array([-1.0, 3.0, 7.0]))
    array([0., 3., 6.])
    """
    return np.clip(x, 0, 6)


def relu6_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * ((x > 0) & (x < 6))


def leaky_relu(x: np.ndarray, negative_slope: float = 0.2) -> np.ndarray:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise. The activation named ``"leaky_relu"``
    uses Keras's function default 0.2; the ``LeakyReLU`` layer defaults to 0.3.

    >>> leaky_relu(np.array([-1.0, 2.0]))
    array([-0.2,  2. ])
    """
    return np.where(x > 0, x, x * np.asarray(negative_slope, x.dtype))


def leaky_relu_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray, negative_slope: float = 0.2) -> np.ndarray:
    return dy * np.where(x > 0, 1, negative_slope).astype(dy.dtype, copy=False)


def exponential(x: np.ndarray) -> np.ndarray:
    return np.exp(x)


def exponential_backward(x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * y


def relu_general(
    x: np.ndarray, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> np.ndarray:
    """Keras's ``relu(x, negative_slope, max_value, threshold)`` (the ``ReLU`` layer):
    ``min(x, max_value)`` for ``x > threshold``, ``negative_slope * (x - threshold)`` otherwise.

    >>> relu_general(np.array([-2.0, 0.5, 2.0, 9.0]), negative_slope=0.5, max_value=6.0, threshold=1.0)
    array([-1.5 , -0.25,  2.  ,  6.  ])
    """
    dtype = x.dtype.type
    y = np.where(x > threshold, x, 0).astype(x.dtype, copy=False)
    if max_value is not None:
        y = np.minimum(y, dtype(max_value))
    if negative_slope:
        y = y - dtype(negative_slope) * np.maximum(dtype(threshold) - x, 0)
    return y


def relu_general_backward(
    x: np.ndarray, dy: np.ndarray, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> np.ndarray:
    slope = (x > threshold).astype(dy.dtype)
    if max_value is not None:
        slope[x >= max_value] = 0
    if negative_slope:
        slope[x < threshold] = negative_slope
    return dy * slope


def _output_based(backward: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Backward:
    """Adapt a ``backward(y, dy)`` to the common ``backward(x, y, dy)`` signature."""

    def adapted(x: np.ndarray | None, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return backward(y, dy)

    return adapted


Backward = Callable[[np.ndarray | None, np.ndarray, np.ndarray], np.ndarray]
Activation = tuple[Callable[[np.ndarray], np.ndarray], Backward]

#: name -> (forward(x), backward(x, y, dy)); ``x`` is only kept for the names in NEEDS_INPUT
ACTIVATIONS: dict[str, Activation] = {
    "linear": (linear, _output_based(linear_backward)),
    "relu": (relu, _output_based(relu_backward)),
    "softmax": (softmax, _output_based(softmax_backward)),
    "sigmoid": (sigmoid, _output_based(sigmoid_backward)),
    "tanh": (tanh, _output_based(tanh_backward)),
    "exponential": (exponential, exponential_backward),
    "elu": (elu, elu_backward),
    "selu": (selu, selu_backward),
    "gelu": (gelu, gelu_backward),
    "silu": (silu, silu_backward),
    "softplus": (softplus, softplus_backward),
    "softsign": (softsign, softsign_backward),
    "hard_sigmoid": (hard_sigmoid, hard_sigmoid_backward),
    "relu6": (relu6, relu6_backward),
    "leaky_relu": (leaky_relu, leaky_relu_backward),
}

#: activations whose gradient needs the input, not only the output
NEEDS_INPUT = frozenset(ACTIVATIONS) - {"linear", "relu", "softmax", "sigmoid", "tanh", "exponential"}

#: other Keras names for the same function
ALIASES = {"swish": "silu"}


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
    if callable(name):
        fname = getattr(name, "__name__", None)
        canonical = ALIASES.get(fname, fname) if isinstance(fname, str) else None
        if canonical in ACTIVATIONS:
            if from_known_library(name):
                return canonical  # e.g. cl.ops.activations.relu, tf.nn.relu, keras.activations.relu
            raise InvalidArgumentError(
                f"{owner}: activation={name!r} is your own function named like the built-in {fname!r}; "
                "cnnlab computes activations and their gradients itself and cannot run other functions. "
                f"Pass activation={fname!r} if the built-in is what you mean, or rename your function."
            )
    if isinstance(name, str) and ALIASES.get(name.lower(), name.lower()) in ACTIVATIONS:
        return ALIASES.get(name.lower(), name.lower())
    raise InvalidArgumentError(
        f"{owner}: unknown activation {name!r}. Expected one of "
        f"{', '.join(repr(k) for k in ACTIVATIONS)} (or None for linear)."
    )
