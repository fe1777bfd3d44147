"""``train(config)``: one network trained on a whole data set, with PyTorch Lightning.

The method is :class:`~unsupseg.training.module.SegmentationModule`; the batches come
from :class:`~unsupseg.training.data.SegmentationDataModule`; the run folder is written
by :class:`~unsupseg.training.recorder.TrainingRecorder`,
:class:`~unsupseg.training.recorder.LastCheckpoint` and Lightning's ``ModelCheckpoint`` and
``TensorBoardLogger``. This module checks the run folder (and the checkpoint to resume
from) before any work, resolves the settings, picks the hardware (one device, or DDP
under torchrun) and runs the Trainer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from unsupseg.checks import check_output_folder
from unsupseg.data import default_cache_dir
from unsupseg.errors import CheckpointError, ConfigError, UnsupsegError
from unsupseg.io import sweep_stale_temporaries, write_json
from unsupseg.models import build_model, count_parameters, get_preset
from unsupseg.run_folder import CONFIG_NAME, METRICS_NAME
from unsupseg.training.config import TrainConfig, resolve_config
from unsupseg.training.data import SegmentationDataModule, check_labels, open_training_sets
from unsupseg.training.module import SegmentationModule
from unsupseg.training.recorder import (
    AtomicCheckpointIO,
    LastCheckpoint,
    TrainingRecorder,
    checkpoint_info,
)

log = logging.getLogger("unsupseg")

__all__ = [
    "N_SAMPLES",
    "TrainResult",
    "check_resumable",
    "distributed_layout",
    "train",
    "trainer_hardware",
]

#: Images shown in the panels and the merging strip.
N_SAMPLES = 4
#: Lightning warnings that say nothing to act on for these runs.
_QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*is smaller than the logging interval.*",
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*exists and is not empty.*",
    ".*sync_dist=True.*",  # the values logged are already reduced over processes
    ".*treespec, LeafSpec.*",
    ".*Total length of .* across ranks is zero.*",  # no validation
    # the sampler continues an epoch cut short (SegmentationDataModule.state_dict)
    ".*ended before the epoch ended and your dataloader is not resumable.*",
)
#: Keys every Lightning checkpoint of a run has; one without them cannot be resumed.
_RESUME_KEYS = ("state_dict", "optimizer_states", "loops", "epoch", "global_step")


@dataclass
class TrainResult:
    """Where a finished run left its files.

    Attributes
    ----------
    out : Path
        The run folder.
    config : TrainConfig
        The resolved settings (the ``settings`` of ``config.json``).
    last_checkpoint, best_checkpoint : Path
        Lightning checkpoints ``checkpoints/last.ckpt`` and ``best.ckpt``.
    model_last, model_best : Path
        Plain checkpoints ``checkpoints/model-last.pt`` and ``model-best.pt``
        (:func:`unsupseg.load_checkpoint` reads all four).
    metrics : Path
        ``metrics.csv``.
    figures : Path
        ``figures/``.
    rank : int
        This process's rank: 0, except in the other processes of a DDP run.
    """

    out: Path
    config: TrainConfig
    last_checkpoint: Path
    best_checkpoint: Path
    model_last: Path
    model_best: Path
    metrics: Path
    figures: Path
    rank: int = 0


def distributed_layout() -> tuple[int, int] | None:
    """(devices per node, nodes) under torchrun with several processes, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return local, max(1, world // local)


def trainer_hardware(device: str) -> dict[str, Any]:
    """The Trainer's ``accelerator``, ``devices`` (and under torchrun ``num_nodes`` and
    a DDP ``strategy``: NCCL on GPUs, Gloo on CPUs) for a resolved device name."""
    on_gpu = device.startswith("cuda")
    options: dict[str, Any] = {"accelerator": "gpu" if on_gpu else "cpu"}
    layout = distributed_layout()
    if layout is not None:
        devices, nodes = layout
        backend = "nccl" if on_gpu else "gloo"
        options.update(
            devices=devices, num_nodes=nodes, strategy=DDPStrategy(process_group_backend=backend)
        )
    elif on_gpu and ":" in device:
        options.update(devices=[int(device.split(":", 1)[1])])
    else:
        options.update(devices=1)
    return options


def check_resumable(path: Path) -> None:
    """Refuse a ``last.ckpt`` that cannot be resumed from: truncated, corrupt, or not a
    Lightning checkpoint of a run.

    Raises
    ------
    CheckpointError
        Naming the file and what to do (delete it to start the run over).
    """
    advice = "delete it to start the run over (with --resume), or put back an intact copy"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and torch errors alike mean "unreadable"
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else type(exc).__name__
        raise CheckpointError(
            f"{path}: cannot resume, the checkpoint is truncated or corrupt ({first}); {advice}"
        ) from None
    missing = [key for key in _RESUME_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise CheckpointError(
            f"{path}: cannot resume, not a Lightning checkpoint of a run (no "
            f"{', '.join(missing)}); {advice}"
        )


def _one_line(exc: UnsupsegError) -> UnsupsegError:
    """The error itself for one raised in a DataLoader worker, which arrives with the
    worker's traceback in its message; other errors as they are."""
    message = str(exc)
    if "Original Traceback" not in message:
        return exc
    last = message.strip().splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    return type(exc)(last.removeprefix(prefix).strip())


def _remove_temporaries(out: Path) -> None:
    """The temporaries of the checkpoints, figures and metrics.csv that a killed run
    was writing (it never renamed them into place), in ``out`` and its folders."""
    for folder in [out, *(path for path in out.rglob("*") if path.is_dir())]:
        sweep_stale_temporaries(folder)


def train(config: TrainConfig) -> TrainResult:
    """Train one network on a whole data set, or resume a run.

    The network's loss is the cross-entropy against its own refined argmax (superpixel
    vote, Kanezaki 2018, or SLIC on the label map, as the thesis code), plus the
    classifier's or autoencoder's loss. Everything lands in ``config.out``:

    - ``config.json``: the resolved settings (``settings``), the preset, the data, the
      number of parameters and the library versions.
    - ``metrics.csv``: one row per epoch and split (``train``, ``val``) with the mean of
      each loss term over the epoch's images, and a ``train_step`` row every
      ``log_every`` optimiser steps. Columns: epoch, step, split, loss, loss_seg,
      loss_aux (empty for ``base``), unique_labels (mean distinct argmax labels per
      image: the "merging" measure), lr, seconds (training time, across resumes).
    - ``checkpoints/last.ckpt`` (at the end of every epoch, and every
      ``checkpoint_every`` optimiser steps) and ``best.ckpt`` (lowest validation loss;
      lowest training loss without validation): Lightning checkpoints for resuming,
      written atomically (a killed run leaves the previous one whole);
      ``model-last.pt`` and ``model-best.pt``: the model alone with its record. All four
      load with ``torch.load(..., weights_only=True)`` and
      :func:`unsupseg.load_checkpoint`.
    - ``tensorboard/`` when TensorBoard is installed.
    - ``figures/``: ``panel_epoch{E:03d}.png`` (the first 4 validation images),
      ``loss_curves.png``, ``unique_labels.png``, ``merging.png`` (those images' argmax
      across epochs) and ``snapshots/epoch{E:03d}.npz`` (the argmax maps).

    Batches, crops, flips and dropout depend on the seed, the epoch and the step alone,
    so a run resumed from ``last.ckpt``, even one killed within an epoch, ends with the
    weights and optimiser state of an uninterrupted one, bit for bit (on the CPU, with
    ``deterministic``), and with its rows in ``metrics.csv``. Under ``torchrun`` every
    process calls this function and the run is data-parallel (DDP).

    Parameters
    ----------
    config : TrainConfig
        The settings; those left at None are filled by
        :func:`~unsupseg.training.config.resolve_config` (the stored run's when
        resuming, then the preset's).

    Returns
    -------
    TrainResult
        The run folder, the resolved settings and the paths of the checkpoints,
        ``metrics.csv`` and ``figures/``.

    Raises
    ------
    ConfigError
        For invalid settings (see :func:`~unsupseg.training.config.resolve_config`), a
        folder that already holds a run while ``resume`` is False, a classifier preset
        on a data set without fitting image labels, a crop size with a classifier
        head of fixed input size, or an ``out`` that is a file or cannot be written
        (all before any work).
    CheckpointError
        When resuming from a ``last.ckpt`` that is truncated or corrupt.
    DatasetError
        When the data set is missing or not in its expected layout.
    ImageReadError
        When an image of the data set cannot be read (the message names the file).
    RunFolderError
        When the run to resume has a corrupt ``config.json`` or ``metrics.csv``.

    Examples
    --------
    >>> import unsupseg
    >>> result = unsupseg.train(unsupseg.TrainConfig(
    ...     preset="base-bsds500", epochs=2, out="runs/base-bsds500"))  # doctest: +SKIP
    >>> checkpoint = unsupseg.load_checkpoint(result.model_best)  # doctest: +SKIP

    Two more epochs of the same run; the other settings come from its config.json:

    >>> unsupseg.train(unsupseg.TrainConfig(
    ...     preset="base-bsds500", epochs=4, out="runs/base-bsds500",
    ...     resume=True))  # doctest: +SKIP
    """
    config = resolve_config(config)
    preset = get_preset(config.preset)
    out = Path(config.out)
    check_output_folder(out, "--out")
    checkpoints = out / "checkpoints"
    last = checkpoints / "last.ckpt"
    if last.exists() and not config.resume:
        raise ConfigError(
            f"{out} already holds a run ({last}); pass --resume to continue it, or choose "
            "another --out"
        )
    resume_from = last if config.resume and last.exists() else None
    if resume_from is not None:
        check_resumable(resume_from)
    elif config.resume:
        log.info("--resume: no %s yet, starting a new run", last)
    if preset.head in ("cifar10", "stl10") and config.crop_size not in (None, preset.image_size):
        raise ConfigError(
            f"preset {preset.name}'s classifier head needs {preset.image_size}x"
            f"{preset.image_size} images: --crop-size cannot be used with it"
        )

    train_set, val_set, val_description = open_training_sets(config)
    check_labels(preset, train_set)
    info = checkpoint_info(config, train_set, val_description)

    L.seed_everything(config.seed, workers=True, verbose=False)
    # Xavier init from the seeded generator
    model = build_model(preset, q=config.q, padding=config.padding)
    module = SegmentationModule(
        model,
        refine=config.refine,
        label_slic_segments=config.label_slic_segments,
        label_slic_compactness=config.label_slic_compactness,
        aux_weight=config.aux_weight,
        multi_label=preset.multi_label,
        optimizer=config.optimizer,
        lr=config.lr,
        momentum=config.momentum,
        lr_step_size=config.lr_step_size,
        lr_gamma=config.lr_gamma,
        seed=config.seed,
    )
    module.checkpoint_info = info
    data = SegmentationDataModule(
        train_set,
        val_set,
        crop_size=config.crop_size,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        seed=config.seed,
        n_segments=config.slic_segments,
        compactness=config.slic_compactness,
        cache_dir=config.cache_dir,
        slic_workers=config.slic_workers,
        progress=not config.quiet,
    )
    recorder = TrainingRecorder(
        out,
        info,
        has_val=val_set is not None,
        log_every=config.log_every,
        figures_every=config.figures_every,
        samples=lambda: data.sample_items(N_SAMPLES),
    )
    callbacks = [
        recorder,
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
        # after best.ckpt's callback, so that last.ckpt holds its state of this epoch
        LastCheckpoint(last, every_n_steps=config.checkpoint_every or 0),
    ]
    logger: Any = False
    if importlib.util.find_spec("tensorboard") is not None:
        logger = TensorBoardLogger(
            save_dir=out, name="tensorboard", version="", default_hp_metric=False
        )
    if config.quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    deterministic_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=config.epochs,
        precision=config.precision,
        deterministic=config.deterministic,
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        enable_progress_bar=not config.quiet,
        enable_model_summary=False,
        log_every_n_steps=config.log_every,
        # EpochSampler shards the data itself (see unsupseg.training.data)
        use_distributed_sampler=False,
        **trainer_hardware(config.device),
    )
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        if config.resume:
            _remove_temporaries(out)
        record = {
            "settings": config.settings(),
            "preset": dataclasses.asdict(preset),
            "validation": val_description,
            "train_images": len(train_set),
            "val_images": 0 if val_set is None else len(val_set),
            "parameters": count_parameters(model),
            "world_size": trainer.world_size,
            "superpixel_cache": str(config.cache_dir or default_cache_dir()),
            "resumed_from": None if resume_from is None else str(resume_from),
            "versions": info.versions,
        }
        write_json(out / CONFIG_NAME, record)
        log.info(
            "training %s (%d parameters) on %d %s images, validation: %s -> %s",
            preset.name,
            record["parameters"],
            len(train_set),
            train_set.name,
            val_description,
            out,
        )
    distributed_before = torch.distributed.is_available() and torch.distributed.is_initialized()
    try:
        with warnings.catch_warnings():
            for message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    except UnsupsegError as exc:
        raise _one_line(exc) from None
    finally:
        torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)
        # A process group left to the interpreter's exit can abort a rank ("terminate
        # called without an active exception") after the run has finished; close the
        # one that the fit opened.
        if not distributed_before and torch.distributed.is_available():
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
    return TrainResult(
        out=out,
        config=config,
        last_checkpoint=last,
        best_checkpoint=checkpoints / "best.ckpt",
        model_last=checkpoints / "model-last.pt",
        model_best=checkpoints / "model-best.pt",
        metrics=out / METRICS_NAME,
        figures=out / "figures",
        rank=trainer.global_rank,
    )
