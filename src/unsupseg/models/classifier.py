"""Architecture 2 of the thesis, ``classifier``: the FCN followed by an image classifier that
reads the FCN's response map and is trained on image-level labels.

Loss: cross-entropy on the segmentation plus cross-entropy on the class (BCE with logits
for multi-label datasets such as VOC 2012 and MSRC-v2).

Heads
-----
``cifar10``
    ``C(q,12,3) C(12,12,3) MaxPool2 C(12,24,3) Conv(24,24,3)+ReLU Dropout(0.2)
    Linear(6144,10)``: fixed Linear input, 32x32 images.
``stl10``
    ``C(q,32,3) C(32,64,3) MaxPool2 C(64,128,3) Dropout(0.05) C(128,128,3) MaxPool2
    C(128,256,3) C(256,256,3) MaxPool2 Dropout(0.1) Linear(36864,20)``: fixed Linear
    input, 96x96 images.
``resnet50``
    ``C(q,64,1) Dropout(0.05) C(64,32,1) Dropout(0.05) C(32,3,1)`` then torchvision's
    ResNet-50 with ``fc = Linear(2048, n_classes)`` (VOC 2012); any image size.
``pooling``
    ``C(q,64,3) MaxPool2 C(64,128,3) MaxPool2 C(128,128,3) Dropout(0.1)``, global average
    pooling, ``Linear(128, n_classes)``: not in the thesis, for photos of any size (MSRC-v2).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet, resnet50

from unsupseg.models.blocks import conv_block
from unsupseg.models.fcn import BASE_FCN_LAYERS, FCN, LayerSpec, fcn_layers_with_q
from unsupseg.models.output import ModelOutput

#: Environment variable naming a local ResNet-50 ImageNet ``state_dict`` file.
RESNET50_WEIGHTS_ENV = "UNSUPSEG_RESNET50_WEIGHTS"


class _FixedSizeHead(nn.Module):
    """A head ending in a Linear layer whose input size fixes the image size."""

    name = ""

    def __init__(self, image_size: int, divisor: int) -> None:
        super().__init__()
        if image_size < divisor or image_size % divisor:
            raise ValueError(
                f"the {self.name} classifier head needs an image_size divisible by {divisor} "
                f"(its Linear input is computed from it); got {image_size}"
            )
        self.image_size = image_size

    def _check_size(self, r: torch.Tensor) -> None:
        height, width = r.shape[-2:]
        if (height, width) != (self.image_size, self.image_size):
            size = self.image_size
            linear = self.classifier[-1]
            raise ValueError(
                f"the {self.name} classifier head has a fixed Linear({linear.in_features}, "
                f"{linear.out_features}) and needs {size}x{size} images; got {height}x{width}. "
                f"Resize or crop the images to {size}x{size}, build the model with "
                f"image_size={height if height == width else '<side>'}, or use the 'pooling' "
                "head, which accepts any size."
            )


class Cifar10Head(_FixedSizeHead):
    """The thesis' CIFAR-10 classifier (84,514 parameters at q = 128, 32x32, 10 classes).

    ``C(q,12,3) C(12,12,3) MaxPool2 C(12,24,3) Conv(24,24,3)+ReLU (no BatchNorm)
    Dropout(0.2) Linear(24 * (image_size / 2) ** 2, n_classes)``.
    """

    name = "cifar10"

    def __init__(self, q: int, n_classes: int = 10, image_size: int = 32) -> None:
        super().__init__(image_size, divisor=2)
        side = image_size // 2
        self.features = nn.Sequential(
            conv_block(q, 12, 3),
            conv_block(12, 12, 3),
            nn.MaxPool2d(2),
            conv_block(12, 24, 3),
            nn.Conv2d(24, 24, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.2), nn.Flatten(), nn.Linear(24 * side * side, n_classes)
        )

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        self._check_size(r)
        return self.classifier(self.features(r))


class Stl10Head(_FixedSizeHead):
    """The thesis' STL-10 classifier (1,891,892 parameters at q = 96, 96x96, 20 outputs).

    ``C(q,32,3) C(32,64,3) MaxPool2 C(64,128,3) Dropout(0.05) C(128,128,3) MaxPool2
    C(128,256,3) C(256,256,3) MaxPool2 Dropout(0.1) Linear(256 * (image_size / 8) ** 2,
    n_classes)``.

    Notes
    -----
    The thesis' appendix lists ``fc_layer.1.weight 737280`` = 36,864 x 20, i.e. 20
    outputs, although STL-10 has 10 classes (its layer table says 10). The preset
    reproduces the listed 20 outputs so that the parameter total matches (2,288,468);
    the ten extra logits are never a target and simply learn to stay low.
    """

    name = "stl10"

    def __init__(self, q: int, n_classes: int = 20, image_size: int = 96) -> None:
        super().__init__(image_size, divisor=8)
        side = image_size // 8
        self.features = nn.Sequential(
            conv_block(q, 32, 3),
            conv_block(32, 64, 3),
            nn.MaxPool2d(2),
            conv_block(64, 128, 3),
            nn.Dropout(0.05),
            conv_block(128, 128, 3),
            nn.MaxPool2d(2),
            conv_block(128, 256, 3),
            conv_block(256, 256, 3),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.1), nn.Flatten(), nn.Linear(256 * side * side, n_classes)
        )

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        self._check_size(r)
        return self.classifier(self.features(r))


class ResNet50Head(nn.Module):
    """The thesis' VOC 2012 classifier (23,557,597 parameters at q = 96, 20 classes).

    ``C(q,64,1) Dropout(0.05) C(64,32,1) Dropout(0.05) C(32,3,1)`` maps the response map
    to a 3-channel image, then torchvision's ``resnet50(weights=None)`` with
    ``fc = Linear(2048, n_classes)``. Works at any image size (ResNet ends in adaptive
    average pooling). ImageNet weights: :func:`load_resnet50_weights`.
    """

    name = "resnet50"

    def __init__(self, q: int, n_classes: int = 20) -> None:
        super().__init__()
        self.adapter = nn.Sequential(
            conv_block(q, 64, 1),
            nn.Dropout(0.05),
            conv_block(64, 32, 1),
            nn.Dropout(0.05),
            conv_block(32, 3, 1),
        )
        self.resnet = resnet50(weights=None, num_classes=n_classes)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.resnet(self.adapter(r))


class PoolingHead(nn.Module):
    """A small classifier for any image size (not in the thesis; used for MSRC-v2).

    ``C(q,64,3) MaxPool2 C(64,128,3) MaxPool2 C(128,128,3) Dropout(0.1)``, global average
    pooling, ``Linear(128, n_classes)`` (243,543 parameters at q = 32, 23 classes).
    """

    name = "pooling"

    def __init__(self, q: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_block(q, 64, 3),
            nn.MaxPool2d(2),
            conv_block(64, 128, 3),
            nn.MaxPool2d(2),
            conv_block(128, 128, 3),
            nn.Dropout(0.1),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, n_classes)
        )

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(r))


#: Classifier heads by name.
HEADS = ("cifar10", "stl10", "resnet50", "pooling")


def build_head(name: str, q: int, n_classes: int, image_size: int | None = None) -> nn.Module:
    """Build the classifier head ``name`` (one of :data:`HEADS`) reading ``q`` channels.

    ``image_size`` is required by the fixed-Linear heads ``cifar10`` and ``stl10`` and
    ignored by the others.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1; got {n_classes}")
    if name in ("cifar10", "stl10"):
        if image_size is None:
            raise ValueError(
                f"the {name} classifier head ends in a fixed Linear layer: pass image_size "
                "(the side of the square training images, e.g. 32 for CIFAR-10, 96 for STL-10)"
            )
        head_class = Cifar10Head if name == "cifar10" else Stl10Head
        return head_class(q, n_classes=n_classes, image_size=image_size)
    if name == "resnet50":
        return ResNet50Head(q, n_classes=n_classes)
    if name == "pooling":
        return PoolingHead(q, n_classes=n_classes)
    raise ValueError(f"unknown classifier head {name!r}; choose one of {', '.join(HEADS)}")


class ClassifierNet(nn.Module):
    """The FCN and a classifier head reading its response map.

    Parameters
    ----------
    fcn : FCN
        The segmentation network.
    head : nn.Module
        Maps the response map (B, q, H, W) to logits (B, n_classes).
    multi_label : bool
        Whether an image carries several classes (train with BCE with logits) or one
        (cross-entropy). Recorded for the training loop; ``forward`` is the same.
    """

    architecture = "classifier"

    def __init__(self, fcn: FCN, head: nn.Module, multi_label: bool = False) -> None:
        super().__init__()
        self.fcn = fcn
        self.head = head
        self.q = fcn.q
        self.multi_label = multi_label

    def forward(self, x: torch.Tensor) -> ModelOutput:
        r = self.fcn(x)
        return ModelOutput(response=r, logits=self.head(r))


def classifier_net(
    fcn_layers: Sequence[LayerSpec] = BASE_FCN_LAYERS,
    *,
    head: str = "pooling",
    n_classes: int,
    image_size: int | None = None,
    multi_label: bool = False,
    q: int | None = None,
    in_channels: int = 3,
    padding: str = "zeros",
) -> ClassifierNet:
    """Build a :class:`ClassifierNet` (torch's default initialisation, no weights loaded).

    Parameters
    ----------
    fcn_layers : sequence of layer specs
        See :class:`~unsupseg.models.fcn.FCN`; default the base FCN.
    head : {"cifar10", "stl10", "resnet50", "pooling"}
        The classifier head (see the module docstring).
    n_classes : int
        Outputs of the last Linear layer.
    image_size : int, optional
        Side of the square images; required by the ``cifar10`` and ``stl10`` heads.
    multi_label : bool
        Whether images carry several classes.
    q : int, optional
        Output channels of the FCN; replaces the last layer's ``out_channels`` when given.
    in_channels : int
        Image channels.
    padding : {"zeros", "reflect", "replicate"}
        Border padding of the FCN's blocks.
    """
    fcn = FCN(fcn_layers_with_q(fcn_layers, q), in_channels=in_channels, padding=padding)
    return ClassifierNet(fcn, build_head(head, fcn.q, n_classes, image_size), multi_label)


def _find_resnet(model: nn.Module) -> ResNet:
    if isinstance(model, ResNet):
        return model
    for module in model.modules():
        if isinstance(module, ResNet):
            return module
    raise TypeError(f"{type(model).__name__} holds no torchvision ResNet to load weights into")


def _resnet50_weights_file(path: str | os.PathLike | None) -> Path | None:
    if path is not None:
        source = "path"
    elif os.environ.get(RESNET50_WEIGHTS_ENV):
        path, source = os.environ[RESNET50_WEIGHTS_ENV], f"${RESNET50_WEIGHTS_ENV}"
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(
                f"ResNet-50 weights file {file} (from {source}) does not exist; give the path "
                "of a torchvision resnet50 state_dict (e.g. resnet50-0676ba61.pth)"
            )
        return file
    cached = sorted((Path(torch.hub.get_dir()) / "checkpoints").glob("resnet50-*.pth"))
    return cached[0] if cached else None


def load_resnet50_weights(model: nn.Module, path: str | os.PathLike | None = None) -> Path | None:
    """Load ImageNet weights into the ResNet-50 of ``model`` if they are on this machine.

    Nothing is ever downloaded. The weights are looked for, in order, at ``path``, at the
    file named by the ``UNSUPSEG_RESNET50_WEIGHTS`` environment variable, and in the
    torch hub cache (``torch.hub.get_dir()/checkpoints/resnet50-*.pth``, where
    torchvision's ``ResNet50_Weights`` are stored once downloaded; the first in sorted
    order). If none is found, the ResNet keeps its current (random) initialisation and a
    single ``UserWarning`` says that it trains from scratch.

    Parameters
    ----------
    model : nn.Module
        A torchvision ``ResNet`` or a module holding one (e.g. the VOC 2012 classifier).
    path : str or path-like, optional
        A torchvision ResNet-50 ``state_dict`` file.

    Returns
    -------
    Path or None
        The file loaded, or None when none was found.

    Raises
    ------
    FileNotFoundError
        ``path`` or the environment variable names a file that does not exist.
    ValueError
        The file is not a ResNet-50 ``state_dict``.

    Notes
    -----
    The file's ``fc`` layer (1000 ImageNet classes) is skipped when its shape differs
    from the model's, so ``fc`` keeps its initialisation.
    """
    resnet = _find_resnet(model)
    file = _resnet50_weights_file(path)
    if file is None:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        warnings.warn(
            "no ResNet-50 ImageNet weights found (looked for $"
            f"{RESNET50_WEIGHTS_ENV} and {hub}/resnet50-*.pth); the ResNet-50 trains from "
            "scratch. Nothing is downloaded: pass the path of torchvision's "
            "resnet50-0676ba61.pth or put it in that folder.",
            UserWarning,
            stacklevel=2,
        )
        return None
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{file} does not hold a state_dict (got {type(state).__name__})")
    own = resnet.state_dict()
    for key in ("fc.weight", "fc.bias"):
        if key in state and key in own and state[key].shape != own[key].shape:
            del state[key]
    # Check everything before loading anything, so a wrong file leaves the model intact.
    missing = [
        key
        for key in own
        if key not in state
        and not key.startswith("fc.")
        and not key.endswith("num_batches_tracked")
    ]
    unexpected = [key for key in state if key not in own]
    mismatched = [key for key in state if key in own and state[key].shape != own[key].shape]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{file} is not a torchvision ResNet-50 state_dict: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {mismatched[:5]}"
        )
    resnet.load_state_dict(state, strict=False)
    return file
