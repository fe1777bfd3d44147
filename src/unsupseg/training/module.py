"""Dataset-level training as a PyTorch Lightning module.

:class:`SegmentationModule` holds the whole method in
:meth:`~SegmentationModule.compute_losses`, readable top to bottom::

    out = model(x)                                   # response r (B, q, H, W) [+ head]
    loss_seg, argmax, target = self_training_loss(   # argmax, refine (padding masked),
        out.response, superpixels, refinement)       # cross-entropy
    loss_aux = CE(logits, class) | BCE(logits, multi-hot) | MSE(reconstruction, x)
    loss = loss_seg + aux_weight * loss_aux

The step "forward, argmax, refine, cross-entropy" is :func:`unsupseg.algorithm.
self_training_loss`, the same function per-image optimisation and fine-tuning call.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unsupseg.algorithm import (
    LABEL_SLIC_COMPACTNESS,
    LABEL_SLIC_SEGMENTS,
    Refinement,
    self_training_loss,
)
from unsupseg.models.checkpoint import CheckpointInfo
from unsupseg.training.config import OPTIMIZERS

__all__ = ["SegmentationModule", "count_unique_labels", "step_seed"]


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
        How the argmax becomes a target (:class:`unsupseg.algorithm.Refinement`).
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

    Attributes
    ----------
    refinement : Refinement
        The target of the segmentation loss; also draws the figures' "SLIC output".
    checkpoint_info : CheckpointInfo or None
        Stored as ``checkpoint["unsupseg"]`` in the Lightning checkpoints, so that
        :func:`unsupseg.load_checkpoint` can rebuild the model from them.
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
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
        self.model = model
        self.q = int(model.q)
        self.refinement = Refinement(
            self.q,
            refine,
            label_slic_segments=int(label_slic_segments),
            label_slic_compactness=float(label_slic_compactness),
        )
        self.aux_weight = float(aux_weight)
        self.multi_label = bool(multi_label)
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.lr_step_size = int(lr_step_size)
        self.lr_gamma = float(lr_gamma)
        self.seed = int(seed)
        self.checkpoint_info: CheckpointInfo | None = None

    # -- the algorithm -------------------------------------------------------------------

    def forward(self, image: torch.Tensor) -> Any:
        return self.model(image)

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

        Parameters
        ----------
        batch : dict
            ``image`` (B, 3, H, W), ``superpixels`` (B, H, W) int64 (negative on
            padding) and ``target`` (class ids or multi-hot), as
            :func:`unsupseg.data.collate` makes them.

        Returns
        -------
        dict
            ``loss`` (with gradient), and detached ``loss_seg``, ``loss_aux`` (NaN for
            ``base``), ``unique_labels`` (mean distinct argmax labels per image, padding
            ignored) and ``n_images``.
        """
        image, superpixels = batch["image"], batch["superpixels"]
        out = self.model(image)
        loss_seg, argmax, _ = self_training_loss(out.response, superpixels, self.refinement)
        valid = superpixels >= 0
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
            # epoch, global_step and metrics: Lightning's own keys say where it stands
            checkpoint["unsupseg"] = self.checkpoint_info.to_dict(progress=False)

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
