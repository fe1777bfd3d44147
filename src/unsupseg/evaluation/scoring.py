"""Scoring one prediction, and the dataset figures of the per-image rows.

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
    summed over the split for the Hungarian-matched mIoU and pixel accuracy (the
    IIC/PiCIE protocol). VOC 2012 counts 21 classes (background 0 and the 20 objects),
    MSRC-v2 23, a folder the classes of
    :class:`~unsupseg.data.folders.LabelledFolderDataset`; 255 is void everywhere.
``internal`` (a folder of images without labels)
    No ground truth: the silhouette, Calinski-Harabasz and Davies-Bouldin indices of
    :func:`unsupseg.metrics.internal_indices` on the image (scaled to [0, 1]) and the
    prediction, averaged over the images where they are defined (a one-label
    prediction has none: NaN, with the reason in the row's ``note``).

Every kind also records the numbers of labels and of 4-connected segments.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np

from unsupseg import metrics
from unsupseg.data.base import ImageDataset
from unsupseg.data.datasets import BSDS500Dataset, FolderDataset
from unsupseg.errors import ConfigError

__all__ = [
    "BOUNDARY_COUNT_COLUMNS",
    "BSDS_COLUMNS",
    "BSDS_REGION_COLUMNS",
    "CLASS_MAP_COLUMNS",
    "COLUMNS",
    "INDICES",
    "INTERNAL_COLUMNS",
    "label_ids",
    "n_segments",
    "score_bsds",
    "score_bsds_regions",
    "score_class_map",
    "score_internal",
    "score_prediction",
    "scored_classes",
    "scoring_kind",
    "summarise",
]

#: The internal indices scored on images without ground truth.
INDICES = ("silhouette", "calinski_harabasz", "davies_bouldin")

#: The region measures of a BSDS500 row (:func:`score_bsds_regions`).
BSDS_REGION_COLUMNS = [
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
]
#: The boundary counts of :func:`unsupseg.metrics.boundary_prf_terms`, as columns.
BOUNDARY_COUNT_COLUMNS = [
    "boundary_matched_pred",
    "boundary_total_pred",
    "boundary_matched_gt",
    "boundary_total_gt",
]
BSDS_COLUMNS = [
    "id",
    *BSDS_REGION_COLUMNS,
    *BOUNDARY_COUNT_COLUMNS,
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


def n_segments(prediction: np.ndarray) -> int:
    """The number of 4-connected segments of a label map."""
    return int(metrics.connected_components(prediction).max()) + 1


def score_bsds_regions(prediction: np.ndarray, annotators: list[np.ndarray]) -> dict[str, Any]:
    """The region measures of a BSDS500 row: label and segment counts, the mIoU terms
    (All / Fine / Coarse), the covering terms, PRI and VI (no boundary counts).

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
    annotators : list of ndarray of int, shape (H, W)

    Returns
    -------
    row : dict
        ``n_labels, n_segments, miou_<mode>_sum, miou_<mode>_n, covering_sum,
        covering_area, pri, vi``.
    """
    row: dict[str, Any] = {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": n_segments(prediction),
    }
    for mode, (total, count) in metrics.bsds_miou_all_modes(prediction, annotators).items():
        row[f"miou_{mode}_sum"], row[f"miou_{mode}_n"] = total, count
    row["covering_sum"], row["covering_area"] = metrics.segmentation_covering_terms(
        prediction, annotators
    )
    row["pri"] = metrics.probabilistic_rand_index(prediction, annotators)
    row["vi"] = metrics.variation_of_information(prediction, annotators)
    return row


def score_bsds(prediction: np.ndarray, annotators: list[np.ndarray]) -> dict[str, Any]:
    """The per-image row values (without id, time and error) of a BSDS500 image.

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
    annotators : list of ndarray of int, shape (H, W)
        The image's ground-truth segmentations.

    Returns
    -------
    row : dict
        The values of :data:`BSDS_COLUMNS` but ``id``, ``seconds`` and ``error``.
    """
    row = score_bsds_regions(prediction, annotators)
    counts = metrics.boundary_prf_terms(prediction, annotators)
    for key, value in counts.items():
        row[f"boundary_{key}"] = value
    row["boundary_f"] = metrics.boundary_f(counts)["f"]
    return row


def score_class_map(
    prediction: np.ndarray, class_map: np.ndarray, n_classes: int, void: int = 255
) -> dict[str, Any]:
    """The per-image row values of an MSRC-v2, VOC 2012 or labelled-folder image.

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted ids, all >= 0 (they are the columns of the confusion matrix).
    class_map : ndarray of int, shape (H, W)
        Classes ``0..n_classes-1``, or ``void``.
    n_classes : int
        The data set's number of classes (:func:`scored_classes`).
    void : int
        The class id left out of every score.

    Returns
    -------
    row : dict
        The values of :data:`CLASS_MAP_COLUMNS` but ``id``, ``seconds`` and ``error``.
    """
    total, count = metrics.per_image_best_iou_terms(prediction, class_map, void=void)
    confusion = metrics.hungarian_confusion(prediction, class_map, n_classes, void=void)
    classes, ids = np.nonzero(confusion)
    sparse = [[int(c), int(k), int(confusion[c, k])] for c, k in zip(classes, ids, strict=True)]
    return {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": n_segments(prediction),
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
        "n_segments": n_segments(prediction),
        **{name: indices[name] for name in INDICES},
        "note": "; ".join(dict.fromkeys(notes)),
    }


def label_ids(prediction: np.ndarray) -> np.ndarray:
    """A prediction's label ids as int64, refusing what is not a label map: a
    non-numeric array, NaN or infinite values, or fractional ids (a casting would
    quietly turn them into other labels).

    Raises
    ------
    ValueError
        Saying which values are wrong.
    """
    prediction = np.asarray(prediction)
    if prediction.dtype == bool or np.issubdtype(prediction.dtype, np.integer):
        return prediction.astype(np.int64)
    if not np.issubdtype(prediction.dtype, np.floating):
        raise ValueError(f"prediction must hold integer label ids; got dtype {prediction.dtype}")
    bad = ~np.isfinite(prediction)
    if bad.any():
        raise ValueError(
            f"prediction holds {int(bad.sum())} NaN or infinite value(s); "
            "a label map holds integer ids"
        )
    if (prediction != np.round(prediction)).any():
        raise ValueError("prediction holds fractional values; a label map holds integer ids")
    if np.abs(prediction).max(initial=0) >= 2**62:
        raise ValueError("prediction holds label ids too large for int64")
    return prediction.astype(np.int64)


def score_prediction(dataset: ImageDataset, index: int, prediction: np.ndarray) -> dict[str, Any]:
    """Score one prediction against what ``dataset`` knows of image ``index``.

    Parameters
    ----------
    dataset : ImageDataset
        A data set :func:`scoring_kind` knows.
    index : int
        The image.
    prediction : ndarray of int, shape (H, W)
        At the size of the image (of its ground truth).

    Returns
    -------
    row : dict
        :func:`score_bsds`, :func:`score_class_map` or :func:`score_internal`.

    Raises
    ------
    ValueError
        When the prediction is not a 2-D map of the image's size, or not of integer
        ids (see :func:`label_ids`).
    """
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
    prediction = label_ids(prediction)
    if kind == "bsds":
        return score_bsds(prediction, truth)
    if kind == "class_map":
        return score_class_map(prediction, truth, scored_classes(dataset))
    return score_internal(image, prediction)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else math.nan


def summarise(
    rows: list[dict[str, Any]], n_classes: int | None = None, kind: str | None = None
) -> dict[str, Any]:
    """Dataset figures from the rows of ``per_image.csv`` (rows with an error are skipped).

    Parameters
    ----------
    rows : list of dict
        Per-image rows, as read back from the CSV (text cells) or parsed.
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

    Raises
    ------
    ConfigError
        For an unknown ``kind``, or class-map rows without ``n_classes``.

    Examples
    --------
    >>> rows = [{"n_labels": "1", "n_segments": "1", "best_iou_sum": "1.0",
    ...          "best_iou_n": "2", "confusion": "[[0,0,5],[1,0,3]]", "seconds": "0.5",
    ...          "error": ""}]
    >>> summary = summarise(rows, n_classes=2, kind="class_map")
    >>> summary["miou_per_image"], summary["pixel_accuracy"]
    (0.5, 0.625)
    """
    if kind is None:
        kind = "bsds" if n_classes is None else "class_map"
    if kind not in COLUMNS:
        raise ConfigError(f"kind must be one of {', '.join(COLUMNS)}; got {kind!r}")
    if kind == "class_map" and not n_classes:
        raise ConfigError("class-map rows need n_classes")
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
