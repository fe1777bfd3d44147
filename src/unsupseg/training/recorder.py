"""What a run leaves behind: metrics.csv, TensorBoard scalars, figures, checkpoints.

:class:`TrainingRecorder` is a Lightning callback; only the first process writes files,
every process takes part in the reductions. :func:`checkpoint_info` builds the record
every checkpoint carries (:class:`~unsupseg.models.checkpoint.CheckpointInfo`), and the
plain checkpoints (``model-last.pt``, ``model-best.pt``) are written here; the Lightning
checkpoints through :class:`AtomicCheckpointIO`: ``last.ckpt`` by :class:`LastCheckpoint`,
``best.ckpt`` by Lightning's ``ModelCheckpoint``.

Why not ``ModelCheckpoint(save_last=True)`` for ``last.ckpt``: with ``save_top_k=0`` it
saves "last" only after it has saved another checkpoint at the same step, which it never
does, so ``last.ckpt`` appeared only when training ended and a killed run could not be
resumed.

Why not Lightning's ``CSVLogger`` for ``metrics.csv``: it writes one column per logged
name, sorted alphabetically, with its own ``step`` column, so the fixed columns
``epoch, step, split, ...`` with one row per epoch and split cannot be kept; it writes
floats as ``repr`` instead of 6 significant digits, appends without an atomic rename,
and deletes an existing ``metrics.csv`` when it starts, while a resumed run must keep
the rows of the epochs its checkpoint holds and drop those of an epoch cut short.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from unsupseg.algorithm import channel_argmax
from unsupseg.data import ImageDataset
from unsupseg.io import atomic_file
from unsupseg.models import get_preset
from unsupseg.models.checkpoint import CheckpointInfo
from unsupseg.outputs import library_versions
from unsupseg.run_folder import METRICS_NAME, read_metrics, write_metrics
from unsupseg.training.config import TrainConfig
from unsupseg.training.figures import (
    AUX_LABELS,
    save_loss_curves,
    save_merging_strip,
    save_sample_panels,
    save_unique_labels_curve,
)

log = logging.getLogger("unsupseg")

__all__ = [
    "AtomicCheckpointIO",
    "LastCheckpoint",
    "TrainingRecorder",
    "checkpoint_info",
    "plain_checkpoint",
    "predict_samples",
    "save_atomically",
    "training_versions",
]

_TERMS = ("loss", "loss_seg", "loss_aux", "unique_labels")


def training_versions() -> dict[str, str]:
    """Library versions of a run: :func:`unsupseg.outputs.library_versions` plus
    Lightning and TensorBoard when installed, all plain strings."""
    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses
    versions = {name: str(version) for name, version in library_versions().items()}
    for package in ("lightning", "tensorboard"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def checkpoint_info(
    config: TrainConfig, train_set: ImageDataset, validation: str | None
) -> CheckpointInfo:
    """The record every checkpoint of a run carries besides the weights.

    Parameters
    ----------
    config : TrainConfig
        Resolved (:func:`~unsupseg.training.config.resolve_config`).
    train_set : ImageDataset
        The training images (their name, count and classes are recorded).
    validation : str or None
        Where validation comes from (:func:`~unsupseg.training.data.open_training_sets`).

    Returns
    -------
    CheckpointInfo
        Without ``epoch``, ``global_step`` and ``metrics``, which each checkpoint adds.
    """
    preset = get_preset(config.preset)
    if config.refine == "superpixel-vote":
        refine = {
            "method": "superpixel-vote",
            "n_segments": config.slic_segments,
            "compactness": config.slic_compactness,
        }
    else:
        refine = {
            "method": "label-slic",
            "n_segments": config.label_slic_segments,
            "compactness": config.label_slic_compactness,
        }
    return CheckpointInfo(
        preset=preset.name,
        architecture=preset.architecture,
        dataset=preset.dataset,
        q=int(config.q),
        model_overrides={"q": int(config.q), "padding": config.padding},
        image_size=config.image_size,
        crop_size=config.crop_size,
        multi_label=bool(preset.multi_label),
        n_classes=train_set.n_classes,
        class_names=None if train_set.class_names is None else list(train_set.class_names),
        refine=refine,
        slic={
            "n_segments": config.slic_segments,
            "compactness": config.slic_compactness,
            "note": "SLIC of the images; n_segments None: scaled to the image size",
        },
        seed=config.seed,
        trained_on={"dataset": train_set.name, "split": config.split, "images": len(train_set)},
        validation=validation,
        settings=config.settings(),
        versions=training_versions(),
    )


def plain_checkpoint(
    model: torch.nn.Module, info: CheckpointInfo, epoch: int, step: int, metrics: dict
) -> dict[str, Any]:
    """A plain checkpoint: the record with its progress, and the weights on the CPU."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    progress = dataclasses.replace(info, epoch=epoch, global_step=step, metrics=metrics)
    return {**progress.to_dict(), "state_dict": state}


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, flushed to disk, then renamed into place: a
    process killed at any point leaves the previous file whole."""
    with atomic_file(path, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())


def predict_samples(module: Any, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Argmax, refined labels and reconstruction of each sample image (eval mode).

    Parameters
    ----------
    module : SegmentationModule
        Its ``model`` predicts and its ``refinement`` draws the refined labels.
    samples : list of dict
        ``id``, ``image`` (H, W, 3) float32 and ``superpixels`` (H, W) int64.
    """
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
                argmax = channel_argmax(out.response)
                refined = module.refinement(argmax, superpixels.to(argmax.device))
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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file, then renamed into place."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        save_atomically(checkpoint, Path(path))


class LastCheckpoint(Checkpoint):
    """Writes the Lightning checkpoint ``last.ckpt`` to resume from.

    At the end of every training epoch and, with ``every_n_steps``, every N optimiser
    steps within an epoch (not on its last batch: the epoch's end follows). It is a
    :class:`~lightning.pytorch.callbacks.Checkpoint`, so Lightning calls it after the
    other callbacks: the checkpoint holds their state of the same step (the recorder's
    rows and sums, the best checkpoint's score).

    Parameters
    ----------
    path : Path
        ``checkpoints/last.ckpt`` of the run folder.
    every_n_steps : int
        0: at epoch ends only.
    """

    def __init__(self, path: Path, every_n_steps: int = 0) -> None:
        super().__init__()
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps < 1 or trainer.global_step % self.every_n_steps:
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # on_train_epoch_end writes it, with the epoch's rows
        trainer.save_checkpoint(self.path)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        trainer.save_checkpoint(self.path)


class _Sums:
    """Image-weighted sums of the loss terms, reduced over processes on demand."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        n = terms["n_images"].detach().float()
        values = [terms[key].detach().float() * n for key in _TERMS]
        vector = torch.stack([*values, n])
        if self.total is None:
            self.total = vector
        else:
            self.total = self.total.to(vector.device) + vector

    def state(self, trainer: Any) -> torch.Tensor | None:
        """The sums so far over all processes (every process must call it), on the CPU;
        None on the other processes, so that restoring them everywhere counts once."""
        total = self.total
        if trainer is not None and trainer.world_size > 1:
            if total is None:
                total = torch.zeros(len(_TERMS) + 1)
            device = trainer.strategy.root_device
            total = trainer.strategy.reduce(total.to(device), reduce_op="sum")
            if not trainer.is_global_zero:
                return None
        return None if total is None else total.detach().cpu().clone()

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
    Its state is saved in the Lightning checkpoint: the best score, the elapsed
    seconds and, for a checkpoint written within an epoch, what that epoch has summed
    and logged so far, so a run resumed from it writes the rows of an uninterrupted one.

    Parameters
    ----------
    out : Path
        The run folder.
    info : CheckpointInfo
        The record of the plain checkpoints (:func:`checkpoint_info`).
    has_val : bool
        Whether the run validates; the best checkpoint then has the lowest validation
        loss (``val/loss``), else the lowest training loss (``train/loss``).
    log_every : int
        A ``train_step`` row every N optimiser steps.
    figures_every : int
        Panels and the merging strip every N epochs, and after the last.
    samples : callable
        Returns the images of the figures (``SegmentationDataModule.sample_items``);
        called once, when first needed.
    """

    def __init__(
        self,
        out: Path,
        info: CheckpointInfo,
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
        #: Rows in metrics.csv: those after it belong to the running epoch.
        self.written = 0
        self.pending_rows: list[dict[str, Any]] = []
        self._trainer: Any = None

    # -- state for resume ----------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "elapsed": self.seconds(),
            # the running epoch, for a checkpoint written within it
            "epoch_lr": self.epoch_lr,
            "train_sums": self.train_sums.state(self._trainer),
            "window": self.window.state(self._trainer),
            "pending_rows": [dict(row) for row in self.rows[self.written :]],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.elapsed_before = float(state_dict.get("elapsed", 0.0))
        self.epoch_lr = float(state_dict.get("epoch_lr", math.nan))
        self.train_sums.total = state_dict.get("train_sums")
        self.window.total = state_dict.get("window")
        self.pending_rows = list(state_dict.get("pending_rows", []))

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
        predictions = predict_samples(module, samples)
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
        # the rows of the epochs the checkpoint holds (those of an epoch cut short go),
        # then those its running epoch had logged when it was written
        metrics = self.out / METRICS_NAME
        rows = read_metrics(metrics) if metrics.is_file() else []
        self.rows = [r for r in rows if r["epoch"] <= done]
        self.written = len(self.rows)
        self.rows += [r for r in self.pending_rows if r["epoch"] == done + 1]
        self.pending_rows = []
        if trainer.global_step == 0:
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
        step = int(trainer.global_step)
        plain = plain_checkpoint(pl_module.model, self.info, epoch, step, metrics)
        save_atomically(plain, checkpoints / "model-last.pt")
        if improved:
            save_atomically(plain, checkpoints / "model-best.pt")
        write_metrics(self.out / METRICS_NAME, self.rows)
        self.written = len(self.rows)
        aux_label = AUX_LABELS.get(self.info.architecture, "auxiliary loss")
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
