"""Scoring data sets: :func:`unsupseg.evaluation.evaluate_dataset`, the baselines, and
``unsupseg evaluate`` on tiny data sets in the real on-disk formats."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from conftest import band_image, bsds_struct_cells, palette_png, write_msrc_bands
from PIL import Image

from unsupseg import baselines, evaluation, metrics
from unsupseg.baselines import BASELINES
from unsupseg.cli import main
from unsupseg.data import open_dataset, open_folder
from unsupseg.data.subsets import split_holdout
from unsupseg.errors import CheckpointError, ConfigError, DatasetError
from unsupseg.evaluation import evaluate_dataset, scoring_kind

RNG = np.random.default_rng(7)
H, W = 20, 30


def _evaluate(dataset: str, root: Path, out: Path, **options) -> evaluation.Evaluation:
    return evaluate_dataset(dataset, data_root=root, out=out, **options)


def _cli(*argv: str) -> int:
    return main(["evaluate", *map(str, argv), "--quiet"])


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "per_image.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------
# Writers (the formats of tests/test_data.py)


def _halves() -> np.ndarray:
    seg = np.ones((H, W), np.uint16)
    seg[:, W // 2 :] = 2
    return seg


def _quadrants() -> np.ndarray:
    seg = np.ones((H, W), np.uint16)
    seg[:, W // 2 :] += 1
    seg[H // 2 :, :] += 2
    return seg


def write_bsds(root: Path, truths: dict[str, list[np.ndarray]], split: str = "val") -> None:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
    for image_id, segs in truths.items():
        image = RNG.integers(0, 256, (*segs[0].shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / split / f"{image_id}.jpg")
        cells = {"groundTruth": bsds_struct_cells(segs)}
        scipy.io.savemat(root / "groundTruth" / split / f"{image_id}.mat", cells)


def hand_bsds(root: Path) -> dict[str, list[np.ndarray]]:
    """Image 1: halves + one whole segment; image 2: quadrants (one annotator)."""
    truths = {"1001": [_halves(), np.ones((H, W), np.uint16)], "1002": [_quadrants()]}
    write_bsds(root, truths)
    return truths


def one_annotator_bsds(root: Path) -> dict[str, list[np.ndarray]]:
    truths = {"2001": [_halves()], "2002": [_quadrants()], "2003": [_quadrants()[:, ::-1]]}
    write_bsds(root, truths)
    return truths



# --------------------------------------------------------------------------------------
# Baselines


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_give_int64_labels_from_zero(name, blocks_image):
    labels = BASELINES[name](blocks_image)
    assert labels.shape == blocks_image.shape[:2]
    assert labels.dtype == np.int64
    ids = np.unique(labels)
    np.testing.assert_array_equal(ids, np.arange(ids.size))
    if name == "blank":
        assert ids.size == 1
    elif name != "slic":
        assert 2 <= ids.size <= 8  # three flat colour blocks


def test_kmeans_is_seeded(blocks_image):
    a = BASELINES["kmeans"](blocks_image, k=3, seed=1)
    b = BASELINES["kmeans"](blocks_image, k=3, seed=1)
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# BSDS500


def test_blank_hand_computed(tmp_path):
    hand_bsds(tmp_path / "bsds")
    result = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", method="blank")
    summary = result.summary
    assert summary["n_images"] == 2 and summary["n_failed"] == 0 and not result.failures
    # Image 1: halves (IoU 0.5, 0.5) and whole (1); image 2: quadrants (0.25 x 4).
    assert summary["miou_all"] == pytest.approx(3 / 7)
    assert summary["miou_fine"] == pytest.approx((0.5 + 0.5 + 1.0) / 6)
    assert summary["miou_coarse"] == pytest.approx((1.0 + 1.0) / 5)
    assert summary["covering"] == pytest.approx((300 + 600 + 150) / 1800)
    assert summary["mean_segments"] == 1
    assert summary["boundary_ods"] == 0
    assert [row["id"] for row in _rows(tmp_path / "out")] == ["1001", "1002"]
    # The rows come back as numbers, the CSV keeps every digit.
    assert [row["id"] for row in result.rows] == ["1001", "1002"]
    first = result.rows[0]
    assert (first["n_labels"], first["covering_area"], first["error"]) == (1, 1200, "")
    assert first["pri"] == float(_rows(tmp_path / "out")[0]["pri"])
    assert result.csv_path == tmp_path / "out" / "per_image.csv"
    assert result.source == "blank" and result.title == "bsds500 val: blank (2 images)"


def test_command_writes_the_summary_json_and_prints_the_table(tmp_path, capsys):
    hand_bsds(tmp_path / "bsds")
    out, summary_path = tmp_path / "out", tmp_path / "summary.json"
    code = _cli(
        "--dataset", "bsds500", "--data-root", tmp_path / "bsds", "--method", "blank",
        "--out", out, "--json", summary_path,
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    for key in (
        "n_images", "miou_all", "miou_fine", "miou_coarse", "covering", "pri", "vi",
        "boundary_ods", "boundary_ois", "mean_segments", "mean_labels", "seconds_per_image",
        "n_failed", "failed", "settings", "per_image_csv",
    ):  # fmt: skip
        assert key in summary
    assert summary["miou_all"] == pytest.approx(3 / 7)
    assert summary["settings"]["method"] == "blank" and summary["failed"] == []
    assert summary["per_image_csv"] == str((out / "per_image.csv").resolve())
    assert json.loads((out / "evaluate.json").read_text()) == summary["settings"]
    printed = capsys.readouterr().out
    assert printed.startswith("bsds500 val: blank (2 images)\nmetric")
    assert "miou_all" in printed and "0.4286" in printed


def _save_perfect(folder: Path, truths: dict[str, list[np.ndarray]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, segs in truths.items():
        np.save(folder / f"{image_id}.npy", segs[0].astype(np.int64) - 1)


def test_perfect_predictions_score_perfectly(tmp_path):
    truths = one_annotator_bsds(tmp_path / "bsds")
    _save_perfect(tmp_path / "pred", truths)
    result = _evaluate(
        "bsds500", tmp_path / "bsds", tmp_path / "out", predictions=tmp_path / "pred"
    )
    summary = result.summary
    assert summary["n_images"] == 3
    assert summary["covering"] == pytest.approx(1.0)
    assert summary["vi"] == pytest.approx(0.0, abs=1e-9)
    assert summary["pri"] == pytest.approx(1.0)
    assert summary["miou_all"] == pytest.approx(1.0)
    assert summary["boundary_ods"] == pytest.approx(1.0)
    assert result.source == "predictions-pred"


def test_prediction_layouts(tmp_path):
    truths = one_annotator_bsds(tmp_path / "bsds")
    pred = tmp_path / "pred"
    (pred / "2002").mkdir(parents=True)
    (pred / "2003").mkdir(parents=True)
    from unsupseg.io import save_label_png

    save_label_png(pred / "2001.png", truths["2001"][0])
    np.save(pred / "2002" / "labels.npy", truths["2002"][0])
    save_label_png(pred / "2003" / "labels.png", truths["2003"][0])
    result = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", predictions=pred)
    assert not result.failures
    assert result.summary["covering"] == pytest.approx(1.0)


def test_missing_and_mismatched_predictions_are_reported(tmp_path):
    truths = one_annotator_bsds(tmp_path / "bsds")
    pred = tmp_path / "pred"
    _save_perfect(pred, truths)
    (pred / "2002.npy").unlink()
    np.save(pred / "2003.npy", np.zeros((H + 1, W), np.int64))
    out = tmp_path / "out"
    result = _evaluate("bsds500", tmp_path / "bsds", out, predictions=pred)
    summary = result.to_json()
    assert summary["n_images"] == 1
    assert summary["n_failed"] == 2
    assert summary["covering"] == pytest.approx(1.0)
    assert {item["id"] for item in summary["failed"]} == {"2002", "2003"}
    errors = {row["id"]: row["error"] for row in _rows(out)}
    assert errors["2001"] == ""
    assert "no prediction for 2002" in errors["2002"]
    assert "size" in errors["2003"]
    # Fix one: the failed images are retried, the good one is kept, each id once.
    _save_perfect(pred, {"2002": truths["2002"]})
    again = _evaluate("bsds500", tmp_path / "bsds", out, predictions=pred)
    assert [image_id for image_id, _ in again.failures] == ["2003"]
    rows = _rows(out)
    assert sorted(row["id"] for row in rows) == ["2001", "2002", "2003"]
    assert again.summary["n_images"] == 2


def test_command_exit_code_and_message_when_images_fail(tmp_path, capsys):
    truths = one_annotator_bsds(tmp_path / "bsds")
    _save_perfect(tmp_path / "pred", truths)
    (tmp_path / "pred" / "2002.npy").unlink()
    summary_path = tmp_path / "s.json"
    code = _cli(
        "--dataset", "bsds500", "--data-root", tmp_path / "bsds", "--predictions",
        tmp_path / "pred", "--out", tmp_path / "out", "--json", summary_path,
    )  # fmt: skip
    assert code == 1
    assert "1 image(s) failed" in capsys.readouterr().err
    summary = json.loads(summary_path.read_text())
    assert summary["n_failed"] == 1 and summary["failed"][0]["id"] == "2002"


def test_resumable(tmp_path, monkeypatch):
    hand_bsds(tmp_path / "bsds")
    calls = []

    def counting_blank(image):
        calls.append(image.shape)
        return np.zeros(image.shape[:2], np.int64)

    monkeypatch.setitem(baselines.BASELINES, "blank", counting_blank)
    out = tmp_path / "out"

    def run(**options):
        return _evaluate("bsds500", tmp_path / "bsds", out, method="blank", **options)

    run(limit=1)
    assert len(calls) == 1
    first = _rows(out)
    assert [row["id"] for row in first] == ["1001"]
    assert run().summary["miou_all"] == pytest.approx(3 / 7)
    assert len(calls) == 2  # only the second image was computed
    rows = _rows(out)
    assert [row["id"] for row in rows] == ["1001", "1002"]
    assert rows[0] == first[0]
    # Nothing left: a third run computes nothing and gives the same summary.
    assert run().summary["miou_all"] == pytest.approx(3 / 7)
    assert len(calls) == 2
    # A row cut short by a killed run is dropped and its image scored again.
    text = (out / "per_image.csv").read_text().splitlines()
    (out / "per_image.csv").write_text("\n".join(text[:-1]) + "\n" + text[-1][:12])
    run()
    assert len(calls) == 3

    def strip(table):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in table]

    assert strip(_rows(out)) == strip(rows)


def test_other_settings_in_out_are_refused(tmp_path, capsys):
    hand_bsds(tmp_path / "bsds")
    out = tmp_path / "out"
    _evaluate("bsds500", tmp_path / "bsds", out, method="blank")
    with pytest.raises(ConfigError, match=r"other settings \(method"):
        _evaluate("bsds500", tmp_path / "bsds", out, method="kmeans")
    argv = ("--dataset", "bsds500", "--data-root", tmp_path / "bsds", "--out", out)
    assert _cli(*argv, "--method", "kmeans") == 2
    assert "other settings (method" in capsys.readouterr().err
    assert _cli(*argv, "--method", "blank") == 0


def test_invalid_sources_are_config_errors(tmp_path):
    hand_bsds(tmp_path / "bsds")
    root, out = tmp_path / "bsds", tmp_path / "out"
    with pytest.raises(ConfigError, match="exactly one"):
        _evaluate("bsds500", root, out)
    with pytest.raises(ConfigError, match="exactly one"):
        _evaluate("bsds500", root, out, method="blank", predictions=tmp_path)
    with pytest.raises(ConfigError, match="unknown method"):
        _evaluate("bsds500", root, out, method="nope")
    with pytest.raises(ConfigError, match="no such folder"):
        _evaluate("bsds500", root, out, predictions=tmp_path / "none")
    with pytest.raises(ConfigError, match="unknown data set"):
        _evaluate("cifar10", root, out, method="blank")
    # bad numbers are refused before any image is read, NaN included
    for options, message in [
        (dict(method="kmeans", seed=-1), "seed must be in"),
        (dict(method="tip2020", seed=2**40), "seed must be in"),
        (dict(method="per-image", seed=float("nan")), "seed must be an integer"),
        (dict(method="per-image", max_iter=0), "max_iter must be >= 1"),
        (dict(method="dynaseg-fsf", max_side=1), "max_side must be >= 2"),
        (dict(method="blank", limit=float("nan")), "limit must be an integer"),
        (dict(method="blank", limit=0), "limit must be >= 1"),
        (dict(method="blank", workers=0), "workers must be >= 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _evaluate("bsds500", root, out, **options)
    assert not out.exists()  # nothing written on bad usage


def test_missing_dataset_is_bad_usage(tmp_path, capsys):
    with pytest.raises(DatasetError, match="(?i)bsds"):
        _evaluate("bsds500", tmp_path / "none", tmp_path / "out", method="blank")
    argv = ("--dataset", "bsds500", "--data-root", tmp_path / "none", "--method", "blank")
    assert _cli(*argv, "--out", tmp_path / "out") == 2
    assert "bsds" in capsys.readouterr().err.lower()


def test_workers_match_one_process(tmp_path):
    hand_bsds(tmp_path / "bsds")
    results = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        _evaluate("bsds500", tmp_path / "bsds", out, method="felzenszwalb", workers=workers)
        results.append([{k: v for k, v in row.items() if k != "seconds"} for row in _rows(out)])
    assert results[0] == results[1]


# --------------------------------------------------------------------------------------
# MSRC-v2


def test_msrc_perfect_prediction_hungarian(tmp_path):
    maps = write_msrc_bands(tmp_path / "msrc")
    pred = tmp_path / "pred"
    pred.mkdir()
    for image_id, class_map in maps.items():
        prediction = class_map.astype(np.int64)
        prediction[class_map == 255] = 30  # void: any id, ignored
        np.save(pred / f"{image_id}.npy", prediction)
    summary = _evaluate("msrc", tmp_path / "msrc", tmp_path / "out", predictions=pred).summary
    for key in ("n_images", "miou_per_image", "miou_hungarian", "pixel_accuracy", "mean_segments"):
        assert key in summary
    assert summary["n_images"] == 3
    assert summary["miou_hungarian"] == pytest.approx(1.0)
    assert summary["pixel_accuracy"] == pytest.approx(1.0)
    assert summary["miou_per_image"] == pytest.approx(1.0)


def test_msrc_blank(tmp_path):
    write_msrc_bands(tmp_path / "msrc")
    summary = _evaluate("msrc", tmp_path / "msrc", tmp_path / "out", method="blank").summary
    # One cluster matched to the largest class, 3 (10 + 15 of 70 labelled columns); the
    # other three classes present (0, 1, 5) score 0.
    assert summary["pixel_accuracy"] == pytest.approx(25 / 70)
    assert summary["miou_hungarian"] == pytest.approx((25 / 70) / 4)


def test_msrc_holdout_scores_the_images_training_held_out(tmp_path):
    write_msrc_bands(tmp_path / "msrc")
    for k in range(7):  # 10 images: the holdout is the 1st and the 6th
        for sub in ("images", "labels"):
            source = tmp_path / "msrc" / sub / "2_1_s.png"
            (tmp_path / "msrc" / sub / f"9_{k}_s.png").write_bytes(source.read_bytes())
    out = tmp_path / "out"
    result = _evaluate("msrc", tmp_path / "msrc", out, split="holdout", method="blank")
    train, held = split_holdout(open_dataset("msrc", tmp_path / "msrc", "all"))
    assert [row["id"] for row in _rows(out)] == held.ids == ["1_1_s", "9_2_s"]
    assert [row["id"] for row in result.rows] == held.ids
    assert not set(held.ids) & set(train.ids) and len(train) == 8
    assert result.settings["split"] == "holdout"


# --------------------------------------------------------------------------------------
# PASCAL VOC 2012


def _bands(classes: list[int], height: int = H, width: int = W) -> np.ndarray:
    """Vertical bands of the given class values (np.array_split of the columns)."""
    class_map = np.zeros((height, width), np.uint8)
    for band, value in zip(np.array_split(np.arange(width), len(classes)), classes, strict=True):
        class_map[:, band] = value
    return class_map


def write_voc(root: Path) -> dict[str, np.ndarray]:
    """A VOC tree; returns the class maps of the val split (a third image is train only)."""
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    maps = {
        # background 200 px, person (15) 200 px, void 200 px
        "2008_000001": _bands([0, 15, 255]),
        # background 200 px, cat (8) 300 px, tvmonitor (20) 100 px
        "2008_000002": _bands([0, 0, 8, 8, 8, 20]),
        "2008_000003": _bands([0, 3]),
    }
    for image_id, class_map in maps.items():
        image = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg")
        palette_png(voc / "SegmentationClass" / f"{image_id}.png", class_map)
    sets = voc / "ImageSets" / "Segmentation"
    (sets / "train.txt").write_text("2008_000003\n")
    (sets / "val.txt").write_text("2008_000001\n2008_000002\n")
    del maps["2008_000003"]
    return maps


def _save_class_maps(folder: Path, maps: dict[str, np.ndarray]) -> None:
    """Perfect predictions: the class ids themselves (void pixels get an unused id)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, class_map in maps.items():
        prediction = class_map.astype(np.int64)
        prediction[class_map == 255] = 30  # void: any id, ignored
        np.save(folder / f"{image_id}.npy", prediction)


def test_voc2012_perfect_and_blank(tmp_path):
    maps = write_voc(tmp_path / "voc")
    _save_class_maps(tmp_path / "pred", maps)
    root = tmp_path / "voc"
    result = _evaluate("voc2012", root, tmp_path / "p", predictions=tmp_path / "pred")
    summary = result.summary
    assert result.settings["split"] == "val"
    assert summary["n_images"] == 2  # the val split; the train-only image is not scored
    assert summary["miou_per_image"] == pytest.approx(1.0)
    assert summary["miou_hungarian"] == pytest.approx(1.0)
    assert summary["pixel_accuracy"] == pytest.approx(1.0)
    assert [row["id"] for row in _rows(tmp_path / "p")] == list(maps)

    blank = _evaluate("voc2012", root, tmp_path / "b", method="blank")
    summary = blank.summary
    # One segment per image: each class region's IoU is its share of the labelled pixels,
    # so an image's IoUs sum to 1: (1 + 1) / (2 + 3 regions). One cluster over the split,
    # matched to background (400 of the 1000 labelled pixels); four classes present.
    assert summary["miou_per_image"] == pytest.approx(2 / 5)
    assert summary["pixel_accuracy"] == pytest.approx(400 / 1000)
    assert summary["miou_hungarian"] == pytest.approx((400 / 1000) / 4)
    # The same from the label maps (class 20 counts: 21 classes with background).
    labelled = sum(int((m != 255).sum()) for m in maps.values())
    areas = {c: sum(int((m == c).sum()) for m in maps.values()) for c in (0, 8, 15, 20)}
    assert summary["pixel_accuracy"] == pytest.approx(max(areas.values()) / labelled)
    assert all(row["error"] == "" for row in _rows(tmp_path / "b"))


def test_voc2012_missing_prediction_is_per_image(tmp_path):
    maps = write_voc(tmp_path / "voc")
    _save_class_maps(tmp_path / "pred", maps)
    (tmp_path / "pred" / "2008_000002.npy").unlink()
    result = _evaluate("voc2012", tmp_path / "voc", tmp_path / "out", predictions=tmp_path / "pred")
    assert [image_id for image_id, _ in result.failures] == ["2008_000002"]
    errors = {row["id"]: row["error"] for row in _rows(tmp_path / "out")}
    assert errors["2008_000001"] == ""
    assert "no prediction for 2008_000002" in errors["2008_000002"]


# --------------------------------------------------------------------------------------
# A folder with labels


def write_labelled_folder(root: Path) -> dict[str, np.ndarray]:
    """images/ (PNG and JPEG) and labels/ (a palette and a grayscale PNG), sparse ids."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    maps = {
        "a": _bands([2, 5, 255]),  # 2: 200 px, 5: 200 px, void 200 px
        "b": _bands([9, 9, 9, 9, 2, 255]),  # 9: 400 px, 2: 100 px, void 100 px
    }
    Image.fromarray(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images/a.png")
    Image.fromarray(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images/b.jpg")
    palette_png(root / "labels" / "a.png", maps["a"])
    Image.fromarray(maps["b"], mode="L").save(root / "labels" / "b.png")
    return maps


def test_folder_with_labels_perfect_and_blank(tmp_path):
    maps = write_labelled_folder(tmp_path / "dir")
    dataset = open_folder(tmp_path / "dir")
    assert dataset.classes == [2, 5, 9] and dataset.n_classes == 3
    assert scoring_kind(dataset) == "class_map"
    np.testing.assert_array_equal(np.unique(dataset.ground_truth(1)), [0, 2, 255])
    _save_class_maps(tmp_path / "pred", maps)
    root = tmp_path / "dir"
    result = _evaluate("folder", root, tmp_path / "p", predictions=tmp_path / "pred")
    summary = result.summary
    assert summary["n_images"] == 2
    assert result.settings["classes"] == [2, 5, 9]
    for key in ("miou_per_image", "miou_hungarian", "pixel_accuracy"):
        assert summary[key] == pytest.approx(1.0), key

    summary = _evaluate("folder", root, tmp_path / "b", method="blank").summary
    # Per image the IoUs of one segment sum to 1, over 2 + 2 class regions. Classes over
    # the split: 2: 300, 5: 200, 9: 400 of 900 labelled pixels; the cluster takes 9.
    assert summary["miou_per_image"] == pytest.approx(2 / 4)
    assert summary["pixel_accuracy"] == pytest.approx(400 / 900)
    assert summary["miou_hungarian"] == pytest.approx((400 / 900) / 3)


def test_folder_classes_csv_and_per_image_errors(tmp_path):
    maps = write_labelled_folder(tmp_path / "dir")
    (tmp_path / "dir" / "classes.csv").write_text("id,name\n2,road\n9,sky\n5,car\n11,tree\n")
    dataset = open_folder(tmp_path / "dir")
    assert dataset.classes == [2, 5, 9, 11]
    assert dataset.class_names == ["road", "car", "sky", "tree"]
    _save_class_maps(tmp_path / "pred", maps)
    root, pred = tmp_path / "dir", tmp_path / "pred"
    # A class listed but absent (11) does not count in the Hungarian mIoU.
    result = _evaluate("folder", root, tmp_path / "o1", predictions=pred)
    assert result.summary["miou_hungarian"] == pytest.approx(1.0)
    # An id missing from classes.csv and a prediction of another size fail one image each.
    (tmp_path / "dir" / "classes.csv").write_text("id,name\n2,road\n9,sky\n")
    np.save(tmp_path / "pred" / "b.npy", np.zeros((H, W + 1), np.int64))
    result = _evaluate("folder", root, tmp_path / "o2", predictions=pred)
    errors = {row["id"]: row["error"] for row in _rows(tmp_path / "o2")}
    assert "[5] not in" in errors["a"]
    assert "size" in errors["b"]
    assert result.summary["n_failed"] == 2


def test_folder_needs_data_root(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--dataset folder needs --data-root"):
        evaluate_dataset("folder", method="blank", out=tmp_path / "out")
    assert _cli("--dataset", "folder", "--method", "blank") == 2
    assert "--dataset folder needs --data-root" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# A folder without labels: internal indices


def test_folder_without_labels_internal_indices(tmp_path):
    (tmp_path / "dir" / "images").mkdir(parents=True)
    images = {
        name: RNG.integers(0, 256, (H, W, 3), dtype=np.uint8) for name in ("two", "one", "odd")
    }
    for name, image in images.items():
        Image.fromarray(image).save(tmp_path / "dir" / "images" / f"{name}.png")
    pred = tmp_path / "pred"
    pred.mkdir()
    halves = (np.arange(W)[None, :] >= W // 2).repeat(H, axis=0).astype(np.int64)
    np.save(pred / "two.npy", halves)
    np.save(pred / "one.npy", np.zeros((H, W), np.int64))
    np.save(pred / "odd.npy", np.zeros((H + 2, W), np.int64))
    out = tmp_path / "out"
    result = _evaluate("folder", tmp_path / "dir", out, predictions=pred)
    assert [image_id for image_id, _ in result.failures] == ["odd"]  # another size
    assert scoring_kind(open_folder(tmp_path / "dir")) == "internal"
    rows = {row["id"]: row for row in _rows(out)}
    assert list(next(iter(rows.values()))) == evaluation.INTERNAL_COLUMNS
    assert "size" in rows["odd"]["error"]
    expected = metrics.internal_indices(images["two"] / 255.0, halves)
    assert np.isfinite(expected["silhouette"])
    for name in ("silhouette", "calinski_harabasz", "davies_bouldin"):
        assert float(rows["two"][name]) == expected[name], name
    assert (rows["two"]["n_labels"], rows["two"]["n_segments"], rows["two"]["note"]) == (
        "2", "2", ""
    )  # fmt: skip
    # One label: no index is defined; NaN with the reason, not a failure.
    assert rows["one"]["error"] == ""
    assert all(math.isnan(float(rows["one"][name])) for name in evaluation.INDICES)
    assert "1 label(s)" in rows["one"]["note"]
    summary = result.to_json()
    assert summary["n_images"] == 2 and summary["n_failed"] == 1
    assert summary["n_indices_undefined"] == 1
    for name in ("silhouette", "calinski_harabasz", "davies_bouldin"):
        assert summary[name] == pytest.approx(expected[name]), name
    assert summary["mean_labels"] == pytest.approx(1.5)
    assert summary["mean_segments"] == pytest.approx(1.5)
    # Resume: the scored rows are kept as they are, the failed image is retried.
    np.save(pred / "odd.npy", halves)
    assert not _evaluate("folder", tmp_path / "dir", out, predictions=pred).failures
    again = {row["id"]: row for row in _rows(out)}
    assert again["two"] == rows["two"] and again["one"] == rows["one"]
    assert again["odd"]["error"] == ""


def test_folder_of_images_itself_blank(tmp_path):
    (tmp_path / "dir").mkdir()
    for name in ("x", "y"):
        image = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / "dir" / f"{name}.png")
    result = _evaluate("folder", tmp_path / "dir", tmp_path / "out", method="blank")
    summary = result.to_json()
    assert summary["n_images"] == 2 and summary["n_indices_undefined"] == 2
    assert summary["silhouette"] is None  # NaN: no image has two labels
    assert math.isnan(result.summary["silhouette"])
    assert summary["mean_labels"] == 1
    assert result.source == "blank" and result.settings["dataset"] == "folder"


# --------------------------------------------------------------------------------------
# A checkpoint and per-image optimisation, against the functions they call






@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained for real: autoencoder, q = 8, one epoch on 4 images."""
    import torch

    root = tmp_path_factory.mktemp("train")
    (root / "data" / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(band_image(rng)).save(root / "data" / "train" / f"img{i}.png")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Total length of `list`")  # no validation split
            code = main(
                [
                    "train", "--preset", "autoencoder-cifar10", "--q", "8", "--epochs", "1",
                    "--batch-size", "4", "--dataset", "folder", "--data-root",
                    str(root / "data"), "--split", "train", "--val-split", "none",
                    "--cache-dir", str(root / "cache"), "--slic-workers", "1",
                    "--num-workers", "0", "--quiet", "--out", str(root / "run"),
                ]
            )  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert code == 0
    return root / "run" / "checkpoints" / "model-last.pt"


def _bsds_row(prediction: np.ndarray, annotators: list[np.ndarray]) -> dict[str, float]:
    """A BSDS500 row computed with the metric functions directly."""
    row = {
        "n_labels": np.unique(prediction).size,
        "n_segments": int(metrics.connected_components(prediction).max()) + 1,
    }
    for mode in metrics.MODES:
        total, count = metrics.bsds_miou_terms(prediction, annotators, mode)
        row[f"miou_{mode}_sum"], row[f"miou_{mode}_n"] = total, count
    weighted, area = metrics.segmentation_covering_terms(prediction, annotators)
    row["covering_sum"], row["covering_area"] = weighted, area
    row["pri"] = metrics.probabilistic_rand_index(prediction, annotators)
    row["vi"] = metrics.variation_of_information(prediction, annotators)
    counts = metrics.boundary_prf_terms(prediction, annotators)
    row.update({f"boundary_{key}": value for key, value in counts.items()})
    row["boundary_f"] = metrics.boundary_f(counts)["f"]
    return row


def _assert_rows(out: Path, expected: dict[str, dict[str, float]]) -> None:
    rows = _rows(out)
    assert [row["id"] for row in rows] == list(expected)
    for row in rows:
        assert row["error"] == "", row["error"]
        for key, value in expected[row["id"]].items():
            assert float(row[key]) == pytest.approx(value, rel=1e-12, abs=1e-12), (row["id"], key)


def test_checkpoint_rows_are_predict_batch_scored(tmp_path, checkpoint, one_thread):
    from unsupseg.inference import predict_batch
    from unsupseg.models.checkpoint import load_checkpoint

    truths = hand_bsds(tmp_path / "bsds")
    dataset = open_dataset("bsds500", tmp_path / "bsds", "val", image_size="native")
    loaded = load_checkpoint(checkpoint, "cpu")
    labels = {}
    for refine in (False, True):
        expected = {}
        for index in range(len(dataset)):
            (result,) = predict_batch(loaded, [dataset.image(index)], refine=refine)
            image_id = dataset.image_id(index)
            labels[image_id, refine] = result.labels
            expected[image_id] = _bsds_row(result.labels.astype(np.int64), truths[image_id])
        out = tmp_path / f"out-{refine}"
        scored = _evaluate(
            "bsds500", tmp_path / "bsds", out, checkpoint=checkpoint, refine=refine, device="cpu"
        )
        assert scored.settings["refine"] is refine and scored.source == "checkpoint-model-last"
        _assert_rows(out, expected)
    # The vote changes the labels here, so the two runs check different predictions.
    assert any(not np.array_equal(labels[i, False], labels[i, True]) for i in truths)
    # A loaded checkpoint scores the same as its file.
    again = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "loaded", checkpoint=loaded)
    assert again.settings == {**scored.settings, "refine": False}

    def strip(rows):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert strip(_rows(tmp_path / "loaded")) == strip(_rows(tmp_path / "out-False"))


def test_checkpoint_on_class_maps_scores_channel_ids(tmp_path, checkpoint, one_thread):
    from unsupseg.inference import channel_labels, predict_batch
    from unsupseg.models.checkpoint import load_checkpoint

    write_msrc_bands(tmp_path / "msrc")
    dataset = open_dataset("msrc", tmp_path / "msrc", "all", image_size="native")
    loaded = load_checkpoint(checkpoint, "cpu")
    result = _evaluate("msrc", tmp_path / "msrc", tmp_path / "out", checkpoint=checkpoint)
    renumbered = []
    for index, row in enumerate(_rows(tmp_path / "out")):
        (predicted,) = predict_batch(loaded, [dataset.image(index)])
        channels = channel_labels(predicted)
        renumbered.append(not np.array_equal(channels, predicted.labels))
        expected = evaluation.score_class_map(channels, dataset.ground_truth(index), 23)
        assert row["confusion"] == expected["confusion"]
        assert float(row["best_iou_sum"]) == expected["best_iou_sum"]
    assert result.summary["n_images"] == 3
    assert any(renumbered)  # channel ids are not the consecutive labels here


def test_checkpoint_that_does_not_load(tmp_path, capsys):
    hand_bsds(tmp_path / "bsds")
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        _evaluate("bsds500", tmp_path / "bsds", tmp_path / "o", checkpoint=tmp_path / "model.pt")
    with pytest.raises(CheckpointError):
        _evaluate("bsds500", tmp_path / "bsds", tmp_path / "o", checkpoint=tmp_path / "none.pt")
    argv = ("--dataset", "bsds500", "--data-root", tmp_path / "bsds", "--out", tmp_path / "o")
    assert _cli(*argv, "--checkpoint", tmp_path / "none.pt") == 2
    assert "none.pt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "method"),
    [("per-image", "kanezaki2018"), ("kanezaki2018", "kanezaki2018"),
     ("dynaseg-scf", "dynaseg-scf")],
)  # fmt: skip
def test_per_image_rows_are_segment_scored(tmp_path, one_thread, name, method):
    from unsupseg.evaluation.predictors import PER_IMAGE_METHODS
    from unsupseg.per_image import METHODS, segment

    assert set(PER_IMAGE_METHODS.values()) == set(METHODS)
    truths = hand_bsds(tmp_path / "bsds")
    dataset = open_dataset("bsds500", tmp_path / "bsds", "val", image_size="native")
    expected = {}
    for index in range(len(dataset)):
        prediction = segment(
            dataset.image(index), method, max_side=16, max_iter=3, seed=0, device="cpu"
        )
        assert prediction.shape == (H, W)
        expected[dataset.image_id(index)] = _bsds_row(prediction, truths[dataset.image_id(index)])
    result = _evaluate(
        "bsds500", tmp_path / "bsds", tmp_path / "out", method=name, max_iter=3,
        max_side=16, device="cpu",
    )  # fmt: skip
    assert not result.failures
    _assert_rows(tmp_path / "out", expected)
    settings = json.loads((tmp_path / "out" / "evaluate.json").read_text())
    assert (settings["max_iter"], settings["max_side"], settings["seed"]) == (3, 16, 0)
    assert "fine_iter" not in settings  # stored only when used: older folders resume
    assert settings == result.settings


def test_per_image_coarse_to_fine_rows(tmp_path, one_thread):
    from unsupseg.per_image import segment

    truths = hand_bsds(tmp_path / "bsds")
    dataset = open_dataset("bsds500", tmp_path / "bsds", "val", image_size="native")
    expected = {}
    for index in range(len(dataset)):
        prediction = segment(
            dataset.image(index), max_side=16, fine_iter=2, max_iter=3, seed=0, device="cpu"
        )
        expected[dataset.image_id(index)] = _bsds_row(prediction, truths[dataset.image_id(index)])
    options = dict(method="per-image", max_iter=3, max_side=16, device="cpu")
    result = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", fine_iter=2, **options)
    _assert_rows(tmp_path / "out", expected)
    assert result.settings["fine_iter"] == 2
    # a folder scored without fine_iter is not resumed with it, nor the other way round
    with pytest.raises(ConfigError, match="fine_iter"):
        _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", **options)
    with pytest.raises(ConfigError, match="fine_iter must be >= 0"):
        _evaluate("bsds500", tmp_path / "bsds", tmp_path / "o2", fine_iter=-1, **options)
    with pytest.raises(ConfigError, match="layout must be one of"):
        _evaluate("bsds500", tmp_path / "bsds", tmp_path / "o3", layout="nhwc", **options)
    assert not (tmp_path / "o3").exists()  # refused before anything is written
    # the layout changes rounding only: not a setting, so a folder resumes across it
    resumed = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", fine_iter=2,
                        layout="contiguous", **options)  # fmt: skip
    assert "layout" not in resumed.settings and len(resumed.rows) == len(expected)


# --------------------------------------------------------------------------------------
# Real data


def test_real_bsds500_blank(bsds500, tmp_path):
    summary = _evaluate("bsds500", bsds500, tmp_path / "out", method="blank", limit=3).summary
    assert summary["n_images"] == 3
    assert summary["mean_segments"] == 1
    assert 0 < summary["miou_coarse"] <= 1
    assert summary["miou_fine"] <= summary["miou_all"] <= summary["miou_coarse"]


def test_nan_or_fractional_predictions_are_refused_per_image(tmp_path):
    truths = one_annotator_bsds(tmp_path / "bsds")
    pred = tmp_path / "pred"
    _save_perfect(pred, truths)
    nan = truths["2002"][0].astype(np.float64)
    nan[0, 0] = np.nan
    np.save(pred / "2002.npy", nan)
    np.save(pred / "2003.npy", truths["2003"][0] + 0.5)
    result = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", predictions=pred)
    errors = dict(result.failures)
    assert set(errors) == {"2002", "2003"}
    assert "1 NaN or infinite value" in errors["2002"]
    assert "fractional" in errors["2003"]
    assert result.summary["n_images"] == 1
    # whole-number floats and compact unsigned maps are label maps like any other
    np.save(pred / "2002.npy", truths["2002"][0].astype(np.float32) - 1)
    np.save(pred / "2003.npy", truths["2003"][0].astype(np.uint8))
    again = _evaluate("bsds500", tmp_path / "bsds", tmp_path / "out", predictions=pred)
    assert not again.failures and again.summary["covering"] == pytest.approx(1.0)


def test_unwritable_json_or_out_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    truths = one_annotator_bsds(tmp_path / "bsds")
    _save_perfect(tmp_path / "pred", truths)

    def never(*args, **kwargs):
        raise AssertionError("scored although the outputs cannot be written")

    monkeypatch.setattr("unsupseg.cli.evaluate.evaluate_dataset", never)
    (tmp_path / "file").write_text("x")
    common = ["--dataset", "bsds500", "--data-root", tmp_path / "bsds", "--predictions",
              tmp_path / "pred"]  # fmt: skip
    for extra, message in (
        (["--json", "/proc/unsupseg-summary.json"], "is not writable"),
        (["--json", tmp_path], "is a folder"),
        (["--json", tmp_path / "file" / "s.json"], "is a file, not a folder"),
    ):
        assert _cli(*common, "--out", tmp_path / "out", *extra) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.undo()
    assert _cli(*common, "--out", tmp_path / "file") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert _cli(*common, "--out", "/proc/unsupseg-evaluation") == 2
    assert "is not writable" in capsys.readouterr().err
