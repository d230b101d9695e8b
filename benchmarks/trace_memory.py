"""Peak memory of the lecture's shape trace: net2's layers applied one by one to all
60,000 training images (as float64, as the lecture does).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/trace_memory.py

Prints the peak resident set size after each layer and the size of the arrays alive, so
the chunking of big batches (``cnnlab.layers.base.CHUNK_BYTES``) can be checked: without
it, Conv2D's im2col of all images would need several GB on its own.
"""

from __future__ import annotations

import resource
import time

import numpy as np

import cnnlab as cl
from cnnlab import lecture


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    (x, _), _ = cl.datasets.fashion_mnist.load_data()
    X = x.reshape(-1, 28, 28, 1).astype(np.float64)
    print(f"after loading: peak RSS {peak_mb():.0f} MB (X alone {X.nbytes / 2**20:.0f} MB)")
    net2 = lecture.build_net2()
    c1, m1, c2, m2, flttn, dns = net2.layers
    out = X
    for layer in (c1, m1, c2, m2, flttn, dns):
        start = time.perf_counter()
        prev = out
        out = layer(out)
        print(
            f"{layer.name:<16} {str(out.shape):<22} {time.perf_counter() - start:6.2f} s  "
            f"input {prev.nbytes / 2**20:6.0f} MB + output {out.nbytes / 2**20:6.0f} MB  "
            f"peak RSS {peak_mb():6.0f} MB"
        )


if __name__ == "__main__":
    main()
