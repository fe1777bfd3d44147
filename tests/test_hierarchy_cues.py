"""Boundary cues and the configured hierarchy builder (synthetic images only)."""

from __future__ import annotations

import numpy as np
import pytest

from unsupseg.metrics import segmentation_covering
from unsupseg.regions import greedy_merge
from unsupseg.ucm.build import HierarchyConfig, build_hierarchy, compute_leaves
from unsupseg.ucm.cues import boundary_strength, spectral_strength


def _step(h=40, w=60):
    image = np.zeros((h, w, 3))
    image[:, : w // 2] = (0.9, 0.2, 0.1)
    image[:, w // 2 :] = (0.1, 0.3, 0.8)
    return image


def _textures(h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    left = 0.5 + 0.4 * np.sign(np.sin(x * np.pi / 2))  # thin vertical stripes
    right = 0.5 + 0.4 * np.sign(np.sin(y * np.pi / 6))  # wide horizontal stripes
    grey = np.where(x < w // 2, left, right) + 0.01 * rng.standard_normal((h, w))
    return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2)


def _rectangles():
    image = np.zeros((48, 72, 3))
    image[:, :24] = (0.8, 0.1, 0.1)
    image[:, 24:48] = (0.1, 0.7, 0.2)
    image[:, 48:] = (0.2, 0.2, 0.9)
    image[:24, :24] = (0.8, 0.1, 0.1)
    truth = np.repeat(np.repeat([[0, 1, 2]], 48, axis=0), 24, axis=1)
    return image, truth


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_strength_peaks_on_a_colour_step(scale):
    s = boundary_strength(_step(), texture_weight=0.0, scale=scale)
    assert s.shape == (40, 60)
    assert s.min() >= 0.0 and s.max() <= 1.0
    column = s.mean(axis=0)
    assert abs(int(column.argmax()) - 30) <= 1
    assert column[29:31].max() > 5 * column[:10].mean() + 1e-6


def test_texture_cue_peaks_on_a_texture_boundary():
    s = boundary_strength(
        _textures(), colour_sigmas=(1.0,), texture_weight=1.0, n_textons=8, texture_sigmas=(4.0,)
    )
    column = s[8:-8].mean(axis=0)
    inner = column[10:-10]
    assert abs(int(np.argmax(inner)) + 10 - 48) <= 4


def test_spectral_strength_in_unit_range_and_on_the_edge():
    local = boundary_strength(_step(), texture_weight=0.0)
    spb = spectral_strength(local[::2, ::2], n_vectors=3, radius=2)
    assert spb.min() >= 0.0 and spb.max() <= 1.0
    assert abs(int(spb.mean(axis=0).argmax()) - 15) <= 1


@pytest.mark.parametrize(
    "config",
    [
        HierarchyConfig(),
        HierarchyConfig(colour_weight=0.0, size_ref=0.0, leaf_h=0.0, cue_scale=1.0),
        HierarchyConfig(size_ref=0.01, texture_weight=0.5, n_textons=8),
    ],
)
def test_three_rectangles_recovered(config):
    image, truth = _rectangles()
    h = build_hierarchy(image, config)
    assert h.n_leaves >= 3
    assert segmentation_covering(h.cut_to(3), [truth]) > 0.95
    assert np.all(np.diff(h.heights) >= 0)
    assert h.heights.min() >= 0.0 and h.heights.max() <= 1.0
    assert h.ucm.min() >= 0.0 and h.ucm.max() <= 1.0


def test_build_is_deterministic():
    rng = np.random.default_rng(3)
    image = np.clip(_rectangles()[0] + 0.05 * rng.standard_normal((48, 72, 3)), 0, 1)
    config = HierarchyConfig(texture_weight=0.5, n_textons=8, spectral_weight=0.2)
    a, b = build_hierarchy(image, config), build_hierarchy(image, config)
    np.testing.assert_array_equal(a.leaves, b.leaves)
    np.testing.assert_array_equal(a.merges, b.merges)
    np.testing.assert_array_equal(a.heights, b.heights)


def test_colour_term_off_is_the_mean_boundary_merge():
    rng = np.random.default_rng(0)
    strength = ndimage_smooth(rng.random((30, 40)))
    leaves = compute_leaves(strength)
    colours = rng.random((30, 40, 3))
    with_colours = greedy_merge(leaves, strength, colours, 0.0, 0.0)
    plain = greedy_merge(leaves, strength)
    np.testing.assert_array_equal(with_colours[0], plain[0])
    np.testing.assert_allclose(with_colours[1], plain[1], atol=1e-12)


def test_colour_weight_merges_similar_colours_first():
    # two boundaries of equal strength: the one between similar colours must go first
    strength = np.zeros((10, 30))
    strength[:, 9:11] = 0.5
    strength[:, 19:21] = 0.5
    leaves = np.repeat([[0] * 10 + [1] * 10 + [2] * 10], 10, axis=0)
    colours = np.zeros((10, 30, 3))
    colours[:, 10:20] = 0.1
    colours[:, 20:] = 1.0
    merges, heights, *_ = greedy_merge(leaves, strength, colours, colour_weight=1.0)
    assert sorted(merges[0].tolist()) == [0, 1]
    assert heights[1] > heights[0]


def ndimage_smooth(a):
    from scipy import ndimage

    return ndimage.gaussian_filter(a, 2.0)
