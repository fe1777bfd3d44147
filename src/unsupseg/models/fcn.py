"""The segmentation FCN shared by all dataset-level architectures.

A stack of ``C`` blocks whose last is ``C*`` (conv + BatchNorm, no ReLU). A layer is
written ``(out_channels, kernel_size)`` or ``(out_channels, kernel_size, dilation)``;
the input channels follow from the previous layer. ``q`` is the last layer's output
channels, the largest number of labels the network can produce.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unsupseg.models.blocks import conv_block

LayerSpec = tuple[int, int] | tuple[int, int, int]

#: ``C(3,64,3) C(64,32,1) C(32,64,3) C*(64,32,1)``, q = 32: the base FCN (24,832 params).
BASE_FCN_LAYERS: tuple[LayerSpec, ...] = ((64, 3), (32, 1), (64, 3), (32, 1))
#: ``C(3,64,3) C(64,128,3) C(128,64,1) C*(64,128,1)``, q = 128: CIFAR-10 classifier (92,992).
CIFAR10_CLASSIFIER_FCN_LAYERS: tuple[LayerSpec, ...] = ((64, 3), (128, 3), (64, 1), (128, 1))
#: ``C(3,64,3) C(64,128,3) C(128,256,3) C*(256,96,1)``, q = 96: STL-10/VOC classifier and
#: VOC autoencoder (396,576).
WIDE_FCN_LAYERS: tuple[LayerSpec, ...] = ((64, 3), (128, 3), (256, 3), (96, 1))
#: ``C(3,64,3) C*(64,32,1)``, q = 32: STL-10 autoencoder (4,064).
SHALLOW_FCN_LAYERS: tuple[LayerSpec, ...] = ((64, 3), (32, 1))
#: Photos presets (BSDS500, MSRC-v2; not in the thesis): ``C(3,32,3) C(32,48,3)``, two dilated
#: blocks ``C(48,48,3, dilation 3) C(48,48,3, dilation 9)`` and ``C*(48,32,1)``, q = 32.
#: Receptive field 29x29 pixels (5 -> 11 -> 29, no gaps between dilated taps) for 58,320
#: parameters and about 1.5x the base FCN's compute per pixel.
PHOTO_FCN_LAYERS: tuple[LayerSpec, ...] = ((32, 3), (48, 3), (48, 3, 3), (48, 3, 9), (32, 1))


def _normalise_layer(index: int, spec: Sequence[int]) -> tuple[int, int, int]:
    if len(spec) not in (2, 3) or not all(isinstance(v, int) for v in spec):
        raise ValueError(
            f"FCN layer {index} must be (out_channels, kernel_size) or "
            f"(out_channels, kernel_size, dilation) of ints; got {spec!r}"
        )
    out_channels, kernel_size, dilation = (*spec, 1) if len(spec) == 2 else spec
    return out_channels, kernel_size, dilation


def fcn_layers_with_q(layers: Sequence[LayerSpec], q: int | None) -> tuple[LayerSpec, ...]:
    """Return ``layers`` with the last layer's output channels set to ``q``.

    ``q=None`` returns the layers unchanged.
    """
    layers = tuple(tuple(spec) for spec in layers)  # type: ignore[misc]
    if not layers:
        raise ValueError("an FCN needs at least one layer")
    if q is None:
        return layers
    if q < 2:
        raise ValueError(f"q must be >= 2 (one label per output channel); got {q}")
    last = layers[-1]
    return (*layers[:-1], (q, *last[1:]))


class FCN(nn.Module):
    """Fully convolutional segmentation network: ``C`` blocks, the last one ``C*``.

    Parameters
    ----------
    layers : sequence of (out_channels, kernel_size) or (out_channels, kernel_size, dilation)
        One entry per block, first to last. Kernel sizes must be odd (the spatial size is
        kept). The last block has no ReLU and its ``out_channels`` is ``q``.
    in_channels : int
        Channels of the input image (3 for RGB).
    padding : {"zeros", "reflect", "replicate"}
        Border padding of every block (:func:`~unsupseg.models.blocks.conv_block`).

    Attributes
    ----------
    q : int
        Output channels.
    receptive_field : int
        Side of the square of input pixels one output pixel sees.

    Examples
    --------
    >>> fcn = FCN(BASE_FCN_LAYERS)
    >>> fcn.q, fcn.receptive_field
    (32, 5)
    >>> fcn(torch.rand(2, 3, 37, 50)).shape
    torch.Size([2, 32, 37, 50])
    """

    def __init__(
        self, layers: Sequence[LayerSpec], in_channels: int = 3, padding: str = "zeros"
    ) -> None:
        super().__init__()
        specs = [_normalise_layer(i, spec) for i, spec in enumerate(layers)]
        if not specs:
            raise ValueError("an FCN needs at least one layer")
        if specs[-1][0] < 2:
            raise ValueError(
                f"the last layer's out_channels is q and must be >= 2; got {specs[-1][0]}"
            )
        blocks = []
        channels = in_channels
        for i, (out_channels, kernel_size, dilation) in enumerate(specs):
            last = i == len(specs) - 1
            blocks.append(
                conv_block(
                    channels, out_channels, kernel_size, relu=not last, dilation=dilation,
                    padding=padding,
                )
            )  # fmt: skip
            channels = out_channels
        self.layers = nn.Sequential(*blocks)
        self.in_channels = in_channels
        self.padding = padding
        self.q = channels
        self.receptive_field = 1 + sum(d * (k - 1) for _, k, d in specs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the response map (B, q, H, W) of images (B, in_channels, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W); got {tuple(x.shape)}"
            )
        return self.layers(x)
