"""What every dataset-level model returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ModelOutput:
    """Output of a dataset-level model's ``forward``.

    Attributes
    ----------
    response : Tensor, shape (B, q, H, W)
        The FCN's response map ``r``; its argmax over ``q`` is the label map.
    logits : Tensor, shape (B, n_classes), or None
        Image-level class scores (classifier architecture only).
    reconstruction : Tensor, shape (B, 3, H, W), or None
        The input reconstructed from ``r`` (autoencoder architecture only), at the
        input's size.
    """

    response: torch.Tensor
    logits: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
