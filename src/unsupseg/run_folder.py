"""The run folder of ``unsupseg train``: its file names, and one reader and writer.

A run folder holds ``config.json`` (every resolved setting), ``metrics.csv`` (one row
per epoch and split, and ``train_step`` rows), ``checkpoints/`` and ``figures/``.
Training writes it; resuming, the stability analysis and the report read it back, all
through :func:`read_run_folder` and :func:`read_metrics`. This module needs neither torch
nor Lightning, so the readers stay quick to import.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unsupseg.errors import RunFolderError
from unsupseg.io import atomic_file

__all__ = [
    "CONFIG_NAME",
    "METRICS_COLUMNS",
    "METRICS_NAME",
    "RunFolder",
    "read_json",
    "read_metrics",
    "read_run_folder",
    "write_metrics",
]

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"
#: Columns of ``metrics.csv``: epoch (1-based), step (optimiser steps so far), split
#: (``train``, ``val`` or ``train_step``), the loss terms, the mean number of distinct
#: argmax labels per image, the learning rate and the training seconds so far.
METRICS_COLUMNS = (
    "epoch",
    "step",
    "split",
    "loss",
    "loss_seg",
    "loss_aux",
    "unique_labels",
    "lr",
    "seconds",
)
#: Columns holding numbers (empty cells read as None).
VALUE_COLUMNS = METRICS_COLUMNS[3:]


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON in ``path``; ``what`` names the file in the error message.

    Raises
    ------
    RunFolderError
        When the file is missing, unreadable or not valid JSON.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read {what} ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: {what} is not valid JSON ({exc})") from None


def read_metrics(
    path: str | os.PathLike, columns: tuple[str, ...] = METRICS_COLUMNS
) -> list[dict[str, Any]]:
    """The rows of a ``metrics.csv``: ints for epoch and step, the split as text, floats
    for the other columns (None where a cell is empty).

    Parameters
    ----------
    path : path
        The CSV file.
    columns : tuple of str
        The columns the caller needs; ``epoch``, ``step`` (when asked for) and ``split``
        are always read. Other columns of the file are ignored.

    Returns
    -------
    list of dict
        One dict per row, keyed by ``columns``.

    Raises
    ------
    RunFolderError
        When a needed column is missing, a row has the wrong length or a value is not a
        number; the message names the file and the line.
    """
    path = Path(path)
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise RunFolderError(
                    f"{path}: not a metrics.csv of unsupseg train (no column "
                    f"{', '.join(missing)})"
                )
            for raw in reader:
                line = reader.line_num
                if None in raw or any(raw[c] is None for c in columns):
                    raise RunFolderError(f"{path}, line {line}: a row of the wrong length")
                row: dict[str, Any] = {}
                for key in columns:
                    text = raw[key].strip()
                    try:
                        if key in ("epoch", "step"):
                            row[key] = int(text)
                        elif key == "split":
                            row[key] = text
                        else:
                            row[key] = float(text) if text else None
                    except ValueError:
                        raise RunFolderError(
                            f"{path}, line {line}: {key} {text!r} is not a number"
                        ) from None
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunFolderError(f"{path}: cannot read the CSV ({exc})") from None
    return rows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def write_metrics(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write ``metrics.csv`` atomically: floats with 6 significant digits, None and NaN
    as empty cells."""
    with atomic_file(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(METRICS_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[key]) for key in METRICS_COLUMNS])


@dataclass
class RunFolder:
    """A training run folder, read.

    Attributes
    ----------
    path : Path
        The folder (``--out`` of ``unsupseg train``).
    config : dict
        ``config.json``: ``settings`` (every resolved setting), ``preset``,
        ``validation``, ``parameters``, ``versions``...
    metrics : list of dict or None
        The rows of ``metrics.csv`` (:func:`read_metrics`); None when there is none yet.
    """

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]] | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved training settings recorded in ``config.json``."""
        return self.config.get("settings") or {}

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: ``last.ckpt``, ``best.ckpt``, ``model-last.pt``,
        ``model-best.pt``."""
        return self.path / "checkpoints"

    @property
    def figures(self) -> Path:
        """``figures/``: panels, loss curves, the merging strip and snapshots."""
        return self.path / "figures"

    def epochs(self) -> list[dict[str, Any]]:
        """One entry per epoch with a ``train`` row: ``epoch``, ``train``, ``val`` (the
        rows, when present) and ``seconds`` (the latest time recorded for the epoch)."""
        by_epoch: dict[int, dict[str, Any]] = {}
        for row in self.metrics or []:
            entry = by_epoch.setdefault(row["epoch"], {"epoch": row["epoch"], "seconds": None})
            if row["split"] in ("train", "val"):
                entry[row["split"]] = row
            if row.get("seconds") is not None:
                entry["seconds"] = max(entry["seconds"] or 0.0, row["seconds"])
        return [by_epoch[e] for e in sorted(by_epoch) if "train" in by_epoch[e]]


def read_run_folder(
    path: str | os.PathLike,
    *,
    require_metrics: bool = False,
    columns: tuple[str, ...] = METRICS_COLUMNS,
) -> RunFolder:
    """Read a run folder written by ``unsupseg train``.

    Parameters
    ----------
    path : path
        The run folder.
    require_metrics : bool
        Refuse a folder without ``metrics.csv`` (a run that has not finished an epoch).
    columns : tuple of str
        The ``metrics.csv`` columns needed (see :func:`read_metrics`).

    Returns
    -------
    RunFolder

    Raises
    ------
    RunFolderError
        When ``path`` is not a folder with a ``config.json`` holding ``settings``, or a
        file is corrupt.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"{path}: no such run folder")
    config_path = path / CONFIG_NAME
    metrics_path = path / METRICS_NAME
    missing = [p.name for p in (config_path, metrics_path) if not p.is_file()]
    if config_path.name in missing or (require_metrics and missing):
        raise RunFolderError(
            f"{path}: not a run folder of unsupseg train (no {' or '.join(missing)}; "
            "expected the --out of unsupseg train)"
        )
    config = read_json(config_path, "the run configuration")
    if not isinstance(config, dict) or not isinstance(config.get("settings"), dict):
        raise RunFolderError(
            f"{config_path}: not a run configuration of unsupseg train (no 'settings' object)"
        )
    metrics = read_metrics(metrics_path, columns) if metrics_path.is_file() else None
    return RunFolder(path=path, config=config, metrics=metrics)
