"""The comparison figure of a post-processing sweep."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from skimage.color import label2rgb
from skimage.segmentation import find_boundaries

from unsupseg.io import as_rgb_float
from unsupseg.viz import new_figure, save_figure

__all__ = ["save_comparison_figure"]


def save_comparison_figure(
    path: str | os.PathLike,
    examples: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray]]],
    columns: Sequence[str],
) -> None:
    """The thesis' comparison figure: one row per image; the photo, the prediction
    (``none``) and each setting in ``columns``, every map drawn in its regions' mean
    colour with the boundaries in white.

    Parameters
    ----------
    path : path
        The PNG to write (atomically).
    examples : sequence of (str, ndarray, dict)
        Per row: the image id, the image, and the label map of each setting name
        (``none`` for the prediction itself); a setting without a map leaves its cell
        empty.
    columns : sequence of str
        The settings shown, after the image and the prediction.
    """
    names = ["image", "none", *columns]
    fig, axes = new_figure(
        len(examples), len(names), figsize=(1.9 * len(names), 1.6 * len(examples) + 0.4)
    )
    for row, (image_id, image, maps) in enumerate(examples):
        rgb = as_rgb_float(image)
        # label2rgb averages in the image's dtype; float64 keeps the mean colours exact
        rgb64 = rgb.astype(np.float64)
        for col, name in enumerate(names):
            ax = axes[row, col]
            ax.set_xticks([]), ax.set_yticks([])
            if name == "image":
                ax.imshow(rgb)
                ax.set_ylabel(image_id, fontsize=7)
            elif name in maps:
                labels = maps[name]
                # bg_label=-1: label 0 is a region like the others, not background
                shown = label2rgb(labels, rgb64, kind="avg", bg_label=-1)
                shown[find_boundaries(labels, mode="inner")] = 1.0
                ax.imshow(shown)
                ax.set_xlabel(f"{np.unique(labels).size} labels", fontsize=6)
            else:
                ax.axis("off")
            if row == 0:
                ax.set_title("prediction" if name == "none" else name, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
