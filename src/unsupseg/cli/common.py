"""What the commands share: numeric option types, logging, image jobs, the exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from unsupseg.io import find_images, read_image
from unsupseg.samples import SAMPLE_NAMES, sample_image

if TYPE_CHECKING:  # per_image loads torch, which this module does not need
    from unsupseg.per_image import SegmentationResult

log = logging.getLogger("unsupseg")

__all__ = [
    "ImageJob",
    "collect_jobs",
    "finish_run",
    "image_summary",
    "number",
    "setup_logging",
    "unique_name",
]


class _TqdmHandler(logging.Handler):
    """Log through tqdm so that messages do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(verbose: bool = False) -> None:
    """Send the ``unsupseg`` logger's messages to stderr, through tqdm."""
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def number(kind: type, minimum: float, exclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` at least (or above) ``minimum``; NaN and
    infinities are refused."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum or (exclusive and value == minimum):
            bound = f"> {minimum}" if exclusive else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


@dataclass
class ImageJob:
    """One input of ``segment`` or ``predict``: where it comes from, the name of its
    output folder, and how to load it."""

    source: str
    name: str
    load: Callable[[], np.ndarray]


def collect_jobs(inputs: Sequence[str]) -> tuple[list[ImageJob], list[tuple[str, str]]]:
    """The images of files and folders (none: the scikit-image sample photos), with
    output names made unique, and the ``(source, message)`` of inputs that are not
    images."""
    if not inputs:
        return [
            ImageJob(f"skimage.data.{name}()", name, lambda name=name: sample_image(name))
            for name in SAMPLE_NAMES
        ], []
    paths, problems = find_images(list(inputs))
    used: set[str] = set()
    jobs = [
        ImageJob(str(path), unique_name(path.stem, used), lambda path=path: read_image(path))
        for path in paths
    ]
    return jobs, [(str(path), message) for path, message in problems]


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when it is taken; records it in ``used``."""
    candidate, index = name, 2
    while candidate in used:
        candidate, index = f"{name}-{index}", index + 1
    used.add(candidate)
    return candidate


def image_summary(
    source: str,
    image: np.ndarray,
    result: SegmentationResult,
    *,
    digits: int,
    **extra: Any,
) -> dict[str, Any]:
    """The ``summary.json`` of one image of ``segment`` or ``predict``: the input and
    its sizes, then ``extra``, the iterations, the timings rounded to ``digits`` and the
    parameters."""
    return {
        "input": source,
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "working_height": int(result.working_shape[0]),
        "working_width": int(result.working_shape[1]),
        **extra,
        "iterations": result.n_iterations,
        "seconds": round(result.seconds, digits),
        "slic_seconds": round(result.slic_seconds, digits),
        "parameters": result.params,
        "n_labels_per_iteration": result.n_labels_history,
    }


def finish_run(done: int, n_inputs: int, out: Path, failures: list[tuple[str, str]]) -> int:
    """Say where the outputs are and list the failures; the command's exit code."""
    if done:
        log.info(
            "Wrote %d of %d images to %s (one folder per image: panel.png, labels.png, "
            "labels.npy, color.png, overlay.png, summary.json)",
            done,
            n_inputs,
            out.resolve(),
        )
    if failures:
        log.error("%d input(s) failed:", len(failures))
        for _, message in failures:
            log.error("  %s", message)
        return 1
    if not done:
        log.error("nothing to segment")
        return 1
    return 0
