"""OpenBLAS's float32 matmul (``sgemm``), callable from compiled kernels.

NumPy's wheels ship OpenBLAS and export its CBLAS interface with 64-bit integers under the name
``scipy_cblas_sgemm64_``. Called from numba, one parallel region can split a matmul between the
cores *and* go on with the elementwise work on each part (bias, ReLU, the optimizer update)
while that part is still in cache, with no trip back to Python and no second thread pool
spinning against numba's. The library is the one NumPy actually loaded (found through
threadpoolctl), so results are those of NumPy's own matmul on the same blocks.

:func:`sgemm` returns ``None`` when this is not possible (no numba, NumPy built against another
BLAS, an older NumPy): callers then use NumPy's ``matmul``.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from cnnlab._accel import AVAILABLE

#: CBLAS constants (cblas.h)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

_NAMES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")


@functools.cache
def sgemm() -> Any:
    """``cblas_sgemm`` with int64 sizes as a ctypes function numba can call, or ``None``."""
    if not AVAILABLE:
        return None
    try:
        from threadpoolctl import threadpool_info

        paths = [info["filepath"] for info in threadpool_info() if info.get("internal_api") == "openblas"]
    except Exception:  # pragma: no cover - threadpoolctl is a dependency; be safe anyway
        return None
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:  # pragma: no cover
            continue
        for name in _NAMES:
            function = getattr(lib, name, None)
            if function is not None:
                function.restype = None
                c_int = ctypes.c_int
                function.argtypes = [c_int, c_int, c_int, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
                return function
    return None
