"""Rounding bounds for comparing two computations of the same sums (fast vs reference kernels).

For a sum of ``n`` products computed in floating point in any order, Higham's bound is
``|computed - exact| <= gamma_n * sum |terms|`` with ``gamma_n = n*u / (1 - n*u)`` and ``u`` the
unit roundoff (2**-24 for float32, 2**-53 for float64). Two computations that may each sum in
their own order therefore differ by at most ``2 * gamma_n * sum |terms|``. ``sum |terms|`` is
computed exactly enough in float64 from the absolute values of the operands (e.g.
``|X| @ |W| + |b|``), so the tolerance follows from the arithmetic, not from one CPU's result.
"""

from __future__ import annotations

import numpy as np


def unit_roundoff(dtype: np.dtype | str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def gamma(n: int | np.ndarray, dtype: np.dtype | str) -> float | np.ndarray:
    """Higham's ``gamma_n = n*u / (1 - n*u)``."""
    nu = np.asarray(n, dtype=np.float64) * unit_roundoff(dtype)
    return nu / (1 - nu)


def sum_bound(
    magnitude: np.ndarray | float, terms: int, dtype: np.dtype | str, c: float = 2, extra_ops: int = 2
) -> np.ndarray:
    """Largest difference between two float computations (``c = 2``; ``c = 1``: one computation and
    the exact value) of sums of ``terms`` products whose absolute values add up to ``magnitude``
    (elementwise); ``extra_ops`` covers a few more roundings (bias, activation, scaling).

    >>> float(sum_bound(1.0, 10, np.float32, c=1, extra_ops=0)) < 6e-7
    True
    """
    assert (terms + extra_ops) * unit_roundoff(dtype) < 1, f"no bound for {terms} terms in {dtype}"
    return c * gamma(terms + extra_ops, dtype) * np.asarray(magnitude, dtype=np.float64)


def assert_within(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray, what: str = "") -> None:
    """``|actual - expected| <= bound`` elementwise, reporting the worst element."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    diff = np.abs(actual - expected)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), diff.shape)
    bad = diff > bound
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, diff - bound, -np.inf))), diff.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {diff.size} values differ by more than the rounding bound; "
            f"worst at {i}: |{actual[i]!r} - {expected[i]!r}| = {diff[i]:.3g} > bound {bound[i]:.3g}"
        )


def a64(x: np.ndarray) -> np.ndarray:
    """``|x|`` in float64."""
    return np.abs(np.asarray(x, dtype=np.float64))
