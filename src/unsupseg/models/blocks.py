"""Building blocks of the dataset-level architectures (the thesis' appendix).

``C(i, o, k)`` is :func:`conv_block`, ``C*`` the same with ``relu=False``; ``D(i, o)`` is
:func:`down_block`; ``U(i, o)`` is :func:`up_block` and ``U*`` is ``up_block(..., last=True)``.
"""

from __future__ import annotations

from torch import nn

#: ``padding_mode`` values of :func:`conv_block` (those of :class:`torch.nn.Conv2d` that
#: keep the borders' statistics or not: zeros is the thesis', replicate the photos presets').
PADDINGS = ("zeros", "reflect", "replicate")


def _check_channels(i: int, o: int) -> None:
    if i < 1 or o < 1:
        raise ValueError(f"channel counts must be >= 1; got in={i}, out={o}")


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    relu: bool = True,
    dilation: int = 1,
    padding: str = "zeros",
) -> nn.Sequential:
    """``C(i, o, k)``: Conv2d (stride 1, "same" padding) + BatchNorm2d (+ ReLU).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        Odd kernel size ``k``; the padding is ``dilation * (k // 2)`` so the spatial size
        is kept (``k // 2`` for the thesis' undilated blocks).
    relu : bool
        ``False`` gives ``C*``, the FCN output layer: conv + BatchNorm with no ReLU.
    dilation : int
        Dilation of the convolution (1 in all the thesis' presets).
    padding : {"zeros", "reflect", "replicate"}
        How the border is padded (:data:`PADDINGS`). Zeros give the border pixels a
        response of their own, a frame of one label along the edge once trained;
        replicate does not. No choice changes the parameters.

    Returns
    -------
    nn.Sequential
        ``[Conv2d, BatchNorm2d]`` or ``[Conv2d, BatchNorm2d, ReLU]``.
    """
    _check_channels(in_channels, out_channels)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be a positive odd number (same-size padding); got {kernel_size}"
        )
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1; got {dilation}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            padding_mode=padding,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def down_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """``D(i, o)``: Conv2d(i, o, 4, stride 2, padding 1) + BatchNorm2d + ReLU; halves H, W."""
    _check_channels(in_channels, out_channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def up_block(in_channels: int, out_channels: int, last: bool = False) -> nn.Sequential:
    """``U(i, o)``: ConvTranspose2d(i, o, 4, stride 2, padding 1) + BatchNorm2d + ReLU.

    Doubles H and W. ``last=True`` gives ``U*``: the transposed convolution alone, with
    neither BatchNorm nor ReLU (the autoencoder's output layer).
    """
    _check_channels(in_channels, out_channels)
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
    ]
    if not last:
        layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def xavier_init_(module: nn.Module) -> nn.Module:
    """Xavier-initialise a module in place (the thesis' initialiser) and return it.

    Convolution, transposed convolution and linear weights get Xavier-uniform values and
    zero biases; BatchNorm layers get weight 1 and bias 0. Other parameters are left as
    they are. The random draw comes from torch's global generator: seed it first
    (``torch.manual_seed``) for a reproducible model.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
            if sub.weight is not None:
                nn.init.ones_(sub.weight)
                nn.init.zeros_(sub.bias)
    return module
