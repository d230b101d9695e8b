"""Write ``tests/fixtures/keras_training.npz``: training steps, losses and metrics computed by real Keras 3.

Run once in a separate environment with Keras 3 (any backend; the committed file was made with
``KERAS_BACKEND=torch``)::

    python3 -m venv keras-venv && keras-venv/bin/pip install torch keras numpy
    KERAS_BACKEND=torch keras-venv/bin/python tools/make_keras_training_fixtures.py

Every case trains the same small model (Dense(4, relu) -> Dense(3, softmax)) from the same weights
on the same 8 samples, one full batch per epoch with ``shuffle=False``, and records the weights
after each step and the logged losses, so ``tests/test_keras_training.py`` can repeat it in cnnlab.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras_training.npz"
STEPS = 3

opt = keras.optimizers
sched = keras.optimizers.schedules
reg = keras.regularizers

#: case name -> (optimizer factory, layer kwargs for the two Dense layers, loss, fit kwargs)
OPTIMIZER_CASES = {
    "adamw": lambda: opt.AdamW(learning_rate=0.01),
    "adagrad": lambda: opt.Adagrad(learning_rate=0.1),
    "adadelta": lambda: opt.Adadelta(learning_rate=1.0),
    "adamax": lambda: opt.Adamax(learning_rate=0.01),
    "nadam": lambda: opt.Nadam(learning_rate=0.01),
    "sgd_momentum": lambda: opt.SGD(learning_rate=0.1, momentum=0.9),
    "sgd_nesterov": lambda: opt.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam_clipnorm": lambda: opt.Adam(learning_rate=0.01, clipnorm=0.05),
    "sgd_global_clipnorm": lambda: opt.SGD(learning_rate=0.5, global_clipnorm=0.1),
    "rmsprop_clipvalue": lambda: opt.RMSprop(learning_rate=0.01, clipvalue=0.02),
    "adam_weight_decay": lambda: opt.Adam(learning_rate=0.01, weight_decay=0.1),
    "sgd_exponential_decay": lambda: opt.SGD(learning_rate=sched.ExponentialDecay(0.5, 1, 0.5)),
    "sgd_piecewise": lambda: opt.SGD(learning_rate=sched.PiecewiseConstantDecay([0, 1], [0.5, 0.2, 0.1])),
    "sgd_cosine": lambda: opt.SGD(learning_rate=sched.CosineDecay(0.5, 2, alpha=0.1)),
}


def data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(8, 5)).astype("float32")
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    weights = [
        (rng.normal(size=(5, 4)) * 0.5).astype("float32"),
        (rng.normal(size=4) * 0.1).astype("float32"),
        (rng.normal(size=(4, 3)) * 0.5).astype("float32"),
        (rng.normal(size=3) * 0.1).astype("float32"),
    ]
    return x, y, weights


def train(
    optimizer, first=None, second=None, loss="sparse_categorical_crossentropy", y=None, activation="softmax", **fit
):
    x, y_default, weights = data()
    y = y_default if y is None else y
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, "relu", **(first or {})),
            keras.layers.Dense(3, activation, **(second or {})),
        ]
    )
    model.set_weights(weights)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    steps = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(np.concatenate([w.ravel() for w in model.get_weights()]))

    history = model.fit(x, y, batch_size=8, epochs=STEPS, shuffle=False, verbose=0, callbacks=[Record()], **fit)
    return np.stack(steps), np.array(history.history["loss"]), np.array(history.history["accuracy"])


def main() -> None:
    out: dict[str, np.ndarray] = {}
    x, y, weights = data()
    out["x"], out["y"] = x, y
    for i, w in enumerate(weights):
        out[f"w{i}"] = w

    def record(name, result):
        out[f"{name}/weights"], out[f"{name}/loss"], out[f"{name}/accuracy"] = result

    for name, make in OPTIMIZER_CASES.items():
        record(name, train(make()))
    record(
        "regularized",
        train(
            opt.SGD(learning_rate=0.1),
            first={
                "kernel_regularizer": reg.L2(0.01),
                "bias_regularizer": reg.L1(0.02),
                "kernel_constraint": keras.constraints.MaxNorm(0.8),
            },
            second={"kernel_regularizer": reg.L1L2(l1=0.01, l2=0.02), "kernel_constraint": keras.constraints.NonNeg()},
        ),
    )
    sample_weight = np.array([1.0, 2.0, 0.5, 1.0, 0.0, 3.0, 1.0, 1.5], "float32")
    out["sample_weight"] = sample_weight
    record("sample_weight", train(opt.SGD(learning_rate=0.1), sample_weight=sample_weight))
    record("class_weight", train(opt.SGD(learning_rate=0.1), class_weight={0: 1.0, 1: 2.0, 2: 0.5}))
    onehot = np.eye(3, dtype="float32")[y]
    record(
        "huber", train(opt.SGD(learning_rate=0.1), loss=keras.losses.Huber(delta=0.5), y=onehot, activation="linear")
    )
    record(
        "kl_divergence",
        train(opt.SGD(learning_rate=0.1), loss=keras.losses.KLDivergence(), y=np.clip(onehot, 0.1, 0.8)),
    )
    record(
        "categorical_hinge",
        train(opt.SGD(learning_rate=0.1), loss=keras.losses.CategoricalHinge(), y=onehot, activation="linear"),
    )
    record(
        "cce_smoothing",
        train(opt.SGD(learning_rate=0.1), loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.2), y=onehot),
    )
    record(
        "bce_smoothing",
        train(
            opt.SGD(learning_rate=0.1),
            loss=keras.losses.BinaryCrossentropy(label_smoothing=0.2),
            y=onehot,
            activation="sigmoid",
        ),
    )
    # from_logits=True: the last Dense has no activation (its outputs are the logits), or a softmax
    # whose outputs the loss takes as logits all the same (Keras applies a second softmax)
    record(
        "scce_logits",
        train(
            opt.SGD(learning_rate=0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            activation="linear",
        ),
    )
    record(
        "cce_logits_smoothing",
        train(
            opt.SGD(learning_rate=0.1),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
            y=onehot,
            activation="linear",
        ),
    )
    record(
        "cce_logits_on_softmax",
        train(opt.SGD(learning_rate=0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True), y=onehot),
    )
    record(
        "bce_logits_smoothing",
        train(
            opt.SGD(learning_rate=0.1),
            loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
            y=onehot,
            activation="linear",
        ),
    )

    # streaming metrics: two update_state calls, then result()
    rng = np.random.default_rng(3)
    p1, p2 = rng.uniform(size=(6, 3)).astype("float32"), rng.uniform(size=(5, 3)).astype("float32")
    t1, t2 = (rng.uniform(size=(6, 3)) > 0.5).astype("float32"), (rng.uniform(size=(5, 3)) > 0.5).astype("float32")
    out["metric/p1"], out["metric/p2"], out["metric/t1"], out["metric/t2"] = p1, p2, t1, t2
    for name, metric in (
        ("precision", keras.metrics.Precision()),
        ("recall", keras.metrics.Recall()),
        ("auc", keras.metrics.AUC()),
        ("auc_pr", keras.metrics.AUC(curve="PR")),
        ("precision_t03", keras.metrics.Precision(thresholds=0.3)),
    ):
        metric.update_state(t1, p1)
        metric.update_state(t2, p2)
        out[f"metric/{name}"] = np.array(float(metric.result()))
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 2, 1, 0]]
    out["metric/top2"] = keras.ops.convert_to_numpy(keras.metrics.top_k_categorical_accuracy(labels, p1, k=2))
    out["metric/top1"] = keras.ops.convert_to_numpy(keras.metrics.top_k_categorical_accuracy(labels, p1, k=1))
    out["keras_version"] = np.array(keras.__version__)
    out["backend"] = np.array(keras.backend.backend())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, **out)
    print(
        f"wrote {OUT} ({len(out)} arrays) with Keras {keras.__version__} ({keras.backend.backend()})", file=sys.stderr
    )


if __name__ == "__main__":
    main()
