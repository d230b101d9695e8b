"""Hand-checkable tests of schedules, clipping, regularizers, constraints, sample weights and callbacks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import optimizers
from cnnlab.layers import Dense, Input


def tiny_model(optimizer="sgd", **dense):
    model = cl.Sequential([Input((2,)), Dense(1, **dense)])
    model.set_weights([np.array([[1.0], [2.0]]), np.array([0.0])])
    model.compile(optimizer=optimizer, loss="mse")
    return model


X = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
Y = np.array([[1.0], [2.0]], "float32")  # the initial model fits exactly: loss 0, gradient 0


# ---------------------------------------------------------------- schedules
def test_schedules_by_hand():
    s = cl.optimizers.schedules
    assert [round(s.ExponentialDecay(1.0, 2, 0.5)(k), 6) for k in (0, 2, 4)] == [1.0, 0.5, 0.25]
    assert round(s.ExponentialDecay(1.0, 2, 0.5, staircase=True)(3), 6) == 0.5
    assert [round(s.PiecewiseConstantDecay([1, 3], [3.0, 2.0, 1.0])(k), 6) for k in range(5)] == [3, 3, 2, 2, 1]
    cos = s.CosineDecay(1.0, 4, alpha=0.0)
    assert [round(cos(k), 6) for k in (0, 4, 8)] == [1.0, 0.0, 0.0]
    warm = s.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4)
    assert [round(warm(k), 6) for k in (0, 2, 4)] == [0.0, 0.5, 1.0]


def test_schedule_is_evaluated_at_iterations_and_round_trips():
    opt = optimizers.SGD(learning_rate=cl.optimizers.schedules.PiecewiseConstantDecay([0], [1.0, 0.5]))
    w = np.zeros(1, "float32")
    opt.apply(w, np.ones(1, "float32"))  # step 0: lr 1
    opt.apply(w, np.ones(1, "float32"))  # step 1: lr 0.5
    assert w[0] == -1.5
    again = optimizers.from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1


def test_schedule_errors_name_the_argument():
    with pytest.raises(ValueError, match="decay_steps"):
        cl.optimizers.schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="boundaries.*1 less"):
        cl.optimizers.schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])


# ---------------------------------------------------------------- clipping and weight decay
def test_clipnorm_is_per_weight_array():
    opt = optimizers.SGD(learning_rate=1.0, clipnorm=1.0)
    w = np.zeros(4, "float32")
    opt.apply(w, np.array([3.0, 4.0, 0.3, 0.4], "float32"), spans=[(0, 2), (2, 4)])
    # first array has norm 5 -> scaled to norm 1; the second (norm 0.5) is left as is
    np.testing.assert_allclose(w, [-0.6, -0.8, -0.3, -0.4], rtol=1e-6)


def test_global_clipnorm_and_clipvalue():
    w = np.zeros(4, "float32")
    optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0).apply(
        w, np.array([3.0, 0.0, 0.0, 4.0], "float32"), spans=[(0, 2), (2, 4)]
    )
    np.testing.assert_allclose(w, [-0.6, 0, 0, -0.8], rtol=1e-6)
    w = np.zeros(2, "float32")
    optimizers.SGD(learning_rate=1.0, clipvalue=0.5).apply(w, np.array([3.0, -0.25], "float32"))
    np.testing.assert_allclose(w, [-0.5, 0.25])


def test_only_one_clipping_option():
    with pytest.raises(ValueError, match="only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)


def test_weight_decay_before_update():
    w = np.array([2.0], "float32")
    optimizers.SGD(learning_rate=0.5, weight_decay=0.1).apply(w, np.zeros(1, "float32"))
    assert w[0] == np.float32(2.0 - 2.0 * 0.1 * 0.5)
    with pytest.raises(ValueError, match="`weight_decay` must be a float"):
        optimizers.AdamW(weight_decay=None)


def test_adagrad_accumulator_starts_at_initial_value():
    opt = optimizers.Adagrad(learning_rate=1.0, initial_accumulator_value=3.0, epsilon=1e-7)
    w = np.zeros(1, "float32")
    opt.apply(w, np.ones(1, "float32"))  # acc = 3 + 1 = 4 -> step 1/sqrt(4)
    np.testing.assert_allclose(w, [-0.5], rtol=1e-6)


def test_optimizer_names():
    for name in ("adamw", "adagrad", "adadelta", "adamax", "nadam"):
        assert optimizers.get(name).name == name
    with pytest.raises(ValueError, match="Unknown optimizer 'adamz'.*'nadam'"):
        optimizers.get("adamz")


# ---------------------------------------------------------------- regularizers and constraints
def test_l2_penalty_is_in_the_logged_loss_and_gradient():
    model = tiny_model(optimizers.SGD(learning_rate=0.1), kernel_regularizer=cl.regularizers.l2(0.5))
    history = model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    # loss 0 (exact fit) + 0.5 * (1 + 4) = 2.5; gradient of the penalty 2*0.5*w = w
    assert history.history["loss"] == [pytest.approx(2.5)]
    np.testing.assert_allclose(model.get_weights()[0].ravel(), [0.9, 1.8], rtol=1e-6)
    # the test loss includes it too, as in Keras
    assert model.evaluate(X, Y, verbose=0) == pytest.approx(0.5 * (0.81 + 3.24) + np.mean([0.01, 0.04]), rel=1e-5)


def test_constraints_apply_after_the_update():
    model = tiny_model(optimizers.SGD(learning_rate=0.1), kernel_constraint=cl.constraints.NonNeg())
    model.set_weights([np.array([[-1.0], [2.0]]), np.array([0.0])])
    model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert model.get_weights()[0][0, 0] == 0.0


def test_max_norm_by_hand():
    w = np.array([[3.0, 0.3], [4.0, 0.4]], "float32")
    out = cl.constraints.MaxNorm(1.0)(w)
    np.testing.assert_allclose(out, [[0.6, 0.3], [0.8, 0.4]], rtol=1e-6)


def test_rules_round_trip_through_saving(tmp_path):
    model = tiny_model(kernel_regularizer="l2", kernel_constraint=cl.constraints.MaxNorm(3))
    model.save(tmp_path / "m.cnnlab")
    again = cl.models.load_model(tmp_path / "m.cnnlab")
    layer = again.layers[0]
    assert layer.regularizers["kernel"].l2 == 0.01 and layer.constraints["kernel"].max_value == 3


def test_bad_regularizer_message():
    with pytest.raises(ValueError, match="Dense: expected kernel_regularizer to be None, 'l1', 'l2'"):
        Dense(2, kernel_regularizer="l3")


# ---------------------------------------------------------------- sample and class weights
def test_sample_weight_mean_is_over_batch_size():
    model = tiny_model()
    y = np.array([[3.0], [2.0]], "float32")  # squared errors 4 and 0
    history = model.fit(X, y, batch_size=2, epochs=1, shuffle=False, verbose=0, sample_weight=np.array([0.5, 7.0]))
    assert history.history["loss"] == [pytest.approx(0.5 * 4 / 2)]


def test_class_weight_and_sample_weight_together_is_an_error():
    model = tiny_model()
    with pytest.raises(ValueError, match="class_weight and sample_weight at the same time"):
        model.fit(X, Y, verbose=0, sample_weight=np.ones(2), class_weight={0: 1.0})
    with pytest.raises(ValueError, match=r"sample_weight of shape \(2,\)"):
        model.fit(X, Y, verbose=0, sample_weight=np.ones(3))


# ---------------------------------------------------------------- callbacks
def test_reduce_lr_on_plateau_by_hand():
    model = tiny_model(optimizers.SGD(learning_rate=1.0))
    cb = cl.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.3)
    cb.set_model(model)
    cb.on_train_begin()
    lrs = []
    for epoch, loss in enumerate([1.0, 1.0, 1.0, 1.0]):
        logs = {"loss": loss}
        cb.on_epoch_end(epoch, logs)
        lrs.append(model.optimizer.learning_rate)
    assert lrs == [1.0, 0.5, 0.3, 0.3]
    assert logs["learning_rate"] == 0.3
    with pytest.raises(ValueError, match="factor < 1.0"):
        cl.callbacks.ReduceLROnPlateau(factor=1.5)


def test_learning_rate_scheduler_and_history():
    model = tiny_model(optimizers.SGD(learning_rate=1.0))
    cb = cl.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * (epoch + 1))
    history = model.fit(X, Y, batch_size=2, epochs=3, verbose=0, callbacks=[cb])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.2, 0.3])


def test_csv_logger_rows(tmp_path):
    model = tiny_model()
    path = tmp_path / "log.csv"
    model.fit(X, Y, batch_size=2, epochs=2, verbose=0, callbacks=[cl.callbacks.CSVLogger(path)])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == ["epoch", "loss", "val_loss"] and rows[0]["val_loss"] == "NA"
    model.fit(X, Y, batch_size=2, epochs=1, verbose=0, callbacks=[cl.callbacks.CSVLogger(path, append=True)])
    assert len(list(csv.DictReader(path.open()))) == 3  # header written once


def test_terminate_on_nan_and_lambda_callback():
    model = tiny_model()
    cb = cl.callbacks.TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": float("nan")})
    assert model.stop_training
    seen = []
    model.fit(
        X,
        Y,
        epochs=2,
        verbose=0,
        callbacks=[cl.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))],
    )
    assert seen == [0, 1]


def test_backup_and_restore_resumes_after_interruption(tmp_path):
    backup = tmp_path / "backup"

    class Interrupt(cl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    model = tiny_model(optimizers.Adam(learning_rate=0.1))
    y = np.array([[0.0], [0.0]], "float32")
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=4, verbose=0, callbacks=[cl.callbacks.BackupAndRestore(backup), Interrupt()])
    assert json.loads((backup / "training_metadata.json").read_text()) == {"epoch": 2}
    saved_weights = cl.models.load_model(backup / "latest.cnnlab").get_weights()

    fresh = tiny_model(optimizers.Adam(learning_rate=0.1))
    restored = []
    history = fresh.fit(
        X,
        y,
        epochs=4,
        verbose=0,
        callbacks=[
            cl.callbacks.BackupAndRestore(backup),
            cl.callbacks.LambdaCallback(on_train_begin=lambda logs: restored.append(fresh.get_weights())),
        ],
    )
    assert history.epoch == [2, 3]  # resumed after the two completed epochs
    np.testing.assert_array_equal(restored[0][0], saved_weights[0])  # weights restored before training
    assert fresh.optimizer.iterations == 4  # optimizer state restored (2 steps) + 2 new steps
    assert not backup.exists()  # deleted when fit completes
