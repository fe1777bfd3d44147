"""The per-image network of Kanezaki (2018) and Kim, Kanezaki, Tanaka (2020)."""

from __future__ import annotations

import torch
from torch import nn

#: Padding modes of :class:`KanezakiNet`'s 3x3 convolutions.
PADDINGS = ("zeros", "replicate")


class KanezakiNet(nn.Module):
    """Fully convolutional network optimised on one image.

    ``n_conv`` 3x3 convolution blocks of ``q`` channels, each Conv -> ReLU -> BatchNorm
    (the order of the reference code), then a 1x1 convolution and BatchNorm with no
    ReLU: the "intra-axis normalisation" that keeps the argmax from tying at zero.

    Parameters
    ----------
    in_channels : int
        Channels of the input image (3 for RGB, any number of bands).
    q : int
        Output channels, the largest number of labels the network can produce.
    n_conv : int
        Number of 3x3 blocks (``nConv`` of the reference code, default 2).
    padding_mode : {'zeros', 'replicate'}
        How the 3x3 convolutions see past the border: zeros, as the reference code,
        or the edge pixels repeated. Zeros make the border pixels look unlike the rest,
        which gives many images a frame of their own label one or two pixels wide.
    ndim : {2, 3}
        Spatial dimensions: 2 for images (N, C, H, W), 3 for volumes (N, C, Z, Y, X),
        with 3x3x3 convolutions and 3-D batch normalisation.

    Examples
    --------
    >>> net = KanezakiNet(q=100, n_conv=2)
    >>> net(torch.rand(1, 3, 32, 48)).shape
    torch.Size([1, 100, 32, 48])
    >>> KanezakiNet(in_channels=1, q=8, ndim=3)(torch.rand(1, 1, 4, 8, 8)).shape
    torch.Size([1, 8, 4, 8, 8])
    """

    def __init__(
        self,
        in_channels: int = 3,
        q: int = 100,
        n_conv: int = 2,
        padding_mode: str = "zeros",
        ndim: int = 2,
    ) -> None:
        super().__init__()
        if q < 2:
            raise ValueError(f"q must be >= 2; got {q}")
        if n_conv < 1:
            raise ValueError(f"n_conv must be >= 1; got {n_conv}")
        if padding_mode not in PADDINGS:
            choices = ", ".join(PADDINGS)
            raise ValueError(f"padding_mode must be one of {choices}; got {padding_mode!r}")
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3; got {ndim}")
        conv_type = nn.Conv2d if ndim == 2 else nn.Conv3d
        norm_type = nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(n_conv):
            conv = conv_type(channels, q, 3, padding=1, padding_mode=padding_mode)
            blocks += [conv, nn.ReLU(), norm_type(q)]
            channels = q
        blocks += [conv_type(q, q, 1), norm_type(q)]
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
