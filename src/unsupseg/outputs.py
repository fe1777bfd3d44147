"""The files written for one segmented image (by ``segment`` and ``predict``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from unsupseg.io import (
    atomic_directory,
    compact_labels,
    save_label_png,
    save_label_tiff,
    to_uint8,
    write_json,
)
from unsupseg.version import __version__
from unsupseg.viz import colorize, overlay, save_panel

#: Files in each image's output folder.
OUTPUT_FILES = (
    "labels.png", "labels.tif", "labels.npy", "color.png", "overlay.png", "panel.png",
    "summary.json",
)  # fmt: skip


def library_versions() -> dict[str, str]:
    """Versions of the libraries that determine results, for summaries and benchmarks.

    The libraries are imported here, not at the top, so that importing this module
    (a leaf of the package) loads neither torch nor scikit-learn.
    """
    import numpy
    import scipy
    import skimage
    import sklearn
    import torch
    import torchvision

    return {
        "unsupseg": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "scikit-learn": sklearn.__version__,
    }


def write_image_outputs(
    folder: str | os.PathLike,
    image: np.ndarray,
    labels: np.ndarray,
    panels: list[tuple[str, np.ndarray]],
    summary: dict[str, Any],
    extras: dict[str, np.ndarray] | None = None,
    tiff_tags: list[tuple] | None = None,
) -> Path:
    """Write all outputs of one image into ``folder``, all or nothing: the files of
    :data:`OUTPUT_FILES`.

    Parameters
    ----------
    folder : path
        Created (or replaced as a whole) only once every file is written.
    image : ndarray, shape (H, W, 3), or (Z, Y, X, 3) for a volume
        Float RGB in [0, 1] (:func:`unsupseg.io.display_rgb` makes one of any bands).
    labels : ndarray of int, shape (H, W) or (Z, Y, X)
        Ids from 0; ``labels.npy`` and ``labels.tif`` hold them in the smallest unsigned
        type that fits (uint8 up to 256 labels); the TIFF is deflate-compressed, one page
        per slice for a volume, with axes ``YX`` or ``ZYX`` in tifffile's metadata.
        The pictures (``labels.png``, ``color.png``, ``overlay.png``, ``panel.png``) of
        a volume show its middle slice, whose index ``summary.json`` gives as
        ``rendered_slice``.
    panels : list of (str, ndarray)
        (title, image or label map) of the panel figure, after the main image; for a
        volume, volumes (their middle slice is shown).
    summary : dict
        Written to ``summary.json``, with ``n_labels`` first and ``versions`` last.
    extras : dict of str to ndarray, optional
        More files in the folder, by name: ``*.npy`` saved with :func:`numpy.save`,
        ``*.png`` as an 8- or 16-bit grayscale PNG of the array's values (uint8 or
        uint16).
    tiff_tags : list of tuple, optional
        Extra tags of ``labels.tif``, as tifffile's ``extratags``: the input's GeoTIFF
        tags (:func:`unsupseg.io.geo_tags`), so that the labels keep its georeferencing.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    OSError
        When a file cannot be written; ``folder`` is then left as it was.

    Examples
    --------
    >>> write_image_outputs("out/coffee", image, labels, [], {"input": "coffee.png"})
    ... # doctest: +SKIP
    PosixPath('out/coffee')
    """
    labels = np.asarray(labels)
    volume_labels = labels
    if labels.ndim == 3:  # a volume: the pictures show its middle slice
        middle = labels.shape[0] // 2
        summary = {**summary, "rendered_slice": middle}
        labels, image = labels[middle], np.asarray(image)[middle]
        panels = [(title, np.asarray(panel)[middle]) for title, panel in panels]
    picture = to_uint8(image)
    with atomic_directory(folder) as tmp:
        save_label_png(tmp / "labels.png", labels)
        compact = compact_labels(volume_labels)
        save_label_tiff(tmp / "labels.tif", compact, tiff_tags or ())
        np.save(tmp / "labels.npy", compact)
        Image.fromarray(colorize(labels)).save(tmp / "color.png")
        Image.fromarray(overlay(picture, labels)).save(tmp / "overlay.png")
        save_panel(tmp / "panel.png", [("Main image", picture), *panels])
        for name, array in (extras or {}).items():
            if name.endswith(".npy"):
                np.save(tmp / name, array)
            elif name.endswith(".png") and array.dtype in (np.uint8, np.uint16):
                Image.fromarray(array).save(tmp / name)
            else:
                raise ValueError(f"cannot write {name} from a {array.dtype} array")
        write_json(
            tmp / "summary.json",
            {"n_labels": int(np.unique(volume_labels).size), **summary,
             "versions": library_versions()},  # fmt: skip
        )
    return Path(folder)
