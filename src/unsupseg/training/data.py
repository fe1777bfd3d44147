"""The images a run trains and validates on, and the batches Lightning draws from them.

:func:`open_training_sets` opens the training and validation images of a
:class:`~unsupseg.training.config.TrainConfig`; :class:`SegmentationDataModule` pairs
them with their cached superpixels and hands out batches whose order and augmentation
depend on ``(seed, epoch)`` alone (:class:`EpochSampler`), so a resumed or multi-process
run sees exactly the batches of an uninterrupted one.

Why not Lightning's ``DistributedSampler``: it yields bare indices, so a DataLoader
worker (persistent across epochs) could not know which epoch's crop and flip to draw;
its order comes from ``torch.randperm`` seeded with ``seed + epoch``, not the
``numpy.random.default_rng([seed, epoch])`` permutation earlier runs were trained with;
and for validation it pads the shards by repeating images, which would count them twice
in the validation means. :class:`EpochSampler` carries the epoch with every index,
keeps the order of a single process, and pads only the training shards.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from unsupseg.data import (
    DATA_LAYOUTS,
    HOLDOUT_EVERY,
    ImageDataset,
    SuperpixelCache,
    TrainingDataset,
    collate,
    first_images,
    open_dataset,
    split_holdout,
)
from unsupseg.errors import ConfigError, DatasetError
from unsupseg.io import as_rgb_float
from unsupseg.models import Preset
from unsupseg.training.config import TrainConfig

__all__ = [
    "EpochItems",
    "EpochSampler",
    "SegmentationDataModule",
    "check_labels",
    "open_training_sets",
]


def open_training_sets(config: TrainConfig) -> tuple[ImageDataset, ImageDataset | None, str]:
    """The training and validation images of a run.

    Parameters
    ----------
    config : TrainConfig
        Resolved (:func:`~unsupseg.training.config.resolve_config`).

    Returns
    -------
    train, val : ImageDataset
        ``val`` None without validation.
    description : str
        Where validation comes from, for the log and config.json.

    Raises
    ------
    DatasetError
        When a split is missing or not in the expected layout (the message names it).
    ConfigError
        For ``val_split="holdout"`` on another data set than MSRC-v2.

    Notes
    -----
    MSRC-v2 on this project's machines is one half of the database, with no split
    files: validation (``val_split == "holdout"``) is then every 5th image of it (ids in
    manifest order, starting with the first) and training uses the other 4 of every 5
    (:func:`unsupseg.data.split_holdout`).
    """
    name, root, size = config.dataset, config.data_root, config.image_size
    try:
        train = open_dataset(name, root, config.split, size)
        val, description = None, "none"
        if config.val_split == "holdout":
            if name == "msrc" and (Path(root) / "splits" / "val.txt").is_file():
                val = open_dataset(name, root, "val", size)
                description = f"{name} split 'val'"
            elif name == "msrc":
                train, val = split_holdout(train)
                description = (
                    f"every {HOLDOUT_EVERY}th image of {name} '{config.split}' "
                    f"({len(val)} images, held out of training, which keeps {len(train)})"
                )
            else:
                raise ConfigError("--val-split holdout is only defined for msrc")
        elif config.val_split is not None:
            val = open_dataset(name, root, config.val_split, size)
            description = f"{name} split {config.val_split!r}"
    except DatasetError as exc:
        raise DatasetError(f"{exc} (expected layout: {DATA_LAYOUTS[name]})") from None
    train = first_images(train, config.limit)
    if val is not None:
        val = first_images(val, config.val_limit)
    return train, val, description


def check_labels(preset: Preset, train: ImageDataset) -> None:
    """Refuse a classifier preset whose head does not fit the data set's labels.

    Raises
    ------
    ConfigError
        When the data set has no image-level labels, labels of the other kind (single-
        or multi-label), or more classes than the head has outputs.
    """
    if preset.architecture != "classifier":
        return
    outputs = preset.classifier_outputs
    if train.n_classes is None:
        raise ConfigError(
            f"the classifier architecture trains on image-level labels, and {train.name} has "
            "none; use a base or autoencoder preset, or a labelled data set"
        )
    if bool(train.multilabel) != bool(preset.multi_label):
        kind = "multi-label" if train.multilabel else "single-label"
        raise ConfigError(
            f"preset {preset.name} expects {'multi' if preset.multi_label else 'single'}-label "
            f"targets but {train.name} is {kind}; choose a classifier preset of that kind"
        )
    if train.multilabel and train.n_classes != outputs:
        raise ConfigError(
            f"{train.name} has {train.n_classes} classes but preset {preset.name} has "
            f"{outputs} outputs"
        )
    if not train.multilabel and train.n_classes > outputs:
        raise ConfigError(
            f"{train.name} has {train.n_classes} classes but preset {preset.name} only "
            f"{outputs} outputs"
        )


class EpochSampler(Sampler):
    """Indices of one epoch as ``(epoch, index)`` pairs, from ``(seed, epoch)`` alone.

    The order is a permutation drawn from ``numpy.random.default_rng([seed, epoch])``
    (or the identity when ``shuffle`` is False). With several processes, each rank takes
    every ``world_size``-th index of it; for training the list is first padded by
    repeating its start so every rank gets the same number of batches (as
    ``DistributedSampler``). The epoch travels with each index, so DataLoader workers
    (persistent or not) crop and flip for the right epoch.

    A run resumed from a checkpoint written within an epoch calls :meth:`resume_at`:
    that epoch's iteration then starts after the indices already trained on, while
    ``len()`` stays the whole epoch's (Lightning counts the batches done itself).
    """

    def __init__(
        self,
        n: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        if n < 1:
            raise ValueError("cannot sample from an empty data set")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.pad = pad or n < world_size
        self.epoch = 0
        self.skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch."""
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, done: int) -> None:
        """Leave out the first ``done`` indices (of this rank) when iterating ``epoch``.

        Parameters
        ----------
        epoch : int
            The epoch a checkpoint was written in (from 0, as :meth:`set_epoch`).
        done : int
            Indices of this rank already trained on in that epoch: the batches done
            times the batch size.
        """
        if epoch < 0 or done < 0:
            raise ValueError(f"epoch and done must be >= 0; got {epoch}, {done}")
        self.skip = (int(epoch), int(done))

    def _indices(self) -> list[int]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist()
        else:
            order = list(range(self.n))
        if self.pad:
            total = math.ceil(self.n / self.world_size) * self.world_size
            order = (order * math.ceil(total / self.n))[:total]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self._indices()
        if self.skip is not None and self.skip[0] == self.epoch:
            indices = indices[self.skip[1] :]
        return iter([(self.epoch, index) for index in indices])

    def __len__(self) -> int:
        return len(self._indices())


class EpochItems(Dataset):
    """A :class:`TrainingDataset` indexed by ``(epoch, index)`` (see :class:`EpochSampler`)."""

    def __init__(self, items: TrainingDataset) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, index = key
        self.items.set_epoch(epoch)
        return self.items[index]


class SegmentationDataModule(L.LightningDataModule):
    """Training (and validation) images with their cached superpixels.

    Parameters
    ----------
    train_set, val_set : ImageDataset, optional
        ``val_set`` None: no validation.
    crop_size : int, optional
        Random training crops; None keeps whole images. Validation always sees whole
        images, unflipped.
    batch_size, num_workers : int
    seed : int
        Fixes the order and augmentation of every epoch.
    n_segments, compactness : SLIC parameters of the cache (None: scaled to image size).
    cache_dir : path, optional
        Superpixel cache folder (default :func:`unsupseg.data.default_cache_dir`).
    slic_workers : int, optional
        Processes that build the cache.
    progress : bool
        Progress bar while building the cache.

    Notes
    -----
    The caches are built in :meth:`prepare_data`, which Lightning runs on one process
    per machine before the others open them.

    Its state in a Lightning checkpoint (:meth:`state_dict`) is where the training
    batches stood: the epoch and the batches done in it. A run resumed from a checkpoint
    written within an epoch continues that epoch with its next batch, not its first:
    Lightning restores its own counters, but a plain DataLoader would start over.
    """

    def __init__(
        self,
        train_set: ImageDataset,
        val_set: ImageDataset | None = None,
        *,
        crop_size: int | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        n_segments: int | None = None,
        compactness: float | None = None,
        cache_dir: str | os.PathLike | None = None,
        slic_workers: int | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        self.train_set, self.val_set = train_set, val_set
        self.crop_size = crop_size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed = seed
        self.cache_options = {
            "n_segments": n_segments,
            "compactness": compactness,
            "cache_dir": cache_dir,
            "workers": slic_workers,
            "progress": progress,
        }
        self.train_items: TrainingDataset | None = None
        self.val_items: TrainingDataset | None = None
        #: ``(epoch, batches done)`` of the checkpoint resumed from, if any.
        self.resume_position: tuple[int, int] | None = None

    def _sets(self) -> list[ImageDataset]:
        return [s for s in (self.train_set, self.val_set) if s is not None]

    def prepare_data(self) -> None:
        for dataset in self._sets():
            SuperpixelCache(dataset, **self.cache_options)

    def setup(self, stage: str | None = None) -> None:
        if self.train_items is None:
            cache = SuperpixelCache(self.train_set, **self.cache_options)
            self.train_items = TrainingDataset(
                self.train_set, cache, crop_size=self.crop_size, flip=True, seed=self.seed
            )
        if self.val_set is not None and self.val_items is None:
            cache = SuperpixelCache(self.val_set, **self.cache_options)
            self.val_items = TrainingDataset(self.val_set, cache, crop_size=None, flip=False)

    def state_dict(self) -> dict[str, Any]:
        """Where the training batches stand: ``epoch`` (from 0) and ``batches`` done in it."""
        if self.trainer is None:
            return {}
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(self.trainer.current_epoch), "batches": int(progress.processed)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "epoch" in state_dict and "batches" in state_dict:
            self.resume_position = (int(state_dict["epoch"]), int(state_dict["batches"]))

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _next_epoch(self) -> int:
        """The epoch the training loader is first iterated in. Lightning sets the
        sampler's epoch only after creating the first iterator, which with workers
        already draws indices; on resume that epoch is not 0."""
        if self.trainer is None:
            return 0
        return int(self.trainer.fit_loop.epoch_progress.current.processed)

    def _loader(self, items: TrainingDataset, train: bool) -> DataLoader:
        rank, world = self._rank_and_world()
        sampler = EpochSampler(
            len(items), shuffle=train, seed=self.seed, rank=rank, world_size=world, pad=train
        )
        if train:
            sampler.set_epoch(self._next_epoch())
            if self.resume_position is not None:
                epoch, batches = self.resume_position
                sampler.resume_at(epoch, batches * self.batch_size)
        return DataLoader(
            EpochItems(items),
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # its own generator: creating an iterator must not draw from the global one
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_items, train=True)

    def val_dataloader(self) -> DataLoader | list:
        self.setup("fit")
        if self.val_items is None:
            return []
        return self._loader(self.val_items, train=False)

    def sample_items(self, count: int = 4) -> list[dict[str, Any]]:
        """The fixed images of the figures: the first ``count`` validation images (or
        training images without validation), whole and unaugmented.

        Returns
        -------
        list of dict
            ``id``, ``image`` (H, W, 3) float32 in [0, 1] and ``superpixels`` (H, W) int64.
        """
        self.setup("fit")
        items = self.val_items if self.val_items is not None else self.train_items
        samples = []
        for index in range(min(count, len(items))):
            samples.append(
                {
                    "id": items.dataset.image_id(index),
                    "image": as_rgb_float(items.dataset.image(index)).astype(np.float32),
                    "superpixels": np.asarray(items.cache[index], dtype=np.int64),
                }
            )
        return samples
