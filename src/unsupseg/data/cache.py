"""SLIC superpixels of a whole data set, computed once and memory-mapped from disk.

Training on a data set needs the superpixels of every image in every epoch; SLIC costs
far more than reading an image (about 0.2 s for a 481x321 photo), so it is run once per
data set and parameter choice, in parallel, and stored under a cache folder. Later runs
(and DataLoader workers) map the stored arrays instead of recomputing them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import skimage
from tqdm.auto import tqdm

from unsupseg.data.base import ImageDataset
from unsupseg.io import as_rgb_float, atomic_directory, atomic_file
from unsupseg.superpixels import slic_superpixels

__all__ = [
    "SuperpixelCache",
    "default_cache_dir",
    "default_slic_params",
    "ids_fingerprint",
]

#: Pixels per superpixel of the default SLIC parameters.
PIXELS_PER_SUPERPIXEL = 100
#: Fewest superpixels the default asks for, even on tiny images.
MIN_SEGMENTS = 8
#: SLIC compactness m of the default parameters.
DEFAULT_COMPACTNESS = 10.0
#: Bumped whenever the stored layout changes, so old entries are not misread.
FORMAT_VERSION = 1

_META = "meta.json"
_ARRAY = "superpixels.npy"
_SHAPES = "shapes.npy"
_OFFSETS = "offsets.npy"
_COUNTS = "counts.npy"


def default_slic_params(height: int, width: int) -> tuple[int, float]:
    """SLIC parameters scaled to an image size.

    Parameters
    ----------
    height, width : int
        Image size in pixels.

    Returns
    -------
    n_segments : int
        ``max(8, round(height * width / 100))``: about 100 pixels per superpixel, so
        1544 for a 481x321 photo, 502 for 224x224 and 10 for 32x32 CIFAR-10 (a fixed
        K = 10000, right for the per-image mode, would make every CIFAR pixel its own
        superpixel).
    compactness : float
        10, scikit-image's default for RGB images.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive; got {height}x{width}")
    return max(MIN_SEGMENTS, round(height * width / PIXELS_PER_SUPERPIXEL)), DEFAULT_COMPACTNESS


def default_cache_dir() -> Path:
    """Folder of superpixel caches.

    ``$UNSUPSEG_CACHE/superpixels`` when the ``UNSUPSEG_CACHE`` environment variable is
    set (the root of all of unsupseg's caches), else
    ``$XDG_CACHE_HOME/unsupseg/superpixels``, by default
    ``~/.cache/unsupseg/superpixels``.
    """
    root = os.environ.get("UNSUPSEG_CACHE")
    if root:
        return Path(root).expanduser() / "superpixels"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "unsupseg" / "superpixels"


def ids_fingerprint(ids: list[str]) -> str:
    """A short hash of a data set's image ids, in order (16 hex digits)."""
    digest = hashlib.sha256("\n".join(ids).encode("utf-8"))
    return digest.hexdigest()[:16]


def _superpixels_of(
    dataset: ImageDataset, index: int, n_segments: int | None, compactness: float
) -> np.ndarray:
    """SLIC of image ``index`` as int32 (H, W), with ids from 0."""
    image = as_rgb_float(dataset.image(index))
    if n_segments is None:
        n_segments = default_slic_params(*image.shape[:2])[0]
    return slic_superpixels(image, n_segments, compactness).astype(np.int32)


_WORKER_STATE: dict[str, Any] = {}


def _init_worker(dataset: ImageDataset, n_segments: int | None, compactness: float) -> None:
    _WORKER_STATE.update(dataset=dataset, n_segments=n_segments, compactness=compactness)


def _worker(index: int) -> np.ndarray:
    state = _WORKER_STATE
    return _superpixels_of(state["dataset"], index, state["n_segments"], state["compactness"])


class SuperpixelCache:
    """SLIC superpixels of every image of a data set, stored once and memory-mapped.

    Opening a cache whose entry exists reuses it; otherwise SLIC is run on all images
    (in parallel, with a progress bar) and the entry is written atomically.

    Parameters
    ----------
    dataset : ImageDataset
        The images; SLIC sees ``as_rgb_float(dataset.image(i))``, exactly the image
        training sees.
    n_segments : int, optional
        SLIC's K for every image. By default it scales with each image's size (see
        :func:`default_slic_params`).
    compactness : float, optional
        SLIC's m; default 10.
    cache_dir : str or path-like, optional
        Where entries live; default :func:`default_cache_dir`.
    workers : int, optional
        Processes that run SLIC; default ``os.cpu_count()``. 1 runs in this process.
    progress : bool
        Show a tqdm progress bar while building.

    Attributes
    ----------
    path : Path
        The entry folder.
    key : dict
        Everything the entry depends on: data set name, split, image size, SLIC
        parameters, number of images, a fingerprint of the image ids, the scikit-image
        version and the storage format.
    built : bool
        True when this object computed the entry, False when it reused one.

    Notes
    -----
    An entry is a folder ``<cache_dir>/<name>-<split>-<size>-k<K>-m<m>-n<N>-<hash>``
    holding ``superpixels.npy`` (int32: shape (N, H, W) when all images share a size,
    else all images flattened one after the other), ``shapes.npy`` ((N, 2) heights and
    widths), ``offsets.npy`` ((N + 1,) start of each image in the flat layout),
    ``counts.npy`` ((N,) superpixels per image) and ``meta.json`` (the key and layout).
    The folder is built under a hidden temporary name and renamed when complete, so an
    interrupted build never leaves an entry that looks finished; an entry whose
    ``meta.json`` is missing or disagrees with the key is rebuilt.

    Examples
    --------
    >>> ds = open_dataset("bsds500", "shared/data/bsds500", "val")  # doctest: +SKIP
    >>> cache = SuperpixelCache(ds)  # doctest: +SKIP
    >>> cache[0].shape, cache.n_superpixels(0)  # doctest: +SKIP
    ((321, 481), 1421)
    """

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        n_segments: int | None = None,
        compactness: float | None = None,
        cache_dir: str | os.PathLike | None = None,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        if n_segments is not None and (isinstance(n_segments, bool) or int(n_segments) < 1):
            raise ValueError(f"n_segments must be a positive int or None; got {n_segments!r}")
        compactness = DEFAULT_COMPACTNESS if compactness is None else float(compactness)
        if not compactness > 0:
            raise ValueError(f"compactness must be > 0; got {compactness}")
        workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        if len(dataset) == 0:
            raise ValueError(f"{dataset!r} holds no image")
        self.dataset = dataset
        self.n_segments = None if n_segments is None else int(n_segments)
        self.compactness = compactness
        self.workers = workers
        self.progress = progress
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        size = dataset.image_size
        self.key: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "dataset": dataset.name,
            "source": dataset.source,
            "split": dataset.split,
            "image_size": None if size is None else list(size),
            "n_segments": self.n_segments if self.n_segments is not None else "auto",
            "compactness": self.compactness,
            "n_images": len(dataset),
            "ids": ids_fingerprint(dataset.ids),
            "skimage": skimage.__version__,
        }
        self.path = self.cache_dir / self._entry_name()
        self._array: np.ndarray | None = None
        self.built = False
        if not self._load_meta():
            self._build()
            self.built = True
            if not self._load_meta():
                raise RuntimeError(f"{self.path}: superpixel cache unreadable right after build")

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.key["n_images"])

    def __repr__(self) -> str:
        return f"SuperpixelCache({self.dataset!r}, path='{self.path}')"

    def __getitem__(self, index: int) -> np.ndarray:
        """Superpixels of image ``index``: read-only int32 (H, W), ids from 0."""
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"image index must be an int; got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"image index {index} out of range for {n} images")
        index = int(index) % n
        array = self._mapped()
        if self._uniform:
            return array[index]
        height, width = self._shapes[index]
        start = self._offsets[index]
        return array[start : start + height * width].reshape(height, width)

    def n_superpixels(self, index: int) -> int:
        """Number of superpixels of image ``index`` (its largest id + 1)."""
        return int(self._counts[index])

    def slic_params(self, index: int) -> tuple[int, float]:
        """``(n_segments, compactness)`` SLIC was asked for on image ``index``."""
        if self.n_segments is not None:
            return self.n_segments, self.compactness
        height, width = self._shapes[index]
        return default_slic_params(int(height), int(width))[0], self.compactness

    def matches(self, dataset: ImageDataset) -> bool:
        """True when this cache was built for ``dataset``'s images."""
        return (
            dataset.name == self.key["dataset"]
            and dataset.source == self.key["source"]
            and dataset.split == self.key["split"]
            and (None if dataset.image_size is None else list(dataset.image_size))
            == self.key["image_size"]
            and len(dataset) == self.key["n_images"]
            and ids_fingerprint(dataset.ids) == self.key["ids"]
        )

    def __getstate__(self) -> dict[str, Any]:
        # A memory map would be pickled as a full copy; worker processes map it again.
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def _mapped(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path / _ARRAY, mmap_mode="r")
        return self._array

    def _entry_name(self) -> str:
        size = self.key["image_size"]
        parts = [
            self.key["dataset"],
            self.key["split"],
            "native" if size is None else f"{size[0]}x{size[1]}",
            f"k{self.key['n_segments']}",
            f"m{self.compactness:g}",
            f"n{len(self)}",
            hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:12],
        ]
        return re.sub(r"[^A-Za-z0-9_.+=-]", "_", "-".join(parts))

    def _load_meta(self) -> bool:
        """Open an existing, complete entry for this key; False when there is none."""
        try:
            meta = json.loads((self.path / _META).read_text())
            if meta.get("key") != self.key or not meta.get("complete"):
                return False
            shapes = np.load(self.path / _SHAPES)
            offsets = np.load(self.path / _OFFSETS)
            counts = np.load(self.path / _COUNTS)
            array = np.load(self.path / _ARRAY, mmap_mode="r")
        except (OSError, ValueError):
            return False
        n = len(self)
        uniform = bool(meta.get("uniform"))
        expected = (n, *shapes[0]) if uniform else (int(offsets[-1]),)
        if (
            shapes.shape != (n, 2)
            or offsets.shape != (n + 1,)
            or counts.shape != (n,)
            or array.dtype != np.int32
            or array.shape != tuple(int(s) for s in expected)
        ):
            return False
        self._shapes, self._offsets, self._counts = shapes, offsets, counts
        self._uniform = uniform
        self._array = array
        return True

    # -- building ----------------------------------------------------------------------

    def _build(self) -> None:
        dataset, n = self.dataset, len(self)
        shapes = np.array([dataset.image_shape(i) for i in range(n)], dtype=np.int64)
        uniform = bool((shapes == shapes[0]).all())
        sizes = shapes[:, 0] * shapes[:, 1]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        counts = np.zeros(n, dtype=np.int32)
        with atomic_directory(self.path) as tmp:
            shape = (n, *shapes[0]) if uniform else (int(offsets[-1]),)
            array = np.lib.format.open_memmap(
                tmp / _ARRAY, mode="w+", dtype=np.int32, shape=tuple(int(s) for s in shape)
            )
            bar = tqdm(
                total=n,
                desc=f"SLIC {dataset.name} {dataset.split}",
                unit="img",
                disable=not self.progress,
            )
            with bar:
                for index, labels in enumerate(self._compute(n)):
                    if labels.shape != tuple(shapes[index]):
                        raise RuntimeError(
                            f"{dataset!r}: image {index} ({dataset.image_id(index)}) has shape "
                            f"{labels.shape}, not the {tuple(shapes[index])} announced"
                        )
                    if uniform:
                        array[index] = labels
                    else:
                        array[offsets[index] : offsets[index + 1]] = labels.ravel()
                    counts[index] = int(labels.max()) + 1
                    bar.update()
            array.flush()
            del array
            np.save(tmp / _SHAPES, shapes)
            np.save(tmp / _OFFSETS, offsets)
            np.save(tmp / _COUNTS, counts)
            meta = {"key": self.key, "uniform": uniform, "complete": True}
            with atomic_file(tmp / _META) as handle:
                json.dump(meta, handle, indent=2)

    def _compute(self, n: int) -> Iterator[np.ndarray]:
        """Superpixels of images 0..n-1, in order."""
        workers = min(self.workers, n)
        if workers <= 1:
            for index in range(n):
                yield _superpixels_of(self.dataset, index, self.n_segments, self.compactness)
            return
        chunksize = max(1, min(16, n // (workers * 8)))
        pool = ProcessPoolExecutor(
            max_workers=workers,
            initializer=_init_worker,
            initargs=(self.dataset, self.n_segments, self.compactness),
        )
        try:
            yield from pool.map(_worker, range(n), chunksize=chunksize)
        finally:
            # On an error or interrupt, drop the images not started yet.
            pool.shutdown(wait=True, cancel_futures=True)
