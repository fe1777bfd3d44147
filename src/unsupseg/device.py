"""Choosing the torch device."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from unsupseg.errors import ConfigError

#: Arithmetic of the per-image network: ``auto`` is :func:`resolve_precision`'s choice.
PRECISIONS = ("auto", "fp32", "bf16")

#: Memory layout of the per-image network: ``auto`` is :func:`resolve_layout`'s choice.
LAYOUTS = ("auto", "contiguous", "channels-last")

#: torch CPU capabilities whose kernels run fp32 convolutions faster channels-last.
AVX512_CAPABILITIES = ("AVX512", "AVX512_BF16")


def cpu_flags() -> list[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or [] where it is absent."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return value.split()
    return []


def cpu_kernels_use_avx512() -> bool:
    """True when torch's CPU kernels use AVX-512 (``get_cpu_capability``)."""
    return torch.backends.cpu.get_cpu_capability() in AVX512_CAPABILITIES


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX-BF16, read
    from the CPU flags) and torch's CPU kernels use AVX-512 (``get_cpu_capability``)."""
    if not cpu_kernels_use_avx512():
        return False
    flags = set(cpu_flags())
    return "avx512_bf16" in flags or "amx_bf16" in flags


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


#: Per-image methods whose bf16 scores were measured equal to fp32 (README, "Precision"):
#: ``auto`` picks bf16 for these only. tip2020 in bf16 scored lower in both seeds
#: (PRI 0.720 and 0.721 against 0.733 and 0.734), so the continuity methods stay fp32.
BF16_AUTO_METHODS = ("kanezaki2018",)


def resolve_precision(
    precision: str, device: torch.device, method: str = "kanezaki2018"
) -> str:
    """The arithmetic ``precision`` means on ``device`` for ``method``: ``fp32`` or
    ``bf16``.

    ``auto`` is ``bf16`` (autocast) for the methods of :data:`BF16_AUTO_METHODS` on a
    CPU with native bfloat16 instructions (:func:`cpu_supports_bf16`), where it was
    measured to give the same segmentation scores as fp32 in less time, and ``fp32``
    elsewhere: on other CPUs bfloat16 is emulated and slower, and on CUDA it has not
    been measured here.

    ``bf16`` asked for explicitly is used on any device: on a CPU without native
    bfloat16 it is emulated, and slower than fp32.

    Raises
    ------
    ConfigError
        For a value not in :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        native = device.type == "cpu" and cpu_supports_bf16()
        return "bf16" if native and method in BF16_AUTO_METHODS else "fp32"
    return precision


def resolve_layout(layout: str, device: torch.device, precision: str) -> bool:
    """Whether the per-image network runs channels-last: ``layout`` (one of
    :data:`LAYOUTS`) on ``device`` in ``precision`` (``fp32`` or ``bf16``, resolved).

    ``auto`` is channels-last for bfloat16 (1.4x faster on AMX, README "Precision"),
    and for fp32 on a CPU whose torch kernels use AVX-512 (``get_cpu_capability``):
    1.16x to 1.23x faster per iteration in three ``bench segment`` runs on an AVX-512
    AMD EPYC, with the same scores within seed noise, where on an AVX2-only CPU it was
    1.6x slower. Contiguous (NCHW) everywhere else, CUDA included (not measured here).

    Raises
    ------
    ConfigError
        For a value not in :data:`LAYOUTS`.

    Examples
    --------
    >>> resolve_layout("channels-last", torch.device("cpu"), "fp32")
    True
    >>> resolve_layout("auto", torch.device("cpu"), "bf16")
    True
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if layout != "auto":
        return layout == "channels-last"
    if precision == "bf16":
        return True
    return device.type == "cpu" and cpu_kernels_use_avx512()
