"""CIFAR-100, loaded exactly as ``keras.datasets.cifar100.load_data()`` returns it.

Keras's archive ``cifar-100-python.tar.gz`` is searched in the same places as CIFAR-10's
(:mod:`cnnlab.datasets.cifar10`), with ``CNNLAB_CIFAR100``, ``~/.cache/cnnlab/cifar100``
and Keras's cache name ``cifar-100-python-target_archive``; checked by Keras's SHA-256
before any batch is unpickled, and unpickled by a reader that builds NumPy arrays only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnlab.datasets import _cifar, _loader
from cnnlab.datasets._loader import Opener
from cnnlab.errors import InvalidArgumentError

__all__ = ["load_data"]

#: file name -> SHA-256 of the archive (Keras 3 ``keras/src/datasets/cifar100.py``)
FILES: dict[str, str] = {"cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"}

#: Keras's download location (``origin`` in ``keras.datasets.cifar100``)
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]

#: the name Keras 3's ``get_file`` gives the archive in its cache
KERAS_NAME = "cifar-100-python-target_archive"

BATCHES = {"train": "cifar-100-python/train", "test": "cifar-100-python/test"}
NUM_CLASSES = {"fine": 100, "coarse": 20}


def cache_dir() -> Path:
    """Where the download is kept: ``$XDG_CACHE_HOME/cnnlab/cifar100`` or ``~/.cache/cnnlab/cifar100``."""
    return _loader.user_cache("cifar100")


def _read(raw: bytes, name: str, where: str) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """``{"train"|"test": (images, {"fine_labels": ..., "coarse_labels": ...})}``; both label
    sets are checked now, so a bad archive is refused before it is cached."""
    _loader.check_sha256(raw, FILES[name], where, "CIFAR-100")  # before anything is unpickled
    members = _cifar.read_members(raw, list(BATCHES.values()), where)
    keys = {f"{mode}_labels": count for mode, count in NUM_CLASSES.items()}
    return {part: _cifar.parse_batch(members[member], keys, f"{where}:{member}") for part, member in BATCHES.items()}


def _spec() -> _loader.Spec:
    # built at each call from the module's globals, which tests replace
    return _loader.Spec(
        title="CIFAR-100",
        keys=tuple(FILES),
        read=_read,
        names=lambda name: (name, KERAS_NAME),
        mirrors=tuple(MIRRORS),
        cache=cache_dir(),
        env_var="CNNLAB_CIFAR100",
        holding="the archive cifar-100-python.tar.gz or a folder holding it",
        other_places=(_loader.keras_cache(),),
        single_file=True,
    )


def load_data(
    label_mode: str = "fine",
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    opener: Opener | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-100 like ``keras.datasets.cifar100.load_data(label_mode)`` (channels last).

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 images of shapes
    ``(50000, 32, 32, 3)`` and ``(10000, 32, 32, 3)``, labels of shapes ``(50000, 1)`` and
    ``(10000, 1)``: the 100 fine classes (0-99) or, with ``label_mode="coarse"``, the 20
    superclasses (0-19). The labels are int64, as Keras returns them (Keras's docstring
    says uint8, but its code reshapes the pickled Python list, which NumPy makes int64).

    ``path`` (not in Keras) is the archive ``cifar-100-python.tar.gz`` or a folder holding
    it. With ``download=False`` no network access is tried. ``opener`` replaces the
    function that fetches a URL's bytes (tests).
    """
    if label_mode not in NUM_CLASSES:
        raise InvalidArgumentError(
            f'label_mode must be one of "fine", "coarse"; received label_mode={label_mode!r}. '
            'Use "fine" for the 100 classes or "coarse" for the 20 superclasses.'
        )
    parts = _loader.load(_spec(), path, download_ok=download, opener=opener)["cifar-100-python.tar.gz"]
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    key = f"{label_mode}_labels"
    return (x_train, y_train[key].reshape(-1, 1)), (x_test, y_test[key].reshape(-1, 1))
