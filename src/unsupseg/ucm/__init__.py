"""Hierarchical segmentation: nested regions from an ultrametric contour map (UCM).

:func:`hierarchy` computes label-free boundary cues of a photo
(:mod:`~unsupseg.ucm.cues`), floods them into fine regions and merges those
greedily into a :class:`Hierarchy` (:mod:`~unsupseg.regions`);
:mod:`~unsupseg.ucm.levels` chooses a level: the threshold chosen once on BSDS500
val (:data:`DATASET_THRESHOLD`), or one per image without ground truth (``auto``).

:data:`THRESHOLDS` is the fixed grid at which ``hierarchy.npy`` stacks the cuts, the same
for every image, finest first.
"""

from __future__ import annotations

import numpy as np

from unsupseg.regions import Hierarchy
from unsupseg.ucm.build import HierarchyConfig, build_hierarchy

__all__ = [
    "DATASET_THRESHOLD",
    "THRESHOLDS",
    "Hierarchy",
    "HierarchyConfig",
    "build_hierarchy",
    "hierarchy",
]

#: The grid of ``hierarchy.npy``: 1/32, 2/32, ..., 31/32 (T = 31), finest first.
#: Heights lie in [0, 1], so the cut at 0 is the leaves and the cut at 1 one region;
#: neither is on the grid.
THRESHOLDS: tuple[float, ...] = tuple(k / 32 for k in range(1, 32))

#: The threshold of ``--level dataset``: the grid threshold of the best covering (ODS)
#: on BSDS500 val (22/32), measured with ``unsupseg evaluate --dataset bsds500 --method
#: hierarchy`` (see the README's "Hierarchical segmentation").
DATASET_THRESHOLD: float = 0.6875


def hierarchy(image: np.ndarray, config: HierarchyConfig | None = None) -> Hierarchy:
    """The hierarchical segmentation of an RGB photo, with no labels and no weights.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB, float in [0, 1] or uint8 (as :func:`unsupseg.io.read_image` gives it).
    config : HierarchyConfig, optional
        The cues' and merging's settings; the defaults are those tuned on BSDS500 train
        and val.

    Returns
    -------
    Hierarchy
        ``h.cut(t)``, ``h.cut_to(k)``, ``h.ucm``, ``h.merges``, ``h.heights``.

    Examples
    --------
    >>> import unsupseg
    >>> from unsupseg.samples import sample_image
    >>> h = unsupseg.hierarchy(sample_image("coffee"))  # doctest: +SKIP
    >>> h.cut_to(5).max() + 1  # doctest: +SKIP
    5
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3); got {image.shape}")
    if image.dtype == np.uint8:
        image = image.astype(np.float64) / 255.0
    else:
        image = np.asarray(image, dtype=np.float64)
        if not np.isfinite(image).all():
            raise ValueError("the image has NaN or infinite values")
        image = np.clip(image, 0.0, 1.0)
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image must be at least 2x2 pixels; got {image.shape[:2]}")
    return build_hierarchy(image, config if config is not None else HierarchyConfig())
