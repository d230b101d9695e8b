"""Fashion-MNIST, loaded exactly as ``keras.datasets.fashion_mnist.load_data()`` returns it.

Places searched, in order (the first that holds all four files is used):

1. the ``path=`` argument;
2. the ``CNNLAB_DATA`` environment variable;
3. the user cache, ``$XDG_CACHE_HOME/cnnlab/fashion-mnist`` (``~/.cache/...``);
4. the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
5. a download from the public mirrors into the user cache.

Every file is checked before use: IDX header, dimensions, and the SHA-256 of its
*decompressed* bytes (Debian recompressed the ``.gz`` files, so only the
decompressed hashes are stable). An explicit ``path=`` or ``CNNLAB_DATA`` that
lacks valid files is an error naming that place, never a silent fall-through.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnlab.datasets import _loader
from cnnlab.datasets._loader import Opener
from cnnlab.datasets.idx import decompress, parse_idx
from cnnlab.errors import DataFileError as DataFileError
from cnnlab.errors import DataNotFoundError as DataNotFoundError  # re-exported: its home before cnnlab.errors

__all__ = ["load_data", "class_names", "DataNotFoundError", "DataFileError"]

class_names = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

#: file stem -> (IDX ndim, SHA-256 of the decompressed bytes)
FILES: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte": (
        3,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte": (
        1,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte": (
        3,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte": (
        1,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Mirrors holding ``<stem>.gz`` for every stem in :data:`FILES`.
MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]


def cache_dir() -> Path:
    """Where downloads are kept: ``$XDG_CACHE_HOME/cnnlab/fashion-mnist`` or ``~/.cache/...``."""
    return _loader.user_cache("fashion-mnist")


def _names(stem: str) -> tuple[str, ...]:
    # the first name is the one on the mirrors and in the cache
    return (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz")


def _read(raw: bytes, stem: str, where: str) -> np.ndarray:
    """The IDX array in ``raw`` (a file of :data:`FILES`), checked: header, dimensions, and
    the SHA-256 of the decompressed bytes."""
    ndim, sha = FILES[stem]
    data = decompress(raw, where)
    array = parse_idx(data, where, ndim)
    _loader.check_sha256(data, sha, where, "Fashion-MNIST", what="the decompressed data")
    return array


def _spec() -> _loader.Spec:
    # built at each call from the module's globals, which tests replace
    return _loader.Spec(
        title="Fashion-MNIST",
        keys=tuple(FILES),
        read=_read,
        names=_names,
        mirrors=tuple(MIRRORS),
        cache=cache_dir(),
        env_var="CNNLAB_DATA",
        holding="a folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
        "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)",
        other_places=(DEBIAN_DIR,),
        debian_package="dataset-fashion-mnist",
    )


def _missing(folder: Path) -> list[str]:
    """The files of :data:`FILES` that ``folder`` lacks."""
    return _loader.missing(folder, _spec())


def load_data(
    path: str | os.PathLike[str] | None = None, *, download: bool = True, opener: Opener | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST like ``keras.datasets.fashion_mnist.load_data()``.

    Returns ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)``.

    ``path`` is a folder holding the four IDX files (``.gz`` or not). With
    ``download=False`` no network access is tried. ``opener`` replaces the
    function that fetches a URL's bytes (used by tests).
    """
    arrays = _loader.load(_spec(), path, download_ok=download, opener=opener)
    x_train, y_train = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    x_test, y_test = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    for images, labels, label in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(images) != len(labels):
            raise DataFileError(f"Fashion-MNIST: {len(images)} {label} images but {len(labels)} {label} labels.")
    return (x_train, y_train), (x_test, y_test)
