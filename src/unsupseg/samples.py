"""The sample photos shipped with scikit-image: the default input of a first run."""

from __future__ import annotations

import numpy as np
from skimage import data

#: Names of ``skimage.data`` photos segmented when no input is given.
SAMPLE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def sample_image(name: str) -> np.ndarray:
    """Return one of :data:`SAMPLE_NAMES` as an RGB uint8 array."""
    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample {name!r}; choose from {', '.join(SAMPLE_NAMES)}")
    return getattr(data, name)()
