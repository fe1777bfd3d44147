"""Training items: images with their cached superpixels, augmented together.

:class:`TrainingDataset` turns an :class:`~unsupseg.data.ImageDataset` and its
:class:`~unsupseg.data.SuperpixelCache` into a torch ``Dataset`` of dicts; :func:`collate`
batches them, padding images of different sizes. Random crops and flips are drawn from
``(seed, epoch, index)`` alone, never from global random state, so a resumed run, or a
run with a different number of DataLoader workers, sees exactly the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from unsupseg.data.base import ImageDataset, Size, parse_image_size
from unsupseg.data.cache import SuperpixelCache
from unsupseg.io import as_rgb_float

__all__ = ["TrainingDataset", "collate", "crop_and_flip"]

#: Superpixel id of padding pixels (outside the image).
PAD_ID = -1


def crop_and_flip(
    image: np.ndarray,
    superpixels: np.ndarray,
    rng: np.random.Generator,
    crop_size: Size | None = None,
    flip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random crop and horizontal flip to an image and its superpixels.

    Parameters
    ----------
    image : ndarray, shape (H, W, C)
    superpixels : ndarray of int, shape (H, W)
    rng : numpy.random.Generator
        Source of the crop offset (drawn first: top, then left) and the flip (drawn
        last, probability 1/2).
    crop_size : (int, int), optional
        ``(height, width)`` of the crop. A side longer than the image is reached by
        padding at the bottom or right: image 0, superpixels -1.
    flip : bool
        Flip left-right with probability 1/2.

    Returns
    -------
    image, superpixels : ndarray
        The same crop and flip applied to both; ids are not renumbered.
    """
    if image.shape[:2] != superpixels.shape:
        raise ValueError(
            f"image {image.shape[:2]} and superpixels {superpixels.shape} differ in size"
        )
    if crop_size is not None:
        height, width = superpixels.shape
        pad_h, pad_w = max(0, crop_size[0] - height), max(0, crop_size[1] - width)
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
            superpixels = np.pad(superpixels, ((0, pad_h), (0, pad_w)), constant_values=PAD_ID)
        top = int(rng.integers(0, superpixels.shape[0] - crop_size[0] + 1))
        left = int(rng.integers(0, superpixels.shape[1] - crop_size[1] + 1))
        image = image[top : top + crop_size[0], left : left + crop_size[1]]
        superpixels = superpixels[top : top + crop_size[0], left : left + crop_size[1]]
    if flip and rng.random() < 0.5:
        image, superpixels = image[:, ::-1], superpixels[:, ::-1]
    return image, superpixels


def _renumber(superpixels: np.ndarray) -> np.ndarray:
    """Renumber ids to 0..n-1 in order of the old ids, keeping -1 for padding."""
    valid = superpixels >= 0
    if not valid.any():
        return superpixels
    present = np.zeros(int(superpixels.max()) + 1, dtype=bool)
    present[superpixels[valid]] = True
    new_ids = np.cumsum(present) - 1
    return np.where(valid, new_ids[np.maximum(superpixels, 0)], PAD_ID)


class TrainingDataset(Dataset):
    """A torch ``Dataset`` of images and their superpixels for dataset-level training.

    Parameters
    ----------
    dataset : ImageDataset
        The images and labels.
    cache : SuperpixelCache
        Superpixels of exactly these images (same name, split, size and ids).
    crop_size : int or (int, int), optional
        Random crop ``(height, width)``; None keeps whole images. Images smaller than
        the crop are padded (image 0, superpixels -1).
    flip : bool
        Random horizontal flip with probability 1/2.
    seed : int
        With the epoch (:meth:`set_epoch`) and the index, fixes each item's crop and flip.

    Notes
    -----
    Each item is a dict:

    - ``image``: float32 tensor (3, h, w), min-max normalised to [0, 1] over the whole
      image (before cropping), as :func:`unsupseg.io.as_rgb_float`.
    - ``superpixels``: int64 tensor (h, w), ids 0..n-1 within this item, -1 for padding.
    - ``target``: int64 class index (-1 when unknown or the data set has no labels), or
      for multi-label data sets a float32 multi-hot vector (zeros when unknown).
    - ``index``: int, the image's index in ``dataset``.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        cache: SuperpixelCache,
        crop_size: int | Sequence[int] | None = None,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        if not isinstance(cache, SuperpixelCache):
            raise TypeError(f"cache must be a SuperpixelCache; got {type(cache).__name__}")
        if not cache.matches(dataset):
            raise ValueError(
                f"{cache!r} was built for other images than {dataset!r} "
                "(name, split, image size or ids differ)"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0; got {seed!r}")
        self.dataset = dataset
        self.cache = cache
        self.crop_size = parse_image_size(crop_size)
        self.flip = bool(flip)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops and flips the items get (call before each epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0; got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int; got {type(index).__name__}")
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index = int(index)
        image = as_rgb_float(self.dataset.image(index))
        superpixels = np.asarray(self.cache[index], dtype=np.int64)
        if image.shape[:2] != superpixels.shape:
            raise ValueError(
                f"image {index} ({self.dataset.image_id(index)}) is {image.shape[:2]} but its "
                f"cached superpixels are {superpixels.shape}; rebuild the cache"
            )
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, superpixels = crop_and_flip(image, superpixels, rng, self.crop_size, self.flip)
        if self.crop_size is not None:
            superpixels = _renumber(superpixels)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "superpixels": torch.from_numpy(np.ascontiguousarray(superpixels)),
            "target": self._target(index),
            "index": index,
        }

    def _target(self, index: int) -> torch.Tensor:
        label = self.dataset.label(index)
        if self.dataset.multilabel:
            if label is None:
                return torch.zeros(self.dataset.n_classes or 0, dtype=torch.float32)
            return torch.as_tensor(np.asarray(label, dtype=np.float32))
        return torch.tensor(-1 if label is None else int(label), dtype=torch.int64)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch :class:`TrainingDataset` items, padding to the largest height and width.

    Parameters
    ----------
    items : sequence of dict
        Items with ``image`` (3, h, w), ``superpixels`` (h, w), ``target`` and ``index``.

    Returns
    -------
    batch : dict of tensors
        ``image`` float32 (B, 3, H, W) padded with 0 at the bottom and right;
        ``superpixels`` int64 (B, H, W) padded with -1; ``target`` stacked; ``index``
        int64 (B,); ``size`` int64 (B, 2), each item's (h, w) before padding.

    Examples
    --------
    >>> loader = DataLoader(train_set, batch_size=4, collate_fn=collate)  # doctest: +SKIP
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    sizes = [tuple(item["superpixels"].shape) for item in items]
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    batch = len(items)
    channels = items[0]["image"].shape[0]
    images = torch.zeros((batch, channels, height, width), dtype=items[0]["image"].dtype)
    superpixels = torch.full((batch, height, width), PAD_ID, dtype=torch.int64)
    for i, item in enumerate(items):
        h, w = sizes[i]
        images[i, :, :h, :w] = item["image"]
        superpixels[i, :h, :w] = item["superpixels"]
    return {
        "image": images,
        "superpixels": superpixels,
        "target": torch.stack([torch.as_tensor(item["target"]) for item in items]),
        "index": torch.as_tensor([int(item["index"]) for item in items], dtype=torch.int64),
        "size": torch.as_tensor(sizes, dtype=torch.int64),
    }
