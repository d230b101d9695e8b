"""Compiled optimizer updates (cnnlab._accel.optim) against the NumPy reference (Optimizer.apply)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import optimizers
from cnnlab._accel import AVAILABLE, optim
from cnnlab._accel.optim_kernels import BLOCK
from cnnlab.optimizers import FLUSH_EVERY

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="numba not available")

CONFIGS: dict[str, Callable[[], optimizers.Optimizer]] = {
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd_momentum": lambda: optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optimizers.RMSprop(0.003, rho=0.87),
    "rmsprop_momentum": lambda: optimizers.RMSprop(0.003, rho=0.87, momentum=0.7),
    "adam": lambda: optimizers.Adam(0.002, beta_1=0.85),
}
DTYPES = [np.float32, np.float64]
# MIN_SIZE itself, a size that is not a multiple of the block size, several blocks
SIZES = [optim.MIN_SIZE, BLOCK + 17, 3 * BLOCK + 5001]
# enough steps to pass two subnormal flushes (end_step every FLUSH_EVERY steps)
STEPS = 2 * FLUSH_EVERY + 3


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def same(name: str, a: np.ndarray, b: np.ndarray) -> None:
    """Bit-identical, signs of zeros included (the same elementwise operations in the same order)."""
    assert a.dtype == b.dtype
    assert np.array_equal(a, b), name
    np.testing.assert_array_equal(bits(a), bits(b))


def gradients(rng: np.random.Generator, size: int, dtype: type, step: int) -> np.ndarray:
    """Normal gradients with runs of zeros, values near and below the smallest normal number,
    and large values (whose squares stay finite)."""
    tiny = np.finfo(dtype).tiny
    big = 1e15 if dtype == np.float32 else 1e150
    g = rng.normal(size=size).astype(dtype)
    g[step % 5 :: 7] = 0
    g[1::11] *= dtype(tiny * 4)  # squares far below tiny: Adam's g floor
    g[2::13] = (rng.normal(size=g[2::13].size) * tiny / 8).astype(dtype)  # subnormal gradients
    g[3::29] *= dtype(big)
    g[: size // 10] = 0  # units without gradient: their state decays to the subnormal range
    return g


def initial_weights(rng: np.random.Generator, size: int, dtype: type) -> np.ndarray:
    w = rng.normal(size=size).astype(dtype)
    w[::17] = 0
    w[1::19] = -0.0
    w[2::23] *= np.finfo(dtype).tiny
    w[3::31] *= dtype(1e20)
    return w


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_compiled_update_matches_reference_bitwise(name, dtype, size):
    rng = np.random.default_rng(size)
    reference, compiled = CONFIGS[name](), CONFIGS[name]()
    update = optim.update_for(compiled, np.dtype(dtype))
    assert update is not None

    def not_called(*args):
        raise AssertionError("the compiled update fell back to the NumPy one")

    compiled.apply = not_called  # the instance attribute shadows the method
    w_ref = initial_weights(rng, size, dtype)
    w = w_ref.copy()
    with np.errstate(over="ignore"):
        for step in range(STEPS):
            g = gradients(rng, size, dtype, step)
            reference.apply(w_ref, g)
            update(w, g)
            same(name, w_ref, w)
    assert compiled.iterations == reference.iterations == STEPS
    assert reference._slots.keys() == compiled._slots.keys()
    for key in reference._slots:
        same(name, reference._slots[key], compiled._slots[key])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_small_arrays_and_state_from_numpy_steps(name, dtype):
    """Below MIN_SIZE the NumPy update runs; above it, the compiled update continues state made
    by NumPy steps exactly."""
    rng = np.random.default_rng(1)
    for size, numpy_steps in ((optim.MIN_SIZE - 1, 0), (2 * optim.MIN_SIZE + 3, 3)):
        reference, compiled = CONFIGS[name](), CONFIGS[name]()
        update = optim.update_for(compiled, np.dtype(dtype))
        w_ref = initial_weights(rng, size, dtype)
        w = w_ref.copy()
        for step in range(6):
            g = gradients(rng, size, dtype, step)
            reference.apply(w_ref, g)
            (compiled.apply if step < numpy_steps else update)(w, g)
        same(name, w_ref, w)
        for key in reference._slots:
            same(name, reference._slots[key], compiled._slots[key])


def test_no_compiled_update_for_other_dtypes_or_subclasses():
    class MyAdam(optimizers.Adam):
        pass

    assert optim.update_for(optimizers.Adam(), np.dtype(np.float16)) is None
    assert optim.update_for(MyAdam(), np.dtype(np.float32)) is None
    assert optim.update_for(optimizers.SGD(), np.dtype(np.float64)) is not None


def dense_model(units: int = 128) -> cl.Sequential:
    # 36*128 + 128 + 129*3 = 5131 weights: above MIN_SIZE, so the compiled update runs
    return cl.Sequential(
        [
            cl.layers.Input((6, 6, 1)),
            cl.layers.Flatten(),
            cl.layers.Dense(units, activation="relu"),
            cl.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fit_fast_matches_reference(name, dtype):
    """One ``fit`` step of a Dense model, fast vs reference kernels. Dense layers have no
    accelerated unit, so outside the compiled whole-model step (Adam in float32, tested in
    test_dense_step) both plans compute the same gradients and differ only in the update:
    the weights must then be identical, not merely close."""
    if name == "adam" and dtype == "float32":
        pytest.skip("the compiled dense step replaces forward, backward and update (test_dense_step)")
    cl.config.set_floatx(dtype)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 6, 6, 1)).astype(dtype)
    y = np.arange(64) % 3
    results = []
    for kernels in ("reference", "fast"):
        cl.set_seed(7)
        model = dense_model()
        model.compile(CONFIGS[name](), "sparse_categorical_crossentropy")
        with cl.config.using_kernels(kernels):
            model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        results.append(model.get_weights())
    for ref, fast in zip(*results, strict=True):
        assert ref.dtype == np.dtype(dtype)
        same(name, ref, fast)
