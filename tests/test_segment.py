import numpy as np
import pytest
from conftest import check_outputs_agree
from scipy import ndimage

from unsupseg import segment

FAST = dict(q=20, max_iter=200, n_segments=40, compactness=10)


def block_interiors(labels):
    return [labels[2:22, 2:10], labels[2:22, 14:20], labels[2:22, 24:30]]


def majority(region):
    values, counts = np.unique(region, return_counts=True)
    return values[counts.argmax()], counts.max() / region.size


def test_kanezaki_separates_colour_blocks(blocks_image):
    result = segment(blocks_image, return_details=True, **FAST)
    assert result.labels.shape == blocks_image.shape[:2]
    majorities = [majority(region) for region in block_interiors(result.labels)]
    assert len({label for label, _ in majorities}) == 3
    assert all(share > 0.9 for _, share in majorities)
    # ids are consecutive from 0
    assert set(np.unique(result.labels)) == set(range(result.labels.max() + 1))
    assert result.n_iterations == len(result.n_labels_history) <= FAST["max_iter"]
    assert result.superpixels.shape == blocks_image.shape[:2]
    assert result.response.shape == (FAST["q"], *blocks_image.shape[:2])


def test_stop_rule_and_iteration_limit(blocks_image):
    stopped = segment(blocks_image, return_details=True, **{**FAST, "max_iter": 50})
    if stopped.n_iterations < 50:
        assert stopped.n_labels_history[-1] <= 3
        assert all(n > 3 for n in stopped.n_labels_history[:-1])
    at_once = segment(
        blocks_image, return_details=True, **{**FAST, "max_iter": 50}, min_labels=FAST["q"]
    )
    assert at_once.n_iterations == 1
    capped = segment(blocks_image, return_details=True, **{**FAST, "max_iter": 3}, min_labels=1)
    assert capped.n_iterations == 3


def test_callback_sees_every_iteration_and_can_stop_the_run(blocks_image):
    calls = []
    result = segment(blocks_image, return_details=True, **{**FAST, "max_iter": 6},
                     min_labels=1, callback=lambda *args: calls.append(args))  # fmt: skip
    assert [call[:2] for call in calls] == [(i, 6) for i in range(1, result.n_iterations + 1)]
    assert [call[2] for call in calls] == result.n_labels_history

    class Stop(Exception):
        pass

    def stop_at_three(step, total, n_labels):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        segment(blocks_image, **{**FAST, "max_iter": 50}, min_labels=1, callback=stop_at_three)


def test_same_seed_same_labels_other_seed_other_init(blocks_image):
    options = dict(FAST, max_iter=15, min_labels=1)
    first = segment(blocks_image, seed=3, return_details=True, **options)
    second = segment(blocks_image, seed=3, return_details=True, **options)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.loss_history == second.loss_history
    other = segment(blocks_image, seed=4, return_details=True, **options)
    assert other.loss_history != first.loss_history


def test_argmax_numbered_like_labels(blocks_image):
    result = segment(blocks_image, return_details=True, **{**FAST, "max_iter": 2}, min_labels=1)
    # the refinement keeps a subset of the argmax labels, with the same ids
    assert set(np.unique(result.labels)) <= set(np.unique(result.argmax))
    for label in np.unique(result.labels):
        assert (result.argmax == label).any()


def test_tip2020_with_scribbles_follows_them(blocks_image):
    scribble = np.full(blocks_image.shape[:2], 255, dtype=np.uint8)
    scribble[10, 2:8], scribble[10, 14:20], scribble[10, 24:30] = 0, 1, 2
    result = segment(
        blocks_image, "tip2020", scribble=scribble, q=20, max_iter=150, return_details=True
    )
    assert result.params["min_labels"] == 3
    assert result.superpixels is None
    majorities = [majority(region) for region in block_interiors(result.labels)]
    assert len({label for label, _ in majorities}) == 3
    assert all(share > 0.8 for _, share in majorities)


def test_thin_scribbles_survive_the_working_size():
    """A stroke one pixel wide is kept at a smaller working size (nearest neighbour
    alone dropped it, and tip2020 then stopped with a NaN loss)."""
    import torch

    from unsupseg.algorithm import UNLABELLED, tip2020_loss
    from unsupseg.io import resize_nearest
    from unsupseg.per_image import downscale_scribble

    scribble = np.full((100, 120), UNLABELLED, np.uint8)
    scribble[33, 10:110] = 2  # under no working pixel's centre at 10x12
    scribble[60:80, 30:40] = 4  # a blob: where nearest keeps it, it stays the same
    scribble[71:80, 91:93] = 1  # one cell holding 18 pixels of class 1, 10 of class 3
    scribble[70, 90:100] = 3
    small = downscale_scribble(scribble, (10, 12))
    nearest = resize_nearest(scribble, (10, 12))
    assert np.all(nearest[3] == UNLABELLED)
    assert np.array_equal(small[3], [UNLABELLED] + [2] * 10 + [UNLABELLED])
    kept = nearest != UNLABELLED
    assert np.array_equal(small[kept], nearest[kept])
    assert small[7, 9] == 1 and small[7, 3] == 4
    assert np.array_equal(downscale_scribble(scribble, (100, 120)), scribble)
    image = np.zeros((100, 120, 3), np.uint8)
    image[50:] = 200
    labels = segment(image, "tip2020", scribble=scribble, max_side=24, max_iter=2, q=8,
                     n_conv=1, min_labels=1, seed=0)  # fmt: skip
    assert labels.shape == (100, 120)
    # an empty scribble scores nothing rather than NaN
    response = torch.randn(1, 8, 5, 6)
    loss, _, _ = tip2020_loss(response, scribble=torch.full((1, 5, 6), UNLABELLED))
    assert torch.isfinite(loss)


def test_tip2020_without_scribbles_reduces_labels(blocks_image):
    result = segment(blocks_image, "tip2020", q=20, max_iter=60, return_details=True)
    assert result.n_labels_history[-1] < result.n_labels_history[0]
    assert result.n_labels < 20


@pytest.mark.parametrize(
    "image",
    [
        np.random.default_rng(0).integers(0, 255, (9, 11), dtype=np.uint8),  # grayscale
        np.random.default_rng(1).integers(0, 255, (9, 11, 4), dtype=np.uint8),  # RGBA
        np.random.default_rng(2).integers(0, 65535, (9, 11, 3), dtype=np.uint16),  # 16-bit
        np.random.default_rng(3).random((9, 11, 3)),  # float
        np.zeros((9, 11, 3), dtype=np.uint8),  # constant
        np.array([[0, 255]], dtype=np.uint8),  # two pixels
    ],
    ids=["gray", "rgba", "uint16", "float", "constant", "two-pixels"],
)
def test_odd_images_segment(image):
    labels = segment(image, q=8, max_iter=3, n_segments=10000)  # more superpixels than pixels
    assert labels.shape == image.shape[:2]
    assert labels.min() == 0


def test_max_side_downscales_and_returns_full_size(blocks_image):
    big = np.kron(blocks_image, np.ones((4, 4, 1), dtype=np.uint8))  # 96x128
    result = segment(big, max_side=32, return_details=True, **{**FAST, "max_iter": 2})
    assert result.working_shape == (24, 32)
    assert result.labels.shape == big.shape[:2]
    assert result.argmax.shape == big.shape[:2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(q=1), "q must be >= 2"),
        (dict(max_iter=-5), "max_iter must be >= 1"),
        (dict(max_iter=0), "max_iter must be >= 1"),
        (dict(max_iter=2.5), "max_iter must be an integer"),
        (dict(lr=0), "lr must be > 0"),
        (dict(lr=float("nan")), "lr must be a finite number"),
        (dict(lr=float("inf")), "lr must be a finite number"),
        (dict(compactness=float("nan")), "compactness must be a finite"),
        (dict(compactness=float("inf")), "compactness must be a finite"),
        (dict(mu=float("nan")), "mu must be a finite"),
        (dict(mu=float("inf")), "mu must be a finite"),
        (dict(scribble_weight=float("inf")), "scribble_weight must be a finite"),
        (dict(momentum=float("nan")), "momentum"),
        (dict(n_segments=0), "n_segments must be >= 1"),
        (dict(compactness=-1), r"compactness must be in \[1e-06, 1000000\]"),
        (dict(min_labels=0), "min_labels must be >= 1"),
        (dict(method="kmeans"), "method must be one of"),
        (dict(momentum=1.5), "momentum"),
        (dict(max_side=1), "max_side"),
        (dict(seed=2**66), r"seed must be in \[0, 4294967295\]"),
        (dict(seed=-1), "seed must be in"),
        (dict(q=100000), "needs about .* of memory, more than the .* available; lower q"),
        (dict(scribble=np.zeros((24, 32), dtype=np.uint8)), "tip2020. only"),
        (dict(device="meta"), "device 'meta' is not supported"),
        (dict(device="tpu"), "device"),
    ],
)
def test_invalid_options(blocks_image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        segment(blocks_image, **kwargs)


def test_check_options_takes_segments_defaults():
    """Callers that have only some settings (evaluate_dataset) check just those; the
    others take segment's defaults, and a misspelt name is an error, not ignored."""
    import inspect

    from unsupseg.errors import ConfigError
    from unsupseg.per_image import CHECKED_OPTIONS, check_options

    assert set(CHECKED_OPTIONS) <= set(inspect.signature(segment).parameters)
    check_options()  # segment's defaults are valid
    check_options(method="dynaseg-scf", max_side=64, fine_iter=3)
    with pytest.raises(ConfigError, match="fine_iter must be >= 0"):
        check_options(method="tip2020", fine_iter=-1)
    with pytest.raises(ConfigError, match="layout must be one of auto"):
        check_options(layout="nhwc")
    with pytest.raises(TypeError, match="max_iters"):
        check_options(max_iters=5)


def test_bad_scribbles(blocks_image):
    with pytest.raises(ValueError, match="must match"):
        segment(blocks_image, "tip2020", scribble=np.full((5, 5), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="no scribbled pixel"):
        segment(blocks_image, "tip2020", scribble=np.full((24, 32), 255, dtype=np.uint8))
    too_high = np.full((24, 32), 255, dtype=np.uint8)
    too_high[0, 0] = 50
    with pytest.raises(ValueError, match=r"0\.\.19"):
        segment(blocks_image, "tip2020", scribble=too_high, q=20)


def test_tiny_and_huge_images_refused_with_advice():
    with pytest.raises(ValueError, match="at least 2 pixels"):
        segment(np.zeros((1, 1, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="max_side"):
        segment(np.zeros((40, 40, 3), dtype=np.uint8), max_pixels=1000)


def test_real_bsds500_photo(bsds500, tmp_path):
    """CLI on a real photo, twice with one seed: identical, and files agree with the .npy."""

    from unsupseg.cli import main

    photo = bsds500 / "images" / "val" / "3096.jpg"
    options = ["--max-side", "96", "--max-iter", "60", "--seed", "0", "--quiet"]
    runs = []
    for name in ("first", "second"):
        assert main(["segment", str(photo), "--out", str(tmp_path / name), *options]) == 0
        labels, summary = check_outputs_agree(tmp_path / name / "3096")
        runs.append((labels, summary))
    (first, summary), (second, _) = runs
    np.testing.assert_array_equal(first, second)
    assert first.shape == (321, 481)
    components = sum(ndimage.label(first == k)[1] for k in np.unique(first))
    assert components >= summary["parameters"]["min_labels"]
    history = summary["n_labels_per_iteration"]
    assert history[-1] < history[0]
