"""The settings of a training run, and how a preset (and a resumed run) fill them.

:class:`TrainConfig` is plain data with a default for every field. ``None`` means "not
given": :func:`resolve_config` fills it from the stored ``config.json`` of a resumed run
(training settings only, not the hardware), then from the preset. The resolved settings
are written to ``config.json`` (its ``settings`` object, :meth:`TrainConfig.settings`)
and into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unsupseg.algorithm import LABEL_SLIC_COMPACTNESS, LABEL_SLIC_SEGMENTS
from unsupseg.checks import check_number, check_seed
from unsupseg.data.locate import default_data_root
from unsupseg.device import resolve_device
from unsupseg.errors import ConfigError
from unsupseg.models import get_preset
from unsupseg.models.blocks import PADDINGS
from unsupseg.refine import REFINEMENTS
from unsupseg.run_folder import CONFIG_NAME, read_run_folder

__all__ = [
    "DATASET_CHOICES",
    "DEFAULT_VAL_SPLITS",
    "OPTIMIZERS",
    "PRECISIONS",
    "TrainConfig",
    "resolve_config",
]

PRECISIONS = ("32", "16-mixed", "bf16-mixed")
OPTIMIZERS = ("sgd", "adam")
DATASET_CHOICES = ("cifar10", "stl10", "voc2012", "msrc", "bsds500", "folder")
#: Validation split used when none is given.
DEFAULT_VAL_SPLITS: dict[str, str | None] = {
    "bsds500": "val",
    "cifar10": "test",
    "stl10": "test",
    "voc2012": "val",
    "msrc": "holdout",
    "folder": None,
}
#: Fields that only steer the resolution; they are not part of the stored settings.
_SHORTCUTS = ("n_segments", "compactness")
#: Smallest accepted value of the numeric fields, and whether it is excluded.
_MINIMUMS: dict[str, tuple[float, bool]] = {
    "limit": (1, False),
    "val_limit": (1, False),
    "epochs": (1, False),
    "lr": (0, True),
    "batch_size": (1, False),
    "momentum": (0, False),
    "lr_step_size": (1, False),
    "lr_gamma": (0, True),
    "aux_weight": (0, False),
    "q": (2, False),
    "crop_size": (0, False),
    "slic_segments": (1, False),
    "slic_compactness": (0, True),
    "label_slic_segments": (1, False),
    "label_slic_compactness": (0, True),
    "seed": (0, False),
    "log_every": (1, False),
    "figures_every": (1, False),
    "checkpoint_every": (0, False),
    "num_workers": (0, False),
    "slic_workers": (1, False),
    "n_segments": (1, False),
    "compactness": (0, True),
}


@dataclass
class TrainConfig:
    """Every setting of a training run; ``None`` takes the preset's (or, with
    ``resume``, the stored run's) value.

    Parameters
    ----------
    preset : str
        The model and training preset (``unsupseg models`` lists them), e.g.
        ``"base-bsds500"``, ``"autoencoder-cifar10"``, ``"classifier-msrc"``.
    out : path, optional
        The run folder. Default: ``runs/<preset>``, relative to the current directory.
    dataset : {"cifar10", "stl10", "voc2012", "msrc", "bsds500", "folder"}, optional
        The data set to train on (default: the preset's; ``folder``: any folder of
        images, which then needs ``data_root``).
    data_root : path, optional
        Where the data set lies. Default: ``$UNSUPSEG_DATA/<name>`` or
        ``../shared/data/<name>`` beside the current directory
        (:func:`unsupseg.data.locate.default_data_root`).
    split : str, optional
        Training split (default ``train``; for a folder its ``train/`` subfolder when it
        has one, else the folder itself).
    val_split : str, optional
        Validation split, or ``"none"``. Default: BSDS500 ``val``, CIFAR-10/STL-10
        ``test``, VOC ``val``, MSRC-v2 ``holdout`` (every 5th image, held out of
        training), folder none.
    limit, val_limit : int, optional
        Use only the first N training / validation images.
    epochs : int, optional
        Epochs to train in all (a resumed run continues up to this number).
    lr : float, optional
        Learning rate.
    batch_size : int, optional
        Images per batch (per process under DDP).
    optimizer : {"sgd", "adam"}, optional
    momentum : float, optional
        SGD momentum (ignored by Adam).
    lr_step_size, lr_gamma : int, float, optional
        ``StepLR``: the learning rate is multiplied by ``lr_gamma`` every
        ``lr_step_size`` epochs.
    aux_weight : float, optional
        Weight of the classifier or reconstruction loss (the segmentation loss has 1).
    q : int, optional
        Output channels of the FCN: the most labels possible.
    padding : {"zeros", "reflect", "replicate"}, optional
        Border padding of the FCN (default: the preset's; a resumed run keeps its own,
        zeros for runs that did not record one).
    crop_size : int, optional
        Side of the random square training crops; 0 = whole images. Default: the
        preset's (160 for the photos presets, whole images for the thesis' presets).
    image_size : int, optional
        The square size images are resized to: always the preset's (32 for CIFAR-10,
        96 for STL-10, 224 for VOC, None for the photos); another value is refused.
    refine : {"superpixel-vote", "label-slic"}, optional
        ``superpixel-vote`` (default): majority argmax label in each SLIC superpixel of
        the image (Kanezaki 2018); ``label-slic``: SLIC on the argmax label map (the
        thesis code).
    n_segments, compactness : int, float, optional
        SLIC of the chosen refinement, as the command line's ``--n-segments`` and
        ``--compactness``: they set ``slic_segments`` / ``slic_compactness`` for
        ``superpixel-vote`` and ``label_slic_segments`` / ``label_slic_compactness`` for
        ``label-slic`` (over a value given there). Not stored themselves.
    slic_segments, slic_compactness : int, float, optional
        SLIC of the images (the superpixel cache). Default: about one segment per 100
        pixels, compactness 10.
    label_slic_segments, label_slic_compactness : int, float, optional
        SLIC of the label map for ``label-slic`` (default 7 and 1e-4, the thesis
        code's).
    seed : int, optional
        Random seed of the initialisation, the batch order, the crops and dropout
        (default 0).
    log_every : int, optional
        A ``train_step`` row in metrics.csv every N optimiser steps (default 50).
    figures_every : int, optional
        Panel and merging figures every N epochs, and after the last (default 1).
    checkpoint_every : int, optional
        Also write ``checkpoints/last.ckpt`` every N optimiser steps within an epoch, so
        a killed run resumes from its last such step (default 0: at the end of every
        epoch only). A resumed run continues bit for bit either way.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; under
        torchrun each process takes its local GPU.
    precision : {"32", "16-mixed", "bf16-mixed"}, optional
        Default: 32 on the CPU, bf16-mixed on a GPU (16-mixed without bfloat16).
    deterministic : bool, optional
        Deterministic algorithms only (default: on for the CPU, off on GPUs).
    num_workers : int, optional
        DataLoader worker processes per process (default: 0 on <= 2 CPUs, else
        min(4, CPUs / 2)).
    slic_workers : int, optional
        Processes that compute the superpixel cache (default: all CPUs).
    cache_dir : path, optional
        Superpixel cache folder (default: ``$UNSUPSEG_CACHE/superpixels`` or
        ``~/.cache/unsupseg/superpixels``).
    resume : bool
        Continue from ``out/checkpoints/last.ckpt`` (a new run when there is none yet).
        Without it, a folder that already holds a run is refused.
    quiet : bool
        No progress bars.

    Notes
    -----
    ``device``, ``precision``, ``deterministic``, the workers, ``cache_dir`` and
    ``quiet`` belong to this process, so a resumed run never takes them from the stored
    config.

    Examples
    --------
    >>> from unsupseg.training import TrainConfig, resolve_config
    >>> config = TrainConfig(preset="base-cifar10", out="runs/x", epochs=2, q=8)
    >>> config.lr is None  # taken from the preset when resolved
    True
    """

    preset: str = "base-bsds500"
    out: str | os.PathLike | None = None
    dataset: str | None = None
    data_root: str | os.PathLike | None = None
    split: str | None = None
    val_split: str | None = None
    limit: int | None = None
    val_limit: int | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    momentum: float | None = None
    lr_step_size: int | None = None
    lr_gamma: float | None = None
    aux_weight: float | None = None
    q: int | None = None
    padding: str | None = None
    crop_size: int | None = None
    image_size: int | None = None
    refine: str | None = None
    slic_segments: int | None = None
    slic_compactness: float | None = None
    label_slic_segments: int | None = None
    label_slic_compactness: float | None = None
    seed: int | None = None
    log_every: int | None = None
    figures_every: int | None = None
    checkpoint_every: int | None = None
    device: str = "auto"
    precision: str | None = None
    deterministic: bool | None = None
    num_workers: int | None = None
    slic_workers: int | None = None
    cache_dir: str | os.PathLike | None = None
    resume: bool = False
    quiet: bool = False
    n_segments: int | None = None
    compactness: float | None = None

    def settings(self) -> dict[str, Any]:
        """The ``settings`` object of ``config.json`` and of the checkpoints: every
        field but ``n_segments`` and ``compactness`` (folded into the SLIC fields)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _SHORTCUTS
        }


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_numbers(config: TrainConfig) -> None:
    for name, (minimum, exclusive) in _MINIMUMS.items():
        value = getattr(config, name)
        if value is not None:
            check_number(name, value, minimum=minimum, exclusive_minimum=exclusive)
    if config.seed is not None:
        check_seed(config.seed)


def _default_workers() -> int:
    cpus = os.cpu_count() or 1
    return 0 if cpus <= 2 else min(4, cpus // 2)


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Every setting of a run, filled: given value, then the stored run, then the preset.

    With ``resume`` and an ``out/config.json``, a setting left at None takes the stored
    run's value (training settings only: never the device, precision, workers or
    cache). Whatever is still None takes the preset's value or the default documented
    in :class:`TrainConfig`.

    Parameters
    ----------
    config : TrainConfig

    Returns
    -------
    TrainConfig
        The settings as :func:`unsupseg.training.train` uses and stores them: ``out``,
        ``data_root`` and ``cache_dir`` as strings, ``data_root`` absolute, ``device``
        resolved (``"cpu"``, ``"cuda:0"``), ``val_split`` None without validation,
        ``crop_size`` None for whole images.

    Raises
    ------
    ConfigError
        For an unknown preset, data set, refinement, optimiser or precision; a value out
        of range; a resumed run of another preset or ``q``; mixed precision without a
        GPU; a device that is not there.
    DatasetError
        When no ``data_root`` is given and the data set is in none of the default places.
    RunFolderError
        When the ``config.json`` of the run to resume is corrupt.

    Examples
    --------
    >>> config = resolve_config(TrainConfig(preset="base-cifar10", data_root="."))
    >>> config.lr, config.epochs, config.val_split, config.out  # doctest: +SKIP
    (0.001, 30, 'test', 'runs/base-cifar10')
    """
    try:
        preset = get_preset(config.preset)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _check_choice("dataset", config.dataset, DATASET_CHOICES)
    _check_choice("refine", config.refine, REFINEMENTS)
    _check_choice("optimizer", config.optimizer, OPTIMIZERS)
    _check_choice("precision", config.precision, PRECISIONS)
    _check_choice("padding", config.padding, PADDINGS)
    _check_numbers(config)
    if config.image_size not in (None, preset.image_size):
        raise ConfigError(
            f"image_size is the preset's ({preset.image_size} for {preset.name}); "
            f"got {config.image_size}"
        )
    out = Path(config.out) if config.out is not None else Path("runs") / preset.name
    stored: dict[str, Any] = {}
    if config.resume and (out / CONFIG_NAME).is_file():
        stored = read_run_folder(out).settings
        if stored.get("preset") != preset.name:
            raise ConfigError(
                f"{out} holds a run of preset {stored.get('preset')!r}, not {preset.name!r}: "
                "resume it with its own preset or choose another --out"
            )

    def pick(name: str, default: Any) -> Any:
        value = getattr(config, name)
        if value is not None:
            return value
        if name in stored:
            return stored[name]
        return default

    dataset = pick("dataset", preset.dataset)
    data_root = config.data_root
    if data_root is None:
        data_root = stored.get("data_root") or default_data_root(dataset)
    root = Path(data_root).expanduser().resolve()
    if dataset == "folder":
        default_split = "train" if (root / "train").is_dir() else "all"
    else:
        default_split = "train"
    refine = pick("refine", "superpixel-vote")
    # n_segments / compactness set the SLIC of the chosen refinement: of the images (the
    # superpixel cache) for superpixel-vote, of the label map for label-slic.
    slic_segments = pick("slic_segments", None)
    slic_compactness = pick("slic_compactness", None)
    label_segments = pick("label_slic_segments", LABEL_SLIC_SEGMENTS)
    label_compactness = pick("label_slic_compactness", LABEL_SLIC_COMPACTNESS)
    if refine == "label-slic":
        label_segments = config.n_segments if config.n_segments is not None else label_segments
        if config.compactness is not None:
            label_compactness = config.compactness
    else:
        slic_segments = config.n_segments if config.n_segments is not None else slic_segments
        if config.compactness is not None:
            slic_compactness = config.compactness
    crop = pick("crop_size", preset.crop_size)
    crop = None if crop in (None, 0) else int(crop)
    device = str(resolve_device(config.device))
    on_gpu = device.startswith("cuda")
    if config.precision is not None:
        precision = config.precision
    elif on_gpu:
        precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    else:
        precision = "32"
    if precision != "32" and not on_gpu:
        raise ConfigError(f"--precision {precision} needs a GPU; use 32 on the CPU")
    val_split = pick("val_split", DEFAULT_VAL_SPLITS[dataset])
    resolved = TrainConfig(
        preset=preset.name,
        out=str(out),
        dataset=dataset,
        data_root=str(root),
        split=pick("split", default_split),
        val_split=None if val_split in ("none", "") else val_split,
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
        # a stored run without the key predates the setting and was trained with zeros
        padding=pick("padding", "zeros" if stored else preset.padding),
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
        checkpoint_every=pick("checkpoint_every", 0),
        device=device,
        precision=precision,
        deterministic=(not on_gpu) if config.deterministic is None else config.deterministic,
        num_workers=_default_workers() if config.num_workers is None else config.num_workers,
        slic_workers=config.slic_workers,
        cache_dir=None if config.cache_dir is None else str(config.cache_dir),
        resume=bool(config.resume),
        quiet=bool(config.quiet),
        n_segments=config.n_segments,
        compactness=config.compactness,
    )
    if stored and stored.get("q") != resolved.q:
        raise ConfigError(
            f"{out} was trained with q={stored.get('q')}; cannot resume with q={resolved.q}"
        )
    if stored and stored.get("padding", "zeros") != resolved.padding:
        raise ConfigError(
            f"{out} was trained with padding={stored.get('padding', 'zeros')}; cannot resume "
            f"with padding={resolved.padding}"
        )
    _check_numbers(resolved)  # the stored run's values too (a config.json edited by hand)
    return resolved
