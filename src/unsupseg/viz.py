"""Pictures of label maps: one fixed palette, colour renderings, overlays and panels.

Figures are :class:`matplotlib.figure.Figure` objects made by :func:`new_figure`, not
pyplot figures: they need no backend, so importing this module changes no global state
and saving works with or without a display, in any thread.
"""

from __future__ import annotations

import colorsys
import os
from functools import lru_cache
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from skimage.segmentation import mark_boundaries

from unsupseg.io import atomic_file

#: Number of distinct colours; label ids beyond it wrap around.
PALETTE_SIZE = 4096


@lru_cache(maxsize=1)
def palette() -> np.ndarray:
    """The project's one colour palette, shape (PALETTE_SIZE, 3), uint8.

    The first 20 colours are matplotlib's ``tab20`` (well separated for the few labels
    a segmentation usually has); the rest step the hue by the golden ratio with
    alternating saturation and value, so neighbouring ids never look alike. It does not
    depend on any random state: label k has the same colour in every output.
    """
    tab20 = (np.array(matplotlib.colormaps["tab20"].colors) * 255).round().astype(np.uint8)
    colours = [tab20[[*range(0, 20, 2), *range(1, 20, 2)]]]
    extra = []
    for index in range(PALETTE_SIZE - 20):
        hue = (index * 0.618033988749895) % 1.0
        saturation = (0.55, 0.9, 0.7)[index % 3]
        value = (0.95, 0.75, 0.6)[(index // 3) % 3]
        extra.append(colorsys.hsv_to_rgb(hue, saturation, value))
    colours.append((np.array(extra) * 255).round().astype(np.uint8))
    return np.concatenate(colours)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Render a label map of any integer type in the fixed palette, shape (H, W, 3)
    uint8 (ids wrap around the palette's size)."""
    labels = np.asarray(labels).astype(np.int64, copy=False)
    return palette()[labels % PALETTE_SIZE]


def overlay(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The image with segment boundaries drawn in yellow, uint8."""
    marked = mark_boundaries(image, labels, color=(1.0, 1.0, 0.0))
    return np.clip(np.rint(marked * 255), 0, 255).astype(np.uint8)


def save_panel(
    path: str | os.PathLike,
    panels: list[tuple[str, np.ndarray]],
    title: str | None = None,
) -> None:
    """Save side-by-side images with titles as a PNG (the thesis' panel figure).

    Parameters
    ----------
    panels : list of (title, image)
        Each image is (H, W, 3) uint8 or a (H, W) label map, drawn in the palette.
    """
    fig, axes = new_figure(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for axis, (name, picture) in zip(axes[0], panels, strict=True):
        axis.imshow(colorize(picture) if picture.ndim == 2 else picture, interpolation="nearest")
        axis.set_title(name, fontsize=10)
        axis.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def new_figure(
    rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], squeeze: bool = False
) -> tuple[Figure, Any]:
    """A figure and its grid of axes, as ``pyplot.subplots`` but without pyplot.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, shape (rows, cols) (or one Axes with ``squeeze`` and 1x1)
    """
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Save a figure atomically (the format from the file suffix, PNG by default)."""
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format=os.path.splitext(str(path))[1][1:] or "png", dpi=100)
