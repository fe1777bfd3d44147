"""Reading images and writing outputs.

One image loader for the whole project (:func:`read_image`), one converter from any
array a user may hand us to the float RGB image the algorithms expect
(:func:`as_rgb_float`), and atomic writers so that a failure never leaves a
half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unsupseg.errors import ImageReadError

#: File suffixes treated as images when a folder is given.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")

#: Largest image (in pixels) segmented without downscaling: 2048 x 2048. Per-image
#: optimisation keeps several (q, H, W) float tensors alive; at q=100 each one of this
#: size is 1.7 GB.
MAX_PIXELS = 2048 * 2048


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an RGB array.

    Parameters
    ----------
    path : str or path-like
        Any format Pillow reads (PNG, JPEG, BMP, TIFF, ...).

    Returns
    -------
    image : ndarray, shape (H, W, 3)
        ``uint8`` for 8-bit files, ``uint16`` for 16-bit grayscale files, ``float32``
        for floating-point TIFFs. Grayscale is repeated over three channels, an alpha
        channel is dropped, palette images are expanded, and the EXIF orientation is
        applied.

    Raises
    ------
    ImageReadError
        If the file does not exist, is not an image, or is truncated or corrupt.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            array = _pil_to_rgb_array(img)
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{path}: not an image file that can be read (accepted: {', '.join(IMAGE_SUFFIXES)})"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({exc})") from None
    return array


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
    if not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"image must be numeric; got dtype {image.dtype}")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if high > low:
        image = (image - low) / (high - low)
    else:
        image = np.zeros_like(image)
    return image


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


def save_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Save a label map as a PNG: uint8 when ids fit in 0..255, else uint16."""
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0:
        raise ValueError("label ids must be >= 0")
    if labels.max(initial=0) <= 255:
        Image.fromarray(labels.astype(np.uint8), mode="L").save(path)
    elif labels.max() <= 65535:
        Image.fromarray(labels.astype(np.uint16)).save(path)
    else:
        raise ValueError("more than 65536 labels do not fit a PNG")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG written by :func:`save_label_png` as int64 ids."""
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int64)


def read_scribble(path: str | os.PathLike) -> np.ndarray:
    """Read a scribble image: class ids where the user scribbled, 255 elsewhere.

    An 8-bit grayscale, palette or 16-bit PNG is read as its values; any other mode is
    converted to 8-bit grayscale first.

    Raises
    ------
    ImageReadError
        When the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such scribble file")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L") if img.mode not in ("L", "P", "I;16") else img)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read the scribble image ({exc})") from None


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Write a folder's contents into a temporary sibling and move it in place at the end.

    If the block raises, the temporary folder is removed and ``final`` is left as it
    was; otherwise ``final`` is replaced as a whole, so readers never see a mix of old
    and new files.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``final``; rename it over ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
