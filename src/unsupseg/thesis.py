"""Figures reported by the thesis this project comes from ("Analysis of Unsupervised
Segmentation Methods using SLIC Refinement"), for comparison with measured ones."""

from __future__ import annotations

__all__ = ["THESIS_TRAIN_IMAGES", "THESIS_WALL_TIMES", "thesis_images_per_second"]

#: The thesis' training wall times per preset, as (epochs, seconds).
THESIS_WALL_TIMES: dict[str, tuple[int, float]] = {
    "base-cifar10": (30, 5 * 3600 + 39 * 60 + 53),
    "base-stl10": (30, 7 * 3600 + 15 * 60 + 10),
    "base-voc2012": (30, 8 * 3600 + 37 * 60 + 34),
    "classifier-cifar10": (30, 3 * 3600 + 54 * 60 + 18),
    "classifier-stl10": (30, 6 * 3600),
    "classifier-voc2012": (30, 32 * 3600 + 37 * 60 + 21),
    "autoencoder-cifar10": (100, 7 * 3600 + 26 * 60 + 49),
    "autoencoder-stl10": (50, 9 * 3600),
    "autoencoder-voc2012": (100, 21 * 3600 + 35 * 60 + 56),
}
#: Training images of one epoch of the thesis' data sets: CIFAR-10 50,000, STL-10 5,000,
#: VOC 2012 segmentation train 1,464.
THESIS_TRAIN_IMAGES = {"cifar10": 50000, "stl10": 5000, "voc2012": 1464}


def thesis_images_per_second(preset: str) -> float | None:
    """The thesis' training throughput of a preset (epochs x images / wall time), or
    None for a preset it did not train."""
    if preset not in THESIS_WALL_TIMES:
        return None
    epochs, seconds = THESIS_WALL_TIMES[preset]
    return epochs * THESIS_TRAIN_IMAGES[preset.split("-", 1)[1]] / seconds
