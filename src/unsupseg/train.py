"""``unsupseg train``: one network trained on a whole data set.

The algorithm is in :class:`unsupseg.lightning.SegmentationModule`; this module resolves
the settings (preset, data, overrides), runs PyTorch Lightning, and records what a person
looks at. Everything lands in ``--out``:

- ``config.json``: every resolved setting and the library versions.
- ``metrics.csv``: one row per epoch and split (``train``, ``val``) with the mean of each
  loss term over the epoch's images, and one ``train_step`` row every ``--log-every``
  optimiser steps (mean over those steps). Columns: epoch (1-based), step (optimiser
  steps so far), split, loss, loss_seg, loss_aux (empty for ``base``), unique_labels
  (mean number of distinct argmax labels per image, padding ignored: the "merging"
  measure), lr, seconds (training time so far, across resumes).
- ``checkpoints/last.ckpt`` (every epoch) and ``checkpoints/best.ckpt`` (lowest
  validation loss; lowest training loss without validation): full Lightning checkpoints
  for ``--resume``. ``checkpoints/model-last.pt`` and ``model-best.pt``: the model alone
  with what :func:`load_checkpoint` needs, readable with ``torch.load(...,
  weights_only=True)`` (so are the ``.ckpt`` files).
- ``tensorboard/`` when ``tensorboard`` is installed.
- ``figures/``: ``panel_epoch{E:03d}.png`` (the seed's panel for the first 4 validation
  images), ``loss_curves.png``, ``unique_labels.png``, ``merging.png`` (the same images'
  argmax across epochs) and ``snapshots/epoch{E:03d}.npz`` (those argmax maps).

Examples
--------
.. code-block:: console

    $ unsupseg train --preset base-bsds500 --epochs 5 --out runs/base-bsds500
    $ unsupseg train --preset base-bsds500 --epochs 10 --out runs/base-bsds500 --resume
    $ torchrun --nproc_per_node 4 -m unsupseg.train --preset autoencoder-cifar10 --out runs/ae
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unsupseg.data import DatasetError, ImageDataset, default_cache_dir, open_dataset
from unsupseg.io import write_json
from unsupseg.refine import REFINEMENTS
from unsupseg.viz import colorize, save_figure

log = logging.getLogger("unsupseg")

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainError",
    "TrainSettings",
    "add_train_parser",
    "default_data_root",
    "load_checkpoint",
    "load_trained_model",
    "open_training_sets",
    "resolve_settings",
    "run_train",
    "train",
]

#: ``format`` value of the plain checkpoints (and of ``checkpoint["unsupseg"]`` in .ckpt).
CHECKPOINT_FORMAT = "unsupseg-checkpoint"
CHECKPOINT_VERSION = 1

CSV_COLUMNS = (
    "epoch",
    "step",
    "split",
    "loss",
    "loss_seg",
    "loss_aux",
    "unique_labels",
    "lr",
    "seconds",
)

#: Title of the auxiliary loss in the loss curves, by architecture.
AUX_LABELS = {
    "classifier": "classification loss (CE / BCE)",
    "autoencoder": "reconstruction MSE",
}
#: Images shown in the panels and the merging strip.
N_SAMPLES = 4
#: Most epochs shown as columns of the merging strip (evenly spaced, last included).
MAX_STRIP_COLUMNS = 10
#: Default SLIC parameters of the ``label-slic`` refinement (the thesis code's).
LABEL_SLIC_SEGMENTS = 7
LABEL_SLIC_COMPACTNESS = 1e-4
#: Held-out share of MSRC-v2 used for validation when there is no split file.
MSRC_HOLDOUT_EVERY = 5

PRECISIONS = ("32", "16-mixed", "bf16-mixed")
DATASET_CHOICES = ("cifar10", "stl10", "voc2012", "msrc", "bsds500", "folder")

#: Folder names looked for under ``$UNSUPSEG_DATA`` and ``../shared/data``.
DATA_FOLDERS: dict[str, tuple[str, ...]] = {
    "bsds500": ("bsds500", "BSDS500", "BSR"),
    "msrc": ("msrc_v2", "msrc", "MSRC_v2"),
    "cifar10": ("cifar10", "cifar10_partial", "cifar-10-python"),
    "stl10": ("stl10", "stl10_binary"),
    "voc2012": ("voc2012", "VOC2012", "VOCdevkit"),
}
DATA_LAYOUTS: dict[str, str] = {
    "bsds500": "images/{train,val}/<id>.jpg and groundTruth/{train,val}/<id>.mat",
    "msrc": "images/<id>.png and labels/<id>.png (palette PNG, 255 = void)",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch} (python pickles)",
    "stl10": "stl10_binary/{train,test}_{X,y}.bin",
    "voc2012": "VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}",
    "folder": "image files in the folder (or in its train/ and val/ subfolders)",
}
#: Validation split used when ``--val-split`` is not given.
DEFAULT_VAL_SPLITS: dict[str, str | None] = {
    "bsds500": "val",
    "cifar10": "test",
    "stl10": "test",
    "voc2012": "val",
    "msrc": "holdout",
    "folder": None,
}


class TrainError(ValueError):
    """Settings or data that training cannot use; the message says what to change."""


# --------------------------------------------------------------------------------------
# Settings


@dataclass
class TrainSettings:
    """Every setting of a training run, resolved (see :func:`resolve_settings`)."""

    preset: str
    out: str
    dataset: str
    data_root: str
    split: str
    val_split: str | None
    limit: int | None
    val_limit: int | None
    epochs: int
    lr: float
    batch_size: int
    optimizer: str
    momentum: float
    lr_step_size: int
    lr_gamma: float
    aux_weight: float
    q: int
    crop_size: int | None
    image_size: int | None
    refine: str
    slic_segments: int | None
    slic_compactness: float | None
    label_slic_segments: int
    label_slic_compactness: float
    seed: int
    log_every: int
    figures_every: int
    # runtime: not taken from a stored config on resume
    device: str = "cpu"
    precision: str = "32"
    deterministic: bool = True
    num_workers: int = 0
    slic_workers: int | None = None
    cache_dir: str | None = None
    resume: bool = False
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_data_root(dataset: str) -> Path:
    """Where a data set is looked for when ``--data-root`` is not given.

    ``$UNSUPSEG_DATA/<folder>`` when the ``UNSUPSEG_DATA`` environment variable names a
    folder of data sets, then ``../shared/data/<folder>`` beside the current directory,
    with ``<folder>`` one of :data:`DATA_FOLDERS` (``bsds500``, ``msrc_v2``,
    ``cifar10_partial``, ...).

    Raises
    ------
    TrainError
        When neither holds the data set; the message names the expected layout.
    """
    if dataset == "folder":
        raise TrainError("--dataset folder needs --data-root (a folder of images)")
    bases = []
    if os.environ.get("UNSUPSEG_DATA"):
        bases.append(Path(os.environ["UNSUPSEG_DATA"]).expanduser())
    bases.append(Path.cwd().parent / "shared" / "data")
    tried = []
    for base in bases:
        for name in DATA_FOLDERS[dataset]:
            tried.append(str(base / name))
            if (base / name).is_dir():
                return base / name
    raise TrainError(
        f"no --data-root given and no {dataset} data set found (looked in {', '.join(tried)}). "
        f"Pass --data-root DIR holding {DATA_LAYOUTS[dataset]}, or set UNSUPSEG_DATA to a "
        f"folder with one of the subfolders {', '.join(DATA_FOLDERS[dataset])}"
    )


def resolve_settings(args: argparse.Namespace) -> TrainSettings:
    """Settings from parsed arguments, the preset and (with ``--resume``) config.json.

    Arguments left at None take, in order: the stored ``config.json`` of a resumed run
    (training settings only, not device or workers), then the preset's value.
    """
    from unsupseg.models import get_preset

    preset = get_preset(args.preset)
    out = Path(args.out)
    stored: dict[str, Any] = {}
    config_path = out / "config.json"
    if args.resume and config_path.is_file():
        try:
            stored = json.loads(config_path.read_text())["settings"]
        except (ValueError, KeyError) as exc:
            raise TrainError(
                f"{config_path}: unreadable config of the run to resume ({exc})"
            ) from None
        if stored.get("preset") != preset.name:
            raise TrainError(
                f"{out} holds a run of preset {stored.get('preset')!r}, not {preset.name!r}: "
                "resume it with its own preset or choose another --out"
            )

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        if value is not None:
            return value
        if name in stored:
            return stored[name]
        return default

    dataset = pick("dataset", preset.dataset)
    data_root = getattr(args, "data_root", None)
    if data_root is None:
        data_root = stored.get("data_root") or str(default_data_root(dataset))
    data_root = str(Path(data_root).expanduser().resolve())
    root = Path(data_root)
    if dataset == "folder":
        default_split = "train" if (root / "train").is_dir() else "all"
    else:
        default_split = "train"
    refine = pick("refine", "superpixel-vote")
    # --n-segments / --compactness set the SLIC of the chosen refinement: of the images
    # (the superpixel cache) for superpixel-vote, of the label map for label-slic.
    slic_segments = stored.get("slic_segments")
    slic_compactness = stored.get("slic_compactness")
    label_segments = stored.get("label_slic_segments", LABEL_SLIC_SEGMENTS)
    label_compactness = stored.get("label_slic_compactness", LABEL_SLIC_COMPACTNESS)
    if refine == "label-slic":
        label_segments = args.n_segments if args.n_segments is not None else label_segments
        label_compactness = args.compactness if args.compactness is not None else label_compactness
    else:
        slic_segments = args.n_segments if args.n_segments is not None else slic_segments
        slic_compactness = args.compactness if args.compactness is not None else slic_compactness
    crop = pick("crop_size", preset.crop_size)
    crop = None if crop in (None, 0) else int(crop)
    from unsupseg.device import resolve_device

    try:
        device = str(resolve_device(args.device))
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    on_gpu = device.startswith("cuda")
    if args.precision is not None:
        precision = args.precision
    elif on_gpu:
        precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    else:
        precision = "32"
    if precision != "32" and not on_gpu:
        raise TrainError(f"--precision {precision} needs a GPU; use 32 on the CPU")
    if args.num_workers is not None:
        num_workers = args.num_workers
    else:
        cpus = os.cpu_count() or 1
        num_workers = 0 if cpus <= 2 else min(4, cpus // 2)
    settings = TrainSettings(
        preset=preset.name,
        out=str(out),
        dataset=dataset,
        data_root=data_root,
        split=pick("split", default_split),
        val_split=pick("val_split", DEFAULT_VAL_SPLITS[dataset]),
        limit=pick("limit", None),
        val_limit=pick("val_limit", None),
        epochs=pick("epochs", preset.epochs),
        lr=pick("lr", preset.lr),
        batch_size=pick("batch_size", preset.batch_size),
        optimizer=pick("optimizer", preset.optimizer),
        momentum=pick("momentum", preset.momentum),
        lr_step_size=pick("lr_step_size", preset.lr_step_size),
        lr_gamma=pick("lr_gamma", preset.lr_gamma),
        aux_weight=pick("aux_weight", preset.aux_weight),
        q=pick("q", preset.q),
        crop_size=crop,
        image_size=preset.image_size,
        refine=refine,
        slic_segments=slic_segments,
        slic_compactness=slic_compactness,
        label_slic_segments=int(label_segments),
        label_slic_compactness=float(label_compactness),
        seed=pick("seed", 0),
        log_every=pick("log_every", 50),
        figures_every=pick("figures_every", 1),
        device=device,
        precision=precision,
        deterministic=(not on_gpu) if args.deterministic is None else args.deterministic,
        num_workers=num_workers,
        slic_workers=args.slic_workers,
        cache_dir=None if args.cache_dir is None else str(args.cache_dir),
        resume=bool(args.resume),
        quiet=bool(args.quiet),
    )
    if settings.val_split in ("none", ""):
        settings.val_split = None
    if stored and stored.get("q") != settings.q:
        raise TrainError(
            f"{out} was trained with q={stored.get('q')}; cannot resume with q={settings.q}"
        )
    return settings


# --------------------------------------------------------------------------------------
# Data


class SubsetDataset(ImageDataset):
    """Some images of another :class:`ImageDataset`, in the given order.

    Used for ``--limit`` and for MSRC-v2's held-out validation images. Name, labels,
    size and source are the parent's; the superpixel cache tells subsets apart by their
    ids.
    """

    def __init__(self, parent: ImageDataset, indices: Sequence[int], split: str) -> None:
        super().__init__(parent.root, split, parent.image_size)
        self.parent = parent
        self.indices = [int(i) for i in indices]
        self.name = parent.name
        self.n_classes = parent.n_classes
        self.multilabel = parent.multilabel
        self.class_names = parent.class_names
        self.ids = [parent.ids[i] for i in self.indices]

    @property
    def source(self) -> str | None:
        return self.parent.source

    def _load_image(self, index: int) -> np.ndarray:
        return self.parent._load_image(self.indices[index])

    def _native_shape(self, index: int) -> tuple[int, int]:
        return self.parent._native_shape(self.indices[index])

    def _load_label(self, index: int) -> Any:
        return self.parent._load_label(self.indices[index])

    def _load_ground_truth(self, index: int) -> Any:
        return self.parent._load_ground_truth(self.indices[index])


def _first(dataset: ImageDataset, limit: int | None) -> ImageDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return SubsetDataset(dataset, range(limit), dataset.split)


def split_holdout(dataset: ImageDataset) -> tuple[ImageDataset, ImageDataset]:
    """MSRC-v2's training and held-out validation images when it has no split files:
    every :data:`MSRC_HOLDOUT_EVERY`-th image (ids in manifest order, from the first) is
    held out; training keeps the others. ``unsupseg evaluate --split holdout`` scores the
    same held-out images."""
    every = MSRC_HOLDOUT_EVERY
    held = [i for i in range(len(dataset)) if i % every == 0]
    kept = [i for i in range(len(dataset)) if i % every != 0]
    return (
        SubsetDataset(dataset, kept, f"{dataset.split}-holdout-train"),
        SubsetDataset(dataset, held, f"{dataset.split}-holdout-val"),
    )


def open_training_sets(
    settings: TrainSettings,
) -> tuple[ImageDataset, ImageDataset | None, str]:
    """The training and validation images of a run.

    Returns
    -------
    train, val : ImageDataset (val None without validation)
    description : str
        Where validation comes from, for the log and config.json.

    Notes
    -----
    MSRC-v2 on this project's machines is one half of the database, with no split
    files: validation (``val_split == "holdout"``) is then every 5th image of it (ids in
    manifest order, starting with the first) and training uses the other 4 of every 5.
    """
    name, root, size = settings.dataset, settings.data_root, settings.image_size
    try:
        train = open_dataset(name, root, settings.split, size)
        val, description = None, "none"
        if settings.val_split == "holdout":
            if name == "msrc" and (Path(root) / "splits" / "val.txt").is_file():
                val = open_dataset(name, root, "val", size)
                description = f"{name} split 'val'"
            elif name == "msrc":
                train, val = split_holdout(train)
                description = (
                    f"every {MSRC_HOLDOUT_EVERY}th image of {name} '{settings.split}' "
                    f"({len(val)} images, held out of training, which keeps {len(train)})"
                )
            else:
                raise TrainError("--val-split holdout is only defined for msrc")
        elif settings.val_split is not None:
            val = open_dataset(name, root, settings.val_split, size)
            description = f"{name} split {settings.val_split!r}"
    except DatasetError as exc:
        raise TrainError(f"{exc} (expected layout: {DATA_LAYOUTS[name]})") from None
    train = _first(train, settings.limit)
    if val is not None:
        val = _first(val, settings.val_limit)
    return train, val, description


def _check_labels(preset: Any, train: ImageDataset) -> None:
    if preset.architecture != "classifier":
        return
    outputs = preset.classifier_outputs
    if train.n_classes is None:
        raise TrainError(
            f"the classifier architecture trains on image-level labels, and {train.name} has "
            "none; use a base or autoencoder preset, or a labelled data set"
        )
    if bool(train.multilabel) != bool(preset.multi_label):
        kind = "multi-label" if train.multilabel else "single-label"
        raise TrainError(
            f"preset {preset.name} expects {'multi' if preset.multi_label else 'single'}-label "
            f"targets but {train.name} is {kind}; choose a classifier preset of that kind"
        )
    if train.multilabel and train.n_classes != outputs:
        raise TrainError(
            f"{train.name} has {train.n_classes} classes but preset {preset.name} has "
            f"{outputs} outputs"
        )
    if not train.multilabel and train.n_classes > outputs:
        raise TrainError(
            f"{train.name} has {train.n_classes} classes but preset {preset.name} only "
            f"{outputs} outputs"
        )


# --------------------------------------------------------------------------------------
# Checkpoints


def _library_versions() -> dict[str, str]:
    from unsupseg.outputs import library_versions

    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses
    versions = {name: str(version) for name, version in library_versions().items()}
    for package in ("lightning", "tensorboard"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def checkpoint_info(settings: TrainSettings, train: ImageDataset) -> dict[str, Any]:
    """What a checkpoint records besides the weights (plain data only)."""
    from unsupseg.models import get_preset

    preset = get_preset(settings.preset)
    if settings.refine == "superpixel-vote":
        refine = {
            "method": "superpixel-vote",
            "n_segments": settings.slic_segments,
            "compactness": settings.slic_compactness,
        }
    else:
        refine = {
            "method": "label-slic",
            "n_segments": settings.label_slic_segments,
            "compactness": settings.label_slic_compactness,
        }
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "preset": preset.name,
        "architecture": preset.architecture,
        "dataset": preset.dataset,
        "trained_on": {"dataset": train.name, "split": settings.split, "images": len(train)},
        "model_overrides": {"q": int(settings.q)},
        "q": int(settings.q),
        "image_size": settings.image_size,
        "crop_size": settings.crop_size,
        "multi_label": bool(preset.multi_label),
        "n_classes": train.n_classes,
        "class_names": None if train.class_names is None else list(train.class_names),
        "refine": refine,
        "slic": {
            "n_segments": settings.slic_segments,
            "compactness": settings.slic_compactness,
            "note": "SLIC of the images; n_segments None: scaled to the image size",
        },
        "seed": settings.seed,
        "settings": settings.to_dict(),
        "versions": _library_versions(),
    }


def load_checkpoint(
    path: str | os.PathLike,
    *,
    preset: str | None = None,
    architecture: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint, reading it with ``weights_only=True``.

    Parameters
    ----------
    path : path
        ``model-last.pt`` / ``model-best.pt`` or a Lightning ``last.ckpt`` / ``best.ckpt``
        written by :func:`train`.
    preset, architecture : str, optional
        Refuse a checkpoint of another preset or architecture.
    map_location : device

    Returns
    -------
    model : nn.Module
        In train mode, on ``map_location``.
    info : dict
        Everything the checkpoint records except the weights: ``preset``,
        ``architecture``, ``model_overrides`` (``q``), ``image_size``, ``crop_size``,
        ``refine`` (method and SLIC parameters), ``slic``, ``epoch``, ``global_step``,
        ``metrics``, ``settings``, ``versions``...

    Raises
    ------
    ValueError
        For a file that is not an unsupseg checkpoint, or of another preset or
        architecture than asked.
    """
    from unsupseg.models import build_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike mean "not ours"
        raise ValueError(
            f"{path}: not an unsupseg checkpoint (torch.load with weights_only=True failed: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        info = {k: v for k, v in data.items() if k != "state_dict"}
        state = data.get("state_dict")
    elif (
        isinstance(data, dict)
        and isinstance(data.get("unsupseg"), dict)
        and data["unsupseg"].get("format") == CHECKPOINT_FORMAT
    ):
        info = dict(data["unsupseg"])
        info.setdefault("epoch", data.get("epoch"))
        info.setdefault("global_step", data.get("global_step"))
        state = {
            k.removeprefix("model."): v
            for k, v in data.get("state_dict", {}).items()
            if k.startswith("model.")
        }
    else:
        raise ValueError(
            f"{path}: not an unsupseg checkpoint (no {CHECKPOINT_FORMAT!r} record); write one "
            "with 'unsupseg train'"
        )
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: unsupseg checkpoint without weights")
    if int(info.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {info.get('format_version')} is newer than this "
            f"unsupseg reads ({CHECKPOINT_VERSION}); upgrade unsupseg"
        )
    if preset is not None and info.get("preset") != preset:
        raise ValueError(
            f"{path}: checkpoint of preset {info.get('preset')!r} "
            f"({info.get('architecture')}), not the {preset!r} asked for"
        )
    if architecture is not None and info.get("architecture") != architecture:
        raise ValueError(
            f"{path}: checkpoint of a {info.get('architecture')!r} model "
            f"(preset {info.get('preset')!r}), not the {architecture!r} architecture asked for"
        )
    try:
        model = build_model(
            info["preset"], init=False, backbone_weights=False, **info["model_overrides"]
        )
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: its weights do not fit preset {info.get('preset')!r} with "
            f"{info.get('model_overrides')} ({type(exc).__name__}: {exc})"
        ) from None
    return model.to(map_location), info


def load_trained_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    *,
    preset: str | None = None,
    architecture: str | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A trained model ready for inference: :func:`load_checkpoint`, on ``device``
    (``None``/``"auto"``: CUDA when available), in eval mode.

    Returns
    -------
    model, info : see :func:`load_checkpoint`.
    """
    from unsupseg.device import resolve_device

    resolved = resolve_device(device)
    model, info = load_checkpoint(
        path, preset=preset, architecture=architecture, map_location=resolved
    )
    return model.eval(), info


# --------------------------------------------------------------------------------------
# Figures


def save_sample_panels(path: Path, predictions: list[dict[str, Any]], epoch: int) -> None:
    """The seed's panel, one row per image: Main image | Argmax output | SLIC output |
    Reconstructed image (autoencoder only)."""
    import matplotlib.pyplot as plt  # after unsupseg.viz, which selects Agg

    titles = ["Main image", "Argmax output", "SLIC output"]
    if any(p["reconstruction"] is not None for p in predictions):
        titles.append("Reconstructed image")
    rows = len(predictions)
    fig, axes = plt.subplots(
        rows, len(titles), figsize=(3.0 * len(titles), 2.6 * rows), squeeze=False
    )
    for row, prediction in enumerate(predictions):
        pictures = [prediction["image"], colorize(prediction["argmax"])]
        pictures.append(colorize(prediction["refined"]))
        if len(titles) == 4:
            pictures.append(prediction["reconstruction"])
        for col, picture in enumerate(pictures):
            axis = axes[row, col]
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[col], fontsize=10)
        n_labels = len(np.unique(prediction["argmax"]))
        axes[row, 0].set_ylabel(f"{prediction['id']}", fontsize=8)
        axes[row, 1].set_xlabel(f"{n_labels} labels", fontsize=8)
    fig.suptitle(f"after epoch {epoch}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _epoch_series(rows: list[dict[str, Any]], split: str, key: str) -> tuple[list, list]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if row["split"] == split and value is not None and math.isfinite(value):
            xs.append(row["epoch"])
            ys.append(value)
    return xs, ys


def save_loss_curves(
    path: Path, rows: list[dict[str, Any]], aux_label: str = "auxiliary loss"
) -> None:
    """Train and validation curves of every loss term against the epoch."""
    import matplotlib.pyplot as plt  # after unsupseg.viz, which selects Agg
    from matplotlib.ticker import MaxNLocator

    terms = [("loss", "total loss"), ("loss_seg", "segmentation CE")]
    if _epoch_series(rows, "train", "loss_aux")[0]:
        terms.append(("loss_aux", aux_label))
    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3.4), squeeze=False)
    for axis, (key, title) in zip(axes[0], terms, strict=True):
        for split, style in (("train", "o-"), ("val", "s--")):
            xs, ys = _epoch_series(rows, split, key)
            if xs:
                axis.plot(xs, ys, style, label=split, markersize=3)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def save_unique_labels_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    """Mean number of distinct argmax labels per image against the epoch."""
    import matplotlib.pyplot as plt  # after unsupseg.viz, which selects Agg
    from matplotlib.ticker import MaxNLocator

    fig, axis = plt.subplots(figsize=(5, 3.4))
    for split, style in (("train", "o-"), ("val", "s--")):
        xs, ys = _epoch_series(rows, split, "unique_labels")
        if xs:
            axis.plot(xs, ys, style, label=split, markersize=3)
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("unique labels per image")
    axis.set_title("merging: distinct argmax labels", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _strip_columns(epochs: list[int]) -> list[int]:
    if len(epochs) <= MAX_STRIP_COLUMNS:
        return epochs
    picks = np.linspace(0, len(epochs) - 1, MAX_STRIP_COLUMNS).round().astype(int)
    return [epochs[i] for i in sorted(set(picks.tolist()))]


def save_merging_strip(
    path: Path, images: list[np.ndarray], snapshots: dict[int, list[np.ndarray]]
) -> None:
    """Rows = images, columns = the image then its argmax after each epoch shown."""
    import matplotlib.pyplot as plt  # after unsupseg.viz, which selects Agg

    epochs = _strip_columns(sorted(snapshots))
    rows, cols = len(images), len(epochs) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.0 * rows), squeeze=False)
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        for col, epoch in enumerate(epochs, start=1):
            labels = snapshots[epoch][row]
            axes[row, col].imshow(colorize(labels), interpolation="nearest")
            axes[row, col].set_xlabel(f"{len(np.unique(labels))} labels", fontsize=7)
            if row == 0:
                axes[row, col].set_title(f"epoch {epoch}", fontsize=9)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=9)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------------------
# Running


def _distributed_layout() -> tuple[int, int] | None:
    """(devices per node, nodes) under torchrun with several processes, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return local, max(1, world // local)


def _trainer_hardware(settings: TrainSettings) -> dict[str, Any]:
    from lightning.pytorch.strategies import DDPStrategy

    on_gpu = settings.device.startswith("cuda")
    options: dict[str, Any] = {"accelerator": "gpu" if on_gpu else "cpu"}
    layout = _distributed_layout()
    if layout is not None:
        devices, nodes = layout
        backend = "nccl" if on_gpu else "gloo"
        options.update(
            devices=devices, num_nodes=nodes, strategy=DDPStrategy(process_group_backend=backend)
        )
    elif on_gpu and ":" in settings.device:
        options.update(devices=[int(settings.device.split(":", 1)[1])])
    else:
        options.update(devices=1)
    return options


@dataclass
class TrainResult:
    """Where a finished run left its files."""

    out: Path
    last_checkpoint: Path
    best_checkpoint: Path
    model_last: Path
    model_best: Path
    metrics: Path


def train(settings: TrainSettings) -> TrainResult:
    """Train (or resume) the run described by ``settings``; see the module docstring."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from unsupseg.lightning import (
        AtomicCheckpointIO,
        SegmentationDataModule,
        SegmentationModule,
        TrainingRecorder,
    )
    from unsupseg.models import build_model, count_parameters, get_preset

    preset = get_preset(settings.preset)
    out = Path(settings.out)
    checkpoints = out / "checkpoints"
    last = checkpoints / "last.ckpt"
    if last.exists() and not settings.resume:
        raise TrainError(
            f"{out} already holds a run ({last}); pass --resume to continue it, or choose "
            "another --out"
        )
    resume_from = last if settings.resume and last.exists() else None
    if settings.resume and resume_from is None:
        log.info("--resume: no %s yet, starting a new run", last)
    if settings.refine not in REFINEMENTS:
        raise TrainError(f"--refine must be one of {', '.join(REFINEMENTS)}")
    if preset.head in ("cifar10", "stl10") and settings.crop_size not in (
        None,
        preset.image_size,
    ):
        raise TrainError(
            f"preset {preset.name}'s classifier head needs {preset.image_size}x"
            f"{preset.image_size} images: --crop-size cannot be used with it"
        )

    train_set, val_set, val_description = open_training_sets(settings)
    _check_labels(preset, train_set)
    info = checkpoint_info(settings, train_set)
    info["validation"] = val_description

    L.seed_everything(settings.seed, workers=True, verbose=False)
    model = build_model(preset, q=settings.q)  # Xavier init from the seeded generator
    module = SegmentationModule(
        model,
        refine=settings.refine,
        label_slic_segments=settings.label_slic_segments,
        label_slic_compactness=settings.label_slic_compactness,
        aux_weight=settings.aux_weight,
        multi_label=preset.multi_label,
        optimizer=settings.optimizer,
        lr=settings.lr,
        momentum=settings.momentum,
        lr_step_size=settings.lr_step_size,
        lr_gamma=settings.lr_gamma,
        seed=settings.seed,
    )
    module.checkpoint_info = info
    data = SegmentationDataModule(
        train_set,
        val_set,
        crop_size=settings.crop_size,
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        seed=settings.seed,
        n_segments=settings.slic_segments,
        compactness=settings.slic_compactness,
        cache_dir=settings.cache_dir,
        slic_workers=settings.slic_workers,
        progress=not settings.quiet,
    )
    has_val = val_set is not None
    recorder = TrainingRecorder(
        out,
        info,
        has_val=has_val,
        log_every=settings.log_every,
        figures_every=settings.figures_every,
        samples=lambda: data.sample_items(N_SAMPLES),
    )
    callbacks = [
        recorder,
        ModelCheckpoint(
            dirpath=checkpoints, save_top_k=0, save_last=True, save_on_train_epoch_end=True
        ),
        ModelCheckpoint(
            dirpath=checkpoints,
            filename="best",
            monitor=recorder.monitor,
            mode="min",
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
    ]
    logger: Any = False
    if importlib.util.find_spec("tensorboard") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(
            save_dir=out, name="tensorboard", version="", default_hp_metric=False
        )
    if settings.quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    deterministic_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=settings.epochs,
        precision=settings.precision,
        deterministic=settings.deterministic,
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        enable_progress_bar=not settings.quiet,
        enable_model_summary=False,
        log_every_n_steps=settings.log_every,
        use_distributed_sampler=False,
        **_trainer_hardware(settings),
    )
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "settings": settings.to_dict(),
            "preset": dataclasses.asdict(preset),
            "validation": val_description,
            "train_images": len(train_set),
            "val_images": 0 if val_set is None else len(val_set),
            "parameters": count_parameters(model),
            "world_size": trainer.world_size,
            "superpixel_cache": str(settings.cache_dir or default_cache_dir()),
            "resumed_from": None if resume_from is None else str(resume_from),
            "versions": info["versions"],
        }
        write_json(out / "config.json", config)
        log.info(
            "training %s (%d parameters) on %d %s images, validation: %s -> %s",
            preset.name,
            config["parameters"],
            len(train_set),
            train_set.name,
            val_description,
            out,
        )
    try:
        with warnings.catch_warnings():
            for message in (
                ".*does not have many workers.*",
                ".*is smaller than the logging interval.*",
                ".*Checkpoint directory .* exists and is not empty.*",
                ".*exists and is not empty.*",
                ".*sync_dist=True.*",  # the values logged are already reduced over processes
                ".*treespec, LeafSpec.*",
            ):
                warnings.filterwarnings("ignore", message=message)
            trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    finally:
        torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)
    return TrainResult(
        out=out,
        last_checkpoint=last,
        best_checkpoint=checkpoints / "best.ckpt",
        model_last=checkpoints / "model-last.pt",
        model_best=checkpoints / "model-best.pt",
        metrics=out / "metrics.csv",
    )


# --------------------------------------------------------------------------------------
# Command line


def add_train_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    """Add ``unsupseg train`` to the subcommands; ``number(kind, minimum, exclusive)``
    is the CLI's numeric argparse type."""
    from unsupseg.models import PRESETS

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
        "--out", type=Path, default=None, help="run folder (default: runs/<preset>)"
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
        default=None,
        help="data set to train on (default: the preset's; 'folder' = any folder of images)",
    )
    data.add_argument(
        "--data-root",
        default=None,
        help="where the data set lies (default: $UNSUPSEG_DATA/<name> or "
        "../shared/data/<name>, e.g. bsds500, msrc_v2, cifar10_partial)",
    )
    data.add_argument(
        "--split",
        default=None,
        help="training split (default: train; folder: its train/ subfolder, else the folder)",
    )
    data.add_argument(
        "--val-split",
        default=None,
        help="validation split, or 'none' (default: BSDS500 val, CIFAR-10/STL-10 test, "
        "VOC val, MSRC every 5th image held out of training, folder none)",
    )
    data.add_argument(
        "--limit", type=number(int, 1), default=None, help="use only the first N training images"
    )
    data.add_argument(
        "--val-limit",
        type=number(int, 1),
        default=None,
        help="use only the first N validation images",
    )
    data.add_argument(
        "--num-workers",
        type=number(int, 0),
        default=None,
        help="DataLoader worker processes per GPU/process (default: 0 on <= 2 CPUs, "
        "else min(4, CPUs/2))",
    )
    data.add_argument(
        "--slic-workers",
        type=number(int, 1),
        default=None,
        help="processes that compute the superpixel cache (default: all CPUs)",
    )
    data.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="superpixel cache folder (default: $UNSUPSEG_CACHE/superpixels or "
        "~/.cache/unsupseg/superpixels)",
    )
    opt = parser.add_argument_group("optimisation (default: the preset's)")
    opt.add_argument("--epochs", type=number(int, 1), default=None, help="epochs to train in all")
    opt.add_argument(
        "--lr", type=number(float, 0, exclusive=True), default=None, help="learning rate"
    )
    opt.add_argument("--batch-size", type=number(int, 1), default=None, help="images per batch")
    opt.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="optimiser")
    opt.add_argument("--momentum", type=number(float, 0), default=None, help="SGD momentum")
    opt.add_argument(
        "--lr-step-size", type=number(int, 1), default=None, help="StepLR period in epochs"
    )
    opt.add_argument(
        "--lr-gamma",
        type=number(float, 0, exclusive=True),
        default=None,
        help="StepLR factor applied every --lr-step-size epochs",
    )
    opt.add_argument(
        "--aux-weight",
        type=number(float, 0),
        default=None,
        help="weight of the classifier / reconstruction loss (segmentation loss: 1)",
    )
    opt.add_argument("--seed", type=number(int, 0), default=None, help="random seed (default 0)")
    algo = parser.add_argument_group("model and refinement")
    algo.add_argument(
        "--q",
        type=number(int, 2),
        default=None,
        help="output channels of the FCN: the most labels possible",
    )
    algo.add_argument(
        "--crop-size",
        type=number(int, 0),
        default=None,
        help="side of the random square training crops; 0 = whole images "
        "(default: 160 for the photos presets, whole images for the seed's)",
    )
    algo.add_argument(
        "--refine",
        choices=REFINEMENTS,
        default=None,
        help="superpixel-vote: majority argmax label in each SLIC superpixel of the image "
        "(default); label-slic: SLIC on the argmax label map (the thesis code)",
    )
    algo.add_argument(
        "--n-segments",
        type=number(int, 1),
        default=None,
        help="SLIC segments: of the images for superpixel-vote (default ~1 per 100 "
        "pixels), of the label map for label-slic (default 7)",
    )
    algo.add_argument(
        "--compactness",
        type=number(float, 0, exclusive=True),
        default=None,
        help="SLIC compactness: images (default 10) or label map (default 1e-4)",
    )
    run = parser.add_argument_group("hardware and output")
    run.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda or cuda:N (under torchrun each process takes its local GPU)",
    )
    run.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="default: 32 on the CPU, bf16-mixed on a GPU (16-mixed without bfloat16)",
    )
    run.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deterministic algorithms only (default: on for the CPU, off on GPUs)",
    )
    run.add_argument(
        "--log-every",
        type=number(int, 1),
        default=None,
        help="a train_step row in metrics.csv every N optimiser steps (default 50)",
    )
    run.add_argument(
        "--figures-every",
        type=number(int, 1),
        default=None,
        help="panel and merging figures every N epochs, and after the last (default 1)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run ``unsupseg train`` from parsed arguments; returns the exit status."""
    if args.out is None:
        args.out = Path("runs") / args.preset
    try:
        settings = resolve_settings(args)
        result = train(settings)
    except (TrainError, DatasetError) as exc:
        log.error("%s", exc)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        log.info(
            "done: %s (checkpoints in %s, figures in %s)",
            result.metrics,
            result.last_checkpoint.parent,
            result.out / "figures",
        )
    return 0


def build_train_parser() -> argparse.ArgumentParser:
    """A parser for ``train`` alone (``python -m unsupseg.train``, torchrun)."""
    from unsupseg.cli.common import number as _number

    parser = argparse.ArgumentParser(prog="unsupseg")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_parser(commands, _number)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m unsupseg.train [train] ARGS``: the train command without the CLI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "train":
        argv = ["train", *argv]
    args = build_train_parser().parse_args(argv)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return run_train(args)


if __name__ == "__main__":
    sys.exit(main())
