"""What the web page works on, without the web: images, runs and their results.

A :class:`Workspace` holds the images a user loaded (samples or uploads), runs one method
at a time on one of them in a background thread (:class:`Job`: progress, cancel), and
keeps each result as a :class:`Result` whose :meth:`Result.view` cuts it at any scale or
into K regions at once: every result comes with a :class:`~unsupseg.regions.Hierarchy`,
the method's own (``hierarchy``) or one that merges the method's connected regions by
colour boundary strength (:meth:`~unsupseg.regions.Hierarchy.from_boundaries`), so the
page's slider never reruns the method.
"""

from __future__ import annotations

import io
import math
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unsupseg.errors import ConfigError, UnsupsegError
from unsupseg.inference import predict
from unsupseg.io import (
    as_float_channels,
    as_rgb_float,
    compact_labels,
    display_rgb,
    frame_count,
    image_size,
    read_image,
    save_label_png,
    save_label_tiff,
    to_uint8,
)
from unsupseg.models.checkpoint import load_checkpoint
from unsupseg.per_image import METHODS, segment
from unsupseg.regions import Hierarchy, connected_leaves, image_boundary_strength
from unsupseg.samples import SAMPLE_NAMES, sample_image
from unsupseg.ucm import DATASET_THRESHOLD, hierarchy
from unsupseg.viz import colorize, overlay, palette

__all__ = [
    "DOWNLOADS",
    "LABEL_METHODS",
    "SCRIBBLE_COLOURS",
    "Cancelled",
    "Job",
    "Result",
    "Workspace",
    "scribble_from_rgba",
]

#: The methods the page offers besides trained checkpoints, in its menu's order.
LABEL_METHODS: tuple[str, ...] = ("hierarchy", *METHODS)

#: How many scribble classes the page draws with: the palette's first colours.
N_SCRIBBLE_COLOURS = 6

#: The scribble colours (RGB uint8), class 0 first: the labels' own first colours.
SCRIBBLE_COLOURS: np.ndarray = palette()[:N_SCRIBBLE_COLOURS]

#: The files a result downloads as, by name: (MIME type, what it holds).
DOWNLOADS: dict[str, tuple[str, str]] = {
    "labels.png": ("image/png", "label ids, 8- or 16-bit grayscale"),
    "labels.tif": ("image/tiff", "label ids, deflate-compressed TIFF"),
    "labels.npy": ("application/octet-stream", "label ids, NumPy array"),
    "overlay.png": ("image/png", "the picture as shown on the page"),
}

#: The view modes of :meth:`Result.render`.
VIEWS = ("boundaries", "colours")


class Cancelled(Exception):
    """Raised inside a run when the user cancels it."""


@dataclass
class Result:
    """One method's result on one image, cut on demand.

    Attributes
    ----------
    name : str
        The image's name (for download file names).
    picture : ndarray of uint8, shape (H, W, 3)
        The image as displayed.
    labels : ndarray of int, shape (H, W)
        The method's own labels (for ``hierarchy``, its cut at the default threshold).
    tree : Hierarchy
        The nested regions behind the slider and K.
    method : str
    default_threshold : float
        The slider's starting point: :data:`~unsupseg.ucm.DATASET_THRESHOLD` for the
        hierarchy, 0 (the method's own labels) otherwise.
    seconds : float
        Time the method took.
    """

    name: str
    picture: np.ndarray
    labels: np.ndarray
    tree: Hierarchy
    method: str
    default_threshold: float
    seconds: float

    def view(self, threshold: float | None = None, k: int | None = None) -> np.ndarray:
        """The labels at ``threshold`` (0 to 1), or exactly ``k`` 4-connected regions.

        ``k`` wins over ``threshold``; neither gives the default threshold. Below any
        merge of a per-image method's hierarchy (``threshold`` 0) the method's own labels
        come back unchanged, one id possibly covering separate places.
        """
        if k is not None:
            return self.tree.cut_to(_whole("K", k))
        threshold = self.default_threshold if threshold is None else _unit(threshold)
        if self.method != "hierarchy" and threshold <= 0.0:
            return self.labels
        return self.tree.cut(threshold)

    def render(self, labels: np.ndarray, mode: str = "boundaries") -> np.ndarray:
        """The picture with ``labels`` drawn on it: their boundaries in yellow, or their
        colours blended half and half. RGB uint8."""
        if mode not in VIEWS:
            raise ConfigError(f"view must be one of {', '.join(VIEWS)}; got {mode!r}")
        if mode == "boundaries":
            return overlay(self.picture, labels)
        blend = 0.5 * self.picture.astype(np.float32) + 0.5 * colorize(labels)
        return np.rint(blend).astype(np.uint8)

    def download(self, kind: str, labels: np.ndarray, mode: str = "boundaries") -> bytes:
        """``labels`` as one of :data:`DOWNLOADS`' files, as bytes."""
        buffer = io.BytesIO()
        if kind == "labels.png":
            save_label_png(buffer, labels)
        elif kind == "labels.tif":
            save_label_tiff(buffer, labels)
        elif kind == "labels.npy":
            np.save(buffer, compact_labels(labels))
        elif kind == "overlay.png":
            Image.fromarray(self.render(labels, mode)).save(buffer, format="PNG")
        else:
            raise ConfigError(f"unknown download {kind!r}; choose from {', '.join(DOWNLOADS)}")
        return buffer.getvalue()


@dataclass
class Job:
    """One run in the background: its progress, and a way to cancel it.

    ``state`` is ``running``, ``done`` (``result`` holds the result's id), ``failed``
    (``message`` says why) or ``cancelled``.
    """

    id: str
    method: str
    state: str = "running"
    step: int = 0
    total: int = 0
    n_labels: int | None = None
    message: str = ""
    result: str | None = None
    started: float = field(default_factory=time.monotonic)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def progress(self, step: int, total: int, n_labels: int) -> None:
        """The per-image methods' ``callback``: record progress, raise when cancelled."""
        self.step, self.total, self.n_labels = step, total, n_labels
        if self.cancel_event.is_set():
            raise Cancelled

    def status(self) -> dict[str, Any]:
        """The job as the page polls it (plain values)."""
        return {
            "job": self.id, "method": self.method, "state": self.state, "step": self.step,
            "total": self.total, "n_labels": self.n_labels, "message": self.message,
            "result": self.result, "seconds": round(time.monotonic() - self.started, 1),
        }  # fmt: skip


@dataclass
class _Image:
    name: str
    array: np.ndarray  # as read: what the methods take
    picture: np.ndarray  # RGB uint8, as displayed


def scribble_from_rgba(rgba: np.ndarray, colours: np.ndarray = SCRIBBLE_COLOURS) -> np.ndarray:
    """Class ids from a drawn scribble layer: 255 where nothing was drawn.

    A pixel counts as drawn where its alpha is at least half; its class is the nearest of
    ``colours`` (a browser's strokes are antialiased, so edge pixels are blends).

    Parameters
    ----------
    rgba : ndarray of uint8, shape (H, W, 4)
    colours : ndarray of uint8, shape (C, 3)

    Returns
    -------
    scribble : ndarray of uint8, shape (H, W)

    Examples
    --------
    >>> layer = np.zeros((2, 3, 4), np.uint8)
    >>> layer[0, 0] = [*SCRIBBLE_COLOURS[1], 255]
    >>> layer[1, 2] = [*SCRIBBLE_COLOURS[0], 200]
    >>> scribble_from_rgba(layer).tolist()
    [[1, 255, 255], [255, 255, 0]]
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ConfigError(f"a scribble layer is (H, W, 4) RGBA; got shape {rgba.shape}")
    drawn = rgba[..., 3] >= 128
    distance = ((rgba[..., None, :3].astype(np.int32) - colours.astype(np.int32)) ** 2).sum(-1)
    scribble = np.full(rgba.shape[:2], 255, np.uint8)
    scribble[drawn] = distance[drawn].argmin(-1)
    return scribble


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool):  # JSON true is no count
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number; got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    return int(number)


def _unit(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the scale must be a number from 0 to 1; got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise ConfigError(f"the scale must be a number from 0 to 1; got {value!r}")
    return number


class Workspace:
    """Images, runs and results of one page server, in memory.

    Parameters
    ----------
    checkpoints : mapping of str to path, optional
        Trained models the page offers, by display name.
    max_pixels : int
        Largest image accepted (width x height).
    keep : int
        How many images and results are kept (the oldest go first).
    device : str, optional
        Where the networks run (default: CUDA when available, else CPU).
    """

    def __init__(
        self,
        checkpoints: Mapping[str, str | Path] | None = None,
        *,
        max_pixels: int = 2048 * 2048,
        keep: int = 8,
        device: str | None = None,
    ) -> None:
        self.checkpoints = {name: Path(path) for name, path in (checkpoints or {}).items()}
        self.max_pixels = int(max_pixels)
        self.keep = int(keep)
        self.device = device
        self._images: OrderedDict[str, _Image] = OrderedDict()
        self._results: OrderedDict[str, Result] = OrderedDict()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    # Images ------------------------------------------------------------------------

    @property
    def methods(self) -> list[str]:
        """The page's method menu: :data:`LABEL_METHODS`, then ``checkpoint:<name>``."""
        return [*LABEL_METHODS, *(f"checkpoint:{name}" for name in self.checkpoints)]

    def add_image(self, array: np.ndarray, name: str) -> dict[str, Any]:
        """Keep an image (grayscale, RGB or RGBA, any real dtype); returns its id and
        size."""
        array = np.asarray(array)
        if array.ndim not in (2, 3) or array.ndim == 3 and array.shape[2] not in (1, 3, 4):
            raise ConfigError(
                f"{name}: the page segments grayscale, RGB or RGBA images; this one has "
                f"shape {array.shape} (use the command line for other bands and volumes)"
            )
        height, width = array.shape[:2]
        self._check_size(name, height, width)
        try:
            picture = to_uint8(display_rgb(as_float_channels(array)))
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        key = uuid.uuid4().hex
        with self._lock:
            self._images[key] = _Image(name, array, picture)
            _trim(self._images, self.keep)
        return {"image": key, "name": name, "width": int(width), "height": int(height)}

    def _check_size(self, name: str, height: int, width: int) -> None:
        if height * width > self.max_pixels:
            raise ConfigError(
                f"{name} is {width}x{height} pixels, more than the page's limit of "
                f"{self.max_pixels}; downscale it, or start the page with a larger "
                f"--max-pixels"
            )
        if min(height, width) < 2:
            raise ConfigError(f"{name} is {width}x{height} pixels; it needs at least 2x2")

    def add_sample(self, name: str) -> dict[str, Any]:
        """Keep one of scikit-image's sample photos (:data:`SAMPLE_NAMES`)."""
        if name not in SAMPLE_NAMES:
            raise ConfigError(f"unknown sample {name!r}; choose from {', '.join(SAMPLE_NAMES)}")
        return self.add_image(sample_image(name), name)

    def add_upload(self, filename: str, data: bytes) -> dict[str, Any]:
        """Read an uploaded file (any format :func:`unsupseg.io.read_image` reads)."""
        stem = Path(filename or "upload").stem or "upload"
        if not data:
            raise ConfigError(f"{filename or 'the upload'} is empty: choose an image file")
        suffix = "".join(c for c in Path(filename or "").suffix if c.isalnum() or c == ".")
        with tempfile.TemporaryDirectory(prefix="unsupseg-upload-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                try:
                    height, width = image_size(path)
                except UnsupsegError:
                    pass  # read_image says what is wrong with the file
                else:
                    self._check_size(filename or "the upload", height, width)
                frames = frame_count(path)
                if frames > 1:
                    raise ConfigError(
                        f"{filename or 'the upload'}: an animated image of {frames} frames; "
                        "the page segments one picture: save the frame you want as a PNG, "
                        "or segment them all with unsupseg segment --pages each|volume"
                    )
                array = read_image(path, max_pixels=self.max_pixels)
            except UnsupsegError as exc:
                raise ConfigError(str(exc).replace(str(path), filename or "the upload")) from None
        return self.add_image(array, stem)

    def picture(self, image: str) -> np.ndarray:
        """The displayed picture of image ``image`` (RGB uint8)."""
        return self._get(self._images, image, "image").picture

    # Runs --------------------------------------------------------------------------

    def start(
        self,
        image: str,
        method: str,
        *,
        max_iter: Any = 200,
        max_side: Any = 256,
        fine_iter: Any = 0,
        seed: Any = 0,
        scribble: np.ndarray | None = None,
    ) -> Job:
        """Run ``method`` on ``image`` in a background thread; a run still going is
        cancelled first.

        ``max_iter``, ``max_side`` (the working size's longer side; 0 or None for full
        size), ``fine_iter`` (the per-image methods' iterations at full size after those
        at the working size, coarse to fine) and ``seed`` are checked here;
        ``scribble`` (class ids, 255 elsewhere, the image's size) is for ``tip2020`` and
        must hold at least one scribbled pixel.
        """
        source = self._get(self._images, image, "image")
        if method not in self.methods:
            raise ConfigError(f"unknown method {method!r}; choose from {', '.join(self.methods)}")
        side = None if max_side in (None, "", 0, "0") else _whole("working size", max_side)
        if side is not None and side < 8:
            raise ConfigError(
                f"the working size must be at least 8 pixels (or 0 for full size); got {side}"
            )
        fine = _whole("full-size iterations", fine_iter)
        if fine < 0:
            raise ConfigError(f"full-size iterations must be 0 or more; got {fine}")
        options = {"max_iter": _whole("iterations", max_iter), "max_side": side,
                   "fine_iter": fine, "seed": _whole("seed", seed)}  # fmt: skip
        if scribble is not None:
            if method != "tip2020":
                raise ConfigError("scribbles are used by tip2020 only: choose it as the method")
            if scribble.shape != source.picture.shape[:2]:
                (h, w), (height, width) = scribble.shape, source.picture.shape[:2]
                raise ConfigError(f"the scribble is {w}x{h}, the image {width}x{height}")
            if not np.any(scribble != 255):
                raise ConfigError("the scribble is empty: draw on the image first")
        job = Job(id=uuid.uuid4().hex, method=method)
        with self._lock:
            for other in self._jobs.values():
                other.cancel_event.set()
            self._jobs[job.id] = job
            _trim(self._jobs, 4 * self.keep)
        job.thread = threading.Thread(
            target=self._run, args=(job, source, options, scribble), daemon=True,
            name=f"unsupseg-{method}",
        )  # fmt: skip
        job.thread.start()
        return job

    def job(self, job: str) -> Job:
        """The job of id ``job``."""
        return self._get(self._jobs, job, "run")

    def cancel(self, job: str) -> Job:
        """Ask job ``job`` to stop (at its next iteration)."""
        found = self.job(job)
        found.cancel_event.set()
        return found

    def result(self, result: str) -> Result:
        """The result of id ``result``."""
        return self._get(self._results, result, "result")

    def _run(self, job: Job, source: _Image, options: dict, scribble: np.ndarray | None) -> None:
        try:
            result = self._compute(job, source, options, scribble)
            if job.cancel_event.is_set():
                raise Cancelled
        except Cancelled:
            job.state, job.message = "cancelled", "cancelled"
            return
        except (UnsupsegError, ValueError, MemoryError) as exc:
            job.state, job.message = "failed", _one_line(exc)
            return
        except Exception as exc:  # never a stack trace on the page: one line, logged
            import logging

            logging.getLogger("unsupseg").exception("run %s failed", job.id)
            job.state, job.message = "failed", f"internal error: {_one_line(exc)}"
            return
        key = uuid.uuid4().hex
        with self._lock:
            self._results[key] = result
            _trim(self._results, self.keep)
        job.result, job.state = key, "done"

    def _compute(
        self, job: Job, source: _Image, options: dict, scribble: np.ndarray | None
    ) -> Result:
        started = time.perf_counter()
        method = job.method
        if method == "hierarchy":
            tree = hierarchy(as_rgb_float(source.array))
            labels = tree.cut(DATASET_THRESHOLD)
            return Result(source.name, source.picture, labels, tree, method, DATASET_THRESHOLD,
                          time.perf_counter() - started)  # fmt: skip
        if method.startswith("checkpoint:"):
            checkpoint = self._checkpoint(method.removeprefix("checkpoint:"))
            labels = predict(checkpoint, source.array, max_side=options["max_side"],
                             seed=options["seed"])  # fmt: skip
        else:
            job.total = options["max_iter"] + (options["fine_iter"] if options["max_side"] else 0)
            labels = segment(
                source.array, method, max_iter=options["max_iter"],
                max_side=options["max_side"], fine_iter=options["fine_iter"],
                seed=options["seed"], scribble=scribble, device=self.device,
                callback=job.progress,
            )  # fmt: skip
        strength = image_boundary_strength(source.picture.astype(np.float64) / 255.0)
        tree = Hierarchy.from_boundaries(strength, connected_leaves(labels))
        return Result(source.name, source.picture, labels, tree, method, 0.0,
                      time.perf_counter() - started)  # fmt: skip

    def _checkpoint(self, name: str) -> Any:
        if name not in self._loaded:
            self._loaded[name] = load_checkpoint(self.checkpoints[name], device=self.device)
        return self._loaded[name]

    def _get(self, table: OrderedDict, key: str, what: str) -> Any:
        with self._lock:
            if key not in table:
                raise KeyError(
                    f"unknown {what} {key!r}: the server was restarted or dropped it; "
                    "load the image again"
                )
            table.move_to_end(key)
            return table[key]


def _trim(table: OrderedDict, keep: int) -> None:
    while len(table) > keep:
        table.popitem(last=False)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
