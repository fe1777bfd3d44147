"""The hierarchy: merge tree, UCM, cuts, level choice, the Berkeley protocol, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.io
from conftest import bsds_struct_cells
from PIL import Image
from scipy import ndimage

from unsupseg import metrics
from unsupseg.cli import main
from unsupseg.errors import ConfigError
from unsupseg.evaluation.hierarchical import evaluate_hierarchy, summarise_levels
from unsupseg.ucm import THRESHOLDS, Hierarchy, hierarchy
from unsupseg.ucm.levels import choose_level, level_criteria, select_level


def _n_components(labels: np.ndarray) -> int:
    return sum(ndimage.label(labels == v)[1] for v in np.unique(labels))


def _grid_hierarchy() -> Hierarchy:
    """Six 8x8 leaves in a 2x3 grid; the vertical boundary between columns 0 and 1 is
    weak (0.1), between columns 1 and 2 strong (0.8), the horizontal one medium (0.4)."""
    leaves = np.zeros((16, 24), int)
    for r in range(2):
        for c in range(3):
            leaves[8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 3 * r + c
    strength = np.zeros(leaves.shape)
    strength[:, 7:9] = 0.1
    strength[:, 15:17] = 0.8
    strength[7:9, :] = 0.4
    return Hierarchy.from_boundaries(strength, leaves)


def test_greedy_merge_order_heights_and_ucm():
    h = _grid_hierarchy()
    assert h.n_leaves == 6 and h.merges.shape == (5, 2)
    assert np.all(np.diff(h.heights) >= 0)
    # The two weak vertical boundaries (one per row of leaves) go first: 7 of their 8
    # pixel pairs at 0.1, one inside the horizontal band at 0.4.
    assert h.heights[:2] == pytest.approx([0.1375, 0.1375])
    assert h.n_regions(0.14) == 4 and h.n_regions(0.0) == 6 and h.n_regions(1.0) == 1
    # ucm > t is exactly the boundary map of cut(t), at every height.
    for t in [0.0, *h.heights.tolist(), 0.05, 0.5, 1.0]:
        expected = metrics.label_boundaries(h.cut(t), thin=False)
        assert np.array_equal(h.ucm > t, expected), t


def test_cut_to_exact_connected_and_nested():
    rng = np.random.default_rng(3)
    leaves = rng.integers(0, 12, (20, 20))  # many small pieces: relabelled as connected
    h = Hierarchy.from_boundaries(rng.random((20, 20)), leaves)
    previous = None
    for k in range(1, h.n_leaves + 1):
        labels = h.cut_to(k)
        assert labels.max() + 1 == k and _n_components(labels) == k
        if previous is not None:
            # every region of the finer cut lies inside one region of the coarser one
            pairs = np.unique(np.stack([labels.ravel(), previous.ravel()]), axis=1)
            assert np.unique(pairs[0]).size == pairs.shape[1]
        previous = labels
    stack = h.stack(THRESHOLDS)
    for fine, coarse in zip(stack[:-1], stack[1:], strict=True):
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert np.unique(pairs[0]).size == pairs.shape[1]


def test_bad_cuts_are_refused():
    h = _grid_hierarchy()
    with pytest.raises(ConfigError, match="from 1 to 6"):
        h.cut_to(7)
    with pytest.raises(ConfigError):
        h.cut_to(0)
    with pytest.raises(ConfigError, match="finite"):
        h.cut(math.nan)
    with pytest.raises(ValueError, match="NaN"):
        Hierarchy.from_boundaries(np.full((4, 4), np.nan), np.zeros((4, 4), int))


def test_hierarchy_of_an_image_and_level_choice(blocks_image):
    h = hierarchy(blocks_image)
    assert h.shape == blocks_image.shape[:2]
    assert 0.0 <= h.heights.min() and h.heights.max() <= 1.0
    labels, info = select_level(h, blocks_image / 255.0, segments=3)
    assert info["n_regions"] == 3 and _n_components(labels) == 3
    # Three flat blocks: the 3-region cut is the blocks.
    assert np.unique(labels[:, :12]).size == 1 and labels[0, 0] != labels[0, 31]
    labels, info = select_level(h, blocks_image / 255.0, level="auto", thresholds=THRESHOLDS)
    assert info["threshold"] in THRESHOLDS and labels.max() + 1 == info["n_regions"]
    labels, info = select_level(h, blocks_image / 255.0, level=0.5)
    assert np.array_equal(labels, h.cut(0.5))
    with pytest.raises(ConfigError):
        select_level(h, blocks_image / 255.0, level="sometimes")


def test_level_criteria_scores_and_choice(blocks_image):
    h = hierarchy(blocks_image)
    grid = np.asarray(THRESHOLDS)
    scores = level_criteria(blocks_image / 255.0, h.stack(grid), grid, h)
    for name, values in scores.items():
        assert values.shape == grid.shape, name
    counts = np.array([h.n_regions(t) for t in grid])
    # one-region levels are never scored
    assert np.all(np.isnan(scores["silhouette"][counts < 2]))
    assert choose_level(np.array([np.nan, 0.2, 0.9, 0.9])) == 2
    assert choose_level(np.full(5, np.nan)) == 2


def _row(image_id, level, threshold, covering, pri, vi, matched):
    return {
        "id": image_id,
        "level": level,
        "threshold": threshold,
        "n_labels": 2,
        "n_segments": 2 + level,
        "miou_all_sum": covering,
        "miou_all_n": 1,
        "miou_fine_sum": covering,
        "miou_fine_n": 1,
        "miou_coarse_sum": covering,
        "miou_coarse_n": 1,
        "covering_sum": covering * 10,
        "covering_area": 10,
        "pri": pri,
        "vi": vi,
        "boundary_matched_pred": matched,
        "boundary_total_pred": 10,
        "boundary_matched_gt": matched,
        "boundary_total_gt": 10,
        "lifetime": float(level),
        "silhouette": 0.1,
        "calinski_harabasz": 1.0,
        "davies_bouldin": -1.0,
        "seconds": 1.0,
        "error": "",
    }


def test_summarise_levels_ods_ois_chosen_auto():
    rows = [
        _row("a", 0, 0.25, 0.9, 0.8, 2.0, 8),
        _row("a", 1, 0.5, 0.5, 0.6, 1.0, 4),
        _row("b", 0, 0.25, 0.2, 0.5, 3.0, 2),
        _row("b", 1, 0.5, 0.4, 0.7, 1.5, 6),
    ]
    s = summarise_levels(rows, chosen_threshold=0.5)
    # ODS: the best single level over both images; VI is lower-better.
    assert s["ods"]["covering"] == {"value": pytest.approx(0.55), "threshold": 0.25}
    assert s["ods"]["vi"] == {"value": pytest.approx(1.25), "threshold": 0.5}
    assert s["ods"]["pri"]["value"] == pytest.approx(0.65)
    # OIS: each image at its own best level.
    assert s["ois"]["covering"] == pytest.approx(0.65)
    assert s["ois"]["vi"] == pytest.approx(1.25)
    assert s["chosen"]["threshold"] == 0.5 and s["chosen"]["covering"] == pytest.approx(0.45)
    assert s["chosen"]["boundary_f"] == pytest.approx(0.5)
    # lifetime is highest at level 1 in both images
    assert s["auto"]["lifetime"]["covering"] == pytest.approx(0.45)
    assert s["boundary"]["ods_f"] == pytest.approx(0.5)
    assert s["boundary"]["ois_f"] == pytest.approx(0.7)


def _tiny_bsds(root, n=2):
    rng = np.random.default_rng(0)
    (root / "images" / "val").mkdir(parents=True)
    (root / "groundTruth" / "val").mkdir(parents=True)
    for i in range(n):
        image = np.zeros((30, 40, 3), np.uint8)
        image[:, :20] = (200, 40, 40)
        image[:, 20:] = (40, 60, 200)
        image[15:, :] += 40
        noisy = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / "images" / "val" / f"{100 + i}.jpg", quality=95)
        seg = np.ones((30, 40), np.uint16)
        seg[:, 20:] = 2
        quads = seg.copy()
        quads[15:] += 2
        cells = {"groundTruth": bsds_struct_cells([seg, quads])}
        scipy.io.savemat(root / "groundTruth" / "val" / f"{100 + i}.mat", cells)


@pytest.mark.parametrize("method", ["hierarchy", "felzenszwalb-stack"])
def test_evaluate_hierarchy_on_a_tiny_bsds(tmp_path, method):
    _tiny_bsds(tmp_path / "bsds")
    out = tmp_path / "out"
    first = evaluate_hierarchy(method=method, data_root=tmp_path / "bsds", out=out)
    s = first.summary
    assert s["n_images"] == 2 and not first.failures
    n_levels = len(THRESHOLDS) if method == "hierarchy" else 8
    assert len(first.rows) == 2 * n_levels
    # the two-colour, two-brightness image is easy: some level covers it well
    # (halves vs quadrants annotators: 0.75 is the best any one map can cover)
    assert s["ois"]["covering"] > 0.7 and s["ods"]["covering"]["value"] >= s["chosen"]["covering"]
    assert s["ois"]["covering"] >= s["ods"]["covering"]["value"] - 1e-12
    assert 0 <= s["boundary"]["ods_f"] <= s["boundary"]["ois_f"] + 1e-12
    json.dumps(first.to_json())  # valid JSON: no NaN
    again = evaluate_hierarchy(method=method, data_root=tmp_path / "bsds", out=out)
    assert again.summary["ods"] == s["ods"]  # resumed from levels.csv, nothing recomputed
    with pytest.raises(ConfigError, match="BSDS500"):
        evaluate_hierarchy("msrc", method=method, out=tmp_path / "o2")


def test_cli_segment_hierarchy_writes_nested_stack(tmp_path, blocks_image):
    path = tmp_path / "blocks.png"
    Image.fromarray(blocks_image).save(path)
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(path),
                "--method",
                "hierarchy",
                "--segments",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    folder = out / "blocks"
    labels = np.load(folder / "labels.npy")
    assert labels.max() + 1 == 3 and _n_components(labels) == 3
    stack = np.load(folder / "hierarchy.npy")
    assert stack.shape == (len(THRESHOLDS), *blocks_image.shape[:2])
    for fine, coarse in zip(stack[:-1], stack[1:], strict=True):
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        assert np.unique(pairs[0]).size == pairs.shape[1]
    ucm = np.asarray(Image.open(folder / "ucm.png"))
    assert ucm.shape == blocks_image.shape[:2] and ucm.max() > 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_regions"] == 3 and summary["hierarchy_thresholds"] == list(THRESHOLDS)
    assert (
        main(
            [
                "segment",
                str(path),
                "--method",
                "hierarchy",
                "--level",
                "auto",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit):
        main(["segment", str(path), "--method", "hierarchy", "--level", "nan"])
    with pytest.raises(SystemExit):  # --segments K of every method: K >= 1
        main(["segment", str(path), "--method", "hierarchy", "--segments", "0"])
