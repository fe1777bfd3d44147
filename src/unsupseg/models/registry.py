"""Presets of the dataset-level architectures, built by name.

The nine ``{base,classifier,autoencoder}-{cifar10,stl10,voc2012}`` presets reproduce the
thesis' appendix (their parameter totals match it exactly) and its training table. The
photos presets (``*-bsds500``, ``*-msrc``) are not in the thesis: they train on random
crops of full-resolution photos and use an FCN with a 29x29 receptive field
(:data:`~unsupseg.models.fcn.PHOTO_FCN_LAYERS`) instead of the base FCN's 5x5.

Examples
--------
>>> model = build_model("autoencoder-cifar10")  # seed torch first for reproducibility
>>> count_parameters(model)
225883
>>> build_model("base-cifar10", q=64).q
64
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from unsupseg.errors import ConfigError
from unsupseg.models.autoencoder import AUTOENCODER_WIDTHS, autoencoder_net
from unsupseg.models.base import base_net
from unsupseg.models.blocks import PADDINGS, xavier_init_
from unsupseg.models.classifier import HEADS, ResNet50Head, classifier_net, load_resnet50_weights
from unsupseg.models.fcn import (
    BASE_FCN_LAYERS,
    CIFAR10_CLASSIFIER_FCN_LAYERS,
    PHOTO_FCN_LAYERS,
    SHALLOW_FCN_LAYERS,
    WIDE_FCN_LAYERS,
    LayerSpec,
    fcn_layers_with_q,
)

ARCHITECTURES = ("base", "classifier", "autoencoder")
DATASETS = ("cifar10", "stl10", "voc2012", "bsds500", "msrc")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Preset:
    """A named model and its training configuration (plain data).

    Attributes
    ----------
    name : str
        ``"{architecture}-{dataset}"``.
    architecture : {"base", "classifier", "autoencoder"}
    dataset : {"cifar10", "stl10", "voc2012", "bsds500", "msrc"}
    fcn_layers : tuple of layer specs
        See :class:`~unsupseg.models.fcn.FCN`; the last layer's channels are ``q``.
    image_size : int or None
        Side of the square images the model is trained on (32, 96, 224), or None for
        full-resolution photos trained on random crops of ``crop_size``.
    crop_size : int or None
        Side of the random training crops of the photos presets.
    n_classes : int or None
        Image-level classes of the dataset (None for BSDS500, which has none).
    multi_label : bool
        Whether an image carries several classes (VOC 2012, MSRC-v2: BCE with logits).
    head : str or None
        Classifier head (``"cifar10"``, ``"stl10"``, ``"resnet50"``, ``"pooling"``).
    n_outputs : int or None
        Logits of the classifier when they differ from ``n_classes`` (STL-10: 20).
    autoencoder_widths : tuple of int
        Encoder widths of the autoencoder head.
    epochs, lr, batch_size, optimizer, momentum
        Training configuration (SGD momentum 0.9; ``momentum`` is ignored by Adam).
    lr_step_size, lr_gamma : int, float
        ``torch.optim.lr_scheduler.StepLR`` parameters, in epochs. The thesis names StepLR
        without its parameters: the thesis presets divide the learning rate by 10 every
        third of the run; the photos presets halve it once, after 10 of 20 epochs.
    aux_weight : float
        Weight of the classifier or reconstruction loss; the segmentation loss has
        weight 1 (the thesis' 1:1).
    padding : {"zeros", "reflect", "replicate"}
        Border padding of the FCN's convolutions: zeros in the thesis' presets; replicate
        in the photos presets, where zeros trained a frame of its own label along the
        border of most photos (README, "No frame at the border").
    from_thesis : bool
        Whether the preset is the thesis' (False for the photos presets).
    notes : str
        Deviations and choices worth knowing.
    """

    name: str
    architecture: str
    dataset: str
    fcn_layers: tuple[LayerSpec, ...]
    image_size: int | None
    crop_size: int | None = None
    n_classes: int | None = None
    multi_label: bool = False
    head: str | None = None
    n_outputs: int | None = None
    autoencoder_widths: tuple[int, ...] = AUTOENCODER_WIDTHS
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 16
    optimizer: str = "sgd"
    momentum: float = 0.9
    lr_step_size: int = 10
    lr_gamma: float = 0.1
    aux_weight: float = 1.0
    padding: str = "zeros"
    from_thesis: bool = True
    notes: str = ""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}; got {self.architecture!r}"
            )
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {self.padding!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}"
            )
        if self.architecture == "classifier":
            if self.head not in HEADS:
                raise ValueError(
                    f"a classifier preset needs head in {', '.join(HEADS)}; got {self.head!r}"
                )
            if self.n_classes is None and self.n_outputs is None:
                raise ValueError("a classifier preset needs n_classes (or n_outputs)")

    @property
    def q(self) -> int:
        """Output channels of the FCN."""
        return self.fcn_layers[-1][0]

    @property
    def classifier_outputs(self) -> int | None:
        """Width of the classifier's logits (``n_outputs``, else ``n_classes``)."""
        return self.n_outputs if self.n_outputs is not None else self.n_classes


_DATASET_INFO: dict[str, dict[str, Any]] = {
    "cifar10": {"image_size": 32, "n_classes": 10},
    "stl10": {"image_size": 96, "n_classes": 10},
    "voc2012": {"image_size": 224, "n_classes": 20, "multi_label": True},
    "bsds500": {"image_size": None, "crop_size": 160},
    "msrc": {"image_size": None, "crop_size": 160, "n_classes": 23, "multi_label": True},
}

# (architecture, dataset) -> FCN, head and the thesis' (epochs, lr, batch size, optimiser).
_THESIS_TABLE: dict[tuple[str, str], dict[str, Any]] = {
    ("base", "cifar10"): {"fcn_layers": BASE_FCN_LAYERS, "train": (30, 1e-3, 16, "sgd")},
    ("base", "stl10"): {"fcn_layers": BASE_FCN_LAYERS, "train": (30, 1e-4, 5, "sgd")},
    ("base", "voc2012"): {"fcn_layers": BASE_FCN_LAYERS, "train": (30, 1e-3, 16, "adam")},
    ("classifier", "cifar10"): {
        "fcn_layers": CIFAR10_CLASSIFIER_FCN_LAYERS,
        "head": "cifar10",
        "train": (30, 1e-2, 16, "sgd"),
    },
    ("classifier", "stl10"): {
        "fcn_layers": WIDE_FCN_LAYERS,
        "head": "stl10",
        "n_outputs": 20,
        "train": (30, 1e-3, 16, "sgd"),
        "notes": "20 logits as in the thesis' appendix although STL-10 has 10 classes",
    },
    ("classifier", "voc2012"): {
        "fcn_layers": WIDE_FCN_LAYERS,
        "head": "resnet50",
        "train": (30, 1e-3, 16, "sgd"),
        "notes": "ResNet-50 ImageNet weights loaded when present locally, else from scratch",
    },
    ("autoencoder", "cifar10"): {"fcn_layers": BASE_FCN_LAYERS, "train": (100, 1e-3, 16, "adam")},
    ("autoencoder", "stl10"): {
        "fcn_layers": SHALLOW_FCN_LAYERS,
        "train": (50, 5e-3, 100, "adam"),
    },
    ("autoencoder", "voc2012"): {"fcn_layers": WIDE_FCN_LAYERS, "train": (100, 1e-3, 16, "adam")},
}

_PHOTO_NOTES = (
    "not in the thesis: our choice of a 29x29 receptive-field FCN and Adam 1e-3, batch 8 of "
    "160x160 random crops, 20 epochs (minutes on 2 CPU cores)"
)
_PHOTO_TABLE: dict[tuple[str, str], dict[str, Any]] = {
    (architecture, dataset): {}
    for architecture, dataset in [
        ("base", "bsds500"),
        ("autoencoder", "bsds500"),
        ("base", "msrc"),
        ("classifier", "msrc"),
        ("autoencoder", "msrc"),
    ]
}
_PHOTO_TABLE[("classifier", "msrc")] = {"head": "pooling"}


def _make_presets() -> dict[str, Preset]:
    presets = {}
    for (architecture, dataset), entry in _THESIS_TABLE.items():
        entry = dict(entry)
        epochs, lr, batch_size, optimizer = entry.pop("train")
        name = f"{architecture}-{dataset}"
        presets[name] = Preset(
            name=name,
            architecture=architecture,
            dataset=dataset,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,
            lr_step_size=epochs // 3,
            lr_gamma=0.1,
            **_DATASET_INFO[dataset],
            **entry,
        )
    for (architecture, dataset), entry in _PHOTO_TABLE.items():
        name = f"{architecture}-{dataset}"
        presets[name] = Preset(
            name=name,
            architecture=architecture,
            dataset=dataset,
            fcn_layers=PHOTO_FCN_LAYERS,
            epochs=20,
            lr=1e-3,
            batch_size=8,
            optimizer="adam",
            lr_step_size=10,
            lr_gamma=0.5,
            padding="replicate",
            from_thesis=False,
            notes=_PHOTO_NOTES,
            **_DATASET_INFO[dataset],
            **entry,
        )
    return presets


#: All presets by name.
PRESETS: dict[str, Preset] = _make_presets()


def get_preset(name: str | Preset) -> Preset:
    """Return the preset ``name`` (a :class:`Preset` is returned as is)."""
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_custom(
    architecture: str,
    *,
    q: int | None = None,
    fcn_layers: Sequence[LayerSpec] = BASE_FCN_LAYERS,
    n_classes: int | None = None,
    head: str = "pooling",
    image_size: int | None = None,
    multi_label: bool = False,
    autoencoder_widths: Sequence[int] = AUTOENCODER_WIDTHS,
    in_channels: int = 3,
    padding: str = "zeros",
    init: bool = True,
    backbone_weights: bool | str | os.PathLike = True,
) -> nn.Module:
    """Build any architecture with any FCN and q.

    Parameters
    ----------
    architecture : {"base", "classifier", "autoencoder"}
    q : int, optional
        Output channels of the FCN; replaces the last layer's ``out_channels`` of
        ``fcn_layers`` when given.
    fcn_layers : sequence of layer specs
        ``(out_channels, kernel_size[, dilation])`` per block (default the base FCN).
    n_classes : int, optional
        Logits of the classifier (required for ``architecture="classifier"``).
    head : {"cifar10", "stl10", "resnet50", "pooling"}
        Classifier head; ``"pooling"`` works for any image size.
    image_size : int, optional
        Side of the square images; required by the fixed-Linear ``cifar10``/``stl10`` heads.
    multi_label : bool
        Recorded on the classifier for the training loss.
    autoencoder_widths : sequence of int
        Encoder widths of the autoencoder.
    in_channels : int
        Image channels.
    padding : {"zeros", "reflect", "replicate"}
        Border padding of the FCN (:func:`~unsupseg.models.blocks.conv_block`).
    init : bool
        Apply Xavier initialisation (:func:`~unsupseg.models.blocks.xavier_init_`), drawn
        from torch's global generator: seed it first for a reproducible model.
    backbone_weights : bool or path
        ``resnet50`` head only: True loads ImageNet weights when they are on this machine
        (:func:`~unsupseg.models.classifier.load_resnet50_weights`, which warns once
        otherwise), a path loads that file, False keeps the random initialisation.

    Returns
    -------
    nn.Module
        A :class:`BaseNet`, :class:`ClassifierNet` or :class:`AutoencoderNet`; its
        ``forward`` returns a :class:`ModelOutput`.
    """
    layers = fcn_layers_with_q(fcn_layers, q)
    if architecture == "base":
        model = base_net(layers, in_channels=in_channels, padding=padding)
    elif architecture == "classifier":
        if n_classes is None:
            raise ValueError("the classifier architecture needs n_classes")
        model = classifier_net(
            layers,
            head=head,
            n_classes=n_classes,
            image_size=image_size,
            multi_label=multi_label,
            in_channels=in_channels,
            padding=padding,
        )
    elif architecture == "autoencoder":
        model = autoencoder_net(
            layers, widths=autoencoder_widths, in_channels=in_channels, padding=padding
        )
    else:
        raise ValueError(
            f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    if init:
        xavier_init_(model)
    has_resnet = any(isinstance(m, ResNet50Head) for m in model.modules())
    if has_resnet and backbone_weights is not False:
        load_resnet50_weights(model, None if backbone_weights is True else backbone_weights)
    elif not has_resnet and not isinstance(backbone_weights, bool):
        raise ValueError("backbone_weights names a file, but only the resnet50 head has a backbone")
    return model


_OVERRIDABLE = (
    "q",
    "fcn_layers",
    "n_classes",
    "n_outputs",
    "head",
    "image_size",
    "multi_label",
    "autoencoder_widths",
    "padding",
    "in_channels",
)


def build_model(
    preset: str | Preset,
    *,
    init: bool = True,
    backbone_weights: bool | str | os.PathLike = True,
    **overrides: Any,
) -> nn.Module:
    """Build the model of a preset.

    Parameters
    ----------
    preset : str or Preset
        A name of :data:`PRESETS` or a :class:`Preset`.
    init : bool
        Apply Xavier initialisation (seed torch's global generator first).
    backbone_weights : bool or path
        See :func:`build_custom` (``classifier-voc2012`` only).
    **overrides
        Any of ``q``, ``fcn_layers``, ``n_classes``, ``n_outputs``, ``head``,
        ``image_size``, ``multi_label``, ``autoencoder_widths``, ``padding``,
        ``in_channels``.
        ``q`` changes the FCN's output channels (and the head's input).

    Returns
    -------
    nn.Module
        Its ``forward`` returns a :class:`ModelOutput`.

    Raises
    ------
    ConfigError
        Unknown preset name.
    TypeError
        Unknown override.
    """
    spec = get_preset(preset)
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise TypeError(
            f"build_model got unknown overrides {unknown}; accepted: {', '.join(_OVERRIDABLE)}"
        )
    q = overrides.pop("q", None)
    in_channels = overrides.pop("in_channels", 3)
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    return build_custom(
        spec.architecture,
        q=q,
        fcn_layers=spec.fcn_layers,
        n_classes=spec.classifier_outputs,
        head=spec.head or "pooling",
        image_size=spec.image_size,
        multi_label=spec.multi_label,
        autoencoder_widths=spec.autoencoder_widths,
        in_channels=in_channels,
        padding=spec.padding,
        init=init,
        backbone_weights=backbone_weights,
    )


def preset_parameter_table() -> dict[str, int]:
    """Trainable parameters of every preset's model, by preset name."""
    return {
        name: count_parameters(build_model(name, init=False, backbone_weights=False))
        for name in PRESETS
    }
