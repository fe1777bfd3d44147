"""The post-processing sweep over a data set's predictions, scored and chosen.

Each prediction (saved label maps or a checkpoint's) is merged by every setting of the
sweep (:func:`~unsupseg.postprocess.merging.merge_segments`); each result is scored by
the internal indices (silhouette, Calinski-Harabasz, Davies-Bouldin), and by ground
truth when the data set has it. The best setting is chosen per image (by an internal
index) and per data set (by a ground-truth score, else an internal index).
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from unsupseg import metrics
from unsupseg.checks import check_limit_and_workers, check_number, check_seed
from unsupseg.errors import ConfigError
from unsupseg.evaluation.dataset import open_scored_dataset
from unsupseg.evaluation.predictors import checkpoint_path, make_predictor
from unsupseg.evaluation.rows import appending_rows, csv_cell, read_rows, write_rows
from unsupseg.evaluation.scoring import (
    COLUMNS,
    n_segments,
    score_bsds,
    score_class_map,
    scored_classes,
    scoring_kind,
    summarise,
)
from unsupseg.evaluation.scoring import INDICES as EVALUATED_INDICES
from unsupseg.io import as_rgb_float, atomic_directory, save_label_png, write_json
from unsupseg.postprocess.figures import save_comparison_figure
from unsupseg.postprocess.merging import CLUSTERERS, Setting, merge_segments, sweep_settings
from unsupseg.refine import majority_labels
from unsupseg.run_folder import read_json

if TYPE_CHECKING:
    from unsupseg.models.checkpoint import Checkpoint

log = logging.getLogger("unsupseg")

__all__ = [
    "CSV_BASE",
    "GT_SCORES",
    "INDICES",
    "PostprocessResult",
    "choose_per_image",
    "postprocess_dataset",
    "process_image",
    "summarise_settings",
]

#: Internal indices and whether higher is better.
INDICES = {"silhouette": True, "calinski_harabasz": True, "davies_bouldin": False}
#: Ground-truth scores a data-set choice can use, and whether higher is better.
GT_SCORES = {
    "miou_all": True,
    "covering": True,
    "pri": True,
    "vi": False,
    "miou_per_image": True,
}
#: The columns of ``per_image.csv`` before the ground-truth terms of the data set's kind.
CSV_BASE = [
    "id",
    "setting",
    "method",
    "value",
    "n_labels",
    "n_segments",
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "seconds",
]


# --------------------------------------------------------------------------------------
# One image


def _merged(
    image: np.ndarray, labels: np.ndarray, setting: Setting, seed: int, ids: bool
) -> np.ndarray:
    merged = merge_segments(image, labels, setting, seed)
    # On class maps each cluster takes the prediction's majority id, the network channel,
    # so that ids keep their meaning across images, as the Hungarian matching needs.
    return majority_labels(merged, labels) if ids else merged


def _setting_row(
    image: np.ndarray,
    labels: np.ndarray,
    setting: Setting | None,
    seed: int,
    truth: Any,
    n_classes: int | None,
    n_samples: int,
) -> tuple[dict[str, Any], np.ndarray]:
    started = time.perf_counter()
    if setting is None:
        merged = np.asarray(labels, dtype=np.int64)
    else:
        merged = _merged(image, labels, setting, seed, n_classes is not None)
    seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one label: NaN indices
        row: dict[str, Any] = dict(
            metrics.internal_indices(as_rgb_float(image), merged, n_samples=n_samples, seed=seed)
        )
    row["n_labels"] = int(np.unique(merged).size)
    row["n_segments"] = n_segments(merged)
    row["seconds"] = seconds
    if truth is not None:
        if n_classes is None:
            terms = score_bsds(merged, truth)
        else:
            terms = score_class_map(merged, truth, n_classes)
        terms.pop("n_labels"), terms.pop("n_segments")
        row.update(terms)
    return row, merged


def process_image(
    image: np.ndarray,
    labels: np.ndarray,
    settings: Sequence[Setting],
    *,
    seed: int = 0,
    truth: Any = None,
    n_classes: int | None = None,
    n_samples: int = 2000,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Score the prediction itself (setting ``none``) and every merged version.

    Parameters
    ----------
    image : ndarray
        The photo.
    labels : ndarray of int, shape (H, W)
        Its prediction.
    settings : sequence of Setting
        The clusterers and values to merge with.
    seed : int
        Clusterers and the pixel sample of the internal indices.
    truth : list of ndarray or ndarray, optional
        BSDS500 annotators (``n_classes`` None) or a class map.
    n_classes : int, optional
        The classes of a class map; merged clusters then take the prediction's majority
        id (:func:`unsupseg.refine.majority_labels`).
    n_samples : int
        Pixels sampled for the internal indices.

    Returns
    -------
    rows : list of dict
        ``setting``, ``method``, ``value``, the internal indices, ``n_labels``,
        ``n_segments``, ``seconds`` and, with ``truth``, the ground-truth terms of
        :func:`unsupseg.evaluation.scoring.score_bsds` or
        :func:`~unsupseg.evaluation.scoring.score_class_map`. A setting that fails has
        an ``error`` instead.
    maps : dict
        The label map of each setting name.
    """
    rows, maps = [], {}
    for setting in [None, *settings]:
        name = "none" if setting is None else setting.name
        try:
            row, merged = _setting_row(image, labels, setting, seed, truth, n_classes, n_samples)
            maps[name] = merged
        except Exception as exc:  # one clusterer failing on one image is a row, not a crash
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row.update(
            setting=name,
            method="none" if setting is None else setting.method,
            value="" if setting is None else setting.value,
        )
        rows.append(row)
    return rows, maps


# --------------------------------------------------------------------------------------
# Choices


def _better(higher: bool) -> Callable[[float, float], bool]:
    return (lambda a, b: a > b) if higher else (lambda a, b: a < b)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def choose_per_image(rows: Sequence[Mapping[str, Any]], index: str) -> str | None:
    """The setting with the best internal ``index`` among one image's rows (the raw
    prediction included); None when no row has a finite value."""
    better = _better(INDICES[index])
    best, best_value = None, math.nan
    for row in rows:
        value = _float(row.get(index))
        if math.isfinite(value) and (best is None or better(value, best_value)):
            best, best_value = row["setting"], value
    return best


def summarise_settings(
    rows: list[dict[str, Any]], kind: str, n_classes: int | None
) -> dict[str, Any]:
    """Dataset figures of one setting's rows (as read back from ``per_image.csv``):
    :func:`unsupseg.evaluation.scoring.summarise` of the data set's kind, with the mean
    internal indices (over the images where they are defined) added for ground-truth
    kinds."""
    summary = summarise(rows, n_classes, kind)
    if kind != "internal":
        internal = summarise(rows, None, "internal")
        summary.update({name: internal[name] for name in EVALUATED_INDICES})
    return summary


def _choose(summaries: dict[str, dict[str, Any]], key: str) -> str:
    better = _better(GT_SCORES.get(key, INDICES.get(key, True)))
    best = None
    for name, summary in summaries.items():
        value = _float(summary.get(key))
        if math.isfinite(value) and (best is None or better(value, _float(summaries[best][key]))):
            best = name
    return best or "none"


def _table(summaries: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    keys = ["mean_labels", "mean_segments", *INDICES]
    if kind == "bsds":
        keys += ["miou_all", "miou_fine", "miou_coarse", "covering", "pri", "vi", "boundary_ods"]
    elif kind == "class_map":
        keys += ["miou_per_image", "miou_hungarian", "pixel_accuracy"]
    keys.append("seconds_per_image")
    rows = []
    for name, summary in summaries.items():
        cells: list[Any] = [name]
        for key in keys:
            value = summary.get(key)
            if isinstance(value, float):
                cells.append(
                    f"{value:.1f}"
                    if key in ("mean_labels", "mean_segments", "calinski_harabasz")
                    else f"{value:.4f}"
                )
            else:
                cells.append(value)
        rows.append(cells)
    return {"columns": ["setting", *keys], "rows": rows}


# --------------------------------------------------------------------------------------
# The sweep


def _columns(kind: str) -> list[str]:
    extra = COLUMNS[kind] if kind != "internal" else []
    skip = {"id", "n_labels", "n_segments", "seconds", "error", *EVALUATED_INDICES}
    return [*CSV_BASE, *(c for c in extra if c not in skip), "error"]


def _work(job: tuple) -> tuple[str, list[dict[str, Any]]]:
    """Score one image's settings (run in a worker process); no label maps returned."""
    image_id, image, labels, settings, seed, truth, n_classes, n_samples = job
    if isinstance(labels, str):  # the prediction failed
        return image_id, [{"setting": "none", "method": "none", "value": "", "error": labels}]
    rows, _ = process_image(
        image, labels, settings, seed=seed, truth=truth, n_classes=n_classes, n_samples=n_samples
    )
    return image_id, rows


def _bounded(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``map(fn, items)`` in order, over ``workers`` processes with few items pending."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pending: deque = deque()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class PostprocessResult:
    """What :func:`postprocess_dataset` found and wrote.

    Attributes
    ----------
    summary : dict
        The content of ``summary.json`` (read by ``unsupseg report``): ``kind``,
        ``title``, ``dataset``, ``split``, ``n_images``, ``select``, ``choose_by``,
        ``chosen_dataset``, ``per_image_choices``, ``settings`` (the dataset figures of
        every setting), ``tables``, ``figures`` and ``failed``.
    out : Path
        The output folder.
    csv_path : Path
        ``per_image.csv``: one row per image and setting.
    failures : list of (str, str)
        ``(image id, error)`` of the images that failed in this run.
    """

    summary: dict[str, Any]
    out: Path
    csv_path: Path
    failures: list[tuple[str, str]]

    @property
    def table(self) -> dict[str, Any]:
        """The table of mean scores per setting: ``columns`` and ``rows`` (text)."""
        return self.summary["tables"][0]

    @property
    def chosen_dataset(self) -> str:
        """The setting chosen for the whole data set (label maps in ``chosen-dataset/``)."""
        return self.summary["chosen_dataset"]

    @property
    def per_image_choices(self) -> dict[str, str | None]:
        """The setting chosen for each image (label maps in ``chosen-image/``)."""
        return self.summary["per_image_choices"]


def postprocess_dataset(
    dataset: str,
    *,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    predictions: str | os.PathLike | None = None,
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    refine: bool = False,
    methods: Sequence[str] = CLUSTERERS,
    grid: Mapping[str, Sequence[float]] | None = None,
    select: str = "silhouette",
    choose_by: str | None = None,
    samples: int = 2000,
    seed: int = 0,
    figure_images: int = 4,
    limit: int | None = None,
    workers: int = 1,
    out: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = False,
) -> PostprocessResult:
    """Merge every prediction of a data set with each clusterer setting, score and choose.

    Writes into ``out``: ``per_image.csv`` (one row per image and setting, appended as
    each image is done, so a rerun with the same settings resumes), ``config.json``,
    ``summary.json`` (:attr:`PostprocessResult.summary`), ``comparison.png`` (a few
    images, their prediction and every clusterer's result) and the label maps of the
    two choices, ``chosen-dataset/<id>.png`` and ``chosen-image/<id>.png``, which
    :func:`unsupseg.evaluation.evaluate_dataset` scores as ``predictions``.

    Parameters
    ----------
    dataset : {'bsds500', 'voc2012', 'msrc', 'folder'}
        The data set (:func:`unsupseg.evaluation.open_scored_dataset`).
    checkpoint : path or Checkpoint, optional
        Predict with this trained model.
    predictions : path, optional
        A folder of saved label maps (``<id>.png``, ``<id>.npy`` or
        ``<id>/labels.npy``). Give exactly one of ``checkpoint`` and ``predictions``.
    split, data_root : optional
        As for :func:`~unsupseg.evaluation.open_scored_dataset`.
    refine : bool
        Checkpoint: apply the superpixel majority vote before merging.
    methods : sequence of str
        Clusterers of :data:`~unsupseg.postprocess.merging.CLUSTERERS`, each swept over
        its default values.
    grid : mapping, optional
        Parameter values per clusterer (:func:`~unsupseg.postprocess.merging.sweep_settings`).
    select : {'silhouette', 'calinski_harabasz', 'davies_bouldin'}
        The internal index that chooses the setting of each image.
    choose_by : str, optional
        The score that chooses one setting for the data set: one of :data:`GT_SCORES`
        or :data:`INDICES`. Default: covering on BSDS500 (the mIoU does not penalise
        fragments), miou_per_image on class maps, ``select`` without ground truth.
    samples : int
        Pixels sampled for the internal indices.
    seed : int
        Clusterers and the pixel sample.
    figure_images : int
        Images in ``comparison.png`` (0: no figure).
    limit : int, optional
        Only the first ``limit`` images (rows of other images already in the CSV are
        kept).
    workers : int
        Processes merging images.
    out : path, optional
        Output folder; default ``runs/postprocess/<dataset>-<split>-<source>`` under the
        current directory (source: ``checkpoint-<stem>`` or ``predictions-<folder>``).
    device : str, optional
        Checkpoint device (default: CUDA when available).
    progress : bool
        Show progress bars.

    Returns
    -------
    PostprocessResult

    Raises
    ------
    ConfigError
        For invalid settings (an unknown clusterer, index or score, a ground-truth score
        the data set cannot give, not exactly one source), a predictions folder that does
        not exist, or an ``out`` that holds a run with other settings.
    DatasetError
        When the data set is missing or incomplete.
    CheckpointError
        When the checkpoint does not load.

    Examples
    --------
    >>> result = postprocess_dataset(
    ...     "bsds500", predictions="predictions/base-bsds500", methods=["ward"],
    ...     grid={"ward": [8, 16]}, limit=20)  # doctest: +SKIP
    >>> result.chosen_dataset, result.summary["settings"]["ward-8"]["covering"]  # doctest: +SKIP
    ('ward-8', 0.46...)
    """
    settings = sweep_settings(methods, grid)
    if select not in INDICES:
        raise ConfigError(f"select must be one of {', '.join(INDICES)}; got {select!r}")
    if choose_by is not None and choose_by not in GT_SCORES and choose_by not in INDICES:
        raise ConfigError(
            f"choose_by must be one of {', '.join([*GT_SCORES, *INDICES])}; got {choose_by!r}"
        )
    check_number("samples", samples, minimum=2, integer=True)
    check_number("figure_images", figure_images, minimum=0, integer=True)
    check_limit_and_workers(limit, workers)
    check_seed(seed)
    if (checkpoint is None) == (predictions is None):
        raise ConfigError("give exactly one of checkpoint and predictions")
    data, root, split = open_scored_dataset(dataset, split, data_root)
    kind = scoring_kind(data)
    predict = make_predictor(
        checkpoint=checkpoint,
        predictions=predictions,
        refine=refine,
        class_maps=kind == "class_map",
        device=device,
    )
    n_classes = scored_classes(data) if kind == "class_map" else None
    choose_by = choose_by or {"bsds": "covering", "class_map": "miou_per_image"}.get(kind, select)
    if choose_by in GT_SCORES and (
        kind == "internal" or (choose_by == "miou_per_image") != (kind == "class_map")
    ):
        raise ConfigError(
            f"choose_by {choose_by} needs ground truth of another kind than {dataset}'s"
        )
    source = checkpoint_path(checkpoint) if checkpoint is not None else Path(predictions)
    name = f"checkpoint-{source.stem}" if checkpoint is not None else f"predictions-{source.name}"
    if out is None:
        out = Path("runs") / "postprocess" / f"{dataset}-{split}-{name}"
    out = Path(out)
    columns = _columns(kind)
    csv_path = out / "per_image.csv"
    config = {
        "dataset": dataset,
        "split": split,
        "data_root": str(Path(root).resolve()),
        "source": str(source.resolve()),
        "refine": bool(refine),
        "settings": [s.name for s in settings],
        "seed": seed,
        "samples": samples,
    }
    config_path = out / "config.json"
    if config_path.is_file() and read_json(config_path, "post-processing settings") != config:
        raise ConfigError(
            f"{out} holds a post-processing run with other settings; choose another output "
            "folder or delete it"
        )
    done: dict[str, list[dict[str, str]]] = {}
    for row in read_rows(csv_path, columns):
        done.setdefault(row["id"], []).append(row)
    write_json(config_path, config)

    # Pass 1: score every setting of every image not scored yet (resumable).
    n = len(data) if limit is None else min(limit, len(data))
    ids = [data.image_id(i) for i in range(n)]
    names = ["none", *(s.name for s in settings)]
    # Keep every image scored in full (beyond the limit too); redo the others.
    complete = {
        image_id: rows
        for image_id, rows in done.items()
        if sorted(r["setting"] for r in rows if not r.get("error")) == sorted(names)
    }
    if len(complete) != len(done):
        write_rows(csv_path, columns, [r for rows in complete.values() for r in rows])
    rows_by_id = {image_id: complete[image_id] for image_id in ids if image_id in complete}
    todo = [i for i in range(n) if ids[i] not in rows_by_id]
    if rows_by_id:
        log.info("%s: %d images already processed, %d to go", csv_path, len(rows_by_id), len(todo))

    def jobs() -> Iterator[tuple]:
        for index in todo:
            try:
                labels: Any = np.asarray(predict(data, index))
            except Exception as exc:  # reported per image
                labels = f"{type(exc).__name__}: {exc}"
            truth = data.ground_truth(index) if kind != "internal" else None
            image = data.image(index)
            yield (ids[index], image, labels, settings, seed, truth, n_classes, samples)

    failures: list[tuple[str, str]] = []
    with appending_rows(csv_path, columns) as append:
        for image_id, rows in tqdm(
            _bounded(_work, jobs(), workers),
            total=len(todo),
            desc=f"postprocess {dataset} {split}",
            unit="img",
            disable=not progress,
        ):
            cells = [{k: csv_cell(row.get(k)) for k in columns} | {"id": image_id} for row in rows]
            append(cells)
            errors = [row for row in rows if row.get("error")]
            if errors:
                failures.append(
                    (image_id, "; ".join(f"{row['setting']}: {row['error']}" for row in errors))
                )
            else:
                rows_by_id[image_id] = cells

    # The data-set table, the choices.
    scored = [image_id for image_id in ids if image_id in rows_by_id]
    by_setting = {
        name: [r for image_id in scored for r in rows_by_id[image_id] if r["setting"] == name]
        for name in names
    }
    summaries = {
        name: summarise_settings(rows, kind, n_classes) for name, rows in by_setting.items()
    }
    per_image = {image_id: choose_per_image(rows_by_id[image_id], select) for image_id in scored}
    picked = [
        r
        for image_id in scored
        for r in rows_by_id[image_id]
        if r["setting"] == per_image[image_id]
    ]
    per_image_name = f"per-image ({select})"
    summaries[per_image_name] = summarise_settings(picked, kind, n_classes)
    chosen = _choose({k: v for k, v in summaries.items() if k != per_image_name}, choose_by)

    # Pass 2: the label maps of the two choices and the comparison figure.
    by_name = {s.name: s for s in settings}
    examples = []
    with (
        atomic_directory(out / "chosen-dataset") as dataset_dir,
        atomic_directory(out / "chosen-image") as image_dir,
    ):
        for index in tqdm(
            [i for i in range(n) if ids[i] in per_image],
            desc="write choices",
            unit="img",
            disable=not progress,
        ):
            image_id = ids[index]
            image = data.image(index)
            labels = np.asarray(predict(data, index))
            wanted = {chosen, per_image[image_id] or "none"}
            if len(examples) < figure_images:
                wanted |= set(names)
            maps = {}
            for setting_name in wanted:
                if setting_name == "none":
                    maps[setting_name] = labels.astype(np.int64)
                else:
                    maps[setting_name] = _merged(
                        image, labels, by_name[setting_name], seed, kind == "class_map"
                    )
            save_label_png(dataset_dir / f"{image_id}.png", maps[chosen])
            save_label_png(image_dir / f"{image_id}.png", maps[per_image[image_id] or "none"])
            if len(examples) < figure_images:
                examples.append((image_id, image, maps))
    figures = []
    if examples:
        first: dict[str, str] = {}
        for setting in settings:
            first.setdefault(setting.method, setting.name)
        save_comparison_figure(out / "comparison.png", examples, list(first.values()))
        figures.append(
            {"title": "Post-processing: each clusterer's result", "path": "comparison.png"}
        )

    table = _table(summaries, kind)
    summary = {
        "kind": "postprocess",
        "title": f"Post-processing of {name} on {dataset} {split} ({len(scored)} images)",
        "dataset": dataset,
        "split": split,
        "n_images": len(scored),
        "select": select,
        "choose_by": choose_by,
        "chosen_dataset": chosen,
        "per_image_choices": per_image,
        "settings": summaries,
        "tables": [
            {
                "title": f"Mean scores per setting; data-set choice by {choose_by}: {chosen}; "
                f"per-image choice by {select}",
                **table,
            }
        ],
        "figures": figures,
        "failed": [{"id": image_id, "error": error} for image_id, error in failures],
    }
    write_json(out / "summary.json", summary)
    return PostprocessResult(summary=summary, out=out, csv_path=csv_path, failures=failures)
