"""Readers for the data sets of the thesis, in their standard on-disk formats.

CIFAR-10 (python pickle batches), STL-10 (binaries), PASCAL VOC 2012 (``JPEGImages`` +
``SegmentationClass`` + ``ImageSets/Segmentation``), MSRC-v2 (VOC-style palette PNGs),
BSDS500 (``images/<split>/*.jpg`` + ``groundTruth/<split>/*.mat``) and any folder of
images. :func:`open_dataset` opens one by name.

torchvision's dataset classes are used to download CIFAR-10, STL-10 and VOC 2012 when
``download=True``; the files are then read here. torchvision's own readers are not used
for reading because they refuse anything whose md5 differs from the full release (a
partial copy of CIFAR-10 or STL-10, as on this project's machines and in the tests),
expect the Python 2 pickle keys, and load STL-10's 2.6 GB unlabeled split into memory,
which every worker process would then copy. Without ``download=True`` nothing is fetched:
a missing data set raises :class:`~unsupseg.data.DatasetError` naming the expected files.
"""

from __future__ import annotations

import csv
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from unsupseg.data.base import (
    ImageDataset,
    Size,
    file_image_shape,
    parse_image_size,
    read_rgb_uint8,
)
from unsupseg.errors import DatasetError
from unsupseg.io import find_images

__all__ = [
    "BSDS500Dataset",
    "CIFAR10Dataset",
    "DATASETS",
    "FolderDataset",
    "MSRCDataset",
    "STL10Dataset",
    "VOC2012Dataset",
    "open_dataset",
    "read_bsds_ground_truth",
    "read_class_map",
]

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
STL10_CLASSES = [
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
]
VOC_CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
MSRC_CLASSES = [
    "building",
    "grass",
    "tree",
    "cow",
    "horse",
    "sheep",
    "sky",
    "mountain",
    "aeroplane",
    "water",
    "face",
    "car",
    "bicycle",
    "flower",
    "sign",
    "bird",
    "book",
    "chair",
    "road",
    "cat",
    "dog",
    "body",
    "boat",
]

#: Label value for unlabelled pixels in VOC 2012 and MSRC class maps.
VOID = 255

#: ``image_size`` value that keeps every file's own size, even where the data set has a
#: default size (VOC 2012: 224x224).
NATIVE = "native"


def _resolve_size(
    image_size: int | Sequence[int] | str | None, default: Size | None
) -> Size | None:
    if image_size is None:
        return default
    if isinstance(image_size, str):
        if image_size != NATIVE:
            raise ValueError(
                f"image_size must be an int, (height, width), None (the data set's default) "
                f"or {NATIVE!r}; got {image_size!r}"
            )
        return None
    return parse_image_size(image_size)


def _check_split(name: str, split: str, allowed: Sequence[str]) -> str:
    if split not in allowed:
        raise ValueError(
            f"{name} has no split {split!r}; choose one of {', '.join(map(repr, allowed))}"
        )
    return split


def _fetch_hint(cls: str, root: Path) -> str:
    """How to get a data set that torchvision can download: the command line has no
    download option, so the one-line Python call, then where to point the command."""
    return (
        f'Download it once with python -c "import unsupseg.data as d; '
        f"d.{cls}('{root}', download=True)\", or put the files there yourself "
        "(command line: --data-root names the folder)."
    )


def _torchvision_download(name: str, root: Path, fetch: Callable[[], Any], expected: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    try:
        fetch()
    except Exception as exc:  # network errors come in many types; report them all
        raise DatasetError(
            f"{name}: download into {root} failed ({type(exc).__name__}: {exc}). "
            f"Place the data set by hand: {expected}"
        ) from exc


# --------------------------------------------------------------------------------------
# CIFAR-10


class CIFAR10Dataset(ImageDataset):
    """CIFAR-10, python version (``cifar-10-batches-py``).

    Parameters
    ----------
    root : str or path-like
        Folder holding ``cifar-10-batches-py/`` (torchvision's convention) or that
        folder itself.
    split : {'train', 'test'}
        ``data_batch_1`` .. ``data_batch_5``, or ``test_batch``.
    image_size : int, (int, int), None or 'native'
        Resize the 32x32 images; None and 'native' keep them.
    download : bool
        Download the archive with torchvision when the batches are missing.

    Notes
    -----
    Each batch is a pickled dict with ``data`` (uint8, N x 3072: 1024 red, 1024 green,
    1024 blue values per image, rows first) and ``labels`` (N ints 0..9). Keys may be
    ``str`` (the original Python 2 pickles) or ``bytes`` (re-pickled copies); batches
    may hold fewer than 10000 records. Image ids are ``<batch>_<row>``, for example
    ``data_batch_1_00000``. Pickle files can run code when loaded: open only copies
    you trust.
    """

    name = "cifar10"
    n_classes = 10
    multilabel = False
    FOLDER = "cifar-10-batches-py"
    SPLITS = {
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
    }

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int | Sequence[int] | str | None = None,
        download: bool = False,
    ) -> None:
        _check_split("CIFAR-10", split, list(self.SPLITS))
        super().__init__(root, split, _resolve_size(image_size, None))
        files = self.SPLITS[split]
        folder = self._find_folder(self.root, files)
        expected = (
            f"expected {self.root / self.FOLDER}/{{{','.join(files)}}} "
            "(CIFAR-10 python version, https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
        if folder is None and download:
            from torchvision.datasets import CIFAR10

            _torchvision_download(
                "CIFAR-10",
                self.root,
                lambda: CIFAR10(str(self.root), train=split == "train", download=True),
                expected,
            )
            folder = self._find_folder(self.root, files)
        if folder is None:
            missing = [f for f in files if not (self.root / self.FOLDER / f).is_file()]
            raise DatasetError(
                f"CIFAR-10 {split} split not found: {expected}; missing {', '.join(missing)}. "
                + _fetch_hint("CIFAR10Dataset", self.root)
            )
        self.folder = folder
        images, labels = [], []
        for batch in files:
            data, batch_labels = _read_cifar_batch(folder / batch)
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(batch_labels)
            self.ids.extend(f"{batch}_{row:05d}" for row in range(len(data)))
        self._images = np.ascontiguousarray(np.concatenate(images))
        self._labels = np.asarray(labels, dtype=np.int64)
        self.class_names = _read_cifar_class_names(folder / "batches.meta")

    @classmethod
    def _find_folder(cls, root: Path, files: list[str]) -> Path | None:
        for folder in (root / cls.FOLDER, root):
            if all((folder / f).is_file() for f in files):
                return folder
        return None

    def _load_image(self, index: int) -> np.ndarray:
        return self._images[index]

    def _native_shape(self, index: int) -> Size:
        return (32, 32)

    def _load_label(self, index: int) -> int:
        return int(self._labels[index])


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DatasetError(
            f"{path}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc}); "
            "the file may be truncated"
        ) from None
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: not a CIFAR-10 batch (a pickled dict was expected)")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or "labels" not in entry:
        raise DatasetError(
            f"{path}: CIFAR-10 batch lacks 'data' or 'labels' (keys: {sorted(entry)})"
        )
    data = np.asarray(entry["data"])
    labels = [int(v) for v in entry["labels"]]
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(
            f"{path}: CIFAR-10 'data' must be uint8 of shape (N, 3072); "
            f"got {data.dtype} {data.shape}"
        )
    if len(labels) < len(data):
        raise DatasetError(f"{path}: {len(data)} images but only {len(labels)} labels")
    # A truncated batch keeps every label but only its first complete images.
    labels = labels[: len(data)]
    if labels and not 0 <= min(labels) <= max(labels) <= 9:
        raise DatasetError(f"{path}: CIFAR-10 labels must lie in 0..9")
    return data, labels


def _read_cifar_class_names(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            meta = pickle.load(handle, encoding="latin1")
        names = meta.get("label_names", meta.get(b"label_names"))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        if len(names) == 10:
            return names
    except Exception:  # the meta file is optional; fall back to the published names
        pass
    return list(CIFAR10_CLASSES)


# --------------------------------------------------------------------------------------
# STL-10


class STL10Dataset(ImageDataset):
    """STL-10, binary version (``stl10_binary``).

    Parameters
    ----------
    root : str or path-like
        Folder holding ``stl10_binary/`` (torchvision's convention) or that folder itself.
    split : {'train', 'test', 'unlabeled', 'train+unlabeled'}
        ``unlabeled`` images have no label (:meth:`label` returns None).
    image_size : int, (int, int), None or 'native'
        Resize the 96x96 images; None and 'native' keep them.
    download : bool
        Download the archive with torchvision when the files are missing.

    Notes
    -----
    ``<split>_X.bin`` holds uint8 images of 3 x 96 x 96 values, each channel stored
    column by column (MATLAB order); ``<split>_y.bin`` holds one uint8 label 1..10 per
    image. The files are memory-mapped, not loaded. Image ids are ``<split>_<row>``.
    """

    name = "stl10"
    n_classes = 10
    multilabel = False
    FOLDER = "stl10_binary"
    RECORD = 3 * 96 * 96
    PARTS = {
        "train": ["train"],
        "test": ["test"],
        "unlabeled": ["unlabeled"],
        "train+unlabeled": ["train", "unlabeled"],
    }

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int | Sequence[int] | str | None = None,
        download: bool = False,
    ) -> None:
        _check_split("STL-10", split, list(self.PARTS))
        super().__init__(root, split, _resolve_size(image_size, None))
        self.class_names = list(STL10_CLASSES)
        parts = self.PARTS[split]
        files = [f"{p}_X.bin" for p in parts] + [f"{p}_y.bin" for p in parts if p != "unlabeled"]
        folder = self._find_folder(self.root, files)
        expected = (
            f"expected {self.root / self.FOLDER}/{{{','.join(files)}}} "
            "(STL-10 binary version, https://cs.stanford.edu/~acoates/stl10/)"
        )
        if folder is None and download:
            from torchvision.datasets import STL10

            _torchvision_download(
                "STL-10",
                self.root,
                lambda: STL10(str(self.root), split=split, download=True),
                expected,
            )
            folder = self._find_folder(self.root, files)
        if folder is None:
            raise DatasetError(
                f"STL-10 {split} split not found: {expected}. "
                + _fetch_hint("STL10Dataset", self.root)
            )
        self.folder = folder
        self._parts: list[tuple[str, int]] = []
        labels: list[np.ndarray] = []
        for part in parts:
            count = self._count(folder / f"{part}_X.bin")
            self._parts.append((part, count))
            self.ids.extend(f"{part}_{row:06d}" for row in range(count))
            if part == "unlabeled":
                labels.append(np.full(count, -1, dtype=np.int64))
            else:
                labels.append(self._read_labels(folder / f"{part}_y.bin", count))
        self._labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        self._maps: list[np.ndarray] | None = None

    @classmethod
    def _find_folder(cls, root: Path, files: list[str]) -> Path | None:
        for folder in (root / cls.FOLDER, root):
            if all((folder / f).is_file() for f in files):
                return folder
        return None

    @classmethod
    def _count(cls, path: Path) -> int:
        size = path.stat().st_size
        if size == 0 or size % cls.RECORD:
            raise DatasetError(
                f"{path}: size {size} bytes is not a whole number of 96x96x3 images "
                f"({cls.RECORD} bytes each); the file may be truncated"
            )
        return size // cls.RECORD

    @staticmethod
    def _read_labels(path: Path, count: int) -> np.ndarray:
        labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
        if len(labels) != count:
            raise DatasetError(f"{path}: {len(labels)} labels for {count} images")
        if count and not (labels.min() >= 1 and labels.max() <= 10):
            raise DatasetError(f"{path}: STL-10 labels must lie in 1..10")
        return labels - 1

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps would be pickled as full copies; worker processes reopen them.
        state = self.__dict__.copy()
        state["_maps"] = None
        return state

    def _load_image(self, index: int) -> np.ndarray:
        if self._maps is None:
            self._maps = [
                np.memmap(self.folder / f"{part}_X.bin", dtype=np.uint8, mode="r").reshape(
                    count, 3, 96, 96
                )
                for part, count in self._parts
            ]
        for array in self._maps:
            if index < len(array):
                # Stored (channel, x, y): transpose to (y, x, channel).
                return np.ascontiguousarray(array[index].transpose(2, 1, 0))
            index -= len(array)
        raise IndexError(index)

    def _native_shape(self, index: int) -> Size:
        return (96, 96)

    def _load_label(self, index: int) -> int | None:
        label = int(self._labels[index])
        return None if label < 0 else label


# --------------------------------------------------------------------------------------
# Class-map data sets (VOC 2012, MSRC)


def read_class_map(path: str | os.PathLike) -> np.ndarray:
    """A class map: a palette (mode ``P``) or grayscale PNG of class ids, 255 = void.

    Raises
    ------
    DatasetError
        When the file is missing, unreadable or of another image mode.
    """
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise DatasetError(
                    f"{path}: class map must be a palette (mode 'P') or grayscale PNG of "
                    f"class indices with 255 = void; got mode {img.mode!r}"
                )
            return np.asarray(img, dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        raise DatasetError(f"{path}: class map not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: unreadable class map ({exc})") from None


class _ClassMapDataset(ImageDataset):
    """Images with a per-pixel class map; image labels are the classes present."""

    multilabel = True
    #: Class map value of class index 0 (VOC: 1, as 0 is background).
    first_class_value = 0

    def __init__(self, root: str | os.PathLike, split: str, image_size: Size | None) -> None:
        super().__init__(root, split, image_size)
        self._image_paths: list[Path] = []
        self._mask_paths: list[Path] = []

    def _load_image(self, index: int) -> np.ndarray:
        return read_rgb_uint8(self._image_paths[index])

    def _native_shape(self, index: int) -> Size:
        return file_image_shape(self._image_paths[index])

    def _load_ground_truth(self, index: int) -> np.ndarray:
        return read_class_map(self._mask_paths[index])

    def _load_label(self, index: int) -> np.ndarray:
        values = np.unique(read_class_map(self._mask_paths[index]))
        classes = values.astype(np.int64) - self.first_class_value
        classes = classes[(classes >= 0) & (classes < (self.n_classes or 0))]
        return self._multi_hot(classes)

    def _check_files(self, what: str) -> None:
        for kind, paths in (("images", self._image_paths), ("class maps", self._mask_paths)):
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise DatasetError(
                    f"{what}: {len(missing)} of {len(paths)} {kind} missing, first {missing[0]}"
                )


class VOC2012Dataset(_ClassMapDataset):
    """PASCAL VOC 2012 segmentation (``JPEGImages`` + ``SegmentationClass``).

    Parameters
    ----------
    root : str or path-like
        Folder holding ``VOCdevkit/VOC2012`` (torchvision's convention), ``VOCdevkit``,
        or ``VOC2012`` itself.
    split : {'train', 'val', 'trainval'}
        Read from ``ImageSets/Segmentation/<split>.txt``.
    image_size : int, (int, int), None or 'native'
        None gives 224x224, as in the thesis; 'native' keeps each file's size.
    download : bool
        Download the VOC 2012 trainval archive (2 GB) with torchvision when missing.

    Notes
    -----
    :meth:`label` is the multi-hot vector of the 20 object classes present in the
    class map (background 0 and void 255 are not classes: class index ``c - 1`` for
    map value ``c``). :meth:`ground_truth` is the class map itself (0 = background,
    1..20 = classes, 255 = void).
    """

    name = "voc2012"
    n_classes = 20
    first_class_value = 1
    DEFAULT_SIZE = (224, 224)
    SPLITS = ("train", "val", "trainval")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int | Sequence[int] | str | None = None,
        download: bool = False,
    ) -> None:
        _check_split("VOC 2012", split, self.SPLITS)
        super().__init__(root, split, _resolve_size(image_size, self.DEFAULT_SIZE))
        self.class_names = list(VOC_CLASSES)
        layout = "{JPEGImages/<id>.jpg, SegmentationClass/<id>.png, ImageSets/Segmentation/"
        expected = (
            f"expected {self.root / 'VOCdevkit' / 'VOC2012'}/{layout}{split}.txt}} "
            "(or root pointing at VOC2012 itself)"
        )
        voc = self._find_voc(self.root, split)
        if voc is None and download:
            from torchvision.datasets import VOCSegmentation

            _torchvision_download(
                "VOC 2012",
                self.root,
                lambda: VOCSegmentation(
                    str(self.root), year="2012", image_set=split, download=True
                ),
                expected,
            )
            voc = self._find_voc(self.root, split)
        if voc is None:
            raise DatasetError(
                f"VOC 2012 {split} split not found: {expected}. "
                + _fetch_hint("VOC2012Dataset", self.root)
            )
        self.folder = voc
        split_file = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        self.ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise DatasetError(f"{split_file}: lists no image id")
        self._image_paths = [voc / "JPEGImages" / f"{i}.jpg" for i in self.ids]
        self._mask_paths = [voc / "SegmentationClass" / f"{i}.png" for i in self.ids]
        self._check_files(f"VOC 2012 {split} ({split_file})")

    @staticmethod
    def _find_voc(root: Path, split: str) -> Path | None:
        for voc in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
            if (voc / "ImageSets" / "Segmentation" / f"{split}.txt").is_file():
                return voc
        return None


class MSRCDataset(_ClassMapDataset):
    """MSRC-v2 (23 object classes + void), stored the VOC way.

    Parameters
    ----------
    root : str or path-like
        Folder with ``images/<id>.png``, ``labels/<id>.png`` (palette PNG of class
        indices 0..22, 255 = void) and optionally ``manifest.csv`` (column ``id``; it
        fixes the image order, else ids are sorted) and ``classes.csv``.
    split : str
        ``'all'``: every image in the folder. Another name reads its ids from
        ``<root>/splits/<split>.txt`` (one id per line) when that file exists;
        without it, ``'train'`` is every image too, since the MSRC copy on this
        project's machines is one half of the database with the other half kept in a
        separate folder (open it with its own root).
    image_size : int, (int, int), None or 'native'
        Resize the images (and class maps, by nearest neighbour); None and 'native'
        keep each file's size.
    download : bool
        Not available: MSRC-v2 has no automatic download.

    Notes
    -----
    :meth:`label` is the multi-hot vector of the 23 classes present (void excluded).
    """

    name = "msrc"
    n_classes = 23

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int | Sequence[int] | str | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(root, split, _resolve_size(image_size, None))
        expected = (
            f"expected {self.root}/images/<id>.png and {self.root}/labels/<id>.png "
            "(palette PNG, class indices 0..22, 255 = void), optionally manifest.csv"
        )
        if not (self.root / "images").is_dir() or not (self.root / "labels").is_dir():
            extra = " (MSRC-v2 cannot be downloaded automatically)" if download else ""
            raise DatasetError(f"MSRC-v2 not found: {expected}{extra}")
        self.class_names = self._read_class_names(self.root / "classes.csv")
        all_ids = self._read_ids(self.root)
        if not all_ids:
            raise DatasetError(f"MSRC-v2 folder holds no image: {expected}")
        split_file = self.root / "splits" / f"{split}.txt"
        if split_file.is_file():
            wanted = [line.strip() for line in split_file.read_text().splitlines()]
            self.ids = [i for i in wanted if i]
            unknown = sorted(set(self.ids) - set(all_ids))
            if unknown:
                raise DatasetError(
                    f"{split_file}: {len(unknown)} ids have no image in {self.root / 'images'}, "
                    f"first {unknown[0]!r}"
                )
        elif split in ("all", "train"):
            self.ids = all_ids
        else:
            raise DatasetError(
                f"MSRC-v2 split {split!r} needs {split_file} (one image id per line); "
                "without split files only 'train' and 'all' (every image) exist"
            )
        self._image_paths = [self.root / "images" / f"{i}.png" for i in self.ids]
        self._mask_paths = [self.root / "labels" / f"{i}.png" for i in self.ids]
        self._check_files(f"MSRC-v2 {split} ({self.root})")

    @staticmethod
    def _read_ids(root: Path) -> list[str]:
        manifest = root / "manifest.csv"
        if manifest.is_file():
            with open(manifest, newline="") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames is None or "id" not in reader.fieldnames:
                    raise DatasetError(f"{manifest}: needs an 'id' column")
                return [row["id"] for row in reader]
        return sorted(p.stem for p in (root / "images").glob("*.png"))

    @staticmethod
    def _read_class_names(path: Path) -> list[str]:
        if not path.is_file():
            return list(MSRC_CLASSES)
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        try:
            names = {int(row["id"]): row["name"] for row in rows}
            return [names[i] for i in range(len(MSRC_CLASSES))]
        except (KeyError, ValueError):
            raise DatasetError(
                f"{path}: needs columns id, name for class ids 0..{len(MSRC_CLASSES) - 1}"
            ) from None


# --------------------------------------------------------------------------------------
# BSDS500


def read_bsds_ground_truth(path: str | os.PathLike) -> list[np.ndarray]:
    """Read a BSDS500 ground-truth ``.mat`` file.

    Parameters
    ----------
    path : str or path-like
        MATLAB file with a variable ``groundTruth``: a 1 x K cell array (or struct
        array) of structs with fields ``Segmentation`` and ``Boundaries``.

    Returns
    -------
    segmentations : list of ndarray of uint16
        One (H, W) label map per annotator, labels from 1.

    Raises
    ------
    DatasetError
        If the file is missing, unreadable, or not in this layout.
    """
    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path))
    except FileNotFoundError:
        raise DatasetError(f"{path}: BSDS500 ground-truth file not found") from None
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DatasetError(f"{path}: unreadable MATLAB file ({exc})") from None
    if "groundTruth" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: no 'groundTruth' variable (found {keys})")
    cells = np.asarray(mat["groundTruth"])
    segmentations = []
    for cell in cells.ravel():
        cell = _unwrap(cell)
        try:
            segmentation = _unwrap(cell["Segmentation"])
        except (KeyError, ValueError, IndexError, TypeError):
            raise DatasetError(
                f"{path}: groundTruth cells must be structs with a 'Segmentation' field"
            ) from None
        segmentation = np.asarray(segmentation)
        if segmentation.ndim != 2:
            raise DatasetError(
                f"{path}: Segmentation must be a 2-D label map; got shape {segmentation.shape}"
            )
        segmentations.append(segmentation.astype(np.uint16))
    if not segmentations:
        raise DatasetError(f"{path}: groundTruth holds no annotation")
    return segmentations


def _unwrap(value: Any) -> Any:
    """Strip the 1x1 object arrays MATLAB cells and struct fields come wrapped in."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    if isinstance(value, np.ndarray) and value.dtype.names and value.size == 1:
        value = value.flat[0]
    return value


class BSDS500Dataset(ImageDataset):
    """Berkeley Segmentation Data Set 500.

    Parameters
    ----------
    root : str or path-like
        Folder with ``images/<split>/<id>.jpg`` and ``groundTruth/<split>/<id>.mat``,
        or a folder above it in the official archive (``BSR/BSDS500/data``).
    split : {'train', 'val', 'test'}
    image_size : int, (int, int), None or 'native'
        Resize images and ground truth (nearest neighbour); None and 'native' keep the
        481x321 / 321x481 photos as they are.
    download : bool
        Not available: BSDS500 has no automatic download.

    Notes
    -----
    :meth:`ground_truth` returns one ``uint16`` segmentation per annotator (usually 5
    to 8), read from the ``.mat`` file's ``groundTruth`` cell array. Ids are the file
    stems, sorted.
    """

    name = "bsds500"
    SPLITS = ("train", "val", "test")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        image_size: int | Sequence[int] | str | None = None,
        download: bool = False,
    ) -> None:
        _check_split("BSDS500", split, self.SPLITS)
        super().__init__(root, split, _resolve_size(image_size, None))
        data = self.root
        for candidate in (
            self.root,
            self.root / "data",
            self.root / "BSDS500" / "data",
            self.root / "BSR" / "BSDS500" / "data",
        ):
            if (candidate / "images" / split).is_dir():
                data = candidate
                break
        image_dir, truth_dir = data / "images" / split, data / "groundTruth" / split
        expected = f"expected {image_dir}/*.jpg and {truth_dir}/*.mat"
        extra = " (BSDS500 cannot be downloaded automatically)" if download else ""
        if not image_dir.is_dir() or not truth_dir.is_dir():
            raise DatasetError(f"BSDS500 {split} split not found: {expected}{extra}")
        self.folder = data
        self._image_paths = sorted(image_dir.glob("*.jpg"))
        if not self._image_paths:
            raise DatasetError(f"BSDS500 {split} split holds no image: {expected}")
        self.ids = [p.stem for p in self._image_paths]
        self._truth_paths = [truth_dir / f"{i}.mat" for i in self.ids]
        missing = [p for p in self._truth_paths if not p.is_file()]
        if missing:
            raise DatasetError(
                f"BSDS500 {split}: {len(missing)} of {len(self.ids)} images have no "
                f"ground truth, first {missing[0]} ({expected})"
            )

    def _load_image(self, index: int) -> np.ndarray:
        return read_rgb_uint8(self._image_paths[index])

    def _native_shape(self, index: int) -> Size:
        return file_image_shape(self._image_paths[index])

    def _load_ground_truth(self, index: int) -> list[np.ndarray]:
        segmentations = read_bsds_ground_truth(self._truth_paths[index])
        shape = self._native_shape(index)
        for segmentation in segmentations:
            if segmentation.shape != shape:
                raise DatasetError(
                    f"{self._truth_paths[index]}: Segmentation shape {segmentation.shape} "
                    f"differs from the image's {shape}"
                )
        return segmentations


# --------------------------------------------------------------------------------------
# Any folder of images


class FolderDataset(ImageDataset):
    """Every image file in a folder (not its subfolders), sorted by name.

    Parameters
    ----------
    root : str or path-like
        The folder.
    split : str
        ``'all'`` reads ``root`` itself; another name reads the subfolder
        ``root/<split>`` (so ``root/train``, ``root/val`` work as splits).
    image_size : int, (int, int), None or 'native'
        Resize every image; None and 'native' keep each file's size.
    download : bool
        Not available.

    Notes
    -----
    Ids are file stems (file names where two files share a stem). There are no labels
    and no ground truth. Images that are not 8-bit are min-max scaled to ``uint8``.
    """

    name = "folder"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "all",
        image_size: int | Sequence[int] | str | None = None,
        download: bool = False,
    ) -> None:
        super().__init__(root, split, _resolve_size(image_size, None))
        folder = self.root if split == "all" else self.root / split
        if not folder.is_dir():
            raise DatasetError(
                f"image folder not found: expected {folder}/ holding image files "
                f"(split 'all' reads {self.root} itself, another split a subfolder of it)"
            )
        self.folder = folder
        paths, problems = find_images([folder])
        if problems:
            raise DatasetError(problems[0][1])
        self._paths = paths
        stems = [p.stem for p in paths]
        unique = len(set(stems)) == len(stems)
        self.ids = stems if unique else [p.name for p in paths]

    @property
    def source(self) -> str:
        return str(self.folder.resolve())

    def _load_image(self, index: int) -> np.ndarray:
        return read_rgb_uint8(self._paths[index])

    def _native_shape(self, index: int) -> Size:
        return file_image_shape(self._paths[index])


# --------------------------------------------------------------------------------------

#: Data set classes by the name :func:`open_dataset` accepts.
DATASETS: dict[str, type[ImageDataset]] = {
    "cifar10": CIFAR10Dataset,
    "stl10": STL10Dataset,
    "voc2012": VOC2012Dataset,
    "msrc": MSRCDataset,
    "bsds500": BSDS500Dataset,
    "folder": FolderDataset,
}


def open_dataset(
    name: str,
    root: str | os.PathLike,
    split: str | None = None,
    image_size: int | Sequence[int] | str | None = None,
    *,
    download: bool = False,
) -> ImageDataset:
    """Open a data set by name.

    Parameters
    ----------
    name : {'cifar10', 'stl10', 'voc2012', 'msrc', 'bsds500', 'folder'}
    root : str or path-like
        Where the data set lies (see each class for the layout it expects).
    split : str, optional
        Defaults: 'train' (CIFAR-10, STL-10, VOC 2012, MSRC), 'val' (BSDS500),
        'all' (folder).
    image_size : int, (int, int), None or 'native'
        Size every image is resized to. None keeps the data set's default: 224x224 for
        VOC 2012 (as in the thesis), each file's own size elsewhere; 'native' keeps each
        file's size everywhere.
    download : bool
        Let torchvision download CIFAR-10, STL-10 or VOC 2012 into ``root`` when it is
        missing (needs network access). Off by default.

    Returns
    -------
    dataset : ImageDataset

    Raises
    ------
    ValueError
        For an unknown name, split or image size.
    DatasetError
        If the data set is missing or not in the expected layout; the message names the
        files that were expected.

    Examples
    --------
    >>> ds = open_dataset("bsds500", "shared/data/bsds500", "val")  # doctest: +SKIP
    >>> ds.image(0).shape, len(ds.ground_truth(0))  # doctest: +SKIP
    ((321, 481, 3), 5)
    """
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    cls = DATASETS[key]
    if split is None:
        return cls(root, image_size=image_size, download=download)  # type: ignore[call-arg]
    return cls(root, split, image_size=image_size, download=download)  # type: ignore[call-arg]
