"""SLIC superpixels of a whole data set, computed once and memory-mapped from disk.

Training on a data set needs the superpixels of every image in every epoch; SLIC costs
far more than reading an image (about 0.2 s for a 481x321 photo), so it is run once per
data set and parameter choice, in parallel, and stored under a cache folder. Later runs
(and DataLoader workers) map the stored arrays instead of recomputing them.

An entry is keyed by the content of the images, not only by their names: the sha256 of
every image file (or of the data files of data sets stored as a few large files, such as
CIFAR-10's batches), so replacing or resizing photos rebuilds the entry. Hashing is cheap
next to SLIC: the 200 JPEGs (15 MB) of BSDS500 train hash in about 20 ms (80 ms from a
cold disk), against about 40 s of SLIC; a size and modification time would miss files
copied over with their times preserved, and would rebuild needlessly after a plain copy.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import skimage
from tqdm.auto import tqdm

from unsupseg.data.base import ImageDataset
from unsupseg.data.datasets import CIFAR10Dataset, STL10Dataset
from unsupseg.data.subsets import SubsetDataset
from unsupseg.errors import DatasetError, UnsupsegError
from unsupseg.io import as_rgb_float, atomic_file
from unsupseg.superpixels import slic_superpixels

__all__ = [
    "SuperpixelCache",
    "content_fingerprint",
    "default_cache_dir",
    "default_slic_params",
    "ids_fingerprint",
]

log = logging.getLogger("unsupseg")

#: Pixels per superpixel of the default SLIC parameters.
PIXELS_PER_SUPERPIXEL = 100
#: Fewest superpixels the default asks for, even on tiny images.
MIN_SEGMENTS = 8
#: SLIC compactness m of the default parameters.
DEFAULT_COMPACTNESS = 10.0
#: Bumped whenever the stored layout changes, so old entries are not misread.
FORMAT_VERSION = 1
#: Seconds between two checks of a pool worker that its parent process still lives.
PARENT_POLL_S = 0.5
#: Seconds without change after which a temporary folder whose owner cannot be checked
#: (made on another host, or by an earlier version) is taken for abandoned.
UNOWNED_TMP_AGE_S = 3 * 24 * 3600

_META = "meta.json"
_ARRAY = "superpixels.npy"
_SHAPES = "shapes.npy"
_OFFSETS = "offsets.npy"
_COUNTS = "counts.npy"
#: Key fields left out of the entry name, so an entry whose images changed is rebuilt
#: in place rather than beside the stale one.
_UNNAMED_KEYS = ("content",)
#: ``prctl`` option that sends a signal to this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
#: Temporary folders: ``.<entry>.<host>.<pid>.<token>.tmp``, so a later build can tell
#: whether the process that made one is still running.
_TMP_PATTERN = re.compile(
    r"^\.(?P<entry>[A-Za-z0-9_.+=-]+-n\d+-[0-9a-f]{12})"
    r"\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.tmp$"
)
#: Temporary folders of earlier versions (``tempfile.mkdtemp``), which record no owner.
_LEGACY_TMP_PATTERN = re.compile(
    r"^\.[A-Za-z0-9_.+=-]+-n\d+-[0-9a-f]{12}\.([a-z0-9_]{8}\.tmp|old-\d+)$"
)


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


# -- content of the images ---------------------------------------------------------------

#: sha256 of files already hashed by this process, by path and ``stat`` fields, so that
#: opening the same data set again (``prepare_data``, ``setup``, ``matches``) reads
#: each file once per process.
_FILE_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (64 hex digits).

    Raises
    ------
    DatasetError
        If the file is missing or cannot be read.
    """
    path = Path(path)
    try:
        st = path.stat()
        memo = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if memo not in _FILE_DIGESTS:
            with open(path, "rb") as handle:
                _FILE_DIGESTS[memo] = hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: no such file (the data set changed after it was opened)"
        ) from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return _FILE_DIGESTS[memo]


def image_files(dataset: ImageDataset) -> list[Path] | None:
    """The file of each image of ``dataset``, in index order; None when images are not files.

    Known layouts: ``_image_paths`` (BSDS500, VOC 2012, MSRC, labelled folders) and
    ``_paths`` (folders of images); a :class:`~unsupseg.data.SubsetDataset` picks its
    parent's files.
    """
    if isinstance(dataset, SubsetDataset):
        parent = image_files(dataset.parent)
        return None if parent is None else [parent[i] for i in dataset.indices]
    for attribute in ("_image_paths", "_paths"):
        paths = getattr(dataset, attribute, None)
        if isinstance(paths, list) and len(paths) == len(dataset):
            return [Path(p) for p in paths]
    return None


def data_files(dataset: ImageDataset) -> list[Path] | None:
    """The files holding the pixels of a data set stored as a few large files, else None.

    CIFAR-10: its pickled batches; STL-10: its ``<part>_X.bin`` binaries. A subset
    gives its parent's files.
    """
    if isinstance(dataset, SubsetDataset):
        return data_files(dataset.parent)
    if isinstance(dataset, CIFAR10Dataset):
        return [dataset.folder / batch for batch in dataset.SPLITS[dataset.split]]
    if isinstance(dataset, STL10Dataset):
        return [dataset.folder / f"{part}_X.bin" for part, _ in dataset._parts]
    return None


def content_fingerprint(dataset: ImageDataset) -> str:
    """A hash of what a data set's images are made of (``<kind>:`` and 32 hex digits).

    ``files:`` hashes the bytes of every image file, in index order; ``data:`` the
    data files (CIFAR-10, STL-10); ``pixels:`` every image's pixels, for data sets of
    neither kind (which decodes every image). Any change to an image changes it.

    Raises
    ------
    DatasetError
        If a file is missing or unreadable.
    """
    digest = hashlib.sha256()
    files = image_files(dataset)
    kind = "files"
    if files is None:
        files, kind = data_files(dataset), "data"
    if files is not None:
        for path in files:
            digest.update(f"{file_digest(path)}\n".encode())
    else:
        kind = "pixels"
        for index in range(len(dataset)):
            image = np.ascontiguousarray(dataset.image(index))
            digest.update(f"{image.shape} {image.dtype}\n".encode())
            digest.update(image.tobytes())
    return f"{kind}:{digest.hexdigest()[:32]}"


def _describe_image(dataset: ImageDataset, index: int) -> str:
    """The file of image ``index`` where it has one, else its index and id."""
    files = image_files(dataset)
    if files is not None:
        return str(files[index])
    return f"{dataset.name} {dataset.split} image {index} ({dataset.image_id(index)})"


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


# -- computing superpixels ---------------------------------------------------------------


def _superpixels_of(
    dataset: ImageDataset, index: int, n_segments: int | None, compactness: float
) -> np.ndarray:
    """SLIC of image ``index`` as int32 (H, W), with ids from 0."""
    image = as_rgb_float(dataset.image(index))
    if n_segments is None:
        n_segments = default_slic_params(*image.shape[:2])[0]
    return slic_superpixels(image, n_segments, compactness).astype(np.int32)


#: Errors of reading an image that the build reports as a :class:`DatasetError`.
_READ_ERRORS = (UnsupsegError, OSError)

_WORKER_STATE: dict[str, Any] = {}


class _Failure:
    """What a pool worker sends back instead of raising when an image cannot be read.

    An exception raised in a worker would reach the parent wrapped with the worker's
    traceback; this carries the message only.
    """

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        self.message = message


def _init_worker(
    parent: int, dataset: ImageDataset, n_segments: int | None, compactness: float
) -> None:
    """Pool initializer: die with the parent, leave interrupts to it, keep the job."""
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent alone handles it and stops
    # the pool. SIGTERM gets its default action back (the parent may have a handler).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER_STATE.update(dataset=dataset, n_segments=n_segments, compactness=compactness)


def _die_with_parent(parent: int) -> None:
    """End this process when process ``parent`` ends, even by SIGKILL.

    On Linux the kernel sends SIGKILL on the parent's death (``PR_SET_PDEATHSIG``);
    everywhere a daemon thread also polls :func:`os.getppid`, which changes when the
    parent dies and this process is handed to another.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="unsupseg-parent-watch", daemon=True
    ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _worker(index: int) -> np.ndarray | _Failure:
    state = _WORKER_STATE
    try:
        return _superpixels_of(state["dataset"], index, state["n_segments"], state["compactness"])
    except _READ_ERRORS as exc:
        return _Failure(index, _one_line(str(exc)))


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Drop the pending images and end the workers now, without waiting for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # private API
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


# -- temporary folders -------------------------------------------------------------------


def _host_tag() -> str:
    tag = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]
    return tag or "host"


def _temporary_sibling(final: Path) -> Path:
    """``.<name>.<host>.<pid>.<token>.tmp`` beside ``final``: it records its owner."""
    token = secrets.token_hex(4)
    return final.with_name(f".{final.name}.{_host_tag()}.{os.getpid()}.{token}.tmp")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (a zombie counts as ended)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # os.kill would end the process there; never sweep
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, for one
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _last_change(path: Path) -> float:
    """Newest modification time of a folder and the files in it (a build writes them)."""
    times = [path.stat().st_mtime]
    for child in path.iterdir():
        with contextlib.suppress(OSError):
            times.append(child.stat().st_mtime)
    return max(times)


def _is_stale(path: Path) -> bool:
    """Whether ``path`` is a temporary folder of a build that no longer runs."""
    match = _TMP_PATTERN.match(path.name)
    if match and match["host"] == _host_tag() and not _pid_alive(int(match["pid"])):
        return True
    if match or _LEGACY_TMP_PATTERN.match(path.name):
        # Also the folder of a process id since reused by another process.
        try:
            return path.is_dir() and time.time() - _last_change(path) > UNOWNED_TMP_AGE_S
        except OSError:
            return False
    return False


def sweep_temporaries(cache_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders of builds whose process no longer runs.

    Parameters
    ----------
    cache_dir : str or path-like
        The folder of entries.

    Returns
    -------
    removed : list of Path

    Notes
    -----
    A folder made on this machine (the host recorded in its name) is removed when the
    process recorded in its name no longer runs. Any of them (made on another machine
    or in a container since replaced, whose host name differs; made by an earlier
    version that recorded no owner; or whose process id was reused) is removed when
    nothing in it changed for :data:`UNOWNED_TMP_AGE_S`. Only names of this module's
    temporary folders are considered, so other files in the folder are never touched.
    """
    removed = []
    with contextlib.suppress(OSError):
        for path in Path(cache_dir).iterdir():
            if path.name.startswith(".") and path.is_dir() and _is_stale(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    if removed:
        log.info(
            "removed %d temporary folder(s) of interrupted builds in %s", len(removed), cache_dir
        )
    return removed


class _Terminated(BaseException):
    """SIGTERM, raised so that a build removes its temporary folder before dying."""


@contextlib.contextmanager
def _cleanup_on_sigterm() -> Iterator[None]:
    """While the block runs, let SIGTERM unwind the stack, then die by it as before.

    Only when SIGTERM has its default action and this is the main thread: a handler
    installed by the application (the CLI's) is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM) from None  # should SIGTERM be blocked
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _staging_folder(final: Path) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``final``; move it in place at the end.

    On any exception (KeyboardInterrupt and SIGTERM included) the temporary folder is
    removed and ``final`` is left as it was; a process killed outright leaves it, named
    after its process id, for :func:`sweep_temporaries`.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(final)
    with _cleanup_on_sigterm():
        try:
            tmp.mkdir()
            yield tmp
            old = None
            if final.exists():
                old = _temporary_sibling(final)
                os.replace(final, old)
            try:
                os.replace(tmp, final)
            except OSError as exc:
                # Another process finished the same entry meanwhile: keep that one.
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.exists():
                    raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


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
        parameters, number of images, a fingerprint of the image ids, one of the
        images' content (:func:`content_fingerprint`), the scikit-image version and
        the storage format.
    built : bool
        True when this object computed the entry, False when it reused one.

    Raises
    ------
    DatasetError
        If an image cannot be read while building (the message names its file); no
        entry and no temporary folder is left behind.

    Notes
    -----
    An entry is a folder ``<cache_dir>/<name>-<split>-<size>-k<K>-m<m>-n<N>-<hash>``
    holding ``superpixels.npy`` (int32: shape (N, H, W) when all images share a size,
    else all images flattened one after the other), ``shapes.npy`` ((N, 2) heights and
    widths), ``offsets.npy`` ((N + 1,) start of each image in the flat layout),
    ``counts.npy`` ((N,) superpixels per image) and ``meta.json`` (the key and layout).
    The hash in the name leaves out the images' content, so when images change the
    entry is rebuilt in place. The folder is built under a hidden temporary name
    (``.<entry>.<host>.<pid>.<token>.tmp``) and renamed when complete, so an
    interrupted build never leaves an entry that looks finished; an entry whose
    ``meta.json`` is missing or disagrees with the key is rebuilt. An interrupt
    (KeyboardInterrupt, or SIGTERM while it has its default action) removes the
    temporary folder; one left by a killed process is removed by the next cache opened
    in the same folder. Pool workers end with the process that started them.
    Serving an image checks its stored shape against the image's current one.

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
        self.key: dict[str, Any] = {
            **self._dataset_key(dataset),
            "format": FORMAT_VERSION,
            "n_segments": self.n_segments if self.n_segments is not None else "auto",
            "compactness": self.compactness,
            "skimage": skimage.__version__,
        }
        self.path = self.cache_dir / self._entry_name()
        self._array: np.ndarray | None = None
        self.built = False
        sweep_temporaries(self.cache_dir)
        if not self._load_meta():
            self._build()
            self.built = True
            if not self._load_meta():
                raise RuntimeError(f"{self.path}: superpixel cache unreadable right after build")

    @staticmethod
    def _dataset_key(dataset: ImageDataset) -> dict[str, Any]:
        """The fields of the key that come from the images."""
        size = dataset.image_size
        return {
            "dataset": dataset.name,
            "source": dataset.source,
            "split": dataset.split,
            "image_size": None if size is None else list(size),
            "n_images": len(dataset),
            "ids": ids_fingerprint(dataset.ids),
            "content": content_fingerprint(dataset),
        }

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.key["n_images"])

    def __repr__(self) -> str:
        return f"SuperpixelCache({self.dataset!r}, path='{self.path}')"

    def __getitem__(self, index: int) -> np.ndarray:
        """Superpixels of image ``index``: read-only int32 (H, W), ids from 0.

        Raises
        ------
        DatasetError
            If the image no longer has the shape it had when the entry was built.
        """
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"image index must be an int; got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"image index {index} out of range for {n} images")
        index = int(index) % n
        height, width = (int(s) for s in self._shapes[index])
        self._check_shape(index, (height, width))
        array = self._mapped()
        if self._uniform:
            return array[index]
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
        """True when this cache was built for ``dataset``'s images, as they are now."""
        key = self._dataset_key(dataset)
        return key == {k: self.key[k] for k in key}

    def __getstate__(self) -> dict[str, Any]:
        # A memory map would be pickled as a full copy; worker processes map it again.
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def _mapped(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path / _ARRAY, mmap_mode="r")
        return self._array

    def _check_shape(self, index: int, stored: tuple[int, int]) -> None:
        shape = tuple(int(s) for s in self.dataset.image_shape(index))
        if shape != stored:
            raise DatasetError(
                f"{_describe_image(self.dataset, index)}: image is {shape[0]}x{shape[1]} "
                f"(height x width) but its cached superpixels are {stored[0]}x{stored[1]}: "
                f"the image changed after the superpixel cache was built; delete {self.path} "
                "and run again to rebuild it"
            )

    def _entry_name(self) -> str:
        size = self.key["image_size"]
        named = {k: v for k, v in self.key.items() if k not in _UNNAMED_KEYS}
        parts = [
            self.key["dataset"],
            self.key["split"],
            "native" if size is None else f"{size[0]}x{size[1]}",
            f"k{self.key['n_segments']}",
            f"m{self.compactness:g}",
            f"n{len(self)}",
            hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:12],
        ]
        return re.sub(r"[^A-Za-z0-9_.+=-]", "_", "-".join(parts))

    def _load_meta(self) -> bool:
        """Open an existing, complete entry for this key; False when there is none."""
        try:
            meta = json.loads((self.path / _META).read_text())
            if meta.get("key") != self.key or not meta.get("complete"):
                if isinstance(meta.get("key"), dict) and meta["key"].get("content") not in (
                    None,
                    self.key["content"],
                ):
                    log.info(
                        "images of %s changed since its superpixels were cached; rebuilding %s",
                        self.dataset,
                        self.path,
                    )
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

    def _read_error(self, index: int, message: str) -> DatasetError:
        """The one-line error of an image that cannot be read during the build."""
        return DatasetError(
            f"cannot build the superpixel cache of {self.dataset.name} {self.dataset.split}: "
            f"{_one_line(message)}; replace or remove {_describe_image(self.dataset, index)} "
            "and run again"
        )

    def _image_shapes(self) -> np.ndarray:
        shapes = []
        for index in range(len(self)):
            try:
                shapes.append(self.dataset.image_shape(index))
            except _READ_ERRORS as exc:
                raise self._read_error(index, str(exc)) from None
        return np.array(shapes, dtype=np.int64)

    def _build(self) -> None:
        dataset, n = self.dataset, len(self)
        shapes = self._image_shapes()
        uniform = bool((shapes == shapes[0]).all())
        sizes = shapes[:, 0] * shapes[:, 1]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        counts = np.zeros(n, dtype=np.int32)
        with _staging_folder(self.path) as tmp:
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
            with bar, contextlib.closing(self._compute(n)) as results:
                for index, labels in enumerate(results):
                    if labels.shape != tuple(shapes[index]):
                        raise DatasetError(
                            f"{_describe_image(dataset, index)}: image is {labels.shape} but "
                            f"its header said {tuple(int(s) for s in shapes[index])}; the "
                            "file changed while the superpixel cache was built: run again"
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
        """Superpixels of images 0..n-1, in order; a DatasetError for an unreadable one."""
        workers = min(self.workers, n)
        if workers <= 1:
            for index in range(n):
                try:
                    labels = _superpixels_of(self.dataset, index, self.n_segments, self.compactness)
                except _READ_ERRORS as exc:
                    raise self._read_error(index, str(exc)) from None
                yield labels
            return
        chunksize = max(1, min(16, n // (workers * 8)))
        pool = ProcessPoolExecutor(
            max_workers=workers,
            initializer=_init_worker,
            initargs=(os.getpid(), self.dataset, self.n_segments, self.compactness),
        )
        try:
            for result in pool.map(_worker, range(n), chunksize=chunksize):
                if isinstance(result, _Failure):
                    raise self._read_error(result.index, result.message) from None
                yield result
        except BrokenProcessPool:
            _stop_pool(pool)
            raise RuntimeError(
                f"a SLIC worker process died while building {self.path.name} (out of "
                "memory?); run again with fewer SLIC workers"
            ) from None
        except BaseException:
            # An error, an interrupt or the consumer closing: end the workers now.
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
