"""Network architectures.

Per-image: :class:`KanezakiNet`. Dataset-level (the thesis' three architectures):
:class:`BaseNet`, :class:`ClassifierNet`, :class:`AutoencoderNet`, built by preset name
with :func:`build_model` or from any FCN with :func:`build_custom`.
"""

from unsupseg.models.autoencoder import AutoencoderNet, ConvAutoencoder, autoencoder_net
from unsupseg.models.base import BaseNet, base_net
from unsupseg.models.blocks import conv_block, down_block, up_block, xavier_init_
from unsupseg.models.classifier import (
    HEADS,
    ClassifierNet,
    classifier_net,
    load_resnet50_weights,
)
from unsupseg.models.fcn import FCN, PHOTO_FCN_LAYERS
from unsupseg.models.kanezaki import KanezakiNet
from unsupseg.models.output import ModelOutput
from unsupseg.models.registry import (
    ARCHITECTURES,
    DATASETS,
    PRESETS,
    Preset,
    build_custom,
    build_model,
    count_parameters,
    get_preset,
    preset_parameter_table,
)

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "FCN",
    "HEADS",
    "PHOTO_FCN_LAYERS",
    "PRESETS",
    "AutoencoderNet",
    "BaseNet",
    "ClassifierNet",
    "ConvAutoencoder",
    "KanezakiNet",
    "ModelOutput",
    "Preset",
    "autoencoder_net",
    "base_net",
    "build_custom",
    "build_model",
    "classifier_net",
    "conv_block",
    "count_parameters",
    "down_block",
    "get_preset",
    "load_resnet50_weights",
    "preset_parameter_table",
    "up_block",
    "xavier_init_",
]
