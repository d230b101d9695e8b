"""Data sets with Keras's loading API (``cnnlab.datasets.fashion_mnist.load_data()``)."""

from cnnlab.datasets import fashion_mnist

__all__ = ["fashion_mnist"]
