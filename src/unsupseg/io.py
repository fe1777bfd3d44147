"""Reading images and writing outputs.

One image loader for the whole project (:func:`read_image`, with :func:`image_size` for
the size alone), one converter from any array a user may hand us to the float RGB image
the algorithms expect (:func:`as_rgb_float`), and atomic writers so that a failure never
leaves a half-written file behind (:func:`atomic_file`, :func:`atomic_directory`, and
:func:`sweep_stale_temporaries` for what an interrupted process left).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import struct
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unsupseg.errors import ConfigError, ImageReadError

#: File suffixes treated as images when a folder is given.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")

#: Largest image (in pixels) segmented without downscaling: 2048 x 2048. Per-image
#: optimisation keeps several (q, H, W) float tensors alive; at q=100 each one of this
#: size is 1.7 GB. :func:`read_image` refuses to read a larger image at full size.
MAX_PIXELS = 2048 * 2048

#: Largest image (in pixels) whose file is decoded at all, even to be read reduced: one
#: gigapixel. Pillow must decode a PNG, TIFF, BMP, ... at full size before it can reduce
#: it, at 3 to 4 bytes a pixel; a header beyond this is corrupt or far too large.
MAX_DECODE_PIXELS = 1 << 30

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_BAND_BYTES = 8 << 20  # rows handled at a time when reducing a 16-bit image


# ---------------------------------------------------------------------------
# opening files and reading headers


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line, at most 200 characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _open_image(path: Path) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb check.

    Pillow warns above 89 megapixels and refuses above 179 megapixels when the file is
    opened, before anyone could read the size from the header; :func:`read_image`
    applies its own limits (:data:`MAX_PIXELS`, :data:`MAX_DECODE_PIXELS`) to the header
    instead, with a message that says what to do. Changing ``Image.MAX_IMAGE_PIXELS``
    instead would change it for the whole process, threads included.
    """
    registry = getattr(Image, "ID", None), getattr(Image, "OPEN", None)
    if not isinstance(registry[0], list) or not isinstance(registry[1], dict):
        return Image.open(path)  # another Pillow layout: keep its own check
    fp = open(path, "rb")  # noqa: SIM115 -- owned by the image (``_exclusive_fp``)
    try:
        prefix = fp.read(16)
        for loader in (Image.preinit, Image.init):
            loader()
            for name in list(Image.ID):
                factory, accept = Image.OPEN[name]
                result = not accept or accept(prefix)
                if not result or isinstance(result, str):
                    continue
                fp.seek(0)
                try:
                    image = factory(fp, os.fspath(path))
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue  # as Image.open: not this format, try the next one
                image._exclusive_fp = True  # closed with the image
                return image
        raise UnidentifiedImageError(f"cannot identify image file {os.fspath(path)!r}")
    except BaseException:
        fp.close()
        raise


def _check_path(path: Path, what: str = "") -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: no such {what}file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")


def _png_late_exif(path: Path) -> bytes | None:
    """The ``eXIf`` chunk of a PNG, read by walking the chunk headers only.

    Pillow parses the chunks before the image data when it opens a PNG and finds an
    ``eXIf`` chunk placed after the image data only by decoding the whole image.
    """
    with open(path, "rb") as fp:
        if fp.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = fp.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                data = fp.read(min(length, 1 << 20))
                if data.startswith(b"Exif\x00\x00"):
                    data = data[6:]
                return b"Exif\x00\x00" + data
            if kind == b"IEND" or length > 1 << 31:
                return None
            fp.seek(length + 4, os.SEEK_CUR)


def _orientation(image: Image.Image, path: Path) -> int:
    """The EXIF orientation (1 to 8) of an opened image, without decoding it."""
    if image.format == "PNG":
        # PngImageFile.getexif decodes the whole image; read what it would find instead.
        info = image.info
        exif_bytes = info.get("exif")
        if exif_bytes is None and "Raw profile type exif" in info:
            exif_bytes = bytes.fromhex("".join(info["Raw profile type exif"].split("\n")[3:]))
        if exif_bytes is None:
            exif_bytes = _png_late_exif(path)
        exif = Image.Exif()
        if exif_bytes is not None:
            exif.load(exif_bytes)
        orientation = exif.get(_ORIENTATION_TAG)
        if orientation is None:
            xmp = info.get("XML:com.adobe.xmp") or info.get("xmp")
            if isinstance(xmp, bytes):
                xmp = xmp.decode("latin-1")
            match = re.search(r'tiff:Orientation(="|>)([0-9])', xmp) if xmp else None
            orientation = int(match[2]) if match else 1
    else:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    return orientation if orientation in _TRANSPOSE else 1


def _oriented_shape(image: Image.Image, orientation: int) -> tuple[int, int]:
    width, height = image.size
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """The ``(height, width)`` of an image file as :func:`read_image` reads it at full size.

    Only the header is read (also for a PNG whose EXIF data comes after the pixels);
    the EXIF orientation is honoured as :func:`read_image` does (orientations 5 to 8
    swap the sides).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    size : (int, int)
        ``(height, width)`` in pixels.

    Raises
    ------
    ImageReadError
        If the file does not exist or its header cannot be read.
    """
    path = Path(path)
    _check_path(path)
    try:
        with _open_image(path) as image:
            return _oriented_shape(image, _orientation(image, path))
    except UnidentifiedImageError:
        raise ImageReadError(_not_an_image(path)) from None
    except Exception as exc:  # any Pillow failure on a bad header
        raise ImageReadError(
            f"{path}: not an image file that can be read ({_one_line(exc)})"
        ) from None


def _not_an_image(path: Path) -> str:
    return f"{path}: not an image file that can be read (accepted: {', '.join(IMAGE_SUFFIXES)})"


# ---------------------------------------------------------------------------
# read_image


def _check_limit(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or None; got {value!r}")


def _limit_text(max_pixels: int) -> str:
    side = int(round(max_pixels**0.5))
    return f"{max_pixels} ({side}x{side})" if side * side == max_pixels else f"{max_pixels}"


def _decoded_bytes(image: Image.Image) -> int:
    width, height = image.size
    if image.mode in ("I", "F"):
        per_pixel = 4
    elif image.mode.startswith("I;16"):
        per_pixel = 2
    else:
        per_pixel = max(3, len(image.getbands()))
    return width * height * per_pixel


def read_image(
    path: str | os.PathLike,
    *,
    max_side: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
) -> np.ndarray:
    """Read an image file as an RGB array, reduced on reading when it is too large.

    The size is read from the header first (EXIF orientation honoured). An image of at
    most ``max_pixels`` pixels (or any image when ``max_pixels`` is None) is decoded at
    full size and ``max_side`` is ignored: callers downscale it later. A larger one is
    refused before decoding, unless ``max_side`` is given: then it is decoded reduced so
    that its longer side is ``max_side`` (JPEG decodes at 1/2, 1/4 or 1/8 scale with
    ``draft``; other formats are decoded in Pillow's native mode and reduced there with
    ``reduce`` and Lanczos ``resize``, before any conversion to numpy or to float).

    Parameters
    ----------
    path : str or path-like
        Any format Pillow reads (PNG, JPEG, BMP, TIFF, GIF, WebP, ...).
    max_side : int, optional
        Longer side, in pixels, of an image read reduced (never enlarged). Only used for
        images of more than ``max_pixels`` pixels.
    max_pixels : int or None
        Largest image, in pixels, read at full size (default :data:`MAX_PIXELS`); None
        for no limit (up to :data:`MAX_DECODE_PIXELS`).

    Returns
    -------
    image : ndarray, shape (H, W, 3)
        ``uint8`` for 8-bit files, ``uint16`` for 16-bit grayscale, RGB and RGBA PNGs and
        16-bit TIFFs, ``float32`` for floating-point TIFFs and for TIFFs of sample types
        that Pillow does not decode (read with tifffile, values kept, never reduced; see
        :data:`PILLOW_SAMPLE_TYPES`). Grayscale is repeated over
        three channels, an alpha channel is dropped, palette images are expanded, and the
        EXIF orientation is applied.

    Raises
    ------
    ImageReadError
        If the file does not exist, is not an image, is truncated or corrupt (whatever
        Pillow raises, warnings turned into errors included), has more than
        ``max_pixels`` pixels and no ``max_side`` is given, or has a header of more than
        :data:`MAX_DECODE_PIXELS` pixels; also for a TIFF of several pages or other than
        1, 3 or 4 bands, and an animated image (read them with :func:`plan_tiff` and
        :func:`read_tiff`). The message is one line naming the file.
    ConfigError
        If ``max_side`` or ``max_pixels`` is not a positive integer or None.
    """
    _check_limit("max_side", max_side)
    _check_limit("max_pixels", max_pixels)
    path = Path(path)
    _check_path(path)
    whole = _check_one_tiff_image(path, max_pixels)
    if whole is not None:
        return whole
    try:
        with _open_image(path) as image:
            return _read_opened(image, path, max_side, max_pixels)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(_not_an_image(path)) from None
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode the image") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageReadError(f"{path}: corrupt or truncated image ({_one_line(exc)})") from None


def _check_one_tiff_image(path: Path, max_pixels: int | None) -> np.ndarray | None:
    """Refuse a TIFF that is not one 2-D grayscale, RGB or RGBA image (plain pages, a
    volume, or another number of bands: :func:`plan_tiff` says), or an animated GIF,
    PNG or WebP, rather than read its first page or some of its bands alone. One image
    of a sample type that Pillow does not decode faithfully (:func:`plan_tiff`) is read
    here with tifffile, as :func:`read_image` returns it; None: Pillow reads the file
    (files tifffile cannot parse included)."""
    if not is_tiff(path):
        return None  # frames: _read_opened refuses them on the image it opens anyway
    plans = plan_tiff(path)  # plain pages: refused there, the message names --pages
    if plans is None:
        return None
    if plans[0].tifffile_only:
        return _read_tiff_rgb(path, plans[0], max_pixels)
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        n_pages, shape, axes = len(series.pages), tuple(series.shape), series.axes
    described = f"axes {axes}, shape {shape}"
    if plans[0].volume:
        raise ImageReadError(
            f"{path}: a TIFF of {n_pages} pages ({described}), a volume, of which "
            "read_image would read only the first page; read it with plan_tiff and "
            "read_tiff (CLI: unsupseg segment reads it as a volume)"
        )
    _, channel = _tiff_axes(axes, shape, path)
    bands = 1 if channel is None else shape[channel]
    stored = f"stored as {n_pages} pages " if n_pages > 1 else "per pixel "
    raise ImageReadError(
        f"{path}: a TIFF of {bands} channels {stored}({described}), of which read_image "
        "would keep only some; read them all with plan_tiff and read_tiff (CLI: unsupseg "
        "segment reads every band)"
    )


#: How ``--pages`` reads a plain multi-page TIFF (:func:`plan_tiff`).
PAGES = ("first", "each", "volume")
#: GeoTIFF tags (ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
#: GeoDoubleParams, GeoAsciiParams, GDAL_METADATA, GDAL_NODATA): copied to labels.tif.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
#: Sample types of a one-image TIFF that Pillow decodes value for value, for 1 band and
#: for 3 or 4 (16-bit RGB(A) is read with tifffile by :func:`read_image` itself). Others
#: (signed 8-bit, which Pillow reads as unsigned; 16- and 64-bit floats; 64-bit
#: integers; any multi-band type but 8 and 16 bits) are read with tifffile.
PILLOW_SAMPLE_TYPES = {
    1: frozenset({"bool", "uint8", "uint16", "int16", "uint32", "int32", "float32"}),
    3: frozenset({"bool", "uint8", "uint16"}),
    4: frozenset({"bool", "uint8", "uint16"}),
}
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class TiffPlan:
    """One image or volume to read from a TIFF file (:func:`plan_tiff`, :func:`read_tiff`).

    ``suffix`` goes after the file's stem in the output name (``-page003`` for
    ``--pages each``). ``series`` and ``page`` say what to read: page ``page`` of series
    ``series`` (the pages counted over its leading axes), or with ``page`` None the
    series' one image. ``volume``: the pages of ``n_series`` series from ``series`` on,
    stacked along Z. ``frames``: ``page`` is a frame of an animated GIF, PNG or WebP
    (all frames with ``volume``). ``tifffile_only``: one grayscale, RGB or RGBA image whose sample
    type Pillow does not decode faithfully (:data:`PILLOW_SAMPLE_TYPES`), which
    :func:`read_image` reads with tifffile.
    """

    suffix: str
    series: int
    page: int | None
    volume: bool
    n_series: int = 1
    tifffile_only: bool = False
    #: Frames of an animated GIF, PNG or WebP, decoded by Pillow (``page``: the frame).
    frames: bool = False


def is_tiff(path: str | os.PathLike) -> bool:
    """Whether the file starts with a TIFF or BigTIFF signature."""
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        return handle.read(4) in _TIFF_SIGNATURES
    return False


def _tiff_axes(axes: str, shape: tuple[int, ...], path: Path) -> tuple[list[int], int | None]:
    """The leading (page or Z) axes before Y and X, and the channel axis (S or C)."""
    channels = [i for i, axis in enumerate(axes) if axis in "SC"]
    if len(channels) > 1:
        raise ImageReadError(f"{path}: TIFF axes {axes} (shape {shape}): several channel axes")
    spatial = [i for i, axis in enumerate(axes) if axis in "YX"]
    if len(spatial) != 2:
        raise ImageReadError(f"{path}: TIFF axes {axes} (shape {shape}) have no Y and X")
    leading = [i for i in range(len(axes)) if i not in spatial and i not in channels]
    return leading, (channels[0] if channels else None)


def _page_shape(axes: str, shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    """The shape of one page of a series, channels last: (Y, X) or (Y, X, C)."""
    leading, channel = _tiff_axes(axes, shape, path)
    spatial = tuple(shape[i] for i, axis in enumerate(axes) if axis in "YX")
    return spatial if channel is None else (*spatial, shape[channel])


def plan_tiff(path: str | os.PathLike, pages: str | None = None) -> list[TiffPlan] | None:
    """What to read from a TIFF file, from its header and axes metadata only.

    Returns None for a file that :func:`read_image` reads with Pillow (one image that is
    not a TIFF, one 2-D grayscale, RGB or RGBA image of a sample type in
    :data:`PILLOW_SAMPLE_TYPES`, or a file tifffile cannot parse: Pillow's error then).
    An animated GIF, PNG or WebP is plain pages, its frames (below). Otherwise, by the
    axes of its series (tifffile; a pyramid's lower levels and thumbnails are not series):

    - one grayscale, RGB or RGBA image of another sample type (``float64``, ``int8``,
      ...): read whole with tifffile (``tifffile_only``; :func:`read_image` reads it too);
    - one image of 2 or more than 4 bands (``S`` or ``C`` axis), or bands stored as
      pages (``CYX``): read with all bands;
    - one series with a ``Z`` axis (``ZYX``, ``ZYXS``, ``ZCYX``): one volume (``pages``
      may still read its slices as ``first`` or ``each``);
    - plain pages (``IYX``, ``QYX``, ``TYX``, or several series, e.g. pages appended one
      by one or of different shapes): refused unless ``pages`` is ``first`` (the first
      page), ``each`` (every page of every series as its own image) or ``volume`` (all
      pages stacked as Z; they must have the same shape).

    Raises
    ------
    ImageReadError
        For plain pages without ``pages`` (the message names ``--pages``), pages of
        different shapes read as a volume, axes without Y and X, or complex samples.
    ConfigError
        For ``pages`` not in :data:`PAGES`.
    """
    if pages is not None and pages not in PAGES:
        raise ConfigError(f"pages must be one of {', '.join(PAGES)}; got {pages!r}")
    path = Path(path)
    if not is_tiff(path):
        return _plan_frames(path, pages)
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            layouts = [(series.axes, tuple(series.shape)) for series in tiff.series]
            dtypes = [np.dtype(series.dtype) for series in tiff.series]
    except Exception:  # noqa: BLE001 -- a file tifffile cannot parse: Pillow's error
        return None
    if not layouts:
        return None
    for dtype in dtypes:
        if dtype.kind == "c":
            raise ImageReadError(
                f"{path}: a TIFF of {dtype} (complex) samples; only real values can be "
                "segmented: save their magnitude, or the real and imaginary parts as two bands"
            )
    counts = [_series_pages(axes, shape, path) for axes, shape in layouts]
    axes, shape = layouts[0]
    leading, channel = _tiff_axes(axes, shape, path)
    bands = 1 if channel is None else shape[channel]
    if len(layouts) == 1 and counts[0] == 1:
        if bands in (1, 3, 4) and (channel is None or axes[channel] == "S"):
            if dtypes[0].name in PILLOW_SAMPLE_TYPES[bands]:
                return None
            return [TiffPlan("", 0, None, False, tifffile_only=True)]
        return [TiffPlan("", 0, None, False)]
    is_z = len(layouts) == 1 and [axes[i] for i in leading] == ["Z"]
    total = sum(counts)
    if len(layouts) == 1:
        described = f"axes {axes}, shape {shape}"
    else:
        described = f"{len(layouts)} series of shapes {', '.join(str(s) for _, s in layouts)}"
    if pages is None and not is_z:
        raise ImageReadError(
            f"{path}: a TIFF of {total} pages ({described}), a stack, volume or set of "
            "bands: choose how to read it with --pages first|each|volume (Python: "
            "plan_tiff(path, pages='first', 'each' or 'volume'))"
        )
    if pages in (None, "volume"):
        page_shapes = {_page_shape(a, s, path) for a, s in layouts}
        if len(page_shapes) > 1:
            raise ImageReadError(
                f"{path}: a TIFF of {total} pages of different shapes ({described}) cannot "
                "be stacked as a volume; read them with --pages first or --pages each"
            )
        return [TiffPlan("", 0, None, True, len(layouts))]
    if pages == "first":
        return [TiffPlan("", 0, None if counts[0] == 1 else 0, False)]
    plans = []
    for series, count in enumerate(counts):
        for page in range(count):
            plans.append(
                TiffPlan(f"-page{len(plans):03d}", series, None if count == 1 else page, False)
            )
    return plans


def read_tiff(
    path: str | os.PathLike, plan: TiffPlan, *, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """Read what ``plan`` (from :func:`plan_tiff`) names, channels last, in the file's
    dtype: (H, W), (H, W, C), or for a volume (Z, Y, X) or (Z, Y, X, C).

    A page of a stack is decoded alone (not the whole stack). A 2-D image is read at
    full size, whatever its size (``segment(..., max_side=...)`` downscales it); a
    volume is refused, before decoding, when it has more than ``max_pixels`` voxels
    (default :data:`MAX_PIXELS`, what :func:`unsupseg.per_image.segment` takes; None:
    no limit), as volumes are never read reduced.

    Raises
    ------
    ImageReadError
        For a file that cannot be decoded (truncated, corrupt), one of more than
        :data:`MAX_DECODE_PIXELS` values, or a volume over ``max_pixels`` voxels.
    ConfigError
        If ``max_pixels`` is not a positive integer or None.
    """
    import tifffile

    _check_limit("max_pixels", max_pixels)
    path = Path(path)
    if plan.frames:
        return _read_frames(path, plan, max_pixels)
    try:
        with tifffile.TiffFile(path) as tiff:
            if plan.volume:
                chosen = range(plan.series, plan.series + plan.n_series)
                _check_volume_size(tiff, path, chosen, max_pixels)
                parts = [_read_series_pages(tiff, path, index, None) for index in chosen]
                return parts[0] if len(parts) == 1 else np.concatenate(parts)
            return _read_series_pages(tiff, path, plan.series, plan.page)[0]
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001 -- tifffile raises many kinds
        if "imagecodecs" in str(exc):  # a compression tifffile decodes only with it
            raise ImageReadError(
                f"{path}: this TIFF's compression needs the imagecodecs package "
                f"({_one_line(exc)}): pip install imagecodecs, or save it uncompressed"
            ) from None
        raise ImageReadError(f"{path}: corrupt or truncated TIFF ({_one_line(exc)})") from None


def frame_count(path: str | os.PathLike) -> int:
    """The frames of an animated GIF, PNG or WebP (Pillow's ``n_frames``); 1 for any
    other image, and for a file Pillow cannot open (:func:`read_image` says why)."""
    try:
        with _open_image(Path(path)) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # noqa: BLE001 -- read_image reports what is wrong with the file
        return 1


def _animated(path: Path, count: int) -> str:
    return (
        f"{path}: an animated image of {count} frames: choose how to read it with "
        "--pages first|each|volume (Python: plan_tiff(path, pages='first', 'each' or 'volume'))"
    )


def _plan_frames(path: Path, pages: str | None) -> list[TiffPlan] | None:
    """:func:`plan_tiff` of a file that is not a TIFF: None for one frame."""
    count = frame_count(path)
    if count == 1:
        return None
    if pages is None:
        raise ImageReadError(_animated(path, count))
    if pages == "volume":
        return [TiffPlan("", 0, None, True, frames=True)]
    chosen = range(1) if pages == "first" else range(count)
    return [TiffPlan("" if pages == "first" else f"-page{k:03d}", 0, k, False, frames=True)
            for k in chosen]  # fmt: skip


def _read_frames(path: Path, plan: TiffPlan, max_pixels: int | None) -> np.ndarray:
    """:func:`read_tiff` of animated frames: (H, W, 3) ``uint8``, or all frames as a
    volume (Z, Y, X, 3); Pillow composes each frame over the ones before as a viewer
    shows it."""
    try:
        with _open_image(path) as image:
            count = int(getattr(image, "n_frames", 1))
            width, height = image.size
            chosen = range(count) if plan.page is None else [plan.page]
            voxels = len(chosen) * width * height
            if voxels > MAX_DECODE_PIXELS:
                raise ImageReadError(
                    f"{path}: {len(chosen)} frames of {width}x{height} pixels is over the "
                    f"limit of {MAX_DECODE_PIXELS} values that is decoded at all"
                )
            if plan.volume and max_pixels is not None and voxels > max_pixels:
                raise ImageReadError(
                    f"{path}: a volume of {count}x{height}x{width} = {voxels} voxels is over "
                    f"the limit of {max_pixels} voxels; volumes are not read reduced: read "
                    "its frames as 2-D images with --pages each"
                )
            frames = []
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for index in chosen:
                    image.seek(index)
                    frames.append(np.asarray(image.convert("RGB")))
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 -- Pillow raises many kinds
        raise ImageReadError(f"{path}: corrupt or truncated image ({_one_line(exc)})") from None
    return np.stack(frames) if plan.volume else frames[0]


def _read_tiff_rgb(path: Path, plan: TiffPlan, max_pixels: int | None) -> np.ndarray:
    """A one-image TIFF that Pillow does not decode faithfully, as :func:`read_image`
    returns images: (H, W, 3), grayscale repeated, alpha dropped, the TIFF orientation
    tag applied, ``float32`` (every value of these sample types but 64-bit integers
    beyond 2**24 is exact); never read reduced, so refused over ``max_pixels``."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        height, width = _page_shape(series.axes, tuple(series.shape), path)[:2]
        dtype = series.dtype
        tag = tiff.pages[0].tags.get(_ORIENTATION_TAG)
        orientation = int(tag.value) if tag is not None and tag.value in _TRANSPOSE else 1
    if max_pixels is not None and height * width > max_pixels:
        raise ImageReadError(
            f"{path}: {width}x{height} pixels of {dtype} is over the limit of "
            f"{_limit_text(max_pixels)} read at full size, and TIFFs of this sample type "
            "are not read reduced: crop or convert it"
        )
    array = read_tiff(path, plan, max_pixels=None)
    if array.ndim == 2:
        array = array[..., None]
    array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
    if array.dtype.kind == "f" and np.isfinite(array).all():
        if np.abs(array).max(initial=0) > np.finfo(np.float32).max:
            raise ImageReadError(f"{path}: {dtype} values beyond the float32 range (about 3.4e38)")
    return _orient_array(array.astype(np.float32, copy=False), orientation)


def _series_pages(axes: str, shape: tuple[int, ...], path: Path) -> int:
    leading, _ = _tiff_axes(axes, shape, path)
    return math.prod(shape[i] for i in leading)


def _check_volume_size(tiff: Any, path: Path, chosen: range, max_pixels: int | None) -> None:
    """Refuse, from the header, a volume of more than ``max_pixels`` voxels."""
    if max_pixels is None:
        return
    depth, plane = 0, (0, 0)
    for index in chosen:
        axes, shape = tiff.series[index].axes, tuple(tiff.series[index].shape)
        depth += _series_pages(axes, shape, path)
        plane = _page_shape(axes, shape, path)[:2]
    voxels = depth * plane[0] * plane[1]
    if voxels > max_pixels:
        raise ImageReadError(
            f"{path}: a volume of {depth}x{plane[0]}x{plane[1]} = {voxels} voxels is over "
            f"the limit of {max_pixels} voxels; volumes are not read reduced: crop it, or "
            "read it as 2-D pages with --pages each"
        )


def _read_series_pages(tiff: Any, path: Path, index: int, page: int | None) -> np.ndarray:
    """Pages ``(n, Y, X[, C])`` of series ``index``: all of them, or page ``page`` alone
    (n = 1), whose IFDs are decoded without the rest of the series where the leading
    axes come first (as tifffile writes them)."""
    series = tiff.series[index]
    axes, shape = series.axes, tuple(series.shape)
    leading, channel = _tiff_axes(axes, shape, path)
    spatial = [i for i, axis in enumerate(axes) if axis in "YX"]
    n_pages = _series_pages(axes, shape, path)
    item_size = math.prod(shape) // max(n_pages, 1)
    wanted = n_pages if page is None else 1
    if wanted * item_size > MAX_DECODE_PIXELS:
        raise ImageReadError(
            f"{path}: {shape} ({axes}) holds more than {MAX_DECODE_PIXELS} values: the file "
            "is corrupt or far too large"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ifds = len(series.pages)
        if (
            page is not None
            and leading == list(range(len(leading)))
            and n_pages > 1
            and ifds % n_pages == 0
        ):
            per_page = ifds // n_pages
            array = tiff.asarray(
                key=slice(page * per_page, (page + 1) * per_page), series=index
            ).reshape(1, *shape[len(leading) :])
            leading = [0]
            spatial = [i - len(shape) + array.ndim for i in spatial]
            channel = None if channel is None else channel - len(shape) + array.ndim
        else:
            array = series.asarray()
    order = leading + spatial + ([] if channel is None else [channel])
    array = np.transpose(array, order)
    array = array.reshape(-1, *array.shape[len(leading) :])  # (pages, Y, X[, C])
    return array if page is None or array.shape[0] == 1 else array[page : page + 1]


def geo_tags(path: str | os.PathLike) -> list[tuple[int, int, int, Any, bool]]:
    """The GeoTIFF tags (:data:`GEO_TAGS`) of a TIFF file's first page, as tifffile's
    ``extratags`` (code, dtype, count, value, writeonce); [] for other files."""
    if not is_tiff(path):
        return []
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            tags = tiff.pages[0].tags
            return [
                (tag.code, int(tag.dtype), tag.count, tag.value, True)
                for tag in tags.values()
                if tag.code in GEO_TAGS
            ]
    except Exception:  # noqa: BLE001 -- no tags to copy from a file tifffile cannot read
        return []


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB picture for figures of a float channels-last image in [0, 1]
    (:func:`as_float_channels`): RGB as it is, one band as gray, two bands as the first
    in gray, more bands as the first three."""
    image = np.asarray(image)
    bands = image.shape[-1]
    if bands == 3:
        return image
    if bands < 3:
        return np.repeat(image[..., :1], 3, axis=-1)
    return image[..., :3]


def _read_opened(
    image: Image.Image, path: Path, max_side: int | None, max_pixels: int | None
) -> np.ndarray:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageReadError(f"{path}: the header says {width}x{height} pixels: no image")
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "TIFF":  # TIFF pages: plan_tiff refused them
        raise ImageReadError(_animated(path, frames))
    pixels = width * height
    if pixels > MAX_DECODE_PIXELS:
        raise ImageReadError(
            f"{path}: the header says {width}x{height} = {pixels} pixels, over the limit of "
            f"{MAX_DECODE_PIXELS} (1 gigapixel) that is decoded at all: decoding would need "
            f"about {_decoded_bytes(image) / 1e9:.0f} GB; the file is corrupt or far too large"
        )
    _check_png_can_hold(image, path)
    orientation = _orientation(image, path)
    full = max_pixels is None or pixels <= max_pixels
    if not full and max_side is None:
        assert max_pixels is not None
        shown_h, shown_w = _oriented_shape(image, orientation)
        raise ImageReadError(
            f"{path}: {shown_w}x{shown_h} pixels is over the limit of {_limit_text(max_pixels)} "
            "read at full size; pass --max-side 1024 (Python: max_side=1024) to read it reduced"
        )
    target = None if full else _target_size(width, height, int(max_side))  # type: ignore[arg-type]

    colour = _png16_colour(image, path)
    if colour is not None:
        return _orient_array(_read_png16(path, colour, target), orientation)
    if _is_deep_colour_tiff(image):
        array = _read_tiff16(path, target)
        if array is not None:
            return _orient_array(array, orientation)
    if target is None:
        image.load()
        return _pil_to_rgb_array(ImageOps.exif_transpose(image))
    return _read_reduced(image, target, orientation)


def _check_png_can_hold(image: Image.Image, path: Path) -> None:
    """Refuse, before decoding, a PNG too short for the pixels its header claims.

    Deflate compresses at most 1032:1, so the file must have at least 1/1032 of the
    image's raw bytes; a short file with a large header would otherwise have Pillow
    allocate the whole image before finding that the data ends.
    """
    if image.format != "PNG":
        return
    _check_png_chunks(path)
    width, height = image.size
    bits = {"1": 1, "L": 8, "P": 8, "LA": 16, "RGB": 24, "RGBA": 32}.get(image.mode, 16)
    raw = height * (1 + (width * bits + 7) // 8)
    size = path.stat().st_size
    if size * 1100 < raw:
        raise ImageReadError(
            f"{path}: truncated or corrupt PNG: {size} bytes cannot hold the {width}x{height} "
            f"pixels its header claims (at least {raw // 1032} bytes compressed)"
        )


def _check_png_chunks(path: Path) -> None:
    """Refuse a PNG with a chunk longer than the PNG limit or than what the file has left.

    Pillow reads a chunk's declared length in one go: a corrupt length of 4 GB in a
    300-byte file would allocate 4 GB before finding the file short.
    """
    size = path.stat().st_size
    with open(path, "rb") as fp:
        offset = 8
        while offset + 8 <= size:
            fp.seek(offset)
            length, kind = struct.unpack(">I4s", fp.read(8))
            if length > (1 << 31) - 1 or offset + 12 + length > size:
                raise ImageReadError(
                    f"{path}: truncated or corrupt PNG: chunk {kind.decode('latin-1')!r} at "
                    f"byte {offset} claims {length} bytes, the file has {size - offset - 12} left"
                )
            if kind == b"IEND":
                return
            offset += 12 + length


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(width, height)`` with the longer side ``max_side`` (never enlarged)."""
    scale = max_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _read_reduced(image: Image.Image, target: tuple[int, int], orientation: int) -> np.ndarray:
    """Decode an opened Pillow image reduced to ``target = (width, height)``."""
    if image.format in ("JPEG", "MPO"):
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale, to at least the requested size.
        image.draft(None, target)
    image.load()
    if image.mode.startswith("I;16"):
        width, height = image.size
        rows = max(1, _BAND_BYTES // (2 * width))
        bands = (
            np.asarray(image.crop((0, y, width, min(height, y + rows)))).astype(np.uint16)[
                ..., None
            ]
            for y in range(0, height, rows)
        )
        gray = _reduce_uint16(bands, image.size, target)
        return _orient_array(np.repeat(gray, 3, axis=2), orientation)
    if image.mode in ("P", "PA"):
        image = image.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("RGBA", "RGBa", "LA", "La"):
        # Drop alpha first, as a full-size read does (Pillow would premultiply it).
        image = image.convert("L" if image.mode[0] == "L" else "RGB")
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        image = image.transpose(method)
    return _pil_to_rgb_array(image)


def _pil_to_rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(img).astype(np.uint16)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "I":
        gray = np.asarray(img)
        if gray.min() >= 0 and gray.max() <= np.iinfo(np.uint16).max:
            gray = gray.astype(np.uint16)
        else:
            gray = gray.astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        gray = np.asarray(img, dtype=np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def _orient_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, C) array as ``ImageOps.exif_transpose``."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.transpose(1, 0, 2)
    elif orientation == 6:
        array = np.rot90(array, k=-1)
    elif orientation == 7:
        array = array[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        array = np.rot90(array, k=1)
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------
# reducing 16-bit images band by band


def _reduce_factor(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The largest box factor that leaves at least twice ``target`` (Pillow's
    ``reducing_gap=2``): blocks are averaged, then Lanczos resizes the rest."""
    return max(1, min(size[0] // (2 * target[0]), size[1] // (2 * target[1])))


def _reduce_uint16(
    bands: Iterable[np.ndarray], size: tuple[int, int], target: tuple[int, int]
) -> np.ndarray:
    """Reduce an image given as bands of rows ``(n, W, C)`` to ``target = (w, h)``, uint16.

    Blocks of pixels are averaged band by band (see :func:`_reduce_factor`), then the
    small result is resized with Lanczos per channel. No full-size copy is made.
    """
    factor = _reduce_factor(size, target)
    pieces: list[np.ndarray] = []
    carry: np.ndarray | None = None
    for band in bands:
        if carry is not None:
            band = np.concatenate([carry, band])
            carry = None
        usable = band.shape[0] - band.shape[0] % factor
        if usable < band.shape[0]:
            carry = band[usable:]
            band = band[:usable]
        if band.shape[0]:
            pieces.append(_block_mean(band, factor))
    if carry is not None and carry.shape[0]:
        pieces.append(_block_mean(carry, factor))
    return _resize_channels(np.concatenate(pieces), target)


def _resize_channels(reduced: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """Lanczos-resize a small float (h, w, C) image to ``target = (w, h)``, as uint16."""
    if reduced.shape[1::-1] != tuple(target):
        channels = [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(reduced[..., c], dtype=np.float32)).resize(
                    target, Image.Resampling.LANCZOS
                )
            )
            for c in range(reduced.shape[2])
        ]
        reduced = np.stack(channels, axis=2)
    return np.clip(np.rint(reduced), 0, 65535).astype(np.uint16)


def _block_mean(band: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of ``band`` (partial edge blocks included)."""
    if factor == 1:
        return band.astype(np.float32)
    n, w = band.shape[:2]
    rows = np.arange(0, n, factor)
    cols = np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(band, cols, axis=1, dtype=np.float64), rows, axis=0)
    counts = np.diff(np.r_[rows, n])[:, None] * np.diff(np.r_[cols, w])[None, :]
    return (sums / counts[..., None]).astype(np.float32)


# ---------------------------------------------------------------------------
# 16-bit colour PNG (Pillow keeps only the high byte of each sample)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: colour type -> (Pillow mode, raw modes giving the high and the low bytes). Pillow has
#: no 16-bit colour mode, but its PNG decoder undoes the row filters for any raw mode of
#: the right bit count: the big- and little-endian 16-bit unpackers keep the first and
#: the second byte of each sample. Gray + alpha (4 bytes a pixel) is decoded as RGBX,
#: which gives the gray high byte in R and the low byte in G.
_PNG16_PLANES = {
    2: ("RGB", ("RGB;16B", "RGB;16L")),
    6: ("RGBA", ("RGBA;16B", "RGBA;16L")),
    4: ("RGB", ("RGBX",)),
}


def _png16_colour(image: Image.Image, path: Path) -> int | None:
    """The PNG colour type of a 16-bit RGB, RGBA or gray + alpha PNG, else None."""
    if image.format != "PNG":
        return None
    with open(path, "rb") as fp:
        head = fp.read(29)
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    depth, colour = head[24], head[25]
    return colour if depth == 16 and colour in _PNG16_PLANES else None


def _png16_plane(path: Path, colour: int, rawmode: str) -> Image.Image:
    """Decode a 16-bit colour PNG with another raw mode: one byte of every sample."""
    mode, _ = _PNG16_PLANES[colour]
    image = _open_image(path)
    try:
        if len(image.tile) != 1:
            raise OSError(f"unexpected PNG layout ({len(image.tile)} tiles)")
        tile = image.tile[0]
        if image.mode != mode:
            image._mode = mode  # gray + alpha: read 4 bytes a pixel as RGBX
        image.tile = [tile._replace(args=rawmode)]
        image.load()
    except BaseException:
        image.close()
        raise
    return image


def _png16_bands(plane: Image.Image, rows: int) -> Iterator[np.ndarray]:
    width, height = plane.size
    for y in range(0, height, rows):
        yield np.asarray(plane.crop((0, y, width, min(height, y + rows))))


def _read_png16(path: Path, colour: int, target: tuple[int, int] | None) -> np.ndarray:
    """Read a 16-bit RGB, RGBA or gray + alpha PNG as (H, W, 3) uint16, or reduced.

    Each byte plane is decoded by Pillow on its own (8 bits a sample), so reading reduced
    holds one 8-bit full-size plane at a time, averaged band by band.
    """
    _, rawmodes = _PNG16_PLANES[colour]
    if len(rawmodes) == 1:  # gray + alpha: both bytes in one plane
        with _png16_plane(path, colour, rawmodes[0]) as plane:
            width, height = plane.size
            rows = max(1, _BAND_BYTES // (4 * width))
            bands = (
                ((band[..., 0].astype(np.uint16) << 8) | band[..., 1])[..., None]
                for band in _png16_bands(plane, rows)
            )
            if target is None:
                gray = np.concatenate(list(bands))
            else:
                gray = _reduce_uint16(bands, (width, height), target)
        return np.repeat(gray, 3, axis=2)
    if target is None:
        planes = []
        for rawmode in rawmodes:
            with _png16_plane(path, colour, rawmode) as plane:
                planes.append(np.asarray(plane)[..., :3])
        return (planes[0].astype(np.uint16) << 8) | planes[1]
    total: np.ndarray | None = None
    for weight, rawmode in zip((256.0, 1.0), rawmodes, strict=True):
        with _png16_plane(path, colour, rawmode) as plane:
            width, height = plane.size
            factor = _reduce_factor((width, height), target)
            rows = factor * max(1, _BAND_BYTES // (4 * width * factor))
            if total is None:
                total = np.zeros((-(-height // factor), -(-width // factor), 3), np.float32)
            y = 0
            for band in _png16_bands(plane, rows):
                mean = _block_mean(band[..., :3], factor)
                total[y : y + mean.shape[0]] += mean * weight if weight != 1.0 else mean
                y += mean.shape[0]
        del plane  # free this plane's pixels before the next one is decoded
    assert total is not None
    return _resize_channels(total, target)


# ---------------------------------------------------------------------------
# 16-bit colour TIFF (Pillow keeps only the high byte of each sample)


def _is_deep_colour_tiff(image: Image.Image) -> bool:
    if image.format != "TIFF" or image.mode not in ("RGB", "RGBA", "RGBX"):
        return False
    bits = getattr(image, "tag_v2", {}).get(258, 8)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return any(int(b) > 8 for b in bits)


def _read_tiff16(path: Path, target: tuple[int, int] | None) -> np.ndarray | None:
    """Read a 16-bit RGB(A) TIFF with tifffile; None where tifffile cannot decode it."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            axes = page.axes
            array = page.asarray()
    except Exception as exc:  # e.g. LZW needs imagecodecs: fall back to Pillow's 8 bits
        warnings.warn(
            f"{path}: 16-bit TIFF read as 8-bit (only the high byte of each sample): "
            f"tifffile cannot decode it ({_one_line(exc)})",
            UserWarning,
            stacklevel=4,
        )
        return None
    if axes.startswith("S") and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.ndim != 3 or array.shape[2] < 3:
        return None
    if array.dtype != np.uint16:
        return None  # Pillow reads what it can of other depths
    array = array[..., :3]
    if target is None:
        return np.ascontiguousarray(array)
    height, width = array.shape[:2]
    rows = max(1, _BAND_BYTES // (6 * width))
    bands = (array[y : y + rows] for y in range(0, height, rows))
    return _reduce_uint16(bands, (width, height), target)


# ---------------------------------------------------------------------------
# arrays, paths and label files


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """Convert an image array to float32 RGB, min-max normalised to [0, 1].

    Parameters
    ----------
    image : ndarray
        Shape (H, W) grayscale, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha is
        dropped); any integer, boolean or floating dtype.

    Returns
    -------
    rgb : ndarray of float32, shape (H, W, 3)
        ``(image - min) / (max - min)`` over the whole image (all channels together, so
        colours keep their hue); a constant image becomes all zeros.

    Raises
    ------
    ValueError
        For any other shape, an empty image, or non-finite values.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.shape[2] == 4:
        image = image[..., :3]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.dtype == bool:
        image = image.astype(np.float32)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(
        image.dtype, np.complexfloating
    ):
        raise ValueError(f"image must hold real numbers; got dtype {image.dtype}")
    if not np.isfinite(image).all():  # before the cast: float64 beyond float32 is inf
        raise ValueError("image contains NaN or infinite values")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("image values exceed the float32 range (about 3.4e38)")
    low, high = float(image.min()), float(image.max())
    if high > low:
        image = (image - low) / (high - low)
    else:
        image = np.zeros_like(image)
    return image


def as_float_channels(image: np.ndarray, *, volume: bool = False) -> np.ndarray:
    """Convert an image or volume of any number of channels to float32, channels last,
    min-max normalised to [0, 1]: what the per-image network reads.

    Parameters
    ----------
    image : ndarray
        2-D (``volume=False``): (H, W) or (H, W, C). 3-D (``volume=True``): (Z, Y, X)
        or (Z, Y, X, C). Any real dtype.
    volume : bool
        Whether the first three axes are spatial.

    Returns
    -------
    ndarray of float32, shape (H, W, C') or (Z, Y, X, C')
        A 2-D image of 1, 3 or 4 channels is :func:`as_rgb_float` (C' = 3: grayscale is
        repeated, alpha dropped, one min-max over all channels). Any other channel count
        (2, 5, ... bands), and every volume, keeps its C channels (a volume without a
        channel axis gets C' = 1); 3-channel volumes take one min-max over all channels
        as RGB, others one per band, since bands of multispectral or microscopy data have
        unrelated ranges. A constant band becomes zeros.

    Raises
    ------
    ValueError
        For any other shape, an empty image, or values that are not finite real numbers.

    Examples
    --------
    >>> as_float_channels(np.zeros((4, 5, 6), np.uint16)).shape
    (4, 5, 6)
    >>> as_float_channels(np.zeros((2, 4, 5)), volume=True).shape
    (2, 4, 5, 1)
    """
    image = np.asarray(image)
    spatial = 3 if volume else 2
    if image.ndim == spatial:
        image = image[..., None]
    if image.ndim != spatial + 1:
        kind = "a volume (Z, Y, X) or (Z, Y, X, C)" if volume else "(H, W) or (H, W, C)"
        raise ValueError(f"image must have shape {kind}; got {image.shape}")
    if not volume and image.shape[-1] in (1, 3, 4):
        return as_rgb_float(image)
    if min(image.shape) == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.dtype == bool:
        image = image.astype(np.float32)
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(
        image.dtype, np.complexfloating
    ):
        raise ValueError(f"image must hold real numbers; got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("image values exceed the float32 range (about 3.4e38)")
    axes = tuple(range(spatial)) if image.shape[-1] != 3 else None
    low = image.min(axis=axes, keepdims=True)
    span = image.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (image - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def to_uint8(rgb_float: np.ndarray) -> np.ndarray:
    """Convert a float image in [0, 1] to ``uint8`` for display."""
    return np.clip(np.rint(rgb_float * 255.0), 0, 255).astype(np.uint8)


def resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a label map to ``(height, width)`` by nearest neighbour, keeping its dtype.

    Each output pixel takes the label under its centre, so no new label value appears.
    """
    height, width = labels.shape[:2]
    if (height, width) == tuple(size):
        return labels
    rows = np.minimum(((np.arange(size[0]) + 0.5) * height / size[0]).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * width / size[1]).astype(np.int64), width - 1)
    return labels[rows[:, None], cols[None, :]]


def find_images(inputs: list[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders into image paths.

    Returns
    -------
    paths : list of Path
        Files given directly (whatever their suffix: a wrong one fails when read) and,
        for each folder, its files with an image suffix, sorted by name.
    problems : list of (Path, message)
        Inputs that do not exist or folders without any image.
    """
    paths: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(
                p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                problems.append(
                    (item, f"{item}: folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
                )
            paths.extend(found)
        elif item.exists():
            paths.append(item)
        else:
            problems.append((item, f"{item}: no such file or folder"))
    return paths, problems


def save_label_png(path: str | os.PathLike | BinaryIO, labels: np.ndarray) -> None:
    """Save a label map as a PNG (to a path or a binary file object): uint8 when ids
    fit in 0..255, else uint16."""
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0:
        raise ValueError("label ids must be >= 0")
    if labels.max(initial=0) <= 255:
        Image.fromarray(labels.astype(np.uint8), mode="L").save(path, format="PNG")
    elif labels.max() <= 65535:
        Image.fromarray(labels.astype(np.uint16)).save(path, format="PNG")
    else:
        raise ValueError("more than 65536 labels do not fit a PNG")


def save_label_tiff(
    path: str | os.PathLike | BinaryIO, labels: np.ndarray, tags: Iterable[tuple] = ()
) -> None:
    """Save a label map or volume as a deflate-compressed TIFF (to a path or a binary file
    object), in the smallest unsigned type that holds its ids (:func:`compact_labels`),
    one page per slice, with axes ``YX`` or ``ZYX`` in tifffile's metadata; ``tags`` are
    extra tags as tifffile's ``extratags`` (GeoTIFF tags, :func:`geo_tags`)."""
    import tifffile

    compact = compact_labels(labels)
    tifffile.imwrite(
        path, compact, photometric="minisblack", compression="zlib",
        metadata={"axes": "ZYX" if compact.ndim == 3 else "YX"}, extratags=tuple(tags),
    )  # fmt: skip


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG written by :func:`save_label_png` as int64 ids.

    Raises
    ------
    ImageReadError
        When the file is missing, cannot be decoded, is larger than
        :data:`MAX_DECODE_PIXELS`, or is not a label map (more than one channel, or
        floating-point values).
    """
    path = Path(path)
    _check_path(path, "label ")
    try:
        with _open_image(path) as img:
            _check_decodable(img, path)
            labels = np.asarray(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(_not_an_image(path)) from None
    except Exception as exc:  # whatever Pillow raises on a corrupt file
        raise ImageReadError(f"{path}: cannot read the label image ({_one_line(exc)})") from None
    if labels.ndim != 2:
        raise ImageReadError(
            f"{path}: not a label map: mode {img.mode} has {labels.shape[2]} channels "
            "(label PNGs are one channel, 8 or 16 bits)"
        )
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ImageReadError(
            f"{path}: not a label map: mode {img.mode} holds {labels.dtype} values "
            "(label PNGs hold integer ids, 8 or 16 bits)"
        )
    return labels.astype(np.int64)


def read_scribble(path: str | os.PathLike) -> np.ndarray:
    """Read a scribble image: class ids where the user scribbled, 255 elsewhere.

    An 8-bit grayscale, palette or 16-bit PNG is read as its values; any other mode is
    converted to 8-bit grayscale first.

    Raises
    ------
    ImageReadError
        When the file is missing, cannot be decoded or is larger than
        :data:`MAX_DECODE_PIXELS`.
    """
    path = Path(path)
    _check_path(path, "scribble ")
    try:
        with _open_image(path) as img:
            _check_decodable(img, path)
            return np.asarray(img.convert("L") if img.mode not in ("L", "P", "I;16") else img)
    except ImageReadError:
        raise
    except Exception as exc:  # whatever Pillow raises on a corrupt file
        raise ImageReadError(f"{path}: cannot read the scribble image ({_one_line(exc)})") from None


def _check_decodable(image: Image.Image, path: Path) -> None:
    _check_png_can_hold(image, path)
    width, height = image.size
    if width < 1 or height < 1 or width * height > MAX_DECODE_PIXELS:
        raise ImageReadError(
            f"{path}: the header says {width}x{height} pixels; refused before decoding "
            f"(limit {MAX_DECODE_PIXELS}): the file is corrupt or far too large"
        )


# ---------------------------------------------------------------------------
# compact label arrays


def smallest_uint_dtype(max_value: int, min_value: int = 0) -> np.dtype:
    """The smallest integer type holding every value in ``[min_value, max_value]``.

    Parameters
    ----------
    max_value : int
        Largest value to hold.
    min_value : int
        Smallest value to hold (default 0).

    Returns
    -------
    dtype : numpy dtype
        ``uint8``, ``uint16`` or ``uint32`` for values in ``0 .. 2**32 - 1``; ``int64``
        when a value is negative or larger (``uint64`` only for values beyond int64).

    Raises
    ------
    ValueError
        If ``min_value > max_value`` or a value is outside the int64 / uint64 range.
    """
    low, high = int(min_value), int(max_value)
    if low > high:
        raise ValueError(f"min_value {low} is larger than max_value {high}")
    if low >= 0:
        for dtype in (np.uint8, np.uint16, np.uint32):
            if high <= np.iinfo(dtype).max:
                return np.dtype(dtype)
    if np.iinfo(np.int64).min <= low and high <= np.iinfo(np.int64).max:
        return np.dtype(np.int64)
    if low >= 0 and high <= np.iinfo(np.uint64).max:
        return np.dtype(np.uint64)
    raise ValueError(f"labels in [{low}, {high}] fit no 64-bit integer type")


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """A label array in the smallest integer type holding its values (values unchanged).

    Parameters
    ----------
    labels : array-like of int or bool
        Any shape; a float array is accepted when every value is a whole number.

    Returns
    -------
    compact : ndarray
        ``uint8``, ``uint16`` or ``uint32`` (``int64`` with negative or larger ids), see
        :func:`smallest_uint_dtype`; ``labels`` itself when it already has that type. A
        12000 x 12000 map of a few hundred ids takes 288 MB as uint16 instead of 1.15 GB
        as int64.

    Raises
    ------
    ValueError
        For non-integer values.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if not (
            np.issubdtype(labels.dtype, np.floating)
            and np.isfinite(labels).all()
            and np.all(np.mod(labels, 1) == 0)
        ):
            raise ValueError(f"labels must be whole numbers; got dtype {labels.dtype}")
        if labels.size and (np.abs(labels).max() > 2**53):
            raise ValueError("float labels beyond 2**53 are not exact integers")
        labels = labels.astype(np.int64)
    if labels.size == 0:
        return labels.astype(np.uint8)
    dtype = smallest_uint_dtype(int(labels.max()), int(labels.min()))
    return labels if labels.dtype == dtype else labels.astype(dtype)


# ---------------------------------------------------------------------------
# atomic writers and their temporaries

#: ``.<final name>.<owner pid>.<8 random characters>.tmp`` (``old-`` before the random
#: part for the previous contents of a directory being replaced).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<old>old-)?[a-z0-9_]{8}\.tmp$")


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Write a folder's contents into a temporary sibling and move it in place at the end.

    If the block raises (``KeyboardInterrupt`` and a full disk included), the temporary
    folder is removed and ``final`` is left as it was; otherwise ``final`` is replaced as
    a whole, so readers never see a mix of old and new files. The temporary folder is
    named ``.<name>.<pid>.<random>.tmp`` so that :func:`sweep_stale_temporaries` can
    remove it once its process is gone (killed, or the machine stopped).

    Raises
    ------
    OSError
        When the folder cannot be created or moved in place; nothing is left behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(final), suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f"{_temporary_prefix(final)}old-{secrets.token_hex(4)}.tmp")
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except BaseException:
            if old is not None:
                os.replace(old, final)  # put the previous contents back
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``final``; rename it over ``final`` on success.

    If the block, the final flush (a full disk) or the rename raises, the temporary file
    is removed and ``final`` is left as it was. The temporary is named
    ``.<name>.<pid>.<random>.tmp`` (see :func:`sweep_stale_temporaries`).

    Raises
    ------
    OSError
        When the file cannot be written or moved in place; nothing is left behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(final), suffix=".tmp", dir=final.parent)
    try:
        handle = os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with handle:
            os.chmod(tmp, 0o666 & ~_umask())
            yield handle
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt" or pid <= 0:
        return True  # os.kill(pid, 0) would end the process on Windows: never sweep there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or no way to tell: leave it alone
    return True


def sweep_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of :func:`atomic_file` / :func:`atomic_directory` left in
    ``folder`` by processes that are gone.

    Only entries named ``.<name>.<pid>.<random>.tmp`` whose ``pid`` is not a running
    process are removed (``os.kill(pid, 0)`` raises ``ProcessLookupError``); those of
    live processes, and every other file or folder, are left alone. Sub-folders are not
    searched. Where a process died while replacing a folder, after moving the previous
    contents aside and before moving the new ones in, the previous contents are put
    back at ``<name>`` instead of being removed.

    Parameters
    ----------
    folder : str or path-like
        The folder to sweep (a missing folder holds nothing).

    Returns
    -------
    removed : list of Path
        The temporaries removed (or restored), sorted by name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        match = _TEMPORARY.match(entry.name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        final = folder / match["name"]
        if match["old"] and entry.is_dir() and not entry.is_symlink() and not final.exists():
            with contextlib.suppress(OSError):
                os.replace(entry, final)
                removed.append(entry)
                continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        if not os.path.lexists(entry):
            removed.append(entry)
    return removed


def _umask() -> int:
    """The process umask (temporary files are created private; outputs should not be)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
