"""BSDS500 boundary benchmark: one-to-one pixel correspondence, pooled counts, ODS/OIS/AP."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from unsupseg import metrics as M


def _points(shape, *pixels):
    out = np.zeros(shape, dtype=bool)
    for y, x in pixels:
        out[y, x] = True
    return out


# ---------------------------------------------------------------------------
# correspond_pixels: hand-computed cases


def test_parallel_line_one_pixel_away_all_matched():
    a = np.zeros((20, 20), dtype=bool)
    b = np.zeros((20, 20), dtype=bool)
    a[:, 5] = True
    b[:, 6] = True
    match_a, match_b = M.correspond_pixels(a, b, max_dist=1.5)
    np.testing.assert_array_equal(match_a, a)
    np.testing.assert_array_equal(match_b, b)


def test_pixel_beyond_max_dist_unmatched_and_boundary_inclusive():
    a = _points((5, 8), (0, 0))
    b = _points((5, 8), (0, 3))
    match_a, match_b = M.correspond_pixels(a, b, max_dist=2.9)
    assert not match_a.any() and not match_b.any()
    # Exactly at max_dist (dy**2 + dx**2 == max_dist**2) still pairs, as in BSDS.
    match_a, match_b = M.correspond_pixels(a, b, max_dist=3.0)
    assert match_a[0, 0] and match_b[0, 3]
    # Diagonal: distance sqrt(5) = 2.236.
    b = _points((5, 8), (1, 2))
    assert not M.correspond_pixels(a, b, max_dist=2.2)[0].any()
    assert M.correspond_pixels(a, b, max_dist=2.3)[0].sum() == 1


def test_two_pixels_near_one_partner_only_one_matched():
    a = _points((6, 6), (2, 2), (2, 3))
    b = _points((6, 6), (3, 2))
    match_a, match_b = M.correspond_pixels(a, b, max_dist=2.0)
    assert match_a.sum() == 1 and match_b.sum() == 1
    assert match_a[2, 2]  # the nearer one (distance 1 against sqrt(2))
    # The former distance-transform approximation matched both predicted pixels.
    old = a & (ndimage.distance_transform_edt(~b) <= 2.0)
    assert old.sum() == 2


def test_empty_maps():
    empty = np.zeros((4, 5), dtype=bool)
    some = _points((4, 5), (1, 1), (2, 3))
    for a, b in ((empty, empty), (empty, some), (some, empty)):
        match_a, match_b = M.correspond_pixels(a, b, max_dist=3.0)
        assert match_a.shape == match_b.shape == (4, 5)
        assert not match_a.any() and not match_b.any()


def test_small_case_by_hand_minimum_distance():
    # a: (0,0), (0,1), (0,2); b: (1,0), (1,4); max_dist 1.5.
    # Admissible pairs: a(0,0)-b(1,0) at 1, a(0,1)-b(1,0) at sqrt(2); nothing reaches b(1,4)
    # (nearest a(0,2) at sqrt(5)). One pair, the shorter one.
    a = _points((2, 5), (0, 0), (0, 1), (0, 2))
    b = _points((2, 5), (1, 0), (1, 4))
    match_a, match_b = M.correspond_pixels(a, b, max_dist=1.5)
    np.testing.assert_array_equal(match_a, _points((2, 5), (0, 0)))
    np.testing.assert_array_equal(match_b, _points((2, 5), (1, 0)))


def test_cardinality_before_distance():
    # a(0,1) coincides with b(0,1), but pairing them leaves a(0,0) and b(0,2) alone;
    # the maximum matching a(0,0)-b(0,1), a(0,1)-b(0,2) (total 2 instead of 0) wins.
    a = _points((1, 3), (0, 0), (0, 1))
    b = _points((1, 3), (0, 1), (0, 2))
    match_a, match_b = M.correspond_pixels(a, b, max_dist=1.0)
    np.testing.assert_array_equal(match_a, a)
    np.testing.assert_array_equal(match_b, b)


def test_max_dist_zero_pairs_coincident_pixels():
    a = _points((3, 3), (0, 0), (1, 1), (2, 2))
    b = _points((3, 3), (1, 1), (2, 1), (2, 2))
    match_a, match_b = M.correspond_pixels(a, b, max_dist=0.0)
    np.testing.assert_array_equal(match_a, a & b)
    np.testing.assert_array_equal(match_b, a & b)


def test_bad_arguments():
    a = np.zeros((3, 3), dtype=bool)
    with pytest.raises(ValueError, match="same shape"):
        M.correspond_pixels(a, np.zeros((3, 4), dtype=bool), 1.0)
    with pytest.raises(ValueError, match="max_dist"):
        M.correspond_pixels(a, a, -1.0)
    with pytest.raises(ValueError, match="outlier_cost"):
        M.correspond_pixels(a, a, 1.0, outlier_cost=0.5)
    with pytest.raises(ValueError, match="boolean"):
        M.correspond_pixels(np.full((3, 3), 0.5), a, 1.0)


# ---------------------------------------------------------------------------
# correspond_pixels: random maps against a brute-force assignment


def _brute_force(a, b, max_dist, outlier_cost=100.0):
    """Dense exact optimum of the BSDS objective: (cardinality, total integer cost)."""
    pa, pb = np.argwhere(a), np.argwhere(b)
    if len(pa) == 0 or len(pb) == 0:
        return 0, 0.0
    d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
    admissible = d2 <= max_dist**2
    cost = np.rint(100 * np.sqrt(d2))
    # (At max_dist 0 every pair costs 0; a pair must still be worth something.)
    outlier = max(np.ceil(100 * outlier_cost * max_dist), 1.0)
    table = np.where(admissible, cost - outlier, 0.0)
    rows, cols = linear_sum_assignment(table)
    real = admissible[rows, cols]
    return int(real.sum()), float(cost[rows[real], cols[real]].sum())


def _cost_of_matched_sets(a, b, match_a, match_b, max_dist):
    """Least total integer cost of a perfect matching of the matched pixels (inf if none)."""
    pa, pb = np.argwhere(match_a), np.argwhere(match_b)
    if len(pa) == 0:
        return 0.0
    d2 = ((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)
    cost = np.where(d2 <= max_dist**2, np.rint(100 * np.sqrt(d2)), 1e9)
    rows, cols = linear_sum_assignment(cost)
    total = cost[rows, cols].sum()
    return float(total) if total < 1e9 else np.inf


@pytest.mark.parametrize("dense_limit", [0, 10**9])  # sparse LAPJVsp path, dense path
def test_random_maps_match_brute_force(monkeypatch, dense_limit):
    monkeypatch.setattr(M, "_DENSE_LIMIT", dense_limit)
    rng = np.random.default_rng(0)
    for trial in range(60):
        shape = (int(rng.integers(3, 10)), int(rng.integers(3, 10)))
        a = rng.random(shape) < rng.uniform(0.1, 0.6)
        b = rng.random(shape) < rng.uniform(0.1, 0.6)
        max_dist = float(rng.choice([0.0, 1.0, 1.5, 2.0, 2.5, 3.3]))
        match_a, match_b = M.correspond_pixels(a, b, max_dist)
        # One to one, and only pixels of the maps.
        assert match_a.sum() == match_b.sum(), trial
        assert not (match_a & ~a).any() and not (match_b & ~b).any()
        cardinality, cost = _brute_force(a, b, max_dist)
        assert match_a.sum() == cardinality, trial
        assert _cost_of_matched_sets(a, b, match_a, match_b, max_dist) == cost, trial


def test_random_boundary_maps_one_to_one():
    rng = np.random.default_rng(3)
    for _ in range(5):
        labels_a = np.repeat(np.repeat(rng.integers(0, 5, (12, 16)), 5, 0), 5, 1)
        labels_b = np.roll(labels_a, int(rng.integers(-3, 4)), axis=1)
        labels_b[rng.random(labels_b.shape) < 0.02] = 9
        a, b = M.label_boundaries(labels_a), M.label_boundaries(labels_b)
        match_a, match_b = M.correspond_pixels(a, b, max_dist=0.0075 * np.hypot(*a.shape))
        assert match_a.sum() == match_b.sum() > 0
        cardinality, _ = _brute_force(a, b, 0.0075 * np.hypot(*a.shape))
        assert match_a.sum() == cardinality


# ---------------------------------------------------------------------------
# label_boundaries


def test_label_boundaries_bsds_seg2bdry():
    labels = np.zeros((4, 4), dtype=int)
    labels[3, 3] = 1  # only the lower-right pixel differs
    expected = np.zeros((4, 4), dtype=bool)
    expected[2, 2] = True  # its 2 x 2 block with (2, 2) is not constant
    expected[3, 2] = True  # last row: differs from the right neighbour
    expected[2, 3] = True  # last column: differs from the lower neighbour
    np.testing.assert_array_equal(M.label_boundaries(labels, thin=False), expected)
    assert not M.label_boundaries(np.ones((3, 3), dtype=int)).any()


_BSDS = Path("/work/shared/data/bsds500/groundTruth/val")


@pytest.mark.skipif(not _BSDS.is_dir(), reason="BSDS500 ground truth not available")
def test_label_boundaries_equal_stored_bsds_boundaries():
    for path in sorted(_BSDS.glob("*.mat"))[:3]:
        cells = scipy.io.loadmat(str(path))["groundTruth"].ravel()
        for cell in cells:
            cell = cell[0, 0]
            stored = cell["Boundaries"].astype(bool)
            np.testing.assert_array_equal(M.label_boundaries(cell["Segmentation"]), stored)


# ---------------------------------------------------------------------------
# boundary_prf_terms and boundary_pr_curve_terms


def _column_labels(*starts):
    cols = np.arange(10)[None, :].repeat(10, axis=0)
    return sum((cols >= s).astype(int) for s in starts)


def test_prf_terms_two_annotators_pooled():
    pred = _column_labels(3, 7)  # boundaries: columns 2 and 6, 20 px
    gt1 = _column_labels(3)  # column 2, 10 px
    gt2 = _column_labels(7, 9)  # columns 6 and 8, 20 px
    # Diagonal 14.14 px: tolerance 0.05 -> 0.71 px (coincident pixels only).
    terms = M.boundary_prf_terms(pred, [gt1, gt2], tolerance=0.05)
    # Predicted: column 2 matched by gt1, column 6 by gt2 -> 20 of 20.
    # Ground truth: gt1 10 of 10, gt2 10 of 20 (column 8 has no partner).
    assert terms == {"matched_pred": 20, "total_pred": 20, "matched_gt": 20, "total_gt": 30}
    assert M.boundary_f(terms) == pytest.approx({"precision": 1, "recall": 2 / 3, "f": 0.8})
    # Tolerance 0.15 -> 2.12 px: gt2's column 8 is in reach of predicted column 6, but
    # those 10 pixels are taken by gt2's column 6 (one to one), so the counts stay.
    assert M.boundary_prf_terms(pred, [gt1, gt2], tolerance=0.15) == terms


def test_prf_terms_old_hand_computed_case():
    cols = np.arange(10)[None, :].repeat(10, axis=0)
    gt = (cols >= 5).astype(int)  # column 4
    pred = (cols >= 7).astype(int)  # column 6, 2 px away
    terms = M.boundary_prf_terms(pred, [gt, gt], tolerance=0.2)
    assert terms == {"matched_pred": 10, "total_pred": 10, "matched_gt": 20, "total_gt": 20}


def test_pr_curve_terms():
    gt1, gt2 = _column_labels(3), _column_labels(7, 9)
    maps = [
        M.label_boundaries(_column_labels(3, 7), thin=False),
        M.label_boundaries(_column_labels(3, 7), thin=False),
        M.label_boundaries(_column_labels(3), thin=False),
        np.zeros((10, 10), dtype=bool),
    ]
    curve = M.boundary_pr_curve_terms(np.stack(maps), [gt1, gt2], tolerance=0.05)
    assert set(curve) == {"matched_pred", "total_pred", "matched_gt", "total_gt"}
    for values in curve.values():
        assert values.dtype == np.int64 and values.shape == (4,)
    np.testing.assert_array_equal(curve["matched_pred"], [20, 20, 10, 0])
    np.testing.assert_array_equal(curve["total_pred"], [20, 20, 10, 0])
    np.testing.assert_array_equal(curve["matched_gt"], [20, 20, 10, 0])
    np.testing.assert_array_equal(curve["total_gt"], [30, 30, 30, 30])
    # A thick map is thinned first.
    thick = np.zeros((10, 10), dtype=bool)
    thick[:, 2:4] = True
    single = M.boundary_pr_curve_terms([thick], [gt1], tolerance=0.05)
    assert single["total_pred"][0] < 20


# ---------------------------------------------------------------------------
# boundary_ods_ois_ap


def _counts(mp, tp, mg, tg):
    return {
        "matched_pred": np.array(mp),
        "total_pred": np.array(tp),
        "matched_gt": np.array(mg),
        "total_gt": np.array(tg),
    }


def test_ods_ois_ap_hand_made():
    image1 = _counts([8, 6, 2], [10, 6, 2], [9, 6, 2], [10, 10, 10])  # best F at t=0
    image2 = _counts([2, 4, 3], [10, 5, 3], [4, 4, 3], [10, 10, 10])  # best F at t=1
    scores = M.boundary_ods_ois_ap([image1, image2])
    # Pooled: P = [1/2, 10/11, 1], R = [13/20, 1/2, 1/4], F = [.565, 20/31, .4].
    assert scores["ods_index"] == 1
    assert scores["ods_f"] == pytest.approx(20 / 31)
    assert scores["ods_precision"] == pytest.approx(10 / 11)
    assert scores["ods_recall"] == pytest.approx(0.5)
    assert scores["ods_f_interp"] >= scores["ods_f"]
    # OIS: image 1 at t=0 (8/10, 9/10), image 2 at t=1 (4/5, 4/10), counts pooled:
    # P = 12/15, R = 13/20.
    assert scores["ois_precision"] == pytest.approx(0.8)
    assert scores["ois_recall"] == pytest.approx(0.65)
    assert scores["ois_f"] == pytest.approx(2 * 0.8 * 0.65 / 1.45)
    # AP: recall points .25 (P 1), .5 (P 10/11), .65 (P 1/2); grid points .25 ... .65,
    # the rest count 0: 0.01 * (26 - 13/11 + 150/11 - 72/22) = 0.01 * 387/11.
    assert scores["ap"] == pytest.approx(0.01 * 387 / 11)


def test_ods_interpolation_follows_bsds_maxf():
    # R from 1 to 0 and P from 0 to 1: F = 2 d (1 - d) on BSDS's 100-step segment.
    scores = M.boundary_ods_ois_ap([_counts([0, 1], [1, 1], [10, 0], [10, 10])])
    assert scores["ods_f"] == 0.0 and scores["ods_index"] == 0
    assert scores["ods_f_interp"] == pytest.approx(2 * (49 / 99) * (50 / 99))


def test_ois_ties_take_first_threshold_and_ap_repeated_recall():
    # Equal F at the first two thresholds (P and R swapped): OIS takes the first one.
    image = _counts([8, 4, 2], [10, 10, 2], [4, 8, 1], [10, 10, 4])
    scores = M.boundary_ods_ois_ap([image])
    assert scores["ois_precision"] == pytest.approx(0.8)
    assert scores["ois_recall"] == pytest.approx(0.4)
    assert scores["ods_index"] == 0
    # R = [.4, .8, .25], P = [.8, .4, 1]: grid points .25 ... .4 on the segment from
    # P = 1 to .8, then .41 ... .8 on the one from .8 to .4.
    first = sum(1 - 0.2 * (r - 25) / 15 for r in range(25, 41))
    second = sum(0.8 - 0.4 * (r - 40) / 40 for r in range(41, 81))
    assert scores["ap"] == pytest.approx(0.01 * (first + second))
    # A repeated recall takes the precision of its last threshold: R = [.5, .5, .25],
    # P = [.2, .8, 1] -> points (.25, 1), (.5, .8).
    scores = M.boundary_ods_ois_ap([_counts([2, 8, 10], [10, 10, 10], [5, 5, 1], [10, 10, 4])])
    assert scores["ap"] == pytest.approx(0.01 * (26 - 0.2 * 13))
    # A single distinct recall: AP 0.
    assert M.boundary_ods_ois_ap([_counts([1], [2], [1], [2])])["ap"] == 0.0


def test_ods_ois_ap_bad_input():
    with pytest.raises(ValueError, match="empty"):
        M.boundary_ods_ois_ap([])
    with pytest.raises(ValueError, match="same number"):
        M.boundary_ods_ois_ap(
            [_counts([1], [2], [1], [2]), _counts([1, 1], [2, 2], [1, 1], [2, 2])]
        )
