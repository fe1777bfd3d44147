"""Coarse to fine: a run downscaled by ``max_side`` gives its labels at the input's size
from the upsampled response (and, for kanezaki2018, SLIC at full size), not enlarged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unsupseg.io import resize_nearest
from unsupseg.per_image import segment, upsampled_argmax

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [(30, 41), (9, 13), (100, 17), (31, 200)])
def test_upsampled_argmax_is_interpolate_in_bands(size):
    torch.manual_seed(0)
    response = torch.randn(1, 7, 9, 13)
    expected = F.interpolate(response, size=size, mode="bilinear", align_corners=False)
    # a band of 3 rows at a time: the bands join without a seam
    got = upsampled_argmax(response, size, band_bytes=4 * 7 * size[1] * 3)
    assert torch.equal(got, expected.argmax(dim=1))


def test_superpixel_vote_runs_at_full_size(blocks_image):
    big = np.kron(blocks_image, np.ones((3, 3, 1), dtype=np.uint8))
    options = dict(q=12, max_iter=4, n_segments=60, max_side=24, seed=0, return_details=True)
    fine = segment(big, **options)
    assert fine.working_shape != big.shape[:2]
    assert fine.superpixels.shape == big.shape[:2]
    assert fine.params["upsample"] == "response"
    # every full-size superpixel holds one label: the vote ran on them
    pairs = np.unique(np.stack([fine.superpixels.ravel(), fine.labels.ravel()]), axis=1)
    assert pairs.shape[1] == np.unique(fine.superpixels).size
    coarse = segment(big, upsample="nearest", **options)
    assert coarse.params["upsample"] == "nearest"
    # nearest: the working labels, enlarged (an integer factor: 4)
    working = resize_nearest(coarse.labels, coarse.working_shape)
    assert np.array_equal(coarse.labels, resize_nearest(working, big.shape[:2]))
    assert not np.array_equal(
        fine.labels, resize_nearest(resize_nearest(fine.labels, fine.working_shape), big.shape[:2])
    )
    with pytest.raises(ValueError, match="upsample must be one of"):
        segment(big, upsample="cubic", max_iter=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_edges_follow_the_full_size_image(seed):
    """A diagonal edge, optimised at 16 pixels for a 96-pixel image: enlarged labels
    make a staircase of 6-pixel steps; the vote on full-size SLIC follows the edge."""
    rows, cols = np.mgrid[:96, :96]
    truth = rows > cols
    image = np.where(truth[..., None], [200, 40, 40], [30, 60, 190]).astype(np.uint8)
    options = dict(q=8, max_iter=200, min_labels=2, n_segments=100, max_side=16, seed=seed)
    errors = {}
    for upsample in ("nearest", "response"):
        labels = segment(image, upsample=upsample, **options)
        # impurity: the pixels of each label on the side of the edge where it has fewer
        inside = np.bincount(labels[truth], minlength=labels.max() + 1)
        outside = np.bincount(labels[~truth], minlength=labels.max() + 1)
        errors[upsample] = int(np.minimum(inside, outside).sum())
    assert errors["nearest"] >= 96 * 2  # the staircase
    assert errors["response"] < errors["nearest"] / 4, errors
