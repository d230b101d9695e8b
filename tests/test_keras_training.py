"""Training steps against real Keras 3 (tests/fixtures/keras_training.npz, written by
tools/make_keras_training_fixtures.py; Keras is not needed to run these tests).

Each case trains Dense(4, relu) -> Dense(3, softmax) from the same weights on the same 8 samples,
one full batch per epoch, and compares the weights after every step.

Tolerance, from float32 rounding rather than guessed: one step's weight change is a chain of at
most ~K = 64 float32 operations (forward and backward sums over 8 samples and <= 5 inputs, softmax,
the optimizer's ~10 operations), each off by at most half an ulp, and Keras's backend may order
them differently; so each step may differ by ``K * eps * |change of that step|`` plus the rounding
of the weight itself (``eps * |w|``), and the differences add up over the steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import optimizers, regularizers
from cnnlab.layers import Dense, Input

FIX = np.load(Path(__file__).parent / "fixtures" / "keras_training.npz")
EPS = float(np.finfo(np.float32).eps)
K = 64

sched = cl.optimizers.schedules
OPTIMIZER_CASES = {
    "adamw": lambda: optimizers.AdamW(learning_rate=0.01),
    "adagrad": lambda: optimizers.Adagrad(learning_rate=0.1),
    "adadelta": lambda: optimizers.Adadelta(learning_rate=1.0),
    "adamax": lambda: optimizers.Adamax(learning_rate=0.01),
    "nadam": lambda: optimizers.Nadam(learning_rate=0.01),
    "sgd_momentum": lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "sgd_nesterov": lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam_clipnorm": lambda: optimizers.Adam(learning_rate=0.01, clipnorm=0.05),
    "sgd_global_clipnorm": lambda: optimizers.SGD(learning_rate=0.5, global_clipnorm=0.1),
    "rmsprop_clipvalue": lambda: optimizers.RMSprop(learning_rate=0.01, clipvalue=0.02),
    "adam_weight_decay": lambda: optimizers.Adam(learning_rate=0.01, weight_decay=0.1),
    "sgd_exponential_decay": lambda: optimizers.SGD(learning_rate=sched.ExponentialDecay(0.5, 1, 0.5)),
    "sgd_piecewise": lambda: optimizers.SGD(learning_rate=sched.PiecewiseConstantDecay([0, 1], [0.5, 0.2, 0.1])),
    "sgd_cosine": lambda: optimizers.SGD(learning_rate=sched.CosineDecay(0.5, 2, alpha=0.1)),
}


def initial() -> np.ndarray:
    return np.concatenate([FIX[f"w{i}"].ravel() for i in range(4)])


def train(
    optimizer,
    first=None,
    second=None,
    loss="sparse_categorical_crossentropy",
    y=None,
    activation="softmax",
    kernels="reference",
    **fit,
):
    steps = []
    with cl.config.using_kernels(kernels):
        model = cl.Sequential([Input((5,)), Dense(4, "relu", **(first or {})), Dense(3, activation, **(second or {}))])
        model.set_weights([FIX[f"w{i}"] for i in range(4)])
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        record = cl.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: steps.append(
                np.concatenate([w.ravel() for w in model.get_weights()])
            )
        )
        history = model.fit(
            FIX["x"],
            FIX["y"] if y is None else y,
            batch_size=8,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[record],
            **fit,
        )
    return np.stack(steps), np.array(history.history["loss"]), np.array(history.history["accuracy"])


def assert_steps_match(name: str, weights: np.ndarray) -> None:
    expected = FIX[f"{name}/weights"]
    assert weights.shape == expected.shape
    before = np.vstack([initial()[None], expected[:-1]])
    change = np.abs(expected - before)
    bound = np.cumsum(K * EPS * change + EPS * np.abs(expected), axis=0)
    np.testing.assert_array_less(np.abs(weights - expected), bound + 1e-12, err_msg=name)
    assert np.abs(expected[-1] - initial()).max() > 1e3 * bound[-1].max(), "the case must move the weights"


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
def test_optimizer_steps_match_keras(name):
    weights, losses, _ = train(OPTIMIZER_CASES[name]())
    assert_steps_match(name, weights)
    np.testing.assert_allclose(losses, FIX[f"{name}/loss"], rtol=1e-5)


@pytest.mark.parametrize("name", ["adamw", "adam_clipnorm", "sgd_exponential_decay"])
def test_optimizer_steps_match_keras_with_fast_kernels(name):
    weights, _, _ = train(OPTIMIZER_CASES[name](), kernels="fast")
    assert_steps_match(name, weights)


def test_regularizers_and_constraints_match_keras():
    weights, losses, _ = train(
        optimizers.SGD(learning_rate=0.1),
        first={
            "kernel_regularizer": regularizers.L2(0.01),
            "bias_regularizer": regularizers.L1(0.02),
            "kernel_constraint": cl.constraints.MaxNorm(0.8),
        },
        second={
            "kernel_regularizer": regularizers.L1L2(l1=0.01, l2=0.02),
            "kernel_constraint": cl.constraints.NonNeg(),
        },
    )
    assert_steps_match("regularized", weights)
    # the logged loss includes the penalties, as in Keras
    np.testing.assert_allclose(losses, FIX["regularized/loss"], rtol=1e-5)


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_sample_weight_matches_keras(kernels):
    weights, losses, accuracy = train(
        optimizers.SGD(learning_rate=0.1), sample_weight=FIX["sample_weight"], kernels=kernels
    )
    assert_steps_match("sample_weight", weights)
    np.testing.assert_allclose(losses, FIX["sample_weight/loss"], rtol=1e-5)
    np.testing.assert_allclose(accuracy, FIX["sample_weight/accuracy"], rtol=1e-6)


def test_class_weight_matches_keras():
    weights, losses, accuracy = train(optimizers.SGD(learning_rate=0.1), class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    assert_steps_match("class_weight", weights)
    np.testing.assert_allclose(losses, FIX["class_weight/loss"], rtol=1e-5)
    np.testing.assert_allclose(accuracy, FIX["class_weight/accuracy"], rtol=1e-6)


ONEHOT = np.eye(3, dtype="float32")[FIX["y"]]
LOSS_CASES = {
    "huber": (lambda: cl.losses.Huber(delta=0.5), ONEHOT, "linear"),
    "kl_divergence": (lambda: cl.losses.KLDivergence(), np.clip(ONEHOT, 0.1, 0.8), "softmax"),
    "categorical_hinge": (lambda: cl.losses.CategoricalHinge(), ONEHOT, "linear"),
    "cce_smoothing": (lambda: cl.losses.CategoricalCrossentropy(label_smoothing=0.2), ONEHOT, "softmax"),
    "bce_smoothing": (lambda: cl.losses.BinaryCrossentropy(label_smoothing=0.2), ONEHOT, "sigmoid"),
    # from_logits=True: the outputs are the logits (a softmax output is taken as logits too, as Keras does)
    "scce_logits": (lambda: cl.losses.SparseCategoricalCrossentropy(from_logits=True), FIX["y"], "linear"),
    "cce_logits_smoothing": (
        lambda: cl.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        ONEHOT,
        "linear",
    ),
    "cce_logits_on_softmax": (lambda: cl.losses.CategoricalCrossentropy(from_logits=True), ONEHOT, "softmax"),
    "bce_logits_smoothing": (
        lambda: cl.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
        ONEHOT,
        "linear",
    ),
}


@pytest.mark.parametrize("kernels", ["reference", "fast"])
@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_loss_training_steps_match_keras(name, kernels):
    make, y, activation = LOSS_CASES[name]
    weights, losses, _ = train(
        optimizers.SGD(learning_rate=0.1), loss=make(), y=y, activation=activation, kernels=kernels
    )
    assert_steps_match(name, weights)
    np.testing.assert_allclose(losses, FIX[f"{name}/loss"], rtol=1e-5)


@pytest.mark.parametrize(
    "name, make",
    [
        ("precision", lambda: cl.metrics.Precision()),
        ("recall", lambda: cl.metrics.Recall()),
        ("auc", lambda: cl.metrics.AUC()),
        ("auc_pr", lambda: cl.metrics.AUC(curve="PR")),
        ("precision_t03", lambda: cl.metrics.Precision(thresholds=0.3)),
    ],
)
def test_streaming_metrics_match_keras(name, make):
    metric = make()
    metric.update_state(FIX["metric/t1"], FIX["metric/p1"])
    metric.update_state(FIX["metric/t2"], FIX["metric/p2"])
    # Keras accumulates the counts in float32 and computes the result in float32
    np.testing.assert_allclose(metric.result(), FIX[f"metric/{name}"], rtol=1e-6)


def test_top_k_categorical_accuracy_matches_keras():
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 2, 1, 0]]
    for k in (1, 2):
        np.testing.assert_array_equal(
            cl.metrics.top_k_categorical_accuracy(labels, FIX["metric/p1"], k=k), FIX[f"metric/top{k}"]
        )
