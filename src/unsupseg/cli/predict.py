"""``unsupseg predict``: segment images with a trained checkpoint.

The images are read in batches of ``--batch-size`` and segmented by
:func:`unsupseg.inference.predict_batch`; each image's files go to OUT/<image name>/.
Under ``torchrun`` every rank takes every WORLD_SIZE-th input.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from unsupseg.checks import check_output_folder
from unsupseg.cli.common import (
    HelpFormatter,
    ImageJob,
    add_region_arguments,
    collect_jobs,
    failure_message,
    finish_run,
    image_summary,
    is_unwritable,
    number,
    seed,
    skip_remaining,
)
from unsupseg.errors import ImageReadError
from unsupseg.inference import predict_batch
from unsupseg.io import as_rgb_float, sweep_stale_temporaries, to_uint8
from unsupseg.models.checkpoint import load_checkpoint
from unsupseg.outputs import write_image_outputs

log = logging.getLogger("unsupseg")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg predict`` to the subcommands."""
    parser = commands.add_parser(
        "predict",
        help="segment images with a trained model (one forward pass each)",
        description="Segment images with a checkpoint from `unsupseg train`: one forward "
        "pass, optionally the superpixel vote (--refine) and per-image fine-tuning "
        "(--finetune N). Writes the same files as `segment` into OUT/<image name>/. "
        "Under torchrun the inputs are split across ranks.",
        formatter_class=HelpFormatter,
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
        help="downscale full-resolution images to this longer side (presets with a "
        "fixed image size always resize to it); files over 2048x2048 pixels are read "
        "reduced to it, and their outputs have the reduced size",
    )
    add_region_arguments(parser)
    parser.add_argument(
        "--pages",
        choices=("first", "each"),
        default=None,
        help="how to read a plain multi-page TIFF, the slices of a volume or the frames of "
        "an animated GIF, PNG or WebP: first (its "
        "first page) or each (every page as its own image, OUT/<name>-pageNNN); default: "
        "refuse it. A trained model segments 2-D images: segment volumes with `unsupseg "
        "segment`",
    )
    parser.add_argument("--seed", type=seed, default=0, help="seed of --finetune")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def _rank_and_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or (0, 1, 0)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world, int(os.environ.get("LOCAL_RANK", "0"))


def _predict_chunk(
    args: argparse.Namespace, checkpoint, chunk: list[tuple[ImageJob, np.ndarray]]
) -> list:
    """The results of one batch, or per image the exception that stopped it: when the
    batch fails, its images are tried one by one, so a bad image fails alone."""
    try:
        return predict_batch(
            checkpoint,
            [image for _, image in chunk],
            refine=args.refine,
            finetune=args.finetune,
            finetune_lr=args.finetune_lr,
            max_side=args.max_side,
            segments=args.segments,
            connected=args.connected,
            seed=args.seed,
            progress=not args.quiet,
        )
    except (ValueError, RuntimeError, MemoryError) as exc:
        if len(chunk) == 1:
            return [exc]
        return [_predict_chunk(args, checkpoint, [item])[0] for item in chunk]


def _fitting(job: ImageJob, image: np.ndarray, in_channels: int) -> np.ndarray:
    """``image``, or ImageReadError when a 2-D model of ``in_channels`` channels cannot
    take it (a volume, or another number of bands), with what to do instead."""
    if job.volume:
        raise ImageReadError(
            f"{job.source}: a volume of shape {image.shape}; a trained model segments 2-D "
            "images: predict its slices with --pages first|each, or segment it in 3-D with "
            "`unsupseg segment` (the per-image methods take volumes)"
        )
    bands = 1 if image.ndim == 2 else image.shape[-1]
    if bands not in (1, 3, 4) or (in_channels != 3 and bands != in_channels):
        raise ImageReadError(
            f"{job.source}: {bands} bands; this checkpoint takes {in_channels}-channel "
            "images (grayscale and RGBA are converted to RGB): segment it with `unsupseg "
            "segment`, whose per-image methods take any number of bands"
        )
    return image


def run(args: argparse.Namespace) -> int:
    """Segment this rank's share of the inputs; 0 when all succeeded, 1 when some
    failed (a checkpoint that cannot be read raises CheckpointError: exit 2)."""
    rank, world, local_rank = _rank_and_world()
    device = args.device
    if world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    check_output_folder(args.out)
    sweep_stale_temporaries(args.out)
    checkpoint = load_checkpoint(args.checkpoint, device)
    jobs, failures = collect_jobs(args.inputs, max_side=args.max_side, pages=args.pages)
    mine = jobs[rank::world]
    failures = failures if rank == 0 else []
    n_inputs = len(mine) + len(failures)
    done = 0
    stop = False
    seconds: list[float] = []
    bar = tqdm(
        total=len(mine),
        desc=f"images (rank {rank})" if world > 1 else "images",
        unit="image",
        disable=args.quiet,
    )
    for start in range(0, len(mine), args.batch_size):
        chunk = []
        for job in mine[start : start + args.batch_size]:
            try:
                chunk.append((job, _fitting(job, job.load(), checkpoint.model.fcn.in_channels)))
            except ImageReadError as exc:
                failures.append((job.source, str(exc)))
                log.error("failed: %s", exc)
                bar.update(1)
        if not chunk:
            continue
        outcomes = _predict_chunk(args, checkpoint, chunk)
        for (job, image), result in zip(chunk, outcomes, strict=True):
            if isinstance(result, BaseException):
                failures.append((job.source, failure_message(job.source, result)))
                log.error("failed: %s", failures[-1][1])
                bar.update(1)
                continue
            panels = [("Argmax output", result.argmax)]
            if result.superpixels is not None:
                panels.append(("SLIC output", result.labels))
            if result.reconstruction is not None:
                panels.append(("Reconstructed image", to_uint8(result.reconstruction)))
            summary = image_summary(
                job.source,
                image,
                result,
                digits=4,
                checkpoint=str(args.checkpoint),
                **job.file_size(image),
            )
            try:
                write_image_outputs(
                    args.out / job.name, as_rgb_float(image), result.labels, panels, summary
                )
            except (OSError, ValueError) as exc:
                failures.append((job.source, failure_message(job.source, exc)))
                log.error("failed: %s", failures[-1][1])
                if is_unwritable(exc):
                    stop = True
                    break
            else:
                done += 1
                seconds.append(result.seconds)
            bar.update(1)
        if stop:
            skip_remaining(mine, job, failures, args.out)
            break
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
