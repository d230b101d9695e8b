"""Global settings, mirroring ``keras.config``.

Only the float type is configurable: ``float32`` by default, as in Keras;
``float64`` is useful for checking gradients against finite differences.
"""

from __future__ import annotations

import numpy as np

_FLOATX = "float32"
_ALLOWED = ("float16", "float32", "float64")


def floatx() -> str:
    """The float type of weights and layer outputs (``"float32"`` by default)."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the float type used for new weights and outputs, like ``keras.config.set_floatx``.

    >>> set_floatx("float64"); floatx()
    'float64'
    >>> set_floatx("float32")
    """
    global _FLOATX
    name = np.dtype(value).name if isinstance(value, (type, np.dtype)) else str(value)
    if name not in _ALLOWED:
        raise ValueError(
            f"set_floatx: expected one of {', '.join(_ALLOWED)}, received {value!r}. "
            "Pass a float type name such as 'float32'."
        )
    _FLOATX = name


def float_dtype() -> np.dtype:
    """``np.dtype(floatx())``."""
    return np.dtype(_FLOATX)
