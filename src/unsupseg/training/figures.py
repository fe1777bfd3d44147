"""The figures of a training run: sample panels, loss curves, unique labels, merging.

Every function draws one PNG from plain data (the rows of ``metrics.csv`` as
:func:`unsupseg.run_folder.read_metrics` gives them, or argmax maps) with
:func:`unsupseg.viz.new_figure`, so no figure stays open after it is saved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from unsupseg.viz import colorize, new_figure, save_figure

__all__ = [
    "AUX_LABELS",
    "MAX_STRIP_COLUMNS",
    "save_loss_curves",
    "save_merging_strip",
    "save_sample_panels",
    "save_unique_labels_curve",
]

#: Title of the auxiliary loss in the loss curves, by architecture.
AUX_LABELS = {
    "classifier": "classification loss (CE / BCE)",
    "autoencoder": "reconstruction MSE",
}
#: Most epochs shown as columns of the merging strip (evenly spaced, last included).
MAX_STRIP_COLUMNS = 10


def save_sample_panels(path: Path, predictions: list[dict[str, Any]], epoch: int) -> None:
    """The thesis code's panel, one row per image: Main image | Argmax output | SLIC
    output | Reconstructed image (autoencoder only).

    Parameters
    ----------
    path : Path
    predictions : list of dict
        ``id``, ``image`` (H, W, 3) in [0, 1], ``argmax`` and ``refined`` (H, W) label
        maps, ``reconstruction`` (H, W, 3) or None.
    epoch : int
        Shown in the title.
    """
    titles = ["Main image", "Argmax output", "SLIC output"]
    if any(p["reconstruction"] is not None for p in predictions):
        titles.append("Reconstructed image")
    rows = len(predictions)
    fig, axes = new_figure(rows, len(titles), figsize=(3.0 * len(titles), 2.6 * rows))
    for row, prediction in enumerate(predictions):
        pictures = [prediction["image"], colorize(prediction["argmax"])]
        pictures.append(colorize(prediction["refined"]))
        if len(titles) == 4:
            pictures.append(prediction["reconstruction"])
        for col, picture in enumerate(pictures):
            axis = axes[row, col]
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[col], fontsize=10)
        n_labels = len(np.unique(prediction["argmax"]))
        axes[row, 0].set_ylabel(f"{prediction['id']}", fontsize=8)
        axes[row, 1].set_xlabel(f"{n_labels} labels", fontsize=8)
    fig.suptitle(f"after epoch {epoch}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _epoch_series(rows: list[dict[str, Any]], split: str, key: str) -> tuple[list, list]:
    """Epochs and values of one split's column; empty cells (None, NaN) are skipped."""
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if row["split"] == split and value is not None and math.isfinite(value):
            xs.append(row["epoch"])
            ys.append(value)
    return xs, ys


def save_loss_curves(
    path: Path, rows: list[dict[str, Any]], aux_label: str = "auxiliary loss"
) -> None:
    """Train and validation curves of every loss term against the epoch.

    Parameters
    ----------
    path : Path
    rows : list of dict
        Rows of ``metrics.csv``.
    aux_label : str
        Title of the auxiliary loss (:data:`AUX_LABELS`); its panel is left out when
        the run has none (``base``).
    """
    terms = [("loss", "total loss"), ("loss_seg", "segmentation CE")]
    if _epoch_series(rows, "train", "loss_aux")[0]:
        terms.append(("loss_aux", aux_label))
    fig, axes = new_figure(1, len(terms), figsize=(4.2 * len(terms), 3.4))
    for axis, (key, title) in zip(axes[0], terms, strict=True):
        for split, style in (("train", "o-"), ("val", "s--")):
            xs, ys = _epoch_series(rows, split, key)
            if xs:
                axis.plot(xs, ys, style, label=split, markersize=3)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def save_unique_labels_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    """Mean number of distinct argmax labels per image against the epoch (the rows of
    ``metrics.csv``)."""
    fig, axes = new_figure(1, 1, figsize=(5, 3.4))
    axis = axes[0, 0]
    for split, style in (("train", "o-"), ("val", "s--")):
        xs, ys = _epoch_series(rows, split, "unique_labels")
        if xs:
            axis.plot(xs, ys, style, label=split, markersize=3)
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("unique labels per image")
    axis.set_title("merging: distinct argmax labels", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _strip_columns(epochs: list[int]) -> list[int]:
    if len(epochs) <= MAX_STRIP_COLUMNS:
        return epochs
    picks = np.linspace(0, len(epochs) - 1, MAX_STRIP_COLUMNS).round().astype(int)
    return [epochs[i] for i in sorted(set(picks.tolist()))]


def save_merging_strip(
    path: Path, images: list[np.ndarray], snapshots: dict[int, list[np.ndarray]]
) -> None:
    """Rows = images, columns = the image then its argmax after each epoch shown.

    Parameters
    ----------
    path : Path
    images : list of ndarray
        The sample images, (H, W, 3).
    snapshots : dict
        Epoch -> the argmax map of each image after it (epoch 0: before training). At
        most :data:`MAX_STRIP_COLUMNS` epochs are shown, evenly spaced.
    """
    epochs = _strip_columns(sorted(snapshots))
    rows, cols = len(images), len(epochs) + 1
    fig, axes = new_figure(rows, cols, figsize=(2.2 * cols, 2.0 * rows))
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        for col, epoch in enumerate(epochs, start=1):
            labels = snapshots[epoch][row]
            axes[row, col].imshow(colorize(labels), interpolation="nearest")
            axes[row, col].set_xlabel(f"{len(np.unique(labels))} labels", fontsize=7)
            if row == 0:
                axes[row, col].set_title(f"epoch {epoch}", fontsize=9)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=9)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)
