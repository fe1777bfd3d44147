"""Where the data sets are looked for when no folder is named."""

from __future__ import annotations

import os
from pathlib import Path

from unsupseg.errors import DatasetError

__all__ = ["DATA_FOLDERS", "DATA_LAYOUTS", "default_data_root"]

#: Folder names looked for under ``$UNSUPSEG_DATA`` and ``../shared/data``.
DATA_FOLDERS: dict[str, tuple[str, ...]] = {
    "bsds500": ("bsds500", "BSDS500", "BSR"),
    "msrc": ("msrc_v2", "msrc", "MSRC_v2"),
    "cifar10": ("cifar10", "cifar10_partial", "cifar-10-python"),
    "stl10": ("stl10", "stl10_binary"),
    "voc2012": ("voc2012", "VOC2012", "VOCdevkit"),
}
#: The on-disk layout of each data set, for error messages.
DATA_LAYOUTS: dict[str, str] = {
    "bsds500": "images/{train,val}/<id>.jpg and groundTruth/{train,val}/<id>.mat",
    "msrc": "images/<id>.png and labels/<id>.png (palette PNG, 255 = void)",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch} (python pickles)",
    "stl10": "stl10_binary/{train,test}_{X,y}.bin",
    "voc2012": "VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}",
    "folder": "image files in the folder (or in its train/ and val/ subfolders)",
}


def default_data_root(dataset: str, cwd: str | os.PathLike | None = None) -> Path:
    """Where a data set is looked for when no data root is given.

    First ``$UNSUPSEG_DATA/<folder>`` when the ``UNSUPSEG_DATA`` environment variable
    names a folder of data sets, then ``<cwd>/../shared/data/<folder>``: the project's
    layout, with the checkout beside ``shared/``. ``<folder>`` is one of
    :data:`DATA_FOLDERS` (``bsds500``, ``msrc_v2``, ``cifar10_partial``, ...).

    Parameters
    ----------
    dataset : str
        ``bsds500``, ``msrc``, ``cifar10``, ``stl10`` or ``voc2012``.
    cwd : path, optional
        The folder the relative ``../shared/data`` starts from; default: the current
        working directory.

    Returns
    -------
    Path
        The first of those folders that exists.

    Raises
    ------
    DatasetError
        When none holds the data set (or for ``folder``, which has no default); the
        message names the folders tried and the expected layout.
    """
    if dataset == "folder":
        raise DatasetError("--dataset folder needs --data-root (a folder of images)")
    if dataset not in DATA_FOLDERS:
        raise DatasetError(
            f"unknown data set {dataset!r}; choose from {', '.join(DATA_FOLDERS)} or folder"
        )
    bases = []
    if os.environ.get("UNSUPSEG_DATA"):
        bases.append(Path(os.environ["UNSUPSEG_DATA"]).expanduser())
    bases.append(Path(cwd if cwd is not None else Path.cwd()).parent / "shared" / "data")
    tried = []
    for base in bases:
        for name in DATA_FOLDERS[dataset]:
            tried.append(str(base / name))
            if (base / name).is_dir():
                return base / name
    raise DatasetError(
        f"no --data-root given and no {dataset} data set found (looked in {', '.join(tried)}). "
        f"Pass --data-root DIR holding {DATA_LAYOUTS[dataset]}, or set UNSUPSEG_DATA to a "
        f"folder with one of the subfolders {', '.join(DATA_FOLDERS[dataset])}"
    )
