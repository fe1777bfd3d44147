"""Folders of images scored by ``unsupseg evaluate``: with class maps, or without labels."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np

from unsupseg.data.base import ImageDataset, Size, file_image_shape, read_rgb_uint8
from unsupseg.data.datasets import VOID, FolderDataset, read_class_map
from unsupseg.errors import DatasetError
from unsupseg.io import find_images

__all__ = ["LabelledFolderDataset", "open_folder"]


class LabelledFolderDataset(ImageDataset):
    """A folder of images with class maps: ``images/<id>.<ext>`` and ``labels/<id>.png``.

    Parameters
    ----------
    folder : path
        The folder holding ``images/`` (any image files, ids are their stems) and
        ``labels/`` (one PNG per image with the same stem: class ids, 255 = void, as a
        VOC-style palette PNG or a plain 8-bit grayscale PNG), and optionally
        ``classes.csv``.
    split : str
        Recorded only (the caller picks the folder).

    Raises
    ------
    DatasetError
        When ``images/`` or ``labels/`` is missing, two images share a stem, or no class
        is found.

    Notes
    -----
    The classes are the ids listed in the ``id`` column of ``classes.csv`` (an optional
    ``name`` column names them) when that file exists; otherwise every distinct non-void
    value found by reading all the label files of the folder's images once, when the
    data set is opened. :attr:`n_classes` is their number and :meth:`ground_truth`
    renumbers them ``0 .. n_classes - 1`` in increasing id order (void stays 255), so
    sparse ids such as {0, 3, 7} make three classes. A label file that is missing or
    unreadable, or holds an id missing from ``classes.csv``, is an error of its image
    only (raised by :meth:`ground_truth`).

    Examples
    --------
    >>> dataset = LabelledFolderDataset("my-photos")  # doctest: +SKIP
    >>> dataset.classes, dataset.ground_truth(0).shape  # doctest: +SKIP
    ([0, 3, 7], (480, 640))
    """

    name = "folder"

    def __init__(self, folder: str | os.PathLike, split: str = "all") -> None:
        super().__init__(folder, split, None)
        self.folder = Path(folder)
        expected = (
            f"expected {self.folder}/images/<id>.<ext> and {self.folder}/labels/<id>.png "
            "(class ids, 255 = void)"
        )
        if not (self.folder / "images").is_dir() or not (self.folder / "labels").is_dir():
            raise DatasetError(f"labelled image folder not found: {expected}")
        paths, problems = find_images([self.folder / "images"])
        if problems:
            raise DatasetError(problems[0][1])
        shared = sorted(stem for stem, n in Counter(p.stem for p in paths).items() if n > 1)
        if shared:
            raise DatasetError(
                f"{self.folder / 'images'}: several images share the stem {shared[0]!r}, so "
                f"labels/{shared[0]}.png cannot tell which it labels"
            )
        self._image_paths = paths
        self.ids = [p.stem for p in paths]
        self._label_paths = [self.folder / "labels" / f"{i}.png" for i in self.ids]
        self.classes, self.class_names = self._find_classes()
        if not self.classes:
            raise DatasetError(
                f"{self.folder / 'labels'}: no class found (no label map of an image in "
                f"images/ holds a value other than void 255): {expected}"
            )
        self.n_classes = len(self.classes)
        self._dense = np.full(256, -1, dtype=np.int64)
        self._dense[self.classes] = np.arange(self.n_classes)
        self._dense[VOID] = VOID

    def _find_classes(self) -> tuple[list[int], list[str]]:
        table = self.folder / "classes.csv"
        if table.is_file():
            with open(table, newline="") as handle:
                rows = list(csv.DictReader(handle))
            try:
                named = {int(row["id"]): row.get("name") or row["id"] for row in rows}
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{table}: needs an 'id' column of class ids") from None
            named.pop(VOID, None)
            if any(not 0 <= i < VOID for i in named):
                raise DatasetError(f"{table}: class ids must lie in 0..254 (255 is void)")
            return sorted(named), [named[i] for i in sorted(named)]
        found: set[int] = set()
        for path in self._label_paths:
            try:
                found.update(int(v) for v in np.unique(read_class_map(path)))
            except DatasetError:
                continue  # reported for its image when it is scored
        found.discard(VOID)
        return sorted(found), [str(i) for i in sorted(found)]

    @property
    def source(self) -> str:
        return str(self.folder.resolve())

    def _load_image(self, index: int) -> np.ndarray:
        return read_rgb_uint8(self._image_paths[index])

    def _native_shape(self, index: int) -> Size:
        return file_image_shape(self._image_paths[index])

    def _load_ground_truth(self, index: int) -> np.ndarray:
        path = self._label_paths[index]
        values = read_class_map(path)
        dense = self._dense[values]
        if (dense < 0).any():
            unknown = np.unique(values[dense < 0]).tolist()
            raise DatasetError(
                f"{path}: class id(s) {unknown} not in {self.folder / 'classes.csv'}"
            )
        shape = self._native_shape(index)
        if dense.shape != shape:
            raise DatasetError(
                f"{path}: label map of size {dense.shape[1]}x{dense.shape[0]}, image "
                f"{shape[1]}x{shape[0]} (width x height)"
            )
        return dense.astype(np.uint8)


def open_folder(root: str | os.PathLike, split: str = "all") -> ImageDataset:
    """A folder of images to score: with ground truth when it has ``labels/``, else without.

    Parameters
    ----------
    root : path
        The folder (``--data-root`` of ``--dataset folder``).
    split : str
        ``'all'`` scores ``root`` itself; another name scores the subfolder
        ``root/<split>``.

    Returns
    -------
    dataset : LabelledFolderDataset or FolderDataset
        A :class:`LabelledFolderDataset` when the folder holds ``images/`` and
        ``labels/``; otherwise a :class:`~unsupseg.data.FolderDataset` of the images in
        ``images/`` when that exists, else in the folder itself (at native size).

    Raises
    ------
    DatasetError
        When the folder does not exist, or a labelled folder is incomplete.

    Examples
    --------
    >>> dataset = open_folder("my-photos")  # doctest: +SKIP
    >>> type(dataset).__name__, len(dataset)  # doctest: +SKIP
    ('FolderDataset', 12)
    """
    folder = Path(root) if split == "all" else Path(root) / split
    if not folder.is_dir():
        raise DatasetError(
            f"image folder not found: {folder} (split 'all' scores the folder itself, "
            "another split a subfolder of it)"
        )
    if (folder / "labels").is_dir():
        return LabelledFolderDataset(folder, split)
    images = folder / "images" if (folder / "images").is_dir() else folder
    return FolderDataset(images, "all", image_size="native")
