"""Segmenting new images with a trained model: ``unsupseg predict``.

One forward pass per image (batched when images share a size), then optionally the
superpixel vote and/or a few per-image fine-tuning iterations that start from the
trained weights. Under ``torchrun`` the inputs are split across ranks.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from unsupseg.data.base import resize_image, to_uint8_rgb
from unsupseg.data.cache import default_slic_params
from unsupseg.io import MAX_PIXELS, ImageReadError, as_rgb_float, resize_nearest, to_uint8
from unsupseg.per_image import SegmentationResult, number_consecutively, optimise_on_image
from unsupseg.refine import refine_by_superpixel_vote
from unsupseg.superpixels import slic_superpixels

log = logging.getLogger("unsupseg")


def working_image(image: np.ndarray, info: dict[str, Any], max_side: int | None) -> np.ndarray:
    """The float RGB image the model sees, prepared as in training.

    Training reads an 8-bit image, resizes it to the preset's square size when it has
    one (CIFAR-10 32, STL-10 96, VOC 2012 224; bilinear), then min-max normalises it.
    Photos presets see full-resolution images; ``max_side`` downscales those.
    """
    picture = to_uint8_rgb(np.asarray(image))
    size = info.get("image_size")
    if size:
        picture = resize_image(picture, (int(size), int(size)))
    elif max_side is not None and max(picture.shape[:2]) > max_side:
        scale = max_side / max(picture.shape[:2])
        shape = tuple(max(1, round(side * scale)) for side in picture.shape[:2])
        picture = resize_image(picture, shape)
    height, width = picture.shape[:2]
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"image is {width}x{height} = {height * width} pixels, more than the limit of "
            f"{MAX_PIXELS}; downscale it with --max-side (e.g. --max-side 1024)"
        )
    return as_rgb_float(picture)


def slic_of(rgb: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Superpixels with the checkpoint's image-SLIC settings (scaled to size by default)."""
    slic = info.get("slic") or {}
    n_segments, compactness = default_slic_params(*rgb.shape[:2])
    n_segments = slic.get("n_segments") or n_segments
    compactness = slic.get("compactness") or compactness
    return slic_superpixels(rgb, n_segments=n_segments, compactness=compactness)


def predict_batch(
    model: torch.nn.Module,
    info: dict[str, Any],
    images: list[np.ndarray],
    *,
    refine: bool = False,
    finetune: int = 0,
    finetune_lr: float | None = None,
    max_side: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[SegmentationResult]:
    """Segment images with a trained model.

    Parameters
    ----------
    model : nn.Module
        From :func:`unsupseg.train.load_trained_model` (eval mode).
    info : dict
        The checkpoint's record (``image_size``, ``slic``, ``settings``...).
    images : list of ndarray
        Any sizes; images whose working size is equal share one forward pass.
    refine : bool
        Apply the superpixel majority vote to the argmax (the labels returned).
    finetune : int
        Per-image optimisation iterations starting from the trained weights (a copy of
        the model per image, trained with the run's optimiser and learning rate against
        its superpixel-voted argmax, as in Kanezaki's per-image mode).
    finetune_lr : float, optional
        Learning rate of fine-tuning (default: the training run's).
    max_side : int, optional
        Downscale full-resolution images (photos presets) to this longer side.
    seed : int
        Seeds fine-tuning (dropout of a classifier head).

    Returns
    -------
    list of SegmentationResult, one per image, labels at each input's size.
    """
    if finetune < 0:
        raise ValueError(f"finetune must be >= 0; got {finetune}")
    device = next(model.parameters()).device
    prepared = [working_image(image, info, max_side) for image in images]
    results: list[SegmentationResult | None] = [None] * len(images)
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
                images[index],
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
    return results  # type: ignore[return-value]


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())


def _finish(
    model: torch.nn.Module,
    info: dict[str, Any],
    image: np.ndarray,
    rgb: np.ndarray,
    out: Any,
    row: int,
    forward_seconds: float,
    *,
    refine: bool,
    finetune: int,
    finetune_lr: float | None,
    seed: int,
    progress: bool,
) -> SegmentationResult:
    started = time.perf_counter()
    q = int(model.q)
    response = out.response[row : row + 1].float()
    argmax = response.argmax(dim=1)
    reconstruction = out.reconstruction
    superpixels = None
    slic_seconds = 0.0
    n_labels_history: list[int] = [int(torch.unique(argmax).numel())]
    loss_history: list[float] = []
    if refine or finetune:
        slic_started = time.perf_counter()
        superpixels = torch.from_numpy(slic_of(rgb, info)).unsqueeze(0).to(argmax.device)
        slic_seconds = time.perf_counter() - slic_started
    if finetune:
        trace = _finetune(model, info, rgb, superpixels, q, finetune, finetune_lr, seed, progress)
        response, argmax = trace.response, trace.argmax
        n_labels_history += trace.n_labels_history
        loss_history = trace.loss_history
    final = refine_by_superpixel_vote(argmax, superpixels, q) if refine else argmax
    labels, argmax_ids = number_consecutively(final[0].cpu().numpy(), argmax[0].cpu().numpy())
    shape = image.shape[:2]
    params = {
        "checkpoint_preset": info.get("preset"),
        "architecture": info.get("architecture"),
        "refine": refine,
        "finetune": finetune,
        "finetune_lr": finetune_lr if finetune else None,
        "q": q,
        "device": str(argmax.device),
    }
    if reconstruction is not None:
        picture = reconstruction[row].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        reconstruction = picture
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
        params=params,
        reconstruction=reconstruction,
    )


def _finetune(
    model: torch.nn.Module,
    info: dict[str, Any],
    rgb: np.ndarray,
    superpixels: torch.Tensor,
    q: int,
    iterations: int,
    lr: float | None,
    seed: int,
    progress: bool,
) -> Any:
    """A few per-image iterations from the trained weights (a copy: the model is kept)."""
    settings = info.get("settings") or {}
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

        def targets_and_loss(
            response: torch.Tensor, argmax: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            target = refine_by_superpixel_vote(argmax, superpixels, q)
            return target, F.cross_entropy(response, target)

        x = _to_tensor(rgb).unsqueeze(0).to(superpixels.device)
        return optimise_on_image(
            lambda batch: tuned(batch).response.float(),
            optimizer,
            x,
            targets_and_loss,
            q=q,
            max_iter=iterations,
            min_labels=1,
            progress=progress,
        )


# --------------------------------------------------------------------------------------
# Command line


def add_predict_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    parser = commands.add_parser(
        "predict",
        help="segment images with a trained model (one forward pass each)",
        description="Segment images with a checkpoint from `unsupseg train`: one forward "
        "pass, optionally the superpixel vote (--refine) and per-image fine-tuning "
        "(--finetune N). Writes the same files as `segment` into OUT/<image name>/. "
        "Under torchrun the inputs are split across ranks.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="IMAGE_OR_FOLDER",
        help="image files and folders (none: the scikit-image sample photos)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="model-best.pt / model-last.pt (or a .ckpt) of a training run",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("unsupseg-predictions"), help="output folder"
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="apply the SLIC superpixel majority vote to the argmax",
    )
    parser.add_argument(
        "--finetune",
        type=number(int, 0),
        default=0,
        help="per-image optimisation iterations from the trained weights",
    )
    parser.add_argument(
        "--finetune-lr",
        type=number(float, 0, exclusive=True),
        default=None,
        help="learning rate of --finetune (default: the training run's)",
    )
    parser.add_argument(
        "--batch-size",
        type=number(int, 1),
        default=8,
        help="images per forward pass (images of one size are batched)",
    )
    parser.add_argument(
        "--max-side",
        type=number(int, 2),
        default=None,
        help="downscale full-resolution images to this longer side "
        "(presets with a fixed image size always resize to it)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --finetune")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_predict)


def _rank_and_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or (0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world, int(os.environ.get("LOCAL_RANK", "0"))


def run_predict(args: argparse.Namespace) -> int:
    from unsupseg.cli.common import collect_jobs, finish_run, unique_name
    from unsupseg.outputs import write_image_outputs
    from unsupseg.train import load_trained_model

    rank, world, local_rank = _rank_and_world()
    device = args.device
    if world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    try:
        model, info = load_trained_model(args.checkpoint, device)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    jobs, failures = collect_jobs(args.inputs)
    used: set[str] = set()
    named = [(source, unique_name(name, used), load) for source, name, load in jobs]
    mine = named[rank::world]
    failures = failures if rank == 0 else []
    n_inputs = len(mine) + len(failures)
    done = 0
    seconds: list[float] = []
    bar = tqdm(
        total=len(mine),
        desc=f"images (rank {rank})" if world > 1 else "images",
        unit="image",
        disable=args.quiet,
    )
    for start in range(0, len(mine), args.batch_size):
        chunk = []
        for source, name, load in mine[start : start + args.batch_size]:
            try:
                chunk.append((source, name, load()))
            except ImageReadError as exc:
                failures.append((source, str(exc)))
                log.error("failed: %s", exc)
                bar.update(1)
        if not chunk:
            continue
        try:
            results = predict_batch(
                model,
                info,
                [image for _, _, image in chunk],
                refine=args.refine,
                finetune=args.finetune,
                finetune_lr=args.finetune_lr,
                max_side=args.max_side,
                seed=args.seed,
                progress=not args.quiet,
            )
        except (ValueError, RuntimeError, MemoryError) as exc:
            for source, _, _ in chunk:
                failures.append((source, f"{source}: {exc}"))
            log.error("failed: %s", exc)
            bar.update(len(chunk))
            continue
        for (source, name, image), result in zip(chunk, results, strict=True):
            panels = [("Argmax output", result.argmax)]
            if result.superpixels is not None:
                panels.append(("SLIC output", result.labels))
            if result.reconstruction is not None:
                panels.append(("Reconstructed image", to_uint8(result.reconstruction)))
            summary = {
                "input": source,
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "working_height": int(result.working_shape[0]),
                "working_width": int(result.working_shape[1]),
                "checkpoint": str(args.checkpoint),
                "iterations": result.n_iterations,
                "seconds": round(result.seconds, 4),
                "slic_seconds": round(result.slic_seconds, 4),
                "parameters": result.params,
                "n_labels_per_iteration": result.n_labels_history,
            }
            try:
                write_image_outputs(
                    args.out / name, as_rgb_float(image), result.labels, panels, summary
                )
            except (OSError, ValueError) as exc:
                failures.append((source, f"{source}: {exc}"))
                log.error("failed: %s", exc)
            else:
                done += 1
                seconds.append(result.seconds)
            bar.update(1)
    bar.close()
    if seconds:
        log.info(
            "segmentation time per image (forward pass, refinement and fine-tuning; reading "
            "and writing excluded): mean %.3f s, median %.3f s over %d images",
            float(np.mean(seconds)),
            float(np.median(seconds)),
            len(seconds),
        )
    return finish_run(done, n_inputs, args.out, failures)
