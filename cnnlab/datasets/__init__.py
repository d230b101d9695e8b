"""Data sets with Keras's loading API (``cnnlab.datasets.mnist.load_data()``, ...).

Each is found locally or downloaded once, always checked by SHA-256 (see ``_loader``).
"""

from cnnlab.datasets import cifar10, cifar100, fashion_mnist, mnist

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist"]
