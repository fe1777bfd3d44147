"""The method in one place: forward, argmax, refine, loss.

Every optimisation in unsupseg, per-image (:mod:`unsupseg.per_image`), fine-tuning a
trained model (:mod:`unsupseg.inference`), dataset-level training
(:mod:`unsupseg.training`) and the speed benchmark, computes its loss here::

    response = model(x)                              # r: (B, q, H, W)
    argmax = response.argmax(1)                      # c: (B, H, W), no gradient
    target = refine(argmax, superpixels)             # superpixel vote or label-SLIC
    target[superpixels < 0] = IGNORE_INDEX           # padding takes no part
    loss = cross_entropy(response, target)

(Kanezaki, ICASSP 2018, and the thesis' label-SLIC.) The TIP 2020 variant takes the
argmax itself as the target and adds a spatial continuity term (:func:`continuity_loss`),
optionally with scribbles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unsupseg.refine import REFINEMENTS, refine_by_label_slic, refine_by_superpixel_vote

__all__ = [
    "IGNORE_INDEX",
    "LABEL_SLIC_COMPACTNESS",
    "LABEL_SLIC_SEGMENTS",
    "UNLABELLED",
    "Refinement",
    "DYNASEG_VARIANTS",
    "channel_argmax",
    "continuity_loss",
    "dynaseg_loss",
    "dynaseg_weight",
    "pixel_cross_entropy",
    "self_training_loss",
    "tip2020_loss",
]

#: Target value of pixels that take no part in a loss (padding, unscribbled pixels).
IGNORE_INDEX = -100
#: Default SLIC parameters of the ``label-slic`` refinement (the thesis code's).
LABEL_SLIC_SEGMENTS = 7
LABEL_SLIC_COMPACTNESS = 1e-4
#: Scribble value meaning "no scribble here" (as in the TIP 2020 code).
UNLABELLED = 255


def channel_argmax(response: torch.Tensor) -> torch.Tensor:
    """``response.argmax(dim=1)``: the channel of the largest value at every pixel (the
    first such channel on ties, as argmax).

    Computed as ``response.max(dim=1).indices``, which gives the same indices: on the
    CPU, torch 2.14's argmax over the channel axis of a (1, 100, 321, 481) map in the
    default layout took 53 ms, against 10 ms for ``max`` (2 threads of an AVX-512 AMD
    EPYC, nothing else running; ``python tools/loss_layout_speed.py`` measures it).
    """
    return response.max(dim=1).indices


def pixel_cross_entropy(
    response: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """``F.cross_entropy(response, target, ignore_index=ignore_index)``: the mean over
    the pixels whose target is not ``ignore_index``, response channels on axis 1.

    A channels-last (B, C, H, W) response is scored as the (B*H*W, C) matrix it is in
    memory, so it is never copied to the default layout (a copy of the size of the
    response, and another of its gradient on the way back); the gradient stays
    channels-last.
    """
    if (
        response.dim() == 4
        and response.is_contiguous(memory_format=torch.channels_last)
        and not response.is_contiguous()
    ):
        channels = response.shape[1]
        return F.cross_entropy(
            response.permute(0, 2, 3, 1).reshape(-1, channels),
            target.reshape(-1),
            ignore_index=ignore_index,
        )
    return F.cross_entropy(response, target, ignore_index=ignore_index)


@dataclass(frozen=True)
class Refinement:
    """How an argmax becomes a target.

    Parameters
    ----------
    q : int
        The number of labels (the network's output channels).
    method : {"superpixel-vote", "label-slic"}
        ``superpixel-vote``: every pixel takes its SLIC superpixel's majority label
        (Kanezaki 2018). ``label-slic``: SLIC run on the argmax label map itself (the
        thesis code); its segment ids are taken modulo ``q``, since SLIC may return
        more segments than asked for.
    label_slic_segments, label_slic_compactness : int, float
        SLIC parameters of ``label-slic``.
    """

    q: int
    method: str = "superpixel-vote"
    label_slic_segments: int = LABEL_SLIC_SEGMENTS
    label_slic_compactness: float = LABEL_SLIC_COMPACTNESS

    def __post_init__(self) -> None:
        if self.method not in REFINEMENTS:
            raise ValueError(f"refine must be one of {', '.join(REFINEMENTS)}; got {self.method!r}")

    @torch.no_grad()
    def __call__(self, argmax: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
        """Targets of ``argmax`` (B, H, W); pixels with a negative superpixel id
        (padding) get :data:`IGNORE_INDEX`."""
        if self.method == "superpixel-vote":
            target = refine_by_superpixel_vote(argmax, superpixels, self.q)
        else:
            ids = refine_by_label_slic(
                argmax, self.label_slic_segments, self.label_slic_compactness
            )
            target = ids % self.q
        return target.masked_fill(superpixels < 0, IGNORE_INDEX)


def self_training_loss(
    response: torch.Tensor, superpixels: torch.Tensor, refinement: Refinement
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cross-entropy of a response map against its own refined argmax.

    Parameters
    ----------
    response : Tensor, shape (B, q, H, W)
        The network's response ``r``, with gradient.
    superpixels : Tensor of int64, shape (B, H, W)
        SLIC superpixel ids of each image; negative on padding.
    refinement : Refinement

    Returns
    -------
    loss : Tensor
        Mean cross-entropy over the valid pixels.
    argmax, target : Tensor of int64, shape (B, H, W)
        The raw argmax and the refined target (padding :data:`IGNORE_INDEX`).
    """
    argmax = channel_argmax(response.detach())
    target = refinement(argmax, superpixels)
    loss = pixel_cross_entropy(response.float(), target)
    return loss, argmax, target


def continuity_loss(response: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours of the response map along each
    spatial axis, summed over the axes (Kim, Kanezaki and Tanaka, TIP 2020: vertical
    plus horizontal for an image (B, q, H, W); a volume (B, q, Z, Y, X) adds the axis
    between slices). An axis without neighbours (an image one pixel high or wide) adds
    nothing."""
    total = response.new_zeros(())
    for axis in range(2, response.dim()):
        size = response.shape[axis]
        if size > 1:
            diff = response.narrow(axis, 1, size - 1) - response.narrow(axis, 0, size - 1)
            total = total + diff.abs().mean()
    return total


def tip2020_loss(
    response: torch.Tensor,
    *,
    mu: float = 1.0,
    scribble: torch.Tensor | None = None,
    scribble_weight: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The TIP 2020 loss: cross-entropy against the argmax plus ``mu`` x continuity,
    and with scribbles the scribble cross-entropy of weight ``scribble_weight``
    (scribbled pixels leave the argmax term).

    Parameters
    ----------
    response : Tensor, shape (B, q, H, W)
    mu : float
        Weight of :func:`continuity_loss`.
    scribble : Tensor of int64, shape (B, H, W), optional
        Class ids where the user scribbled, :data:`UNLABELLED` elsewhere.
    scribble_weight : float

    Returns
    -------
    loss, argmax, target : as :func:`self_training_loss` (the target is the argmax).
    """
    argmax = channel_argmax(response.detach())
    continuity = continuity_loss(response)
    if scribble is None:
        return pixel_cross_entropy(response, argmax) + mu * continuity, argmax, argmax
    scribbled = scribble != UNLABELLED
    loss = mu * continuity
    if not bool(scribbled.all()):
        similarity_target = argmax.masked_fill(scribbled, IGNORE_INDEX)
        loss = loss + pixel_cross_entropy(response, similarity_target)
    if bool(scribbled.any()):  # an empty scribble would score nothing (NaN)
        scribble_target = scribble.masked_fill(~scribbled, IGNORE_INDEX)
        loss = loss + scribble_weight * pixel_cross_entropy(response, scribble_target)
    return loss, argmax, argmax


#: DynaSeg's two variants (Guermazi et al. 2024): FSF, "feature similarity focus",
#: and SCF, "spatial continuity focus".
DYNASEG_VARIANTS = ("fsf", "scf")


def dynaseg_weight(variant: str, n_labels: int) -> float:
    """DynaSeg's continuity weight for the argmax's current number of labels.

    FSF: ``n_labels / 15``, so continuity weighs less as labels merge; SCF:
    ``50 / n_labels``, so it weighs more. These are the two loss lines of the public
    code (``tools/DynaSeg_SCF_BSD_VOC.py``, commented ``# FSF loss`` and ``# SCF
    loss``).
    """
    if variant == "fsf":
        return n_labels / 15
    if variant == "scf":
        return 50 / n_labels
    raise ValueError(
        f"DynaSeg variant must be one of {', '.join(DYNASEG_VARIANTS)}; got {variant!r}"
    )


def dynaseg_loss(
    response: torch.Tensor, *, variant: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DynaSeg loss: cross-entropy against the argmax plus the continuity loss of
    :func:`continuity_loss`, weighted by :func:`dynaseg_weight` of the number of labels
    in the argmax (counted over the whole batch: per-image optimisation has one image).

    Returns
    -------
    loss, argmax, target : as :func:`self_training_loss` (the target is the argmax).
    """
    argmax = channel_argmax(response.detach())
    weight = dynaseg_weight(variant, int(torch.unique(argmax).numel()))
    loss = pixel_cross_entropy(response, argmax) + weight * continuity_loss(response)
    return loss, argmax, argmax
