"""Without numba cnnlab runs the reference kernels, says so once, and computes exactly what
``cl.config.set_kernels("reference")`` computes: the lecture's CNN, one epoch, in a subprocess
with numba disabled, against the reference kernels in this process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import config, lecture

pytestmark = pytest.mark.slow

SCRIPT = """
import sys, warnings, numpy as np, cnnlab as cl
from cnnlab import _accel, lecture
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(96, 28, 28, 1)).astype(np.float64)
y = cl.utils.to_categorical(rng.integers(0, 10, 96), 10)
cl.set_seed(1)
model = lecture.build_net2()
model.compile("adam", "categorical_crossentropy", ["accuracy"])
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
notices = [str(w.message) for w in said if issubclass(w.category, _accel.KernelNotice)]
np.savez(sys.argv[1], *model.get_weights(), loss=history.history["loss"], numba=_accel.AVAILABLE,
         notices=np.array(notices), plan=np.array(model.plan()))
"""


def test_without_numba_the_reference_kernels_run_and_say_so_once(tmp_path):
    out = tmp_path / "w.npz"
    env = {**os.environ, "CNNLAB_NO_NUMBA": "1"}
    subprocess.run([sys.executable, "-c", SCRIPT, str(out)], check=True, env=env, timeout=300)
    got = np.load(out)
    assert not bool(got["numba"])
    assert len(got["notices"]) == 1 and "numba is not available" in got["notices"][0]
    assert got["plan"][0] == "kernels: reference"

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(96, 28, 28, 1)).astype(np.float64)
    y = cl.utils.to_categorical(rng.integers(0, 10, 96), 10)
    cl.set_seed(1)
    model = lecture.build_net2()
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    with config.using_kernels("reference"):
        history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    # the same NumPy code on the same machine: the same numbers, bit for bit
    np.testing.assert_array_equal(got["loss"], history.history["loss"])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(got[f"arr_{i}"], w)
