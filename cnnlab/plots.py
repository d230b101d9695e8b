"""Pictures for the lecture report: learning curves, confusion matrices, misclassified images.

Drawn with matplotlib's non-interactive Agg backend and written atomically (temporary
file, then rename), so they work on machines without a screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnlab._atomic import atomic_path  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` via a temporary file; closes the figure."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def learning_curves(histories: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """Loss and accuracy per epoch for each named history (``history.history`` dicts)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, hist in histories.items():
        epochs = np.arange(1, len(hist["loss"]) + 1)
        ax_loss.plot(epochs, hist["loss"], marker="o", label=name)
        ax_acc.plot(epochs, hist["accuracy"], marker="o", label=name)
    for ax, what in ((ax_loss, "training loss"), (ax_acc, "training accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("Loss per epoch")
    ax_acc.set_title("Accuracy per epoch")
    return save_figure(fig, path)


def confusion_matrices(matrices: dict[str, np.ndarray], class_names: Sequence[str], path: Path) -> Path:
    """One heat map per model: rows are true classes, columns predicted, counts in the cells."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(7.5 * len(matrices), 6.5), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items(), strict=True):
        matrix = np.asarray(matrix)
        ax.imshow(matrix, cmap="Blues")
        ticks = np.arange(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        ax.set_title(f"{name}: confusion matrix (accuracy {accuracy:.4f})")
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(
                j, i, str(count), ha="center", va="center", fontsize=7, color="white" if count > threshold else "black"
            )
    return save_figure(fig, path)


def misclassified_grid(
    images: np.ndarray,
    true: np.ndarray,
    predicted: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    title: str,
    limit: int = 25,
) -> Path:
    """Up to ``limit`` wrongly classified images with their true and predicted labels."""
    wrong = np.flatnonzero(true != predicted)[:limit]
    cols = 5
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[index].reshape(images.shape[1], images.shape[2]), cmap="gray")
        ax.set_title(f"#{index}\ntrue: {class_names[true[index]]}\npred: {class_names[predicted[index]]}", fontsize=8)
    fig.suptitle(title if len(wrong) else f"{title}: none misclassified")
    return save_figure(fig, path)
