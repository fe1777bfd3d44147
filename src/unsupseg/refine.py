"""Refinement of argmax labels into training targets.

``superpixel-vote`` is the refinement of Kanezaki (2018): every pixel of a superpixel
takes the superpixel's most frequent argmax label. It is done here for a whole batch
with a single histogram (``scatter_add``) over ``superpixel_id * q + label``; there is
no Python loop over superpixels.

``label-slic`` is what the thesis code did: SLIC run on the argmax label map itself.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.segmentation import slic

REFINEMENTS = ("superpixel-vote", "label-slic")


def refine_by_superpixel_vote(
    labels: torch.Tensor, superpixels: torch.Tensor, n_labels: int
) -> torch.Tensor:
    """Give every pixel its superpixel's majority label.

    Parameters
    ----------
    labels : Tensor of int64, shape (B, H, W), (H, W) or (B, Z, Y, X)
        Argmax labels in ``0 .. n_labels - 1``. Only a 2-D tensor is taken as one
        unbatched image: pass a volume with its batch axis, (1, Z, Y, X), so that its
        superpixels span slices (the vote is the same for any number of spatial axes).
    superpixels : Tensor of int64, same shape
        Superpixel ids of each image, from 0; ids need not be consecutive. A negative
        id marks a pixel that votes nowhere and keeps its own label (padding).
    n_labels : int
        q, the number of label values.

    Returns
    -------
    refined : Tensor of int64, same shape as ``labels``

    Notes
    -----
    Ties go to the smallest label: ``argmax`` over the per-superpixel histogram returns
    the first maximum. This is also the rule of the reference code, whose loop takes
    ``np.argmax`` over the histogram of ``np.unique`` (sorted) labels.
    """
    if labels.shape != superpixels.shape:
        raise ValueError(
            f"labels {tuple(labels.shape)} and superpixels {tuple(superpixels.shape)} differ"
        )
    batched = labels if labels.dim() >= 3 else labels.unsqueeze(0)
    spx = superpixels if superpixels.dim() >= 3 else superpixels.unsqueeze(0)
    batch = batched.shape[0]
    # Give each image of the batch its own range of superpixel ids.
    per_image = spx.reshape(batch, -1).amax(dim=1).clamp(min=-1) + 1
    offsets = torch.cumsum(per_image, 0) - per_image
    global_ids = (spx + offsets.view(batch, *[1] * (spx.dim() - 1))).reshape(-1)
    flat_labels = batched.reshape(-1)
    valid = spx.reshape(-1) >= 0
    padded = not bool(valid.all())
    if padded:
        global_ids = global_ids.masked_fill(~valid, 0)
    n_superpixels = int(per_image.sum())
    keys = global_ids * n_labels + flat_labels
    votes = torch.ones_like(keys, dtype=torch.int32)
    if padded:
        votes = votes.masked_fill(~valid, 0)
    # scatter_add_ rather than torch.bincount: the same histogram, several times faster on CPU
    counts = torch.zeros(n_superpixels * n_labels, dtype=torch.int32, device=keys.device)
    counts.scatter_add_(0, keys, votes)
    winners = counts.view(n_superpixels, n_labels).argmax(dim=1)
    refined = winners.index_select(0, global_ids)
    if padded:
        refined = torch.where(valid, refined, flat_labels)
    return refined.view(labels.shape)


def refine_by_label_slic(
    labels: torch.Tensor, n_segments: int = 7, compactness: float = 1e-4
) -> torch.Tensor:
    """Run SLIC on each argmax label map and use its segment ids as targets.

    This reproduces the thesis code: the label map (not the image) is clustered into
    about ``n_segments`` segments with a tiny compactness, no Lab conversion and no
    connectivity enforcement.

    Parameters
    ----------
    labels : Tensor of int64, shape (B, H, W) or (H, W)
    n_segments, compactness : SLIC parameters.

    Returns
    -------
    targets : Tensor of int64, same shape and device, ids from 0 per image.
    """
    batched = labels if labels.dim() == 3 else labels.unsqueeze(0)
    maps = batched.detach().cpu().numpy().astype(np.float64)
    out = np.empty(maps.shape, dtype=np.int64)
    for index, label_map in enumerate(maps):
        out[index] = slic(
            label_map,
            n_segments=n_segments,
            compactness=compactness,
            channel_axis=None,
            convert2lab=False,
            enforce_connectivity=False,
            start_label=0,
        )
    return torch.from_numpy(out).to(labels.device).view(labels.shape)


def majority_labels(regions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give every pixel of a region the label that covers most of that region (numpy).

    The array counterpart of :func:`refine_by_superpixel_vote`, for label maps that are
    not tensors: post-processing gives each merged cluster the network channel that
    wins most of its pixels, and evaluation recovers channel ids from consecutively
    numbered labels, both so that ids mean the same across images (the Hungarian
    protocol needs it).

    Parameters
    ----------
    regions : ndarray of int, shape (H, W)
        Region ids from 0 (need not be consecutive).
    labels : ndarray of int, shape (H, W)
        Labels from 0.

    Returns
    -------
    ndarray of int64, shape (H, W)
        Ties go to the smallest label, as in :func:`refine_by_superpixel_vote`.
    """
    regions = np.asarray(regions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if regions.shape != labels.shape:
        raise ValueError(f"regions {regions.shape} and labels {labels.shape} differ in shape")
    flat = regions.ravel()
    q = int(labels.max()) + 1
    n = int(flat.max()) + 1
    votes = np.bincount(flat * q + labels.ravel(), minlength=n * q).reshape(n, q)
    return votes.argmax(axis=1)[flat].reshape(labels.shape)
