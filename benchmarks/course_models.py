"""Two keras.io course models on Fashion-MNIST, trained by cnnlab and by real Keras on one recipe.

Each model is written ONCE (in ``cnnlab/course_models.py``), as on keras.io, against a module
called ``keras``. That name is either real Keras 3 or cnnlab itself (cnnlab has Keras's top-level names), so the only
difference between the two runs is the import:

    import keras                                    # real Keras
    import cnnlab as keras                          # cnnlab (cnnlab_as_keras() below)

Models (``channels_last``, 28 x 28 x 1 inputs, 10 classes):

- ``simple``: keras.io "Simple MNIST convnet" (F. Chollet) verbatim: Conv2D(32, 3, relu),
  MaxPooling2D(2), Conv2D(64, 3, relu), MaxPooling2D(2), Flatten, Dropout(0.5),
  Dense(10, softmax); pixels / 255 outside the model; batch 128, 15 epochs, Adam,
  categorical cross-entropy, validation_split=0.1.
- ``scratch``: a Sequential network in the style of keras.io "Image classification from
  scratch", shrunk to 28 x 28 x 1: RandomFlip("horizontal"), RandomRotation(0.05),
  Rescaling(1/255), Conv2D(32, 3, strides=2, same) + BN + relu, SeparableConv2D(64, 3, same)
  + BN + relu, MaxPooling2D(3, 2, same), SeparableConv2D(128, 3, same) + BN + relu,
  GlobalAveragePooling2D, Dropout(0.25), Dense(10, softmax); raw 0..255 pixels in; same
  recipe as ``simple`` with 10 epochs.

Usage, from the repository root (cnnlab's environment runs the cnnlab side and starts the
Keras side in the Python given by ``--keras-python``, with ``KERAS_BACKEND=torch`` unless set;
that environment needs keras and a backend, not cnnlab's dependencies):

    .venv/bin/python benchmarks/course_models.py --keras-python /path/to/keras-venv/bin/python \
        --seeds 1 2 --out benchmarks/course_models.json
    .venv/bin/python benchmarks/course_models.py --quick ...     # 2 epochs, 12,000 training images
    .venv/bin/python benchmarks/course_models.py --epochs 5 --train 12000 ...   # any cut of the recipe

The data go to the Keras process as a temporary ``.npz`` (cnnlab's verified loader reads
Fashion-MNIST once). Test accuracy is the figure compared; seconds per epoch are printed as
an aside (they are not a speed benchmark: see ``seed_nets.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from typing import Any

import numpy as np


# ----------------------------------------------------------------------------- the models, once
def _library_models() -> types.ModuleType:
    """``cnnlab/course_models.py`` loaded by its path: the Keras process has no cnnlab installed."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cnnlab", "course_models.py")
    spec = importlib.util.spec_from_file_location("cnnlab_course_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_models = _library_models()
simple_mnist_convnet = _models.simple_mnist_convnet
from_scratch_sequential = _models.from_scratch_sequential
NUM_CLASSES = _models.NUM_CLASSES
INPUT_SHAPE = _models.INPUT_SHAPE


MODELS = _models.RECIPES  # name: (builder, epochs of the recipe, inputs scaled by 1/255 before the model?)
BATCH_SIZE = 128
QUICK_EPOCHS = 2
QUICK_TRAIN = 12_000


def cnnlab_as_keras() -> types.ModuleType:
    """``import cnnlab as keras``: cnnlab has every top-level name these keras.io models use.

    (``keras.Input``, ``keras.Sequential``, ``keras.layers.*``, ``keras.utils.to_categorical``,
    ``keras.utils.set_random_seed``, ``keras.callbacks.Callback``.)
    """
    import cnnlab as keras

    return keras


# ----------------------------------------------------------------------------- one training run
def run(keras: Any, model_name: str, seed: int, data: dict[str, np.ndarray], epochs: int) -> dict[str, Any]:
    """Train one model with the keras.io recipe; the same lines for both frameworks."""
    builder, _, scale = MODELS[model_name]
    keras.utils.set_random_seed(seed)
    x_train, x_test = data["x_train"].astype("float32"), data["x_test"].astype("float32")
    if scale:  # keras.io: x_train = x_train.astype("float32") / 255
        x_train, x_test = x_train / 255, x_test / 255
    x_train, x_test = np.expand_dims(x_train, -1), np.expand_dims(x_test, -1)
    y_train = keras.utils.to_categorical(data["y_train"], NUM_CLASSES)
    y_test = keras.utils.to_categorical(data["y_test"], NUM_CLASSES)

    model = builder(keras)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times: list[float] = []
    history = model.fit(
        x_train,
        y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        validation_split=0.1,
        verbose=2,
        callbacks=[EpochTimes()],
    )
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "framework": keras.__name__,
        "model": model_name,
        "seed": seed,
        "epochs": epochs,
        "train_samples": len(x_train),
        "params": int(model.count_params()),
        "test_loss": float(loss),
        "test_accuracy": float(accuracy),
        "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "seconds_per_epoch": times,
    }


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def worker(args: argparse.Namespace) -> None:
    """One framework, every (model, seed): one JSON line per run on stdout's last lines."""
    if args.worker == "keras":
        import keras
    else:
        keras = cnnlab_as_keras()
    data = load_npz(args.npz)
    for model_name in args.models:
        epochs = args.epochs or (QUICK_EPOCHS if args.quick else MODELS[model_name][1])
        for seed in args.seeds:
            result = run(keras, model_name, seed, data, epochs)
            print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- driver
def machine() -> dict[str, Any]:
    import cnnlab

    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cnnlab": cnnlab.__version__,
        "load_average": os.getloadavg(),
    }


def spawn(python: str, framework: str, args: argparse.Namespace, npz: str, save: Any) -> list[dict[str, Any]]:
    """Run one framework in its own process (thread pools of two frameworks would compete).

    ``save(results)`` is called after every finished run, so an interrupted session keeps its results.
    """
    cmd = [python, os.path.abspath(__file__), "--worker", framework, "--npz", npz, "--models", *args.models]
    cmd += ["--seeds", *map(str, args.seeds)] + (["--quick"] if args.quick else [])
    cmd += ["--epochs", str(args.epochs)] if args.epochs else []
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "torch")
    print(f"== {framework}: {' '.join(cmd)}", flush=True)
    results = []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT ") :]))
                save(results)
                r = results[-1]
                name = f"{framework} {r['model']} seed {r['seed']}"
                print(f"   {name}: test accuracy {r['test_accuracy']:.4f}", flush=True)
            else:
                print("   " + line.rstrip(), flush=True)
    if proc.returncode:
        raise SystemExit(f"{framework} worker failed with exit code {proc.returncode}")
    if framework == "keras":
        version = subprocess.run(
            [python, "-c", "import keras; print(keras.__version__, keras.backend.backend())"],
            env=env,
            capture_output=True,
            text=True,
        ).stdout.split()
        for r in results:
            r["framework"] = f"keras {version[0]} ({version[1]})" if len(version) == 2 else "keras"
    return results


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table: one row per (model, framework), one column per seed, then mean and spread."""
    seeds = sorted({r["seed"] for r in results})
    head = "| model | framework | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | s/epoch (aside) |"
    lines = [head, "|" + "---|" * (len(seeds) + 4)]
    for model_name in MODELS:
        for framework in sorted({r["framework"] for r in results if r["model"] == model_name}):
            rows = {r["seed"]: r for r in results if r["model"] == model_name and r["framework"] == framework}
            accs = [rows[s]["test_accuracy"] for s in seeds if s in rows]
            cells = [f"{rows[s]['test_accuracy']:.4f}" if s in rows else "" for s in seeds]
            spread = f" ± {np.std(accs, ddof=1):.4f}" if len(accs) > 1 else ""
            per_epoch = [t for r in rows.values() for t in r["seconds_per_epoch"][1:]] or [
                t for r in rows.values() for t in r["seconds_per_epoch"]
            ]
            lines.append(
                f"| {model_name} | {framework} | " + " | ".join(cells) + f" | {np.mean(accs):.4f}{spread} | "
                f"{np.median(per_epoch):.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--frameworks", nargs="+", choices=["cnnlab", "keras"], default=["cnnlab", "keras"])
    parser.add_argument("--keras-python", default=os.environ.get("KERAS_PYTHON", sys.executable))
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs on {QUICK_TRAIN} images")
    parser.add_argument("--epochs", type=int, help="train every model this many epochs instead of its recipe's")
    parser.add_argument("--train", type=int, help="use only the first TRAIN training images (before the split)")
    parser.add_argument("--out", help="write all results (and the machine) to this JSON file")
    parser.add_argument("--worker", choices=["cnnlab", "keras"], help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    import cnnlab as cl

    (x_train, y_train), (x_test, y_test) = cl.datasets.fashion_mnist.load_data()
    n_train = args.train or (QUICK_TRAIN if args.quick else None)
    if n_train:
        x_train, y_train = x_train[:n_train], y_train[:n_train]
    start = time.perf_counter()
    results: list[dict[str, Any]] = []

    def save(latest: list[dict[str, Any]]) -> None:
        if args.out:
            # the command without this machine's paths: the Keras interpreter is named by a variable
            command = " ".join(sys.argv).replace(args.keras_python, "$KERAS_PYTHON")
            report = {"command": command, "quick": args.quick, "train_images": len(x_train)}
            report |= {"wall_seconds": time.perf_counter() - start, "machine": machine(), "results": results + latest}
            with open(args.out, "w") as handle:
                json.dump(report, handle, indent=1)

    with tempfile.TemporaryDirectory() as folder:
        npz = os.path.join(folder, "fashion_mnist.npz")
        np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        for framework in args.frameworks:
            python = sys.executable if framework == "cnnlab" else args.keras_python
            results += spawn(python, framework, args, npz, save)
    wall = time.perf_counter() - start
    print()
    print(table(results))
    print(f"\nwall time {wall:.0f} s")
    save([])


if __name__ == "__main__":
    main()
