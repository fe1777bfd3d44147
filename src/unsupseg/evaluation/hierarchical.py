"""The Berkeley protocol for hierarchies (Arbelaez et al., TPAMI 2011) on BSDS500.

A hierarchical source gives each image a stack of segmentations at a fixed grid of
levels: the cuts of :func:`unsupseg.ucm.hierarchy` at
:data:`unsupseg.ucm.THRESHOLDS` (``hierarchy``), or Felzenszwalb at the scales
100 ... 2000 (``felzenszwalb-stack``, the protocol's reference on val). Every level of
every image is scored (one row of ``levels.csv`` each), and then, per measure:

- **ODS**: the best single level for the whole split;
- **OIS**: the best level of each image;
- **chosen**: the level chosen once on val and stored with the method
  (:data:`unsupseg.ucm.DATASET_THRESHOLD`, :data:`FELZENSZWALB_DATASET_SCALE`);
- **auto** (hierarchy): the level each criterion of :mod:`unsupseg.ucm.levels`
  picks per image, with no ground truth.

Aggregation is that of section 5 of the spec: covering pooled over ground-truth regions,
mIoU pooled over ground-truth segments, PRI and VI averaged over images. Boundaries are
matched one to one (:func:`unsupseg.metrics.boundary_pr_curve_terms`); ODS, OIS and AP
follow the BSDS benchmark (:func:`unsupseg.metrics.boundary_ods_ois_ap`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from unsupseg import metrics
from unsupseg.baselines import felzenszwalb_baseline
from unsupseg.checks import check_limit_and_workers
from unsupseg.data.base import ImageDataset
from unsupseg.errors import ConfigError
from unsupseg.evaluation.dataset import (
    SETTINGS_NAME,
    Evaluation,
    check_settings,
    open_scored_dataset,
)
from unsupseg.evaluation.rows import appending_rows, parse_cell, read_rows, write_rows
from unsupseg.evaluation.scoring import (
    BOUNDARY_COUNT_COLUMNS,
    BSDS_REGION_COLUMNS,
    score_bsds_regions,
    scoring_kind,
)
from unsupseg.io import as_rgb_float, write_json
from unsupseg.ucm import DATASET_THRESHOLD, THRESHOLDS, hierarchy
from unsupseg.ucm.levels import CRITERIA, level_criteria

__all__ = [
    "FELZENSZWALB_DATASET_SCALE",
    "FELZENSZWALB_SCALES",
    "HIERARCHICAL_METHODS",
    "LEVELS_CSV",
    "LEVEL_COLUMNS",
    "HierarchyEvaluation",
    "evaluate_hierarchy",
    "method_levels",
    "score_levels",
    "summarise_levels",
]

HIERARCHICAL_METHODS = ("hierarchy", "felzenszwalb-stack")

#: The Felzenszwalb stack of the protocol's self-check (sigma 0.8, min size 50).
FELZENSZWALB_SCALES: tuple[int, ...] = (100, 200, 300, 500, 700, 1000, 1500, 2000)

#: The Felzenszwalb scale of the best covering (ODS) on BSDS500 val (spec section 8).
FELZENSZWALB_DATASET_SCALE = 700

LEVELS_CSV = "levels.csv"

_BOUNDARY_KEYS = ("matched_pred", "total_pred", "matched_gt", "total_gt")

LEVEL_COLUMNS = [
    "id",
    "level",
    "threshold",
    *BSDS_REGION_COLUMNS,
    *BOUNDARY_COUNT_COLUMNS,
    *CRITERIA,
    "seconds",
    "error",
]

#: The region measures: (name, kind). ``pooled`` measures are a sum of terms over a sum
#: of counts; ``mean`` ones a mean over images; ``lower`` marks VI, where lower is better.
MEASURES: tuple[tuple[str, str], ...] = (
    ("miou_all", "pooled"),
    ("miou_fine", "pooled"),
    ("miou_coarse", "pooled"),
    ("covering", "pooled"),
    ("pri", "mean"),
    ("vi", "lower"),
)
_TERMS = {
    "miou_all": ("miou_all_sum", "miou_all_n"),
    "miou_fine": ("miou_fine_sum", "miou_fine_n"),
    "miou_coarse": ("miou_coarse_sum", "miou_coarse_n"),
    "covering": ("covering_sum", "covering_area"),
}


@dataclass
class Levels:
    """One image's stack: the level values, the cuts, their boundary maps and the
    no-ground-truth criteria of each level."""

    thresholds: np.ndarray
    stack: np.ndarray
    boundaries: np.ndarray
    criteria: dict[str, np.ndarray]


def method_levels(method: str, image: np.ndarray, criteria: Sequence[str] = CRITERIA) -> Levels:
    """The levels of one image for a hierarchical method.

    Parameters
    ----------
    method : {'hierarchy', 'felzenszwalb-stack'}
    image : ndarray, shape (H, W, 3)
        RGB, uint8 or float in [0, 1].
    criteria : sequence of str
        The criteria of :func:`unsupseg.ucm.levels.level_criteria` to compute.

    Returns
    -------
    Levels
        ``thresholds`` (the grid, or the Felzenszwalb scales), ``stack`` (T, H, W),
        ``boundaries`` (T, H, W) bool, ``criteria``.
    """
    rgb = as_rgb_float(np.asarray(image))
    if method == "hierarchy":
        tree = hierarchy(rgb)
        thresholds = np.asarray(THRESHOLDS)
        stack = tree.stack(thresholds)
        boundaries = tree.ucm[None] > thresholds[:, None, None]
    elif method == "felzenszwalb-stack":
        tree = None
        thresholds = np.asarray(FELZENSZWALB_SCALES, dtype=np.float64)
        stack = np.stack([felzenszwalb_baseline(image, scale=s) for s in FELZENSZWALB_SCALES])
        boundaries = np.stack([metrics.label_boundaries(level) for level in stack])
    else:
        raise ConfigError(
            f"unknown hierarchical method {method!r}; choose from {', '.join(HIERARCHICAL_METHODS)}"
        )
    found = level_criteria(rgb, stack, thresholds, tree, criteria) if criteria else {}
    return Levels(thresholds, stack, boundaries, found)


def score_levels(levels: Levels, annotators: list[np.ndarray]) -> list[dict[str, Any]]:
    """The rows of one image's levels (without ``id``, ``seconds`` and ``error``)."""
    curve = metrics.boundary_pr_curve_terms(levels.boundaries, annotators)
    rows = []
    for i, level in enumerate(levels.stack):
        row: dict[str, Any] = {"level": i, "threshold": float(levels.thresholds[i])}
        row.update(score_bsds_regions(level.astype(np.int64), annotators))
        for key in _BOUNDARY_KEYS:
            row[f"boundary_{key}"] = int(curve[key][i])
        for name in CRITERIA:
            values = levels.criteria.get(name)
            row[name] = float(values[i]) if values is not None else math.nan
        rows.append(row)
    return rows


def _image_rows(method: str, dataset: ImageDataset, index: int) -> list[dict[str, Any]]:
    """Every level row of one image, or one row with its error (run in a worker)."""
    started = time.perf_counter()
    image_id = dataset.image_id(index)
    try:
        annotators = dataset.ground_truth(index)
        levels = method_levels(method, dataset.image(index))
        rows = score_levels(levels, annotators)
    except Exception as exc:  # reported per image
        return [{"id": image_id, "level": -1, "error": f"{type(exc).__name__}: {exc}"}]
    seconds = time.perf_counter() - started
    for row in rows:
        row["id"], row["seconds"] = image_id, seconds
    return rows


def _value(measure: str, rows: Sequence[dict[str, Any]]) -> float:
    """A region measure of a list of rows (one per image, each at its own level)."""
    if not rows:
        return math.nan
    if measure in _TERMS:
        num, den = _TERMS[measure]
        total = sum(float(r[den]) for r in rows)
        return sum(float(r[num]) for r in rows) / total if total else math.nan
    return float(np.mean([float(r[measure]) for r in rows]))


def _per_image(measure: str, row: dict[str, Any]) -> float:
    """An image's own value of a measure, oriented so that higher is better."""
    if measure in _TERMS:
        num, den = _TERMS[measure]
        return float(row[num]) / float(row[den]) if float(row[den]) else -math.inf
    value = float(row[measure])
    return -value if measure == "vi" else value


def _at(table: list[list[dict[str, Any]]], picks: Sequence[int]) -> dict[str, Any]:
    """Every measure with each image at its picked level."""
    chosen = [levels[i] for levels, i in zip(table, picks, strict=True)]
    out: dict[str, Any] = {name: _value(name, chosen) for name, _ in MEASURES}
    counts = {key: sum(int(r[f"boundary_{key}"]) for r in chosen) for key in _BOUNDARY_KEYS}
    out["boundary_f"] = metrics.boundary_f(counts)["f"] if chosen else math.nan
    out["mean_segments"] = float(np.mean([float(r["n_segments"]) for r in chosen]))
    return out


def summarise_levels(
    rows: Sequence[dict[str, Any]], chosen_threshold: float | None = None
) -> dict[str, Any]:
    """The protocol's figures from ``levels.csv`` rows (rows with an error are skipped).

    Parameters
    ----------
    rows : sequence of dict
        Level rows (text cells or parsed), every image with the same levels.
    chosen_threshold : float, optional
        The level value chosen once (on val); the nearest level of the grid is used.

    Returns
    -------
    summary : dict
        ``n_images``, ``thresholds``; ``ods``: per measure ``{value, threshold}``;
        ``ois``: per measure its value; ``chosen``: ``{threshold, <measures>,
        boundary_f, mean_segments}``; ``auto``: the same per criterion (where every
        image has the criterion); ``boundary``: ``ods_f, ods_precision, ods_recall,
        ods_threshold, ois_f, ois_precision, ois_recall, ap``; ``seconds_per_image``.
    """
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("error"):
            continue
        by_id.setdefault(str(row["id"]), []).append(row)
    table = [sorted(levels, key=lambda r: int(r["level"])) for levels in by_id.values()]
    if not table:
        return {"n_images": 0}
    n_levels = len(table[0])
    if any(len(levels) != n_levels for levels in table):
        raise ConfigError("the images of levels.csv do not all have the same levels")
    thresholds = [float(r["threshold"]) for r in table[0]]
    summary: dict[str, Any] = {"n_images": len(table), "thresholds": thresholds}
    ods: dict[str, Any] = {}
    ois: dict[str, Any] = {}
    for name, kind in MEASURES:
        values = np.array([_value(name, [levels[i] for levels in table]) for i in range(n_levels)])
        best = int(np.nanargmin(values) if kind == "lower" else np.nanargmax(values))
        ods[name] = {"value": float(values[best]), "threshold": thresholds[best]}
        picks = [int(np.argmax([_per_image(name, r) for r in levels])) for levels in table]
        ois[name] = _value(name, [levels[i] for levels, i in zip(table, picks, strict=True)])
    summary["ods"], summary["ois"] = ods, ois
    if chosen_threshold is not None:
        index = int(np.argmin(np.abs(np.asarray(thresholds) - chosen_threshold)))
        summary["chosen"] = {"threshold": thresholds[index], **_at(table, [index] * len(table))}
    auto: dict[str, Any] = {}
    for name in CRITERIA:
        scores = [np.array([float(r[name]) for r in levels]) for levels in table]
        if not all(np.isfinite(s).any() for s in scores):
            continue
        picks = [int(np.nanargmax(s)) for s in scores]
        auto[name] = _at(table, picks)
    summary["auto"] = auto
    curves = [
        {key: np.array([int(r[f"boundary_{key}"]) for r in levels]) for key in _BOUNDARY_KEYS}
        for levels in table
    ]
    boundary = metrics.boundary_ods_ois_ap(curves)
    if "ods_index" in boundary:
        boundary["ods_threshold"] = thresholds[int(boundary.pop("ods_index"))]
    summary["boundary"] = boundary
    summary["seconds_per_image"] = float(np.mean([float(levels[0]["seconds"]) for levels in table]))
    return summary


@dataclass
class HierarchyEvaluation(Evaluation):
    """What :func:`evaluate_hierarchy` found: as :class:`Evaluation`, with the level rows
    of ``levels.csv`` as ``rows`` and :func:`summarise_levels` as ``summary``."""

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """The header and rows of the printed table: ODS, OIS, chosen, auto levels."""
        header = ["level", "mIoU all", "covering", "PRI", "VI", "boundary F", "segments"]
        s = self.summary
        rows: list[list[Any]] = []
        if not s.get("n_images"):
            return header, rows
        ods, ois, boundary = s["ods"], s["ois"], s["boundary"]
        rows.append(
            [
                "ODS",
                *(ods[m]["value"] for m in ("miou_all", "covering", "pri", "vi")),
                boundary.get("ods_f"),
                "",
            ]
        )
        rows.append(
            [
                "OIS",
                *(ois[m] for m in ("miou_all", "covering", "pri", "vi")),
                boundary.get("ois_f"),
                "",
            ]
        )
        if "chosen" in s:
            c = s["chosen"]
            rows.append(
                [
                    f"chosen ({c['threshold']:g})",
                    *(c[m] for m in ("miou_all", "covering", "pri", "vi")),
                    c["boundary_f"],
                    c["mean_segments"],
                ]
            )
        for name, a in s.get("auto", {}).items():
            rows.append(
                [
                    f"auto: {name}",
                    *(a[m] for m in ("miou_all", "covering", "pri", "vi")),
                    a["boundary_f"],
                    a["mean_segments"],
                ]
            )
        return header, rows

    def to_json(self) -> dict[str, Any]:
        """The summary (None for NaN), ``failed``, ``settings`` and ``levels_csv``."""

        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, (float, np.floating)):
                return None if not math.isfinite(float(value)) else float(value)
            if isinstance(value, np.integer):
                return int(value)
            return value

        return {
            **clean(self.summary),
            "failed": [{"id": i, "error": e} for i, e in self.failures],
            "settings": self.settings,
            "levels_csv": str(self.csv_path.resolve()),
        }


def _stream(
    method: str, dataset: ImageDataset, todo: list[int], workers: int
) -> Iterator[list[dict[str, Any]]]:
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_image_rows, method, dataset, i) for i in todo]
            for future in futures:
                yield future.result()
    else:
        for index in todo:
            yield _image_rows(method, dataset, index)


def evaluate_hierarchy(
    dataset: str = "bsds500",
    *,
    method: str = "hierarchy",
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    limit: int | None = None,
    workers: int = 1,
    out: str | os.PathLike | None = None,
    progress: bool = False,
) -> HierarchyEvaluation:
    """Score a hierarchical method on BSDS500 by the Berkeley protocol (ODS / OIS).

    Each image's level rows are appended to ``out/levels.csv`` as soon as it is scored;
    a later call with the same ``out`` skips the images already there.

    Parameters
    ----------
    dataset : {'bsds500'}
        Only BSDS500 has the region and boundary ground truth of this protocol.
    method : {'hierarchy', 'felzenszwalb-stack'}
    split : str, optional
        Default ``val``.
    data_root : path, optional
        BSDS500's folder (default: ``$UNSUPSEG_DATA/bsds500`` or ``../shared/data``).
    limit : int, optional
        Score only the first ``limit`` images.
    workers : int
        Processes, one image each at a time.
    out : path, optional
        Default ``runs/evaluate/bsds500-<split>-<method>``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    HierarchyEvaluation

    Raises
    ------
    ConfigError
        For another data set or method, invalid ``limit``/``workers``, or an ``out``
        holding an evaluation with other settings.
    DatasetError
        When the data set is missing or incomplete.

    Examples
    --------
    >>> result = evaluate_hierarchy(method="felzenszwalb-stack", limit=2,
    ...                             out="/tmp/fz-stack")  # doctest: +SKIP
    >>> sorted(result.summary["ods"])  # doctest: +SKIP
    ['covering', 'miou_all', 'miou_coarse', 'miou_fine', 'pri', 'vi']
    """
    if method not in HIERARCHICAL_METHODS:
        raise ConfigError(
            f"unknown hierarchical method {method!r}; choose from {', '.join(HIERARCHICAL_METHODS)}"
        )
    if dataset != "bsds500":
        raise ConfigError(
            f"the hierarchy protocol needs BSDS500's region and boundary ground truth; "
            f"got --dataset {dataset}"
        )
    check_limit_and_workers(limit, workers)
    data, root, split = open_scored_dataset(dataset, split, data_root)
    if scoring_kind(data) != "bsds":
        raise ConfigError("the hierarchy protocol needs BSDS500 ground truth")
    out = (
        Path(out) if out is not None else Path("runs") / "evaluate" / f"{dataset}-{split}-{method}"
    )
    csv_path = out / LEVELS_CSV
    chosen = DATASET_THRESHOLD if method == "hierarchy" else float(FELZENSZWALB_DATASET_SCALE)
    settings: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "data_root": str(root.resolve()),
        "method": method,
        "levels": list(THRESHOLDS) if method == "hierarchy" else list(FELZENSZWALB_SCALES),
    }
    check_settings(out, settings)
    n_levels = len(settings["levels"])
    rows = read_rows(csv_path, LEVEL_COLUMNS)
    complete: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row.get("error") or any(row.get(k) is None for k in LEVEL_COLUMNS if k != "error"):
            continue
        complete.setdefault(row["id"], []).append(row)
    kept = {i: levels for i, levels in complete.items() if len(levels) == n_levels}
    flat = [row for levels in kept.values() for row in levels]
    if len(flat) != len(rows):
        write_rows(csv_path, LEVEL_COLUMNS, flat)
    write_json(out / SETTINGS_NAME, settings)

    n = len(data) if limit is None else min(limit, len(data))
    todo = [i for i in range(n) if data.image_id(i) not in kept]
    failures: list[tuple[str, str]] = []
    with appending_rows(csv_path, LEVEL_COLUMNS) as append:
        for image_rows in tqdm(
            _stream(method, data, todo, workers),
            total=len(todo),
            desc=f"evaluate {method} {split}",
            unit="img",
            disable=not progress,
        ):
            if image_rows[0].get("error"):
                failures.append((image_rows[0]["id"], image_rows[0]["error"]))
                continue
            append(image_rows)

    wanted = {data.image_id(i) for i in range(n)}
    scored = [row for row in read_rows(csv_path, LEVEL_COLUMNS) if row["id"] in wanted]
    parsed = [{k: parse_cell(k, v) for k, v in row.items()} for row in scored]
    summary = summarise_levels(parsed, chosen)
    summary["n_failed"] = len(failures)
    return HierarchyEvaluation(
        summary=summary,
        rows=parsed,
        csv_path=csv_path,
        failures=failures,
        settings=settings,
        source=method,
    )
