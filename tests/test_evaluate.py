"""``unsupseg evaluate`` and the baselines on tiny data sets in the real on-disk formats."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from test_data import _bsds_struct_cells

from unsupseg import evaluate
from unsupseg.baselines import BASELINES
from unsupseg.cli import _number as number
from unsupseg.evaluate import add_evaluate_parser, run_evaluate

RNG = np.random.default_rng(7)
H, W = 20, 30


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_evaluate_parser(sub, number)
    args = parser.parse_args(["evaluate", *argv, "--quiet"])
    assert args.run is run_evaluate
    return run_evaluate(args)


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
        cells = {"groundTruth": _bsds_struct_cells(segs)}
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


def write_msrc(root: Path) -> dict[str, np.ndarray]:
    maps = {}
    for image_id, classes in (("1_1_s", [1, 3, 255]), ("2_1_s", [0, 3]), ("3_1_s", [255, 5, 1])):
        bands = np.array_split(np.arange(W), len(classes))
        class_map = np.zeros((H, W), np.uint8)
        for band, value in zip(bands, classes, strict=True):
            class_map[:, band] = value
        maps[image_id] = class_map
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        image = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{image_id}.png")
        label = Image.fromarray(class_map, mode="P")
        palette = np.zeros((256, 3), np.uint8)
        palette[:30] = RNG.integers(0, 256, (30, 3))
        label.putpalette(palette.ravel().tolist())
        label.save(root / "labels" / f"{image_id}.png")
    return maps


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
    out, summary_path = tmp_path / "out", tmp_path / "summary.json"
    assert (
        _run(
            "--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"), "--method", "blank",
            "--out", str(out), "--json", str(summary_path),
        )
        == 0
    )  # fmt: skip
    summary = json.loads(summary_path.read_text())
    for key in (
        "n_images", "miou_all", "miou_fine", "miou_coarse", "covering", "pri", "vi",
        "boundary_ods", "boundary_ois", "mean_segments",
    ):  # fmt: skip
        assert key in summary
    assert summary["n_images"] == 2
    # Image 1: halves (IoU 0.5, 0.5) and whole (1); image 2: quadrants (0.25 x 4).
    assert summary["miou_all"] == pytest.approx(3 / 7)
    assert summary["miou_fine"] == pytest.approx((0.5 + 0.5 + 1.0) / 6)
    assert summary["miou_coarse"] == pytest.approx((1.0 + 1.0) / 5)
    assert summary["covering"] == pytest.approx((300 + 600 + 150) / 1800)
    assert summary["mean_segments"] == 1
    assert summary["boundary_ods"] == 0
    assert [row["id"] for row in _rows(out)] == ["1001", "1002"]


def _save_perfect(folder: Path, truths: dict[str, list[np.ndarray]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, segs in truths.items():
        np.save(folder / f"{image_id}.npy", segs[0].astype(np.int64) - 1)


def test_perfect_predictions_score_perfectly(tmp_path):
    truths = one_annotator_bsds(tmp_path / "bsds")
    _save_perfect(tmp_path / "pred", truths)
    summary_path = tmp_path / "s.json"
    code = _run(
        "--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"),
        "--predictions", str(tmp_path / "pred"), "--out", str(tmp_path / "out"),
        "--json", str(summary_path),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    assert summary["n_images"] == 3
    assert summary["covering"] == pytest.approx(1.0)
    assert summary["vi"] == pytest.approx(0.0, abs=1e-9)
    assert summary["pri"] == pytest.approx(1.0)
    assert summary["miou_all"] == pytest.approx(1.0)
    assert summary["boundary_ods"] == pytest.approx(1.0)


def test_prediction_layouts(tmp_path):
    truths = one_annotator_bsds(tmp_path / "bsds")
    pred = tmp_path / "pred"
    (pred / "2002").mkdir(parents=True)
    (pred / "2003").mkdir(parents=True)
    from unsupseg.io import save_label_png

    save_label_png(pred / "2001.png", truths["2001"][0])
    np.save(pred / "2002" / "labels.npy", truths["2002"][0])
    save_label_png(pred / "2003" / "labels.png", truths["2003"][0])
    summary_path = tmp_path / "s.json"
    code = _run(
        "--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"),
        "--predictions", str(pred), "--out", str(tmp_path / "out"), "--json", str(summary_path),
    )  # fmt: skip
    assert code == 0
    assert json.loads(summary_path.read_text())["covering"] == pytest.approx(1.0)


def test_missing_and_mismatched_predictions_are_reported(tmp_path, caplog):
    truths = one_annotator_bsds(tmp_path / "bsds")
    pred = tmp_path / "pred"
    _save_perfect(pred, truths)
    (pred / "2002.npy").unlink()
    np.save(pred / "2003.npy", np.zeros((H + 1, W), np.int64))
    out, summary_path = tmp_path / "out", tmp_path / "s.json"
    argv = (
        "--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"),
        "--predictions", str(pred), "--out", str(out), "--json", str(summary_path),
    )  # fmt: skip
    assert _run(*argv) == 1
    summary = json.loads(summary_path.read_text())
    assert summary["n_images"] == 1
    assert summary["n_failed"] == 2
    assert summary["covering"] == pytest.approx(1.0)
    assert {item["id"] for item in summary["failed"]} == {"2002", "2003"}
    errors = {row["id"]: row["error"] for row in _rows(out)}
    assert errors["2001"] == ""
    assert "no prediction for 2002" in errors["2002"]
    assert "size" in errors["2003"]
    assert "2 image(s) failed" in caplog.text
    # Fix one: the failed images are retried, the good one is kept, each id once.
    _save_perfect(pred, {"2002": truths["2002"]})
    assert _run(*argv) == 1
    rows = _rows(out)
    assert sorted(row["id"] for row in rows) == ["2001", "2002", "2003"]
    assert json.loads(summary_path.read_text())["n_images"] == 2


def test_resumable(tmp_path, monkeypatch):
    hand_bsds(tmp_path / "bsds")
    calls = []

    def counting_blank(image):
        calls.append(image.shape)
        return np.zeros(image.shape[:2], np.int64)

    monkeypatch.setitem(evaluate.BASELINES, "blank", counting_blank)
    out = tmp_path / "out"
    argv = ("--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"), "--method", "blank")
    assert _run(*argv, "--out", str(out), "--limit", "1") == 0
    assert len(calls) == 1
    first = _rows(out)
    assert [row["id"] for row in first] == ["1001"]
    assert _run(*argv, "--out", str(out), "--json", str(tmp_path / "s.json")) == 0
    assert len(calls) == 2  # only the second image was computed
    rows = _rows(out)
    assert [row["id"] for row in rows] == ["1001", "1002"]
    assert rows[0] == first[0]
    assert json.loads((tmp_path / "s.json").read_text())["miou_all"] == pytest.approx(3 / 7)
    # Nothing left: a third run computes nothing and gives the same summary.
    assert _run(*argv, "--out", str(out)) == 0
    assert len(calls) == 2
    # A row cut short by a killed run is dropped and its image scored again.
    text = (out / "per_image.csv").read_text().splitlines()
    (out / "per_image.csv").write_text("\n".join(text[:-1]) + "\n" + text[-1][:12])
    assert _run(*argv, "--out", str(out)) == 0
    assert len(calls) == 3

    def strip(table):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in table]

    assert strip(_rows(out)) == strip(rows)


def test_other_settings_in_out_are_refused(tmp_path, caplog):
    hand_bsds(tmp_path / "bsds")
    argv = ("--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"), "--out")
    assert _run(*argv, str(tmp_path / "out"), "--method", "blank") == 0
    assert _run(*argv, str(tmp_path / "out"), "--method", "kmeans") == 2
    assert "other settings (method" in caplog.text


def test_missing_dataset_is_bad_usage(tmp_path, caplog):
    code = _run("--dataset", "bsds500", "--data-root", str(tmp_path / "none"), "--method", "blank")
    assert code == 2
    assert "BSDS500" in caplog.text or "bsds" in caplog.text.lower()


def test_workers_match_one_process(tmp_path):
    hand_bsds(tmp_path / "bsds")
    results = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        code = _run(
            "--dataset", "bsds500", "--data-root", str(tmp_path / "bsds"),
            "--method", "felzenszwalb", "--workers", workers, "--out", str(out),
        )  # fmt: skip
        assert code == 0
        results.append([{k: v for k, v in row.items() if k != "seconds"} for row in _rows(out)])
    assert results[0] == results[1]


# --------------------------------------------------------------------------------------
# MSRC-v2


def test_msrc_perfect_prediction_hungarian(tmp_path):
    maps = write_msrc(tmp_path / "msrc")
    pred = tmp_path / "pred"
    pred.mkdir()
    for image_id, class_map in maps.items():
        prediction = class_map.astype(np.int64)
        prediction[class_map == 255] = 30  # void: any id, ignored
        np.save(pred / f"{image_id}.npy", prediction)
    summary_path = tmp_path / "s.json"
    code = _run(
        "--dataset", "msrc", "--data-root", str(tmp_path / "msrc"),
        "--predictions", str(pred), "--out", str(tmp_path / "out"), "--json", str(summary_path),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    for key in ("n_images", "miou_per_image", "miou_hungarian", "pixel_accuracy", "mean_segments"):
        assert key in summary
    assert summary["n_images"] == 3
    assert summary["miou_hungarian"] == pytest.approx(1.0)
    assert summary["pixel_accuracy"] == pytest.approx(1.0)
    assert summary["miou_per_image"] == pytest.approx(1.0)


def test_msrc_blank(tmp_path):
    write_msrc(tmp_path / "msrc")
    summary_path = tmp_path / "s.json"
    code = _run(
        "--dataset", "msrc", "--data-root", str(tmp_path / "msrc"), "--method", "blank",
        "--out", str(tmp_path / "out"), "--json", str(summary_path),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    # One cluster matched to the largest class, 3 (10 + 15 of 70 labelled columns); the
    # other three classes present (0, 1, 5) score 0.
    assert summary["pixel_accuracy"] == pytest.approx(25 / 70)
    assert summary["miou_hungarian"] == pytest.approx((25 / 70) / 4)


# --------------------------------------------------------------------------------------
# Real data


def test_real_bsds500_blank(bsds500, tmp_path):
    summary_path = tmp_path / "s.json"
    code = _run(
        "--dataset", "bsds500", "--data-root", str(bsds500), "--method", "blank",
        "--limit", "3", "--out", str(tmp_path / "out"), "--json", str(summary_path),
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_path.read_text())
    assert summary["n_images"] == 3
    assert summary["mean_segments"] == 1
    assert 0 < summary["miou_coarse"] <= 1
    assert summary["miou_fine"] <= summary["miou_all"] <= summary["miou_coarse"]
