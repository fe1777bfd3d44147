"""``unsupseg train``: one network trained on a whole data set.

Every option is a field of :class:`unsupseg.training.TrainConfig` of the same name; an
option left out is None there, so the preset (or, with ``--resume``, the stored run)
fills it. Several GPUs or machines: ``torchrun --nproc_per_node N -m unsupseg.cli train
...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import unsupseg.training
from unsupseg.cli.common import number, seed
from unsupseg.models import PRESETS
from unsupseg.models.blocks import PADDINGS
from unsupseg.refine import REFINEMENTS
from unsupseg.training.config import DATASET_CHOICES, OPTIMIZERS, PRECISIONS, TrainConfig

log = logging.getLogger("unsupseg")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg train`` to the subcommands."""
    parser = commands.add_parser(
        "train",
        help="train one network on a whole data set (base, classifier or autoencoder)",
        description=(
            "Train a preset's network on a data set: cross-entropy against its own "
            "SLIC-refined argmax, plus the classifier or reconstruction loss. Writes "
            "config.json, metrics.csv, checkpoints/, figures/ (and tensorboard/) into --out. "
            "Options left out take the preset's value (or, with --resume, the stored run's). "
            "Several GPUs or machines: run it under torchrun."
        ),
    )
    parser.add_argument(
        "--preset", required=True, choices=sorted(PRESETS), help="model and training preset"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="run folder (default: runs/<preset>, relative to the current directory)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoints/last.ckpt (a new run when there is none yet)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        help="data set to train on (default: the preset's; 'folder' = any folder of images)",
    )
    data.add_argument(
        "--data-root",
        help="where the data set lies (default: $UNSUPSEG_DATA/<name> or "
        "../shared/data/<name> beside the current directory, e.g. bsds500, msrc_v2, "
        "cifar10_partial)",
    )
    data.add_argument(
        "--split",
        help="training split (default: train; folder: its train/ subfolder, else the folder)",
    )
    data.add_argument(
        "--val-split",
        help="validation split, or 'none' (default: BSDS500 val, CIFAR-10/STL-10 test, "
        "VOC val, MSRC every 5th image held out of training, folder none)",
    )
    data.add_argument("--limit", type=number(int, 1), help="use only the first N training images")
    data.add_argument(
        "--val-limit",
        type=number(int, 1),
        help="use only the first N validation images",
    )
    data.add_argument(
        "--num-workers",
        type=number(int, 0),
        help="DataLoader worker processes per GPU/process (default: 0 on <= 2 CPUs, "
        "else min(4, CPUs/2))",
    )
    data.add_argument(
        "--slic-workers",
        type=number(int, 1),
        help="processes that compute the superpixel cache (default: all CPUs)",
    )
    data.add_argument(
        "--cache-dir",
        type=Path,
        help="superpixel cache folder (default: $UNSUPSEG_CACHE/superpixels or "
        "~/.cache/unsupseg/superpixels)",
    )
    opt = parser.add_argument_group("optimisation (default: the preset's)")
    opt.add_argument("--epochs", type=number(int, 1), help="epochs to train in all")
    opt.add_argument("--lr", type=number(float, 0, exclusive=True), help="learning rate")
    opt.add_argument("--batch-size", type=number(int, 1), help="images per batch")
    opt.add_argument("--optimizer", choices=OPTIMIZERS, help="optimiser")
    opt.add_argument("--momentum", type=number(float, 0), help="SGD momentum")
    opt.add_argument("--lr-step-size", type=number(int, 1), help="StepLR period in epochs")
    opt.add_argument(
        "--lr-gamma",
        type=number(float, 0, exclusive=True),
        help="StepLR factor applied every --lr-step-size epochs",
    )
    opt.add_argument(
        "--aux-weight",
        type=number(float, 0),
        help="weight of the classifier / reconstruction loss (segmentation loss: 1)",
    )
    opt.add_argument("--seed", type=seed, help="random seed (default 0)")
    algo = parser.add_argument_group("model and refinement")
    algo.add_argument(
        "--q",
        type=number(int, 2),
        help="output channels of the FCN: the most labels possible",
    )
    algo.add_argument(
        "--padding",
        choices=PADDINGS,
        help="border padding of the FCN's convolutions (default: the preset's, replicate "
        "for the photos presets, zeros for the thesis'; zeros trains a frame of its own "
        "label along the border of photos)",
    )
    algo.add_argument(
        "--crop-size",
        type=number(int, 0),
        help="side of the random square training crops; 0 = whole images "
        "(default: 160 for the photos presets, whole images for the thesis' presets)",
    )
    algo.add_argument(
        "--refine",
        choices=REFINEMENTS,
        help="superpixel-vote: majority argmax label in each SLIC superpixel of the image "
        "(default); label-slic: SLIC on the argmax label map (the thesis code)",
    )
    algo.add_argument(
        "--n-segments",
        type=number(int, 1),
        help="SLIC segments: of the images for superpixel-vote (default ~1 per 100 "
        "pixels), of the label map for label-slic (default 7)",
    )
    algo.add_argument(
        "--compactness",
        type=number(float, 0, exclusive=True),
        help="SLIC compactness: images (default 10) or label map (default 1e-4)",
    )
    run_group = parser.add_argument_group("hardware and output")
    run_group.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda or cuda:N (under torchrun each process takes its local GPU)",
    )
    run_group.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="default: 32 on the CPU, bf16-mixed on a GPU (16-mixed without bfloat16)",
    )
    run_group.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        help="deterministic algorithms only (default: on for the CPU, off on GPUs)",
    )
    run_group.add_argument(
        "--log-every",
        type=number(int, 1),
        help="a train_step row in metrics.csv every N optimiser steps (default 50)",
    )
    run_group.add_argument(
        "--figures-every",
        type=number(int, 1),
        help="panel and merging figures every N epochs, and after the last (default 1)",
    )
    run_group.add_argument(
        "--checkpoint-every",
        type=number(int, 0),
        help="also write checkpoints/last.ckpt every N optimiser steps within an epoch, "
        "so --resume after a crash loses at most N steps (default 0: at the end of every "
        "epoch only)",
    )
    run_group.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


#: The options' destinations: each is the TrainConfig field of the same name.
CONFIG_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainConfig))


def run(args: argparse.Namespace) -> int:
    """Train (or resume) the run the arguments describe; 0 when it finished."""
    options = {name: value for name, value in vars(args).items() if name in CONFIG_FIELDS}
    result = unsupseg.training.train(TrainConfig(**options))
    if result.rank == 0:
        log.info(
            "done: %s (checkpoints in %s, figures in %s)",
            result.metrics,
            result.last_checkpoint.parent,
            result.figures,
        )
    return 0
