"""Post-processing: region features, the seven clusterers, the choices, the sweep over a
data set (:func:`unsupseg.postprocess.postprocess_dataset`) and ``unsupseg postprocess``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import bsds_struct_cells, write_msrc_bands
from PIL import Image

from unsupseg import metrics
from unsupseg.cli import main
from unsupseg.cli.postprocess import parse_grid
from unsupseg.errors import ConfigError
from unsupseg.io import as_rgb_float, read_label_png, save_label_png
from unsupseg.postprocess import (
    CLUSTERERS,
    Setting,
    choose_per_image,
    merge_segments,
    postprocess_dataset,
    process_image,
    region_adjacency,
    region_features,
    sweep_settings,
)
from unsupseg.refine import majority_labels

H, W = 24, 32
COLOURS = np.array([(200, 30, 30), (30, 180, 40), (20, 40, 210), (230, 220, 40)], float)


def _quadrants() -> np.ndarray:
    labels = np.zeros((H, W), np.int64)
    labels[:, W // 2 :] += 1
    labels[H // 2 :, :] += 2
    return labels


def _photo(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = COLOURS[truth] + rng.normal(0, 5, (*truth.shape, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _fragmented(truth: np.ndarray) -> np.ndarray:
    """Each quadrant cut into vertical stripes of 4 pixels, every stripe its own label
    (a prediction with far too many segments, all inside the true regions)."""
    stripes = np.arange(truth.shape[1])[None, :] // 4
    return truth * 100 + np.broadcast_to(stripes, truth.shape)


# --------------------------------------------------------------------------------------
# Regions


def test_region_features_and_areas():
    regions = np.zeros((4, 6), np.int64)
    regions[:, 3:] = 1
    image = np.zeros((4, 6, 3))
    image[:, 3:] = 1.0  # white right half, black left half
    features, areas = region_features(image, regions, position_weight=60.0)
    assert areas.tolist() == [12, 12]
    assert features[0, 0] == pytest.approx(0.0, abs=1e-6)  # L of black
    assert features[1, 0] == pytest.approx(100.0, abs=1e-3)  # L of white
    # centroid (y, x) of the left half: (1.5, 1.0), scaled by 60 / max(H, W) = 10
    assert features[0, 3:].tolist() == pytest.approx([15.0, 10.0])
    assert features[1, 3:].tolist() == pytest.approx([15.0, 40.0])


def test_region_adjacency():
    regions = np.array([[0, 0, 1], [2, 2, 1], [3, 3, 3]])
    adjacency = region_adjacency(regions).toarray()
    expected = np.zeros((4, 4), int)
    for a, b in ((0, 1), (0, 2), (1, 2), (1, 3), (2, 3)):
        expected[a, b] = expected[b, a] = 1
    np.testing.assert_array_equal(adjacency, expected)


# --------------------------------------------------------------------------------------
# Merging


@pytest.mark.parametrize("method", ["kmeans", "minibatch-kmeans", "ward", "birch", "gmm"])
def test_clusterers_recover_the_regions_from_fragments(method):
    truth = _quadrants()
    merged = merge_segments(_photo(truth), _fragmented(truth), Setting(method, 4))
    assert merged.shape == truth.shape and merged.dtype == np.int64
    assert metrics.variation_of_information(merged, [truth + 1]) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize(("method", "value"), [("meanshift", 0.3), ("dbscan", 15.0)])
def test_density_clusterers_merge_like_coloured_fragments(method, value):
    truth = _quadrants()
    merged = merge_segments(_photo(truth), _fragmented(truth), Setting(method, value))
    # never a merge across two true regions; far fewer labels than the 32 fragments
    assert metrics.variation_of_information(merged, [truth + 1]) >= 0
    contingency = np.zeros((merged.max() + 1, 4), int)
    np.add.at(contingency, (merged.ravel(), truth.ravel()), 1)
    assert ((contingency > 0).sum(axis=1) == 1).all()
    assert np.unique(merged).size < 16


def test_ward_clusters_are_connected():
    truth = _quadrants()
    image = _photo(truth)
    image[truth == 3] = COLOURS[0]  # two diagonal quadrants of one colour
    merged = merge_segments(image, _fragmented(truth), Setting("ward", 4))
    # k-means would put the two red quadrants in one label; Ward with adjacency cannot
    assert metrics.connected_components(merged).max() + 1 == np.unique(merged).size == 4
    kmeans = merge_segments(image, _fragmented(truth), Setting("kmeans", 3))
    assert np.unique(kmeans).size == 3
    assert metrics.connected_components(kmeans).max() + 1 == 4


def test_more_clusters_than_regions_keeps_the_map():
    truth = _quadrants()
    merged = merge_segments(_photo(truth), truth * 7, Setting("kmeans", 10))
    np.testing.assert_array_equal(merged, truth)  # renumbered in order of appearance


def test_merge_checks_its_input():
    with pytest.raises(ValueError, match="differ"):
        merge_segments(np.zeros((4, 4, 3)), np.zeros((4, 5), int), Setting("kmeans", 2))
    with pytest.raises(ValueError, match="unknown clusterer"):
        merge_segments(np.zeros((4, 4, 3)), np.arange(16).reshape(4, 4), Setting("nope", 2))
    with pytest.raises(ValueError, match="eps"):
        merge_segments(np.zeros((4, 4, 3)), np.arange(16).reshape(4, 4), Setting("dbscan", 0))


def test_merged_clusters_take_the_majority_id():
    original = np.array([[5, 5, 2], [5, 2, 2]])
    merged = np.array([[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(majority_labels(merged, original), [[5, 5, 5], [2, 2, 2]])


def test_sweep_settings_and_parse_grid():
    settings = sweep_settings(["kmeans", "ward", "dbscan"], parse_grid("kmeans=4,8; dbscan=3"))
    assert [s.name for s in settings] == ["kmeans-4", "kmeans-8", "ward-24", "dbscan-3"]
    assert len(sweep_settings(CLUSTERERS, parse_grid(None))) == len(CLUSTERERS)
    # a clusterer given values in the grid is swept too
    assert [s.name for s in sweep_settings(["ward"], {"gmm": [2]})] == ["ward-24", "gmm-2"]
    for bad in ("kmeans", "nope=3", "kmeans=a", "kmeans="):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid(bad)
    for methods, grid in ((["nope"], None), ([], None), (["ward"], {"kmeans": []})):
        with pytest.raises(ConfigError):
            sweep_settings(methods, grid)


def test_process_image_rows_and_choice():
    truth = _quadrants()
    image, labels = _photo(truth), _fragmented(truth)
    settings = [Setting("ward", 4), Setting("ward", 2)]
    rows, maps = process_image(image, labels, settings, truth=[truth + 1])
    assert [row["setting"] for row in rows] == ["none", "ward-4", "ward-2"]
    by = {row["setting"]: row for row in rows}
    assert by["ward-4"]["n_labels"] == 4 and by["ward-2"]["n_labels"] == 2
    assert by["none"]["n_labels"] == np.unique(labels).size
    assert by["ward-4"]["covering_sum"] == pytest.approx(by["ward-4"]["covering_area"])
    assert by["none"]["covering_sum"] < by["none"]["covering_area"]
    expected = metrics.internal_indices(as_rgb_float(image), maps["ward-4"], n_samples=2000)
    assert by["ward-4"]["silhouette"] == pytest.approx(expected["silhouette"])
    # the choice follows the index and its direction
    fake = [
        {"setting": "a", "silhouette": 0.1, "davies_bouldin": 0.5},
        {"setting": "b", "silhouette": 0.3, "davies_bouldin": 0.9},
        {"setting": "c", "silhouette": float("nan"), "davies_bouldin": 0.2},
    ]
    assert choose_per_image(fake, "silhouette") == "b"
    assert choose_per_image(fake, "davies_bouldin") == "c"
    assert choose_per_image([{"setting": "a", "silhouette": float("nan")}], "silhouette") is None


# --------------------------------------------------------------------------------------
# The sweep over a data set


def _write_tree(root: Path, predictions: Path) -> dict[str, np.ndarray]:
    """A BSDS500-layout val split of three quadrant photos, and fragmented predictions."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "groundTruth" / "val").mkdir(parents=True)
    predictions.mkdir()
    truths = {}
    for k, image_id in enumerate(("101", "102", "103")):
        truth = _quadrants() if k != 1 else _quadrants()[::-1]
        truths[image_id] = truth
        Image.fromarray(_photo(truth, seed=k)).save(
            root / "images" / "val" / f"{image_id}.jpg", quality=98
        )
        cells = {"groundTruth": bsds_struct_cells([(truth + 1).astype(np.uint16)])}
        scipy.io.savemat(root / "groundTruth" / "val" / f"{image_id}.mat", cells)
        save_label_png(predictions / f"{image_id}.png", _fragmented(truth) % 256)
    return truths


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_sweep_end_to_end_and_resume(tmp_path):
    root, predictions, out = tmp_path / "bsds", tmp_path / "pred", tmp_path / "out"
    truths = _write_tree(root, predictions)

    def sweep(**options):
        options = {"out": out, "limit": None, **options}
        return postprocess_dataset(
            "bsds500",
            data_root=root,
            predictions=predictions,
            methods=["ward", "kmeans"],
            grid={"ward": [4, 2], "kmeans": [2]},
            figure_images=2,
            **options,
        )

    result = sweep()
    summary = result.summary
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["kind"] == "postprocess"
    assert summary["choose_by"] == "covering" and summary["n_images"] == 3
    # Ward into the 4 true regions scores a perfect covering; the raw fragments do not
    assert summary["settings"]["ward-4"]["covering"] == pytest.approx(1.0)
    assert summary["settings"]["none"]["covering"] < 0.5
    assert summary["chosen_dataset"] == result.chosen_dataset == "ward-4"
    assert [row[0] for row in result.table["rows"]] == [
        "none",
        "kmeans-2",
        "ward-4",
        "ward-2",
        "per-image (silhouette)",
    ]
    assert result.table["columns"][:3] == ["setting", "mean_labels", "mean_segments"]
    assert summary["figures"] == [
        {"title": summary["figures"][0]["title"], "path": "comparison.png"}
    ]
    with Image.open(out / "comparison.png") as figure:
        assert figure.size[0] > 200
    rows = _csv(result.csv_path)
    assert len(rows) == 3 * 4 and not any(row["error"] for row in rows) and not result.failures
    for image_id, truth in truths.items():
        saved = read_label_png(out / "chosen-dataset" / f"{image_id}.png")
        image = np.asarray(Image.open(root / "images" / "val" / f"{image_id}.jpg"))
        expected = merge_segments(image, _fragmented(truth) % 256, Setting("ward", 4))
        np.testing.assert_array_equal(saved, expected)
        choice = result.per_image_choices[image_id]
        assert (out / "chosen-image" / f"{image_id}.png").is_file() and choice in {
            "none",
            "ward-4",
            "ward-2",
            "kmeans-2",
        }

    # resume: drop one image's rows; only that image is redone
    kept = [row for row in rows if row["id"] != "102"]
    with open(out / "per_image.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    resumed = sweep().summary["settings"]
    again = _csv(out / "per_image.csv")
    assert len(again) == 12
    assert [row["id"] for row in again[:8]] == [row["id"] for row in kept]
    for name, scores in summary["settings"].items():
        scores.pop("seconds_per_image"), resumed[name].pop("seconds_per_image")
        assert resumed[name] == scores

    # a shorter limit scores the first image only and keeps the others' rows
    assert sweep(limit=1).summary["n_images"] == 1
    assert len(_csv(out / "per_image.csv")) == 12

    # other settings in the same folder are refused
    with pytest.raises(ConfigError, match="other settings"):
        sweep(seed=3)


def test_sweep_reports_missing_predictions_per_image(tmp_path):
    root, predictions, out = tmp_path / "bsds", tmp_path / "pred", tmp_path / "out"
    _write_tree(root, predictions)
    (predictions / "102.png").unlink()
    result = postprocess_dataset(
        "bsds500", data_root=root, predictions=predictions, methods=["ward"], out=out
    )
    assert [image_id for image_id, _ in result.failures] == ["102"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 2
    assert [f["id"] for f in summary["failed"]] == ["102"]
    assert not (out / "chosen-dataset" / "102.png").exists()


def test_sweep_on_class_maps_keeps_the_prediction_ids(tmp_path):

    maps = write_msrc_bands(tmp_path / "msrc")
    predictions = tmp_path / "pred"
    predictions.mkdir()
    rng = np.random.default_rng(0)
    for image_id, class_map in maps.items():
        save_label_png(predictions / f"{image_id}.png", rng.integers(3, 9, class_map.shape))
    out = tmp_path / "out"
    result = postprocess_dataset(
        "msrc",
        data_root=tmp_path / "msrc",
        predictions=predictions,
        methods=["kmeans"],
        grid={"kmeans": [2]},
        out=out,
    )
    summary = result.summary
    assert summary["choose_by"] == "miou_per_image"
    assert {"miou_per_image", "miou_hungarian", "pixel_accuracy"} <= set(
        summary["settings"]["kmeans-2"]
    )
    for image_id in maps:
        raw = read_label_png(predictions / f"{image_id}.png")
        merged = read_label_png(out / "chosen-image" / f"{image_id}.png")
        # merged clusters take the prediction's majority id: the ids mean the same
        # across images, as the Hungarian matching needs
        assert set(np.unique(merged)) <= set(np.unique(raw))


def test_sweep_without_ground_truth_chooses_by_an_index(tmp_path):
    images, predictions = tmp_path / "photos", tmp_path / "pred"
    images.mkdir(), predictions.mkdir()
    for k in range(2):
        truth = _quadrants()
        Image.fromarray(_photo(truth, seed=k)).save(images / f"p{k}.png")
        save_label_png(predictions / f"p{k}.png", _fragmented(truth))
    options = dict(
        data_root=images, predictions=predictions, methods=["ward"], grid={"ward": [4, 2]}
    )
    result = postprocess_dataset("folder", select="davies_bouldin", out=tmp_path / "out", **options)
    summary = result.summary
    assert summary["choose_by"] == "davies_bouldin" and summary["chosen_dataset"] == "ward-4"
    assert "covering" not in summary["settings"]["ward-4"]
    with pytest.raises(ConfigError, match="needs ground truth"):
        postprocess_dataset("folder", choose_by="covering", out=tmp_path / "o2", **options)
    for bad, message in [
        (dict(samples=float("nan")), "samples must be an integer"),
        (dict(samples=1), "samples must be >= 2"),
        (dict(figure_images=-1), "figure_images must be >= 0"),
        (dict(limit=0), "limit must be >= 1"),
        (dict(workers=2.5), "workers must be an integer"),
        (dict(seed=-1), "seed must be in"),
    ]:
        with pytest.raises(ConfigError, match=message):
            postprocess_dataset("folder", out=tmp_path / "o3", **options, **bad)
    assert not (tmp_path / "o3").exists()


# --------------------------------------------------------------------------------------
# The command


def _argv(root: Path, predictions: Path, out: Path, *extra: str) -> list[str]:
    return [
        "postprocess", "--dataset", "bsds500", "--data-root", str(root), "--predictions",
        str(predictions), "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def test_command_writes_the_outputs_and_prints_the_table(tmp_path, capsys):
    root, predictions, out = tmp_path / "bsds", tmp_path / "pred", tmp_path / "out"
    _write_tree(root, predictions)
    argv = _argv(root, predictions, out, "--methods", "ward,kmeans", "--grid", "ward=4,2;kmeans=2")
    assert main([*argv, "--figure-images", "1"]) == 0
    for name in ("per_image.csv", "summary.json", "config.json", "comparison.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "chosen-dataset").glob("*.png"))) == 3
    assert len(list((out / "chosen-image").glob("*.png"))) == 3
    summary = json.loads((out / "summary.json").read_text())
    printed = capsys.readouterr().out
    assert printed.startswith(summary["title"] + "\nsetting")
    assert "ward-4" in printed and "per-image (silhouette)" in printed
    assert f"data-set choice (by covering): {summary['chosen_dataset']}" in printed
    # the same settings again: nothing to redo, the same choice
    assert main([*argv, "--figure-images", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["chosen_dataset"] == "ward-4"
    # a missing prediction fails its image: exit status 1
    (predictions / "102.png").unlink()
    assert main(_argv(root, predictions, tmp_path / "o2", "--methods", "ward")) == 1
    assert "1 image(s) failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--methods", "kmeans,nope"],
        ["--methods", ","],
        ["--grid", "ward=x"],
        ["--choose-by", "miou_per_image"],
    ],
)
def test_command_bad_usage(tmp_path, extra, capsys):
    root, predictions = tmp_path / "bsds", tmp_path / "pred"
    _write_tree(root, predictions)
    assert main([*_argv(root, predictions, tmp_path / "o"), *extra]) == 2
    assert capsys.readouterr().err.strip()  # one line saying what was wrong
    assert not (tmp_path / "o").exists()


def test_command_other_settings_in_out(tmp_path, capsys):
    root, predictions, out = tmp_path / "bsds", tmp_path / "pred", tmp_path / "out"
    _write_tree(root, predictions)
    assert main(_argv(root, predictions, out, "--methods", "ward")) == 0
    assert main(_argv(root, predictions, out, "--methods", "ward", "--seed", "3")) == 2
    assert "other settings" in capsys.readouterr().err
