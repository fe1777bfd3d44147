"""The read-only dataset interface shared by every image collection.

An :class:`ImageDataset` hands out images as ``uint8`` RGB arrays, already resized to
the dataset's image size when one is set, together with what a data set knows about
each image: an id, an image-level label and pixel-level ground truth. Everything that
consumes data (the superpixel cache, training, evaluation) goes through this interface,
so adding a data set means writing one small subclass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from unsupseg.io import as_rgb_float, image_size, read_image, resize_nearest, to_uint8

#: An image size ``(height, width)`` in pixels.
Size = tuple[int, int]


def parse_image_size(image_size: int | Sequence[int] | None) -> Size | None:
    """Normalise an image size argument to ``(height, width)``.

    Parameters
    ----------
    image_size : int, (int, int) or None
        One int for a square size, ``(height, width)``, or None for no resizing.

    Returns
    -------
    size : (int, int) or None

    Raises
    ------
    ValueError
        If a side is not a positive integer.
    """
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    else:
        try:
            size = tuple(int(s) for s in image_size)  # type: ignore[union-attr]
        except TypeError:
            raise ValueError(
                f"image_size must be an int or (height, width); got {image_size!r}"
            ) from None
        if len(size) != 2:
            raise ValueError(f"image_size must be an int or (height, width); got {image_size!r}")
    if min(size) < 1:
        raise ValueError(f"image_size sides must be >= 1; got {image_size!r}")
    return size  # type: ignore[return-value]


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """Resize a ``uint8`` RGB image to ``(height, width)`` with bilinear interpolation.

    Pillow's bilinear filter widens its support when shrinking, so downscaling is
    antialiased.
    """
    if image.shape[:2] == tuple(size):
        return image
    pil = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(pil)


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, 3) ``uint8`` image; other dtypes are min-max scaled to 0..255."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    return to_uint8(as_rgb_float(image))


def read_rgb_uint8(path: str | os.PathLike) -> np.ndarray:
    """Read an image file with :func:`unsupseg.io.read_image` as ``uint8`` RGB.

    Data sets read their images in full whatever their size (a data set resizes them
    to its ``image_size`` afterwards); only headers beyond
    :data:`unsupseg.io.MAX_DECODE_PIXELS` are refused.
    """
    return to_uint8_rgb(read_image(path, max_pixels=None))


def file_image_shape(path: str | os.PathLike) -> Size:
    """The ``(height, width)`` that :func:`unsupseg.io.read_image` will return, cheaply.

    Only the file header is read; the EXIF orientation is honoured as ``read_image``
    does (orientations 5 to 8 swap the sides). The same as :func:`unsupseg.io.image_size`.

    Raises
    ------
    ImageReadError
        If the file does not exist or its header cannot be read.
    """
    return image_size(path)


class ImageDataset:
    """A read-only, indexable collection of RGB images.

    Subclasses implement :meth:`_load_image` (and, where the data set has them,
    :meth:`_load_label` and :meth:`_load_ground_truth`) and fill :attr:`ids`; this class
    validates indices and applies the resizing.

    Attributes
    ----------
    name : str
        Data set name as accepted by :func:`unsupseg.data.open_dataset`.
    split : str
        Which part of the data set (``'train'``, ``'val'``, ``'test'``, ``'all'``, ...).
    root : Path
        Folder the data set was read from.
    image_size : (int, int) or None
        ``(height, width)`` every image is resized to, or None to keep each file's size.
    n_classes : int or None
        Number of image-level classes; None where the data set has no image labels.
    multilabel : bool
        True when :meth:`label` returns a multi-hot vector (several classes per image),
        False when it returns one class index.
    class_names : list of str or None
        Names of the classes, in class-index order.
    ids : list of str
        One id per image, in index order.
    """

    name: str = ""
    n_classes: int | None = None
    multilabel: bool = False
    class_names: list[str] | None = None

    def __init__(self, root: str | os.PathLike, split: str, image_size: Size | None) -> None:
        self.root = Path(root)
        self.split = split
        self.image_size = image_size
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        size = "native" if self.image_size is None else f"{self.image_size[0]}x{self.image_size[1]}"
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, "
            f"images={len(self)}, image_size={size}, root='{self.root}')"
        )

    @property
    def source(self) -> str | None:
        """What else tells this collection apart, for caches keyed by name, split and ids.

        None for named data sets, whose name, split and image ids identify the images;
        the resolved folder for a folder of images (two folders may share file names).
        """
        return None

    # -- public interface ------------------------------------------------------------

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as ``uint8`` RGB, shape (H, W, 3), resized to :attr:`image_size`."""
        index = self._check_index(index)
        image = self._load_image(index)
        if self.image_size is not None:
            image = resize_image(image, self.image_size)
        return image

    def image_shape(self, index: int) -> Size:
        """``(height, width)`` of :meth:`image` ``(index)``, without decoding it where possible."""
        index = self._check_index(index)
        if self.image_size is not None:
            return self.image_size
        return self._native_shape(index)

    def image_id(self, index: int) -> str:
        """A short id of image ``index``, unique within the data set (e.g. a file stem)."""
        return self.ids[self._check_index(index)]

    def label(self, index: int) -> int | np.ndarray | None:
        """Image-level label of image ``index``.

        Returns
        -------
        label : int, ndarray of float32 or None
            The class index for single-label data sets (CIFAR-10, STL-10), a multi-hot
            float32 vector of length :attr:`n_classes` for multi-label ones (VOC 2012,
            MSRC), or None where the image has no label.
        """
        return self._load_label(self._check_index(index))

    def ground_truth(self, index: int) -> np.ndarray | list[np.ndarray] | None:
        """Pixel-level ground truth of image ``index``, or None where there is none.

        Label maps are resized by nearest neighbour to the image size, so they always
        have the shape of :meth:`image` ``(index)``.

        Returns
        -------
        ground_truth : ndarray, list of ndarray or None
            VOC 2012 and MSRC: the ``uint8`` class map (255 = void). BSDS500: one
            ``uint16`` segmentation (labels from 1) per annotator.
        """
        index = self._check_index(index)
        truth = self._load_ground_truth(index)
        if truth is None or self.image_size is None:
            return truth
        if isinstance(truth, list):
            return [resize_nearest(t, self.image_size) for t in truth]
        return resize_nearest(truth, self.image_size)

    # -- for subclasses --------------------------------------------------------------

    def _load_image(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def _native_shape(self, index: int) -> Size:
        return self._load_image(index).shape[:2]

    def _load_label(self, index: int) -> int | np.ndarray | None:
        return None

    def _load_ground_truth(self, index: int) -> np.ndarray | list[np.ndarray] | None:
        return None

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"image index must be an int; got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"image index {index} out of range for {n} images")
        return int(index) % n

    def _multi_hot(self, classes: np.ndarray) -> np.ndarray:
        """Multi-hot float32 vector of length ``n_classes`` from class indices."""
        vector = np.zeros(self.n_classes or 0, dtype=np.float32)
        vector[np.asarray(classes, dtype=np.int64)] = 1.0
        return vector
