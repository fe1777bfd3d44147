"""Per-image segmentation: a fresh network optimised on one image.

The algorithm (Kanezaki 2018), one iteration::

    response = net(x)                                    # (1, q, H, W)
    argmax = response.argmax(1)                          # (1, H, W)
    target = refine_by_superpixel_vote(argmax, spx, q)   # majority label per superpixel
    loss = cross_entropy(response, target)
    loss.backward(); optimizer.step()
    stop when argmax holds <= min_labels labels

The TIP 2020 variant (Kim, Kanezaki, Tanaka) drops the superpixels, takes the argmax
itself as the target and adds a spatial continuity loss, optionally with scribbles.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize
from tqdm.auto import tqdm

from unsupseg.algorithm import (
    UNLABELLED,
    Refinement,
    channel_argmax,
    dynaseg_loss,
    self_training_loss,
    tip2020_loss,
)
from unsupseg.checks import check_memory, check_number, check_seed
from unsupseg.device import LAYOUTS, PRECISIONS, resolve_device, resolve_layout, resolve_precision
from unsupseg.errors import ConfigError
from unsupseg.io import MAX_PIXELS, as_float_channels, resize_nearest
from unsupseg.models.kanezaki import PADDINGS, KanezakiNet
from unsupseg.refine import majority_labels
from unsupseg.regions import connected_leaves, regions_to_k
from unsupseg.superpixels import slic_superpixels

METHODS = ("kanezaki2018", "tip2020", "dynaseg-fsf", "dynaseg-scf")

#: Padding choices of :func:`segment`; ``auto`` is :func:`default_padding`.
PADDING_CHOICES = ("auto", *PADDINGS)
#: How a downscaled run's labels come back to the input's size (:func:`segment`).
UPSAMPLING = ("response", "nearest")

#: What the losses of :mod:`unsupseg.algorithm` return: loss, argmax, target.
StepLosses = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class SegmentationResult:
    """Everything :func:`segment` computed, for figures and reports.

    ``labels``, ``argmax`` and ``superpixels`` are at the input's size; ``response`` is
    at the size the network saw last (smaller when ``max_side`` downscaled the image,
    unless ``fine_iter`` went on at full size). ``working_shape`` is the downscaled
    size, ``fine_iterations`` the iterations of ``n_iterations`` run at full size.
    ``argmax`` is the last iteration's raw argmax numbered like ``labels`` (a label the
    refinement removed gets an id after those of ``labels``).
    """

    labels: np.ndarray
    argmax: np.ndarray
    superpixels: np.ndarray | None
    response: np.ndarray
    n_iterations: int
    seconds: float
    slic_seconds: float
    n_labels_history: list[int]
    loss_history: list[float]
    iteration_seconds: list[float]
    working_shape: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict)
    reconstruction: np.ndarray | None = None
    fine_iterations: int = 0

    @property
    def n_labels(self) -> int:
        """Number of distinct labels in ``labels``."""
        return int(self.labels.max()) + 1


def segment(
    image: np.ndarray,
    method: str = "kanezaki2018",
    *,
    q: int = 100,
    n_conv: int = 2,
    lr: float = 0.1,
    momentum: float = 0.9,
    max_iter: int = 1000,
    min_labels: int | None = None,
    n_segments: int = 10000,
    compactness: float = 100.0,
    mu: float = 1.0,
    scribble: np.ndarray | None = None,
    scribble_weight: float = 0.5,
    max_side: int | None = None,
    fine_iter: int = 0,
    max_pixels: int = MAX_PIXELS,
    upsample: str = "response",
    padding: str = "auto",
    volume: bool = False,
    precision: str = "auto",
    layout: str = "auto",
    segments: int | None = None,
    connected: bool = False,
    seed: int = 0,
    device: str | torch.device | None = None,
    return_details: bool = False,
    progress: bool = False,
    callback: Callable[[int, int, int], None] | None = None,
) -> np.ndarray | SegmentationResult:
    """Segment one image (or volume) by optimising a fresh network on it.

    Parameters
    ----------
    image : ndarray
        (H, W) grayscale, (H, W, 3) RGB, (H, W, 4) RGBA or (H, W, C) of any other number
        of bands; with ``volume=True``, (Z, Y, X) or (Z, Y, X, C). Any real dtype,
        min-max normalised to [0, 1] by :func:`unsupseg.io.as_float_channels` (one range
        for RGB, one per band otherwise). The network's first convolution takes the C
        channels; SLIC clusters in CIELAB for RGB and on the bands themselves otherwise.
    method : {'kanezaki2018', 'tip2020', 'dynaseg-fsf', 'dynaseg-scf'}
        ``kanezaki2018``: targets are the argmax refined by SLIC superpixel majority
        vote. ``tip2020``: targets are the argmax itself plus a continuity loss of
        weight ``mu`` (and scribbles when given); no SLIC. ``dynaseg-fsf`` and
        ``dynaseg-scf`` (DynaSeg, 2024): as ``tip2020`` without scribbles, the
        continuity weight following the argmax's label count instead of ``mu``
        (:func:`unsupseg.algorithm.dynaseg_weight`).
    q : int
        Output channels of the network (``nChannel``), the most labels possible.
    n_conv : int
        Number of 3x3 convolution blocks (``nConv``).
    lr, momentum : float
        SGD settings.
    max_iter : int
        Most optimisation steps.
    min_labels : int, optional
        Stop as soon as the argmax holds at most this many labels. Default 3, or the
        number of scribble classes when ``scribble`` is given (as the TIP code does).
    n_segments, compactness : SLIC's K and m (``kanezaki2018`` only).
    mu : float
        Weight of the continuity loss (``tip2020`` only).
    scribble : ndarray of int, shape (H, W), optional
        ``tip2020`` only: class ids (< q) where the user scribbled, 255 elsewhere.
    scribble_weight : float
        Weight of the cross-entropy on scribbled pixels.
    max_side : int, optional
        Downscale so that the longer side is at most this many pixels for the
        optimisation; the labels are computed at the input's size (see ``upsample``).
    upsample : {'response', 'nearest'}
        How a downscaled run comes back to the input's size. ``response`` (coarse to
        fine): the last response map is upsampled bilinearly and its argmax taken at full
        size; for ``kanezaki2018`` the superpixel vote then runs on SLIC computed at
        full size, so that edges follow the full-size image. ``nearest``: the working
        labels are enlarged by nearest neighbour (blocky edges). Ignored when
        ``fine_iter`` continues the optimisation at full size.
    fine_iter : int
        Coarse to fine: after the ``max_side`` optimisation, go on for at most this
        many iterations at the input's full size, with the same network and optimiser
        (the network is fully convolutional), SLIC then computed at full size for
        ``kanezaki2018``. The labels are those of the last full-size iteration. 0 (the
        default): no full-size iterations. Without downscaling it changes nothing.
    padding : {'auto', 'zeros', 'replicate'}
        Padding of the network's 3x3 convolutions: ``zeros`` as the reference code
        (border pixels tend to get a label of their own), ``replicate`` repeats the edge
        pixels (:class:`~unsupseg.models.kanezaki.KanezakiNet`). ``auto`` is
        :func:`default_padding`: replicate for the continuity methods, whose zero-padded
        results have a frame, zeros for ``kanezaki2018``, whose SLIC vote removes it.
    max_pixels : int
        Refuse larger working images (they would need tens of GiB); use ``max_side``.
        For a volume, the number of voxels.
    volume : bool
        Treat the first three axes as (Z, Y, X): 3x3x3 convolutions, 3-D SLIC
        supervoxels and their vote, continuity along all three axes. ``max_side`` and
        ``scribble`` are 2-D only.
    precision : {'auto', 'fp32', 'bf16'}
        Arithmetic of the network (:func:`network_forward`). ``auto`` is
        :func:`unsupseg.device.resolve_precision`: bfloat16 autocast where the device
        computes it natively and it was measured to give the same scores, else fp32.
    layout : {'auto', 'contiguous', 'channels-last'}
        Memory layout of the network's tensors (2-D images only). ``auto`` is
        :func:`unsupseg.device.resolve_layout`: channels-last for bfloat16 and, on
        CPUs with AVX-512, for fp32, where it is faster. The results differ from the
        other layout's only by floating-point rounding.
    segments : int, optional
        Return exactly this many 4-connected regions: the labels are split into their
        connected regions, then adjacent ones are merged, weakest colour boundary first
        (:func:`unsupseg.regions.regions_to_k`). 2-D images only.
    connected : bool
        Split every label into its 4-connected regions (6-connected in a volume), so
        that one id never covers two separate places. Implied by ``segments``.
    seed : int
        Seeds the network's initialisation: on the CPU, the same seed gives the same
        labels run to run.
    device : str or torch.device, optional
        ``'cpu'``, ``'cuda'``, ... Default: CUDA when available, else CPU.
    return_details : bool
        Return a :class:`SegmentationResult` instead of the label array.
    progress : bool
        Show a progress bar over iterations.
    callback : callable, optional
        Called after every iteration as ``callback(iteration, most, n_labels)``
        (iterations from 1): progress for a user interface. With ``fine_iter``,
        ``iteration`` counts on through the full-size stage and ``most`` is the most
        iterations of both stages (``max_iter + fine_iter``, then the iterations run at
        the working size plus ``fine_iter`` once that stage has stopped). An exception
        it raises stops the optimisation and propagates, which is how a run is
        cancelled.

    Returns
    -------
    labels : ndarray of int64, shape (H, W), or (Z, Y, X) for a volume
        Consecutive ids from 0. For ``kanezaki2018`` the refined (superpixel-voted)
        labels of the last iteration, for ``tip2020`` its argmax. With
        ``return_details``, a :class:`SegmentationResult`.

    Raises
    ------
    ConfigError
        For an option out of its range, scribbles that do not fit the image or ``q``
        (or with ``kanezaki2018``), an image of fewer than 2 pixels, or one larger than
        ``max_pixels`` (downscale it with ``max_side``); also for a device that is not
        available.

    References
    ----------
    .. [1] A. Kanezaki, "Unsupervised Image Segmentation by Backpropagation", ICASSP
       2018, pp. 1543-1547.
    .. [2] W. Kim, A. Kanezaki, M. Tanaka, "Unsupervised Learning of Image Segmentation
       Based on Differentiable Feature Clustering", IEEE TIP 29:8055-8068, 2020.
    .. [3] B. Guermazi, R. Ksantini, N. Khan, "DynaSeg: A Deep Dynamic Fusion Method
       for Unsupervised Image Segmentation Incorporating Feature Similarity and Spatial
       Continuity", 2024 (code: RyersonMultimediaLab/DynaSeg).

    Examples
    --------
    >>> from skimage import data
    >>> labels = segment(data.coffee(), max_iter=5, max_side=64)
    >>> labels.shape
    (400, 600)
    """
    check_options(
        method=method, q=q, n_conv=n_conv, lr=lr, momentum=momentum, max_iter=max_iter,
        min_labels=min_labels, n_segments=n_segments, compactness=compactness, mu=mu,
        scribble_weight=scribble_weight, max_side=max_side, seed=seed, upsample=upsample,
        padding=padding, precision=precision, fine_iter=fine_iter, layout=layout,
    )  # fmt: skip
    if scribble is not None and method != "tip2020":
        raise ConfigError("scribbles are used by method='tip2020' only")
    if volume and (scribble is not None or max_side is not None or segments is not None):
        raise ConfigError(
            "a volume takes neither scribbles, max_side nor segments (2-D images only)"
        )
    if segments is not None:
        check_number("segments", segments, minimum=1, integer=True)
    if padding == "auto":
        padding = default_padding(method)

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev, method)
    channels_last = resolve_layout(layout, dev, precision) and not volume
    started = time.perf_counter()
    try:
        rgb = full_rgb = as_float_channels(image, volume=volume)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    original_shape = rgb.shape[:-1]
    if max_side is not None and max(original_shape) > max_side:
        scale = max_side / max(original_shape)
        working = tuple(max(1, round(side * scale)) for side in original_shape)
        rgb = resize(rgb, working, anti_aliasing=True, preserve_range=True).astype(np.float32)
    spatial = rgb.shape[:-1]
    height, width = spatial[-2:]
    fine = fine_iter > 0 and spatial != original_shape
    # The largest size the network sees: the input's own when fine_iter goes on there.
    largest = original_shape if fine else spatial
    n_pixels = math.prod(largest)
    size_text = "x".join(str(side) for side in largest[::-1])
    if n_pixels > max_pixels:
        raise ConfigError(
            f"image is {size_text} = {n_pixels} {'voxels' if volume else 'pixels'}, more "
            f"than the limit of {max_pixels}"
            + (
                "; fine_iter optimises at full size (CLI: --fine-iter 0)"
                if fine
                else ("" if volume else "; downscale it with max_side (CLI: --max-side 1024)")
            )
        )
    if n_pixels < 2:
        raise ConfigError(
            f"image is {size_text} pixels: at least 2 pixels are needed "
            "(batch normalisation needs two values per channel)"
        )

    scribble_t = None
    if scribble is not None:
        scribble_t, scribble_classes = _prepare_scribble(
            scribble, original_shape, (height, width), q
        )
        scribble_t = scribble_t.to(dev)
        if min_labels is None:
            min_labels = max(1, scribble_classes)
    if min_labels is None:
        min_labels = 3
    check_memory(
        estimate_memory(q, n_conv, n_pixels, 1),
        f"per-image optimisation of a {size_text} {'volume' if volume else 'image'} with q={q}",
        "lower q (--q) or downscale the image (--max-side)",
        dev.type,
    )

    x = _as_batch(rgb, dev)

    superpixels_t = None
    slic_seconds = 0.0

    def timed_slic(picture: np.ndarray) -> np.ndarray:
        nonlocal slic_seconds
        slic_started = time.perf_counter()
        superpixels = slic_superpixels(
            picture, n_segments=n_segments, compactness=compactness, volume=volume
        )
        slic_seconds += time.perf_counter() - slic_started
        return superpixels

    if method == "kanezaki2018":
        superpixels_t = torch.from_numpy(timed_slic(rgb)).unsqueeze(0).to(dev)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = KanezakiNet(
            in_channels=rgb.shape[-1], q=q, n_conv=n_conv, padding_mode=padding,
            ndim=len(spatial),
        )  # fmt: skip
    net.to(dev).train()
    forward, x = network_forward(net, x, precision=precision, channels_last=channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)

    if method == "kanezaki2018":
        refinement = Refinement(q=q)

        def loss_fn(response: torch.Tensor) -> StepLosses:
            return self_training_loss(response, superpixels_t, refinement)

    elif method == "tip2020":

        def loss_fn(response: torch.Tensor) -> StepLosses:
            return tip2020_loss(
                response, mu=mu, scribble=scribble_t, scribble_weight=scribble_weight
            )

    else:
        variant = method.removeprefix("dynaseg-")

        def loss_fn(response: torch.Tensor) -> StepLosses:
            return dynaseg_loss(response, variant=variant)

    # The callback counts the iterations of both stages against their most, so that a
    # progress bar never goes back when the full-size stage starts.
    budget = max_iter + (fine_iter if fine else 0)
    coarse_callback = None
    if callback is not None:

        def coarse_callback(iteration: int, _stage_most: int, n_labels: int) -> None:
            callback(iteration, budget, n_labels)

    trace = optimise_on_image(
        forward,
        optimizer,
        x,
        loss_fn,
        q=q,
        max_iter=max_iter,
        min_labels=min_labels,
        progress=progress,
        callback=coarse_callback,
    )
    coarse_iterations = len(trace.n_labels_history)
    if fine:
        # Coarse to fine: the same network and optimiser go on at full size; the loss
        # functions read superpixels_t and scribble_t when called, so rebinding them
        # here hands them the full-size ones.
        if method == "kanezaki2018":
            superpixels_t = torch.from_numpy(timed_slic(full_rgb)).unsqueeze(0).to(dev)
        if scribble is not None:
            scribble_t = _prepare_scribble(scribble, original_shape, original_shape, q)[0].to(dev)
        forward, x_full = network_forward(
            net, _as_batch(full_rgb, dev), precision=precision, channels_last=channels_last
        )
        fine_callback = None
        if callback is not None:

            def fine_callback(iteration: int, _stage_most: int, n_labels: int) -> None:
                callback(coarse_iterations + iteration, coarse_iterations + fine_iter, n_labels)

        trace = trace.followed_by(
            optimise_on_image(
                forward, optimizer, x_full, loss_fn, q=q, max_iter=fine_iter,
                min_labels=min_labels, progress=progress, callback=fine_callback,
            )  # fmt: skip
        )
        spatial = original_shape
    target, argmax, response = trace.target, trace.argmax, trace.response
    superpixels_out = None if superpixels_t is None else superpixels_t[0].cpu().numpy()
    if spatial != original_shape and upsample == "response":
        argmax = upsampled_argmax(response, original_shape)
        target = argmax
        if method == "kanezaki2018":
            superpixels_out = timed_slic(full_rgb)
            target = refinement(argmax, torch.from_numpy(superpixels_out).unsqueeze(0).to(dev))
    labels, argmax_ids = number_consecutively(target[0].cpu().numpy(), argmax[0].cpu().numpy())
    if spatial != original_shape:  # upsample="nearest" (labels, argmax), superpixels
        labels = resize_nearest(labels, original_shape)
        argmax_ids = resize_nearest(argmax_ids, original_shape)
        if superpixels_out is not None:
            superpixels_out = resize_nearest(superpixels_out, original_shape)
    if segments is not None:
        labels = regions_to_k(labels, segments, full_rgb)
    elif connected:
        labels = connected_leaves(labels)
    if not return_details:
        return labels
    params = dict(
        method=method,
        q=q,
        n_conv=n_conv,
        lr=lr,
        momentum=momentum,
        max_iter=max_iter,
        min_labels=min_labels,
        n_segments=n_segments if method == "kanezaki2018" else None,
        compactness=compactness if method == "kanezaki2018" else None,
        mu=mu if method == "tip2020" else None,
        scribble=scribble is not None,
        scribble_weight=scribble_weight if scribble is not None else None,
        max_side=max_side,
        fine_iter=fine_iter if fine else None,
        upsample=upsample if spatial != original_shape else None,
        padding=padding,
        volume=volume,
        channels=int(rgb.shape[-1]),
        precision=precision,
        layout="channels-last" if channels_last else "contiguous",
        segments=segments,
        connected=bool(connected or segments is not None),
        seed=seed,
        device=str(dev),
    )
    return SegmentationResult(
        labels=labels,
        argmax=argmax_ids,
        superpixels=superpixels_out,
        response=np.ascontiguousarray(response[0].float().cpu().numpy()),
        n_iterations=len(trace.n_labels_history),
        seconds=time.perf_counter() - started,
        slic_seconds=slic_seconds,
        n_labels_history=trace.n_labels_history,
        loss_history=trace.loss_history,
        iteration_seconds=trace.iteration_seconds,
        working_shape=tuple(rgb.shape[:-1]),
        params=params,
        fine_iterations=len(trace.n_labels_history) - coarse_iterations,
    )


def _as_batch(picture: np.ndarray, device: torch.device) -> torch.Tensor:
    """(..., C) float32 array -> (1, C, ...) tensor on ``device``."""
    return torch.from_numpy(np.moveaxis(picture, -1, 0).copy()).unsqueeze(0).to(device)


def network_forward(
    net: torch.nn.Module,
    x: torch.Tensor,
    *,
    precision: str = "fp32",
    channels_last: bool = False,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The forward pass :func:`optimise_on_image` calls, in the arithmetic asked for.

    ``fp32``: ``net`` itself. ``bf16``: ``net`` under bfloat16 autocast on ``x``'s
    device (convolutions in bfloat16, with float32 accumulation), the response cast
    back to float32 so that the softmax, the losses and the argmax are computed in
    float32. ``channels_last`` converts ``net`` and ``x`` to the channels-last memory
    format (2-D images only); the response then stays channels-last, which the losses
    (:func:`unsupseg.algorithm.pixel_cross_entropy`) score without a copy.

    Returns
    -------
    forward : callable
        Tensor -> float32 response (channels-last with ``channels_last``).
    x : Tensor
        The input in the memory format ``forward`` expects.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16 here; got {precision!r}")
    channels_last = channels_last and x.dim() == 4
    if channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if precision == "fp32" and not channels_last:
        return net, x
    device_type = x.device.type

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            response = net(inputs)
        if channels_last:
            # The continuity term's gradient comes back in the default layout; batch
            # norm's backward is several times slower when it differs from its input's.
            response = _ChannelsLastGradient.apply(response)
        # The losses in float32, in the response's layout (no copy of it to another).
        return response.to(torch.float32)

    return forward, x


class _ChannelsLastGradient(torch.autograd.Function):
    """Identity whose backward hands on its gradient in the channels-last layout."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


@dataclass
class OptimisationTrace:
    """The last iteration's tensors and the per-iteration history of an optimisation."""

    target: torch.Tensor
    argmax: torch.Tensor
    response: torch.Tensor
    n_labels_history: list[int]
    loss_history: list[float]
    iteration_seconds: list[float]

    def followed_by(self, later: OptimisationTrace) -> OptimisationTrace:
        """This trace continued by ``later``: its tensors, both histories."""
        return OptimisationTrace(
            target=later.target,
            argmax=later.argmax,
            response=later.response,
            n_labels_history=self.n_labels_history + later.n_labels_history,
            loss_history=self.loss_history + later.loss_history,
            iteration_seconds=self.iteration_seconds + later.iteration_seconds,
        )


def optimise_on_image(
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], StepLosses],
    *,
    q: int,
    max_iter: int,
    min_labels: int,
    progress: bool = False,
    callback: Callable[[int, int, int], None] | None = None,
) -> OptimisationTrace:
    """Optimise ``forward``'s parameters on one image against its own (refined) argmax.

    Each iteration: ``response = forward(x)``, ``loss, argmax, target =
    loss_fn(response)`` (one of :mod:`unsupseg.algorithm`'s losses), one optimiser
    step; stop after ``max_iter`` iterations or once the argmax holds at most
    ``min_labels`` labels. A loss that is no longer finite raises ConfigError
    (the learning rate is too high), rather than ending with a blank label map. Used
    by :func:`segment` and by per-image fine-tuning of a trained model
    (:func:`unsupseg.inference.predict_batch`). ``callback(iteration, max_iter,
    n_labels)``, when given, runs after every iteration; what it raises propagates.
    """
    n_labels_history: list[int] = []
    loss_history: list[float] = []
    iteration_seconds: list[float] = []
    bar = tqdm(total=max_iter, desc="iterations", unit="it", disable=not progress, leave=False)
    for _ in range(max_iter):
        step_started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        response = forward(x)
        loss, argmax, target = loss_fn(response)
        loss.backward()
        optimizer.step()

        n_labels = int(torch.count_nonzero(torch.bincount(argmax.view(-1), minlength=q)))
        n_labels_history.append(n_labels)
        loss_history.append(float(loss.detach()))
        if not math.isfinite(loss_history[-1]):
            bar.close()
            raise ConfigError(
                f"the optimisation diverged: the loss is {loss_history[-1]} at iteration "
                f"{len(loss_history)}; lower the learning rate"
            )
        iteration_seconds.append(time.perf_counter() - step_started)
        bar.update(1)
        bar.set_postfix(labels=n_labels, loss=f"{loss_history[-1]:.3f}")
        if callback is not None:
            try:
                callback(len(loss_history), max_iter, n_labels)
            except BaseException:
                bar.close()
                raise
        if n_labels <= min_labels:
            break
    bar.close()
    return OptimisationTrace(
        target=target,
        argmax=argmax,
        response=response.detach(),
        n_labels_history=n_labels_history,
        loss_history=loss_history,
        iteration_seconds=iteration_seconds,
    )


def _prepare_scribble(
    scribble: np.ndarray, original: tuple[int, int], working: tuple[int, int], q: int
) -> tuple[torch.Tensor, int]:
    scribble = np.asarray(scribble)
    if scribble.ndim == 3 and scribble.shape[2] in (3, 4):
        scribble = scribble[..., 0]
    if scribble.shape != original:
        raise ConfigError(
            f"scribble has shape {scribble.shape}, the image {original}; they must match"
        )
    if not np.issubdtype(scribble.dtype, np.integer):
        raise ConfigError(f"scribble must hold integer class ids; got dtype {scribble.dtype}")
    classes = np.unique(scribble[scribble != UNLABELLED])
    if classes.size == 0:
        raise ConfigError(f"scribble holds no scribbled pixel (every value is {UNLABELLED})")
    if classes.min() < 0 or classes.max() >= q:
        raise ConfigError(
            f"scribble class ids must be in 0..{q - 1} (q={q}) or {UNLABELLED}; "
            f"found {classes.min()}..{classes.max()}"
        )
    scribble = downscale_scribble(scribble, working)
    return torch.from_numpy(scribble.astype(np.int64)).unsqueeze(0), int(classes.size)


def downscale_scribble(scribble: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scribbles (class ids, :data:`UNLABELLED` elsewhere) at the working ``size``,
    without losing a stroke thinner than a working pixel.

    A working pixel takes the class under its centre (:func:`unsupseg.io.resize_nearest`);
    one whose centre is unscribbled but which covers scribbled pixels takes their most
    frequent class (the smallest id on a tie). Nearest neighbour alone drops a stroke
    one pixel wide at most working sizes, and then the scribble term had no pixel left.
    """
    out = resize_nearest(scribble, size)
    (height, width), (rows, cols) = scribble.shape, size
    if (height, width) == (rows, cols):
        return out
    ys, xs = np.nonzero(scribble != UNLABELLED)
    cells = (ys * rows // height) * cols + xs * cols // width
    classes = scribble[ys, xs].astype(np.int64)
    keep = out.ravel()[cells] == UNLABELLED
    cells, classes = cells[keep], classes[keep]
    if cells.size == 0:
        return out
    _, dense = np.unique(cells, return_inverse=True)  # the vote over these cells only
    filled = out.copy()
    filled.ravel()[cells] = majority_labels(dense, classes)
    return filled


def number_consecutively(final: np.ndarray, argmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber channel ids: ``final``'s from 0 in channel order, ``argmax``'s alike.

    Channels present in ``argmax`` only get the ids after ``final``'s, so the same
    region has the same id (and colour) in both maps.
    """
    kept = np.unique(final)
    extra = np.setdiff1d(np.unique(argmax), kept)
    lookup = np.zeros(max(int(final.max()), int(argmax.max())) + 1, dtype=np.int64)
    lookup[kept] = np.arange(kept.size)
    lookup[extra] = np.arange(kept.size, kept.size + extra.size)
    return lookup[final], lookup[argmax]


#: The range of SLIC's compactness: beyond it SLIC's scaled colours or coordinates
#: overflow float32.
COMPACTNESS_RANGE = (1e-6, 1e6)


#: The settings of :func:`segment` that :func:`check_options` checks.
CHECKED_OPTIONS = (
    "method", "q", "n_conv", "lr", "momentum", "max_iter", "min_labels", "n_segments",
    "compactness", "mu", "scribble_weight", "max_side", "seed", "upsample", "padding",
    "precision", "fine_iter", "layout",
)  # fmt: skip


def check_options(**options: Any) -> None:
    """Refuse settings of :func:`segment` that it cannot use, before any image is read:
    each must be a finite number in its range. ``options`` are any of
    :data:`CHECKED_OPTIONS`; one not given takes :func:`segment`'s default, so that a
    caller passes only the settings it has.

    Raises
    ------
    ConfigError
        Naming the first setting out of range and the range.
    TypeError
        For a name that is not one of :data:`CHECKED_OPTIONS`.
    """
    unknown = sorted(set(options) - set(CHECKED_OPTIONS))
    if unknown:
        raise TypeError(f"check_options() got unexpected settings: {', '.join(unknown)}")
    defaults = inspect.signature(segment).parameters
    settings = {name: options.get(name, defaults[name].default) for name in CHECKED_OPTIONS}
    method = settings["method"]
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    for name in ("q", "n_conv", "max_iter", "n_segments"):
        check_number(name, settings[name], minimum=2 if name == "q" else 1, integer=True)
    check_number("lr", settings["lr"], minimum=0, exclusive_minimum=True)
    check_number("momentum", settings["momentum"], minimum=0, maximum=1, exclusive_maximum=True)
    low, high = COMPACTNESS_RANGE
    check_number("compactness", settings["compactness"], minimum=low, maximum=high)
    check_number("mu", settings["mu"], minimum=0)
    check_number("scribble_weight", settings["scribble_weight"], minimum=0)
    if settings["max_side"] is not None:
        check_number("max_side", settings["max_side"], minimum=2, integer=True)
    check_number("fine_iter", settings["fine_iter"], minimum=0, integer=True)
    if settings["min_labels"] is not None:
        check_number("min_labels", settings["min_labels"], minimum=1, integer=True)
    check_seed(settings["seed"])
    for name, choices in (
        ("upsample", UPSAMPLING), ("padding", PADDING_CHOICES), ("precision", PRECISIONS),
        ("layout", LAYOUTS),
    ):  # fmt: skip
        if settings[name] not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {settings[name]!r}")


def default_padding(method: str) -> str:
    """The padding ``padding='auto'`` picks for ``method``.

    Measured on 10 BSDS500 val photos (160 px, 300 iterations, seed 0; see the README):
    with zero padding, 13% of tip2020's border pixels differ from the pixel two inside
    (a frame), 2% with replicate padding, with PRI and VI no worse. ``kanezaki2018``'s
    superpixel vote already leaves no frame (0.01%), so it keeps the reference padding.

    Examples
    --------
    >>> default_padding("tip2020"), default_padding("kanezaki2018")
    ('replicate', 'zeros')
    """
    return "zeros" if method == "kanezaki2018" else "replicate"


def upsampled_argmax(
    response: torch.Tensor, size: tuple[int, int], band_bytes: int = 64 << 20
) -> torch.Tensor:
    """The argmax over channels of ``response`` (1, q, h, w) upsampled bilinearly to
    ``size`` (as ``F.interpolate(..., mode="bilinear", align_corners=False)``), computed
    in bands of rows so that no full-size (q, H, W) map is ever held: at most
    ``band_bytes`` of it at a time. Returns (1, H, W) int64."""
    response = response.float()
    q = response.shape[1]
    height, width = size
    rows = max(1, band_bytes // (4 * q * width))
    xs = (2 * torch.arange(width, dtype=torch.float32) + 1) / width - 1
    out = torch.empty((1, height, width), dtype=torch.int64, device=response.device)
    for start in range(0, height, rows):
        stop = min(start + rows, height)
        ys = (2 * torch.arange(start, stop, dtype=torch.float32) + 1) / height - 1
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)
        band = F.grid_sample(
            response,
            grid.unsqueeze(0).to(response.device),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        out[:, start:stop] = channel_argmax(band)
    return out


def estimate_memory(q: int, n_conv: int, height: int, width: int) -> int:
    """Bytes that :func:`segment` needs, about: the (q, H, W) float32 activations kept
    for the backward pass (3 per convolution block and 3 more, measured with
    ``ru_maxrss`` at q=50..200, 256..512 pixels a side), and the weights of the q x q
    convolutions with their gradients and momentum."""
    activations = (3 * n_conv + 3) * q * height * width * 4
    weights = 3 * (9 * q * q * max(n_conv - 1, 0) + q * q + 27 * q) * 4
    return activations + weights
