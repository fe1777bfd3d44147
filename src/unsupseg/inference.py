"""Segmenting new images with a trained model.

One forward pass per image (batched when images share a working size), then optionally
the superpixel vote (``refine``) and a few per-image fine-tuning iterations that start
from the trained weights: Kanezaki's (2018) per-image optimisation, from a trained
network instead of a fresh one, with the loss of :mod:`unsupseg.algorithm`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import numpy as np
import torch

from unsupseg.algorithm import Refinement, channel_argmax, self_training_loss
from unsupseg.checks import check_number, check_seed
from unsupseg.data.base import resize_image, to_uint8_rgb
from unsupseg.data.cache import default_slic_params
from unsupseg.errors import ConfigError
from unsupseg.io import MAX_PIXELS, as_rgb_float, resize_nearest
from unsupseg.models.checkpoint import Checkpoint, CheckpointInfo
from unsupseg.models.output import ModelOutput
from unsupseg.per_image import (
    OptimisationTrace,
    SegmentationResult,
    number_consecutively,
    optimise_on_image,
)
from unsupseg.refine import majority_labels
from unsupseg.regions import connected_leaves, regions_to_k
from unsupseg.superpixels import slic_superpixels

__all__ = [
    "channel_labels",
    "predict",
    "predict_batch",
    "working_image",
    "working_superpixels",
]


def working_image(
    image: np.ndarray, info: CheckpointInfo, max_side: int | None = None
) -> np.ndarray:
    """The float RGB image the model sees, prepared as in training.

    Training reads an 8-bit image, resizes it to the preset's square size when it has
    one (CIFAR-10 32, STL-10 96, VOC 2012 224; bilinear), then min-max normalises it.
    Photos presets see full-resolution images; ``max_side`` downscales those.

    Parameters
    ----------
    image : ndarray
        (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA, any numeric dtype.
    info : CheckpointInfo
        The checkpoint's record (its ``image_size``).
    max_side : int, optional
        Longer side of full-resolution images after downscaling.

    Returns
    -------
    ndarray of float32, shape (h, w, 3)
        In [0, 1].

    Raises
    ------
    ConfigError
        When the working image has more than :data:`unsupseg.io.MAX_PIXELS` pixels.
    """
    picture = to_uint8_rgb(np.asarray(image))
    size = info.image_size
    if size:
        picture = resize_image(picture, (int(size), int(size)))
    elif max_side is not None and max(picture.shape[:2]) > max_side:
        scale = max_side / max(picture.shape[:2])
        shape = tuple(max(1, round(side * scale)) for side in picture.shape[:2])
        picture = resize_image(picture, shape)
    height, width = picture.shape[:2]
    if height * width > MAX_PIXELS:
        raise ConfigError(
            f"image is {width}x{height} = {height * width} pixels, more than the limit of "
            f"{MAX_PIXELS}; downscale it with max_side (CLI: --max-side 1024)"
        )
    return as_rgb_float(picture)


def working_superpixels(rgb: np.ndarray, info: CheckpointInfo) -> np.ndarray:
    """SLIC superpixels of a working image with the checkpoint's image-SLIC settings
    (``info.slic``; unset values are scaled to the image size, as in training)."""
    slic = info.slic or {}
    n_segments, compactness = default_slic_params(*rgb.shape[:2])
    n_segments = slic.get("n_segments") or n_segments
    compactness = slic.get("compactness") or compactness
    return slic_superpixels(rgb, n_segments=n_segments, compactness=compactness)


def predict_batch(
    checkpoint: Checkpoint,
    images: Sequence[np.ndarray],
    *,
    refine: bool = False,
    finetune: int = 0,
    finetune_lr: float | None = None,
    max_side: int | None = None,
    segments: int | None = None,
    connected: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> list[SegmentationResult]:
    """Segment images with a trained model.

    Parameters
    ----------
    checkpoint : Checkpoint
        From :func:`unsupseg.load_checkpoint`: the model (put in eval mode here) and
        its record. Images go to the model's device.
    images : sequence of ndarray
        Any sizes and numeric dtypes; images whose working size is equal share one
        forward pass.
    refine : bool
        Return the argmax after the SLIC superpixel majority vote (Kanezaki 2018).
    finetune : int
        Per-image optimisation iterations starting from the trained weights: a copy of
        the model per image, trained with the run's optimiser and learning rate against
        its superpixel-voted argmax, as in Kanezaki's per-image mode. 0: none.
    finetune_lr : float, optional
        Learning rate of fine-tuning (default: the training run's).
    max_side : int, optional
        Downscale full-resolution images (photos presets) to this longer side; presets
        with a fixed image size always resize to it.
    segments : int, optional
        Return exactly this many 4-connected regions at the input's size
        (:func:`unsupseg.regions.regions_to_k`: connected regions merged, weakest
        colour boundary first).
    connected : bool
        Split every label into its 4-connected regions (implied by ``segments``).
    seed : int
        Seeds fine-tuning (the dropout of a classifier head).
    progress : bool
        Show a progress bar over the fine-tuning iterations.

    Returns
    -------
    list of SegmentationResult
        One per image: ``labels`` (consecutive from 0), ``argmax`` and ``superpixels``
        (with ``refine`` or ``finetune``) at the input's size, ``response`` at the
        working size, ``reconstruction`` for autoencoders, and the timings.
        ``n_labels_history`` holds the labels of the forward pass, then of each
        fine-tuning iteration.

    Raises
    ------
    ConfigError
        For a negative ``finetune``, a ``finetune_lr`` that is not positive, a
        ``max_side`` below 2, or a working image larger than
        :data:`unsupseg.io.MAX_PIXELS` pixels (downscale it with ``max_side``).
    TypeError
        When ``checkpoint`` is not a :class:`~unsupseg.models.checkpoint.Checkpoint`.

    Examples
    --------
    >>> from skimage import data
    >>> checkpoint = load_checkpoint("runs/base-bsds500/checkpoints/model-best.pt")
    ... # doctest: +SKIP
    >>> [result] = predict_batch(checkpoint, [data.coffee()], refine=True)  # doctest: +SKIP
    >>> result.labels.shape  # doctest: +SKIP
    (400, 600)
    """
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(
            "checkpoint must be a Checkpoint (from unsupseg.load_checkpoint(path)); "
            f"got {type(checkpoint).__name__}"
        )
    check_number("finetune", finetune, minimum=0, integer=True)
    if finetune_lr is not None:
        check_number("finetune_lr", finetune_lr, minimum=0, exclusive_minimum=True)
    if max_side is not None:
        check_number("max_side", max_side, minimum=2, integer=True)
    if segments is not None:
        check_number("segments", segments, minimum=1, integer=True)
    check_seed(seed)
    model, info = checkpoint.model, checkpoint.info
    device = next(model.parameters()).device
    prepared = [working_image(image, info, max_side) for image in images]
    for index, rgb in enumerate(prepared):
        if finetune and rgb.shape[0] * rgb.shape[1] < 2:
            raise ConfigError(
                f"a {rgb.shape[1]}x{rgb.shape[0]} image cannot be fine-tuned (batch "
                "normalisation needs at least 2 pixels); segment it without --finetune "
                f"(image {index} of the batch)"
            )
    results: list[SegmentationResult | None] = [None] * len(prepared)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for index, rgb in enumerate(prepared):
        by_shape.setdefault(rgb.shape[:2], []).append(index)
    for indices in by_shape.values():
        started = time.perf_counter()
        batch = torch.stack([_to_tensor(prepared[i]) for i in indices]).to(device)
        with torch.no_grad():
            out = model.eval()(batch)
        seconds = (time.perf_counter() - started) / len(indices)
        for row, index in enumerate(indices):
            results[index] = _finish(
                model,
                info,
                images[index].shape[:2],
                prepared[index],
                out,
                row,
                seconds,
                refine=refine,
                finetune=finetune,
                finetune_lr=finetune_lr,
                seed=seed,
                progress=progress,
            )
    if segments is not None or connected:
        for index, result in enumerate(results):
            if segments is not None:
                result.labels = regions_to_k(result.labels, segments, as_rgb_float(images[index]))
            else:
                result.labels = connected_leaves(result.labels)
            result.params.update(segments=segments, connected=True)
    return results  # type: ignore[return-value]


def predict(
    checkpoint: Checkpoint,
    image: np.ndarray,
    *,
    refine: bool = False,
    finetune: int = 0,
    finetune_lr: float | None = None,
    max_side: int | None = None,
    segments: int | None = None,
    connected: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Segment one image with a trained model: the labels of :func:`predict_batch`.

    Parameters
    ----------
    checkpoint : Checkpoint
        From :func:`unsupseg.load_checkpoint`.
    image : ndarray
        (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA, any numeric dtype.
    refine, finetune, finetune_lr, max_side, segments, connected, seed, progress
        As for :func:`predict_batch`.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        Consecutive ids from 0, at the input's size.

    Raises
    ------
    ConfigError, TypeError
        As :func:`predict_batch`.

    Examples
    --------
    >>> from skimage import data
    >>> checkpoint = load_checkpoint("runs/base-bsds500/checkpoints/model-best.pt")
    ... # doctest: +SKIP
    >>> predict(checkpoint, data.coffee(), refine=True).shape  # doctest: +SKIP
    (400, 600)
    """
    (result,) = predict_batch(
        checkpoint,
        [image],
        refine=refine,
        finetune=finetune,
        finetune_lr=finetune_lr,
        max_side=max_side,
        segments=segments,
        connected=connected,
        seed=seed,
        progress=progress,
    )
    return result.labels


def channel_labels(result: SegmentationResult) -> np.ndarray:
    """Predicted ids that mean the same across images: the network's output channel.

    :func:`predict_batch` numbers each image's labels consecutively, which loses the
    channel; the Hungarian protocol of class-level scoring (IIC, PiCIE) needs it, so
    each label takes the channel that wins most of its pixels in the raw argmax of the
    response (the label itself without refinement).

    Parameters
    ----------
    result : SegmentationResult
        Of :func:`predict_batch`.

    Returns
    -------
    ndarray of int64, shape (H, W)
        Channel ids, at the size of ``result.labels``; ties go to the smallest channel.

    Examples
    --------
    >>> [result] = predict_batch(checkpoint, [image])  # doctest: +SKIP
    >>> classes = channel_labels(result)  # doctest: +SKIP
    """
    raw = resize_nearest(np.asarray(result.response).argmax(axis=0), result.labels.shape)
    return majority_labels(result.labels, raw)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())


def _finish(
    model: torch.nn.Module,
    info: CheckpointInfo,
    shape: tuple[int, int],
    rgb: np.ndarray,
    out: ModelOutput,
    row: int,
    forward_seconds: float,
    *,
    refine: bool,
    finetune: int,
    finetune_lr: float | None,
    seed: int,
    progress: bool,
) -> SegmentationResult:
    """One image's result from row ``row`` of a batched forward pass: the vote,
    fine-tuning, and the label maps brought back to the input's ``shape``."""
    started = time.perf_counter()
    q = int(model.q)
    refinement = Refinement(q=q)
    response = out.response[row : row + 1].float()
    argmax = channel_argmax(response)
    superpixels = None
    slic_seconds = 0.0
    n_labels_history: list[int] = [int(torch.unique(argmax).numel())]
    loss_history: list[float] = []
    if refine or finetune:
        slic_started = time.perf_counter()
        superpixels = torch.from_numpy(working_superpixels(rgb, info)).unsqueeze(0)
        superpixels = superpixels.to(argmax.device)
        slic_seconds = time.perf_counter() - slic_started
    if finetune:
        trace = _finetune(
            model, info, rgb, superpixels, refinement, finetune, finetune_lr, seed, progress
        )
        response, argmax = trace.response, trace.argmax
        n_labels_history += trace.n_labels_history
        loss_history = trace.loss_history
    final = refinement(argmax, superpixels) if refine else argmax
    labels, argmax_ids = number_consecutively(final[0].cpu().numpy(), argmax[0].cpu().numpy())
    reconstruction = None
    if out.reconstruction is not None:
        picture = out.reconstruction[row].float().clamp(0, 1).permute(1, 2, 0)
        reconstruction = picture.cpu().numpy()
    return SegmentationResult(
        labels=resize_nearest(labels, shape),
        argmax=resize_nearest(argmax_ids, shape),
        superpixels=None
        if superpixels is None
        else resize_nearest(superpixels[0].cpu().numpy(), shape),
        response=response[0].detach().cpu().numpy(),
        n_iterations=finetune,
        seconds=forward_seconds + time.perf_counter() - started,
        slic_seconds=slic_seconds,
        n_labels_history=n_labels_history,
        loss_history=loss_history,
        iteration_seconds=[],
        working_shape=rgb.shape[:2],
        params={
            "checkpoint_preset": info.preset,
            "architecture": info.architecture,
            "refine": refine,
            "finetune": finetune,
            "finetune_lr": finetune_lr if finetune else None,
            "q": q,
            "device": str(argmax.device),
        },
        reconstruction=reconstruction,
    )


def _finetune(
    model: torch.nn.Module,
    info: CheckpointInfo,
    rgb: np.ndarray,
    superpixels: torch.Tensor,
    refinement: Refinement,
    iterations: int,
    lr: float | None,
    seed: int,
    progress: bool,
) -> OptimisationTrace:
    """A few per-image iterations from the trained weights, on a copy (the model is
    kept), with the run's optimiser: the per-image loop of :mod:`unsupseg.per_image`
    against the superpixel-voted argmax."""
    settings = info.settings or {}
    lr = lr if lr is not None else float(settings.get("lr", 1e-3))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tuned = copy.deepcopy(model).train()
        if settings.get("optimizer", "adam") == "sgd":
            optimizer = torch.optim.SGD(
                tuned.parameters(), lr=lr, momentum=float(settings.get("momentum", 0.9))
            )
        else:
            optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
        x = _to_tensor(rgb).unsqueeze(0).to(superpixels.device)
        return optimise_on_image(
            lambda batch: tuned(batch).response.float(),
            optimizer,
            x,
            lambda response: self_training_loss(response, superpixels, refinement),
            q=refinement.q,
            max_iter=iterations,
            min_labels=1,
            progress=progress,
        )
