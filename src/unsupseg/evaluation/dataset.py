"""Score a segmentation method on a whole data set, resumably.

One row per image is appended to ``OUT/per_image.csv`` as soon as the image is scored,
so an interrupted run resumes where it stopped: ids already in the file are skipped.
The dataset figures are then aggregated from every row of the file
(:func:`unsupseg.evaluation.scoring.summarise`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from unsupseg.baselines import BASELINES
from unsupseg.checks import check_limit_and_workers, check_output_folder, check_seed
from unsupseg.data.base import ImageDataset
from unsupseg.data.datasets import open_dataset
from unsupseg.data.folders import LabelledFolderDataset, open_folder
from unsupseg.data.locate import default_data_root
from unsupseg.data.subsets import split_holdout
from unsupseg.errors import ConfigError
from unsupseg.evaluation.predictors import (
    METHODS,
    PER_IMAGE_METHODS,
    Predictor,
    baseline_prediction,
    checkpoint_path,
    make_predictor,
)
from unsupseg.evaluation.rows import appending_rows, parse_cell, read_rows, write_rows
from unsupseg.evaluation.scoring import (
    COLUMNS,
    score_prediction,
    scored_classes,
    scoring_kind,
    summarise,
)
from unsupseg.io import write_json
from unsupseg.run_folder import read_json

if TYPE_CHECKING:
    from unsupseg.models.checkpoint import Checkpoint

log = logging.getLogger("unsupseg")

__all__ = [
    "CSV_NAME",
    "DEFAULT_SPLITS",
    "SETTINGS_NAME",
    "Evaluation",
    "check_settings",
    "evaluate_dataset",
    "open_scored_dataset",
]

#: Data sets scored by :func:`evaluate_dataset`, with their default split.
DEFAULT_SPLITS = {"bsds500": "val", "voc2012": "val", "msrc": "all", "folder": "all"}
CSV_NAME = "per_image.csv"
SETTINGS_NAME = "evaluate.json"


def open_scored_dataset(
    dataset: str, split: str | None = None, data_root: str | os.PathLike | None = None
) -> tuple[ImageDataset, Path, str]:
    """Open a data set to score, at the images' native size.

    Parameters
    ----------
    dataset : {'bsds500', 'voc2012', 'msrc', 'folder'}
        ``folder``: a folder with ``images/`` and ``labels/`` (class maps), or a folder
        of images (in ``images/`` or the folder itself) scored by internal indices
        (:func:`unsupseg.data.folders.open_folder`).
    split : str, optional
        Default :data:`DEFAULT_SPLITS`. MSRC-v2 also has ``holdout``: the every-5th
        images that training holds out (:func:`unsupseg.data.subsets.split_holdout`).
        For ``folder``, ``all`` is the folder itself, another name a subfolder.
    data_root : path, optional
        The data set's folder; default :func:`unsupseg.data.locate.default_data_root`
        (``$UNSUPSEG_DATA/<name>`` or ``../shared/data/<name>`` from the current
        directory). Required for ``folder``.

    Returns
    -------
    dataset : ImageDataset
    root : Path
        The folder it was read from.
    split : str
        The split scored.

    Raises
    ------
    ConfigError
        For an unknown data set, or ``folder`` without ``data_root``.
    DatasetError
        When the data set is missing or incomplete.

    Examples
    --------
    >>> dataset, root, split = open_scored_dataset("msrc", "holdout")  # doctest: +SKIP
    >>> split, len(dataset)  # doctest: +SKIP
    ('holdout', 60)
    """
    if dataset not in DEFAULT_SPLITS:
        raise ConfigError(
            f"unknown data set {dataset!r} to score; choose from {', '.join(DEFAULT_SPLITS)}"
        )
    split = split or DEFAULT_SPLITS[dataset]
    if dataset == "folder":
        if data_root is None:
            raise ConfigError(
                "--dataset folder needs --data-root DIR (data_root): a folder with images/ "
                "and labels/ (class maps), or a folder of images (in DIR/images/ or DIR "
                "itself)"
            )
        return open_folder(data_root, split), Path(data_root), split
    root = Path(data_root) if data_root is not None else default_data_root(dataset)
    if dataset == "msrc" and split == "holdout":
        _, held = split_holdout(open_dataset("msrc", root, "all", image_size="native"))
        return held, root, split
    return open_dataset(dataset, root, split, image_size="native"), root, split


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse an output folder that cannot be written or whose ``evaluate.json``
    records other settings.

    Raises
    ------
    ConfigError
        When ``out`` is a file or not writable, or naming the settings that differ.
    RunFolderError
        When ``evaluate.json`` is unreadable.
    """
    check_output_folder(out, "evaluation folder")
    settings_path = out / SETTINGS_NAME
    if not settings_path.is_file():
        return
    previous = read_json(settings_path, "evaluation settings")
    if previous != settings:
        changed = sorted(k for k in {*settings, *previous} if previous.get(k) != settings.get(k))
        raise ConfigError(
            f"{out} holds an evaluation with other settings ({', '.join(changed)}); "
            "choose another output folder or delete it"
        )


@dataclass
class Evaluation:
    """What :func:`evaluate_dataset` found.

    Attributes
    ----------
    summary : dict
        The dataset figures (:func:`~unsupseg.evaluation.scoring.summarise`) and
        ``n_failed``; NaN where a figure is undefined.
    rows : list of dict
        The per-image rows of the images scored (those of earlier runs included, failed
        ones with their ``error``), as ints, floats, text and None.
    csv_path : Path
        ``per_image.csv``.
    failures : list of (str, str)
        ``(image id, error)`` of the images that failed in this run.
    settings : dict
        What the run depends on, as written to ``evaluate.json``.
    source : str
        The name of what was scored: the method, ``checkpoint-<stem>`` or
        ``predictions-<folder name>``.
    """

    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    csv_path: Path
    failures: list[tuple[str, str]]
    settings: dict[str, Any]
    source: str

    @property
    def title(self) -> str:
        """``<dataset> <split>: <source> (<n> images)``."""
        settings = self.settings
        return (
            f"{settings['dataset']} {settings['split']}: {self.source} "
            f"({self.summary['n_images']} images)"
        )

    def to_json(self) -> dict[str, Any]:
        """The summary as ``unsupseg evaluate --json`` writes it (the report reads it):
        the figures (None for NaN), ``failed``, ``settings`` and ``per_image_csv``."""
        return {
            **{
                k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in self.summary.items()
            },
            "failed": [{"id": image_id, "error": error} for image_id, error in self.failures],
            "settings": self.settings,
            "per_image_csv": str(self.csv_path.resolve()),
        }


def evaluate_dataset(
    dataset: str,
    *,
    method: str | None = None,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    predictions: str | os.PathLike | None = None,
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    workers: int = 1,
    out: str | os.PathLike | None = None,
    refine: bool = False,
    max_side: int | None = None,
    fine_iter: int = 0,
    max_iter: int = 1000,
    seed: int = 0,
    device: str | None = None,
    precision: str = "auto",
    layout: str = "auto",
    progress: bool = False,
) -> Evaluation:
    """Score a method, a trained checkpoint or saved label maps on a data set.

    BSDS500 is scored by the Kanezaki/TIP mIoU (All / Fine / Coarse), Segmentation
    Covering, PRI, VI and boundary ODS/OIS; PASCAL VOC 2012, MSRC-v2 and a folder with
    class maps by the per-image best-IoU mIoU, the Hungarian-matched mIoU and pixel
    accuracy; a folder of images without labels by internal indices (silhouette,
    Calinski-Harabasz, Davies-Bouldin). See :mod:`unsupseg.evaluation.scoring`.

    Each image's row is appended to ``out/per_image.csv`` as soon as it is scored; a
    later call with the same ``out`` and settings skips the images already there and
    retries those that failed.

    Parameters
    ----------
    dataset : {'bsds500', 'voc2012', 'msrc', 'folder'}
        The data set (:func:`open_scored_dataset`).
    method : str, optional
        A baseline (``blank``, ``slic``, ``felzenszwalb``, ``kmeans``) or a
        per-image optimisation: ``per-image`` (Kanezaki 2018), ``tip2020``,
        ``dynaseg-fsf`` or ``dynaseg-scf``, with their published settings.
    checkpoint : path or Checkpoint, optional
        A trained model; on class maps each label takes its network channel.
    predictions : path, optional
        A folder of saved label maps: ``<id>.png``, ``<id>.npy``, or
        ``<id>/labels.npy`` as ``unsupseg segment`` and ``predict`` write them.
    split : str, optional
        Default: ``val`` for bsds500 and voc2012, ``all`` for msrc and folder.
    data_root : path, optional
        The data set's folder (see :func:`open_scored_dataset`).
    limit : int, optional
        Score only the first ``limit`` images.
    workers : int
        Processes computing a baseline (other sources run in this process).
    out : path, optional
        Output folder; default ``runs/evaluate/<dataset>-<split>-<source>`` under the
        current directory (``folder-<folder name>`` as the data set of ``folder``).
    refine : bool
        Checkpoint: apply the superpixel majority vote to the argmax.
    max_side : int, optional
        Per-image optimisation: downscale photos to this longest side.
    fine_iter : int
        Per-image optimisation: then at most this many iterations at full size
        (coarse to fine, :func:`unsupseg.per_image.segment`).
    max_iter : int
        Per-image optimisation: the most iterations.
    seed : int
        Per-image optimisation and k-means.
    device : str, optional
        Checkpoint and per-image optimisation (default: CUDA when available).
    precision : {'auto', 'fp32', 'bf16'}
        Per-image optimisation: the network's arithmetic
        (:func:`unsupseg.device.resolve_precision`); the settings record what ``auto``
        chose, so that a resumed run does not mix the two.
    layout : {'auto', 'contiguous', 'channels-last'}
        Per-image optimisation: the network's memory layout
        (:func:`unsupseg.device.resolve_layout`). It changes only floating-point
        rounding, like the number of threads, so the settings do not record it.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Evaluation
        The summary, the per-image rows, the CSV's path, this run's failures and the
        settings; :meth:`Evaluation.to_json` gives the JSON of ``--json``.

    Raises
    ------
    ConfigError
        For invalid settings (not exactly one source, an unknown method or data set), a
        predictions folder that does not exist, or an ``out`` that holds an evaluation
        with other settings or a CSV of other columns.
    DatasetError
        When the data set is missing or incomplete.
    CheckpointError
        When the checkpoint does not load.
    RunFolderError
        When ``out/evaluate.json`` is unreadable.

    Examples
    --------
    >>> evaluation = evaluate_dataset("bsds500", method="felzenszwalb", workers=2,
    ...                               out="/tmp/eval-fz")  # doctest: +SKIP
    >>> round(evaluation.summary["covering"], 4)  # doctest: +SKIP
    0.4692
    >>> evaluation.rows[0]["id"], evaluation.csv_path.name  # doctest: +SKIP
    ('100007', 'per_image.csv')
    """
    if method is not None and method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    check_limit_and_workers(limit, workers)
    if sum(source is not None for source in (method, checkpoint, predictions)) != 1:
        raise ConfigError("give exactly one of method, checkpoint and predictions")
    data, root, split = open_scored_dataset(dataset, split, data_root)
    kind = scoring_kind(data)
    class_maps = kind == "class_map"
    columns = COLUMNS[kind]
    source = _source_name(method, checkpoint, predictions)
    name = dataset if dataset != "folder" else f"folder-{root.resolve().name}"
    out = Path(out) if out is not None else Path("runs") / "evaluate" / f"{name}-{split}-{source}"
    csv_path = out / CSV_NAME
    settings: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "data_root": str(root.resolve()),
        "method": method,
        "checkpoint": None,
        "predictions": None,
    }
    if checkpoint is not None:
        settings["checkpoint"] = str(checkpoint_path(checkpoint).resolve())
    if predictions is not None:
        settings["predictions"] = str(Path(predictions).resolve())
    if method in PER_IMAGE_METHODS:
        from unsupseg.device import resolve_device, resolve_precision
        from unsupseg.per_image import check_options

        check_options(
            method=PER_IMAGE_METHODS[method], max_iter=max_iter, max_side=max_side,
            fine_iter=fine_iter, seed=seed, precision=precision, layout=layout,
        )  # fmt: skip
        resolved_device = resolve_device(device)  # loads torch
        chosen = resolve_precision(precision, resolved_device, PER_IMAGE_METHODS[method])
        settings.update(max_side=max_side, max_iter=max_iter, seed=seed, precision=chosen)
        if fine_iter:  # only when used, so that earlier per_image.csv files still resume
            settings["fine_iter"] = fine_iter
    if method == "kmeans":
        check_seed(seed)
        settings["seed"] = seed
    if checkpoint is not None:
        settings["refine"] = bool(refine)
    if isinstance(data, LabelledFolderDataset):
        # The confusion matrices in the rows number the classes in this order.
        settings["classes"] = data.classes
    check_settings(out, settings)
    rows = read_rows(csv_path, columns)
    predict = make_predictor(
        method=method,
        checkpoint=checkpoint,
        predictions=predictions,
        refine=refine,
        class_maps=class_maps,
        max_side=max_side,
        fine_iter=fine_iter,
        max_iter=max_iter,
        seed=seed,
        device=device,
        precision=precision,
        layout=layout,
    )

    # Resume: keep scored rows (one per id); retry the images that failed before and
    # drop a row cut short by an interrupted write.
    kept: dict[str, dict[str, str]] = {}
    for row in rows:
        complete = all(row.get(key) is not None for key in columns) and None not in row
        if complete and not row.get("error"):
            kept[row["id"]] = row
    if len(kept) != len(rows):
        write_rows(csv_path, columns, list(kept.values()))
    write_json(out / SETTINGS_NAME, settings)

    n = len(data) if limit is None else min(limit, len(data))
    todo = [i for i in range(n) if data.image_id(i) not in kept]
    if kept:
        log.info(
            "%s: %d of the first %d images already scored, %d to go",
            csv_path,
            n - len(todo),
            n,
            len(todo),
        )
    if method in BASELINES and workers > 1 and len(todo) > 1:
        stream = _rows_in_pool(data, todo, method, seed, workers)
    else:
        stream = _rows_in_process(data, todo, predict)

    failures: list[tuple[str, str]] = []
    with appending_rows(csv_path, columns) as append:
        for row in tqdm(
            stream,
            total=len(todo),
            desc=f"evaluate {dataset} {split}",
            unit="img",
            disable=not progress,
        ):
            append([row])
            if row.get("error"):
                failures.append((row["id"], row["error"]))

    wanted = {data.image_id(i) for i in range(n)}
    scored = [row for row in read_rows(csv_path, columns) if row["id"] in wanted]
    summary = summarise(scored, scored_classes(data) if class_maps else None, kind)
    summary["n_failed"] = len(failures)
    return Evaluation(
        summary=summary,
        rows=[{key: parse_cell(key, text) for key, text in row.items()} for row in scored],
        csv_path=csv_path,
        failures=failures,
        settings=settings,
        source=source,
    )


def _source_name(
    method: str | None,
    checkpoint: str | os.PathLike | Checkpoint | None,
    predictions: str | os.PathLike | None,
) -> str:
    if method:
        return method
    if checkpoint is not None:
        return f"checkpoint-{checkpoint_path(checkpoint).stem}"
    return f"predictions-{Path(predictions).resolve().name}"


def _rows_in_process(
    dataset: ImageDataset, indices: list[int], predict: Predictor
) -> Iterator[dict[str, Any]]:
    for index in indices:
        started = time.perf_counter()
        try:
            row = score_prediction(dataset, index, predict(dataset, index))
        except Exception as exc:  # reported per image
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row["id"] = dataset.image_id(index)
        row["seconds"] = time.perf_counter() - started
        yield row


def _baseline_row(dataset: ImageDataset, index: int, method: str, seed: int) -> dict[str, Any]:
    """Compute one baseline's prediction and row (run in a worker process)."""
    started = time.perf_counter()
    try:
        prediction = baseline_prediction(method, dataset.image(index), seed)
        row = score_prediction(dataset, index, prediction)
    except Exception as exc:  # reported per image
        row = {"error": f"{type(exc).__name__}: {exc}"}
    row["id"] = dataset.image_id(index)
    row["seconds"] = time.perf_counter() - started
    return row


def _rows_in_pool(
    dataset: ImageDataset, indices: list[int], method: str, seed: int, workers: int
) -> Iterator[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_baseline_row, dataset, index, method, seed) for index in indices]
        for future in futures:
            yield future.result()
