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
    runs = {"nearest": {}, "response": {}, "fine": dict(upsample="nearest", fine_iter=20)}
    for upsample, more in runs.items():
        labels = segment(image, **{"upsample": upsample, **more, **options})
        # impurity: the pixels of each label on the side of the edge where it has fewer
        inside = np.bincount(labels[truth], minlength=labels.max() + 1)
        outside = np.bincount(labels[~truth], minlength=labels.max() + 1)
        errors[upsample] = int(np.minimum(inside, outside).sum())
    assert errors["nearest"] >= 96 * 2  # the staircase
    assert errors["response"] < errors["nearest"] / 4, errors
    assert errors["fine"] < errors["nearest"] / 4, errors  # full-size iterations, too


def test_fine_iter_goes_on_at_full_size(blocks_image):
    """fine_iter: the coarse run unchanged, then iterations at full size, where the
    response, SLIC and the vote live; the labels are those of the last of them."""
    big = np.kron(blocks_image, np.ones((3, 3, 1), dtype=np.uint8))
    options = dict(q=12, max_iter=4, n_segments=60, max_side=24, seed=0, min_labels=1)
    coarse = segment(big, return_details=True, **options)
    calls = []
    fine = segment(big, fine_iter=3, return_details=True, callback=lambda *a: calls.append(a),
                   **options)  # fmt: skip
    assert (coarse.n_iterations, fine.n_iterations, fine.fine_iterations) == (4, 7, 3)
    # progress counts on through both stages, against their most
    assert [call[:2] for call in calls] == [(i, 7) for i in range(1, 8)]
    assert [call[2] for call in calls] == fine.n_labels_history
    assert fine.n_labels_history[:4] == coarse.n_labels_history  # the same coarse stage
    assert fine.working_shape == coarse.working_shape != big.shape[:2]
    assert fine.response.shape == (12, *big.shape[:2])
    assert coarse.response.shape == (12, *coarse.working_shape)
    assert (fine.params["fine_iter"], fine.params["upsample"]) == (3, None)
    assert fine.superpixels.shape == big.shape[:2]
    pairs = np.unique(np.stack([fine.superpixels.ravel(), fine.labels.ravel()]), axis=1)
    assert pairs.shape[1] == np.unique(fine.superpixels).size  # voted on full-size SLIC
    # the stop rule holds across the stages: stopped at once, one full-size iteration
    calls.clear()
    stopped = segment(big, fine_iter=3, return_details=True, callback=lambda *a: calls.append(a),
                      **{**options, "min_labels": 12})  # fmt: skip
    assert (stopped.n_iterations, stopped.fine_iterations) == (2, 1)
    # the most shrinks to what is left once the working-size stage has stopped early
    assert [call[:2] for call in calls] == [(1, 7), (2, 4)]
    # nothing to go on with when the image was not downscaled
    same = segment(big, fine_iter=3, return_details=True, **{**options, "max_side": None})
    assert (same.n_iterations, same.fine_iterations, same.params["fine_iter"]) == (4, 0, None)


@pytest.mark.parametrize("method", ["tip2020", "dynaseg-fsf"])
def test_fine_iter_continuity_methods_and_scribbles(blocks_image, method):
    big = np.kron(blocks_image, np.ones((3, 3, 1), dtype=np.uint8))
    scribble = None
    if method == "tip2020":
        scribble = np.full(big.shape[:2], 255, dtype=np.uint8)
        scribble[6:60, 6:24] = 0  # the first block, at full size
        scribble[6:60, 72:90] = 1  # the third
    result = segment(
        big, method, q=12, max_iter=3, max_side=24, fine_iter=2, min_labels=1,
        scribble=scribble, seed=0, return_details=True,
    )  # fmt: skip
    assert result.labels.shape == big.shape[:2]
    assert (result.n_iterations, result.fine_iterations) == (5, 2)
    assert result.response.shape == (12, *big.shape[:2])


@pytest.mark.parametrize("value", [-1, 2.5, float("nan")])
def test_fine_iter_must_be_a_whole_number(blocks_image, value):
    with pytest.raises(ValueError, match="fine_iter must be"):
        segment(blocks_image, max_iter=1, max_side=16, fine_iter=value)


def test_fine_iter_is_held_to_the_pixel_limit_at_full_size(blocks_image):
    big = np.kron(blocks_image, np.ones((3, 3, 1), dtype=np.uint8))  # 72x96
    options = dict(q=8, max_iter=1, max_side=24, max_pixels=2000)
    assert segment(big, **options).shape == big.shape[:2]  # 18x24 working: fine
    with pytest.raises(ValueError, match="fine_iter optimises at full size"):
        segment(big, fine_iter=1, **options)
