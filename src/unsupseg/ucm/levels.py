"""Choosing the level of a hierarchy without ground truth.

The seed asks for "a performance metric in a fully unsupervised way" to choose the merge
level per image. Each criterion here scores the cuts of one image at a fixed grid of
thresholds; ``choose_level`` takes the best. :data:`CRITERIA`:

``lifetime``
    How long a cut survives: the height range over which the hierarchy has exactly the
    cut's regions (the gap between the merge just below the threshold and the next one).
    A level that persists over a wide range of scales is a stable one (the classic
    choice for ultrametric maps).
``silhouette``, ``calinski_harabasz``, ``davies_bouldin``
    The internal clustering indices of :func:`unsupseg.metrics.internal_indices` on
    CIELAB colour and position (on a fixed sample of pixels); Davies-Bouldin is negated
    so that higher is better for every criterion.

Which criterion ``--level auto`` uses (:data:`AUTO_CRITERION`) was decided on BSDS500
val by comparing the ground-truth scores of the levels each criterion picks (see the
README).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from unsupseg.errors import ConfigError
from unsupseg.metrics import internal_indices
from unsupseg.regions import Hierarchy

__all__ = [
    "AUTO_CRITERION",
    "CRITERIA",
    "LEVELS",
    "choose_level",
    "level_criteria",
    "select_level",
]

CRITERIA = ("lifetime", "silhouette", "calinski_harabasz", "davies_bouldin")

#: The criterion of ``--level auto``. On BSDS500 val (100 photos) it gave covering 0.501,
#: PRI 0.707, VI 2.01; silhouette 0.498, 0.679, 1.94; Davies-Bouldin 0.486, 0.644,
#: 1.96; lifetime 0.452, 0.741, 2.64. None beats the threshold chosen once on val
#: (0.542, 0.756, 1.93).
AUTO_CRITERION = "calinski_harabasz"

#: Levels with fewer regions than this, or more than :data:`MAX_REGIONS`, are never
#: chosen by ``auto``: one region is no segmentation, and thousands are the leaves.
MIN_REGIONS = 2
MAX_REGIONS = 200


def _lifetimes(hierarchy: Hierarchy, thresholds: np.ndarray) -> np.ndarray:
    heights = hierarchy.heights
    done = np.searchsorted(heights, thresholds, side="right")  # merges made at t
    below = np.where(done > 0, heights[np.maximum(done - 1, 0)], 0.0)
    above = np.where(done < heights.size, heights[np.minimum(done, heights.size - 1)], 1.0)
    return above - below


def level_criteria(
    image: np.ndarray,
    stack: np.ndarray,
    thresholds: Sequence[float],
    hierarchy: Hierarchy | None = None,
    criteria: Sequence[str] = CRITERIA,
    n_samples: int = 1000,
) -> dict[str, np.ndarray]:
    """Score every level of a stack by the criteria, higher is better.

    Parameters
    ----------
    image : ndarray of float, shape (H, W, 3)
        RGB in [0, 1].
    stack : ndarray of int, shape (T, H, W)
        The cuts at ``thresholds``.
    thresholds : sequence of float
    hierarchy : Hierarchy, optional
        Needed for ``lifetime`` (NaN without it: a stack of flat segmentations has no
        heights).
    criteria : sequence of str
        Names from :data:`CRITERIA`.
    n_samples : int
        Pixels sampled for the internal indices.

    Returns
    -------
    scores : dict
        One float array of length T per criterion; NaN where a level cannot be scored
        (one region, for the internal indices) or is outside ``MIN_REGIONS ..
        MAX_REGIONS`` regions.
    """
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        raise ConfigError(f"unknown criteria {unknown}; choose from {', '.join(CRITERIA)}")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    stack = np.asarray(stack)
    counts = np.array([int(level.max()) + 1 for level in stack])
    usable = (counts >= MIN_REGIONS) & (counts <= MAX_REGIONS)
    scores: dict[str, np.ndarray] = {}
    if "lifetime" in criteria:
        scores["lifetime"] = (
            _lifetimes(hierarchy, thresholds)
            if hierarchy is not None
            else np.full(thresholds.size, math.nan)
        )
    internal = [name for name in criteria if name != "lifetime"]
    if internal:
        values = {name: np.full(thresholds.size, math.nan) for name in internal}
        for i, level in enumerate(stack):
            if not usable[i]:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                found = internal_indices(image, level, n_samples=n_samples)
            for name in internal:
                values[name][i] = found[name]
        if "davies_bouldin" in values:
            values["davies_bouldin"] = -values["davies_bouldin"]
        scores.update(values)
    for name in scores:
        scores[name] = np.where(usable, scores[name], math.nan)
    return scores


def choose_level(scores: np.ndarray) -> int:
    """The index of the best level (the finest among ties); the middle level when no
    level could be scored."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).any():
        return scores.size // 2
    return int(np.nanargmax(scores))


LEVELS = ("dataset", "auto")


def select_level(
    hierarchy: Hierarchy,
    image: np.ndarray,
    *,
    level: str | float = "dataset",
    segments: int | None = None,
    dataset_threshold: float | None = None,
    thresholds: Sequence[float] | None = None,
    criterion: str = AUTO_CRITERION,
) -> tuple[np.ndarray, dict]:
    """One flat segmentation of a hierarchy.

    Parameters
    ----------
    hierarchy : Hierarchy
    image : ndarray of float, shape (H, W, 3)
        RGB in [0, 1] (for the internal-index criteria of ``auto``).
    level : {'dataset', 'auto'} or float
        ``dataset``: cut at ``dataset_threshold``; ``auto``: the level of ``thresholds``
        that ``criterion`` scores best (:func:`level_criteria`); a number: that
        threshold.
    segments : int, optional
        Cut to exactly this many 4-connected regions instead (overrides ``level``).
    dataset_threshold : float, optional
        The threshold chosen once on a data set (default
        :data:`unsupseg.ucm.DATASET_THRESHOLD`).
    thresholds : sequence of float, optional
        The grid that ``auto`` chooses from (default :data:`unsupseg.ucm.THRESHOLDS`).
    criterion : str
        One of :data:`CRITERIA`.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
    info : dict
        ``level`` (what was asked), ``threshold`` (the cut's height), ``n_regions``.
    """
    if segments is not None:
        labels = hierarchy.cut_to(segments)
        threshold = hierarchy.threshold_for(segments)
        asked: str | float = f"segments={int(segments)}"
    elif isinstance(level, str):
        if level == "dataset":
            if dataset_threshold is None:
                from unsupseg.ucm import DATASET_THRESHOLD

                dataset_threshold = DATASET_THRESHOLD
            threshold = float(dataset_threshold)
        elif level == "auto":
            if thresholds is None:
                from unsupseg.ucm import THRESHOLDS as thresholds
            grid = np.asarray(thresholds, dtype=np.float64)
            stack = hierarchy.stack(grid)
            scores = level_criteria(image, stack, grid, hierarchy, [criterion])[criterion]
            threshold = float(grid[choose_level(scores)])
        else:
            raise ConfigError(
                f"level must be one of {', '.join(LEVELS)} or a number; got {level!r}"
            )
        labels = hierarchy.cut(threshold)
        asked = level
    else:
        threshold = float(level)
        if not math.isfinite(threshold):
            raise ConfigError(f"level must be a finite threshold; got {level}")
        labels = hierarchy.cut(threshold)
        asked = threshold
    return labels, {
        "level": asked,
        "threshold": float(threshold),
        "n_regions": int(labels.max()) + 1,
    }
