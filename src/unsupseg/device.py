"""Choosing the torch device."""

from __future__ import annotations

import torch

from unsupseg.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device``, or CUDA when available and CPU otherwise when it is None.

    Raises
    ------
    ConfigError
        If CUDA is asked for on a machine without it (or a GPU index it lacks), or the
        name is not a device this library computes on (only ``cpu`` and ``cuda``: the
        ``meta`` device, for one, holds no values).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"unknown device {device!r} (use 'cpu', 'cuda', 'cuda:N' or 'auto')"
        ) from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"device {device!r} is not supported (use 'cpu', 'cuda', 'cuda:N' or 'auto')"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {device!r} asked for, but this machine has "
            f"{torch.cuda.device_count()} GPU(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
        )
    return resolved
