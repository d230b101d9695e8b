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

import hashlib
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnlab._atomic import atomic_path
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

Opener = Callable[[str], bytes]


def cache_dir() -> Path:
    """Where downloads are kept: ``$XDG_CACHE_HOME/cnnlab/fashion-mnist`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "cnnlab" / "fashion-mnist"


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_verified(file: Path, stem: str) -> np.ndarray:
    ndim, sha = FILES[stem]
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{file}: cannot be read ({exc}).") from exc
    data = decompress(raw, str(file))
    array = parse_idx(data, str(file), ndim)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        raise DataFileError(
            f"{file}: SHA-256 of the decompressed data is {digest}, expected {sha}. "
            "The file is corrupt or not the Fashion-MNIST original; delete it and load again."
        )
    return array


def _load_folder(folder: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    arrays = {stem: _read_verified(_find(folder, stem), stem) for stem in FILES}  # type: ignore[arg-type]
    x_train, y_train = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    x_test, y_test = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    for images, labels, label in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(images) != len(labels):
            raise DataFileError(f"{folder}: {len(images)} {label} images but {len(labels)} {label} labels.")
    return (x_train, y_train), (x_test, y_test)


def _missing(folder: Path) -> list[str]:
    return [stem for stem in FILES if _find(folder, stem) is None]


def _urlopen(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed mirror list)
        return response.read()


def _download(folder: Path, opener: Opener) -> list[str]:
    """Fetch every missing file into ``folder``; return the failures (empty on success)."""
    failures: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    for stem in _missing(folder):
        for mirror in MIRRORS:
            url = mirror + stem + ".gz"
            try:
                raw = opener(url)
                data = decompress(raw, url)
                parse_idx(data, url, FILES[stem][0])
                if hashlib.sha256(data).hexdigest() != FILES[stem][1]:
                    raise DataFileError(f"{url}: SHA-256 mismatch")
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                failures.append(f"{url}: {exc}")
                continue
            with atomic_path(folder / (stem + ".gz"), suffix=".part") as tmp:
                tmp.write_bytes(raw)
            break
        else:
            return failures
    return []


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
    explicit = [("path= argument", path), ("CNNLAB_DATA", os.environ.get("CNNLAB_DATA"))]
    for source, value in explicit:
        if value:
            folder = Path(value).expanduser()
            missing = _missing(folder) if folder.is_dir() else list(FILES)
            if missing:
                raise DataNotFoundError(
                    f"Fashion-MNIST: the folder given by {source} ({folder}) "
                    f"{'does not exist' if not folder.is_dir() else 'lacks ' + ', '.join(missing)}. "
                    "Point it at a folder holding train-images-idx3-ubyte(.gz), "
                    "train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and "
                    "t10k-labels-idx1-ubyte(.gz), or unset it to use the other places."
                )
            return _load_folder(folder)

    tried: list[str] = []
    for folder in (cache_dir(), DEBIAN_DIR):
        if not _missing(folder):
            return _load_folder(folder)
        tried.append(f"{folder} (missing)")

    if download:
        failures = _download(cache_dir(), opener or _urlopen)
        if not failures:
            return _load_folder(cache_dir())
        tried.extend(f"download {line}" for line in failures)
    else:
        tried.append("download (not tried: download=False)")
    raise DataNotFoundError(
        "Fashion-MNIST was not found. Places tried:\n  - "
        + "\n  - ".join(tried)
        + "\nFix: install the Debian package (apt-get install dataset-fashion-mnist), "
        "or pass load_data(path=FOLDER) / set CNNLAB_DATA=FOLDER to a folder with the four IDX files."
    )
