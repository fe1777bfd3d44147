"""Shared fixtures: the real data beside the repository, small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
