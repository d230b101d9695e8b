"""Write tests/fixtures/keras_augment.npz: what real Keras 3 computes for the deterministic core of
the augmentation layers (run once, commit the .npz; Keras is never a dependency of cnnlab).

Run in a separate virtualenv with Keras and the PyTorch backend:

    python3 -m venv ../keras-venv && ../keras-venv/bin/pip install torch keras numpy
    KERAS_BACKEND=torch ../keras-venv/bin/python tools/make_keras_augment_fixtures.py

Random draws cannot match (Keras's generator is not cnnlab's), so each case fixes the random part
and records Keras's arithmetic around it:

* ``affine_{name}_x``, ``_t`` (transforms ``(N, 8)``), ``_kwargs`` (interpolation, fill_mode,
  fill_value as a Python literal), ``_y``: ``keras.ops.image.affine_transform``.
* ``layer_{name}_x``, ``_class``, ``_kwargs``, ``_params`` (the drawn numbers: translations
  ``(N, 2)`` as ``[dx, dy]`` pixels, rotation angles in degrees, zooms ``(N, 2)`` as ``[zx, zy]``),
  ``_t`` (Keras's transform matrices) and ``_y``: the layer's ``transform_images`` with a
  transformation from ``get_random_transformation``.
* ``contrast_{name}_x``, ``_factor`` ``(N,)``, ``_range``, ``_y``: ``RandomContrast.transform_images``
  with a fixed ``contrast_factor``.
* ``flip_{mode}_x``, ``_flips`` ``(N,)``, ``_y``: ``RandomFlip.transform_images`` with fixed flips.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras_augment.npz"
rng = np.random.default_rng(20261124)
out: dict[str, object] = {"keras_version": keras.__version__, "backend": keras.backend.backend()}


def images(n: int = 3, h: int = 5, w: int = 6, c: int = 2, scale: float = 3.0) -> np.ndarray:
    return (rng.normal(size=(n, h, w, c)) * scale).astype("float32")


def np_(t: object) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t))


def affine(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype="float32")


# ------------------------------------------------------------------ keras.ops.image.affine_transform
TRANSFORMS = {
    # sub-pixel shifts, both signs
    "shift": affine([1, 0, -1.3, 0, 1, 0.6, 0, 0], [1, 0, 2.7, 0, 1, -3.2, 0, 0], [1, 0, 0.25, 0, 1, 7.4, 0, 0]),
    # rotations of 30, 135 and -70 degrees about the centre, large enough to fold several times
    "rotate": None,
    # zoom in, zoom out, anisotropic, with a shear
    "zoom_shear": affine(
        [0.7, 0, 0.75, 0, 0.7, 0.6, 0, 0], [1.8, 0, -2.0, 0, 1.6, -1.2, 0, 0], [1.2, 0.35, -0.4, -0.2, 0.9, 0.5, 0, 0]
    ),
}
h, w = 5, 6
angles = np.array([30.0, 135.0, -70.0]) * np.pi / 180
cx, cy = (w - 1) / 2, (h - 1) / 2
rot = []
for a in angles:
    a0, a1, b0, b1 = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    rot.append([a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1, 0, 0])
TRANSFORMS["rotate"] = np.array(rot, dtype="float32")

for tname, t in TRANSFORMS.items():
    for fill_mode in ("reflect", "wrap", "constant", "nearest"):
        fill_value = 1.5 if fill_mode == "constant" else 0.0
        name = f"affine_{tname}_{fill_mode}"
        x = images()
        kwargs = {"interpolation": "bilinear", "fill_mode": fill_mode, "fill_value": fill_value}
        y = keras.ops.image.affine_transform(x, t.copy(), data_format="channels_last", **kwargs)
        out.update({f"{name}_x": x, f"{name}_t": t, f"{name}_kwargs": repr(kwargs), f"{name}_y": np_(y)})

# nearest interpolation: transforms whose reading positions stay clear of .5 (where rounding rules differ)
NEAREST = {
    "shift": affine([1, 0, -1.2, 0, 1, 0.7, 0, 0], [1, 0, 2.9, 0, 1, -3.3, 0, 0], [1, 0, 6.1, 0, 1, 0.2, 0, 0]),
    "zoom": affine(
        [1.5, 0, -1.3, 0, 0.6, 0.85, 0, 0], [0.6, 0, 1.15, 0, 1.5, -1.2, 0, 0], [2.2, 0, -3.8, 0, 2.2, -2.8, 0, 0]
    ),
}
for tname, t in NEAREST.items():
    for fill_mode in ("reflect", "wrap", "constant", "nearest"):
        name = f"affine_nearest_{tname}_{fill_mode}"
        x = images()
        kwargs = {"interpolation": "nearest", "fill_mode": fill_mode, "fill_value": -2.0}
        y = keras.ops.image.affine_transform(x, t.copy(), data_format="channels_last", **kwargs)
        out.update({f"{name}_x": x, f"{name}_t": t, f"{name}_kwargs": repr(kwargs), f"{name}_y": np_(y)})

# ------------------------------------------------------------------ the layers with their own draws
LAYERS = [
    ("translation", "RandomTranslation", {"height_factor": 0.3, "width_factor": (-0.4, 0.2)}),
    (
        "translation_const",
        "RandomTranslation",
        {"height_factor": 0.5, "width_factor": 0.5, "fill_mode": "constant", "fill_value": 2.0},
    ),
    ("rotation", "RandomRotation", {"factor": 0.4}),
    ("rotation_wrap", "RandomRotation", {"factor": (-0.2, 0.3), "fill_mode": "wrap"}),
    ("zoom", "RandomZoom", {"height_factor": 0.5}),
    ("zoom_xy", "RandomZoom", {"height_factor": (-0.5, -0.1), "width_factor": (0.2, 0.6), "fill_mode": "nearest"}),
]
for name, cls, kwargs in LAYERS:
    layer = getattr(keras.layers, cls)(seed=7, **kwargs)
    x = images(4, 6, 7, 3)
    tr = layer.get_random_transformation(x, training=True)
    # the torch backend's affine_transform swaps entries of the matrix it is given IN PLACE, so the
    # matrices are copied before the images are transformed
    if cls == "RandomRotation":
        tr_matrix = np_(tr["rotation_matrix"]).copy()
    y = layer.transform_images(keras.ops.convert_to_tensor(x), tr, training=True)
    if cls == "RandomTranslation":
        params, t = np_(tr["translations"]), np_(layer._get_translation_matrix(tr["translations"]))
    elif cls == "RandomRotation":
        params, t = np_(tr["angle"]), tr_matrix
    else:
        zooms = keras.ops.concatenate([tr["width_zoom"], tr["height_zoom"]], axis=1)
        params, t = np_(zooms), np_(layer._get_zoom_matrix(keras.ops.cast(zooms, "float32"), 6, 7))
    prefix = f"layer_{name}"
    out.update(
        {
            f"{prefix}_x": x,
            f"{prefix}_class": cls,
            f"{prefix}_kwargs": repr(kwargs),
            f"{prefix}_params": params,
            f"{prefix}_t": t,
            f"{prefix}_y": np_(y),
        }
    )

# ------------------------------------------------------------------ RandomContrast with fixed factors
for name, value_range, scale, shift in (("pixels", (0, 255), 60.0, 120.0), ("unit", (0, 1), 0.3, 0.5)):
    layer = keras.layers.RandomContrast(factor=0.5, value_range=value_range)
    x = (rng.normal(size=(3, 4, 5, 3)) * scale + shift).astype("float32")
    factor = np.array([0.4, 1.0, 1.7], dtype="float32")
    tr = {"contrast_factor": keras.ops.convert_to_tensor(factor.reshape(-1, 1, 1, 1))}
    y = layer.transform_images(keras.ops.convert_to_tensor(x), tr, training=True)
    out.update(
        {
            f"contrast_{name}_x": x,
            f"contrast_{name}_factor": factor,
            f"contrast_{name}_range": np.array(value_range, "float32"),
            f"contrast_{name}_y": np_(y),
        }
    )
for name, factor in (("single", 0.3), ("pair", (0.2, 0.5)), ("single_zero", 0.0)):
    out[f"contrast_factor_{name}"] = repr(factor)
    out[f"contrast_factor_{name}_range"] = np.array(keras.layers.RandomContrast(factor).factor, "float64")

# ------------------------------------------------------------------ RandomFlip with fixed flips
for mode in ("horizontal", "vertical", "horizontal_and_vertical"):
    layer = keras.layers.RandomFlip(mode)
    x = images(3, 3, 4, 2)
    flips = np.array([True, False, True])
    tr = {"flips": keras.ops.convert_to_tensor(flips.reshape(-1, 1, 1, 1)), "input_shape": x.shape}
    y = layer.transform_images(keras.ops.convert_to_tensor(x), tr, training=True)
    out.update({f"flip_{mode}_x": x, f"flip_{mode}_flips": flips, f"flip_{mode}_y": np_(y)})

OUT.parent.mkdir(parents=True, exist_ok=True)
np.savez_compressed(OUT, **out)
print(f"wrote {OUT} ({len(out)} arrays, Keras {keras.__version__}, backend {keras.backend.backend()})")
