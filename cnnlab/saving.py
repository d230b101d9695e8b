"""Saving and loading whole models in one ``.cnnlab`` file.

The file is a zip archive (readable with any zip tool) holding:

* ``cnnlab.json`` — format name and version, the model's ``get_config()``, the compile
  settings, the names and shapes of every weight, and free-form ``metadata``
  (e.g. how the inputs were preprocessed);
* ``weights/NNNN.npy`` — every weight array, in ``get_weights()`` order;
* ``optimizer/<slot>.npy`` — the optimizer's state (step counter and moments), so
  ``fit`` resumes exactly where it stopped.

It is written to a temporary file beside the target and renamed into place, so a crash
never leaves a half-written model; saving never replaces anything but a regular file,
writes through symlinks, and keeps the mode and owner of a file it replaces (see
:mod:`cnnlab._atomic`). Loading checks everything and names the file and the
problem: not a zip, not a cnnlab model, a newer format version, missing or mis-shaped arrays.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import keras_io, models, optimizers

# NotRegularFileError is re-exported: what save_model raises for a directory, FIFO, device or socket
from cnnlab._atomic import NotRegularFileError as NotRegularFileError
from cnnlab._atomic import atomic_path
from cnnlab.errors import ArgumentTypeError, InvalidArgumentError
from cnnlab.errors import ModelFileError as ModelFileError  # re-exported: its home before cnnlab.errors
from cnnlab.models import Model, Sequential

FORMAT = "cnnlab-model"
VERSION = 1
MANIFEST = "cnnlab.json"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _json_value(value: Any) -> Any:
    """``json.dumps``'s ``default``: NumPy scalars and arrays become numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise InvalidArgumentError(
        f"save_model: metadata holds a {type(value).__name__} ({value!r:.60}), which a model file cannot store; "
        "expected JSON values (str, int, float, bool, None, lists and dicts of them, or NumPy numbers/arrays)."
    )


def _path_argument(path: Any, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"{what}: expected path to be a str or os.PathLike, received {type(path).__name__}.")
    if os.fspath(path) in ("", b""):
        raise InvalidArgumentError(f"{what}: expected path to name a file, received an empty string.")
    return Path(os.fsdecode(path))


def save_model(model: Any, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a built ``Sequential`` or functional ``Model``) to ``path``; returns ``path``.

    The suffix chooses the format: ``.keras`` writes a Keras 3 file and ``.h5`` / ``.hdf5`` a legacy
    Keras HDF5 file (:mod:`cnnlab.keras_io`); every other suffix writes cnnlab's own format.

    Atomic: the old file at ``path`` is replaced only by a complete new one, keeping its mode
    and owner; a symlink is written through. Raises ``OSError`` naming ``path`` when it cannot
    be written (``NotRegularFileError``, also a ``ValueError``, when it is a directory, FIFO,
    device or socket), before any weights are serialised.
    """
    target = _path_argument(path, "save_model")
    if metadata is not None and not isinstance(metadata, dict):
        raise ArgumentTypeError(f"save_model: expected metadata to be a dict, received {type(metadata).__name__}.")
    writer = keras_io.writer_for(target)
    if writer is not None:
        return writer(model, target, metadata)
    if not model.built:
        raise InvalidArgumentError(
            f'save_model: model "{model.name}" is not built yet, so it has no weights to save. '
            "Call it on data or fit it first."
        )
    weights = model.get_weights()
    compile_cfg = None
    if model.compiled:
        compile_cfg = {
            "optimizer": model.optimizer.get_config(),
            "loss": model.loss.serialize(),
            "metrics": [name for name, _ in model._metrics],
        }
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.get_config(),
        "compile": compile_cfg,
        "weights": [list(w.shape) for w in weights],
        "optimizer_slots": sorted(model.optimizer.get_state()) if model.compiled else [],
        "metadata": metadata or {},
    }
    try:
        text = json.dumps(manifest, indent=2, default=_json_value, allow_nan=False)
    except ValueError as exc:
        if isinstance(exc, InvalidArgumentError):
            raise
        raise InvalidArgumentError(
            f"save_model: metadata holds NaN or an infinity ({exc}); a model file stores JSON, which has neither. "
            "Replace them (e.g. by None) before saving."
        ) from exc
    with (
        atomic_path(target, action="cannot save the model to") as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        archive.writestr(MANIFEST, text)
        for i, w in enumerate(weights):
            archive.writestr(f"weights/{i:04d}.npy", _npy_bytes(w))
        if model.compiled:
            for key, value in model.optimizer.get_state().items():
                archive.writestr(f"optimizer/{key}.npy", _npy_bytes(value))
    return target


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``cnnlab.json`` of a model file, checked for format and version."""
    path = _path_argument(path, "read_manifest")
    with _open(path) as archive:
        return _manifest(archive, path)


def _open(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file.")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(
            f"{path}: not a cnnlab model file (it is not a zip archive: {exc}). "
            "The file may be truncated or of another kind; save the model again with model.save()."
        ) from exc


def _manifest(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        raise ModelFileError(f"{path}: a zip archive, but not a cnnlab model (no {MANIFEST} inside).") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: the model description is corrupt ({exc}).") from exc
    if not isinstance(manifest, dict):
        raise ModelFileError(
            f"{path}: not a cnnlab model ({MANIFEST} holds a {type(manifest).__name__}, not an object)."
        )
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a cnnlab model (format {manifest.get('format')!r}).")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: the model format version is {version!r}; expected a whole number >= 1.")
    if version > VERSION:
        raise ModelFileError(
            f"{path}: written in model format version {version}, but this cnnlab reads versions up to "
            f"{VERSION}. Upgrade cnnlab to load it."
        )
    return manifest


def _array(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    try:
        with archive.open(name) as handle:
            return np.load(io.BytesIO(handle.read()), allow_pickle=False)
    except KeyError:
        raise ModelFileError(f"{path}: {name} is missing; the file is incomplete.") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(f"{path}: {name} is corrupt ({exc}).") from exc


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Load a model written by :func:`save_model` (architecture, weights, optimizer state).

    The result predicts bit-identically to the saved model; with ``compile=True`` (the
    default) it is compiled again and ``fit`` continues from the saved optimizer state.
    Files written by Keras (``.keras``, legacy ``.h5`` / ``.hdf5``) are recognised by their
    content and read by :mod:`cnnlab.keras_io`.
    """
    path = _path_argument(path, "load_model")
    kind = keras_io.keras_kind(path) if path.is_file() else None
    if kind == "keras":
        return keras_io.load_keras(path, compile=compile)
    if kind == "h5":
        return keras_io.load_h5(path, compile=compile)
    if path.suffix.lower() in keras_io.H5_SUFFIXES and path.is_file():
        raise ModelFileError(
            f"{path}: not an HDF5 file (its signature is missing); it may be truncated or of another kind."
        )
    with _open(path) as archive:
        manifest = _manifest(archive, path)
        try:
            return _rebuild(archive, manifest, path, compile)
        except ModelFileError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # a manifest edited by hand or damaged: whatever part of it does not make sense
            raise ModelFileError(
                f"{path}: the model description is damaged ({type(exc).__name__}: {exc}). "
                "Save the model again with model.save()."
            ) from exc


def _check_list(value: Any, what: str, path: Path) -> list:
    if not isinstance(value, list):
        raise ModelFileError(f"{path}: {what} in the model description is {value!r:.60}; expected a list.")
    return value


def _rebuild(archive: zipfile.ZipFile, manifest: dict[str, Any], path: Path, compile: bool) -> Any:
    if not isinstance(manifest.get("model"), dict):
        raise ModelFileError(f'{path}: the model description has no architecture ("model" is missing).')
    try:
        spec = manifest["model"]
        # a functional model's config names its input and output layers (Keras's functional format)
        model = Model.from_config(spec) if "input_layers" in spec else Sequential.from_config(spec)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(f"{path}: the architecture cannot be rebuilt ({exc}).") from exc
    shapes = []
    for s in _check_list(manifest.get("weights", []), '"weights"', path):
        if not isinstance(s, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s):
            raise ModelFileError(f"{path}: a weight shape in the model description is {s!r}; expected a list of sizes.")
        shapes.append(tuple(s))
    weights = [_array(archive, f"weights/{i:04d}.npy", path) for i in range(len(shapes))]
    for i, (w, shape) in enumerate(zip(weights, shapes, strict=True)):
        if w.shape != shape:
            raise ModelFileError(f"{path}: weight {i} has shape {w.shape}, the description says {shape}.")
    if not model.built:
        raise ModelFileError(f"{path}: the architecture has no input shape, so weights cannot be placed.")
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the weights do not fit the architecture ({exc}).") from exc
    cfg = manifest.get("compile")
    if compile and cfg:
        if not isinstance(cfg, dict) or not isinstance(cfg.get("optimizer"), dict):
            raise ModelFileError(f"{path}: the compile settings in the model description are damaged: {cfg!r:.80}.")
        try:
            optimizer = optimizers.from_config(cfg["optimizer"])
            model.compile(optimizer, cfg["loss"], cfg.get("metrics"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{path}: the compile settings cannot be restored ({type(exc).__name__}: {exc}). "
                "Load with compile=False and compile the model yourself."
            ) from exc
        slots = _check_list(manifest.get("optimizer_slots", []), '"optimizer_slots"', path)
        state = {str(key): _array(archive, f"optimizer/{key}.npy", path) for key in slots}
        if state:
            _check_state(state, model, path)
            model.optimizer.set_state(state)
    metadata = manifest.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: the metadata in the model description is {metadata!r:.60}; expected an object.")
    model.metadata = metadata
    return model


def _check_state(state: dict[str, np.ndarray], model: Any, path: Path) -> None:
    """The saved optimizer state must fit the model: a moment of another size would otherwise be
    silently reset to zeros by the optimizer."""
    iterations = state.get("iterations")
    if iterations is None or iterations.shape != () or iterations.dtype.kind not in "iu" or iterations < 0:
        raise ModelFileError(
            f"{path}: optimizer/iterations.npy is {iterations!r:.60}; expected a non-negative whole number."
        )
    size = sum(int(w.size) for w in model.trainable_weights)
    scalars = getattr(model.optimizer, "scalar_slots", ())
    for key, value in state.items():
        if key == "iterations":
            continue
        want = () if key in scalars else (size,)
        if value.shape != want or value.dtype.kind != "f":
            need = "one float number" if key in scalars else f"a float array of shape ({size},)"
            raise ModelFileError(
                f"{path}: optimizer/{key}.npy has shape {value.shape} and dtype {value.dtype}; the model's "
                f"{size} trainable weights need {need} there. Load with compile=False "
                "to use the weights without the optimizer state."
            )


# model.save and cl.models.load_model reach this module through these hooks, so that saving
# imports models and never the reverse
Sequential._file_writer = staticmethod(save_model)
Sequential._file_reader = staticmethod(load_model)
models._file_reader = load_model
