"""Metrics for ``compile(metrics=...)``: Keras's accuracy family, top-k accuracy, and the streaming
``Precision``, ``Recall`` and ``AUC``.

``'accuracy'`` resolves, as in Keras, to the variant that fits the loss:
categorical (argmax of labels vs argmax of outputs), sparse (label vs argmax),
or binary (output > 0.5).

Every metric is a :class:`Metric` with Keras's streaming interface: ``reset_state()`` at the start
of an epoch, ``update_state(y_true, y_pred, sample_weight)`` after each batch, ``result()`` for the
value so far. Per-sample functions are wrapped in :class:`MeanMetricWrapper` (the weighted mean
``sum(w*v) / sum(w)``); ``Precision``, ``Recall`` and ``AUC`` accumulate confusion counts over the
epoch, so their result is over all samples seen, not a mean of batch values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError


def categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """Example:

    >>> categorical_accuracy([[0, 1], [1, 0]], [[0.2, 0.8], [0.3, 0.7]])
    array([1., 0.])
    """
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> np.ndarray:
    """Example:

    >>> sparse_categorical_accuracy([1, 1], [[0.2, 0.8], [0.3, 0.7]])
    array([1., 1.])
    """
    y = np.asarray(y_true).reshape(np.shape(y_pred)[:-1])
    return (y == np.argmax(y_pred, axis=-1)).astype(np.float64)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> np.ndarray:
    """Example:

    >>> binary_accuracy([[1, 0]], [[0.7, 0.6]])
    array([0.5])
    """
    hit = np.asarray(y_true) == (np.asarray(y_pred) > threshold)
    return hit.mean(axis=-1)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """1 where the true class (argmax of the one-hot ``y_true``) is among the ``k`` highest
    predictions; ties at the boundary count as in the top k (TensorFlow's ``in_top_k``).

    >>> top_k_categorical_accuracy([[0, 0, 1], [1, 0, 0]], [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], k=2)
    array([0., 0.])
    >>> top_k_categorical_accuracy([[0, 1, 0]], [[0.5, 0.3, 0.2]], k=2)
    array([1.])
    """
    pred = np.asarray(y_pred, dtype=np.float64)
    target = np.argmax(np.asarray(y_true), axis=-1)
    target_pred = np.take_along_axis(pred, target[..., None], axis=-1)
    higher = (pred > target_pred).sum(axis=-1)
    return (higher < k).astype(np.float64)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> np.ndarray:
    """Like :func:`top_k_categorical_accuracy` with integer labels.

    >>> sparse_top_k_categorical_accuracy([2], [[0.5, 0.3, 0.2]], k=2)
    array([0.])
    """
    pred = np.asarray(y_pred)
    onehot = np.eye(pred.shape[-1])[np.asarray(y_true).astype(np.int64).reshape(pred.shape[:-1])]
    return top_k_categorical_accuracy(onehot, pred, k)


class Metric:
    """Keras's streaming metric interface."""

    name = "metric"

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """The metric of one batch (as calling a Keras metric on fresh state)."""
        self.reset_state()
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()


class MeanMetricWrapper(Metric):
    """The weighted mean ``sum(w*fn(y, p)) / sum(w)`` of a per-sample function over all batches.

    >>> m = MeanMetricWrapper(categorical_accuracy, "acc")
    >>> m.update_state([[0, 1]], [[0.2, 0.8]]); m.update_state([[1, 0]], [[0.3, 0.7]]); m.result()
    0.5
    """

    def __init__(self, fn: Any, name: str, **kwargs: Any) -> None:
        self.fn, self.name, self.kwargs = fn, name, kwargs
        self.reset_state()

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        values = np.asarray(self.fn(y_true, y_pred, **self.kwargs), dtype=np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += values.size
        else:
            w = np.broadcast_to(np.asarray(sample_weight, np.float64).reshape(len(values), -1)[:, 0], values.shape)
            self.total += float((values * w).sum())
            self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """``keras.metrics.TopKCategoricalAccuracy(k=5)``."""

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy") -> None:
        super().__init__(top_k_categorical_accuracy, name, k=k)


class _Confusion(Metric):
    """True/false positive/negative counts at ``thresholds`` (a prediction above a threshold is
    positive), accumulated over every label of every sample, weighted by ``sample_weight``."""

    def __init__(self, thresholds: Any, name: str) -> None:
        self.thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
        self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        n = len(self.thresholds)
        self.tp, self.fp, self.tn, self.fn = (np.zeros(n) for _ in range(4))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
        true = np.asarray(y_true, dtype=np.float64).reshape(pred.shape) > 0.5
        w = (
            np.ones(pred.shape)
            if sample_weight is None
            else np.broadcast_to(np.asarray(sample_weight, np.float64).reshape(len(pred), 1), pred.shape)
        )
        above = pred.ravel()[None, :] > self.thresholds[:, None]  # (thresholds, entries)
        t, w = true.ravel()[None, :], w.ravel()[None, :]
        self.tp += (w * (above & t)).sum(axis=1)
        self.fp += (w * (above & ~t)).sum(axis=1)
        self.tn += (w * (~above & ~t)).sum(axis=1)
        self.fn += (w * (~above & t)).sum(axis=1)


def _divide_no_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


class Precision(_Confusion):
    """``tp / (tp + fp)`` over all samples seen, like ``keras.metrics.Precision`` (predictions
    above ``thresholds=0.5`` count as positive).

    >>> Precision()([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1])
    0.5
    """

    def __init__(self, thresholds: float | None = None, name: str = "precision") -> None:
        super().__init__(0.5 if thresholds is None else thresholds, name)

    def result(self) -> float:
        return float(_divide_no_nan(self.tp, self.tp + self.fp)[0])


class Recall(_Confusion):
    """``tp / (tp + fn)`` over all samples seen, like ``keras.metrics.Recall``.

    >>> Recall()([1, 0, 1, 1], [0.9, 0.8, 0.2, 0.7])
    0.6666666666666666
    """

    def __init__(self, thresholds: float | None = None, name: str = "recall") -> None:
        super().__init__(0.5 if thresholds is None else thresholds, name)

    def result(self) -> float:
        return float(_divide_no_nan(self.tp, self.tp + self.fn)[0])


class AUC(_Confusion):
    """Area under the ROC (or ``curve="PR"``) curve from confusion counts at ``num_thresholds``
    evenly spaced thresholds, like ``keras.metrics.AUC`` (Riemann sum with interpolated heights;
    for PR Keras's interpolation of precision, Davis & Goadrich 2006).

    >>> AUC()([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", name: str = "auc") -> None:
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds <= 1:
            raise ValueError(f"AUC: expected num_thresholds to be an integer > 1, received {num_thresholds!r}.")
        if curve.upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC: expected curve 'ROC' or 'PR', received {curve!r}.")
        self.num_thresholds, self.curve = num_thresholds, curve.upper()
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        eps = 1e-7  # Keras's backend.epsilon(): the end thresholds lie just outside [0, 1]
        super().__init__([0.0 - eps, *inner, 1.0 + eps], name)

    def result(self) -> float:
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        if self.curve == "PR":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = _divide_no_nan(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:-1] > 0) & (p[1:] > 0)
            ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
            with np.errstate(divide="ignore"):
                log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
            return float(np.sum(_divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))))
        recall = _divide_no_nan(tp, tp + fn)
        fp_rate = _divide_no_nan(fp, fp + tn)
        heights = (recall[:-1] + recall[1:]) / 2.0
        return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * heights))


_FUNCTIONS = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
}
_CLASSES: dict[str, type[Metric]] = {"precision": Precision, "recall": Recall, "auc": AUC}


def resolve(metrics: Any, loss_name: str) -> list[tuple[str, Metric]]:
    """``compile(metrics=...)`` -> list of (display name, fresh :class:`Metric`)."""
    if metrics is None:
        return []
    if not (isinstance(metrics, (str, list, tuple, Metric)) or callable(metrics)):
        raise InvalidArgumentError(
            f"compile: expected metrics to be a list of names such as ['accuracy'], received {metrics!r}."
        )
    items = [metrics] if isinstance(metrics, (str, Metric)) or callable(metrics) else list(metrics)
    out: list[tuple[str, Metric]] = []
    for item in items:
        if isinstance(item, Metric):
            out.append((item.name, item))
            continue
        name = item if isinstance(item, str) else getattr(item, "__name__", None)
        if name in ("accuracy", "acc"):
            if loss_name == "sparse_categorical_crossentropy":
                fn = sparse_categorical_accuracy
            elif loss_name == "binary_crossentropy":
                fn = binary_accuracy
            else:
                fn = categorical_accuracy
            out.append(("accuracy", MeanMetricWrapper(fn, "accuracy")))
        elif name in _FUNCTIONS:
            out.append((name, MeanMetricWrapper(_FUNCTIONS[name], name)))
        elif isinstance(name, str) and name.lower() in _CLASSES:
            metric = _CLASSES[name.lower()]()
            out.append((metric.name, metric))
        else:
            known = ", ".join(repr(k) for k in (*_FUNCTIONS, *_CLASSES))
            raise InvalidArgumentError(
                f"Unknown metric {item!r}. Expected 'accuracy', one of {known}, or an instance such as "
                "cl.metrics.Precision()."
            )
    return out
