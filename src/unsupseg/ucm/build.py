"""Building a :class:`~unsupseg.regions.Hierarchy` from a photo: cues, leaves,
merging and height calibration, every knob in one :class:`HierarchyConfig`.

1. **cues**: :func:`unsupseg.ucm.cues.boundary_strength` (colour and texture
   gradients, optionally on a downsampled copy);
2. **leaves**: a watershed of the strength, smoothed by ``leaf_sigma``, from its
   regional minima (or its ``leaf_h``-minima, which gives fewer, cleaner leaves);
3. **merging**: greedy, weakest first. With ``colour_weight = size_ref = 0`` this is
   :func:`unsupseg.regions.greedy_merge` by the mean boundary strength, which
   optionally adds the distance of the two regions' mean CIELAB colours and
   lets small regions merge sooner;
4. **calibration**: heights ``h`` become ``h ** height_gamma`` (monotone, so the tree is
   unchanged) so that a uniform grid of thresholds in [0, 1] covers the useful range.

The defaults are the best configuration found by ``tools/hierarchy_search.py`` on
BSDS500 train (checked on val).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.morphology import h_minima
from skimage.segmentation import watershed

from unsupseg.regions import Hierarchy, connected_leaves, greedy_merge
from unsupseg.ucm.cues import boundary_strength

__all__ = [
    "config_strength",
    "HierarchyConfig",
    "build_hierarchy",
    "compute_leaves",
    "hierarchy_from_strength",
]


@dataclass(frozen=True)
class HierarchyConfig:
    """Every setting of :func:`build_hierarchy`.

    Attributes
    ----------
    colour_sigmas, texture_sigmas : tuple of float
        Gradient scales (pixels of the image the cues are computed on).
    lab_weights : tuple of 3 float
        Weights of the L, a, b channels in the colour gradient.
    texture_weight : float
        Texture cue's weight against colour's (0 = no texture).
    n_textons : int
    cue_scale : float
        The cues are computed on the photo resized by this factor.
    seed : int
        The texton k-means seed (and the eigensolver's start vector).
    spectral_weight, spectral_scale, spectral_vectors, spectral_radius, spectral_rho
        The globalised (sPb) cue: see :func:`unsupseg.ucm.cues.boundary_strength`.
    leaf_sigma : float
        Gaussian smoothing of the strength before the watershed (pixels; 0 = none).
    leaf_h : float
        Depth of the minima that seed the watershed (0 = every regional minimum).
    colour_weight : float
        Weight of the regions' mean-colour distance in the merge cost.
    merge_lab_weights : tuple of 3 float
        Weights of L, a, b (each divided by 100) in that colour distance.
    size_ref : float
        Regions smaller than this fraction of the image merge sooner (0 = off).
    height_gamma : float
        Heights are raised to this power.
    """

    colour_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0)
    lab_weights: tuple[float, float, float] = (0.3, 1.0, 1.0)
    texture_sigmas: tuple[float, ...] = (4.0, 8.0)
    texture_weight: float = 0.0
    n_textons: int = 32
    cue_scale: float = 0.5
    seed: int = 0
    spectral_weight: float = 0.0
    spectral_scale: float = 0.25
    spectral_vectors: int = 8
    spectral_radius: int = 3
    spectral_rho: float = 0.1
    leaf_sigma: float = 0.0
    leaf_h: float = 0.08
    colour_weight: float = 1.0
    merge_lab_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size_ref: float = 0.004
    height_gamma: float = 1.0


def compute_leaves(strength: np.ndarray, sigma: float = 0.0, h: float = 0.0) -> np.ndarray:
    """Watershed regions of a boundary map, from its regional (or ``h``-) minima.

    Parameters
    ----------
    strength : ndarray of float, shape (H, W)
    sigma : float
        Gaussian smoothing before the watershed.
    h : float
        Minimum depth of the seeding minima (0: all regional minima).

    Returns
    -------
    leaves : ndarray of int64, shape (H, W)
        Consecutive ids from 0, each 4-connected.
    """
    smooth = ndimage.gaussian_filter(strength, sigma) if sigma > 0 else strength
    if h > 0:
        markers, _ = ndimage.label(h_minima(smooth, h))
        labels = watershed(smooth, markers)
    else:
        labels = watershed(smooth)
    return connected_leaves(labels)


def config_strength(image: np.ndarray, config: HierarchyConfig = HierarchyConfig()) -> np.ndarray:
    """Step 1 of :func:`build_hierarchy`: the boundary strength with ``config``'s cues."""
    return boundary_strength(
        image,
        colour_sigmas=config.colour_sigmas,
        texture_sigmas=config.texture_sigmas,
        texture_weight=config.texture_weight,
        n_textons=config.n_textons,
        seed=config.seed,
        lab_weights=config.lab_weights,
        scale=config.cue_scale,
        spectral_weight=config.spectral_weight,
        spectral_scale=config.spectral_scale,
        spectral_vectors=config.spectral_vectors,
        spectral_radius=config.spectral_radius,
        spectral_rho=config.spectral_rho,
    )


def build_hierarchy(image: np.ndarray, config: HierarchyConfig = HierarchyConfig()) -> Hierarchy:
    """Cues, leaves, merging and calibration of one RGB photo.

    Parameters
    ----------
    image : ndarray of float, shape (H, W, 3)
        RGB in [0, 1].
    config : HierarchyConfig

    Returns
    -------
    Hierarchy
        Heights in [0, 1], non-decreasing.
    """
    image = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    strength = config_strength(image, config)
    return hierarchy_from_strength(image, strength, config)


def hierarchy_from_strength(
    image: np.ndarray, strength: np.ndarray, config: HierarchyConfig = HierarchyConfig()
) -> Hierarchy:
    """Steps 2-4 of :func:`build_hierarchy` (leaves, merging, calibration) from a
    boundary map computed with ``config``'s cue settings."""
    leaves = compute_leaves(strength, config.leaf_sigma, config.leaf_h)
    if leaves.max() == 0:
        merges = np.zeros((0, 2), dtype=np.int64)
        return Hierarchy(leaves, merges, np.zeros(0), np.zeros(leaves.shape))
    colours = None
    if config.colour_weight:
        colours = rgb2lab(image) * (np.asarray(config.merge_lab_weights) / 100.0)
    out = greedy_merge(leaves, strength, colours, config.colour_weight, config.size_ref)
    merges, heights, first, pair_edge, edge_height = out
    calibrate = lambda h: np.clip(h, 0.0, 1.0) ** config.height_gamma  # noqa: E731
    heights = np.maximum.accumulate(calibrate(heights)) if heights.size else heights
    ucm = np.zeros(leaves.size, dtype=np.float64)
    np.maximum.at(ucm, first, calibrate(edge_height)[pair_edge])
    return Hierarchy(leaves, merges, heights, ucm.reshape(leaves.shape))
