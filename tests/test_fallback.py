"""The plain-NumPy code (no numba) trains to the same numbers as the compiled kernels,
up to float32 rounding: the lecture's CNN, three steps, in a subprocess with numba disabled."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cnnlab import _fused

SCRIPT = """
import sys, numpy as np, cnnlab as cl
from cnnlab import _fused, lecture
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(96, 28, 28, 1)).astype(np.float64)
y = cl.utils.to_categorical(rng.integers(0, 10, 96), 10)
cl.set_seed(1)
model = lecture.build_net2()
model.compile("adam", "categorical_crossentropy", ["accuracy"])
history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
np.savez(sys.argv[1], *model.get_weights(), loss=history.history["loss"], numba=_fused.AVAILABLE)
"""


@pytest.mark.skipif(not _fused.AVAILABLE, reason="numba is not installed: only one implementation to compare")
def test_numpy_fallback_trains_to_the_same_numbers(tmp_path):
    results = []
    for disabled in ("", "1"):
        out = tmp_path / f"w{disabled or 0}.npz"
        env = {**os.environ, "CNNLAB_NO_NUMBA": disabled}
        subprocess.run([sys.executable, "-c", SCRIPT, str(out)], check=True, env=env, timeout=300)
        results.append(np.load(out))
    fast, plain = results
    assert bool(fast["numba"]) and not bool(plain["numba"])
    np.testing.assert_allclose(fast["loss"], plain["loss"], rtol=1e-5)
    for key in (k for k in fast.files if k.startswith("arr_")):
        change = np.abs(plain[key]).max() + 1e-12
        np.testing.assert_allclose(fast[key] / change, plain[key] / change, atol=1e-4, err_msg=key)
