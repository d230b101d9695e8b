"""The lecture as one job: a dense network against a small CNN on Fashion-MNIST.

Data are prepared exactly as the lecture does (raw 0..255 pixels as floats, NHWC,
one-hot labels), both networks are trained with Adam and categorical
cross-entropy, evaluated on the test set, and compared with the lecture's own figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import cnnlab as cl
from cnnlab._atomic import atomic_path, check_folder, check_target
from cnnlab.layers import Conv2D, Dense, Flatten, MaxPool2D

#: what the lecture notes report (TensorFlow 2, 5 epochs, batch 32)
LECTURE = {
    "net1": {"params": 1_149_010, "test_accuracy": 0.8505, "test_loss": 0.4255},
    "net2": {"params": 14_590, "test_accuracy": 0.8707, "test_loss": 0.3572},
}


def build_net1() -> cl.Sequential:
    """Flatten -> Dense(500, relu) x4 -> Dense(10, softmax): 1,149,010 parameters."""
    return cl.Sequential(
        [cl.layers.Input((28, 28, 1)), Flatten()]
        + [Dense(500, activation="relu") for _ in range(4)]
        + [Dense(10, activation="softmax")],
        name="net1",
    )


def build_net2() -> cl.Sequential:
    """Conv2D(30,2x2,relu) -> MaxPool2D -> Conv2D(30,2x2,relu) -> MaxPool2D -> Flatten -> Dense(10, softmax)."""
    return cl.Sequential(
        [
            cl.layers.Input((28, 28, 1)),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Conv2D(30, (2, 2), activation="relu"),
            MaxPool2D(),
            Flatten(),
            Dense(10, activation="softmax"),
        ],
        name="net2",
    )


#: the files :func:`write_report` writes into the report folder
REPORT_FILES = (
    "results.json",
    "net1.cnnlab",
    "net2.cnnlab",
    "learning_curves.png",
    "confusion_matrices.png",
    "misclassified_net2.png",
    "report.html",
)


def check_report_folder(out: str | Path) -> None:
    """Raise ``OSError`` naming ``out`` now if the report cannot be written there (the folder
    cannot be made or written, or a report file's name is taken by a directory, FIFO ...);
    makes the folder if missing. :func:`run` calls it before training."""
    action = "cannot write the lecture report to"
    check_folder(out, action)
    for name in REPORT_FILES:
        check_target(Path(out) / name, action)


@dataclass
class LectureData:
    X: np.ndarray
    y: np.ndarray
    XX: np.ndarray
    yy: np.ndarray
    labels_test: np.ndarray
    scale: float = 1.0

    @property
    def metadata(self) -> dict[str, Any]:
        """What a saved model needs to prepare new images the same way."""
        return {
            "dataset": "fashion_mnist",
            "input_scale": self.scale,
            "class_names": list(cl.datasets.fashion_mnist.class_names),
        }


def prepare_data(data_path: str | None = None, normalize: bool = False, subset: int | None = None) -> LectureData:
    """``X = x_train.reshape(-1, 28, 28, 1)`` as float64 (x/255 only with ``normalize``),
    ``y = to_categorical(y_train)``; the same for the test set (``XX``, ``yy``)."""
    (x_train, y_train), (x_test, y_test) = cl.datasets.fashion_mnist.load_data(data_path)
    if subset:
        x_train, y_train = x_train[:subset], y_train[:subset]
        x_test, y_test = x_test[: max(subset // 6, 1)], y_test[: max(subset // 6, 1)]
    scale = 255.0 if normalize else 1.0
    X = x_train.reshape(-1, 28, 28, 1).astype(np.float64) / scale
    XX = x_test.reshape(-1, 28, 28, 1).astype(np.float64) / scale
    return LectureData(
        X, cl.utils.to_categorical(y_train, 10), XX, cl.utils.to_categorical(y_test, 10), y_test, 1.0 / scale
    )


@dataclass
class NetResult:
    name: str
    params: int
    seconds_per_epoch: list[float] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    test_loss: float = float("nan")
    test_accuracy: float = float("nan")
    confusion: list[list[int]] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list, repr=False)


class _EpochTimer(cl.callbacks.Callback):
    """Seconds per epoch of training, without the one-time compilation of kernels (first run on
    a CPU), which the engine announces and measures separately."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._compiled = self.model.kernel_compile_seconds

    def on_epoch_end(self, epoch, logs=None):
        compiling = self.model.kernel_compile_seconds - self._compiled
        self.seconds.append(time.perf_counter() - self._start - compiling)


def train_and_evaluate(
    model: cl.Sequential, data: LectureData, epochs: int, batch_size: int, verbose: int
) -> NetResult:
    model.compile(optimizer="adam", loss=cl.losses.categorical_crossentropy, metrics="accuracy")
    timer = _EpochTimer()
    history = model.fit(data.X, data.y, epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=[timer])
    loss, accuracy = model.evaluate(data.XX, data.yy, verbose=verbose)
    predicted = model.predict(data.XX).argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (data.labels_test, predicted), 1)
    return NetResult(
        model.name,
        model.count_params(),
        timer.seconds,
        history.history,
        float(loss),
        float(accuracy),
        confusion.tolist(),
        predicted.tolist(),
    )


def shape_trace(model: cl.Sequential, X: np.ndarray) -> list[tuple[str, tuple[int, ...]]]:
    """The lecture's trace: each layer applied in turn to the whole array ``X`` (for a functional
    model: each layer call in topological order)."""
    rows = [("input", tuple(X.shape))]
    if getattr(model, "is_graph_model", False):
        return rows + [(node.layer.name, tuple(out.shape)) for node, _, out in model.run_nodes(X)]
    out = X
    for layer in model.layers:
        out = layer(out)
        rows.append((layer.name, tuple(out.shape)))
    return rows


def comparison_table(r1: NetResult, r2: NetResult) -> str:
    def fmt(v: float, digits: int = 4) -> str:
        return "n/a" if v != v else f"{v:.{digits}f}"

    rows = [
        ("parameters", f"{r1.params:,}", f"{r2.params:,}"),
        ("parameter ratio net2/net1", "", f"{r2.params / r1.params:.4f}"),
        (
            "seconds per epoch (mean)",
            fmt(float(np.mean(r1.seconds_per_epoch)), 2),
            fmt(float(np.mean(r2.seconds_per_epoch)), 2),
        ),
        ("final train accuracy", fmt(r1.history["accuracy"][-1]), fmt(r2.history["accuracy"][-1])),
        ("test loss", fmt(r1.test_loss), fmt(r2.test_loss)),
        ("test accuracy", fmt(r1.test_accuracy), fmt(r2.test_accuracy)),
        (
            "lecture's test accuracy",
            f"{LECTURE['net1']['test_accuracy']:.4f}",
            f"{LECTURE['net2']['test_accuracy']:.4f}",
        ),
        ("lecture's test loss", f"{LECTURE['net1']['test_loss']:.4f}", f"{LECTURE['net2']['test_loss']:.4f}"),
    ]
    w0 = max(len(r[0]) for r in rows)
    lines = [f"{'':<{w0}}  {'net1 (MLP)':>12}  {'net2 (CNN)':>12}", "-" * (w0 + 28)]
    lines += [f"{a:<{w0}}  {b:>12}  {c:>12}" for a, b, c in rows]
    return "\n".join(lines)


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write JSON to a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    return path


def run(
    epochs: int = 5,
    batch_size: int = 32,
    seed: int | None = 43052,
    normalize: bool = False,
    quick: bool = False,
    out: str = "lecture-report",
    data_path: str | None = None,
    verbose: int = 1,
) -> dict[str, Any]:
    """Run the whole lecture; returns (and writes to ``out/results.json``) every figure.

    The report folder is checked first, so an unwritable ``out`` fails before any training."""
    check_report_folder(out)
    if seed is not None:
        cl.set_random_seed(seed)
    if quick:
        epochs = 1
    data = prepare_data(data_path, normalize, subset=6000 if quick else None)
    print(
        f"Fashion-MNIST: X {data.X.shape} {data.X.dtype}, y {data.y.shape}; XX {data.XX.shape}, yy {data.yy.shape}"
        + (" (quick: 6,000-image subset, 1 epoch)" if quick else "")
    )
    results, models = [], []
    for builder in (build_net1, build_net2):
        model = builder()
        models.append(model)
        print()
        model.summary()
        results.append(train_and_evaluate(model, data, epochs, batch_size, verbose))
        if model.name == "net2":
            print(f"\nShape trace of net2 on all {len(data.X):,} training images:")
            trace = shape_trace(model, data.X)
            for name, shape in trace:
                print(f"  {name:<16} {shape}")
    r1, r2 = results
    print()
    print(comparison_table(r1, r2))
    out_dir = Path(out)
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "normalize": normalize,
        "quick": quick,
        "train_samples": len(data.X),
        "test_samples": len(data.XX),
    }
    written = write_report(out_dir, data, models, results, trace, settings)
    print(f"\nReport written to {out_dir}/: " + ", ".join(p.name for p in written))
    return json.loads((out_dir / "results.json").read_text())


def write_report(
    out_dir: Path,
    data: LectureData,
    models: list[cl.Sequential],
    results: list[NetResult],
    trace: list[tuple[str, tuple[int, ...]]],
    settings: dict[str, Any],
) -> list[Path]:
    """results.json, both trained models, the three pictures and the page form of the report
    (``report.html``: clickable confusion matrices, see :mod:`cnnlab.report_page`); every file
    written atomically."""
    from cnnlab import plots, report_page

    r1, r2 = results
    names = cl.datasets.fashion_mnist.class_names
    payload = {
        "settings": settings,
        "lecture": LECTURE,
        "net1": {k: v for k, v in r1.__dict__.items() if k != "predicted"},
        "net2": {k: v for k, v in r2.__dict__.items() if k != "predicted"},
        "parameter_ratio": r2.params / r1.params,
        "shape_trace": [[n, list(s)] for n, s in trace],
    }
    written = [write_json_atomic(out_dir / "results.json", payload)]
    for model in models:
        model.metadata = data.metadata
        written.append(model.save(out_dir / f"{model.name}.cnnlab"))
    written.append(plots.learning_curves({r.name: r.history for r in results}, out_dir / "learning_curves.png"))
    written.append(
        plots.confusion_matrices(
            {r.name: np.array(r.confusion) for r in results}, names, out_dir / "confusion_matrices.png"
        )
    )
    written.append(
        plots.misclassified_grid(
            data.XX,
            data.labels_test,
            np.array(r2.predicted),
            names,
            out_dir / "misclassified_net2.png",
            "net2: misclassified test images",
        )
    )
    page = report_page.lecture_page_data(
        models,
        results,
        data.XX,
        data.labels_test,
        list(names),
        comparison_table(r1, r2),
        {"learning curves": out_dir / "learning_curves.png"},
    )
    written.append(report_page.write_report_page(out_dir / "report.html", page))
    return written
