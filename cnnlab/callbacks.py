"""Callbacks for ``fit``, with Keras 3's behaviour: the ``Callback`` base class, ``History``,
``EarlyStopping``, ``ModelCheckpoint``, ``ReduceLROnPlateau``, ``LearningRateScheduler``,
``CSVLogger``, ``TerminateOnNaN``, ``BackupAndRestore`` and ``LambdaCallback``."""

from __future__ import annotations

import collections
import csv
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab._atomic import atomic_path, check_folder, check_target
from cnnlab.errors import InvalidArgumentError


class Callback:
    """Override any of the hooks; ``self.model`` is set before training starts."""

    def __init__(self) -> None:
        self.model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None: ...

    # Keras 3 names for the batch hooks
    def on_train_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.on_batch_end(batch, logs)


class History(Callback):
    """What ``fit`` returns: ``history.history['loss']`` etc., one value per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def check_callback_args(owner: str, monitor: Any, **numbers: Any) -> None:
    """``monitor`` must be a log name; ``patience`` a whole number >= 0; ``min_delta`` a finite number."""
    if not isinstance(monitor, str) or not monitor:
        raise InvalidArgumentError(
            f"{owner}: expected monitor to be a logged name such as 'val_loss', received {monitor!r}."
        )
    for name, value in numbers.items():
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if name == "patience" and not (number and float(value).is_integer() and value >= 0):
            raise InvalidArgumentError(f"{owner}: expected patience to be a whole number >= 0, received {value!r}.")
        if name == "min_delta" and not (number and np.isfinite(value)):
            raise InvalidArgumentError(f"{owner}: expected min_delta to be a finite number, received {value!r}.")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs,
    like ``keras.callbacks.EarlyStopping``; optionally restore the best weights."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise InvalidArgumentError(f"EarlyStopping: expected mode 'auto', 'min' or 'max', received {mode!r}.")
        check_callback_args("EarlyStopping", monitor, patience=patience, min_delta=min_delta)
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.min_delta = abs(float(min_delta))
        self.sign = 1.0 if mode == "max" else -1.0
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise InvalidArgumentError(
                f"EarlyStopping: monitor {self.monitor!r} is not among the logged values "
                f"({', '.join(logs) or 'none'}). Pass validation data for 'val_*' monitors."
            )
        score = self.sign * float(logs[self.monitor])
        if score - self.min_delta > self.best or self.best_weights is None and self.best == -np.inf:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping (best epoch {self.best_epoch + 1})")


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when ``monitor`` improves
    (``save_best_only=True``), like ``keras.callbacks.ModelCheckpoint``.

    ``filepath`` may hold ``{epoch}`` and any logged value, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.cnnlab"``;
    ``{epoch}`` counts from 1, as in Keras. Files are written atomically. Where they go is
    checked when training begins: an unwritable place raises ``OSError`` before the first epoch.
    """

    def __init__(
        self,
        filepath: str,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        verbose: int = 0,
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise InvalidArgumentError(f"ModelCheckpoint: expected mode 'auto', 'min' or 'max', received {mode!r}.")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.filepath, self.monitor, self.save_best_only, self.verbose = str(filepath), monitor, save_best_only, verbose
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = -np.inf

    def on_train_begin(self, logs=None):
        """Check that checkpoints can be written, so a bad ``filepath`` fails now rather than
        after the first epoch's work; the part of it before any ``{...}`` field is checked."""
        action = "ModelCheckpoint: cannot save checkpoints to"
        if "{" not in self.filepath:
            check_target(self.filepath, action)
            return
        parts = Path(self.filepath).parts
        fixed = next(i for i, part in enumerate(parts) if "{" in part)
        # the folders before the first field are known now; the file name is not
        check_folder(Path(*parts[:fixed]) if fixed else Path(os.curdir), action, shown=self.filepath)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise InvalidArgumentError(
                    f"ModelCheckpoint: monitor {self.monitor!r} is not among the logged values "
                    f"({', '.join(logs) or 'none'})."
                )
            score = self.sign * float(logs[self.monitor])
            if score <= self.best:
                return
            self.best = score
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, ValueError) as exc:
            raise InvalidArgumentError(
                f"ModelCheckpoint: cannot fill in filepath {self.filepath!r} ({exc!r}); it may use "
                f"{{epoch}} and {', '.join('{' + k + '}' for k in logs)}."
            ) from exc
        self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved model to {path}")


def _learning_rate(model: Any, owner: str) -> float:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{owner}: the model's optimizer must have a learning_rate; compile the model first.")
    return float(optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs, like ``keras.callbacks.ReduceLROnPlateau``: then wait
    ``cooldown`` epochs before counting again, never go below ``min_lr``. Adds ``learning_rate`` to
    the epoch logs (and so to the history).

    ``new_lr = max(old_lr * factor, min_lr)``, applied only while ``old_lr > float32(min_lr)``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(factor, (int, float)) or factor >= 1.0:
            raise ValueError(
                f"ReduceLROnPlateau: expected factor < 1.0 (the learning rate is multiplied by it), "
                f"received factor={factor!r}."
            )
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"ReduceLROnPlateau: unknown mode {mode!r}, falling back to 'auto'.", stacklevel=2)
            mode = "auto"
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.mode, self.min_delta, self.cooldown, self.min_lr = mode, float(min_delta), int(cooldown), float(min_lr)
        self._reset()

    def _reset(self) -> None:
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op: Callable[[float, float], bool] = lambda a, b: a < b - self.min_delta
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _learning_rate(self.model, "ReduceLROnPlateau")
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateau: learning rate reduction is conditioned on {self.monitor!r}, which is not "
                f"available. Available metrics are: {', '.join(logs)}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = _learning_rate(self.model, "ReduceLROnPlateau")
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), like ``keras.callbacks.LearningRateScheduler``; ``epoch`` counts from 0.
    Adds ``learning_rate`` to the epoch logs.

    >>> cb = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise ValueError(
                f"LearningRateScheduler: expected schedule to be a function (epoch, lr) -> lr, received {schedule!r}."
            )
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = _learning_rate(self.model, "LearningRateScheduler")
        try:  # Keras tries the (epoch, lr) form first, then the old (epoch) form
            lr = self.schedule(epoch, lr)
        except TypeError:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(
                f"LearningRateScheduler: the output of the schedule function should be a float. Got: {lr!r}"
            )
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _learning_rate(self.model, "LearningRateScheduler")


class CSVLogger(Callback):
    """Write one CSV row per epoch (``epoch`` from 0, then the logged values in sorted order), like
    ``keras.callbacks.CSVLogger``: the file is written as training goes, a row flushed after each
    epoch, so an interrupted run keeps its rows. ``append=True`` continues an existing file
    (writing the header only if it is empty). As in Keras, when the first epoch has no ``val_``
    values their columns are still added (filled with ``NA``)."""

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.writer: Any = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file: Any = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        check_target(self.filename, "CSVLogger: cannot write")
        self.writer, self.keys = None, None
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")  # noqa: SIM115 (closed at train end)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(k: Any) -> Any:
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend(["val_" + k for k in self.keys])
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys], dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{key: handle_value(logs.get(key, "NA")) for key in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training when a batch's logged ``loss`` is NaN or infinite, like
    ``keras.callbacks.TerminateOnNaN``. (cnnlab's ``fit`` already stops at such a step before it
    updates the weights, with a warning; this callback is accepted so Keras scripts run unchanged.)"""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class BackupAndRestore(Callback):
    """Back up model and optimizer state at the end of every epoch to ``backup_dir``; when ``fit``
    starts again with the same ``backup_dir`` after an interruption, restore them and continue from
    the epoch after the last completed one, like ``keras.callbacks.BackupAndRestore``. When ``fit``
    completes, the backup is deleted (``delete_checkpoint=True``).

    The backup is a cnnlab model file (``latest.cnnlab``: weights and optimizer state) and
    ``training_metadata.json`` (``{"epoch": epochs done}``), each written atomically.
    """

    def __init__(self, backup_dir: str | os.PathLike[str], delete_checkpoint: bool = True) -> None:
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: empty backup_dir; pass a folder such as backup_dir='backup'.")
        self.backup_dir = Path(backup_dir)
        self.delete_checkpoint = delete_checkpoint
        self._weights_path = self.backup_dir / "latest.cnnlab"
        self._metadata_path = self.backup_dir / "training_metadata.json"

    def on_train_begin(self, logs=None):
        if self._weights_path.exists():
            # the model's own file reader (set by cnnlab.saving): callbacks import no model code
            saved = type(self.model)._file_reader(self._weights_path, compile=True)
            self.model.set_weights(saved.get_weights())
            if saved.optimizer is not None and self.model.optimizer is not None:
                self.model.optimizer.set_state(saved.optimizer.get_state())
        if self._metadata_path.exists():
            epoch = int(json.loads(self._metadata_path.read_text(encoding="utf-8"))["epoch"])
            self.model._initial_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        self.model.save(self._weights_path)
        with atomic_path(self._metadata_path, action="BackupAndRestore: cannot write") as tmp:
            tmp.write_text(json.dumps({"epoch": epoch + 1}), encoding="utf-8")

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and self.backup_dir.exists():
            shutil.rmtree(self.backup_dir)


class LambdaCallback(Callback):
    """A callback from plain functions, like ``keras.callbacks.LambdaCallback``:
    ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``, ``on_train_begin(logs)``,
    ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``, ``on_train_batch_end(batch, logs)``.

    >>> seen = []
    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> cb.on_epoch_end(0, {}); seen
    [0]
    """

    def __init__(
        self,
        on_epoch_begin: Callable[..., Any] | None = None,
        on_epoch_end: Callable[..., Any] | None = None,
        on_train_begin: Callable[..., Any] | None = None,
        on_train_end: Callable[..., Any] | None = None,
        on_train_batch_begin: Callable[..., Any] | None = None,
        on_train_batch_end: Callable[..., Any] | None = None,
        **kwargs: Callable[..., Any],
    ) -> None:
        super().__init__()
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            **kwargs,
        }
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not name.startswith("on_") or not callable(fn):
                raise ValueError(f"LambdaCallback: expected {name} to be a function, received {fn!r}.")
            setattr(self, name, _with_logs(fn, 1 if name in ("on_train_begin", "on_train_end") else 2))


def _with_logs(fn: Callable[..., Any], arity: int) -> Callable[..., Any]:
    """Call ``fn`` always with Keras's arguments (``logs`` last, ``{}`` when fit gave none)."""

    def hook(*args: Any) -> Any:
        args = args[:arity]
        return fn(*args, *([{}] * (arity - len(args))))

    return hook
