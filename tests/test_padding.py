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


# -- the dataset-level presets' FCN ------------------------------------------------------


def test_fcn_padding_is_the_convolutions_and_changes_no_parameter():
    from unsupseg.models import build_model, count_parameters, preset_parameter_table
    from unsupseg.models.blocks import conv_block

    assert conv_block(3, 4, 3, padding="replicate")[0].padding_mode == "replicate"
    with pytest.raises(ValueError, match="padding must be one of"):
        conv_block(3, 4, 3, padding="circular")
    totals = preset_parameter_table()
    for name, photos in (("base-bsds500", True), ("autoencoder-msrc", True),
                         ("base-cifar10", False), ("classifier-cifar10", False)):  # fmt: skip
        model = build_model(name, backbone_weights=False)
        modes = {m.padding_mode for m in model.fcn.modules() if isinstance(m, torch.nn.Conv2d)}
        assert modes == {"replicate" if photos else "zeros"}, name
        other = build_model(name, backbone_weights=False, padding="reflect")
        assert count_parameters(other) == count_parameters(model) == totals[name], name
    # A flat image: zeros make the border pixels respond differently, replicate does not.
    flat = torch.full((1, 3, 20, 20), 0.5)
    for padding, uniform in (("zeros", False), ("replicate", True)):
        torch.manual_seed(0)
        fcn = build_model("base-bsds500", padding=padding).fcn.eval()
        with torch.no_grad():
            response = fcn(flat)
        spread = (response - response[:, :, 10:11, 10:11]).abs().amax().item()
        assert (spread < 1e-4) == uniform, (padding, spread)


def test_train_config_padding_default_resume_and_checkpoints(tmp_path):
    import json

    from unsupseg.errors import ConfigError
    from unsupseg.models.checkpoint import CheckpointInfo
    from unsupseg.training import TrainConfig, resolve_config

    assert resolve_config(TrainConfig(preset="base-bsds500", out=tmp_path / "a")).padding == (
        "replicate"
    )
    assert resolve_config(TrainConfig(preset="base-cifar10", out=tmp_path / "b")).padding == (
        "zeros"
    )
    with pytest.raises(ConfigError, match="padding"):
        resolve_config(TrainConfig(preset="base-bsds500", padding="same"))
    # A run folder written before the setting was trained with zeros: resumed as such,
    # and refused with another padding.
    out = tmp_path / "old"
    out.mkdir()
    settings = vars(resolve_config(TrainConfig(preset="base-bsds500", out=out))).copy()
    del settings["padding"]
    (out / "config.json").write_text(json.dumps({"settings": settings}, default=str))
    assert resolve_config(TrainConfig(preset="base-bsds500", out=out, resume=True)).padding == (
        "zeros"
    )
    with pytest.raises(ConfigError, match="trained with padding=zeros"):
        resolve_config(TrainConfig(preset="base-bsds500", out=out, resume=True,
                                   padding="replicate"))  # fmt: skip
    # A checkpoint record without padding loads its weights into a zeros FCN.
    from unsupseg.models import build_model
    from unsupseg.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint

    torch.manual_seed(0)
    model = build_model("base-bsds500", padding="zeros")
    info = CheckpointInfo(preset="base-bsds500", architecture="base", q=model.q,
                          model_overrides={"q": model.q})  # fmt: skip
    path = tmp_path / "old.pt"
    torch.save({**info.to_dict(), "state_dict": model.state_dict()}, path)
    assert torch.load(path, weights_only=True)["format"] == CHECKPOINT_FORMAT
    loaded = load_checkpoint(path, "cpu").model
    modes = {m.padding_mode for m in loaded.modules() if isinstance(m, torch.nn.Conv2d)}
    assert modes == {"zeros"}
