"""Dataset-level architectures: the thesis' parameter totals, shapes, presets, weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torchvision.models import resnet50

from unsupseg.models import (
    FCN,
    PRESETS,
    AutoencoderNet,
    BaseNet,
    ClassifierNet,
    ModelOutput,
    build_custom,
    build_model,
    classifier_net,
    conv_block,
    count_parameters,
    down_block,
    get_preset,
    load_resnet50_weights,
    preset_parameter_table,
    up_block,
    xavier_init_,
)
from unsupseg.models.classifier import RESNET50_WEIGHTS_ENV
from unsupseg.models.fcn import BASE_FCN_LAYERS, PHOTO_FCN_LAYERS

# (total, FCN subtotal, head subtotal), copied from the thesis' appendix.
THESIS_PARAMETERS = {
    "base-cifar10": (24_832, 24_832, 0),
    "base-stl10": (24_832, 24_832, 0),
    "base-voc2012": (24_832, 24_832, 0),
    "classifier-cifar10": (177_506, 92_992, 84_514),
    "classifier-stl10": (2_288_468, 396_576, 1_891_892),
    "classifier-voc2012": (23_954_173, 396_576, 23_557_597),
    "autoencoder-cifar10": (225_883, 24_832, 201_051),
    "autoencoder-stl10": (205_115, 4_064, 201_051),
    "autoencoder-voc2012": (609_915, 396_576, 213_339),
}

# The thesis' training table: epochs, lr, batch size, optimiser.
THESIS_TRAINING = {
    "base-cifar10": (30, 1e-3, 16, "sgd"),
    "base-stl10": (30, 1e-4, 5, "sgd"),
    "base-voc2012": (30, 1e-3, 16, "adam"),
    "classifier-cifar10": (30, 1e-2, 16, "sgd"),
    "classifier-stl10": (30, 1e-3, 16, "sgd"),
    "classifier-voc2012": (30, 1e-3, 16, "sgd"),
    "autoencoder-cifar10": (100, 1e-3, 16, "adam"),
    "autoencoder-stl10": (50, 5e-3, 100, "adam"),
    "autoencoder-voc2012": (100, 1e-3, 16, "adam"),
}

PHOTO_PRESETS = ["base-bsds500", "autoencoder-bsds500", "base-msrc", "classifier-msrc"]
PHOTO_PRESETS.append("autoencoder-msrc")


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    """Every preset's model, Xavier-initialised from seed 0, without ImageNet weights."""
    torch.manual_seed(0)
    return {name: build_model(name, backbone_weights=False) for name in PRESETS}


def _forward(model: nn.Module, x: torch.Tensor) -> ModelOutput:
    with torch.no_grad():
        return model(x)


def test_preset_names():
    assert set(PRESETS) == set(THESIS_PARAMETERS) | set(PHOTO_PRESETS)
    for name, preset in PRESETS.items():
        assert name == preset.name == f"{preset.architecture}-{preset.dataset}"


def test_parameter_totals_match_the_seed():
    table = preset_parameter_table()
    assert {name: table[name] for name in THESIS_PARAMETERS} == {
        name: total for name, (total, _, _) in THESIS_PARAMETERS.items()
    }


@pytest.mark.parametrize("name", list(THESIS_PARAMETERS))
def test_parameter_subtotals_match_the_seed(models, name):
    total, fcn, head = THESIS_PARAMETERS[name]
    model = models[name]
    assert count_parameters(model) == total
    assert count_parameters(model.fcn) == fcn
    if head:
        assert count_parameters(model.head) == head
    else:
        assert isinstance(model, BaseNet)


def test_photo_presets_are_small_with_more_context(models):
    assert PHOTO_FCN_LAYERS[-1][0] == 32
    for name in PHOTO_PRESETS:
        preset, model = PRESETS[name], models[name]
        assert preset.q == model.q == 32
        assert preset.image_size is None and preset.crop_size == 160
        assert not preset.from_thesis
        assert (preset.epochs, preset.lr, preset.batch_size, preset.optimizer) == (
            20,
            1e-3,
            8,
            "adam",
        )
        assert model.fcn.receptive_field > 5 * FCN(BASE_FCN_LAYERS).receptive_field
        assert count_parameters(model) < 400_000
    assert PRESETS["classifier-msrc"].n_classes == 23
    assert PRESETS["classifier-msrc"].multi_label


def test_presets_record_dataset_and_training():
    for name, (epochs, lr, batch_size, optimizer) in THESIS_TRAINING.items():
        preset = PRESETS[name]
        assert (preset.epochs, preset.lr, preset.batch_size, preset.optimizer) == (
            epochs,
            lr,
            batch_size,
            optimizer,
        )
        assert preset.image_size == {"cifar10": 32, "stl10": 96, "voc2012": 224}[preset.dataset]
        assert preset.momentum == 0.9 and preset.aux_weight == 1.0 and preset.from_thesis
        assert 0 < preset.lr_step_size <= preset.epochs and 0 < preset.lr_gamma < 1
        assert preset.multi_label == (preset.dataset == "voc2012")
    assert PRESETS["classifier-stl10"].n_classes == 10
    assert PRESETS["classifier-stl10"].classifier_outputs == 20
    assert PRESETS["classifier-voc2012"].classifier_outputs == 20


SHAPE_CASES = [
    (name, PRESETS[name].image_size or 0) for name in PRESETS if name != "classifier-voc2012"
]


@pytest.mark.parametrize(("name", "size"), SHAPE_CASES)
def test_output_shapes(models, name, size):
    preset, model = PRESETS[name], models[name]
    height, width = (size, size) if size else (40, 56)
    x = torch.rand(2, 3, height, width)
    out = _forward(model, x)
    assert isinstance(out, ModelOutput)
    assert out.response.shape == (2, preset.q, height, width)
    if preset.architecture == "classifier":
        assert out.logits.shape == (2, preset.classifier_outputs)
    else:
        assert out.logits is None
    if preset.architecture == "autoencoder":
        assert out.reconstruction.shape == x.shape
    else:
        assert out.reconstruction is None


def test_voc_classifier_forward(models):
    model = models["classifier-voc2012"].eval()
    out = _forward(model, torch.rand(1, 3, 224, 224))
    assert out.response.shape == (1, 96, 224, 224)
    assert out.logits.shape == (1, 20)
    assert model.multi_label


@pytest.mark.parametrize("name", ["autoencoder-cifar10", "autoencoder-stl10", "autoencoder-msrc"])
def test_autoencoder_any_size(models, name):
    for height, width in [(37, 50), (17, 16), (5, 3)]:
        x = torch.rand(2, 3, height, width)
        assert _forward(models[name], x).reconstruction.shape == x.shape


@pytest.mark.parametrize("name", ["base-cifar10", "classifier-cifar10", "autoencoder-voc2012"])
def test_q_override(name):
    model = build_model(name, q=7, init=False)
    assert model.q == model.fcn.q == 7
    size = PRESETS[name].image_size
    x = torch.rand(2, 3, size, size) if name == "classifier-cifar10" else torch.rand(2, 3, 20, 24)
    assert _forward(model, x).response.shape[1] == 7


def test_build_custom_any_q_and_size():
    for architecture in ("base", "classifier", "autoencoder"):
        model = build_custom(architecture, q=5, fcn_layers=PHOTO_FCN_LAYERS, n_classes=3)
        out = _forward(model, torch.rand(2, 3, 33, 45))
        assert out.response.shape == (2, 5, 33, 45)
    assert out.reconstruction.shape == (2, 3, 33, 45)
    classifier = build_custom("classifier", q=4, n_classes=3)
    assert _forward(classifier, torch.rand(2, 3, 33, 45)).logits.shape == (2, 3)
    with pytest.raises(ValueError, match="n_classes"):
        build_custom("classifier")
    with pytest.raises(ValueError, match="base, classifier, autoencoder"):
        build_custom("segmenter")


def test_fixed_linear_heads_reject_other_sizes(models):
    with pytest.raises(ValueError, match=r"Linear\(6144, 10\).*32x32.*got 40x40"):
        _forward(models["classifier-cifar10"], torch.rand(2, 3, 40, 40))
    with pytest.raises(ValueError, match=r"Linear\(36864, 20\).*96x96.*got 32x48"):
        _forward(models["classifier-stl10"], torch.rand(2, 3, 32, 48))
    bigger = build_model("classifier-cifar10", image_size=40, init=False)
    assert _forward(bigger, torch.rand(2, 3, 40, 40)).logits.shape == (2, 10)
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("classifier-stl10", image_size=100)
    with pytest.raises(ValueError, match="image_size"):
        classifier_net(head="cifar10", n_classes=10)


def test_unknown_names():
    with pytest.raises(ValueError, match="base-cifar10.*classifier-msrc"):
        get_preset("base-imagenet")
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("nope")
    with pytest.raises(TypeError, match="accepted"):
        build_model("base-cifar10", lr=0.1)
    with pytest.raises(ValueError, match="pooling"):
        build_model("classifier-cifar10", head="mlp")


def test_blocks():
    c = conv_block(3, 8, 3)
    assert [type(m) for m in c] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert [type(m) for m in conv_block(3, 8, 1, relu=False)] == [nn.Conv2d, nn.BatchNorm2d]
    assert conv_block(3, 8, 3, dilation=4)(torch.rand(1, 3, 11, 9)).shape == (1, 8, 11, 9)
    assert down_block(3, 8)(torch.rand(2, 3, 16, 12)).shape == (2, 8, 8, 6)
    assert up_block(8, 3)(torch.rand(2, 8, 8, 6)).shape == (2, 3, 16, 12)
    assert [type(m) for m in up_block(8, 3, last=True)] == [nn.ConvTranspose2d]
    with pytest.raises(ValueError, match="odd"):
        conv_block(3, 8, 4)


def test_fcn_structure():
    fcn = FCN(BASE_FCN_LAYERS)
    assert fcn.q == 32 and fcn.receptive_field == 5
    assert not isinstance(fcn.layers[-1][-1], nn.ReLU)
    assert all(isinstance(block[-1], nn.ReLU) for block in fcn.layers[:-1])
    assert FCN(PHOTO_FCN_LAYERS).receptive_field == 29
    with pytest.raises(ValueError, match="out_channels, kernel_size"):
        FCN([(32, 3, 1, 1)])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        fcn(torch.rand(2, 1, 8, 8))
    assert isinstance(build_model("base-msrc", init=False), BaseNet)
    assert isinstance(build_model("autoencoder-msrc", init=False), AutoencoderNet)
    assert isinstance(build_model("classifier-msrc", init=False), ClassifierNet)


def test_xavier_init_is_seeded():
    torch.manual_seed(3)
    a = build_model("autoencoder-cifar10")
    torch.manual_seed(3)
    b = build_model("autoencoder-cifar10")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    conv = xavier_init_(nn.Conv2d(4, 6, 3))
    bound = (6 / ((4 + 6) * 9)) ** 0.5
    assert conv.weight.abs().max() <= bound and not conv.bias.any()
    bn = a.fcn.layers[0][1]
    assert torch.equal(bn.weight, torch.ones(64)) and not bn.bias.any()


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> tuple:
    """A resnet50 state_dict (1000 classes) with a recognisable conv1 and fc."""
    state = resnet50(weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.125)
    path = tmp_path_factory.mktemp("weights") / "resnet50-12345678.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(RESNET50_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def _voc_classifier() -> ClassifierNet:
    return classifier_net(head="resnet50", n_classes=20)


def _assert_loaded(model: ClassifierNet, state: dict, fc_before: torch.Tensor) -> None:
    resnet = model.head.resnet
    assert torch.equal(resnet.conv1.weight, state["conv1.weight"])
    assert torch.equal(resnet.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert torch.equal(resnet.fc.weight, fc_before)  # 1000-class fc skipped


def test_resnet_weights_from_path_env_and_hub(resnet_file, no_weights, monkeypatch):
    path, state = resnet_file
    model = _voc_classifier()
    fc_before = model.head.resnet.fc.weight.detach().clone()
    assert load_resnet50_weights(model, path) == path
    _assert_loaded(model, state, fc_before)

    model = _voc_classifier()
    monkeypatch.setenv(RESNET50_WEIGHTS_ENV, str(path))
    assert load_resnet50_weights(model) == path
    _assert_loaded(model, state, model.head.resnet.fc.weight.detach().clone())
    monkeypatch.delenv(RESNET50_WEIGHTS_ENV)

    (no_weights / "checkpoints").mkdir(parents=True)
    (no_weights / "checkpoints" / path.name).write_bytes(path.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model("classifier-voc2012")
    assert torch.equal(model.head.resnet.conv1.weight, state["conv1.weight"])


def test_resnet_weights_absent_warns_once(no_weights):
    with pytest.warns(UserWarning) as record:
        model = build_model("classifier-voc2012")
    assert len(record) == 1
    assert "from scratch" in str(record[0].message)
    assert not torch.equal(model.head.resnet.conv1.weight[0, 0, 0, 0], torch.tensor(0.125))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model("classifier-voc2012", backbone_weights=False, init=False)


def test_resnet_weights_errors(no_weights, tmp_path, monkeypatch):
    model = _voc_classifier()
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_resnet50_weights(model, tmp_path / "missing.pth")
    monkeypatch.setenv(RESNET50_WEIGHTS_ENV, str(tmp_path / "env.pth"))
    with pytest.raises(FileNotFoundError, match=RESNET50_WEIGHTS_ENV):
        load_resnet50_weights(model)
    wrong = tmp_path / "wrong.pth"
    torch.save(nn.Linear(2, 2).state_dict(), wrong)
    before = model.head.resnet.conv1.weight.detach().clone()
    with pytest.raises(ValueError, match="not a torchvision ResNet-50"):
        load_resnet50_weights(model, wrong)
    assert torch.equal(model.head.resnet.conv1.weight, before)
    with pytest.raises(TypeError, match="no torchvision ResNet"):
        load_resnet50_weights(nn.Linear(2, 2), wrong)
    with pytest.raises(ValueError, match="only the resnet50 head"):
        build_model("base-cifar10", backbone_weights=wrong)
