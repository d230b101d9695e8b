"""Private accelerated kernels (numba, and OpenBLAS called from numba): the "fast" kernels.

Nothing below the execution plan (:mod:`cnnlab.engine.plan`) imports this package: ``ops/``
holds the reference arithmetic in NumPy, ``layers/`` wraps it, and the plan swaps groups of
layers for the accelerated units defined here when ``cl.config.kernels() == "fast"``. Every
unit computes the numbers of the reference layers it replaces (up to float32 rounding where
sums are ordered differently; the tests bound that difference).

numba is a regular dependency. When it cannot be imported (or ``CNNLAB_NO_NUMBA=1``), or its
compiled code cannot be cached because no writable place exists, cnnlab says so once and
carries on: without numba with the reference kernels, without a cache by compiling in memory.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

try:
    if os.environ.get("CNNLAB_NO_NUMBA"):
        raise ImportError("disabled by CNNLAB_NO_NUMBA=1")
    import numba
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    numba = None
    UNAVAILABLE_REASON = str(exc)
else:
    UNAVAILABLE_REASON = ""

AVAILABLE = numba is not None


class KernelNotice(UserWarning):
    """Said once when cnnlab falls back to slower kernels or cannot cache compiled code."""


def _cache_works() -> bool:
    """Whether numba can cache functions compiled from this package's files (it needs a writable
    ``__pycache__`` beside them or a writable user cache directory; ``NUMBA_CACHE_DIR`` helps)."""

    def probe() -> int:  # pragma: no cover - never called, only decorated
        return 0

    try:
        numba.njit(cache=True)(probe)
    except Exception:  # noqa: BLE001 - numba raises RuntimeError ("no locator available") here
        return False
    return True


CACHE = AVAILABLE and _cache_works()
if AVAILABLE and not CACHE:
    warnings.warn(
        "cnnlab: no writable place to cache compiled kernels (neither the package directory nor a "
        "user cache directory); they are compiled in memory at each start. Set NUMBA_CACHE_DIR to "
        "a writable directory to keep them.",
        KernelNotice,
        stacklevel=2,
    )


def njit(function: Callable | None = None, **options: Any) -> Any:
    """``numba.njit`` with caching when possible (``@njit`` or ``@njit(parallel=True)``)."""
    options.setdefault("cache", CACHE)
    if function is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(function)


def threads() -> int:
    """numba's current thread count (1 without numba)."""
    return numba.get_num_threads() if AVAILABLE else 1


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` numba threads (capped at what numba started with)."""
    if not AVAILABLE:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class CompileWatch:
    """Counts the seconds numba spends compiling (not loading cached code) while active, and calls
    ``on_first()`` when the first compilation starts (to announce it before the wait)."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.seconds = 0.0
        self.compiled = False
        self._on_first = on_first
        self._depth = 0
        self._started = 0.0
        self._listener: Any = None

    def __enter__(self) -> CompileWatch:
        if AVAILABLE:
            import time

            from numba.core import event

            watch = self

            class _Listener(event.Listener):
                def on_start(self, ev: Any) -> None:
                    if watch._depth == 0:
                        watch._started = time.perf_counter()
                        if not watch.compiled and watch._on_first is not None:
                            watch._on_first()
                        watch.compiled = True
                    watch._depth += 1

                def on_end(self, ev: Any) -> None:
                    watch._depth = max(0, watch._depth - 1)
                    if watch._depth == 0:
                        watch.seconds += time.perf_counter() - watch._started

            self._listener = _Listener()
            event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._listener is not None:
            from numba.core import event

            event.unregister("numba:compile", self._listener)
            self._listener = None
