"""Rounding-error bounds for comparing two computations of the same sums.

A sum of ``k`` products (or terms) computed in floating point, in any order and with or without
fused multiply-adds, differs from the exact sum by at most ``gamma_k * sum|terms|`` with
``gamma_k = k*u / (1 - k*u)`` and ``u = eps/2`` the unit roundoff (Higham, *Accuracy and Stability
of Numerical Algorithms*, 2nd ed., section 3.1). Two such computations of the same sum (e.g. a
blocked sgemm and NumPy's matmul) therefore differ by at most ``2 * gamma_k * sum|terms|``.
"""

from __future__ import annotations

import numpy as np


def unit_roundoff(dtype: np.dtype | type) -> float:
    """``u = eps / 2`` of ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def gamma(k: int, dtype: np.dtype | type) -> float:
    """``gamma_k = k*u / (1 - k*u)``: the relative error bound of a ``k``-term sum."""
    ku = k * unit_roundoff(dtype)
    assert ku < 1, f"no bound: {k} terms at u = {unit_roundoff(dtype)}"
    return ku / (1 - ku)


def sum_bound(abs_terms_sum: np.ndarray | float, k: int, dtype: np.dtype | type, c: float = 2) -> np.ndarray:
    """Elementwise bound on ``|a - b|`` for two float computations ``a, b`` of sums of ``k`` terms
    whose absolute values sum to ``abs_terms_sum`` (e.g. ``|X| @ |W| + |b|``, computed in float64):
    ``c * gamma_k * abs_terms_sum``. ``c = 2`` compares two computations, ``c = 1`` one computation
    against the exact value.

    >>> float(sum_bound(1.0, 10, np.float32, c=1)) < 6e-7
    True
    """
    return c * gamma(k, dtype) * np.asarray(abs_terms_sum, dtype=np.float64)
