"""Per-image segmentation of other shapes (bands, volumes) and in bfloat16."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unsupseg.algorithm import (
    IGNORE_INDEX,
    channel_argmax,
    continuity_loss,
    pixel_cross_entropy,
    tip2020_loss,
)
from unsupseg.device import (
    LAYOUTS,
    PRECISIONS,
    cpu_supports_bf16,
    resolve_layout,
    resolve_precision,
)
from unsupseg.errors import ConfigError
from unsupseg.io import as_float_channels
from unsupseg.models.kanezaki import KanezakiNet
from unsupseg.per_image import network_forward, segment
from unsupseg.refine import refine_by_superpixel_vote
from unsupseg.superpixels import slic_superpixels

FAST = dict(q=8, max_iter=5, n_segments=40, seed=0)


def _halves_in_band(bands: int, band: int, shape=(24, 32)) -> np.ndarray:
    """Noise in every band, and a left/right step in one band only."""
    rng = np.random.default_rng(0)
    image = rng.normal(0.5, 0.02, (*shape, bands))
    image[:, shape[1] // 2 :, band] += 1.0
    return image


def test_as_float_channels_normalises_each_band_of_a_multiband_image():
    image = np.stack([np.linspace(0, 10, 20), np.linspace(100, 300, 20)], -1)
    image = np.repeat(image[None], 3, axis=0)[..., [0, 1, 0, 1, 1]]  # (3, 20, 5)
    out = as_float_channels(image)
    assert out.shape == (3, 20, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out.min(axis=(0, 1)), 0)
    np.testing.assert_allclose(out.max(axis=(0, 1)), 1)
    assert as_float_channels(np.zeros((2, 4, 5))).max() == 0  # constant bands: zeros
    with pytest.raises(ValueError, match="volume"):
        as_float_channels(np.zeros((4, 5)), volume=True)


def test_a_five_band_array_is_segmented_with_all_its_bands():
    # The step lies in band 4 only: seen only if the network reads all five bands.
    result = segment(_halves_in_band(5, 4), "tip2020", return_details=True,
                     **{**FAST, "max_iter": 40})  # fmt: skip
    assert result.labels.shape == (24, 32)
    assert result.params["channels"] == 5
    left, right = result.labels[:, :12], result.labels[:, 20:]
    assert np.bincount(left.ravel()).argmax() != np.bincount(right.ravel()).argmax()


def test_slic_clusters_bands_and_volumes():
    rng = np.random.default_rng(1)
    bands = slic_superpixels(rng.random((20, 30, 5)), 30)
    assert bands.shape == (20, 30) and bands.min() == 0
    assert np.array_equal(np.unique(bands), np.arange(bands.max() + 1))
    volume = np.zeros((6, 20, 30, 1))
    volume[:, :, 15:] = 1.0
    supervoxels = slic_superpixels(volume, 8, 1.0, volume=True)
    assert supervoxels.shape == (6, 20, 30)
    # Supervoxels span slices, and none crosses the step between the halves.
    assert any(np.unique(np.nonzero(supervoxels == i)[0]).size > 1 for i in range(3))
    assert not set(np.unique(supervoxels[:, :, :15])) & set(np.unique(supervoxels[:, :, 15:]))
    with pytest.raises(ValueError, match="Z, Y, X, C"):
        slic_superpixels(np.zeros((20, 30, 3)), 8, volume=True)


def test_the_vote_of_a_supervoxel_spans_its_slices():
    labels = torch.tensor([[[[1, 1]], [[2, 1]]]])  # (1, Z=2, Y=1, X=2)
    supervoxels = torch.zeros_like(labels)  # one supervoxel over both slices
    assert refine_by_superpixel_vote(labels, supervoxels, 3).unique().tolist() == [1]


def test_continuity_loss_sums_the_mean_difference_along_every_spatial_axis():
    response = torch.rand(1, 4, 3, 5, 6)
    expected = sum(response.diff(dim=axis).abs().mean() for axis in (2, 3, 4))
    torch.testing.assert_close(continuity_loss(response), expected)
    image = response[:, :, 0]
    expected_2d = image.diff(dim=2).abs().mean() + image.diff(dim=3).abs().mean()
    torch.testing.assert_close(continuity_loss(image), expected_2d)


def test_kanezaki_net_in_3d():
    net = KanezakiNet(in_channels=2, q=6, ndim=3, padding_mode="replicate")
    assert net(torch.rand(1, 2, 3, 8, 9)).shape == (1, 6, 3, 8, 9)
    assert isinstance(net.layers[0], torch.nn.Conv3d)
    with pytest.raises(ValueError, match="ndim"):
        KanezakiNet(ndim=4)


@pytest.mark.parametrize("method", ["kanezaki2018", "tip2020", "dynaseg-scf"])
def test_a_volume_is_segmented_in_3d(method):
    volume = np.zeros((5, 16, 20))
    volume[:, :, 10:] = 1.0
    volume += np.random.default_rng(0).normal(0, 0.01, volume.shape)
    result = segment(volume, method, volume=True, return_details=True, **FAST)
    assert result.labels.shape == (5, 16, 20)
    assert result.working_shape == (5, 16, 20)
    assert result.response.shape == (8, 5, 16, 20)
    if method == "kanezaki2018":
        assert result.superpixels.shape == (5, 16, 20)


def test_an_rgb_volume_keeps_three_channels():
    rgb = np.random.default_rng(0).random((4, 12, 14, 3))
    result = segment(rgb, "tip2020", volume=True, return_details=True, **FAST)
    assert result.labels.shape == (4, 12, 14) and result.params["channels"] == 3


def test_a_volume_refuses_2d_only_options():
    with pytest.raises(ConfigError, match="max_side"):
        segment(np.zeros((3, 8, 8)), volume=True, max_side=4, **FAST)
    with pytest.raises(ConfigError, match="Z, Y, X"):
        segment(np.zeros((8, 8)), volume=True, **FAST)


def test_precision_is_checked_and_resolved():
    with pytest.raises(ConfigError, match="precision"):
        segment(np.zeros((8, 8)), precision="fp16", **FAST)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("auto", cpu, "tip2020") == "fp32"  # measured lower in bf16
    assert [resolve_precision(p, cpu) for p in PRECISIONS[1:]] == ["fp32", "bf16"]


def test_bf16_forward_is_float32_close_to_fp32_and_trains():
    torch.manual_seed(0)
    net = KanezakiNet(q=8)
    x = torch.rand(1, 3, 16, 20)
    reference = net(x)
    forward, x_cl = network_forward(net, x, precision="bf16", channels_last=True)
    assert x_cl.is_contiguous(memory_format=torch.channels_last)
    response = forward(x_cl)
    assert response.dtype == torch.float32  # stays channels-last, for the losses
    assert response.is_contiguous(memory_format=torch.channels_last)
    # After batch norm the responses are about unit scale; bf16 keeps 8 bits.
    assert (response - reference).abs().max() < 0.1
    response.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_channels_last_forward_hands_batch_norm_a_channels_last_gradient():
    net = KanezakiNet(q=8)
    seen = []
    net.layers[-1].register_full_backward_hook(
        lambda module, grad_in, grad_out: seen.append(
            grad_out[0].is_contiguous(memory_format=torch.channels_last)
        )
    )
    forward, x = network_forward(net, torch.rand(1, 3, 16, 20), channels_last=True)
    forward(x).square().mean().backward()
    assert seen == [True]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_segment_records_the_precision_it_ran(precision):
    result = segment(np.random.default_rng(0).random((16, 20, 3)), precision=precision,
                     return_details=True, **FAST)  # fmt: skip
    assert result.params["precision"] == precision
    assert result.labels.shape == (16, 20)


def test_layout_is_checked_and_chosen_by_the_cpu(monkeypatch):
    with pytest.raises(ConfigError, match="layout must be one of"):
        segment(np.zeros((8, 8)), layout="nhwc", **FAST)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [resolve_layout(v, cpu, "fp32") for v in LAYOUTS[1:]] == [False, True]
    assert resolve_layout("contiguous", cpu, "bf16") is False  # an explicit choice wins
    assert resolve_layout("auto", cuda, "bf16") and not resolve_layout("auto", cuda, "fp32")
    for capability, expected in (("AVX2", False), ("AVX512", True), ("DEFAULT", False)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert resolve_layout("auto", cpu, "fp32") is expected
        assert resolve_layout("auto", cpu, "bf16") is True


@pytest.mark.parametrize("method", ["kanezaki2018", "tip2020"])
def test_fp32_layouts_compute_the_same_segmentation(method):
    image = np.random.default_rng(1).random((16, 20, 3))
    options = dict(FAST, max_iter=2, precision="fp32", return_details=True, device="cpu")
    results = {layout: segment(image, method, layout=layout, **options) for layout in LAYOUTS[1:]}
    assert {k: r.params["layout"] for k, r in results.items()} == {k: k for k in LAYOUTS[1:]}
    contiguous, channels_last = results["contiguous"], results["channels-last"]
    # the same network and steps: responses differ by rounding only
    np.testing.assert_allclose(channels_last.response, contiguous.response, atol=1e-3)
    np.testing.assert_allclose(channels_last.loss_history, contiguous.loss_history, rtol=1e-4)


def test_a_volume_runs_contiguous_whatever_the_layout():
    result = segment(np.random.default_rng(0).random((3, 8, 9)), volume=True,
                     layout="channels-last", return_details=True, **FAST)  # fmt: skip
    assert result.params["layout"] == "contiguous" and result.labels.shape == (3, 8, 9)


def test_channel_argmax_is_argmax_first_maximum_on_ties_any_layout():
    response = torch.randn(2, 6, 5, 7)
    response[0, 1, 0, 0] = response[0, 4, 0, 0] = 99.0  # a tie: the first channel wins
    for tensor in (response, response.contiguous(memory_format=torch.channels_last)):
        ids = channel_argmax(tensor)
        assert torch.equal(ids, response.argmax(dim=1)) and ids[0, 0, 0] == 1
        assert ids.is_contiguous()  # the vote and bincount take a view of it
    volume = torch.randn(1, 4, 3, 5, 6)
    assert torch.equal(channel_argmax(volume), volume.argmax(dim=1))


def test_pixel_cross_entropy_scores_channels_last_as_the_default_layout():
    torch.manual_seed(0)
    response = torch.randn(2, 5, 6, 7, requires_grad=True)
    target = torch.randint(0, 5, (2, 6, 7))
    target[0, :2] = IGNORE_INDEX
    expected = F.cross_entropy(response, target, ignore_index=IGNORE_INDEX)
    expected_grad = torch.autograd.grad(expected, response)[0]
    channels_last = response.detach().contiguous(memory_format=torch.channels_last)
    loss = pixel_cross_entropy(channels_last.requires_grad_(), target)
    grad = torch.autograd.grad(loss, channels_last)[0]
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
    assert grad.is_contiguous(memory_format=torch.channels_last)  # no copy on the way back
    # the TIP 2020 loss with scribbles is the same in either layout
    scribble = torch.full((2, 6, 7), 255)
    scribble[:, 0, :3] = 1
    a = tip2020_loss(response.detach(), scribble=scribble)
    b = tip2020_loss(channels_last.detach(), scribble=scribble)
    torch.testing.assert_close(a[0], b[0])
    assert torch.equal(a[1], b[1])
