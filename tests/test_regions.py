"""Exactly K regions, and connected regions, from every method (--segments, --connected)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.transform import resize

from unsupseg.cli import main
from unsupseg.errors import ConfigError
from unsupseg.per_image import segment
from unsupseg.regions import connected_leaves, regions_to_k

pytestmark = pytest.mark.usefixtures("one_thread")


def n_connected(labels: np.ndarray) -> int:
    return int(connected_leaves(labels).max()) + 1


def assert_k_connected_regions(labels: np.ndarray, k: int) -> None:
    """k ids, 0 .. k - 1, and each id one 4-connected region."""
    assert sorted(np.unique(labels).tolist()) == list(range(k))
    assert n_connected(labels) == k


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return (resize(data.astronaut(), (48, 48), anti_aliasing=True) * 255).astype(np.uint8)


def test_regions_to_k_merges_the_weakest_boundaries_first():
    # Four flat blocks: two near-identical greys on the left, black and white on the right.
    image = np.zeros((8, 16, 3))
    image[:, :4], image[:, 4:8], image[:, 8:12], image[:, 12:] = 0.50, 0.52, 0.0, 1.0
    labels = np.repeat(np.repeat([[0, 1, 2, 3]], 8, axis=0), 4, axis=1)
    three = regions_to_k(labels, 3, image)
    assert_k_connected_regions(three, 3)
    assert len(np.unique(three[:, :8])) == 1  # the two greys merged first
    for k in range(1, 5):
        result = regions_to_k(labels, k, image)
        assert_k_connected_regions(result, k)
        finer = regions_to_k(labels, min(k + 1, 4), image)
        # nested: every region of k + 1 lies inside one region of k
        pairs = set(zip(finer.ravel().tolist(), result.ravel().tolist(), strict=True))
        assert len(pairs) == len(np.unique(finer))
    # A label in two separate places counts as two regions.
    split = np.repeat([[0, 0, 1, 1, 0, 0]], 4, axis=0)
    assert_k_connected_regions(regions_to_k(split, 3, np.zeros((4, 6))), 3)
    with pytest.raises(ConfigError, match="has 3 connected regions.*1 to 3"):
        regions_to_k(split, 4, np.zeros((4, 6)))
    with pytest.raises(ConfigError, match="2-D"):
        regions_to_k(np.zeros((2, 3, 4), int), 1, np.zeros((2, 3, 4)))


@pytest.mark.parametrize("method", ["kanezaki2018", "tip2020", "dynaseg-fsf", "dynaseg-scf"])
def test_segment_gives_exactly_k_connected_regions(photo, method):
    kwargs = dict(q=16, max_iter=3, n_segments=60, seed=0, return_details=True)
    result = segment(photo, method, segments=7, **kwargs)
    assert_k_connected_regions(result.labels, 7)
    assert result.params["segments"] == 7 and result.params["connected"]
    plain = segment(photo, method, **kwargs).labels
    connected = segment(photo, method, connected=True, **kwargs).labels
    assert n_connected(plain) > len(np.unique(plain))  # some colour covers separate places
    assert len(np.unique(connected)) == n_connected(connected) == n_connected(plain)
    # Downscaled: K regions at the input's size.
    small = segment(photo, method, segments=7, max_side=24, **kwargs).labels
    assert small.shape == photo.shape[:2]
    assert_k_connected_regions(small, 7)
    with pytest.raises(ConfigError, match="segments"):
        segment(photo, method, segments=0, max_iter=1)


def test_segment_refuses_segments_for_a_volume():
    volume = np.random.default_rng(0).random((4, 8, 8))
    with pytest.raises(ConfigError, match="segments"):
        segment(volume, volume=True, segments=3, max_iter=1)


def test_segments_on_the_command_line_for_every_method(photo, tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    for method in ("hierarchy", "kanezaki2018", "tip2020", "dynaseg-fsf"):
        out = tmp_path / method
        code = main(["segment", str(path), "--method", method, "--segments", "7",
                     "--q", "16", "--max-iter", "3", "--n-segments", "60", "--out", str(out),
                     "--quiet"])  # fmt: skip
        assert code == 0, method
        labels = np.asarray(Image.open(out / "photo" / "labels.png"))
        assert labels.shape == photo.shape[:2]
        assert_k_connected_regions(labels, 7)
    out = tmp_path / "connected"
    assert main(["segment", str(path), "--connected", "--q", "16", "--max-iter", "3",
                 "--n-segments", "60", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    labels = np.load(out / "photo" / "labels.npy")
    assert len(np.unique(labels)) == n_connected(labels)
    # More regions than the result has: that image fails with a message, exit code 1.
    code = main(["segment", str(path), "--method", "tip2020", "--segments", str(48 * 48 + 1),
                 "--q", "4", "--max-iter", "1", "--out", str(tmp_path / "many"),
                 "--quiet"])  # fmt: skip
    assert code == 1


def test_connected_leaves_whatever_the_label_values_and_dimensions():
    # labels at both ends of uint64 (a shift by the minimum would wrap them together)
    huge = np.array([[0, 2**64 - 1, 0], [2**63, 2**64 - 1, 0]], dtype=np.uint64)
    np.testing.assert_array_equal(connected_leaves(huge), [[0, 1, 2], [3, 1, 2]])
    # a volume: 6-connected, so two cubes touching only along an edge stay apart
    volume = np.zeros((2, 2, 2), int)
    volume[0, 0, 0] = volume[1, 1, 0] = 7
    leaves = connected_leaves(volume)
    assert leaves.shape == (2, 2, 2) and leaves.max() + 1 == 3
    assert leaves[0, 0, 0] != leaves[1, 1, 0]


def _naive_greedy(leaves, strength, colours, colour_weight, size_ref):
    """Greedy merging recomputed from scratch at every step: the regions as a label
    map, every boundary's mean pixel-pair strength and the cost of greedy_merge."""
    labels = leaves.copy()
    pairs = []
    for sa, sb in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                   ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):  # fmt: skip
        pairs.append((sa, sb))
    merged_sets, heights, last = [], [], 0.0
    while np.unique(labels).size > 1:
        costs = {}
        for sa, sb in pairs:
            la, lb = labels[sa], labels[sb]
            values = 0.5 * (strength[sa] + strength[sb])
            for x, y, v in zip(la[la != lb], lb[la != lb], values[la != lb], strict=True):
                key = (min(x, y), max(x, y))
                s, c = costs.get(key, (0.0, 0))
                costs[key] = (s + v, c + 1)
        best = None
        for (x, y), (s, c) in costs.items():
            value = s / c
            ax, ay = (labels == x).sum(), (labels == y).sum()
            if colour_weight:
                mean = [colours[labels == r].mean(axis=0) for r in (x, y)]
                value += colour_weight * np.linalg.norm(mean[0] - mean[1])
            if size_ref:
                value *= min(1.0, np.sqrt(min(ax, ay) / (size_ref * labels.size)))
            if best is None or value < best[0]:
                best = (value, x, y)
        value, x, y = best
        last = max(last, value)
        heights.append(last)
        merged_sets.append(frozenset(np.unique(leaves[(labels == x) | (labels == y)]).tolist()))
        labels[labels == y] = x
    return merged_sets, heights


@pytest.mark.parametrize("costs", [dict(), dict(colour_weight=0.5, size_ref=0.05)])
def test_greedy_merge_is_greedy_on_a_fragmented_map(costs):
    """One large region full of specks (the case that moves boundaries between regions
    rather than copying them) merges exactly as merging from scratch at every step."""
    from unsupseg.regions import greedy_merge

    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 6)[None, :].repeat(14, axis=0)  # three 6-wide bands
    specks = rng.random(labels.shape) < 0.12
    leaves = connected_leaves(np.where(specks, 3 + np.arange(labels.size).reshape(labels.shape),
                                       labels))  # fmt: skip
    strength = rng.random(leaves.shape)  # continuous: no two costs tie
    colours = rng.random((*leaves.shape, 3))
    merges, heights, *_ = greedy_merge(leaves, strength, colours, **costs)
    n = int(leaves.max()) + 1
    assert n > 20 and merges.shape == (n - 1, 2)
    members = [frozenset([i]) for i in range(n)]
    for a, b in merges:
        members.append(members[a] | members[b])
    expected_sets, expected_heights = _naive_greedy(
        leaves, strength, colours, costs.get("colour_weight", 0.0), costs.get("size_ref", 0.0)
    )
    assert members[n:] == expected_sets
    np.testing.assert_allclose(heights, expected_heights, rtol=1e-9)
