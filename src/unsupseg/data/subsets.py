"""Subsets of a data set: the first N images, and MSRC-v2's held-out split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unsupseg.data.base import ImageDataset

__all__ = ["HOLDOUT_EVERY", "SubsetDataset", "first_images", "split_holdout"]

#: Every HOLDOUT_EVERY-th image is held out of training when a data set has no
#: validation split (MSRC-v2 on this project's machines).
HOLDOUT_EVERY = 5


class SubsetDataset(ImageDataset):
    """Some images of another :class:`ImageDataset`, in the given order.

    Used for a limit on the number of images and for MSRC-v2's held-out validation
    images. Name, labels, size and source are the parent's; the superpixel cache tells
    subsets apart by their ids.
    """

    def __init__(self, parent: ImageDataset, indices: Sequence[int], split: str) -> None:
        super().__init__(parent.root, split, parent.image_size)
        self.parent = parent
        self.indices = [int(i) for i in indices]
        self.name = parent.name
        self.n_classes = parent.n_classes
        self.multilabel = parent.multilabel
        self.class_names = parent.class_names
        self.ids = [parent.ids[i] for i in self.indices]

    @property
    def source(self) -> str | None:
        return self.parent.source

    def _load_image(self, index: int) -> np.ndarray:
        return self.parent._load_image(self.indices[index])

    def _native_shape(self, index: int) -> tuple[int, int]:
        return self.parent._native_shape(self.indices[index])

    def _load_label(self, index: int) -> Any:
        return self.parent._load_label(self.indices[index])

    def _load_ground_truth(self, index: int) -> Any:
        return self.parent._load_ground_truth(self.indices[index])


def first_images(dataset: ImageDataset, limit: int | None) -> ImageDataset:
    """The first ``limit`` images of ``dataset`` (all of them when ``limit`` is None)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return SubsetDataset(dataset, range(limit), dataset.split)


def split_holdout(dataset: ImageDataset) -> tuple[ImageDataset, ImageDataset]:
    """Training and held-out validation images of a data set without split files.

    Every :data:`HOLDOUT_EVERY`-th image (ids in manifest order, from the first) is
    held out; training keeps the others. ``unsupseg train`` validates MSRC-v2 on them,
    and ``unsupseg evaluate --split holdout`` scores the same images.

    Returns
    -------
    train, held_out : ImageDataset
    """
    every = HOLDOUT_EVERY
    held = [i for i in range(len(dataset)) if i % every == 0]
    kept = [i for i in range(len(dataset)) if i % every != 0]
    return (
        SubsetDataset(dataset, kept, f"{dataset.split}-holdout-train"),
        SubsetDataset(dataset, held, f"{dataset.split}-holdout-val"),
    )
