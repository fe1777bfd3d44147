"""The checkpoint format of trained models: a typed record, its writer and its reader.

A plain checkpoint (``model-last.pt``, ``model-best.pt``) is a dict of plain data that
``torch.load(..., weights_only=True)`` reads: every field of :class:`CheckpointInfo`
plus ``state_dict``. A Lightning checkpoint (``last.ckpt``, ``best.ckpt``) carries the
same fields as ``checkpoint["unsupseg"]`` beside Lightning's own state.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unsupseg.device import resolve_device
from unsupseg.errors import CheckpointError
from unsupseg.models.registry import build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "PROGRESS_FIELDS",
    "Checkpoint",
    "CheckpointInfo",
    "load_checkpoint",
]

#: ``format`` value of the plain checkpoints (and of ``checkpoint["unsupseg"]`` in .ckpt).
CHECKPOINT_FORMAT = "unsupseg-checkpoint"
CHECKPOINT_VERSION = 1
#: Fields of :class:`CheckpointInfo` that say how far training had come.
PROGRESS_FIELDS = ("epoch", "global_step", "metrics")


@dataclass
class CheckpointInfo:
    """What a checkpoint records besides the weights (plain data only).

    Attributes
    ----------
    preset, architecture, dataset : str
        The model preset (:func:`unsupseg.models.get_preset`), its architecture and the
        data set it was designed for.
    q : int
        Output channels of the FCN.
    model_overrides : dict
        Keyword arguments of :func:`unsupseg.models.build_model` beside the preset
        (``{"q": q}``).
    image_size : int or None
        The square size images are resized to (CIFAR-10 32, STL-10 96, VOC 224);
        None: full resolution (photos presets).
    crop_size : int or None
        Side of the random training crops.
    multi_label : bool
        Classifier heads trained with BCE on multi-hot targets.
    n_classes, class_names
        Image-level classes of the training data (None without labels).
    refine : dict
        The training refinement: ``method`` and its SLIC ``n_segments`` and
        ``compactness``.
    slic : dict
        SLIC of the images (``n_segments`` None: scaled to the image size).
    seed : int
    trained_on : dict
        ``dataset``, ``split`` and ``images``.
    validation : str or None
        Where validation came from.
    settings : dict
        Every resolved training setting (:class:`unsupseg.training.TrainConfig`).
    versions : dict
        Library versions of the run.
    epoch, global_step : int or None
        Training progress when the checkpoint was written.
    metrics : dict or None
        The epoch's mean loss terms (``train``, ``val``), the monitored score.
    """

    preset: str
    architecture: str
    dataset: str = ""
    q: int = 0
    model_overrides: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    crop_size: int | None = None
    multi_label: bool = False
    n_classes: int | None = None
    class_names: list[str] | None = None
    refine: dict[str, Any] = field(default_factory=dict)
    slic: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    trained_on: dict[str, Any] = field(default_factory=dict)
    validation: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    epoch: int | None = None
    global_step: int | None = None
    metrics: dict[str, Any] | None = None

    def to_dict(self, progress: bool = True) -> dict[str, Any]:
        """The record as stored: the fields plus ``format`` and ``format_version``.

        ``progress`` False leaves out ``epoch``, ``global_step`` and ``metrics``, as in
        a Lightning checkpoint's ``checkpoint["unsupseg"]``, where Lightning's own
        ``epoch`` and ``global_step`` say where training stands.
        """
        record = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            **dataclasses.asdict(self),
        }
        if not progress:
            for name in PROGRESS_FIELDS:
                del record[name]
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointInfo:
        """The record of a stored dict; keys it does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Checkpoint:
    """A trained model with its record, as :func:`load_checkpoint` returns it.

    Attributes
    ----------
    model : nn.Module
        The network, its ``forward`` returning a :class:`~unsupseg.models.ModelOutput`.
    info : CheckpointInfo
    path : Path or None
        The file it was read from.
    """

    model: torch.nn.Module
    info: CheckpointInfo
    path: Path | None = None


def _epochs_done(data: dict[str, Any]) -> int | None:
    """Epochs whose training had ended when a Lightning checkpoint was written.

    Its own ``epoch`` is the running epoch from 0, which for a checkpoint written at an
    epoch's end is one less than the ``epoch`` of the plain checkpoint written with it;
    the fit loop's progress says it as they do (and counts only whole epochs for a
    checkpoint written within one).
    """
    try:
        return int(data["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"])
    except (KeyError, TypeError, ValueError):
        return data.get("epoch")


def _read(path: Path, map_location: torch.device) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record, state dict) of a plain or Lightning checkpoint file."""
    with open(path, "rb") as handle:
        head = handle.read(1)
    if not zipfile.is_zipfile(path) and head != b"\x80":  # neither torch.save format
        raise CheckpointError(
            f"{path}: not an unsupseg checkpoint (not a PyTorch file: neither a zip archive "
            "nor a pickle); pass the model-best.pt, model-last.pt or last.ckpt of a run"
        )
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: not an unsupseg checkpoint (a PyTorch file holding objects other than "
            "tensors and plain values, whose code weights_only=True loading does not run)"
        ) from None
    except Exception as exc:  # zip and torch errors alike mean "not ours"
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"{path}: not an unsupseg checkpoint (torch.load with weights_only=True failed: "
            f"{type(exc).__name__}: {first})"
        ) from None
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        record = {k: v for k, v in data.items() if k != "state_dict"}
        state = data.get("state_dict")
    elif (
        isinstance(data, dict)
        and isinstance(data.get("unsupseg"), dict)
        and data["unsupseg"].get("format") == CHECKPOINT_FORMAT
    ):
        record = dict(data["unsupseg"])
        if record.get("epoch") is None:
            record["epoch"] = _epochs_done(data)
        if record.get("global_step") is None:
            record["global_step"] = data.get("global_step")
        state = {
            k.removeprefix("model."): v
            for k, v in data.get("state_dict", {}).items()
            if k.startswith("model.")
        }
    else:
        raise CheckpointError(
            f"{path}: not an unsupseg checkpoint (no {CHECKPOINT_FORMAT!r} record); write one "
            "with 'unsupseg train'"
        )
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: unsupseg checkpoint without weights")
    if int(record.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {record.get('format_version')} is newer than this "
            f"unsupseg reads ({CHECKPOINT_VERSION}); upgrade unsupseg"
        )
    return record, state


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device | None = "cpu",
    *,
    preset: str | None = None,
    architecture: str | None = None,
    eval_mode: bool = True,
) -> Checkpoint:
    """Rebuild a trained model from a checkpoint, read with ``weights_only=True``.

    Parameters
    ----------
    path : path
        ``model-last.pt`` / ``model-best.pt``, or a Lightning ``last.ckpt`` /
        ``best.ckpt``, written by :func:`unsupseg.training.train`.
    device : str or torch.device, optional
        Where the model goes: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, or None /
        ``"auto"`` for CUDA when available.
    preset, architecture : str, optional
        Refuse a checkpoint of another preset or architecture.
    eval_mode : bool
        Return the model in eval mode (inference); False leaves it in train mode.

    Returns
    -------
    Checkpoint
        ``model``, ``info`` (:class:`CheckpointInfo`) and ``path``.

    Raises
    ------
    CheckpointError
        For a missing file, a file that is not an unsupseg checkpoint, one written by
        a newer unsupseg, or one of another preset or architecture than asked.

    Examples
    --------
    >>> checkpoint = load_checkpoint("runs/base-bsds500/checkpoints/model-best.pt")
    ... # doctest: +SKIP
    >>> checkpoint.info.preset, checkpoint.info.q  # doctest: +SKIP
    ('base-bsds500', 32)
    """
    path = Path(path)
    if path.is_dir():
        found = [p for p in (path / "checkpoints" / "model-best.pt", path / "model-best.pt")
                 if p.is_file()]  # fmt: skip
        hint = f": pass {found[0]}" if found else ": pass a checkpoint file"
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    resolved = resolve_device(device)
    record, state = _read(path, resolved)
    info = CheckpointInfo.from_dict(record)
    if preset is not None and info.preset != preset:
        raise CheckpointError(
            f"{path}: checkpoint of preset {info.preset!r} ({info.architecture}), "
            f"not the {preset!r} asked for"
        )
    if architecture is not None and info.architecture != architecture:
        raise CheckpointError(
            f"{path}: checkpoint of a {info.architecture!r} model (preset {info.preset!r}), "
            f"not the {architecture!r} architecture asked for"
        )
    try:
        # checkpoints that do not record their padding predate the setting: zeros
        overrides = {"padding": "zeros", **info.model_overrides}
        model = build_model(info.preset, init=False, backbone_weights=False, **overrides)
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: its weights do not fit preset {info.preset!r} with "
            f"{info.model_overrides} ({type(exc).__name__}: {exc})"
        ) from None
    model = model.to(resolved)
    return Checkpoint(model=model.eval() if eval_mode else model, info=info, path=path)
