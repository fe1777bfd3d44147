"""Evaluation metrics on label maps.

Plain numpy functions on integer label arrays, in the style of ``skimage.metrics``:

- BSDS500 Kanezaki/TIP mIoU (best IoU per ground-truth segment, predictions split into
  4-connected components, pooled over all ground-truth segments): :func:`bsds_miou_terms`,
  :func:`bsds_miou`.
- Berkeley region benchmark (Arbelaez et al. 2011) on the prediction as given:
  :func:`segmentation_covering_terms`, :func:`probabilistic_rand_index`,
  :func:`variation_of_information`.
- BSDS500 boundary benchmark (one-to-one pixel matching, :func:`correspond_pixels`):
  :func:`boundary_prf_terms`, :func:`boundary_f`; curves: :func:`boundary_pr_curve_terms`,
  :func:`boundary_ods_ois_ap`.
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
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import connected_components as _graph_components
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree
from skimage.metrics import contingency_table
from skimage.morphology import thin as _sk_thin

from unsupseg.regions import connected_leaves

__all__ = [
    "best_iou_per_segment",
    "boundary_f",
    "boundary_ods_ois_ap",
    "boundary_pr_curve_terms",
    "boundary_prf_terms",
    "bsds_miou",
    "bsds_miou_terms",
    "border_frame",
    "connected_components",
    "correspond_pixels",
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
            if np.abs(array).max() >= 2.0**63:
                # astype would wrap them all onto one int64 value, merging the labels
                raise ValueError(
                    f"{name} holds whole-number floats beyond the int64 range (largest "
                    f"magnitude {np.abs(array).max():g}); renumber the labels first"
                )
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
    return connected_leaves(_as_labels(labels, "labels"))


def border_frame(labels: np.ndarray, inset: int = 2) -> float:
    """Share of border pixels whose label differs from the pixel ``inset`` inside.

    A network padded with zeros tends to give the outermost pixels a label of their own,
    a frame one or two pixels wide; this measures it (near 0 without a frame).

    Examples
    --------
    >>> labels = np.zeros((6, 6), int)
    >>> border_frame(labels)
    0.0
    >>> labels[0] = 1  # the top row has its own label
    >>> border_frame(labels)
    0.25
    """
    labels = _as_labels(labels, "labels")
    if min(labels.shape) <= inset:
        raise ValueError(f"labels of shape {labels.shape} have no pixel {inset} inside")
    sides = [labels[0] != labels[inset], labels[-1] != labels[-1 - inset],
             labels[:, 0] != labels[:, inset], labels[:, -1] != labels[:, -1 - inset]]  # fmt: skip
    return float(np.concatenate(sides).mean())


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
    annotators = list(annotators)
    return [annotators[i] for i in _selected_indices(annotators, mode)]


def _selected_indices(annotators: Sequence[np.ndarray], mode: str) -> list[int]:
    """Positions of the annotators :func:`select_annotators` picks (by position, not by
    identity: the same array may be given twice)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if len(annotators) == 0:
        raise ValueError("annotators is empty: give at least one ground-truth label map")
    if mode == "all":
        return list(range(len(annotators)))
    counts = np.array([np.unique(np.asarray(gt)).size for gt in annotators])
    # argmax/argmin return the first of tied indices.
    return [int(np.argmax(counts) if mode == "fine" else np.argmin(counts))]


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
        chosen = [per_annotator[i] for i in _selected_indices(annotators, mode)]
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
# boundaries (BSDS500 boundary benchmark)


def label_boundaries(labels: np.ndarray, thin: bool = True) -> np.ndarray:
    """BSDS500 boundary map of a label map.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
    thin : bool
        Thin the map to one-pixel-wide lines (``skimage.morphology.thin``, MATLAB's
        ``bwmorph(..., 'thin', inf)``), as the BSDS benchmark does.

    Returns
    -------
    boundaries : ndarray of bool, shape (H, W)
        The BSDS ``seg2bdry(seg, 'imageSize')`` map: a pixel is True when the 2 x 2 block
        it spans with its right, lower and lower-right neighbours is not constant; in the
        last row (column) when it differs from its right (lower) neighbour; the
        bottom-right pixel is False. Then thinned if ``thin``.

    Notes
    -----
    With ``thin=True`` this reproduces the ``Boundaries`` field stored in the BSDS500
    ground-truth files exactly: checked on all 1633 train and val annotations. The
    stored field is not the raw ``seg2bdry`` map (that is a superset, by about 20% of
    the pixels) nor the right/lower 4-neighbour difference map.
    """
    labels = _as_labels(labels, "labels")
    out = np.zeros(labels.shape, dtype=bool)
    here = labels[:-1, :-1]
    out[:-1, :-1] = (here != labels[:-1, 1:]) | (here != labels[1:, :-1]) | (here != labels[1:, 1:])
    out[-1, :-1] = labels[-1, :-1] != labels[-1, 1:]
    out[:-1, -1] = labels[:-1, -1] != labels[1:, -1]
    out[-1, -1] = False
    return _sk_thin(out) if thin else out


def _as_boundary_map(bmap: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(bmap)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) boundary map; got shape {array.shape}")
    if array.dtype != bool:
        if not (np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()):
            raise ValueError(f"{name} must be a boolean (or 0/1) map; got dtype {array.dtype}")
        array = array != 0
    return array


_MULTIPLIER = 100  # BSDS Match.cc: costs are distances x 100, rounded to integers
_DENSE_LIMIT = 40_000  # components up to this many row x column cells: dense solver


def _assign(
    pair_i: np.ndarray, pair_j: np.ndarray, cost: np.ndarray, outlier: float
) -> tuple[np.ndarray, np.ndarray]:
    """Matching of the pairs ``(pair_i, pair_j)`` that minimises ``sum(cost - outlier)``.

    ``cost`` and ``outlier`` are whole numbers with ``0 <= cost < outlier``. Returns the
    ``i`` and ``j`` ids of the chosen pairs.
    """
    nodes_a, local_i = np.unique(pair_i, return_inverse=True)
    nodes_b, local_j = np.unique(pair_j, return_inverse=True)
    swap = nodes_a.size > nodes_b.size  # rows: the smaller side
    rows, cols = (local_j, local_i) if swap else (local_i, local_j)
    n_rows, n_cols = (nodes_b.size, nodes_a.size) if swap else (nodes_a.size, nodes_b.size)
    if n_rows * n_cols <= _DENSE_LIMIT:
        # Dense rectangular assignment: a cell that is no pair costs 0 (= unmatched),
        # a pair costs cost - outlier < 0; every row gets a column.
        table = np.zeros((n_rows, n_cols))
        table[rows, cols] = cost - outlier
        row_ind, col_ind = linear_sum_assignment(table)
        real = table[row_ind, col_ind] < 0
    else:
        # Sparse: one private outlier column per row (the row left unmatched) at the
        # outlier cost, so a matching of all rows always exists and its cost is
        # sum(cost) + outlier * (rows unmatched). Every weight gets +1 (all such
        # matchings have n_rows edges) so that no stored weight is 0. Integer-valued
        # weights keep LAPJVsp exact (with arbitrary floats it can fail to terminate).
        own = np.arange(n_rows)
        graph = csr_array(
            (
                np.concatenate([cost + 1.0, np.full(n_rows, outlier + 1.0)]),
                (np.concatenate([rows, own]), np.concatenate([cols, n_cols + own])),
            ),
            shape=(n_rows, n_cols + n_rows),
        )
        row_ind, col_ind = min_weight_full_bipartite_matching(graph)
        real = col_ind < n_cols
    row_ind, col_ind = row_ind[real], col_ind[real]
    if swap:
        row_ind, col_ind = col_ind, row_ind
    return nodes_a[row_ind], nodes_b[col_ind]


def correspond_pixels(
    boundary_a: np.ndarray,
    boundary_b: np.ndarray,
    max_dist: float,
    outlier_cost: float = 100.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one correspondence of two boundary maps (BSDS ``correspondPixels``).

    Parameters
    ----------
    boundary_a, boundary_b : ndarray of bool, shape (H, W)
        The two boundary maps (e.g. machine and one human).
    max_dist : float
        Largest Euclidean distance, in pixels, between two matched pixels (BSDS:
        ``0.0075 * hypot(H, W)``); pairs need ``dy**2 + dx**2 <= max_dist**2``.
    outlier_cost : float
        Cost of leaving a pixel unmatched, in units of ``max_dist`` (BSDS: 100). Must be
        > 1.

    Returns
    -------
    match_a, match_b : ndarray of bool, shape (H, W)
        True at the pixels of ``boundary_a`` (``boundary_b``) that have a partner. The
        matching is one to one, so ``match_a.sum() == match_b.sum()``.

    Notes
    -----
    As in BSDS ``Match.cc``, a pair at distance ``d`` costs ``rint(100 * d)`` and an
    outlier ``ceil(100 * outlier_cost * max_dist)``; the matching minimises ``sum(pair
    costs) + (n_a + n_b - k) * outlier`` over one-to-one matchings of ``k`` admissible
    pairs, i.e. every pair is worth ``outlier - cost > (outlier_cost - 1) * max_dist *
    100``. So it has maximum cardinality and, among those, minimum total (rounded)
    distance, but for contrived augmenting paths of some ``2 * outlier_cost`` pairs.

    The solution is exact: the graph of admissible pairs is split into connected
    components, a single pair is taken as is, a small component goes to
    ``scipy.optimize.linear_sum_assignment`` (dense, non-pairs at cost 0 = unmatched)
    and a larger one to ``scipy.sparse.csgraph.min_weight_full_bipartite_matching``
    (the smaller side as rows, each row with a private outlier column). BSDS solves the
    same integer problem with Goldberg's CSA on a graph with random sparse outlier
    edges, so between equally good matchings the two may pick different pixels; the
    numbers of matched pixels agree. With ``max_dist == 0`` only coincident pixels
    pair, and all of them do.
    """
    a = _as_boundary_map(boundary_a, "boundary_a")
    b = _as_boundary_map(boundary_b, "boundary_b")
    _check_same_shape(a, b, "boundary_a", "boundary_b")
    if not max_dist >= 0:
        raise ValueError(f"max_dist must be >= 0; got {max_dist}")
    if not outlier_cost > 1:
        raise ValueError(f"outlier_cost must be > 1; got {outlier_cost}")
    match_a = np.zeros(a.shape, dtype=bool)
    match_b = np.zeros(b.shape, dtype=bool)
    ya, xa = np.nonzero(a)
    yb, xb = np.nonzero(b)
    if ya.size == 0 or yb.size == 0:
        return match_a, match_b

    # Admissible pairs: a k-d tree proposes, the exact integer test decides.
    tree_a = cKDTree(np.column_stack([ya, xa]))
    tree_b = cKDTree(np.column_stack([yb, xb]))
    pairs = tree_a.sparse_distance_matrix(tree_b, max_dist + 1e-6, output_type="ndarray")
    pair_i = pairs["i"].astype(np.int64)
    pair_j = pairs["j"].astype(np.int64)
    d2 = (ya[pair_i] - yb[pair_j]) ** 2 + (xa[pair_i] - xb[pair_j]) ** 2
    keep = d2 <= max_dist * max_dist
    pair_i, pair_j, d2 = pair_i[keep], pair_j[keep], d2[keep]
    if pair_i.size == 0:
        return match_a, match_b
    cost = np.rint(_MULTIPLIER * np.sqrt(d2))
    outlier = float(max(np.ceil(_MULTIPLIER * outlier_cost * max_dist), cost.max() + 1))

    # Every connected component of the pair graph on its own (same optimum, faster).
    graph = coo_array(
        (np.ones(pair_i.size, dtype=np.int8), (pair_i, ya.size + pair_j)),
        shape=(ya.size + yb.size,) * 2,
    )
    _, component = _graph_components(graph, directed=False)
    edge_component = component[pair_i]
    order = np.argsort(edge_component, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(edge_component[order]) != 0])
    sizes = np.diff(np.r_[starts, order.size])
    single = order[starts[sizes == 1]]
    matched_a, matched_b = [pair_i[single]], [pair_j[single]]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        edges = order[start : start + size]
        got_a, got_b = _assign(pair_i[edges], pair_j[edges], cost[edges], outlier)
        matched_a.append(got_a)
        matched_b.append(got_b)
    matched_a, matched_b = np.concatenate(matched_a), np.concatenate(matched_b)
    match_a[ya[matched_a], xa[matched_a]] = True
    match_b[yb[matched_b], xb[matched_b]] = True
    return match_a, match_b


def _pooled_counts(
    bmap: np.ndarray, human: Sequence[np.ndarray], max_dist: float
) -> tuple[int, int, int, int]:
    """BSDS counts of one thinned machine map against every human boundary map."""
    accumulated = np.zeros(bmap.shape, dtype=bool)
    matched_gt = total_gt = 0
    for gt_b in human:
        match_pred, match_gt = correspond_pixels(bmap, gt_b, max_dist)
        accumulated |= match_pred
        matched_gt += int(match_gt.sum())
        total_gt += int(gt_b.sum())
    return int(accumulated.sum()), int(bmap.sum()), matched_gt, total_gt


_COUNT_KEYS = ("matched_pred", "total_pred", "matched_gt", "total_gt")


def boundary_pr_curve_terms(
    boundary_maps: Sequence[np.ndarray] | np.ndarray,
    annotators: Sequence[np.ndarray],
    tolerance: float = 0.0075,
) -> dict[str, np.ndarray]:
    """BSDS boundary counts of one image at several thresholds (``evaluation_bdry_image``).

    Parameters
    ----------
    boundary_maps : sequence of ndarray of bool, shape (H, W), or ndarray, shape (T, H, W)
        Machine boundary maps, one per threshold or hierarchy level, in the order the
        curve should follow (BSDS: increasing threshold). Each is thinned as in BSDS.
        For a hierarchy of label maps pass ``[label_boundaries(s, thin=False) for s in
        levels]``.
    annotators : sequence of ndarray of int, shape (H, W)
        Ground-truth label maps; boundaries from :func:`label_boundaries` (identical to
        the stored BSDS ``Boundaries`` field).
    tolerance : float
        Matching distance as a fraction of the image diagonal (BSDS: 0.0075).

    Returns
    -------
    counts : dict of ndarray of int64, shape (T,)
        ``matched_pred`` (BSDS ``cntP``), ``total_pred`` (``sumP``), ``matched_gt``
        (``cntR``), ``total_gt`` (``sumR``) per threshold; see
        :func:`boundary_prf_terms`.
    """
    if isinstance(boundary_maps, np.ndarray) and boundary_maps.ndim == 2:
        boundary_maps = [boundary_maps]
    maps = [_as_boundary_map(m, f"boundary_maps[{t}]") for t, m in enumerate(boundary_maps)]
    if not maps:
        raise ValueError("boundary_maps is empty: give at least one boundary map")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance}")
    annotators = _as_annotators(maps[0], annotators)
    for t, bmap in enumerate(maps):
        _check_same_shape(bmap, maps[0], f"boundary_maps[{t}]", "boundary_maps[0]")
    max_dist = tolerance * float(np.hypot(*maps[0].shape))
    human = [label_boundaries(gt) for gt in annotators]
    out = np.zeros((len(maps), 4), dtype=np.int64)
    previous = None
    for t, bmap in enumerate(maps):
        bmap = _sk_thin(bmap)
        if previous is not None and np.array_equal(bmap, previous):
            out[t] = out[t - 1]  # same map as the last threshold: same counts
        else:
            out[t] = _pooled_counts(bmap, human, max_dist)
        previous = bmap
    return {key: out[:, k].copy() for k, key in enumerate(_COUNT_KEYS)}


def boundary_prf_terms(
    prediction: np.ndarray,
    annotators: Sequence[np.ndarray],
    tolerance: float = 0.0075,
) -> dict[str, int]:
    """BSDS500 boundary matching counts of one segmentation.

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
        ``matched_pred``: predicted boundary pixels matched to a pixel of at least one
        annotator's boundary; ``total_pred``: predicted boundary pixels;
        ``matched_gt``: ground-truth boundary pixels matched to a predicted pixel,
        summed over annotators; ``total_gt``: ground-truth boundary pixels summed over
        annotators.

    Notes
    -----
    As BSDS ``evaluation_bdry_image`` with ``segs``: the predicted boundary is
    :func:`label_boundaries` of the prediction (``seg2bdry(seg, 'imageSize')``, thinned
    with ``bwmorph(..., 'thin', inf)``); the human boundary of each annotator is the
    same map of its label map, which equals the stored ``Boundaries`` field. Each
    annotator is matched to the prediction one to one with :func:`correspond_pixels`
    at ``max_dist = tolerance * hypot(H, W)``. Precision is ``matched_pred /
    total_pred`` and recall ``matched_gt / total_gt``.

    A hard segmentation has one threshold, so the F-measure of the counts summed over
    the dataset is its ODS score (and, with one threshold, also BSDS's OIS score); see
    :func:`boundary_f`. For several thresholds use :func:`boundary_pr_curve_terms` and
    :func:`boundary_ods_ois_ap`.
    """
    prediction = _as_labels(prediction, "prediction")
    annotators = _as_annotators(prediction, annotators)
    bmap = label_boundaries(prediction, thin=False)  # thinned in boundary_pr_curve_terms
    curve = boundary_pr_curve_terms([bmap], annotators, tolerance)
    return {key: int(values[0]) for key, values in curve.items()}


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


def _curve_prf(counts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recall, precision and F arrays as BSDS ``collect_eval_bdry`` computes them."""
    cnt_r, sum_r = np.asarray(counts["matched_gt"]), np.asarray(counts["total_gt"])
    cnt_p, sum_p = np.asarray(counts["matched_pred"]), np.asarray(counts["total_pred"])
    recall = cnt_r / (sum_r + (sum_r == 0))
    precision = cnt_p / (sum_p + (sum_p == 0))
    return recall, precision, _fmeasure(recall, precision)


def _fmeasure(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    total = precision + recall
    return 2 * precision * recall / (total + (total == 0))


def boundary_ods_ois_ap(per_image_counts: Sequence[dict[str, np.ndarray]]) -> dict:
    """Dataset ODS, OIS and AP of boundary curves (BSDS ``collect_eval_bdry``).

    Parameters
    ----------
    per_image_counts : sequence of dict
        One :func:`boundary_pr_curve_terms` result per image, all with the same number
        ``T`` of thresholds in the same order.

    Returns
    -------
    scores : dict
        ``ods_f``, ``ods_precision``, ``ods_recall``, ``ods_index``: the threshold (first
        on ties) with the best F of the counts summed over images, and its scores.
        ``ods_f_interp``, ``ods_precision_interp``, ``ods_recall_interp``: BSDS's
        reported ODS, the best F along straight segments between consecutive points of
        that curve (100 steps per segment, ``maxF``); >= ``ods_f``.
        ``ois_f``, ``ois_precision``, ``ois_recall``: every image's counts taken at its
        own best-F threshold (first on ties), summed over images, then scored.
        ``ap``: area under the summed curve, BSDS style: the distinct recall values and
        their precisions, precision interpolated linearly at recall ``0:0.01:1``, points
        outside the curve's recall range count 0, area ``sum * 0.01``; 0 with fewer than
        two distinct recalls.

    Notes
    -----
    Ratios with a zero denominator are 0 (BSDS: ``cnt / (sum + (sum == 0))``). For a
    repeated recall value BSDS's ``[Ru, indR] = unique(R)`` takes the precision of the
    last threshold with that recall (MATLAB's behaviour when the benchmark was written;
    MATLAB since R2013a takes the first); both give the same area unless the summed
    curve has two thresholds with equal recall and different precision. The AP is not
    a mean over the defined points: undefined points count 0 in a sum over all 101.
    """
    if len(per_image_counts) == 0:
        raise ValueError("per_image_counts is empty: give the counts of at least one image")
    arrays = {
        key: [np.atleast_1d(np.asarray(c[key], dtype=np.int64)) for c in per_image_counts]
        for key in _COUNT_KEYS
    }
    shapes = {a.shape for values in arrays.values() for a in values}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(
            "every image must give the four count arrays with the same number of thresholds; "
            f"got shapes {sorted(shapes)}"
        )
    stacked = {key: np.stack(values) for key, values in arrays.items()}
    n_images = stacked["matched_pred"].shape[0]

    # ODS: counts pooled over images, per threshold.
    total = {key: array.sum(axis=0) for key, array in stacked.items()}
    recall, precision, f = _curve_prf(total)
    best = int(np.argmax(f))
    scores: dict = {
        "ods_f": float(f[best]),
        "ods_precision": float(precision[best]),
        "ods_recall": float(recall[best]),
        "ods_index": best,
    }
    # BSDS maxF: scan the segments between consecutive thresholds, keep strict gains.
    steps = np.linspace(0.0, 1.0, 100)
    seg_r = recall[1:, None] * steps + recall[:-1, None] * (1 - steps)
    seg_p = precision[1:, None] * steps + precision[:-1, None] * (1 - steps)
    all_r = np.concatenate([recall[:1], seg_r.ravel()])
    all_p = np.concatenate([precision[:1], seg_p.ravel()])
    all_f = _fmeasure(all_r, all_p)
    k = int(np.argmax(all_f))
    scores.update(
        ods_f_interp=float(all_f[k]),
        ods_precision_interp=float(all_p[k]),
        ods_recall_interp=float(all_r[k]),
    )

    # OIS: every image at its own best threshold, counts pooled.
    _, _, f_images = _curve_prf(stacked)
    pick = np.argmax(f_images, axis=1)
    rows = np.arange(n_images)
    ois = {key: int(array[rows, pick].sum()) for key, array in stacked.items()}
    ois_scores = boundary_f(ois)
    scores.update(
        ois_f=ois_scores["f"],
        ois_precision=ois_scores["precision"],
        ois_recall=ois_scores["recall"],
    )

    # AP: precision interpolated on recall 0:0.01:1 from the pooled curve.
    unique_r, first_of_reversed = np.unique(recall[::-1], return_index=True)
    unique_p = precision[::-1][first_of_reversed]  # last threshold of each recall value
    if unique_r.size > 1:
        grid = np.arange(101) / 100  # the decimals 0, 0.01, ..., 1 as closely as floats go
        interp = np.interp(grid, unique_r, unique_p, left=np.nan, right=np.nan)
        scores["ap"] = float(np.nansum(interp) * 0.01)
    else:
        scores["ap"] = 0.0
    return scores


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
