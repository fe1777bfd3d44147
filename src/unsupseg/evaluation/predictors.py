"""Where the predictions scored by ``evaluate`` and ``postprocess`` come from.

A predictor is a function ``(dataset, index) -> label map``: a baseline, per-image
optimisation, a trained checkpoint, or label maps saved in a folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unsupseg.baselines import BASELINES
from unsupseg.data.base import ImageDataset
from unsupseg.errors import ConfigError
from unsupseg.evaluation.scoring import label_ids
from unsupseg.io import read_label_png

if TYPE_CHECKING:
    from unsupseg.models.checkpoint import Checkpoint

__all__ = [
    "METHODS",
    "PER_IMAGE_METHODS",
    "Predictor",
    "baseline_prediction",
    "checkpoint_path",
    "find_prediction",
    "make_predictor",
    "read_prediction",
]

#: The per-image optimisations by their name here, and the ``method`` of
#: :func:`unsupseg.per_image.segment` each runs (``per-image`` is Kanezaki 2018, also
#: accepted by segment's own name). Named here, not imported, so that baselines do not
#: load torch.
PER_IMAGE_METHODS = {
    "per-image": "kanezaki2018",
    "kanezaki2018": "kanezaki2018",
    "tip2020": "tip2020",
    "dynaseg-fsf": "dynaseg-fsf",
    "dynaseg-scf": "dynaseg-scf",
}
#: Methods computed here: the baselines and per-image optimisation.
METHODS = (*BASELINES, *PER_IMAGE_METHODS)
#: A function (dataset, index) -> label map (H, W) of that image.
Predictor = Callable[[ImageDataset, int], np.ndarray]


def find_prediction(folder: str | os.PathLike, image_id: str) -> Path | None:
    """The saved prediction of ``image_id`` in ``folder``, or None.

    Looked for as ``<id>.npy``, ``<id>.png``, ``<id>/labels.npy`` and
    ``<id>/labels.png`` (the outputs of ``unsupseg segment`` and ``predict``), in this
    order.
    """
    folder = Path(folder)
    for candidate in (
        folder / f"{image_id}.npy",
        folder / f"{image_id}.png",
        folder / image_id / "labels.npy",
        folder / image_id / "labels.png",
    ):
        if candidate.is_file():
            return candidate
    return None


def read_prediction(path: str | os.PathLike) -> np.ndarray:
    """Read a label map saved as ``.npy`` or label PNG, as int64 ids.

    Raises
    ------
    ValueError
        When the file cannot be read, or holds no label map (NaN, infinite or
        fractional values, a non-numeric array): see
        :func:`~unsupseg.evaluation.scoring.label_ids`.
    """
    path = Path(path)
    if path.suffix != ".npy":
        return read_label_png(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a NumPy label array that can be read ({exc})") from None
    try:
        return label_ids(array)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def checkpoint_path(checkpoint: str | os.PathLike | Checkpoint) -> Path:
    """The file of a checkpoint given as a path or as a loaded :class:`Checkpoint`."""
    if isinstance(checkpoint, (str, os.PathLike)):
        return Path(checkpoint)
    return Path(checkpoint.path)


def make_predictor(
    *,
    method: str | None = None,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    predictions: str | os.PathLike | None = None,
    refine: bool = False,
    class_maps: bool = False,
    max_side: int | None = None,
    fine_iter: int = 0,
    max_iter: int = 1000,
    seed: int = 0,
    device: str | None = None,
    precision: str = "auto",
    layout: str = "auto",
) -> Predictor:
    """A function ``(dataset, index) -> label map`` for one source of predictions.

    Parameters
    ----------
    method : str, optional
        A baseline of :data:`unsupseg.baselines.BASELINES` or ``'per-image'``
        (:func:`unsupseg.per_image.segment`).
    checkpoint : path or Checkpoint, optional
        A trained model (:func:`unsupseg.models.checkpoint.load_checkpoint`), run
        through :func:`unsupseg.inference.predict_batch`.
    predictions : path, optional
        A folder of saved label maps (:func:`find_prediction`).
    refine : bool
        Checkpoint: apply the superpixel majority vote to the argmax.
    class_maps : bool
        Checkpoint: give each label its network channel
        (:func:`unsupseg.inference.channel_labels`), so that ids mean the same across
        images, as class-level (Hungarian) scoring needs.
    max_side, fine_iter, max_iter : int
        Per-image optimisation: the working size, the most iterations at full size
        after it (coarse to fine) and the most iterations.
    seed : int
        Per-image optimisation and k-means.
    device : str, optional
        Checkpoint and per-image optimisation (default: CUDA when available).
    precision : {'auto', 'fp32', 'bf16'}
        Per-image optimisation: the network's arithmetic.
    layout : {'auto', 'contiguous', 'channels-last'}
        Per-image optimisation: the network's memory layout.

    Returns
    -------
    predictor : callable
        ``predictor(dataset, index)`` returns the label map of image ``index``; it
        raises when that image cannot be predicted (no saved map, for instance).

    Raises
    ------
    ConfigError
        Unless exactly one of ``method``, ``checkpoint`` and ``predictions`` is given,
        for an unknown method, or a predictions folder that does not exist.
    CheckpointError
        When the checkpoint does not load.

    Examples
    --------
    >>> from unsupseg.data import open_dataset
    >>> dataset = open_dataset("bsds500", "../shared/data/bsds500", "val",
    ...                        image_size="native")  # doctest: +SKIP
    >>> predict = make_predictor(method="felzenszwalb")
    >>> predict(dataset, 0).shape  # doctest: +SKIP
    (321, 481)
    """
    sources = {"method": method, "checkpoint": checkpoint, "predictions": predictions}
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one source of predictions: a method, a checkpoint or a "
            f"predictions folder (got {', '.join(given) or 'none'})"
        )
    if predictions is not None:
        return _saved_predictor(Path(predictions))
    if checkpoint is not None:
        return _checkpoint_predictor(checkpoint, refine, class_maps, device)
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in PER_IMAGE_METHODS:
        # Imported when used, like the checkpoint's modules: they load the network code
        # (over a second), which baselines and saved predictions do not need.
        from unsupseg.per_image import segment

        def optimised(dataset: ImageDataset, index: int) -> np.ndarray:
            return segment(
                dataset.image(index),
                PER_IMAGE_METHODS[method],
                max_side=max_side,
                fine_iter=fine_iter,
                max_iter=max_iter,
                seed=seed,
                device=device,
                precision=precision,
                layout=layout,
            )

        return optimised

    def baseline(dataset: ImageDataset, index: int) -> np.ndarray:
        return baseline_prediction(method, dataset.image(index), seed)

    return baseline


def baseline_prediction(method: str, image: np.ndarray, seed: int = 0) -> np.ndarray:
    """The label map of a baseline (``seed`` goes to k-means, the only random one)."""
    kwargs: dict[str, Any] = {"seed": seed} if method == "kmeans" else {}
    return BASELINES[method](image, **kwargs)


def _saved_predictor(folder: Path) -> Predictor:
    if not folder.is_dir():
        raise ConfigError(f"predictions folder {folder}: no such folder")

    def saved(dataset: ImageDataset, index: int) -> np.ndarray:
        image_id = dataset.image_id(index)
        path = find_prediction(folder, image_id)
        if path is None:
            raise FileNotFoundError(
                f"no prediction for {image_id} in {folder} (looked for {image_id}.npy, "
                f"{image_id}.png, {image_id}/labels.npy, {image_id}/labels.png)"
            )
        return read_prediction(path)

    return saved


def _checkpoint_predictor(
    checkpoint: str | os.PathLike | Checkpoint, refine: bool, class_maps: bool, device: str | None
) -> Predictor:
    from unsupseg.inference import channel_labels, predict_batch
    from unsupseg.models.checkpoint import load_checkpoint

    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = load_checkpoint(checkpoint, device)

    def trained(dataset: ImageDataset, index: int) -> np.ndarray:
        (result,) = predict_batch(checkpoint, [dataset.image(index)], refine=refine)
        return channel_labels(result) if class_maps else result.labels

    return trained
