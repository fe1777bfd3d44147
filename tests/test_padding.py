"""Replicate padding of the per-image network: no frame of its own label at the border."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unsupseg.models.kanezaki import KanezakiNet
from unsupseg.per_image import segment

pytestmark = pytest.mark.usefixtures("one_thread")


def test_replicate_padding_sees_no_border_in_a_flat_image():
    flat = torch.full((1, 3, 12, 16), 0.5)
    for padding, uniform in (("zeros", False), ("replicate", True)):
        torch.manual_seed(0)
        net = KanezakiNet(q=8, padding_mode=padding).eval()
        with torch.no_grad():
            response = net(flat)
        spread = (response - response[:, :, 6:7, 8:9]).abs().amax().item()
        assert (spread < 1e-5) == uniform, (padding, spread)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        KanezakiNet(padding_mode="circular")


def test_segment_padding_option(blocks_image):
    labels = {}
    for padding in ("zeros", "replicate"):
        result = segment(blocks_image, q=12, max_iter=5, n_segments=40, seed=0, padding=padding,
                         return_details=True)  # fmt: skip
        assert result.params["padding"] == padding
        labels[padding] = result.argmax
    assert not np.array_equal(labels["zeros"], labels["replicate"])
    with pytest.raises(ValueError, match="padding must be one of"):
        segment(blocks_image, padding="reflect", max_iter=1)


def test_auto_padding_follows_the_method(blocks_image):
    for method, expected in (("kanezaki2018", "zeros"), ("tip2020", "replicate"),
                             ("dynaseg-scf", "replicate")):  # fmt: skip
        result = segment(blocks_image, method, q=8, max_iter=1, n_segments=20,
                         return_details=True)  # fmt: skip
        assert result.params["padding"] == expected, method
