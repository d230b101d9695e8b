"""BatchNormalization over a whole training run, cnnlab against real Keras, with the randomness taken out.

The ``scratch`` course model's inference-mode accuracy swings between epochs in both frameworks
(its moving statistics lag the weights), so two seeds cannot tell a difference in how cnnlab's
BatchNormalization follows training from seed noise. This runs the ``scratch`` model without its
random layers (no augmentation, no Dropout) from the SAME initial weights (cnnlab builds them and
saves a ``.keras`` file, which the Keras process loads), over the same batches in the same order
(``shuffle=False``), and compares after ``STEPS`` steps: the training loss, the moving statistics of
every BatchNormalization layer, and the test predictions in inference mode. What remains between the
two runs is float32 rounding, amplified along the trajectory.

    .venv/bin/python benchmarks/bn_dynamics_vs_keras.py --keras-python "$KERAS_PYTHON" [--steps 468]

The Keras side runs with ``KERAS_BACKEND=torch`` unless set; it loads this file by path and needs
keras and a backend, not cnnlab.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

BATCH = 128


def build(keras: Any) -> Any:
    """``scratch`` (``cnnlab.course_models.from_scratch_sequential``) without its random layers
    (augmentation, Dropout), which keep the shape. x: (N, 28, 28, 1) raw pixels -> (N, 10)."""
    from cnnlab.course_models import INPUT_SHAPE, from_scratch_sequential

    random = (keras.layers.RandomFlip, keras.layers.RandomRotation, keras.layers.Dropout)
    kept = [layer for layer in from_scratch_sequential(keras).layers if not isinstance(layer, random)]
    return keras.Sequential([keras.Input(shape=INPUT_SHAPE), *kept])


def train(keras: Any, model: Any, data: Any, steps: int, out: str) -> None:
    """The same lines in both processes: ``steps`` batches in order, then predictions and statistics."""
    x = data["x_train"][: steps * BATCH].reshape(-1, 28, 28, 1).astype("float32")
    y = keras.utils.to_categorical(data["y_train"][: steps * BATCH], 10)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0).history
    x_test = data["x_test"].reshape(-1, 28, 28, 1).astype("float32")
    predictions = np.asarray(model.predict(x_test, verbose=0))
    stats = [
        np.asarray(w)
        for layer in model.layers
        if type(layer).__name__ == "BatchNormalization"
        for w in layer.get_weights()[2:]
    ]
    moving = {f"stat_{k}": value for k, value in enumerate(stats)}  # per layer: moving mean, moving variance
    np.savez(out, predictions=predictions, loss=history["loss"][-1], **moving)


def worker(framework: str, npz: str, steps: int, folder: str) -> None:
    data = np.load(npz)
    if framework == "cnnlab":  # cnnlab builds the weights; Keras loads them from the file
        import cnnlab as keras

        keras.utils.set_random_seed(1)
        model = build(keras)
        model.save(os.path.join(folder, "initial.keras"))
    else:
        import keras

        model = keras.saving.load_model(os.path.join(folder, "initial.keras"), compile=False)
    train(keras, model, data, steps, os.path.join(folder, f"{framework}.npz"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", required=True, help="a Python with keras and a backend")
    parser.add_argument("--steps", type=int, default=468, help="training steps (at most 468: one pass over the data)")
    parser.add_argument("--worker", choices=("cnnlab", "keras"), help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.npz, args.steps, args.folder)
        return 0
    import cnnlab

    (x_train, y_train), (x_test, y_test) = cnnlab.datasets.fashion_mnist.load_data()
    with tempfile.TemporaryDirectory() as folder:
        npz = os.path.join(folder, "data.npz")
        np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
        for framework, python in (("cnnlab", sys.executable), ("keras", args.keras_python)):
            cmd = [python, os.path.abspath(__file__), "--keras-python", args.keras_python, "--worker", framework]
            subprocess.run([*cmd, "--npz", npz, "--steps", str(args.steps), "--folder", folder], env=env, check=True)
        a, b = (np.load(os.path.join(folder, f"{f}.npz")) for f in ("cnnlab", "keras"))
        pa, pb = a["predictions"], b["predictions"]
        result = {
            "steps": args.steps,
            "training_loss": {"cnnlab": float(a["loss"]), "keras": float(b["loss"])},
            "test_accuracy": {
                "cnnlab": float((pa.argmax(1) == y_test).mean()),
                "keras": float((pb.argmax(1) == y_test).mean()),
            },
            "same_predicted_class": float((pa.argmax(1) == pb.argmax(1)).mean()),
            "largest_probability_difference": float(np.abs(pa - pb).max()),
            "moving_statistics": [
                {"largest_difference": float(np.abs(a[k] - b[k]).max()), "largest_value": float(np.abs(b[k]).max())}
                for k in sorted((k for k in a.files if k.startswith("stat_")), key=lambda k: int(k[5:]))
            ],
        }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
