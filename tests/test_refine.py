import numpy as np
import pytest
import torch

from unsupseg.refine import refine_by_label_slic, refine_by_superpixel_vote


def vote_with_loop(labels: np.ndarray, superpixels: np.ndarray, q: int) -> np.ndarray:
    """Plain per-superpixel loop: majority label, smallest label on ties."""
    out = labels.copy()
    for s in np.unique(superpixels):
        if s < 0:
            continue
        inside = superpixels == s
        out[inside] = np.argmax(np.bincount(labels[inside], minlength=q))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_vote_matches_loop_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    q = int(rng.integers(2, 40))
    batch = []
    for _ in range(3):
        h, w = rng.integers(5, 30, size=2)
        # few labels per superpixel so that ties happen often
        labels = rng.integers(0, q, size=(h, w))
        superpixels = rng.integers(0, int(rng.integers(1, 60)), size=(h, w))
        batch.append((labels, superpixels))
    size = max(lab.shape[0] for lab, _ in batch), max(lab.shape[1] for lab, _ in batch)
    labels_b = np.zeros((3, *size), dtype=np.int64)
    spx_b = np.full((3, *size), -1, dtype=np.int64)
    expected = np.zeros_like(labels_b)
    for i, (labels, superpixels) in enumerate(batch):
        h, w = labels.shape
        labels_b[i, :h, :w] = labels
        spx_b[i, :h, :w] = superpixels
        expected[i] = vote_with_loop(labels_b[i], spx_b[i], q)
    got = refine_by_superpixel_vote(torch.from_numpy(labels_b), torch.from_numpy(spx_b), q)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_vote_tie_goes_to_smallest_label_and_majority_wins():
    labels = torch.tensor([[5, 2, 5, 2, 7, 7, 1]])
    superpixels = torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    got = refine_by_superpixel_vote(labels, superpixels, 8)
    assert got.tolist() == [[2, 2, 2, 2, 7, 7, 7]]


def test_vote_single_image_and_padding_untouched():
    labels = torch.tensor([[3, 1, 1], [0, 0, 2]])
    superpixels = torch.tensor([[0, 0, 0], [-1, -1, 1]])
    got = refine_by_superpixel_vote(labels, superpixels, 4)
    assert got.tolist() == [[1, 1, 1], [0, 0, 2]]


def test_vote_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        refine_by_superpixel_vote(
            torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), 2
        )


def test_label_slic_groups_label_regions():
    labels = torch.zeros(2, 40, 40, dtype=torch.long)
    labels[:, :, 20:] = 9
    targets = refine_by_label_slic(labels, n_segments=4, compactness=1e-4)
    assert targets.shape == labels.shape and targets.dtype == torch.long
    for image in targets:
        left, right = set(image[:, :20].unique().tolist()), set(image[:, 20:].unique().tolist())
        # with a tiny compactness SLIC follows the label values: no segment straddles the edge
        assert not left & right
    assert torch.equal(targets, refine_by_label_slic(labels, n_segments=4, compactness=1e-4))
