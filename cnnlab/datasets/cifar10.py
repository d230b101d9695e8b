"""CIFAR-10, loaded exactly as ``keras.datasets.cifar10.load_data()`` returns it.

Keras's archive ``cifar-10-python.tar.gz`` is searched, in order:

1. the ``path=`` argument (the archive itself, or a folder holding it);
2. the ``CNNLAB_CIFAR10`` environment variable (the same);
3. the user cache, ``$XDG_CACHE_HOME/cnnlab/cifar10`` (``~/.cache/cnnlab/cifar10``);
4. Keras's cache, ``$KERAS_HOME/datasets`` (``~/.keras/datasets``), where Keras keeps the
   archive as ``cifar-10-batches-py-target_archive``;
5. a download from Keras's URL (the CIFAR home page) into the user cache.

There is no Debian package of CIFAR (``apt-cache search cifar`` finds nothing). The
archive is checked by the SHA-256 that Keras checks before any batch in it is unpickled,
and the batches are unpickled by a reader that can build NumPy arrays and nothing else
(see :mod:`cnnlab.datasets._cifar`). An extracted folder ``cifar-10-batches-py`` is not
accepted: its files could not be checked against Keras's hash.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnlab.datasets import _cifar, _loader
from cnnlab.datasets._loader import Opener

__all__ = ["load_data", "class_names"]

class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: file name -> SHA-256 of the archive (Keras 3 ``keras/src/datasets/cifar10.py``)
FILES: dict[str, str] = {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}

#: Keras's download location (``origin`` in ``keras.datasets.cifar10``)
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]

#: the name Keras 3's ``get_file`` gives the archive in its cache
KERAS_NAME = "cifar-10-batches-py-target_archive"

TRAIN_BATCHES = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "cifar-10-batches-py/test_batch"


def cache_dir() -> Path:
    """Where the download is kept: ``$XDG_CACHE_HOME/cnnlab/cifar10`` or ``~/.cache/cnnlab/cifar10``."""
    return _loader.user_cache("cifar10")


def _read(raw: bytes, name: str, where: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    _loader.check_sha256(raw, FILES[name], where, "CIFAR-10")  # before anything is unpickled
    members = _cifar.read_members(raw, [*TRAIN_BATCHES, TEST_BATCH], where)
    train = [_cifar.parse_batch(members[b], {"labels": 10}, f"{where}:{b}") for b in TRAIN_BATCHES]
    x_test, y_test = _cifar.parse_batch(members[TEST_BATCH], {"labels": 10}, f"{where}:{TEST_BATCH}")
    x_train = np.concatenate([x for x, _ in train])
    # Keras fills a uint8 array with the training labels and casts the test labels to it
    y_train = np.concatenate([y["labels"] for _, y in train]).astype(np.uint8).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test["labels"].astype(np.uint8).reshape(-1, 1))


def _spec() -> _loader.Spec:
    # built at each call from the module's globals, which tests replace
    return _loader.Spec(
        title="CIFAR-10",
        keys=tuple(FILES),
        read=_read,
        names=lambda name: (name, KERAS_NAME),
        mirrors=tuple(MIRRORS),
        cache=cache_dir(),
        env_var="CNNLAB_CIFAR10",
        holding="the archive cifar-10-python.tar.gz or a folder holding it",
        other_places=(_loader.keras_cache(),),
        single_file=True,
    )


def load_data(
    path: str | os.PathLike[str] | None = None, *, download: bool = True, opener: Opener | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 like ``keras.datasets.cifar10.load_data()`` (channels last).

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    ``(50000, 32, 32, 3)``, ``(50000, 1)``, ``(10000, 32, 32, 3)``, ``(10000, 1)``;
    labels 0-9 (names in :data:`class_names`).

    ``path`` (not in Keras, which takes no argument) is the archive
    ``cifar-10-python.tar.gz`` or a folder holding it. With ``download=False`` no network
    access is tried. ``opener`` replaces the function that fetches a URL's bytes (tests).
    """
    (x_train, y_train), (x_test, y_test) = _loader.load(_spec(), path, download_ok=download, opener=opener)[
        "cifar-10-python.tar.gz"
    ]
    return (x_train, y_train), (x_test, y_test)
