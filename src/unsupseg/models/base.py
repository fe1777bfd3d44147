"""Architecture 1 of the thesis, ``base``: the Kanezaki FCN trained on a whole dataset.

The only loss is the cross-entropy between the response map and its refined argmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unsupseg.models.fcn import BASE_FCN_LAYERS, FCN, LayerSpec, fcn_layers_with_q
from unsupseg.models.output import ModelOutput


class BaseNet(nn.Module):
    """The FCN alone.

    Parameters
    ----------
    fcn : FCN
        The segmentation network.

    Examples
    --------
    >>> net = base_net()
    >>> net(torch.rand(2, 3, 32, 32)).response.shape
    torch.Size([2, 32, 32, 32])
    """

    architecture = "base"

    def __init__(self, fcn: FCN) -> None:
        super().__init__()
        self.fcn = fcn
        self.q = fcn.q

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(response=self.fcn(x))


def base_net(
    fcn_layers: Sequence[LayerSpec] = BASE_FCN_LAYERS,
    *,
    q: int | None = None,
    in_channels: int = 3,
    padding: str = "zeros",
) -> BaseNet:
    """Build a :class:`BaseNet`.

    Parameters
    ----------
    fcn_layers : sequence of layer specs
        See :class:`~unsupseg.models.fcn.FCN`; default the thesis' base FCN
        ``C(3,64,3) C(64,32,1) C(32,64,3) C*(64,32,1)`` (24,832 parameters at q = 32).
    q : int, optional
        Output channels; replaces the last layer's ``out_channels`` when given.
    in_channels : int
        Image channels.
    padding : {"zeros", "reflect", "replicate"}
        Border padding of the FCN's blocks.
    """
    return BaseNet(FCN(fcn_layers_with_q(fcn_layers, q), in_channels=in_channels, padding=padding))
