"""DynaSeg (Guermazi, Ksantini and Khan, 2024) as a per-image method: its loss as the
public code writes it, and the method through ``segment`` and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from unsupseg.algorithm import continuity_loss, dynaseg_loss, dynaseg_weight, tip2020_loss
from unsupseg.cli import main
from unsupseg.per_image import segment

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_weight_follows_the_label_count():
    assert dynaseg_weight("fsf", 30) == pytest.approx(2.0)
    assert dynaseg_weight("fsf", 3) == pytest.approx(0.2)
    assert dynaseg_weight("scf", 25) == pytest.approx(2.0)
    assert dynaseg_weight("scf", 100) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="fsf, scf"):
        dynaseg_weight("xyz", 3)


def _reference_loss(response: torch.Tensor, variant: str) -> torch.Tensor:
    """The loss as tools/DynaSeg_SCF_BSD_VOC.py computes it, on one image: the response
    as (H*W, q) rows, l1_loss between shifted (H, W, q) maps, nLabels from np.unique."""
    q, height, width = response.shape[1:]
    output = response[0].permute(1, 2, 0).contiguous().view(-1, q)
    output_hp = output.reshape((height, width, q))
    lhpy = F.l1_loss(output_hp[1:, :, :], output_hp[0:-1, :, :])
    lhpz = F.l1_loss(output_hp[:, 1:, :], output_hp[:, 0:-1, :])
    _, target = torch.max(output, 1)
    n_labels = len(np.unique(target.numpy()))
    weight = n_labels / 15 if variant == "fsf" else 50 / n_labels
    return F.cross_entropy(output, target) + weight * (lhpy + lhpz)


@pytest.mark.parametrize("variant", ["fsf", "scf"])
def test_loss_is_the_public_codes(variant):
    torch.manual_seed(0)
    response = torch.randn(1, 12, 9, 7, requires_grad=True)
    loss, argmax, target = dynaseg_loss(response, variant=variant)
    torch.testing.assert_close(loss, _reference_loss(response, variant))
    assert torch.equal(argmax, target) and torch.equal(argmax, response.detach().argmax(1))
    # the same as TIP 2020's loss with mu set to the weight of this label count
    n_labels = int(torch.unique(argmax).numel())
    tip, _, _ = tip2020_loss(response, mu=dynaseg_weight(variant, n_labels))
    torch.testing.assert_close(loss, tip)
    loss.backward()
    assert response.grad is not None and torch.isfinite(response.grad).all()
    assert continuity_loss(response) > 0


def test_segment_with_both_variants(blocks_image):
    results = {}
    for method in ("dynaseg-fsf", "dynaseg-scf"):
        result = segment(blocks_image, method, q=16, max_iter=30, seed=0, return_details=True)
        again = segment(blocks_image, method, q=16, max_iter=30, seed=0)
        np.testing.assert_array_equal(result.labels, again)
        assert result.labels.shape == blocks_image.shape[:2]
        assert result.superpixels is None and result.slic_seconds == 0.0
        assert result.params["method"] == method and result.params["mu"] is None
        history = result.n_labels_history
        assert len(history) == 30 or history[-1] <= 3
        results[method] = result
    # the weights differ from the first step (16 labels: fsf 16/15, scf 50/16)
    assert results["dynaseg-fsf"].loss_history[0] != results["dynaseg-scf"].loss_history[0]
    with pytest.raises(ValueError, match="tip2020"):
        segment(blocks_image, "dynaseg-fsf", scribble=np.zeros(blocks_image.shape[:2], np.uint8))


def test_segment_command(tmp_path, blocks_image):
    Image.fromarray(blocks_image).save(tmp_path / "blocks.png")
    out = tmp_path / "out"
    argv = ["segment", str(tmp_path / "blocks.png"), "--method", "dynaseg-fsf", "--q", "12",
            "--max-iter", "5", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "blocks" / "summary.json").read_text())
    assert summary["parameters"]["method"] == "dynaseg-fsf"
    assert np.load(out / "blocks" / "labels.npy").shape == blocks_image.shape[:2]


def test_continuity_of_a_one_pixel_wide_image_is_finite():
    """Before, the empty horizontal differences gave NaN, and the run 'diverged'."""
    column = torch.randn(1, 4, 5, 1)
    expected = (column[:, :, 1:] - column[:, :, :-1]).abs().mean()
    torch.testing.assert_close(continuity_loss(column), expected)
    image = np.random.default_rng(0).random((2, 1, 3))
    for method in ("tip2020", "dynaseg-fsf"):
        assert segment(image, method, q=4, max_iter=2).shape == (2, 1)
