"""Tests of unsupseg.metrics: hand-computed tiny cases, perfect scores, cross-checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import variation_of_information as sk_vi
from sklearn.metrics import rand_score

from unsupseg import metrics as M

BLANK4 = np.zeros((1, 4), dtype=int)
GT_3_1 = np.array([[0, 0, 0, 1]])  # two segments, areas 3 and 1


# ---------------------------------------------------------------------------
# connected components and best IoU


def test_connected_components_diagonal_pieces_are_separate():
    # Each label is two pixels touching only diagonally: 4 components in all.
    labels = np.array([[0, 1], [1, 0]])
    cc = M.connected_components(labels)
    assert np.unique(cc).size == 4
    assert cc.min() == 0 and cc.max() == 3


def test_connected_components_label_zero_is_not_background():
    labels = np.array([[0, 0], [0, 1]])
    cc = M.connected_components(labels)
    assert np.unique(cc).size == 2
    assert cc[0, 0] == cc[0, 1] == cc[1, 0] != cc[1, 1]


def test_connected_components_joins_4_connected_and_negative_labels():
    labels = np.array([[-3, -3, 7], [7, -3, 7], [7, 7, 7]])
    cc = M.connected_components(labels)
    assert np.unique(cc).size == 2


def test_best_iou_hand_computed():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 0, 0, 1]])
    # GT 0 (2 px) vs pred 0 (3 px): inter 2, union 3 -> 2/3.
    # GT 1 (2 px) vs pred 0: 1/4; vs pred 1 (1 px): inter 1, union 2 -> 1/2.
    ious, areas = M.best_iou_per_segment(pred, gt)
    np.testing.assert_allclose(ious, [2 / 3, 1 / 2])
    np.testing.assert_array_equal(areas, [2, 2])


def test_best_iou_blank_segment_is_area_over_n():
    # Blank prediction, GT areas a=3, b=1, N=4: best IoUs a/N, b/N.
    ious, areas = M.best_iou_per_segment(BLANK4, GT_3_1)
    np.testing.assert_allclose(ious, [3 / 4, 1 / 4])
    np.testing.assert_array_equal(areas, [3, 1])


def test_best_iou_ignore_mask():
    gt = np.array([[0, 0, 5, 1]])
    ignore = gt == 5
    # Kept: GT 0 (2 px), GT 1 (1 px); blank prediction has 3 kept pixels.
    ious, areas = M.best_iou_per_segment(BLANK4, gt, ignore=ignore)
    np.testing.assert_allclose(ious, [2 / 3, 1 / 3])
    np.testing.assert_array_equal(areas, [2, 1])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        M.best_iou_per_segment(np.zeros((2, 3), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="2-D"):
        M.connected_components(np.zeros(5, int))
    with pytest.raises(ValueError, match="integer"):
        M.connected_components(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="same shape"):
        M.probabilistic_rand_index(np.zeros((2, 2), int), [np.zeros((2, 3), int)])


# ---------------------------------------------------------------------------
# BSDS500 mIoU


def test_bsds_miou_terms_splits_prediction_into_components():
    pred = np.array([[0, 1], [1, 0]])  # 4 components after the split
    gt = np.zeros((2, 2), int)  # one segment of 4 px
    # Best IoU 1/4 (would be 2/4 without the split).
    assert M.bsds_miou_terms(pred, [gt]) == pytest.approx((0.25, 1))


def test_bsds_modes_and_ties_go_to_first_annotator():
    a = np.array([[0, 1], [0, 1]])  # 2 labels
    b = np.array([[0, 0], [1, 1]])  # 2 labels
    c = np.zeros((2, 2), int)  # 1 label
    pred = a
    # fine: tie a/b -> a: IoUs 1, 1 (b would give 1/3, 1/3).
    assert M.bsds_miou_terms(pred, [a, b, c], "fine") == pytest.approx((2.0, 2))
    # fine with b first -> b: 2/3.
    assert M.bsds_miou_terms(pred, [b, a, c], "fine") == pytest.approx((2 / 3, 2))
    # coarse -> c: one segment, best IoU 2/4.
    assert M.bsds_miou_terms(pred, [a, b, c], "coarse") == pytest.approx((0.5, 1))
    # coarse tie among [b, a] -> b.
    assert M.bsds_miou_terms(pred, [b, a], "coarse") == pytest.approx((2 / 3, 2))
    # all: 2 + 2/3 + 1/2 over 5 segments.
    assert M.bsds_miou_terms(pred, [a, b, c], "all") == pytest.approx((2 + 2 / 3 + 0.5, 5))
    with pytest.raises(ValueError, match="mode"):
        M.bsds_miou_terms(pred, [a], "medium")


def test_bsds_miou_pools_segments_not_images():
    gt2 = np.zeros((1, 4), int)
    # image 1: IoUs 3/4, 1/4; image 2: 1. Pooled (3/4 + 1/4 + 1) / 3 = 2/3
    # (a mean of per-image means would be 0.75).
    value = M.bsds_miou([BLANK4, BLANK4], [[GT_3_1], [gt2]])
    assert value == pytest.approx(2 / 3)


def test_perfect_prediction_scores_perfectly():
    rng = np.random.default_rng(1)
    gt = np.repeat(np.repeat(rng.integers(0, 4, (4, 5)), 3, axis=0), 3, axis=1)
    gt = M.connected_components(gt)  # GT segments connected, as in BSDS
    pred = gt + 10  # ids differ, partition identical
    for mode in M.MODES:
        assert M.bsds_miou([pred], [[gt, gt]], mode) == pytest.approx(1.0)
    assert M.segmentation_covering(pred, [gt, gt]) == pytest.approx(1.0)
    assert M.probabilistic_rand_index(pred, [gt, gt]) == pytest.approx(1.0)
    assert M.variation_of_information(pred, [gt, gt]) == pytest.approx(0.0, abs=1e-12)
    assert M.boundary_f(M.boundary_prf_terms(pred, [gt, gt]))["f"] == pytest.approx(1.0)
    assert M.per_image_best_iou_terms(gt, gt) == pytest.approx((np.unique(gt).size,) * 2)
    confusion = M.hungarian_confusion(gt, gt, n_classes=int(gt.max()) + 1)
    scores = M.hungarian_scores(confusion)
    assert scores["miou"] == pytest.approx(1.0)
    assert scores["pixel_accuracy"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# region benchmark


def test_covering_hand_computed():
    # Blank vs GT areas 3, 1: 3 * 3/4 + 1 * 1/4 = 2.5 over 4 px.
    assert M.segmentation_covering_terms(BLANK4, [GT_3_1]) == pytest.approx((2.5, 4))
    # Second annotator all one segment: + 4 * 1 -> 6.5 over 8 px.
    terms = M.segmentation_covering_terms(BLANK4, [GT_3_1, np.ones((1, 4), int)])
    assert terms == pytest.approx((6.5, 8))
    assert M.segmentation_covering(BLANK4, [GT_3_1]) == pytest.approx(0.625)


def test_rand_index_hand_computed():
    # 6 pairs; blank agrees on the 3 pairs inside GT's 3-px segment: RI = 3/6.
    assert M.probabilistic_rand_index(BLANK4, [GT_3_1]) == pytest.approx(0.5)
    # Mean over annotators: (0.5 + 1) / 2.
    pri = M.probabilistic_rand_index(BLANK4, [GT_3_1, np.zeros((1, 4), int)])
    assert pri == pytest.approx(0.75)
    assert M.rand_index(np.zeros((1, 1), int), np.zeros((1, 1), int)) == 1.0


def test_variation_of_information_hand_computed():
    # Blank vs areas 3, 1: VI = H(G) = -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278.
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert M.variation_of_information(BLANK4, [GT_3_1]) == pytest.approx(h)
    # pred [0,0,1,1]: joint {2,1,1}/4 -> H = 1.5; H(P) = 1; VI = 2 * 1.5 - 1 - h.
    pred = np.array([[0, 0, 1, 1]])
    assert M.variation_of_information(pred, [GT_3_1]) == pytest.approx(2 - h)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_check_rand_and_vi_against_sklearn_skimage(seed):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 5, (17, 23))
    gt = rng.integers(3, 9, (17, 23))
    assert M.rand_index(pred, gt) == pytest.approx(rand_score(gt.ravel(), pred.ravel()))
    # skimage returns the two conditional entropies, already in bits (log2).
    expected = float(np.sum(sk_vi(gt, pred)))
    assert M.variation_of_information(pred, [gt]) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contingency_table_is_the_sorted_sparse_table(seed):
    # The scores pool the table's entries in this order (pairs sorted by the two dense
    # ids), so the same entries in the same order keep every score bit-identical to the
    # np.unique-based table the published figures were computed with.
    rng = np.random.default_rng(seed)
    a = rng.integers(-4, 300, (31, 47)).ravel()
    b = rng.integers(0, 12, (31, 47)).ravel()
    ia, ib, counts, area_a, area_b = M._contingency(a, b)
    _, dense_a = np.unique(a, return_inverse=True)
    _, dense_b = np.unique(b, return_inverse=True)
    kb = int(dense_b.max()) + 1
    pairs, expected = np.unique(dense_a * kb + dense_b, return_counts=True)
    np.testing.assert_array_equal(ia, pairs // kb)
    np.testing.assert_array_equal(ib, pairs % kb)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(area_a, np.bincount(dense_a))
    np.testing.assert_array_equal(area_b, np.bincount(dense_b))
    assert area_a.dtype == area_b.dtype == np.int64


# ---------------------------------------------------------------------------
# boundaries


def test_boundary_prf_hand_computed():
    cols = np.arange(10)[None, :].repeat(10, axis=0)
    gt = (cols >= 5).astype(int)  # boundary pixels: column 4, 10 px
    pred = (cols >= 7).astype(int)  # boundary pixels: column 6, 2 px away
    # Diagonal 14.14 px: tolerance 0.0075 -> 0.106 px, nothing matches.
    terms = M.boundary_prf_terms(pred, [gt, gt])
    assert terms == {"matched_pred": 0, "total_pred": 10, "matched_gt": 0, "total_gt": 20}
    assert M.boundary_f(terms)["f"] == 0.0
    # Tolerance 0.2 -> 2.83 px: everything matches.
    terms = M.boundary_prf_terms(pred, [gt, gt], tolerance=0.2)
    assert terms == {"matched_pred": 10, "total_pred": 10, "matched_gt": 20, "total_gt": 20}
    assert M.boundary_f(terms) == pytest.approx({"precision": 1, "recall": 1, "f": 1})
    # Blank: no predicted boundary, precision and recall 0, F 0.
    terms = M.boundary_prf_terms(np.zeros_like(gt), [gt])
    assert terms == {"matched_pred": 0, "total_pred": 0, "matched_gt": 0, "total_gt": 10}
    assert M.boundary_f(terms)["f"] == 0.0


# ---------------------------------------------------------------------------
# VOC / MSRC


def test_per_image_best_iou_void_excluded():
    class_map = np.array([[0, 0, 255, 1]])
    # Void dropped: class 0 (2 px) vs blank (3 px) -> 2/3; class 1 -> 1/3.
    assert M.per_image_best_iou_terms(BLANK4, class_map) == pytest.approx((1.0, 2))
    # Without void handling 255 is a third segment: 2/4 + 1/4 + 1/4 over 3.
    assert M.per_image_best_iou_terms(BLANK4, class_map, void=None) == pytest.approx((1.0, 3))


def test_per_image_best_iou_class_region_is_one_segment():
    class_map = np.array([[1, 0, 1]])
    pred = np.array([[1, 0, 1]])  # label 1 splits into 2 components
    # class 1 (2 px) best IoU with one 1-px piece = 1/2; class 0 = 1.
    assert M.per_image_best_iou_terms(pred, class_map) == pytest.approx((1.5, 2))


def test_hungarian_more_clusters_than_classes_and_void():
    class_map = np.array([[0, 0, 1, 1, 255]])
    pred = np.array([[0, 0, 1, 2, 2]])
    confusion = M.hungarian_confusion(pred, class_map, n_classes=2)
    np.testing.assert_array_equal(confusion, [[2, 0, 0], [0, 1, 1]])
    scores = M.hungarian_scores(confusion)
    # matched 2 + 1 of 4 labelled; IoU class 0 = 1, class 1 = 1 / (2 + 1 - 1) = 1/2.
    assert scores["pixel_accuracy"] == pytest.approx(0.75)
    assert scores["miou"] == pytest.approx(0.75)
    assert scores["assignment"][0] == 0


def test_hungarian_unmatched_class_scores_zero_and_absent_class_skipped():
    confusion = np.array([[5, 0], [0, 5], [1, 1], [0, 0]])
    scores = M.hungarian_scores(confusion)
    # class 0: 5 / (5 + 1) ; class 1 same ; class 2 no cluster -> 0 ; class 3 absent.
    assert scores["miou"] == pytest.approx((5 / 6 + 5 / 6 + 0) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(10 / 12)
    np.testing.assert_array_equal(scores["assignment"], [0, 1, -1, -1])


def test_hungarian_confusion_validates_ids():
    with pytest.raises(ValueError, match="n_clusters"):
        M.hungarian_confusion(np.array([[0, 3]]), np.array([[0, 1]]), 2, n_clusters=2)
    with pytest.raises(ValueError, match="class_map"):
        M.hungarian_confusion(np.array([[0, 1]]), np.array([[0, 7]]), 2)


# ---------------------------------------------------------------------------
# internal indices


def test_internal_indices_two_regions_and_one_label():
    image = np.zeros((20, 30, 3))
    image[:, 15:] = (0.9, 0.1, 0.1)
    labels = np.zeros((20, 30), int)
    labels[:, 15:] = 1
    scores = M.internal_indices(image, labels, n_samples=200)
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["silhouette"] > 0.5
    response = np.random.default_rng(0).normal(size=(20, 30, 4))
    assert np.isfinite(M.internal_indices(image, labels, response=response)["silhouette"])
    with pytest.warns(RuntimeWarning, match="1 label"):
        scores = M.internal_indices(image, np.zeros((20, 30), int))
    assert all(np.isnan(v) for v in scores.values())


# ---------------------------------------------------------------------------
# real data


def test_bsds500_blank_segment_order_of_magnitude(bsds500: Path):
    from unsupseg.data.datasets import read_bsds_ground_truth

    files = sorted((bsds500 / "groundTruth" / "val").glob("*.mat"))[:5]
    assert len(files) == 5
    ground_truths = [read_bsds_ground_truth(f) for f in files]
    predictions = [np.zeros(g[0].shape, dtype=int) for g in ground_truths]
    value = M.bsds_miou(predictions, ground_truths, "all")
    assert 0.01 < value < 0.2


def test_bsds_miou_all_modes_equals_each_mode():
    rng = np.random.default_rng(3)
    prediction = rng.integers(0, 4, (12, 15))
    annotators = [rng.integers(1, k, (12, 15)) for k in (3, 6, 6, 2)]
    terms = M.bsds_miou_all_modes(prediction, annotators)
    assert sorted(terms) == sorted(M.MODES)
    for mode in M.MODES:
        total, count = M.bsds_miou_terms(prediction, annotators, mode)
        assert terms[mode][0] == pytest.approx(total) and terms[mode][1] == count
    # fine and coarse are single annotators: the second (first of the tied 5-label ones)
    # and the last
    assert terms["fine"][1] == np.unique(annotators[1]).size
    assert terms["coarse"][1] == 1
