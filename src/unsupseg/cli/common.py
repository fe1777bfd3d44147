"""What the commands share: numeric option types, logging, image jobs, the exit code."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from tqdm.auto import tqdm

from unsupseg.checks import check_seed
from unsupseg.errors import ConfigError, ImageReadError
from unsupseg.io import find_images, geo_tags, image_size, plan_tiff, read_image, read_tiff
from unsupseg.samples import SAMPLE_NAMES, sample_image

if TYPE_CHECKING:  # per_image loads torch, which this module does not need
    from unsupseg.per_image import SegmentationResult

log = logging.getLogger("unsupseg")

__all__ = [
    "HelpFormatter",
    "ImageJob",
    "collect_jobs",
    "failure_message",
    "finish_run",
    "image_summary",
    "is_unwritable",
    "number",
    "one_line_errors",
    "seed",
    "setup_logging",
    "skip_remaining",
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends each option with its default, once: not when the text already
    says it, and not for defaults that say nothing (None, False, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` and every sub-command's parser below it report bad usage in one
    line (no usage block) and exit with status 2, as the library's errors do."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                one_line_errors(sub)


def seed(text: str) -> int:
    """An argparse type: a seed, an integer in ``0 .. 2**32 - 1``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    try:
        check_seed(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("seed ")) from None
    return value


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
    path: Path | None = None
    #: The array is a volume (Z, Y, X[, C]) (a TIFF with a Z axis, or ``--pages volume``).
    volume: bool = False
    #: GeoTIFF tags of the input, for ``labels.tif`` (:func:`unsupseg.io.geo_tags`).
    tiff_tags: tuple = ()
    #: Read by :func:`unsupseg.io.read_tiff` (bands, pages, volumes): never reduced.
    whole: bool = False

    def file_size(self, image: np.ndarray) -> dict[str, int]:
        """``file_height`` and ``file_width`` for the summary when the file was read
        reduced (it is over :data:`unsupseg.io.MAX_PIXELS`), else nothing."""
        if self.path is None or self.whole:
            return {}
        height, width = image_size(self.path)
        if (height, width) == tuple(image.shape[:2]):
            return {}
        return {"file_height": height, "file_width": width}


def collect_jobs(
    inputs: Sequence[str], max_side: int | None = None, pages: str | None = None
) -> tuple[list[ImageJob], list[tuple[str, str]]]:
    """The images of files and folders (none: the scikit-image sample photos), with
    output names made unique, and the ``(source, message)`` of inputs that are not
    images. Files over :data:`unsupseg.io.MAX_PIXELS` are read reduced to ``max_side``
    (refused without it) and never decoded at full size. TIFF stacks, volumes and
    multi-band files are read with tifffile as :func:`unsupseg.io.plan_tiff` says
    (``pages``: ``first``, ``each`` or ``volume`` for plain multi-page files; one job per
    page with ``each``); one that cannot be read so is listed with its message."""
    if not inputs:
        return [
            ImageJob(f"skimage.data.{name}()", name, lambda name=name: sample_image(name))
            for name in SAMPLE_NAMES
        ], []
    paths, problems = find_images(list(inputs))
    used: set[str] = set()
    jobs = []
    failures = [(str(path), message) for path, message in problems]
    for path in paths:
        try:
            plans = plan_tiff(path, pages)
        except ImageReadError as exc:
            failures.append((str(path), str(exc)))
            continue
        if plans is None:
            load = partial(read_image, path, max_side=max_side)
            jobs.append(ImageJob(str(path), unique_name(path.stem, used), load, path,
                                 tiff_tags=tuple(geo_tags(path))))  # fmt: skip
            continue
        tags = tuple(geo_tags(path))
        for plan in plans:
            source = str(path) if not plan.suffix else f"{path} ({plan.suffix[1:]})"
            jobs.append(ImageJob(source, unique_name(path.stem + plan.suffix, used),
                                 partial(read_tiff, path, plan), path, volume=plan.volume,
                                 tiff_tags=() if plan.volume else tags, whole=True))  # fmt: skip
    return jobs, failures


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
    spatial = result.labels.shape
    depth = {"depth": int(spatial[0])} if len(spatial) == 3 else {}
    return {
        "input": source,
        **depth,
        "height": int(spatial[-2]),
        "width": int(spatial[-1]),
        "channels": int(result.params.get("channels", 3)),
        "working_height": int(result.working_shape[-2]),
        "working_width": int(result.working_shape[-1]),
        **extra,
        "iterations": result.n_iterations,
        "fine_iterations": result.fine_iterations,
        "seconds": round(result.seconds, digits),
        "slic_seconds": round(result.slic_seconds, digits),
        "parameters": result.params,
        "n_labels_per_iteration": result.n_labels_history,
    }


#: ``errno`` values of a write that no other image would survive either.
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def failure_message(source: str, exc: BaseException) -> str:
    """One line for an image that failed: its source, then what went wrong."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        text = f"cannot write the outputs: {exc.strerror}{where}"
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if text.startswith(source) else f"{source}: {text}"


def is_unwritable(exc: BaseException) -> bool:
    """Whether ``exc`` says the output folder cannot take any more files (disk full,
    read-only, no permission), so that the images after it would fail alike."""
    return isinstance(exc, OSError) and exc.errno in UNWRITABLE


def skip_remaining(
    jobs: Sequence[ImageJob], failed: ImageJob, failures: list[tuple[str, str]], out: Path
) -> None:
    """Record the jobs after ``failed`` as not processed: the outputs cannot be written."""
    rest = list(jobs)[list(jobs).index(failed) + 1 :]
    log.error("stopping: nothing more can be written to %s", out)
    failures.extend(
        (job.source, f"{job.source}: not processed (outputs cannot be written)") for job in rest
    )


def finish_run(done: int, n_inputs: int, out: Path, failures: list[tuple[str, str]]) -> int:
    """Say where the outputs are and list the failures; the command's exit code."""
    if done:
        log.info(
            "Wrote %d of %d images to %s (one folder per image: panel.png, labels.png, "
            "labels.tif, labels.npy, color.png, overlay.png, summary.json)",
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


def add_region_arguments(parser: argparse.ArgumentParser, hierarchy: bool = False) -> None:
    """``--segments K`` and ``--connected``, as ``segment`` and ``predict`` take them
    (:func:`unsupseg.regions.regions_to_k`)."""
    cut = "hierarchy cuts its tree (overrides --level); the other methods split " * hierarchy
    parser.add_argument(
        "--segments",
        type=number(int, 1),
        default=None,
        help=f"exactly this many 4-connected regions: {cut or 'the labels are split '}"
        f"{'their labels ' if hierarchy else ''}into connected regions, then adjacent ones "
        "merged, weakest colour boundary first (2-D images only)",
    )
    parser.add_argument(
        "--connected",
        action="store_true",
        help="split every label into its 4-connected regions, so that one colour never "
        "covers two separate places (implied by --segments"
        f"{'; hierarchy regions always are' if hierarchy else ''})",
    )
