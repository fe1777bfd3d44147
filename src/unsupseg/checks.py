"""Checks of values and paths made before any expensive work.

Each check raises :class:`~unsupseg.errors.ConfigError` with one line that names the
setting and what is accepted, so a bad value is refused before an optimisation has run
rather than after (the command line prints it and exits with status 2).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import tempfile
from pathlib import Path

from unsupseg.errors import ConfigError

__all__ = [
    "MAX_SEED",
    "available_memory",
    "check_memory",
    "check_number",
    "check_output_file",
    "check_output_folder",
    "check_seed",
    "format_bytes",
]

#: Largest seed: Lightning's ``seed_everything`` and NumPy's legacy seeding take 32 bits.
MAX_SEED = 2**32 - 1


def check_number(
    name: str,
    value: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    integer: bool = False,
) -> None:
    """Refuse a value that is not a finite number within its bounds.

    Raises
    ------
    ConfigError
        For NaN, an infinity, a non-number (booleans included), a non-integer when
        ``integer`` is set, or a value outside ``[minimum, maximum]`` (open at an
        ``exclusive_*`` end).
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {expected}; got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number; got {value}")
    low_bad = minimum is not None and (value < minimum or (exclusive_minimum and value == minimum))
    high_bad = maximum is not None and (value > maximum or (exclusive_maximum and value == maximum))
    if low_bad or high_bad:
        bounds = _range(minimum, maximum, exclusive_minimum, exclusive_maximum)
        raise ConfigError(f"{name} must be {bounds}; got {value}")


def _range(minimum: float | None, maximum: float | None, open_low: bool, open_high: bool) -> str:
    low, high = _show(minimum), _show(maximum)
    if minimum is not None and maximum is not None:
        return f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    if minimum is not None:
        return f"{'>' if open_low else '>='} {low}"
    return f"{'<' if open_high else '<='} {high}"


def _show(bound: float | None) -> str:
    """A bound as written in messages: integers in full, others as ``%g``."""
    if bound is None or float(bound).is_integer():
        return str(int(bound or 0))
    return f"{bound:g}"


def check_limit_and_workers(limit: int | None, workers: int) -> None:
    """Refuse a ``limit`` (images to process; None for all) or a ``workers`` count
    (processes) that is not an integer >= 1."""
    if limit is not None:
        check_number("limit", limit, minimum=1, integer=True)
    check_number("workers", workers, minimum=1, integer=True)


def check_seed(seed: int, name: str = "seed") -> None:
    """Refuse a seed outside ``0 .. 2**32 - 1`` (the range every generator here takes)."""
    check_number(name, seed, minimum=0, maximum=MAX_SEED, integer=True)


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Make sure outputs can be written into the folder ``path`` (created if needed).

    The folder, or its nearest existing parent, must be a writable folder: a probe file
    is created there and removed, so that read-only disks and folders are found before
    any work is done.

    Raises
    ------
    ConfigError
        When ``path`` is an existing file, or nothing can be written there.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder; choose another")
    _probe(_existing_parent(path), f"{what} {path}")
    return path


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Make sure the file ``path`` can be written (its folder created if needed).

    Raises
    ------
    ConfigError
        When ``path`` is a folder, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a file name")
    _probe(_existing_parent(path.parent), f"{what} {path}")
    return path


def _existing_parent(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _probe(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: what cannot be written fails here."""
    if not folder.is_dir():
        raise ConfigError(f"{what}: {folder} is a file, not a folder; choose another")
    try:
        fd, name = tempfile.mkstemp(prefix=".unsupseg-probe.", dir=folder)
    except OSError as exc:
        raise ConfigError(
            f"{what} is not writable: cannot create a file in {folder} "
            f"({exc.strerror or type(exc).__name__}); choose another"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def available_memory(device_type: str = "cpu") -> int | None:
    """Bytes of memory available to a new allocation: ``MemAvailable`` of
    ``/proc/meminfo`` on the CPU (None where there is no such file), the free memory of
    the current GPU for ``'cuda'``."""
    if device_type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def format_bytes(size: float) -> str:
    """``size`` in the largest unit that keeps it at least 1 (``'1.5 GiB'``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def check_memory(needed: int, what: str, hint: str, device_type: str = "cpu") -> None:
    """Refuse work whose estimated memory ``needed`` (bytes) exceeds what is available.

    Raises
    ------
    ConfigError
        Naming ``what``, the estimate, what is available and ``hint`` (what to lower).
    """
    available = available_memory(device_type)
    if available is not None and needed > available:
        raise ConfigError(
            f"{what} needs about {format_bytes(needed)} of memory, more than the "
            f"{format_bytes(available)} available; {hint}"
        )
