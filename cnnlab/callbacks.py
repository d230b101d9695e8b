"""Callbacks for ``fit``: the ``Callback`` base class, ``History``, ``EarlyStopping`` and
``ModelCheckpoint``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab._atomic import check_folder, check_target
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
