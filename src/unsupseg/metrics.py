"""Evaluation metrics on label maps.

Plain numpy functions on integer label arrays, in the style of ``skimage.metrics``:

- BSDS500 Kanezaki/TIP mIoU (best IoU per ground-truth segment, predictions split into
  4-connected components, pooled over all ground-truth segments): :func:`bsds_miou_terms`,
  :func:`bsds_miou`.
- Berkeley region benchmark (Arbelaez et al. 2011) on the prediction as given:
  :func:`segmentation_covering_terms`, :func:`probabilistic_rand_index`,
  :func:`variation_of_information`.
- Boundary precision / recall / F-measure: :func:`boundary_prf_terms`, :func:`boundary_f`.
- VOC 2012 / MSRC-v2: :func:`per_image_best_iou_terms`, :func:`hungarian_confusion`,
  :func:`hungarian_scores`.
- Internal indices without ground truth: :func:`internal_indices`.

Every contingency table is scikit-image's sparse
:func:`~skimage.metrics.contingency_table` of the two maps renumbered ``0..K-1``, so
there is no loop over pixels and no dense ``n_pred x n_gt`` table, even for predictions
with thousands of fragments.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.measure import label as _sk_label
from skimage.metrics import contingency_table

__all__ = [
    "best_iou_per_segment",
    "boundary_f",
    "boundary_prf_terms",
    "bsds_miou",
    "bsds_miou_terms",
    "connected_components",
    "hungarian_confusion",
    "hungarian_scores",
    "internal_indices",
    "label_boundaries",
    "per_image_best_iou_terms",
    "probabilistic_rand_index",
    "rand_index",
    "segmentation_covering",
    "segmentation_covering_terms",
    "select_annotators",
    "variation_of_information",
]

MODES = ("all", "fine", "coarse")


# ---------------------------------------------------------------------------
# validation and contingency tables


def _as_labels(labels: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) label map; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
            array = array.astype(np.int64)
        else:
            raise ValueError(
                f"{name} must hold integer labels; got dtype {array.dtype} with non-integer "
                "values (round or cast the label map first)"
            )
    return array


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {a.shape} and {b.shape} "
            "(resize the prediction to the ground truth's size with nearest-neighbour "
            "interpolation first)"
        )


def _as_annotators(prediction: np.ndarray, annotators: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(annotators, np.ndarray) and annotators.ndim == 2:
        annotators = [annotators]
    annotators = [_as_labels(gt, f"annotators[{i}]") for i, gt in enumerate(annotators)]
    if not annotators:
        raise ValueError("annotators is empty: give at least one ground-truth label map")
    for i, gt in enumerate(annotators):
        _check_same_shape(prediction, gt, "prediction", f"annotators[{i}]")
    return annotators


def _dense_ids(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Map arbitrary labels to consecutive ids 0..K-1 (flattened)."""
    uniques, inverse = np.unique(values.ravel(), return_inverse=True)
    return inverse.ravel().astype(np.int64), int(uniques.size)


def _contingency(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sparse contingency table of two flat label arrays.

    Returns ``(ia, ib, counts, area_a, area_b)``: for every co-occurring pair of dense ids
    ``(ia[k], ib[k])`` its pixel count ``counts[k]`` (float64, whole numbers), in
    row-major order, and the areas (int64) of all dense ids.
    """
    ida, _ = _dense_ids(a)
    idb, _ = _dense_ids(b)
    # Canonical CSR: the pairs come sorted by (ia, ib), the order every sum below uses.
    table = contingency_table(ida, idb, sparse_type="array").tocoo()
    area_a = np.asarray(table.sum(axis=1)).ravel().astype(np.int64)
    area_b = np.asarray(table.sum(axis=0)).ravel().astype(np.int64)
    return table.row, table.col, table.data, area_a, area_b


# ---------------------------------------------------------------------------
# connected components and best IoU


def connected_components(labels: np.ndarray) -> np.ndarray:
    """Split every label of a label map into its 4-connected components.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Label map; every value, 0 and negatives included, is a label (none is background).

    Returns
    -------
    components : ndarray of int64, shape (H, W)
        Consecutive component ids from 0; two pixels share an id iff they have the same
        label and are joined by a 4-connected path of pixels of that label.

    Notes
    -----
    This is the relabelling of the superpixel benchmark used by Kanezaki (2018) and
    Kim et al. (2020) before the BSDS500 mIoU: a label split into pieces that only touch
    diagonally counts as several segments.
    """
    labels = _as_labels(labels, "labels")
    dense, _ = _dense_ids(labels)
    # +1 so that no pixel is skimage's background 0; connectivity=1 is the 4-neighbourhood.
    components = _sk_label(dense.reshape(labels.shape) + 1, background=0, connectivity=1)
    return components.astype(np.int64) - 1


def best_iou_per_segment(
    prediction: np.ndarray,
    ground_truth: np.ndarray,
    ignore: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU of every ground-truth segment with any predicted segment.

    Parameters
    ----------
    prediction, ground_truth : ndarray of int, shape (H, W)
        Label maps; each distinct value is one segment (no connected-component split is
        done here, see :func:`connected_components`).
    ignore : ndarray of bool, shape (H, W), optional
        Pixels excluded from both sides (e.g. VOC/MSRC void 255): they belong to no
        segment and count in no intersection or union.

    Returns
    -------
    ious : ndarray of float64, shape (S,)
        For each ground-truth segment present among the kept pixels (sorted by label),
        ``max_p |g & p| / |g | p|``.
    areas : ndarray of int64, shape (S,)
        The pixel count of each of those ground-truth segments.
    """
    prediction = _as_labels(prediction, "prediction")
    ground_truth = _as_labels(ground_truth, "ground_truth")
    _check_same_shape(prediction, ground_truth, "prediction", "ground_truth")
    pred = prediction.ravel()
    gt = ground_truth.ravel()
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        _check_same_shape(prediction, ignore, "prediction", "ignore")
        keep = ~ignore.ravel()
        pred, gt = pred[keep], gt[keep]
        if gt.size == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
    ig, ip, inter, area_g, area_p = _contingency(gt, pred)
    iou = inter / (area_g[ig] + area_p[ip] - inter)
    best = np.zeros(area_g.size)
    np.maximum.at(best, ig, iou)
    return best, area_g.astype(np.int64)


# ---------------------------------------------------------------------------
# BSDS500 Kanezaki/TIP mIoU


def select_annotators(annotators: Sequence[np.ndarray], mode: str = "all") -> list[np.ndarray]:
    """The annotators used by a BSDS500 mIoU mode.

    Parameters
    ----------
    annotators : sequence of ndarray
        The ground-truth label maps of one image, in stored order.
    mode : {'all', 'fine', 'coarse'}
        ``'all'``: every annotator; ``'fine'``: the one with the most unique labels;
        ``'coarse'``: the one with the fewest. Ties go to the first in stored order.

    Returns
    -------
    selected : list of ndarray
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    annotators = list(annotators)
    if not annotators:
        raise ValueError("annotators is empty: give at least one ground-truth label map")
    if mode == "all":
        return annotators
    counts = np.array([np.unique(np.asarray(gt)).size for gt in annotators])
    # argmax/argmin return the first of tied indices.
    index = int(np.argmax(counts) if mode == "fine" else np.argmin(counts))
    return [annotators[index]]


def bsds_miou_terms(
    prediction: np.ndarray, annotators: Sequence[np.ndarray], mode: str = "all"
) -> tuple[float, int]:
    """Pooled terms of the Kanezaki/TIP BSDS500 mIoU for one image.

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted labels; split into 4-connected components here.
    annotators : sequence of ndarray of int, shape (H, W)
        Ground-truth label maps of the image, used as stored.
    mode : {'all', 'fine', 'coarse'}
        Annotator selection, see :func:`select_annotators`.

    Returns
    -------
    sum_iou : float
        Sum over the ground-truth segments of the selected annotators of the best IoU.
    n_segments : int
        Number of those ground-truth segments.

    Notes
    -----
    The dataset score is ``sum(sum_iou) / sum(n_segments)`` over images (a mean over all
    ground-truth segments pooled across annotators and images, not a mean of per-image
    means); see :func:`bsds_miou`.

    References
    ----------
    .. [1] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.
    .. [2] W. Kim, A. Kanezaki, M. Tanaka, "Unsupervised learning of image segmentation
           based on differentiable feature clustering", IEEE TIP 29, 2020.
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    components = connected_components(prediction)
    total, count = 0.0, 0
    for gt in select_annotators(annotators, mode):
        ious, _ = best_iou_per_segment(components, gt)
        total += float(ious.sum())
        count += int(ious.size)
    return total, count


def bsds_miou_all_modes(
    prediction: np.ndarray, annotators: Sequence[np.ndarray]
) -> dict[str, tuple[float, int]]:
    """:func:`bsds_miou_terms` of every mode at once (one connected-component split and
    one contingency table per annotator instead of one per mode).

    Returns
    -------
    terms : dict
        ``{mode: (sum_iou, n_segments)}`` for each of :data:`MODES`.
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    components = connected_components(prediction)
    per_annotator = []
    for gt in annotators:
        ious, _ = best_iou_per_segment(components, gt)
        per_annotator.append((float(ious.sum()), int(ious.size)))
    terms = {}
    for mode in MODES:
        selected = {id(gt) for gt in select_annotators(annotators, mode)}
        chosen = [t for gt, t in zip(annotators, per_annotator, strict=True) if id(gt) in selected]
        terms[mode] = (sum(t[0] for t in chosen), sum(t[1] for t in chosen))
    return terms


def bsds_miou(
    predictions: Sequence[np.ndarray],
    ground_truths: Sequence[Sequence[np.ndarray]],
    mode: str = "all",
) -> float:
    """Kanezaki/TIP BSDS500 mIoU over a dataset.

    Parameters
    ----------
    predictions : sequence of ndarray of int, shape (H, W)
        One predicted label map per image.
    ground_truths : sequence of sequence of ndarray
        For each image, its annotators' label maps.
    mode : {'all', 'fine', 'coarse'}
        Annotator selection, see :func:`select_annotators`.

    Returns
    -------
    miou : float
        Mean best IoU over all ground-truth segments pooled across annotators and images.

    See Also
    --------
    bsds_miou_terms : the per-image terms, for accumulating while predicting.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(ground_truths)} ground truths; "
            "give one list of annotators per prediction"
        )
    if len(predictions) == 0:
        raise ValueError("no images: predictions is empty")
    total, count = 0.0, 0
    for prediction, annotators in zip(predictions, ground_truths, strict=True):
        s, n = bsds_miou_terms(prediction, annotators, mode)
        total += s
        count += n
    return total / count


# ---------------------------------------------------------------------------
# Berkeley region benchmark


def segmentation_covering_terms(
    prediction: np.ndarray, annotators: Sequence[np.ndarray]
) -> tuple[float, int]:
    """Segmentation Covering terms of one image (Arbelaez et al. 2011).

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted labels, used as given (no connected-component split).
    annotators : sequence of ndarray of int, shape (H, W)
        Ground-truth label maps of the image.

    Returns
    -------
    weighted : float
        Sum over the regions of all annotators of ``area x best IoU``.
    area : int
        Total ground-truth area (``n_annotators x H x W``).

    Notes
    -----
    The dataset covering is ``sum(weighted) / sum(area)`` over images, so images with more
    annotators weigh more, as in the BSDS500 benchmark (``evaluation_reg_image``). The
    benchmark ignores label 0; our labels are taken as if shifted to start at 1, so every
    pixel counts.

    References
    ----------
    .. [1] P. Arbelaez, M. Maire, C. Fowlkes, J. Malik, "Contour detection and
           hierarchical image segmentation", IEEE TPAMI 33(5), 2011.
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    weighted, area = 0.0, 0
    for gt in annotators:
        ious, areas = best_iou_per_segment(prediction, gt)
        weighted += float(np.sum(ious * areas))
        area += int(areas.sum())
    return weighted, area


def segmentation_covering(prediction: np.ndarray, annotators: Sequence[np.ndarray]) -> float:
    """Segmentation Covering of one image: see :func:`segmentation_covering_terms`.

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
    annotators : sequence of ndarray of int, shape (H, W)

    Returns
    -------
    covering : float
        In [0, 1]; 1 iff the prediction equals every annotator (up to relabelling).
    """
    weighted, area = segmentation_covering_terms(prediction, annotators)
    return weighted / area


def rand_index(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    """Rand index of two label maps, pairs counted over all pixels.

    Parameters
    ----------
    prediction, ground_truth : ndarray of int, shape (H, W)

    Returns
    -------
    ri : float
        Fraction of unordered pixel pairs on which both maps agree (same/different);
        equal to ``sklearn.metrics.rand_score``. 1.0 for a single pixel.

    Notes
    -----
    ``1 - (sum_i a_i^2 / 2 + sum_j b_j^2 / 2 - sum_ij n_ij^2) / C(N, 2)``, the formula of
    ``rand_index`` in the BSDS500 ``match_segmentations2``, with ``n`` the contingency
    table and ``a``, ``b`` its marginals.
    """
    prediction = _as_labels(prediction, "prediction")
    ground_truth = _as_labels(ground_truth, "ground_truth")
    _check_same_shape(prediction, ground_truth, "prediction", "ground_truth")
    _, _, counts, area_a, area_b = _contingency(prediction.ravel(), ground_truth.ravel())
    n = float(prediction.size)
    if n < 2:
        return 1.0
    counts = counts.astype(np.float64)
    disagree = (
        np.sum(area_a.astype(np.float64) ** 2) / 2
        + np.sum(area_b.astype(np.float64) ** 2) / 2
        - np.sum(counts**2)
    )
    return float(1.0 - disagree / (n * (n - 1) / 2))


def probabilistic_rand_index(prediction: np.ndarray, annotators: Sequence[np.ndarray]) -> float:
    """Probabilistic Rand Index of one image (Unnikrishnan et al. 2007; BSDS500 form).

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted labels, used as given.
    annotators : sequence of ndarray of int, shape (H, W)

    Returns
    -------
    pri : float
        Mean over annotators of :func:`rand_index`; the dataset score is the mean over
        images.

    Notes
    -----
    As in the BSDS500 benchmark, this is the plain mean of the per-annotator Rand indices
    (pairs over all pixels, ``C(N, 2)`` in the denominator), which equals the PRI with
    empirical pair probabilities.

    References
    ----------
    .. [1] R. Unnikrishnan, C. Pantofaru, M. Hebert, "Toward objective evaluation of image
           segmentation algorithms", IEEE TPAMI 29(6), 2007.
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    return float(np.mean([rand_index(prediction, gt) for gt in annotators]))


def _vi_bits(prediction: np.ndarray, ground_truth: np.ndarray) -> float:
    # skimage.metrics.variation_of_information gives the same value up to rounding: it
    # sums the two conditional entropies row by row and column by column, which differs
    # in the last bits from the entropies below, so the published VI figures would not
    # reproduce to every digit.
    _, _, counts, area_a, area_b = _contingency(prediction.ravel(), ground_truth.ravel())
    n = float(prediction.size)
    p = counts / n
    pa = area_a / n
    pb = area_b / n
    h_a = -np.sum(pa * np.log2(pa))
    h_b = -np.sum(pb * np.log2(pb))
    h_ab = -np.sum(p * np.log2(p))
    # VI = H(A|B) + H(B|A) = 2 H(A,B) - H(A) - H(B); clip rounding below zero.
    return float(max(2 * h_ab - h_a - h_b, 0.0))


def variation_of_information(prediction: np.ndarray, annotators: Sequence[np.ndarray]) -> float:
    """Variation of Information of one image, in bits, mean over annotators.

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted labels, used as given.
    annotators : sequence of ndarray of int, shape (H, W)

    Returns
    -------
    vi : float
        Mean over annotators of ``H(P|G) + H(G|P)`` (log base 2); 0 iff identical
        partitions. The dataset score is the mean over images.

    References
    ----------
    .. [1] M. Meila, "Comparing clusterings: an axiomatic view", ICML 2005.
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    return float(np.mean([_vi_bits(prediction, gt) for gt in annotators]))


# ---------------------------------------------------------------------------
# boundaries


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """One-pixel-thin boundaries of a label map.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)

    Returns
    -------
    boundaries : ndarray of bool, shape (H, W)
        True where a pixel's label differs from its right or lower 4-neighbour.
    """
    labels = _as_labels(labels, "labels")
    out = np.zeros(labels.shape, dtype=bool)
    out[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return out


def _within(mask: np.ndarray, targets: np.ndarray, max_dist: float) -> np.ndarray:
    """Pixels of ``mask`` within ``max_dist`` (Euclidean) of a True pixel of ``targets``."""
    if not targets.any():
        return np.zeros(mask.shape, dtype=bool)
    distance = ndimage.distance_transform_edt(~targets)
    return mask & (distance <= max_dist)


def boundary_prf_terms(
    prediction: np.ndarray,
    annotators: Sequence[np.ndarray],
    tolerance: float = 0.0075,
) -> dict[str, int]:
    """Boundary matching counts of one image (BSDS500-style, distance approximation).

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted labels, used as given.
    annotators : sequence of ndarray of int, shape (H, W)
        Ground-truth label maps; boundaries from :func:`label_boundaries`.
    tolerance : float
        Matching distance as a fraction of the image diagonal (BSDS: 0.0075).

    Returns
    -------
    counts : dict
        ``matched_pred``: predicted boundary pixels within the tolerance of the boundary
        of at least one annotator; ``total_pred``: predicted boundary pixels;
        ``matched_gt``: ground-truth boundary pixels within the tolerance of a predicted
        boundary, summed over annotators; ``total_gt``: ground-truth boundary pixels
        summed over annotators.

    Notes
    -----
    Precision is ``matched_pred / total_pred`` and recall ``matched_gt / total_gt``, pooled
    as in the BSDS benchmark (a predicted pixel counts as matched if it matches any
    annotator; recall accumulates over annotators). The BSDS code matches pixels one to
    one (a bipartite assignment, ``correspondPixels``); here a pixel is matched whenever
    any boundary pixel of the other side lies within the tolerance, so several pixels may
    share one partner and the scores are slightly optimistic. Boundaries are taken from
    the label maps (not the stored ``Boundaries`` field) and are not thinned further.

    A hard segmentation has one threshold, so the F-measure of the pooled dataset counts
    is its ODS score, and the mean of the per-image F-measures is an OIS-like score
    (see :func:`boundary_f`).
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance}")
    max_dist = tolerance * float(np.hypot(*prediction.shape))
    pred_b = label_boundaries(prediction)
    gt_bs = [label_boundaries(gt) for gt in annotators]
    matched_pred = np.zeros(pred_b.shape, dtype=bool)
    matched_gt = total_gt = 0
    for gt_b in gt_bs:
        matched_pred |= _within(pred_b, gt_b, max_dist)
        matched_gt += int(_within(gt_b, pred_b, max_dist).sum())
        total_gt += int(gt_b.sum())
    return {
        "matched_pred": int(matched_pred.sum()),
        "total_pred": int(pred_b.sum()),
        "matched_gt": matched_gt,
        "total_gt": total_gt,
    }


def boundary_f(counts: dict[str, int]) -> dict[str, float]:
    """Precision, recall and F-measure from (pooled) :func:`boundary_prf_terms` counts.

    Parameters
    ----------
    counts : dict
        With keys ``matched_pred``, ``total_pred``, ``matched_gt``, ``total_gt`` (sum the
        per-image dicts for the dataset ODS score).

    Returns
    -------
    scores : dict
        ``precision``, ``recall``, ``f``. As in the BSDS code, a ratio with a zero
        denominator is 0, and so is F when precision + recall is 0.
    """
    precision = counts["matched_pred"] / max(counts["total_pred"], 1)
    recall = counts["matched_gt"] / max(counts["total_gt"], 1)
    total = precision + recall
    f = 2 * precision * recall / total if total > 0 else 0.0
    return {"precision": float(precision), "recall": float(recall), "f": float(f)}


# ---------------------------------------------------------------------------
# VOC 2012 / MSRC-v2


def per_image_best_iou_terms(
    prediction: np.ndarray, class_map: np.ndarray, void: int | None = 255
) -> tuple[float, int]:
    """Per-image best-IoU terms on a semantic class map (VOC 2012, MSRC-v2).

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted labels; split into 4-connected components (on the whole image) first.
    class_map : ndarray of int, shape (H, W)
        Ground-truth classes; each class present in the image (background included) is
        one segment, however many pieces it has.
    void : int or None
        Class id excluded from both sides (255 for VOC/MSRC); None keeps every pixel.

    Returns
    -------
    sum_iou : float
        Sum of the best IoU of each ground-truth class region.
    n_segments : int
        Number of ground-truth class regions; the dataset score is
        ``sum(sum_iou) / sum(n_segments)``.
    """
    prediction = _as_labels(prediction, "prediction")
    class_map = _as_labels(class_map, "class_map")
    _check_same_shape(prediction, class_map, "prediction", "class_map")
    components = connected_components(prediction)
    ignore = None if void is None else class_map == void
    ious, _ = best_iou_per_segment(components, class_map, ignore=ignore)
    return float(ious.sum()), int(ious.size)


def hungarian_confusion(
    prediction: np.ndarray,
    class_map: np.ndarray,
    n_classes: int,
    void: int | None = 255,
    n_clusters: int | None = None,
) -> np.ndarray:
    """Confusion matrix between ground-truth classes and predicted clusters, one image.

    Parameters
    ----------
    prediction : ndarray of int, shape (H, W)
        Predicted cluster ids in ``[0, n_clusters)`` (no connected-component split).
    class_map : ndarray of int, shape (H, W)
        Ground-truth classes in ``[0, n_classes)`` or ``void``.
    n_classes : int
        Number of ground-truth classes.
    void : int or None
        Class id excluded (255 for VOC/MSRC).
    n_clusters : int, optional
        Number of predicted clusters; defaults to ``prediction.max() + 1``. Give it
        explicitly when summing matrices over images.

    Returns
    -------
    confusion : ndarray of int64, shape (n_classes, n_clusters)
        ``confusion[c, k]`` = labelled pixels of class ``c`` predicted as cluster ``k``.
        Sum over the images of a split, then call :func:`hungarian_scores`.
    """
    prediction = _as_labels(prediction, "prediction")
    class_map = _as_labels(class_map, "class_map")
    _check_same_shape(prediction, class_map, "prediction", "class_map")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1; got {n_classes}")
    pred = prediction.ravel().astype(np.int64)
    gt = class_map.ravel().astype(np.int64)
    if void is not None:
        keep = gt != void
        pred, gt = pred[keep], gt[keep]
    if n_clusters is None:
        n_clusters = int(pred.max()) + 1 if pred.size else 1
    if pred.size and (pred.min() < 0 or pred.max() >= n_clusters):
        raise ValueError(
            f"prediction ids must lie in [0, {n_clusters}); got [{pred.min()}, {pred.max()}] "
            "(pass a larger n_clusters)"
        )
    if gt.size and (gt.min() < 0 or gt.max() >= n_classes):
        raise ValueError(
            f"class_map values must lie in [0, {n_classes}) or be void={void}; "
            f"got [{gt.min()}, {gt.max()}]"
        )
    flat = np.bincount(gt * n_clusters + pred, minlength=n_classes * n_clusters)
    return flat.reshape(n_classes, n_clusters).astype(np.int64)


def hungarian_scores(confusion: np.ndarray) -> dict:
    """Hungarian-matched mIoU and pixel accuracy (IIC/PiCIE/STEGO protocol).

    Parameters
    ----------
    confusion : ndarray of int, shape (n_classes, n_clusters)
        Summed :func:`hungarian_confusion` matrices of a split.

    Returns
    -------
    scores : dict
        ``miou``: mean over the classes present (row sum > 0) of ``TP / (TP + FP + FN)``
        under the assignment (a class without a cluster scores 0); ``pixel_accuracy``:
        matched / labelled pixels; ``assignment``: int array of length n_classes, the
        cluster matched to each class or -1.

    Notes
    -----
    The one-to-one assignment maximises the number of matched pixels
    (``scipy.optimize.linear_sum_assignment``). Clusters left unmatched count as false
    positives of no class (they only lower pixel accuracy).

    References
    ----------
    .. [1] X. Ji, J. F. Henriques, A. Vedaldi, "Invariant information clustering for
           unsupervised image classification and segmentation", ICCV 2019.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.size == 0:
        raise ValueError(
            f"confusion must be a non-empty (n_classes, n_clusters) matrix; got shape "
            f"{confusion.shape}"
        )
    confusion = confusion.astype(np.float64)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    assignment = np.full(confusion.shape[0], -1, dtype=np.int64)
    assignment[rows] = cols
    labelled = confusion.sum()
    tp = np.zeros(confusion.shape[0])
    tp[rows] = confusion[rows, cols]
    gt_area = confusion.sum(axis=1)
    pred_area = np.zeros(confusion.shape[0])
    pred_area[rows] = confusion[:, cols].sum(axis=0)
    present = gt_area > 0
    union = gt_area + pred_area - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    miou = float(iou[present].mean()) if present.any() else float("nan")
    accuracy = float(tp.sum() / labelled) if labelled > 0 else float("nan")
    return {"miou": miou, "pixel_accuracy": accuracy, "assignment": assignment}


# ---------------------------------------------------------------------------
# internal indices


def internal_indices(
    image_rgb_float: np.ndarray,
    labels: np.ndarray,
    n_samples: int = 5000,
    seed: int = 0,
    position_weight: float = 50.0,
    response: np.ndarray | None = None,
) -> dict[str, float]:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin indices without ground truth.

    Parameters
    ----------
    image_rgb_float : ndarray of float, shape (H, W, 3)
        RGB image in [0, 1].
    labels : ndarray of int, shape (H, W)
        Predicted labels.
    n_samples : int
        Pixels drawn uniformly without replacement (all pixels if fewer).
    seed : int
        Seed of the sampling, so that scores are reproducible.
    position_weight : float
        Pixel coordinates ``(y, x)`` are divided by ``max(H, W)`` and multiplied by this
        (CIELAB L spans 0-100, so 50 makes crossing the image weigh like half the
        lightness range).
    response : ndarray of float, shape (H, W, C), optional
        Extra per-pixel features (e.g. the network's response map), appended as given.

    Returns
    -------
    scores : dict
        ``silhouette`` (higher is better, in [-1, 1]), ``calinski_harabasz`` (higher is
        better), ``davies_bouldin`` (lower is better), from scikit-learn. All NaN, with a
        ``RuntimeWarning`` giving the reason, when the sample holds fewer than 2 labels
        or as many labels as pixels.
    """
    from skimage.color import rgb2lab
    from sklearn.metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_score,
    )

    image = np.asarray(image_rgb_float, dtype=np.float64)
    labels = _as_labels(labels, "labels")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_rgb_float must have shape (H, W, 3); got {image.shape}")
    if image.shape[:2] != labels.shape:
        raise ValueError(
            f"image_rgb_float {image.shape[:2]} and labels {labels.shape} differ in (H, W)"
        )
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2; got {n_samples}")
    h, w = labels.shape
    features = [rgb2lab(np.clip(image, 0.0, 1.0)).reshape(-1, 3)]
    yy, xx = np.mgrid[0:h, 0:w]
    scale = position_weight / max(h, w)
    features.append(np.stack([yy.ravel(), xx.ravel()], axis=1) * scale)
    if response is not None:
        response = np.asarray(response, dtype=np.float64)
        if response.ndim == 2:
            response = response[..., None]
        if response.ndim != 3 or response.shape[:2] != labels.shape:
            raise ValueError(
                f"response must have shape (H, W, C) = ({h}, {w}, C); got {response.shape}"
            )
        features.append(response.reshape(h * w, -1))
    x = np.concatenate(features, axis=1)
    y = labels.ravel()
    rng = np.random.default_rng(seed)
    if x.shape[0] > n_samples:
        index = rng.choice(x.shape[0], size=n_samples, replace=False)
        x, y = x[index], y[index]
    n_labels = np.unique(y).size
    if n_labels < 2 or n_labels >= y.size:
        warnings.warn(
            f"internal indices need 2 <= labels < samples; the sample of {y.size} pixels "
            f"holds {n_labels} label(s): returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        nan = float("nan")
        return {"silhouette": nan, "calinski_harabasz": nan, "davies_bouldin": nan}
    return {
        "silhouette": float(silhouette_score(x, y)),
        "calinski_harabasz": float(calinski_harabasz_score(x, y)),
        "davies_bouldin": float(davies_bouldin_score(x, y)),
    }
