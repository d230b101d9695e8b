"""Global settings, mirroring ``keras.config``.

The float type (``float32`` by default, as in Keras; ``float64`` is useful for checking
gradients against finite differences) and, cnnlab's own, which kernels run (``set_kernels``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from cnnlab.errors import InvalidArgumentError

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
        raise InvalidArgumentError(
            f"set_floatx: expected one of {', '.join(_ALLOWED)}, received {value!r}. "
            "Pass a float type name such as 'float32'."
        )
    _FLOATX = name


def float_dtype() -> np.dtype:
    """``np.dtype(floatx())``."""
    return np.dtype(_FLOATX)


_KERNEL_CHOICES = ("reference", "fast")
_KERNELS: str | None = None


def _kernels_from_environment() -> str:
    value = os.environ.get("CNNLAB_KERNELS", "fast").strip().lower() or "fast"
    if value not in _KERNEL_CHOICES:
        raise InvalidArgumentError(
            f"CNNLAB_KERNELS: expected 'reference' or 'fast', received {value!r}. Unset it or set it to one of those."
        )
    return value


def kernels() -> str:
    """Which kernels ``fit``, ``evaluate`` and ``predict`` run: ``"fast"`` (the default; numba and
    OpenBLAS, fused groups of layers) or ``"reference"`` (the plain NumPy kernels of ``cnnlab.ops``,
    layer by layer, as a reader follows them). The default comes from the ``CNNLAB_KERNELS``
    environment variable. Without numba, ``"fast"`` runs the reference kernels (said once)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _kernels_from_environment()
    return _KERNELS


def set_kernels(value: str) -> None:
    """Choose the kernels of the execution plan: ``"reference"`` or ``"fast"``.

    Both give the same results up to float32 rounding (sums taken in another order); the
    reference kernels are the arithmetic the explanations show.

    >>> set_kernels("reference"); kernels()
    'reference'
    >>> set_kernels("fast")
    """
    global _KERNELS
    if value not in _KERNEL_CHOICES:
        raise InvalidArgumentError(f"set_kernels: expected 'reference' or 'fast', received {value!r}.")
    _KERNELS = value


@contextmanager
def using_kernels(value: str) -> Iterator[None]:
    """Run a block with the given kernels, then restore the previous choice.

    >>> with using_kernels("reference"):
    ...     kernels()
    'reference'
    """
    previous = kernels()
    set_kernels(value)
    try:
        yield
    finally:
        set_kernels(previous)
