"""Pure numerical kernels: no state, NumPy arrays in and out.

Each fast kernel has a plain-loop reference beside it (``*_naive``) that the tests
compare against and the explainer reuses.
"""

from cnnlab.ops.conv import conv2d_backward, conv2d_forward, conv2d_naive, im2col
from cnnlab.ops.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pool2d_naive,
)

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_naive",
    "im2col",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "pool2d_naive",
]
