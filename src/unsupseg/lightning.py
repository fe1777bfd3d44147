"""Dataset-level training as a PyTorch Lightning module and data module.

:class:`SegmentationModule` holds the whole algorithm of SPEC §1 in
:meth:`~SegmentationModule.compute_losses`, readable top to bottom::

    out = model(x)                                   # response r (B, q, H, W) [+ head]
    argmax = out.response.argmax(1)                  # label map c
    target = refine(argmax, superpixels)             # SLIC refinement, no gradient
    loss_seg = CE(out.response, target)              # padding pixels ignored
    loss_aux = CE(logits, class) | BCE(logits, multi-hot) | MSE(reconstruction, x)
    loss = loss_seg + aux_weight * loss_aux

:class:`SegmentationDataModule` pairs the images with their cached superpixels and
hands out batches whose order and augmentation depend on ``(seed, epoch)`` alone
(:class:`EpochSampler`), so a resumed or multi-process run sees exactly the batches of an
uninterrupted single run. :class:`TrainingRecorder` does the bookkeeping (metrics.csv,
TensorBoard, figures, plain checkpoints); :mod:`unsupseg.train` resolves the settings,
draws the figures and runs it all.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from unsupseg.data import ImageDataset, SuperpixelCache, TrainingDataset, collate
from unsupseg.io import as_rgb_float, atomic_file
from unsupseg.refine import REFINEMENTS, refine_by_label_slic, refine_by_superpixel_vote
from unsupseg.train import (
    AUX_LABELS,
    CSV_COLUMNS,
    LABEL_SLIC_COMPACTNESS,
    LABEL_SLIC_SEGMENTS,
    save_loss_curves,
    save_merging_strip,
    save_sample_panels,
    save_unique_labels_curve,
)

log = logging.getLogger("unsupseg")

__all__ = [
    "AtomicCheckpointIO",
    "TrainingRecorder",
    "IGNORE_INDEX",
    "EpochSampler",
    "SegmentationDataModule",
    "SegmentationModule",
    "count_unique_labels",
    "step_seed",
]

#: Target value of pixels that take no part in the segmentation loss (padding).
IGNORE_INDEX = -100


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed derived from ``(seed, step, rank)`` alone (for torch's generator)."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def count_unique_labels(labels: torch.Tensor, valid: torch.Tensor, q: int) -> torch.Tensor:
    """Number of distinct labels of each image, counting only valid pixels.

    Parameters
    ----------
    labels : Tensor of int64, shape (B, H, W)
        Label maps with values in ``0 .. q - 1``.
    valid : Tensor of bool, shape (B, H, W)
        False on padding.
    q : int

    Returns
    -------
    Tensor of int64, shape (B,)
    """
    batch = labels.shape[0]
    offsets = torch.arange(batch, device=labels.device).view(batch, 1, 1) * q
    keys = (labels + offsets)[valid]
    counts = torch.zeros(batch * q, dtype=torch.int32, device=labels.device)
    counts.scatter_add_(0, keys, torch.ones_like(keys, dtype=torch.int32))
    return (counts.view(batch, q) > 0).sum(dim=1)


class SegmentationModule(L.LightningModule):
    """One dataset-level model (base, classifier or autoencoder) and how it learns.

    Parameters
    ----------
    model : nn.Module
        Built by :func:`unsupseg.models.build_model`; its forward returns a
        :class:`~unsupseg.models.ModelOutput`, and it has a ``q`` attribute.
    refine : {"superpixel-vote", "label-slic"}
        How the argmax becomes a target (SPEC §1).
    label_slic_segments, label_slic_compactness : int, float
        SLIC parameters of ``label-slic`` (7 and 1e-4, the thesis code's).
    aux_weight : float
        Weight of the classifier or reconstruction loss (the segmentation loss has 1).
    multi_label : bool
        Classifier only: BCE with logits on multi-hot targets instead of cross-entropy.
    optimizer : {"sgd", "adam"}
    lr, momentum : float
        Learning rate; SGD momentum (ignored by Adam).
    lr_step_size, lr_gamma : int, float
        ``StepLR``: multiply the learning rate by ``lr_gamma`` every ``lr_step_size`` epochs.
    seed : int
        Torch's global generator (dropout) is reseeded from ``(seed, step, rank)``
        before every training step, so a resumed run draws the same dropout masks.

    Notes
    -----
    ``label-slic`` segment ids can exceed ``q - 1`` (SLIC may return more segments than
    asked for): a target id ``t`` is used as ``t mod q``, documented in
    :meth:`refine`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        refine: str = "superpixel-vote",
        label_slic_segments: int = LABEL_SLIC_SEGMENTS,
        label_slic_compactness: float = LABEL_SLIC_COMPACTNESS,
        aux_weight: float = 1.0,
        multi_label: bool = False,
        optimizer: str = "sgd",
        lr: float = 1e-3,
        momentum: float = 0.9,
        lr_step_size: int = 10,
        lr_gamma: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if refine not in REFINEMENTS:
            raise ValueError(f"refine must be one of {', '.join(REFINEMENTS)}; got {refine!r}")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
        self.model = model
        self.q = int(model.q)
        self.refine_method = refine
        self.label_slic_segments = int(label_slic_segments)
        self.label_slic_compactness = float(label_slic_compactness)
        self.aux_weight = float(aux_weight)
        self.multi_label = bool(multi_label)
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.lr_step_size = int(lr_step_size)
        self.lr_gamma = float(lr_gamma)
        self.seed = int(seed)
        #: Plain data stored as ``checkpoint["unsupseg"]`` in Lightning checkpoints, so
        #: that :func:`unsupseg.train.load_checkpoint` can rebuild the model.
        self.checkpoint_info: dict[str, Any] | None = None

    # -- the algorithm -------------------------------------------------------------------

    def forward(self, image: torch.Tensor) -> Any:
        return self.model(image)

    @torch.no_grad()
    def refine(self, argmax: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
        """Targets from the argmax: superpixel majority vote, or SLIC on the label map.

        ``label-slic`` ids are taken modulo q, so that they are valid classes when SLIC
        returns q or more segments (only possible for a small q).
        """
        if self.refine_method == "superpixel-vote":
            return refine_by_superpixel_vote(argmax, superpixels, self.q)
        ids = refine_by_label_slic(argmax, self.label_slic_segments, self.label_slic_compactness)
        return ids % self.q

    def auxiliary_loss(
        self, out: Any, batch: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> torch.Tensor | None:
        """Classification or reconstruction loss of the head; None for ``base``."""
        image = batch["image"]
        if out.logits is not None:
            logits, target = out.logits.float(), batch["target"]
            if self.multi_label:
                return F.binary_cross_entropy_with_logits(logits, target.float())
            labelled = target >= 0
            if not bool(labelled.any()):  # no image of the batch has a label
                return logits.sum() * 0.0
            return F.cross_entropy(logits[labelled], target[labelled])
        if out.reconstruction is not None:
            mask = valid.unsqueeze(1).to(image.dtype)
            squared = (out.reconstruction.float() - image) ** 2 * mask
            return squared.sum() / (mask.sum() * image.shape[1]).clamp(min=1.0)
        return None

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward pass, refinement and every loss term of one batch.

        Returns
        -------
        dict
            ``loss`` (with gradient), and detached ``loss_seg``, ``loss_aux`` (NaN for
            ``base``), ``unique_labels`` (mean distinct argmax labels per image, padding
            ignored) and ``n_images``.
        """
        image, superpixels = batch["image"], batch["superpixels"]
        valid = superpixels >= 0
        out = self.model(image)
        argmax = out.response.argmax(dim=1)
        target = self.refine(argmax, superpixels).masked_fill(~valid, IGNORE_INDEX)
        loss_seg = F.cross_entropy(out.response.float(), target, ignore_index=IGNORE_INDEX)
        loss_aux = self.auxiliary_loss(out, batch, valid)
        loss = loss_seg if loss_aux is None else loss_seg + self.aux_weight * loss_aux
        unique = count_unique_labels(argmax, valid, self.q).float().mean()
        nan = torch.full((), float("nan"), device=loss.device)
        return {
            "loss": loss,
            "loss_seg": loss_seg.detach(),
            "loss_aux": nan if loss_aux is None else loss_aux.detach(),
            "unique_labels": unique,
            "n_images": torch.tensor(float(image.shape[0]), device=loss.device),
        }

    # -- Lightning hooks -----------------------------------------------------------------

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout draws from torch's global generator: reseed it from (seed, step, rank)
        # so that a resumed run draws the same masks as an uninterrupted one.
        torch.manual_seed(step_seed(self.seed, self.global_step, self.global_rank))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        terms = self.compute_losses(batch)
        self.log("loss", terms["loss"].detach(), prog_bar=True, logger=False)
        return terms

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        terms = self.compute_losses(batch)
        terms["loss"] = terms["loss"].detach()
        return terms

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.checkpoint_info is not None:
            checkpoint["unsupseg"] = self.checkpoint_info

    def configure_optimizers(self) -> dict[str, Any]:
        params = self.model.parameters()
        if self.optimizer_name == "sgd":
            optimizer = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)
        else:
            optimizer = torch.optim.Adam(params, lr=self.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.lr_step_size, gamma=self.lr_gamma
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


# --------------------------------------------------------------------------------------
# Data


class EpochSampler(Sampler):
    """Indices of one epoch as ``(epoch, index)`` pairs, from ``(seed, epoch)`` alone.

    The order is a permutation drawn from ``numpy.random.default_rng([seed, epoch])``
    (or the identity when ``shuffle`` is False). With several processes, each rank takes
    every ``world_size``-th index of it; for training the list is first padded by
    repeating its start so every rank gets the same number of batches (as
    ``DistributedSampler``). The epoch travels with each index, so DataLoader workers
    (persistent or not) crop and flip for the right epoch.
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

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch."""
        self.epoch = int(epoch)

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
        return iter([(self.epoch, index) for index in self._indices()])

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

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, items: TrainingDataset, train: bool) -> DataLoader:
        rank, world = self._rank_and_world()
        sampler = EpochSampler(
            len(items), shuffle=train, seed=self.seed, rank=rank, world_size=world, pad=train
        )
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


# --------------------------------------------------------------------------------------
# Bookkeeping: metrics.csv, TensorBoard, figures and plain checkpoints


_TERMS = ("loss", "loss_seg", "loss_aux", "unique_labels")


def _plain_checkpoint(
    module: Any, info: dict[str, Any], epoch: int, step: int, metrics: dict[str, Any]
) -> dict[str, Any]:
    state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    return {**info, "epoch": epoch, "global_step": step, "metrics": metrics, "state_dict": state}


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_file(path, "wb") as handle:
        torch.save(obj, handle)


def _predict_samples(module: Any, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Argmax, refined labels and reconstruction of each sample image (eval mode)."""
    model = module.model
    was_training = model.training
    model.eval()
    results = []
    try:
        with torch.no_grad():
            for sample in samples:
                x = torch.from_numpy(sample["image"].transpose(2, 0, 1).copy())
                x = x.unsqueeze(0).to(module.device, torch.float32)
                superpixels = torch.from_numpy(sample["superpixels"]).unsqueeze(0)
                out = model(x)
                argmax = out.response.argmax(dim=1)
                refined = module.refine(argmax, superpixels.to(argmax.device))
                reconstruction = None
                if out.reconstruction is not None:
                    rec = out.reconstruction[0].float().clamp(0, 1).permute(1, 2, 0)
                    reconstruction = rec.cpu().numpy()
                results.append(
                    {
                        "id": sample["id"],
                        "image": sample["image"],
                        "argmax": argmax[0].cpu().numpy().astype(np.int64),
                        "refined": refined[0].cpu().numpy().astype(np.int64),
                        "reconstruction": reconstruction,
                    }
                )
    finally:
        model.train(was_training)
    return results


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {"split": raw["split"]}
            row["epoch"], row["step"] = int(raw["epoch"]), int(raw["step"])
            for key in (*_TERMS, "lr", "seconds"):
                row[key] = float(raw[key]) if raw.get(key) not in (None, "") else math.nan
            rows.append(row)
    return rows


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_file(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            values = []
            for key in CSV_COLUMNS:
                value = row[key]
                if isinstance(value, float):
                    value = "" if not math.isfinite(value) else f"{value:.6g}"
                values.append(value)
            writer.writerow(values)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file, then renamed into place."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        _save_torch(checkpoint, Path(path))


class _Sums:
    """Image-weighted sums of the loss terms, reduced over processes on demand."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        n = terms["n_images"].detach().float()
        values = [terms[key].detach().float() * n for key in _TERMS]
        vector = torch.stack([*values, n])
        self.total = vector if self.total is None else self.total + vector

    def mean(self, trainer: Any, device: torch.device) -> dict[str, float] | None:
        """Means over all processes' images (every process must call it)."""
        total = self.total if self.total is not None else torch.zeros(len(_TERMS) + 1)
        total = trainer.strategy.reduce(total.to(device), reduce_op="sum")
        self.total = None
        n = float(total[-1])
        if n <= 0:
            return None
        return {key: float(total[i]) / n for i, key in enumerate(_TERMS)}


class TrainingRecorder(Callback):
    """Writes metrics.csv, TensorBoard scalars, figures and the plain checkpoints.

    Only the first process writes files; every process takes part in the reductions.
    Its state (best score, elapsed seconds) is saved in the Lightning checkpoint.
    """

    def __init__(
        self,
        out: Path,
        info: dict[str, Any],
        *,
        has_val: bool,
        log_every: int,
        figures_every: int,
        samples: Callable[[], list[dict[str, Any]]],
    ) -> None:
        super().__init__()
        self.out = out
        self.info = info
        self.has_val = has_val
        self.log_every = log_every
        self.figures_every = figures_every
        self.samples_factory = samples
        self.monitor = "val/loss" if has_val else "train/loss"
        self.best: float | None = None
        self.elapsed_before = 0.0
        self.started = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.train_sums, self.window, self.val_sums = _Sums(), _Sums(), _Sums()
        self.val_means: dict[str, float] | None = None
        self._samples: list[dict[str, Any]] | None = None
        self.epoch_lr = self.batch_lr = math.nan

    # -- state for resume ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "elapsed": self.seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.elapsed_before = float(state_dict.get("elapsed", 0.0))

    def seconds(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    # -- helpers -------------------------------------------------------------------------

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    @staticmethod
    def _lr(trainer: Any) -> float:
        return float(trainer.optimizers[0].param_groups[0]["lr"])

    def _row(self, trainer: Any, split: str, epoch: int, means: dict[str, float]) -> dict[str, Any]:
        lr = self.batch_lr if split == "train_step" else self.epoch_lr
        row = {"epoch": epoch, "step": int(trainer.global_step), "split": split, **means}
        row.update(lr=lr, seconds=self.seconds())
        self.rows.append(row)
        if trainer.logger is not None:
            scalars = {
                f"{split}/{key}": value for key, value in means.items() if math.isfinite(value)
            }
            if split != "train_step":
                scalars[f"{split}/lr"] = row["lr"]
            trainer.logger.log_metrics(
                scalars, step=row["step"] if split == "train_step" else epoch
            )
        return row

    def _samples_list(self) -> list[dict[str, Any]]:
        if self._samples is None:
            self._samples = self.samples_factory()
        return self._samples

    def _snapshot(self, module: Any, epoch: int, panels: bool) -> None:
        samples = self._samples_list()
        if not samples:
            return
        predictions = _predict_samples(module, samples)
        snap_dir = self.figures / "snapshots"
        snap_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(snap_dir / f"epoch{epoch:03d}.npz", "wb") as handle:
            np.savez_compressed(
                handle,
                **{f"image{i}": p["argmax"].astype(np.int32) for i, p in enumerate(predictions)},
            )
        if panels:
            save_sample_panels(self.figures / f"panel_epoch{epoch:03d}.png", predictions, epoch)
        snapshots: dict[int, list[np.ndarray]] = {}
        for file in sorted(snap_dir.glob("epoch*.npz")):
            number = int(file.stem.removeprefix("epoch"))
            if number <= epoch:
                with np.load(file) as data:
                    snapshots[number] = [data[f"image{i}"] for i in range(len(predictions))]
        save_merging_strip(self.figures / "merging.png", [s["image"] for s in samples], snapshots)

    # -- hooks ---------------------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.started = time.perf_counter()
        if not trainer.is_global_zero:
            return
        done = int(trainer.current_epoch)
        self.rows = [r for r in _read_metrics(self.out / "metrics.csv") if r["epoch"] <= done]
        if done == 0:
            self._snapshot(pl_module, 0, panels=False)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.train_sums, self.window = _Sums(), _Sums()
        self.epoch_lr = self._lr(trainer)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        # Lightning steps an epoch scheduler before the last batch's on_train_batch_end:
        # record the learning rate this batch is trained with.
        self.batch_lr = self._lr(trainer)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.train_sums.add(outputs)
        self.window.add(outputs)
        if trainer.global_step % self.log_every == 0:
            means = self.window.mean(trainer, pl_module.device)
            if trainer.is_global_zero and means is not None:
                self._row(trainer, "train_step", trainer.current_epoch + 1, means)

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.val_sums = _Sums()

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.val_sums.add(outputs)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self.val_means = self.val_sums.mean(trainer, pl_module.device)
        if self.val_means is not None:
            pl_module.log("val/loss", self.val_means["loss"], logger=False, sync_dist=False)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch + 1
        train_means = self.train_sums.mean(trainer, pl_module.device)
        if train_means is not None:
            pl_module.log("train/loss", train_means["loss"], logger=False, sync_dist=False)
        val_means, self.val_means = self.val_means, None
        score_source = val_means if self.has_val else train_means
        score = None if score_source is None else score_source["loss"]
        improved = score is not None and (self.best is None or score < self.best)
        if improved:
            self.best = score
        if not trainer.is_global_zero:
            return
        if train_means is not None:
            self._row(trainer, "train", epoch, train_means)
        if val_means is not None:
            self._row(trainer, "val", epoch, val_means)
        metrics = {
            "train": train_means,
            "val": val_means,
            "monitor": self.monitor,
            "score": score,
        }
        checkpoints = self.out / "checkpoints"
        plain = _plain_checkpoint(pl_module, self.info, epoch, int(trainer.global_step), metrics)
        _save_torch(plain, checkpoints / "model-last.pt")
        if improved:
            _save_torch(plain, checkpoints / "model-best.pt")
        _write_metrics(self.out / "metrics.csv", self.rows)
        aux_label = AUX_LABELS.get(self.info.get("architecture", ""), "auxiliary loss")
        save_loss_curves(self.figures / "loss_curves.png", self.rows, aux_label)
        save_unique_labels_curve(self.figures / "unique_labels.png", self.rows)
        last_epoch = epoch == trainer.max_epochs
        if epoch % self.figures_every == 0 or last_epoch:
            self._snapshot(pl_module, epoch, panels=True)
        message = f"epoch {epoch}/{trainer.max_epochs}: train loss {_fmt(train_means)}"
        if val_means is not None:
            message += f", val loss {_fmt(val_means)}"
        log.info(message)


def _fmt(means: dict[str, float] | None) -> str:
    if means is None:
        return "-"
    return f"{means['loss']:.4f} ({means['unique_labels']:.1f} labels/image)"
