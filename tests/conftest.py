"""Shared fixtures and writers: the real data beside the repository, small synthetic
images and files in the real formats, the logger and thread settings of a test."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: Real data (BSDS500, MSRC-v2, CIFAR-10 partial) beside the clone, as on CI.
SHARED_DATA = Path(os.environ.get("UNSUPSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data; tests using it are skipped, with the reason, without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def bsds500(shared_data: Path) -> Path:
    root = shared_data / "bsds500"
    if not (root / "images" / "val").is_dir():
        pytest.skip(f"BSDS500 is absent from {root}")
    return root


@pytest.fixture
def blocks_image() -> np.ndarray:
    """A 24x32 RGB uint8 image of three flat colour blocks with a little noise."""
    rng = np.random.default_rng(0)
    image = np.zeros((24, 32, 3), dtype=np.float64)
    image[:, :12] = (200, 30, 30)
    image[:, 12:22] = (30, 180, 40)
    image[:, 22:] = (20, 40, 210)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _keep_unsupseg_logger():
    """Restore the ``unsupseg`` logger after each test: ``cli.main`` points it at stderr
    and stops it from propagating, which would hide later tests' records from caplog."""
    logger = logging.getLogger("unsupseg")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    yield
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


@pytest.fixture
def unsupseg_log(caplog) -> pytest.LogCaptureFixture:
    """The records of the ``unsupseg`` logger, caught on the logger itself (the CLI stops
    it from propagating to the root logger, where caplog listens)."""
    logger = logging.getLogger("unsupseg")
    logger.propagate = False  # restored by _keep_unsupseg_logger
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="unsupseg")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def one_thread():
    """One intra-op torch thread: the test machines are small and shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def band_image(rng: np.random.Generator, height: int = 32, width: int = 32) -> np.ndarray:
    """Three vertical colour bands and a brighter lower part, with noise (uint8 RGB)."""
    image = np.zeros((height, width, 3))
    colours = rng.integers(0, 256, (3, 3))
    for band, colour in zip(np.array_split(np.arange(width), 3), colours, strict=True):
        image[:, band] = colour
    image[rng.integers(height // 4, 3 * height // 4) :] += 40
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def palette_png(path: Path, classes: np.ndarray) -> None:
    """Write a class map as a VOC-style palette PNG (void 255 in VOC's cream colour)."""
    img = Image.fromarray(classes.astype(np.uint8), mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[:30] = np.random.default_rng(1234).integers(0, 256, (30, 3))
    palette[255] = (224, 224, 192)
    img.putpalette(palette.ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def bsds_struct_cells(segmentations: list[np.ndarray]) -> np.ndarray:
    """The ``groundTruth`` cell array of a BSDS500 ``.mat`` file: one struct with
    ``Segmentation`` (uint16 from 1) and ``Boundaries`` per annotator."""
    cells = np.empty((1, len(segmentations)), dtype=object)
    for k, seg in enumerate(segmentations):
        boundaries = np.zeros(seg.shape, np.uint8)
        boundaries[:, 1:] |= (seg[:, 1:] != seg[:, :-1]).astype(np.uint8)
        cells[0, k] = {"Segmentation": seg.astype(np.uint16), "Boundaries": boundaries}
    return cells


def check_outputs_agree(folder: Path) -> tuple[np.ndarray, dict]:
    """Every per-image output file of ``segment``/``predict`` exists and agrees with
    ``labels.npy``; returns the labels and the summary."""
    from unsupseg.io import read_label_png
    from unsupseg.outputs import OUTPUT_FILES
    from unsupseg.viz import colorize

    labels = np.load(folder / "labels.npy")
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_FILES)
    np.testing.assert_array_equal(read_label_png(folder / "labels.png"), labels)
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "color.png")), colorize(labels))
    overlay = np.asarray(Image.open(folder / "overlay.png"))
    assert overlay.shape == (*labels.shape, 3)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_labels"] == len(np.unique(labels))
    assert (summary["height"], summary["width"]) == labels.shape
    assert {"torch", "unsupseg", "scikit-image"} <= set(summary["versions"])
    assert Image.open(folder / "panel.png").size[0] > 3 * 100
    return labels, summary


def write_msrc_bands(root: Path, height: int = 20, width: int = 30) -> dict[str, np.ndarray]:
    """A three-photo MSRC-v2 folder (``images/<id>.png``, ``labels/<id>.png`` palette
    PNGs) whose class maps are vertical bands, void 255 among them; returns the maps."""
    rng = np.random.default_rng(7)
    maps = {}
    for image_id, classes in (("1_1_s", [1, 3, 255]), ("2_1_s", [0, 3]), ("3_1_s", [255, 5, 1])):
        class_map = np.zeros((height, width), np.uint8)
        for band, value in zip(np.array_split(np.arange(width), len(classes)), classes,
                               strict=True):  # fmt: skip
            class_map[:, band] = value
        maps[image_id] = class_map
        (root / "images").mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{image_id}.png")
        palette_png(root / "labels" / f"{image_id}.png", class_map)
    return maps
