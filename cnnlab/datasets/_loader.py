"""The verified loader shared by every data set: places searched in order, atomic download.

A data set is a few files (``Spec.keys``). Each is found in the first of these places
that holds it, and every file is checked by the data set's ``read`` function (SHA-256
and format) before it is used:

1. the ``path=`` argument, then the data set's environment variable: an *explicit* place,
   so files missing there are an error naming it, never a silent fall-through to the others;
2. the user cache, ``$XDG_CACHE_HOME/cnnlab/<name>`` (``~/.cache/cnnlab/<name>``);
3. further folders where the files may already be (Keras's cache ``~/.keras/datasets``, a
   Debian package's folder), in order;
4. a download from the data set's public mirrors into the user cache: the bytes are checked
   by ``read`` before they are written, and written atomically, so the cache never holds a
   half-written or unverified file.

When nothing works the error lists every place tried, with why it failed, and the fixes.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab._atomic import atomic_path
from cnnlab.errors import ArgumentTypeError, DataFileError, DataNotFoundError, InvalidArgumentError

#: fetches a URL's bytes; tests pass their own
Opener = Callable[[str], bytes]
#: ``read(raw, key, where)``: verify the bytes of file ``key`` read from ``where`` (a path or
#: URL) and return what they hold; raises :class:`DataFileError` naming ``where``
Reader = Callable[[bytes, str, str], Any]


@dataclass(frozen=True)
class Spec:
    """How one data set is found, checked and fetched.

    ``names(key)`` lists the file names accepted for ``key`` in a folder; the first is the
    name downloaded from each mirror (``mirror + name``) and kept in the cache.
    ``single_file``: ``path=`` (or the environment variable) may name the file itself,
    not only a folder holding it (data sets of one file, like ``mnist.npz``).
    """

    title: str
    keys: tuple[str, ...]
    read: Reader
    names: Callable[[str], tuple[str, ...]]
    mirrors: tuple[str, ...]
    cache: Path
    env_var: str
    holding: str  # what a folder must hold, for messages: "a folder holding mnist.npz"
    other_places: tuple[Path, ...] = ()
    debian_package: str | None = None
    single_file: bool = False
    extra_fixes: tuple[str, ...] = field(default=())


def user_cache(name: str) -> Path:
    """``$XDG_CACHE_HOME/cnnlab/<name>``, or ``~/.cache/cnnlab/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "cnnlab" / name


def keras_cache() -> Path:
    """Where Keras keeps its downloads: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME") or os.path.join(Path.home(), ".keras")) / "datasets"


def check_sha256(raw: bytes, expected: str, where: str, title: str, what: str = "the file") -> None:
    """Raise :class:`DataFileError` unless ``sha256(raw) == expected`` (FIPS 180-2's "abc" vector):

    >>> check_sha256(b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "f", "T")
    >>> check_sha256(b"abd", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "f", "T")
    Traceback (most recent call last):
    cnnlab.errors.DataFileError: f: SHA-256 of the file is a52d159f..., expected ba7816bf.... The file ...
    """
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DataFileError(
            f"{where}: SHA-256 of {what} is {digest}, expected {expected}. "
            f"The file is corrupt, truncated or not the {title} original; delete it and load again."
        )


def find(folder: Path, spec: Spec, key: str) -> Path | None:
    """The first accepted name for ``key`` that is a file in ``folder``, or None."""
    for name in spec.names(key):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def missing(folder: Path, spec: Spec) -> list[str]:
    """The keys of ``spec`` that ``folder`` lacks (all of them if it is not a folder)."""
    return [key for key in spec.keys if find(folder, spec, key) is None]


def read_file(file: Path, spec: Spec, key: str) -> Any:
    """Read ``file`` and return what ``spec.read`` makes of it (verified)."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{file}: cannot be read ({exc}).") from exc
    return spec.read(raw, key, str(file))


def read_folder(folder: Path, spec: Spec, have: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every key of ``spec`` read from ``folder`` (except those already in ``have``)."""
    values = dict(have or {})
    for key in spec.keys:
        if key not in values:
            values[key] = read_file(find(folder, spec, key), spec, key)  # type: ignore[arg-type]
    return values


def urlopen(url: str) -> bytes:
    """The bytes at ``url`` (http, https or file)."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed mirror lists)
        return response.read()


def download(folder: Path, spec: Spec, opener: Opener) -> tuple[dict[str, Any], list[str]]:
    """Fetch every file ``folder`` lacks from the mirrors, verify it, write it atomically.

    Returns ``(values, failures)``: what each fetched file holds, and one line per failed
    attempt (URL and reason). ``failures`` matter only when a key could not be fetched from
    any mirror; then the download stops there and ``values`` is incomplete.
    """
    failures: list[str] = []
    values: dict[str, Any] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for key in missing(folder, spec):
        name = spec.names(key)[0]
        for mirror in spec.mirrors:
            url = mirror + name
            try:
                raw = opener(url)
                value = spec.read(raw, key, url)  # verified before anything is written
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the user
                failures.append(f"{url}: {exc}")
                continue
            with atomic_path(folder / name, suffix=".part") as tmp:
                tmp.write_bytes(raw)
            values[key] = value
            break
        else:
            return values, failures
    return values, []


def _state(place: Path, lacking: list[str]) -> str:
    if not place.exists():
        return "does not exist"
    return "lacks " + ", ".join(lacking) if place.is_dir() else "is not a folder"


def _explicit(spec: Spec, source: str, value: str | os.PathLike[str]) -> dict[str, Any]:
    """Load from a place the user named; anything missing there is an error naming it."""
    place = Path(value).expanduser()
    if spec.single_file and place.is_file():
        return {spec.keys[0]: read_file(place, spec, spec.keys[0])}
    lacking = missing(place, spec) if place.is_dir() else list(spec.keys)
    if lacking:
        shown = [spec.names(key)[0] for key in lacking]
        kind = "file or folder" if spec.single_file else "folder"
        raise DataNotFoundError(
            f"{spec.title}: the {kind} given by {source} ({place}) "
            f"{_state(place, shown)}. "
            f"Point it at {spec.holding}, or unset it to use the other places."
        )
    return read_folder(place, spec)


def _check_path_argument(spec: Spec, path: Any) -> None:
    """``path=`` is an explicit place: an empty one is a mistake (a variable left unset), never a
    request for the default places (that is ``path=None``)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"{spec.title}: expected path= to be a folder or file name (str or pathlib.Path) or None for the "
            f"default places, received {type(path).__name__} {path!r}."
        )
    if not str(os.fspath(path)).strip():
        raise InvalidArgumentError(
            f"{spec.title}: path= is empty ({path!r}); expected {spec.holding}. "
            "Pass the folder, or path=None (the default) to search the usual places."
        )


def load(
    spec: Spec, path: str | os.PathLike[str] | None, *, download_ok: bool, opener: Opener | None
) -> dict[str, Any]:
    """What each file of ``spec`` holds, from the first place that has it (see the module doc)."""
    if path is not None:
        _check_path_argument(spec, path)
    for source, value in (("path= argument", path), (spec.env_var, os.environ.get(spec.env_var))):
        if value:
            return _explicit(spec, source, value)

    tried: list[str] = []
    for folder in (spec.cache, *spec.other_places):
        if not missing(folder, spec):
            return read_folder(folder, spec)
        tried.append(f"{folder} (missing)")

    if download_ok:
        values, failures = download(spec.cache, spec, opener or urlopen)
        if not failures:
            return read_folder(spec.cache, spec, values)
        tried.extend(f"download {line}" for line in failures)
    else:
        tried.append("download (not tried: download=False)")
    fixes = [*spec.extra_fixes]
    if spec.debian_package:
        fixes.append(f"install the Debian package (apt-get install {spec.debian_package})")
    fixes.append(
        f"pass load_data(path=...) / set {spec.env_var}=... to {spec.holding}"
        + (f" (from {', '.join(spec.mirrors)})" if spec.mirrors else "")
    )
    if download_ok:
        fixes.append(f"connect to the network and load again: the data are downloaded once, into {spec.cache}")
    raise DataNotFoundError(
        f"{spec.title} was not found. Places tried:\n  - "
        + "\n  - ".join(tried)
        + "\nFix: "
        + ", or ".join(fixes)
        + "."
    )
