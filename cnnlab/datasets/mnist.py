"""MNIST handwritten digits, loaded exactly as ``keras.datasets.mnist.load_data()`` returns them.

Keras's file ``mnist.npz`` (four uint8 arrays in a NumPy zip archive) is searched, in order:

1. the ``path=`` argument (the file itself, or a folder holding ``mnist.npz``);
2. the ``CNNLAB_MNIST`` environment variable (the same);
3. the user cache, ``$XDG_CACHE_HOME/cnnlab/mnist`` (``~/.cache/cnnlab/mnist``);
4. Keras's cache, ``$KERAS_HOME/datasets`` (``~/.keras/datasets``), where Keras keeps it;
5. a download from Keras's URL into the user cache.

There is no Debian package of MNIST (``apt-cache search mnist`` finds only
``dataset-fashion-mnist``). The file is checked before use by the SHA-256 that Keras
checks (of the file as downloaded), then read with ``allow_pickle=False``. An explicit
place without the file is an error naming it, never a silent fall-through.

Unlike Keras, ``path`` is not a name inside ``~/.keras/datasets``: it is where the file is.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from cnnlab.datasets import _loader
from cnnlab.datasets._loader import Opener
from cnnlab.errors import DataFileError

__all__ = ["load_data"]

#: file name -> SHA-256 of the file (Keras 3 ``keras/src/datasets/mnist.py``)
FILES: dict[str, str] = {"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"}

#: Keras's download location (``origin_folder`` in ``keras.datasets.mnist``)
MIRRORS = ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"]

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def cache_dir() -> Path:
    """Where the download is kept: ``$XDG_CACHE_HOME/cnnlab/mnist`` or ``~/.cache/cnnlab/mnist``."""
    return _loader.user_cache("mnist")


def _read(raw: bytes, name: str, where: str) -> dict[str, np.ndarray]:
    """The four arrays of ``mnist.npz``, checked: SHA-256 first, then contents."""
    _loader.check_sha256(raw, FILES[name], where, "MNIST")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            lacking = [key for key in ARRAYS if key not in archive.files]
            if lacking:
                raise DataFileError(f"{where}: lacks the array(s) {', '.join(lacking)} (has {archive.files}).")
            arrays = {key: archive[key] for key in ARRAYS}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{where}: not a readable .npz archive ({exc}); delete it and load again.") from exc
    for part in ("train", "test"):
        x, y = arrays["x_" + part], arrays["y_" + part]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataFileError(
                f"{where}: expected x_{part} of shape (N, 28, 28) and y_{part} of shape (N,), "
                f"found {x.shape} and {y.shape}."
            )
    return arrays


def _spec() -> _loader.Spec:
    # built at each call from the module's globals, which tests replace
    return _loader.Spec(
        title="MNIST",
        keys=tuple(FILES),
        read=_read,
        names=lambda name: (name,),
        mirrors=tuple(MIRRORS),
        cache=cache_dir(),
        env_var="CNNLAB_MNIST",
        holding="the file mnist.npz or a folder holding it",
        other_places=(_loader.keras_cache(),),
        single_file=True,
    )


def load_data(
    path: str | os.PathLike[str] | None = None, *, download: bool = True, opener: Opener | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST like ``keras.datasets.mnist.load_data()``.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``; labels 0-9.

    ``path`` is the file ``mnist.npz`` or a folder holding it. With ``download=False`` no
    network access is tried. ``opener`` replaces the function that fetches a URL's bytes
    (used by tests).
    """
    arrays = _loader.load(_spec(), path, download_ok=download, opener=opener)["mnist.npz"]
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
