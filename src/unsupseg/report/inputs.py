"""Reading what a report shows: run folders, evaluation summaries, analysis folders and
a training benchmark. Each reader checks the file against what the command that wrote
it promises and raises :class:`~unsupseg.errors.RunFolderError` with one line otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unsupseg.errors import RunFolderError
from unsupseg.run_folder import RunFolder, read_json, read_run_folder

__all__ = [
    "ReportRun",
    "is_evaluation_summary",
    "load_analysis",
    "load_bench",
    "load_evaluation",
    "load_run",
]


@dataclass
class ReportRun(RunFolder):
    """A run folder as the report shows it.

    Attributes
    ----------
    name : str
        The folder's name, made unique among the report's runs.
    evaluations : list of Path
        Evaluation summaries found in the folder (``evaluation*.json``, ``eval/*.json``).
    """

    name: str = ""
    evaluations: list[Path] = field(default_factory=list)


def load_run(path: str | os.PathLike) -> ReportRun:
    """Read a training run folder (a missing ``metrics.csv`` is a run in progress).

    Raises
    ------
    RunFolderError
        When ``path`` is not a folder with a ``config.json``, or a file is corrupt.
    """
    folder = read_run_folder(path)
    evaluations = sorted(folder.path.glob("evaluation*.json"))
    evaluations += sorted(folder.path.glob("eval/*.json"))
    return ReportRun(
        path=folder.path,
        config=folder.config,
        metrics=folder.metrics,
        name=folder.path.resolve().name or str(folder.path),
        evaluations=evaluations,
    )


def is_evaluation_summary(data: Any) -> bool:
    """Whether ``data`` looks like the JSON of ``unsupseg evaluate --json``."""
    return isinstance(data, dict) and "n_images" in data and isinstance(data.get("settings"), dict)


def load_evaluation(path: str | os.PathLike) -> dict[str, Any]:
    """An evaluation summary (``unsupseg evaluate --json``).

    Raises
    ------
    RunFolderError
        When the file is missing, corrupt or not such a summary.
    """
    data = read_json(path, "the evaluation summary")
    if not is_evaluation_summary(data):
        raise RunFolderError(
            f"{path}: not an evaluation summary of unsupseg evaluate --json "
            "(no 'n_images' and 'settings')"
        )
    return data


def load_analysis(folder: str | os.PathLike) -> dict[str, Any]:
    """``folder/summary.json`` of an analysis (stability, post-processing), checked
    against its contract: ``{"kind", "title", "tables": [{"title", "columns", "rows"}],
    "figures": [{"title", "path"}]}`` with figure paths relative to ``folder``.

    Raises
    ------
    RunFolderError
        When the folder or its ``summary.json`` is missing, or the JSON breaks the contract.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such analysis folder")
    path = folder / "summary.json"
    if not path.is_file():
        raise RunFolderError(f"{folder}: analysis folder without summary.json")
    data = read_json(path, "the analysis summary")
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not an analysis summary (expected a JSON object)")
    tables = data.get("tables", [])
    figures = data.get("figures", [])
    if not isinstance(tables, list) or not isinstance(figures, list):
        raise RunFolderError(f"{path}: 'tables' and 'figures' must be lists")
    for number, table in enumerate(tables, 1):
        if (
            not isinstance(table, dict)
            or not isinstance(table.get("columns"), list)
            or not isinstance(table.get("rows"), list)
            or not all(isinstance(row, list) for row in table["rows"])
        ):
            raise RunFolderError(f"{path}: table {number} needs 'columns' and 'rows' lists")
    for number, figure in enumerate(figures, 1):
        if not isinstance(figure, dict) or not isinstance(figure.get("path"), str):
            raise RunFolderError(f"{path}: figure {number} needs a 'path'")
    return data


def load_bench(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON of ``unsupseg bench train --json``.

    Raises
    ------
    RunFolderError
        When the file is missing, corrupt or not such a benchmark.
    """
    data = read_json(path, "the training benchmark")
    rows = data.get("rows") if isinstance(data, dict) else None
    if (
        not isinstance(rows, list)
        or data.get("benchmark", "train") != "train"
        or not all(isinstance(r, dict) and "preset" in r and "images_per_second" in r for r in rows)
    ):
        raise RunFolderError(
            f"{path}: not a training benchmark of unsupseg bench train --json "
            "(expected 'rows' with 'preset' and 'images_per_second')"
        )
    return data
