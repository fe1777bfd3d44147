"""``unsupseg evaluate``: score a segmentation method on a data set.

One row per image is appended to ``OUT/per_image.csv`` as soon as the image is scored
(so an interrupted run resumes where it stopped: ids already in the file are skipped);
the dataset figures are then aggregated from every row of the file, printed as a table
and, with ``--json FILE``, written as a summary.

What a row holds depends on the ground truth the data set has (:func:`scoring_kind`,
the one place deciding it; :data:`COLUMNS` lists each kind's columns):

``bsds`` (BSDS500)
    The pooled terms of the Kanezaki/TIP mIoU (All / Fine / Coarse), of Segmentation
    Covering and of the boundary counts, and the per-image PRI, VI and boundary F; the
    dataset score pools the terms (mIoU, covering, boundary ODS) or averages the
    per-image values over images (PRI, VI, boundary OIS).
``class_map`` (PASCAL VOC 2012, MSRC-v2, a folder with ``labels/``)
    The per-image best-IoU terms and the image's confusion matrix between classes and
    predicted ids as a sparse JSON list ``[[class, id, pixels], ...]``; the matrices are
    summed over the split for the Hungarian-matched mIoU and pixel accuracy (SPEC §5).
    VOC 2012 counts 21 classes (background 0 and the 20 objects), MSRC-v2 23, a folder
    the classes of :class:`LabelledFolderDataset`; 255 is void everywhere.
``internal`` (a folder of images without labels)
    No ground truth: the silhouette, Calinski-Harabasz and Davies-Bouldin indices of
    :func:`unsupseg.metrics.internal_indices` on the image (scaled to [0, 1]) and the
    prediction, averaged over the images where they are defined (a one-label
    prediction has none: NaN, with the reason in the row's ``note``).

Every kind also records the numbers of labels and of 4-connected segments.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from unsupseg import metrics
from unsupseg.baselines import BASELINES
from unsupseg.data.base import ImageDataset, Size, file_image_shape, read_rgb_uint8
from unsupseg.data.datasets import VOID, BSDS500Dataset, FolderDataset, _read_class_map
from unsupseg.errors import DatasetError
from unsupseg.io import atomic_file, find_images, read_label_png, resize_nearest, write_json

log = logging.getLogger("unsupseg")

#: Data sets ``unsupseg evaluate`` scores, with their default split.
DEFAULT_SPLITS = {"bsds500": "val", "voc2012": "val", "msrc": "all", "folder": "all"}
#: Methods computed here (``--method``): the baselines and per-image optimisation.
METHODS = (*BASELINES, "per-image")
#: The internal indices scored on images without ground truth.
INDICES = ("silhouette", "calinski_harabasz", "davies_bouldin")

BSDS_COLUMNS = [
    "id",
    "n_labels",
    "n_segments",
    "miou_all_sum",
    "miou_all_n",
    "miou_fine_sum",
    "miou_fine_n",
    "miou_coarse_sum",
    "miou_coarse_n",
    "covering_sum",
    "covering_area",
    "pri",
    "vi",
    "boundary_matched_pred",
    "boundary_total_pred",
    "boundary_matched_gt",
    "boundary_total_gt",
    "boundary_f",
    "seconds",
    "error",
]
CLASS_MAP_COLUMNS = [
    "id",
    "n_labels",
    "n_segments",
    "best_iou_sum",
    "best_iou_n",
    "confusion",
    "seconds",
    "error",
]
INTERNAL_COLUMNS = [
    "id",
    "n_labels",
    "n_segments",
    *INDICES,
    "note",
    "seconds",
    "error",
]
#: The per-image CSV columns of each kind of scoring (see :func:`scoring_kind`).
COLUMNS = {"bsds": BSDS_COLUMNS, "class_map": CLASS_MAP_COLUMNS, "internal": INTERNAL_COLUMNS}
CSV_NAME = "per_image.csv"
SETTINGS_NAME = "evaluate.json"


class EvaluateError(ValueError):
    """Bad usage of ``unsupseg evaluate`` (the command exits with status 2)."""


# --------------------------------------------------------------------------------------
# Folders of images, with or without class maps


class LabelledFolderDataset(ImageDataset):
    """A folder of images with class maps: ``images/<id>.<ext>`` and ``labels/<id>.png``.

    Parameters
    ----------
    folder : path
        The folder holding ``images/`` (any image files, ids are their stems) and
        ``labels/`` (one PNG per image with the same stem: class ids, 255 = void, as a
        VOC-style palette PNG or a plain 8-bit grayscale PNG), and optionally
        ``classes.csv``.
    split : str
        Recorded only (the caller picks the folder).

    Notes
    -----
    The classes are the ids listed in the ``id`` column of ``classes.csv`` (an optional
    ``name`` column names them) when that file exists; otherwise every distinct non-void
    value found by reading all the label files of the folder's images once, when the
    data set is opened. :attr:`n_classes` is their number and :meth:`ground_truth`
    renumbers them ``0 .. n_classes - 1`` in increasing id order (void stays 255), so
    sparse ids such as {0, 3, 7} make three classes. A label file that is missing or
    unreadable, or holds an id missing from ``classes.csv``, is an error of its image
    only (raised by :meth:`ground_truth`).
    """

    name = "folder"

    def __init__(self, folder: str | Path, split: str = "all") -> None:
        super().__init__(folder, split, None)
        self.folder = Path(folder)
        expected = (
            f"expected {self.folder}/images/<id>.<ext> and {self.folder}/labels/<id>.png "
            "(class ids, 255 = void)"
        )
        if not (self.folder / "images").is_dir() or not (self.folder / "labels").is_dir():
            raise DatasetError(f"labelled image folder not found: {expected}")
        paths, problems = find_images([self.folder / "images"])
        if problems:
            raise DatasetError(problems[0][1])
        shared = sorted(stem for stem, n in Counter(p.stem for p in paths).items() if n > 1)
        if shared:
            raise DatasetError(
                f"{self.folder / 'images'}: several images share the stem {shared[0]!r}, so "
                f"labels/{shared[0]}.png cannot tell which it labels"
            )
        self._image_paths = paths
        self.ids = [p.stem for p in paths]
        self._label_paths = [self.folder / "labels" / f"{i}.png" for i in self.ids]
        self.classes, self.class_names = self._find_classes()
        if not self.classes:
            raise DatasetError(
                f"{self.folder / 'labels'}: no class found (no label map of an image in "
                f"images/ holds a value other than void 255): {expected}"
            )
        self.n_classes = len(self.classes)
        self._dense = np.full(256, -1, dtype=np.int64)
        self._dense[self.classes] = np.arange(self.n_classes)
        self._dense[VOID] = VOID

    def _find_classes(self) -> tuple[list[int], list[str]]:
        table = self.folder / "classes.csv"
        if table.is_file():
            with open(table, newline="") as handle:
                rows = list(csv.DictReader(handle))
            try:
                named = {int(row["id"]): row.get("name") or row["id"] for row in rows}
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{table}: needs an 'id' column of class ids") from None
            named.pop(VOID, None)
            if any(not 0 <= i < VOID for i in named):
                raise DatasetError(f"{table}: class ids must lie in 0..254 (255 is void)")
            return sorted(named), [named[i] for i in sorted(named)]
        found: set[int] = set()
        for path in self._label_paths:
            try:
                found.update(int(v) for v in np.unique(_read_class_map(path)))
            except DatasetError:
                continue  # reported for its image when it is scored
        found.discard(VOID)
        return sorted(found), [str(i) for i in sorted(found)]

    @property
    def source(self) -> str:
        return str(self.folder.resolve())

    def _load_image(self, index: int) -> np.ndarray:
        return read_rgb_uint8(self._image_paths[index])

    def _native_shape(self, index: int) -> Size:
        return file_image_shape(self._image_paths[index])

    def _load_ground_truth(self, index: int) -> np.ndarray:
        path = self._label_paths[index]
        values = _read_class_map(path)
        dense = self._dense[values]
        if (dense < 0).any():
            unknown = np.unique(values[dense < 0]).tolist()
            raise DatasetError(
                f"{path}: class id(s) {unknown} not in {self.folder / 'classes.csv'}"
            )
        shape = self._native_shape(index)
        if dense.shape != shape:
            raise DatasetError(
                f"{path}: label map of size {dense.shape[1]}x{dense.shape[0]}, image "
                f"{shape[1]}x{shape[0]} (width x height)"
            )
        return dense.astype(np.uint8)


def open_folder(root: Path, split: str = "all") -> ImageDataset:
    """Open ``--dataset folder``: with ground truth when it has ``labels/``, else without.

    Parameters
    ----------
    root : path
        ``--data-root``.
    split : str
        ``'all'`` scores ``root`` itself; another name scores the subfolder
        ``root/<split>``.

    Returns
    -------
    dataset : LabelledFolderDataset or FolderDataset
        A :class:`LabelledFolderDataset` when the folder holds ``images/`` and
        ``labels/``; otherwise a :class:`~unsupseg.data.FolderDataset` of the images in
        ``images/`` when that exists, else in the folder itself.
    """
    folder = Path(root) if split == "all" else Path(root) / split
    if not folder.is_dir():
        raise DatasetError(
            f"image folder not found: {folder} (split 'all' scores --data-root itself, "
            "another split a subfolder of it)"
        )
    if (folder / "labels").is_dir():
        return LabelledFolderDataset(folder, split)
    images = folder / "images" if (folder / "images").is_dir() else folder
    return FolderDataset(images, "all", image_size="native")


def scoring_kind(dataset: ImageDataset) -> str:
    """What the rows of ``dataset`` hold: ``'bsds'``, ``'class_map'`` or ``'internal'``.

    BSDS500 has several annotators' segmentations, a folder without labels nothing
    (internal indices), every other data set scored here (VOC 2012, MSRC-v2, a folder
    with labels) a class map.
    """
    if isinstance(dataset, BSDS500Dataset):
        return "bsds"
    if isinstance(dataset, FolderDataset):
        return "internal"
    return "class_map"


def scored_classes(dataset: ImageDataset) -> int:
    """The number of classes of a class-map data set's maps: VOC 2012's 20 objects plus
    background 0 (its ``first_class_value``), MSRC-v2's 23, a labelled folder's."""
    return int(dataset.n_classes or 0) + int(getattr(dataset, "first_class_value", 0))


# --------------------------------------------------------------------------------------
# Parser


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--split`` and ``--data-root``, as ``evaluate`` and ``postprocess``
    take them (opened by :func:`open_scored_dataset`)."""
    parser.add_argument(
        "--dataset",
        required=True,
        choices=list(DEFAULT_SPLITS),
        help="data set to score on: bsds500 (images/<split>/<id>.jpg, groundTruth/<split>/"
        "<id>.mat); voc2012 (VOCdevkit/VOC2012/ with JPEGImages/<id>.jpg, "
        "SegmentationClass/<id>.png palette PNGs with 255 = void, ImageSets/Segmentation/"
        "<split>.txt; 21 classes with background); msrc (images/<id>.png, labels/<id>.png "
        "palette PNGs, 255 = void); folder (--data-root DIR: DIR/images/ and DIR/labels/"
        "<id>.png of class ids, 255 = void, palette or grayscale, scored like msrc with the "
        "classes of DIR/classes.csv or else every id found in the label files; without "
        "labels/, the images of DIR/images/ or DIR are scored by internal indices)",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="split to score (default: val for bsds500 and voc2012; all for msrc, whose "
        "folder holds one half of the database, or holdout: the every-5th images that "
        "unsupseg train holds out of training; all for folder, which scores DIR itself, "
        "while another name scores DIR/<name>)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data set folder (default: ../shared/data/<bsds500|voc2012|msrc_v2> or "
        "$UNSUPSEG_DATA/<the same>; required for --dataset folder)",
    )


def add_evaluate_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    """Add the ``evaluate`` command to ``commands`` (``number``: the CLI's numeric type)."""
    parser = commands.add_parser(
        "evaluate",
        help="score a method, a checkpoint or saved predictions on a data set",
        description="Score a segmentation method on BSDS500 (Kanezaki/TIP mIoU All/Fine/"
        "Coarse, covering, PRI, VI, boundary ODS/OIS), PASCAL VOC 2012 or MSRC-v2 "
        "(per-image best-IoU mIoU, Hungarian-matched mIoU and pixel accuracy), or a "
        "folder of images: with labels/ scored like MSRC-v2, without them by internal "
        "indices (silhouette, Calinski-Harabasz, Davies-Bouldin). Rows go to "
        "OUT/per_image.csv as each image is scored; a rerun with the same OUT skips the "
        "images already there.",
    )
    add_dataset_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--method", choices=METHODS, help="a baseline or per-image optimisation")
    source.add_argument("--checkpoint", type=Path, help="a trained model (unsupseg train)")
    source.add_argument(
        "--predictions",
        type=Path,
        help="folder of saved label maps: <id>.png, <id>.npy, or <id>/labels.npy as written "
        "by unsupseg segment/predict",
    )
    parser.add_argument(
        "--limit", type=number(int, 1), default=None, help="score only the first N images"
    )
    parser.add_argument(
        "--workers",
        type=number(int, 1),
        default=1,
        help="processes computing baselines (other methods run in this process)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder for per_image.csv (default: runs/evaluate/<dataset>-<split>-<name>, "
        "with folder-<DIR's name> as the data set of --dataset folder)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--max-side",
        type=number(int, 16),
        default=None,
        help="per-image: downscale photos to this longest side for the optimisation",
    )
    parser.add_argument(
        "--max-iter", type=number(int, 1), default=1000, help="per-image: most iterations"
    )
    parser.add_argument("--seed", type=number(int, 0), default=0, help="per-image/k-means seed")
    parser.add_argument(
        "--refine",
        action="store_true",
        help="checkpoint: apply the superpixel majority vote to the argmax",
    )
    parser.add_argument(
        "--device", default=None, help="checkpoint/per-image device (default: CUDA if present)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_evaluate)


# --------------------------------------------------------------------------------------
# Scoring one image


def _n_segments(prediction: np.ndarray) -> int:
    return int(metrics.connected_components(prediction).max()) + 1


def score_bsds(prediction: np.ndarray, annotators: list[np.ndarray]) -> dict[str, Any]:
    """The per-image row values (without id, time and error) of a BSDS500 image."""
    row: dict[str, Any] = {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": _n_segments(prediction),
    }
    for mode, (total, count) in metrics.bsds_miou_all_modes(prediction, annotators).items():
        row[f"miou_{mode}_sum"], row[f"miou_{mode}_n"] = total, count
    row["covering_sum"], row["covering_area"] = metrics.segmentation_covering_terms(
        prediction, annotators
    )
    row["pri"] = metrics.probabilistic_rand_index(prediction, annotators)
    row["vi"] = metrics.variation_of_information(prediction, annotators)
    counts = metrics.boundary_prf_terms(prediction, annotators)
    for key, value in counts.items():
        row[f"boundary_{key}"] = value
    row["boundary_f"] = metrics.boundary_f(counts)["f"]
    return row


def score_class_map(
    prediction: np.ndarray, class_map: np.ndarray, n_classes: int, void: int = 255
) -> dict[str, Any]:
    """The per-image row values of an MSRC/VOC image (prediction ids must be >= 0)."""
    total, count = metrics.per_image_best_iou_terms(prediction, class_map, void=void)
    confusion = metrics.hungarian_confusion(prediction, class_map, n_classes, void=void)
    classes, ids = np.nonzero(confusion)
    sparse = [[int(c), int(k), int(confusion[c, k])] for c, k in zip(classes, ids, strict=True)]
    return {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": _n_segments(prediction),
        "best_iou_sum": total,
        "best_iou_n": count,
        "confusion": json.dumps(sparse, separators=(",", ":")),
    }


def score_internal(image: np.ndarray, prediction: np.ndarray) -> dict[str, Any]:
    """The per-image row values of an image without ground truth.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The image as the data set gives it; the indices see it divided by 255.
    prediction : ndarray of int, shape (H, W)

    Returns
    -------
    row : dict
        ``n_labels``, ``n_segments``, the :func:`unsupseg.metrics.internal_indices`
        (default sampling: 5000 pixels, seed 0) and ``note``: the warnings they gave, such
        as why they are NaN for a prediction of one label ("" when none).
    """
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        indices = metrics.internal_indices(rgb, prediction)
    notes = []
    for warning in caught:
        if issubclass(warning.category, RuntimeWarning):
            notes.append(str(warning.message))
        else:  # not about this image's scores: pass it on
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": _n_segments(prediction),
        **{name: indices[name] for name in INDICES},
        "note": "; ".join(dict.fromkeys(notes)),
    }


def _score(dataset: Any, index: int, prediction: np.ndarray) -> dict[str, Any]:
    """Score one prediction against what ``dataset`` knows of image ``index``."""
    kind = scoring_kind(dataset)
    prediction = np.asarray(prediction)
    if prediction.ndim != 2:
        raise ValueError(f"prediction must be a 2-D label map; got shape {prediction.shape}")
    if kind == "internal":
        image = dataset.image(index)
        shape, what = image.shape[:2], "image"
    else:
        truth = dataset.ground_truth(index)
        shape = truth[0].shape if kind == "bsds" else truth.shape
        what = "ground truth"
    if prediction.shape != shape:
        raise ValueError(
            f"prediction has size {prediction.shape[1]}x{prediction.shape[0]}, {what} "
            f"{shape[1]}x{shape[0]} (width x height)"
        )
    prediction = prediction.astype(np.int64)
    if kind == "bsds":
        return score_bsds(prediction, truth)
    if kind == "class_map":
        return score_class_map(prediction, truth, scored_classes(dataset))
    return score_internal(image, prediction)


def _baseline_row(dataset: Any, index: int, method: str, seed: int) -> dict[str, Any]:
    """Compute one baseline's prediction and row (run in a worker process)."""
    started = time.perf_counter()
    try:
        kwargs = {"seed": seed} if method == "kmeans" else {}
        prediction = BASELINES[method](dataset.image(index), **kwargs)
        row = _score(dataset, index, prediction)
    except Exception as exc:  # reported per image
        row = {"error": f"{type(exc).__name__}: {exc}"}
    row["id"] = dataset.image_id(index)
    row["seconds"] = time.perf_counter() - started
    return row


def find_prediction(folder: Path, image_id: str) -> Path | None:
    """The saved prediction of ``image_id`` in ``folder``, or None."""
    for candidate in (
        folder / f"{image_id}.npy",
        folder / f"{image_id}.png",
        folder / image_id / "labels.npy",
        folder / image_id / "labels.png",
    ):
        if candidate.is_file():
            return candidate
    return None


def read_prediction(path: Path) -> np.ndarray:
    """Read a label map saved as ``.npy`` or label PNG."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return read_label_png(path)


def _channel_ids(result: Any) -> np.ndarray:
    """Predicted ids that mean the same across images: the network's output channel.

    ``predict_batch`` numbers each image's labels consecutively, which loses the
    channel; the Hungarian protocol needs it, so each label takes the channel that wins
    most of its pixels in the raw argmax (the label itself without refinement).
    """
    shape = result.labels.shape
    raw = resize_nearest(np.asarray(result.response).argmax(axis=0), shape).astype(np.int64)
    labels = result.labels.astype(np.int64).ravel()
    n_labels, q = int(labels.max()) + 1, int(raw.max()) + 1
    votes = np.bincount(labels * q + raw.ravel(), minlength=n_labels * q).reshape(n_labels, q)
    return votes.argmax(axis=1)[labels].reshape(shape)


# --------------------------------------------------------------------------------------
# CSV


def _read_rows(path: Path, columns: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and list(reader.fieldnames) != columns:
            raise EvaluateError(
                f"{path} has columns {','.join(reader.fieldnames)}, not those of this data "
                "set; choose another --out"
            )
        return list(reader)


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_file(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


# --------------------------------------------------------------------------------------
# Aggregation


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def summarise(
    rows: list[dict[str, str]], n_classes: int | None = None, kind: str | None = None
) -> dict[str, Any]:
    """Dataset figures from the rows of ``per_image.csv`` (rows with an error are skipped).

    Parameters
    ----------
    rows : list of dict
        CSV rows as read back (string values).
    n_classes : int, optional
        The number of classes of class-map rows (:func:`scored_classes`).
    kind : {'bsds', 'class_map', 'internal'}, optional
        What the rows hold (:func:`scoring_kind`); default ``'class_map'`` when
        ``n_classes`` is given, else ``'bsds'``.

    Returns
    -------
    summary : dict
        ``n_images`` then, for BSDS500: ``miou_all, miou_fine, miou_coarse, covering,
        pri, vi, boundary_ods, boundary_ois``; class maps: ``miou_per_image,
        miou_hungarian, pixel_accuracy``; internal indices: ``silhouette,
        calinski_harabasz, davies_bouldin`` (means over the images where they are
        defined) and ``n_indices_undefined`` (images where they are NaN); then
        ``mean_segments, mean_labels, seconds_per_image``.
    """
    if kind is None:
        kind = "bsds" if n_classes is None else "class_map"
    if kind not in COLUMNS:
        raise ValueError(f"kind must be one of {', '.join(COLUMNS)}; got {kind!r}")
    if kind == "class_map" and not n_classes:
        raise ValueError("class-map rows need n_classes")
    good = [row for row in rows if not row.get("error")]

    def column(name: str) -> np.ndarray:
        return np.array([float(row[name]) for row in good], dtype=np.float64)

    def mean(name: str) -> float:
        values = column(name)
        return float(values.mean()) if values.size else math.nan

    summary: dict[str, Any] = {"n_images": len(good)}
    if kind == "bsds":
        for mode in metrics.MODES:
            summary[f"miou_{mode}"] = _ratio(
                column(f"miou_{mode}_sum").sum(), column(f"miou_{mode}_n").sum()
            )
        summary["covering"] = _ratio(column("covering_sum").sum(), column("covering_area").sum())
        summary["pri"] = mean("pri")
        summary["vi"] = mean("vi")
        counts = {
            key: int(column(f"boundary_{key}").sum())
            for key in ("matched_pred", "total_pred", "matched_gt", "total_gt")
        }
        summary["boundary_ods"] = metrics.boundary_f(counts)["f"] if good else math.nan
        summary["boundary_ois"] = mean("boundary_f")
    elif kind == "class_map":
        summary["miou_per_image"] = _ratio(column("best_iou_sum").sum(), column("best_iou_n").sum())
        entries = [entry for row in good for entry in json.loads(row["confusion"])]
        if entries:
            array = np.array(entries, dtype=np.int64).reshape(-1, 3)
            confusion = np.zeros((n_classes, int(array[:, 1].max()) + 1), dtype=np.int64)
            np.add.at(confusion, (array[:, 0], array[:, 1]), array[:, 2])
            scores = metrics.hungarian_scores(confusion)
            summary["miou_hungarian"] = scores["miou"]
            summary["pixel_accuracy"] = scores["pixel_accuracy"]
        else:
            summary["miou_hungarian"] = summary["pixel_accuracy"] = math.nan
    else:
        undefined = np.zeros(len(good), dtype=bool)
        for name in INDICES:
            values = column(name)
            defined = np.isfinite(values)
            undefined |= ~defined
            summary[name] = float(values[defined].mean()) if defined.any() else math.nan
        summary["n_indices_undefined"] = int(undefined.sum())
    summary["mean_segments"] = mean("n_segments")
    summary["mean_labels"] = mean("n_labels")
    summary["seconds_per_image"] = mean("seconds")
    return summary


def format_table(summary: dict[str, Any], title: str) -> str:
    """A two-column text table of the summary."""
    width = max(len(key) for key in summary)
    lines = [title, "-" * max(len(title), width + 12)]
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text:>10}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The command


def _source_name(args: argparse.Namespace) -> str:
    if args.method:
        return args.method
    if args.checkpoint:
        return f"checkpoint-{args.checkpoint.stem}"
    return f"predictions-{args.predictions.resolve().name}"


def _settings(
    args: argparse.Namespace, root: Path, split: str, dataset: ImageDataset
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "dataset": args.dataset,
        "split": split,
        "data_root": str(root.resolve()),
        "method": args.method,
        "checkpoint": str(args.checkpoint.resolve()) if args.checkpoint else None,
        "predictions": str(args.predictions.resolve()) if args.predictions else None,
    }
    if args.method == "per-image":
        settings.update(max_side=args.max_side, max_iter=args.max_iter, seed=args.seed)
    if args.method == "kmeans":
        settings["seed"] = args.seed
    if args.checkpoint:
        settings["refine"] = bool(args.refine)
    if isinstance(dataset, LabelledFolderDataset):
        # The confusion matrices in the rows number the classes in this order.
        settings["classes"] = dataset.classes
    return settings


def open_scored_dataset(args: argparse.Namespace) -> tuple[Any, Path, str]:
    """The data set of ``--dataset/--split/--data-root``: (dataset, root, split)."""
    from unsupseg.data import open_dataset
    from unsupseg.train import default_data_root

    split = args.split or DEFAULT_SPLITS[args.dataset]
    if args.dataset == "folder":
        if args.data_root is None:
            raise EvaluateError(
                "--dataset folder needs --data-root DIR: a folder with images/ and labels/ "
                "(class maps), or a folder of images (in DIR/images/ or DIR itself)"
            )
        return open_folder(args.data_root, split), Path(args.data_root), split
    root = args.data_root if args.data_root is not None else default_data_root(args.dataset)
    if args.dataset == "msrc" and split == "holdout":
        from unsupseg.train import split_holdout

        _, held = split_holdout(open_dataset("msrc", root, "all", image_size="native"))
        return held, Path(root), split
    return open_dataset(args.dataset, root, split, image_size="native"), Path(root), split


def _predictor(args: argparse.Namespace, class_maps: bool) -> Callable[[Any, int], np.ndarray]:
    """A function (dataset, index) -> prediction for the methods run in this process."""
    if args.predictions is not None:
        folder = args.predictions
        if not folder.is_dir():
            raise EvaluateError(f"--predictions {folder}: no such folder")

        def saved(dataset: Any, index: int) -> np.ndarray:
            image_id = dataset.image_id(index)
            path = find_prediction(folder, image_id)
            if path is None:
                raise FileNotFoundError(
                    f"no prediction for {image_id} in {folder} (looked for {image_id}.npy, "
                    f"{image_id}.png, {image_id}/labels.npy, {image_id}/labels.png)"
                )
            return read_prediction(path)

        return saved
    if args.checkpoint is not None:
        from unsupseg.predict import predict_batch
        from unsupseg.train import load_trained_model

        if not args.checkpoint.is_file():
            raise EvaluateError(f"--checkpoint {args.checkpoint}: no such file")
        model, info = load_trained_model(args.checkpoint, args.device)

        def trained(dataset: Any, index: int) -> np.ndarray:
            (result,) = predict_batch(model, info, [dataset.image(index)], refine=args.refine)
            return _channel_ids(result) if class_maps else result.labels

        return trained
    if args.method == "per-image":
        from unsupseg.per_image import segment

        def optimised(dataset: Any, index: int) -> np.ndarray:
            return segment(
                dataset.image(index),
                max_side=args.max_side,
                max_iter=args.max_iter,
                seed=args.seed,
                device=args.device,
            )

        return optimised
    method, seed = args.method, args.seed

    def baseline(dataset: Any, index: int) -> np.ndarray:
        kwargs = {"seed": seed} if method == "kmeans" else {}
        return BASELINES[method](dataset.image(index), **kwargs)

    return baseline


def _rows_in_process(
    dataset: Any, indices: list[int], predict: Callable[[Any, int], np.ndarray]
) -> Any:
    for index in indices:
        started = time.perf_counter()
        try:
            row = _score(dataset, index, predict(dataset, index))
        except Exception as exc:  # reported per image
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row["id"] = dataset.image_id(index)
        row["seconds"] = time.perf_counter() - started
        yield row


def _rows_in_pool(dataset: Any, indices: list[int], method: str, seed: int, workers: int) -> Any:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_baseline_row, dataset, index, method, seed) for index in indices]
        for future in futures:
            yield future.result()


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``unsupseg evaluate``; 0 when every image was scored, 1 when some failed, 2 on
    bad usage (a missing data set, a clash with an earlier run in ``--out``)."""
    from unsupseg.train import TrainError

    try:
        dataset, root, split = open_scored_dataset(args)
    except (DatasetError, TrainError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    kind = scoring_kind(dataset)
    class_maps = kind == "class_map"
    columns = COLUMNS[kind]
    name = args.dataset if args.dataset != "folder" else f"folder-{root.resolve().name}"
    out = args.out or Path("runs") / "evaluate" / f"{name}-{split}-{_source_name(args)}"
    csv_path = out / CSV_NAME
    settings = _settings(args, root, split, dataset)
    try:
        settings_path = out / SETTINGS_NAME
        if settings_path.is_file():
            previous = json.loads(settings_path.read_text())
            if previous != settings:
                changed = sorted(k for k in settings if previous.get(k) != settings[k])
                raise EvaluateError(
                    f"{out} holds an evaluation with other settings ({', '.join(changed)}); "
                    "choose another --out or delete it"
                )
        rows = _read_rows(csv_path, columns)
        predict = None if args.method in BASELINES else _predictor(args, class_maps)
    except (EvaluateError, OSError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return 2
    except Exception as exc:  # a checkpoint that does not load
        log.error("cannot load %s: %s", args.checkpoint, exc)
        return 2

    # Resume: keep scored rows (one per id); retry the images that failed before and
    # drop a row cut short by an interrupted write.
    kept: dict[str, dict[str, str]] = {}
    for row in rows:
        complete = all(row.get(key) is not None for key in columns) and None not in row
        if complete and not row.get("error"):
            kept[row["id"]] = row
    if len(kept) != len(rows):
        _write_rows(csv_path, columns, list(kept.values()))
    write_json(out / SETTINGS_NAME, settings)

    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    todo = [i for i in range(n) if dataset.image_id(i) not in kept]
    if kept:
        log.info(
            "%s: %d of the first %d images already scored, %d to go",
            csv_path,
            n - len(todo),
            n,
            len(todo),
        )
    if predict is None and args.workers > 1 and len(todo) > 1:
        stream = _rows_in_pool(dataset, todo, args.method, args.seed, args.workers)
    else:
        predict = predict or _predictor(args, class_maps)
        stream = _rows_in_process(dataset, todo, predict)

    failures: list[tuple[str, str]] = []
    new_file = not csv_path.is_file()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        if new_file:
            writer.writeheader()
            handle.flush()
        for row in tqdm(
            stream,
            total=len(todo),
            desc=f"evaluate {args.dataset} {split}",
            unit="img",
            disable=args.quiet,
        ):
            writer.writerow({key: _format(row.get(key)) for key in columns})
            handle.flush()
            if row.get("error"):
                failures.append((row["id"], row["error"]))

    wanted = {dataset.image_id(i) for i in range(n)}
    scored = [row for row in _read_rows(csv_path, columns) if row["id"] in wanted]
    summary = summarise(scored, scored_classes(dataset) if class_maps else None, kind)
    summary["n_failed"] = len(failures)
    title = f"{args.dataset} {split}: {_source_name(args)} ({summary['n_images']} images)"
    print(format_table(summary, title))
    if args.json is not None:
        write_json(
            args.json,
            {
                **{
                    k: None if isinstance(v, float) and math.isnan(v) else v
                    for k, v in summary.items()
                },
                "failed": [{"id": image_id, "error": err} for image_id, err in failures],
                "settings": settings,
                "per_image_csv": str(csv_path.resolve()),
            },
        )
    log.info("Per-image rows: %s", csv_path.resolve())
    if failures:
        log.error("%d image(s) failed (excluded from the figures):", len(failures))
        for image_id, message in failures:
            log.error("  %s: %s", image_id, message)
        return 1
    return 0
