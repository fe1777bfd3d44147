"""Architecture 3 of the thesis, ``autoencoder``: the FCN followed by a convolutional
autoencoder that reconstructs the input image from the FCN's response map.

Loss: cross-entropy on the segmentation plus the MSE between reconstruction and input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unsupseg.models.blocks import down_block, up_block
from unsupseg.models.fcn import BASE_FCN_LAYERS, FCN, LayerSpec, fcn_layers_with_q
from unsupseg.models.output import ModelOutput

#: Channel widths of the thesis' encoder: ``D(q,12) D(12,24) D(24,48) D(48,96)``.
AUTOENCODER_WIDTHS: tuple[int, ...] = (12, 24, 48, 96)


class ConvAutoencoder(nn.Module):
    """Strided encoder-decoder from a response map back to an image.

    With the default widths: ``D(q,12) D(12,24) D(24,48) D(48,96) U(96,48) U(48,24)
    U(24,12) U*(12,3)`` (201,051 parameters at q = 32, 213,339 at q = 96).

    Parameters
    ----------
    in_channels : int
        Channels of the input map (the FCN's q).
    widths : sequence of int
        Output channels of each down block; the up blocks mirror them.
    out_channels : int
        Channels of the reconstruction (3 for RGB).

    Notes
    -----
    Each down block halves H and W, so the input must be divisible by
    ``2 ** len(widths)`` (16 by default). Any other size is padded at the bottom and
    right by replicating the border (``F.pad(mode="replicate")``: no artificial black
    frame to reconstruct) and the reconstruction is cropped back to the input's size.
    The output layer has no activation: the reconstruction is not clamped to [0, 1].
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int] = AUTOENCODER_WIDTHS, out_channels: int = 3
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if not widths:
            raise ValueError("the autoencoder needs at least one down block width")
        downs = []
        channels = in_channels
        for width in widths:
            downs.append(down_block(channels, width))
            channels = width
        ups = []
        for width in reversed(widths[:-1]):
            ups.append(up_block(channels, width))
            channels = width
        ups.append(up_block(channels, out_channels, last=True))
        self.encoder = nn.Sequential(*downs)
        self.decoder = nn.Sequential(*ups)
        self.factor = 2 ** len(widths)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        height, width = r.shape[-2:]
        pad_h = -height % self.factor
        pad_w = -width % self.factor
        if pad_h or pad_w:
            r = F.pad(r, (0, pad_w, 0, pad_h), mode="replicate")
        out = self.decoder(self.encoder(r))
        return out[..., :height, :width]


class AutoencoderNet(nn.Module):
    """The FCN and a :class:`ConvAutoencoder` reading its response map.

    ``forward`` returns a :class:`ModelOutput` with ``response`` and ``reconstruction``
    (the input's size, for any H and W).
    """

    architecture = "autoencoder"

    def __init__(self, fcn: FCN, head: ConvAutoencoder) -> None:
        super().__init__()
        self.fcn = fcn
        self.head = head
        self.q = fcn.q

    def forward(self, x: torch.Tensor) -> ModelOutput:
        r = self.fcn(x)
        return ModelOutput(response=r, reconstruction=self.head(r))


def autoencoder_net(
    fcn_layers: Sequence[LayerSpec] = BASE_FCN_LAYERS,
    *,
    q: int | None = None,
    widths: Sequence[int] = AUTOENCODER_WIDTHS,
    in_channels: int = 3,
    padding: str = "zeros",
) -> AutoencoderNet:
    """Build an :class:`AutoencoderNet`.

    Parameters
    ----------
    fcn_layers : sequence of layer specs
        See :class:`~unsupseg.models.fcn.FCN`; default the base FCN.
    q : int, optional
        Output channels of the FCN; replaces the last layer's ``out_channels`` when given.
    widths : sequence of int
        Encoder widths of the autoencoder (default the thesis' ``(12, 24, 48, 96)``).
    in_channels : int
        Image channels; the reconstruction has as many.
    padding : {"zeros", "reflect", "replicate"}
        Border padding of the FCN's blocks.
    """
    fcn = FCN(fcn_layers_with_q(fcn_layers, q), in_channels=in_channels, padding=padding)
    return AutoencoderNet(fcn, ConvAutoencoder(fcn.q, widths, out_channels=in_channels))
