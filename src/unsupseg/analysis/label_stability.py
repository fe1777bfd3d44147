"""How many labels survive training, per architecture and random seed.

The thesis' central claim is that the dataset-level networks keep more distinct labels
per image over training than the base network, whose argmax "merges" towards a few
labels. Every training run records that measure: the ``unique_labels`` column of
``metrics.csv`` (mean number of distinct argmax labels per image in an epoch, on the
``train`` and ``val`` splits). :func:`stability` reads the curves of several runs, groups
them by architecture (or by preset) and reports, for each group and epoch, the number of
runs that reached the epoch and the mean, standard deviation, minimum and maximum of the
measure over those runs. The standard deviation is the *sample* standard deviation
(``ddof=1``) when a group has at least two runs at that epoch, else 0.

Per run it also reports the labels at the first and the last epoch recorded and the
*retained fraction* last / first (1: no merging; near 0: the labels merged away).

The outputs, each file written atomically into one folder:

- ``stability.csv``: one row per group and epoch; columns group, epoch, n_runs, mean,
  std, min, max.
- ``stability.png``: one line per group (mean against epoch) in a band from the minimum
  to the maximum over its runs, with a thin line for each run (seed).
- ``stability.md``: a Markdown table, one row per group: runs (seeds), epochs, labels at
  the first and the last epoch (mean ± std over runs) and the retained fraction.
- ``summary.json``: ``{"kind": "stability", "title", "split", "runs": [{"run", "group",
  "preset", "seed", "epochs", "first", "last"}], "tables": [{"title", "columns",
  "rows"}], "figures": [{"title", "path"}]}`` with figure paths relative to the folder
  (read generically by the report).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from unsupseg.errors import ConfigError, RunFolderError
from unsupseg.io import atomic_file, write_json
from unsupseg.run_folder import RunFolder, read_run_folder
from unsupseg.viz import new_figure, save_figure

log = logging.getLogger("unsupseg")

__all__ = [
    "CSV_COLUMNS",
    "GROUP_BY",
    "SPLITS",
    "TABLE_COLUMNS",
    "RunCurve",
    "StabilityResult",
    "group_curves",
    "read_run_curve",
    "save_stability_figure",
    "stability",
    "stability_markdown",
    "summarise_stability",
    "summary_table",
    "write_stability",
]

#: Splits with per-epoch rows in ``metrics.csv``.
SPLITS = ("val", "train")
#: Ways of grouping runs.
GROUP_BY = ("architecture", "preset")
#: Columns of ``stability.csv``.
CSV_COLUMNS = ("group", "epoch", "n_runs", "mean", "std", "min", "max")
#: Columns of the per-group table (``stability.md``, ``summary.json``).
TABLE_COLUMNS = (
    "group",
    "runs (seeds)",
    "epochs",
    "labels at epoch 1",
    "labels at last epoch",
    "retained fraction",
)
#: Order of the architectures in tables and figures (as in the thesis).
ARCHITECTURE_ORDER = ("base", "classifier", "autoencoder")
#: The ``metrics.csv`` columns the analysis reads.
METRICS_NEEDED = ("epoch", "split", "unique_labels")
#: The files written into the output folder.
OUTPUT_FILES = ("stability.csv", "stability.png", "stability.md", "summary.json")


@dataclass
class RunCurve:
    """The merging curve of one training run.

    Attributes
    ----------
    run : str
        The run folder, as given.
    preset, architecture, dataset : str
        From ``config.json`` (the dataset trained on: ``settings.dataset``, else the
        preset's).
    seed : int or None
        ``settings.seed``.
    epochs : list of int
        1-based epochs with a row for the split, increasing.
    unique_labels : list of float
        Mean distinct argmax labels per image at each of ``epochs``.
    """

    run: str
    preset: str
    architecture: str
    dataset: str
    seed: int | None
    epochs: list[int] = field(default_factory=list)
    unique_labels: list[float] = field(default_factory=list)

    @property
    def first(self) -> float:
        """Labels at the first epoch recorded."""
        return self.unique_labels[0]

    @property
    def last(self) -> float:
        """Labels at the last epoch recorded."""
        return self.unique_labels[-1]

    @property
    def retained(self) -> float:
        """last / first: the fraction of the labels kept over training (nan if first is 0)."""
        return self.last / self.first if self.first > 0 else math.nan


@dataclass
class StabilityResult:
    """What :func:`stability` found (and wrote).

    Attributes
    ----------
    split : str
        The split whose epoch rows were read (the one chosen when ``split=None``).
    group_by : str
    curves : list of RunCurve
        One per run, in the order given.
    groups : list of dict
        The statistics per group (:func:`summarise_stability`).
    markdown : str
        The per-group table as Markdown (what the command prints).
    summary : dict
        The contents of ``summary.json``.
    out : Path or None
        The output folder; None when nothing was written.
    files : list of Path
        The files written (``stability.csv``, ``.png``, ``.md``, ``summary.json``).
    """

    split: str
    group_by: str
    curves: list[RunCurve]
    groups: list[dict[str, Any]]
    markdown: str
    summary: dict[str, Any]
    out: Path | None = None
    files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Reading runs


def _run_identity(folder: RunFolder) -> tuple[str, str, str, int | None]:
    """(preset, architecture, dataset, seed) from a run's config.json."""
    settings, preset = folder.settings, folder.config.get("preset")
    if not isinstance(preset, dict):
        raise RunFolderError(
            f"{folder.path}: config.json lacks the 'settings' and 'preset' of unsupseg train"
        )
    name = settings.get("preset") or preset.get("name")
    architecture = preset.get("architecture")
    dataset = settings.get("dataset") or preset.get("dataset")
    for key, value in (("preset", name), ("architecture", architecture), ("dataset", dataset)):
        if not isinstance(value, str) or not value:
            raise RunFolderError(f"{folder.path}: config.json names no {key}")
    seed = settings.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RunFolderError(
            f"{folder.path}: config.json has a seed that is not an integer: {seed!r}"
        )
    return name, architecture, dataset, seed


def _epoch_points(folder: RunFolder) -> dict[str, dict[int, float]]:
    """{split: {epoch: unique_labels}} of the per-epoch rows of a run's metrics.csv
    (``train_step`` rows and any other split are ignored)."""
    points: dict[str, dict[int, float]] = {split: {} for split in SPLITS}
    path = folder.path / "metrics.csv"
    # read_metrics does not keep line numbers; the rows follow the header line by line
    for line, row in enumerate(folder.metrics or [], start=2):
        split, epoch, value = row["split"], row["epoch"], row["unique_labels"]
        if split not in points:
            continue
        if epoch < 1:
            raise RunFolderError(f"{path}, line {line}: epoch {epoch} is not >= 1")
        if value is None or not math.isfinite(value) or value < 0:
            log.warning(
                "%s, line %d: no unique_labels for %s epoch %d; skipped", path, line, split, epoch
            )
            continue
        points[split][epoch] = value  # a repeated epoch: the later row wins
    return points


def _load_run(run_dir: str | os.PathLike) -> tuple[RunCurve, dict[str, dict[int, float]]]:
    """A run's identity (a curve without points) and its per-epoch points by split."""
    folder = read_run_folder(run_dir, require_metrics=True, columns=METRICS_NEEDED)
    preset, architecture, dataset, seed = _run_identity(folder)
    points = _epoch_points(folder)
    if not any(points.values()):
        raise RunFolderError(f"{folder.path}: metrics.csv has no epoch rows yet")
    return RunCurve(str(run_dir), preset, architecture, dataset, seed), points


def _with_split(identity: RunCurve, points: dict[str, dict[int, float]], split: str) -> RunCurve:
    rows = points[split]
    if not rows:
        other = "train" if split == "val" else "val"
        raise ConfigError(
            f"{identity.run}: metrics.csv has no '{split}' epoch rows "
            f"(it has {', '.join(s for s in SPLITS if points[s])}); use the {other} split"
        )
    epochs = sorted(rows)
    return RunCurve(
        identity.run,
        identity.preset,
        identity.architecture,
        identity.dataset,
        identity.seed,
        epochs,
        [rows[e] for e in epochs],
    )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")


def _check_group_by(group_by: str) -> None:
    if group_by not in GROUP_BY:
        raise ConfigError(f"group_by must be one of {', '.join(GROUP_BY)}; got {group_by!r}")


def read_run_curve(run_dir: str | os.PathLike, split: str = "val") -> RunCurve:
    """Read the merging curve of one training run folder.

    Parameters
    ----------
    run_dir : path
        A folder with the ``config.json`` and ``metrics.csv`` of a training run.
    split : {"val", "train"}
        Whose per-epoch rows to read (``train_step`` rows are always ignored).

    Returns
    -------
    RunCurve

    Raises
    ------
    RunFolderError
        The folder is not a run, or a file is unreadable or corrupt.
    ConfigError
        ``split`` is not one of :data:`SPLITS`, or the run has no epoch rows for it.
    """
    _check_split(split)
    identity, points = _load_run(run_dir)
    return _with_split(identity, points, split)


# --------------------------------------------------------------------------------------
# Statistics


def _group_key(curve: RunCurve, group_by: str) -> tuple[Any, ...]:
    """Sort key and identity of a run's group."""
    rank = (
        ARCHITECTURE_ORDER.index(curve.architecture)
        if curve.architecture in ARCHITECTURE_ORDER
        else len(ARCHITECTURE_ORDER)
    )
    if group_by == "architecture":
        return (rank, curve.architecture, curve.dataset)
    return (rank, curve.preset, curve.dataset)


def _group_label(curve: RunCurve, group_by: str, several_datasets: bool) -> str:
    if group_by == "architecture":
        return f"{curve.architecture} ({curve.dataset})" if several_datasets else curve.architecture
    if curve.preset.endswith(f"-{curve.dataset}"):
        return curve.preset
    return f"{curve.preset} ({curve.dataset})"


def group_curves(curves: Sequence[RunCurve], group_by: str) -> list[tuple[str, list[RunCurve]]]:
    """Runs grouped by architecture (and dataset) or by preset (and dataset), in order.

    Groups follow the thesis' order of architectures (base, classifier, autoencoder);
    runs within a group keep their given order. A group is labelled by its architecture
    (with the dataset in brackets when the runs span several data sets) or its preset.

    Raises
    ------
    ConfigError
        ``group_by`` is not one of :data:`GROUP_BY`.
    """
    _check_group_by(group_by)
    several = len({c.dataset for c in curves}) > 1
    groups: dict[tuple[Any, ...], tuple[str, list[RunCurve]]] = {}
    for curve in curves:
        key = _group_key(curve, group_by)
        groups.setdefault(key, (_group_label(curve, group_by, several), []))[1].append(curve)
    return [groups[key] for key in sorted(groups)]


def _stats(values: Sequence[float]) -> dict[str, float]:
    """n, mean, std (sample, ddof=1; 0 for one value), min and max of ``values``."""
    array = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if array.size == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": int(array.size),
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if array.size >= 2 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def summarise_stability(
    curves: Sequence[RunCurve], group_by: str = "architecture"
) -> list[dict[str, Any]]:
    """Statistics of the merging curves per group.

    Parameters
    ----------
    curves : sequence of RunCurve
        One per run (see :func:`read_run_curve`), all of the same split.
    group_by : {"architecture", "preset"}

    Returns
    -------
    list of dict
        One per group, in the order of :func:`group_curves`, with keys ``group`` (its
        label), ``runs`` (run folders), ``seeds``, ``epochs`` (one dict per epoch any run
        reached: ``epoch``, ``n_runs``, ``mean``, ``std``, ``min``, ``max`` of
        unique_labels over the runs that reached it) and ``first``, ``last``,
        ``retained`` (dicts of ``n``, ``mean``, ``std``, ``min``, ``max`` over the runs
        of each run's first-epoch labels, last-epoch labels and last / first). Every
        ``std`` is the sample standard deviation (``ddof=1``) when there are at least
        two values, else 0.

    Raises
    ------
    ConfigError
        ``group_by`` is not one of :data:`GROUP_BY`.
    """
    summary = []
    for label, members in group_curves(curves, group_by):
        by_epoch: dict[int, list[float]] = {}
        for curve in members:
            for epoch, value in zip(curve.epochs, curve.unique_labels, strict=True):
                by_epoch.setdefault(epoch, []).append(value)
        epochs = []
        for epoch in sorted(by_epoch):
            stats = _stats(by_epoch[epoch])
            epochs.append({"epoch": epoch, "n_runs": stats.pop("n"), **stats})
        summary.append(
            {
                "group": label,
                "runs": [c.run for c in members],
                "seeds": [c.seed for c in members],
                "epochs": epochs,
                "first": _stats([c.first for c in members]),
                "last": _stats([c.last for c in members]),
                "retained": _stats([c.retained for c in members]),
            }
        )
    return summary


def _warn_repeated_seeds(curves: Sequence[RunCurve], group_by: str) -> None:
    for label, members in group_curves(curves, group_by):
        seen: dict[int | None, str] = {}
        for curve in members:
            if curve.seed in seen:
                log.warning(
                    "%s and %s are both seed %s in group %s: counted as separate runs",
                    seen[curve.seed],
                    curve.run,
                    curve.seed,
                    label,
                )
            else:
                seen[curve.seed] = curve.run


# --------------------------------------------------------------------------------------
# Outputs


def _pm(stats: dict[str, float], digits: int = 2) -> str:
    if stats["n"] == 0:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _epoch_span(members: Sequence[RunCurve]) -> str:
    lasts = sorted({c.epochs[-1] for c in members})
    return str(lasts[0]) if len(lasts) == 1 else f"{lasts[0]}–{lasts[-1]}"


def summary_table(curves: Sequence[RunCurve], group_by: str) -> list[list[Any]]:
    """Rows of the per-group table (columns :data:`TABLE_COLUMNS`)."""
    rows = []
    groups = dict(group_curves(curves, group_by))
    for entry in summarise_stability(curves, group_by):
        members = groups[entry["group"]]
        seeds = ", ".join("?" if s is None else str(s) for s in entry["seeds"])
        rows.append(
            [
                entry["group"],
                f"{len(members)} ({seeds})",
                _epoch_span(members),
                _pm(entry["first"]),
                _pm(entry["last"]),
                _pm(entry["retained"], 3),
            ]
        )
    return rows


def stability_markdown(curves: Sequence[RunCurve], group_by: str, split: str) -> str:
    """The per-group table as Markdown (what ``stability.md`` holds and the command prints)."""
    rows = summary_table(curves, group_by)
    lines = [
        f"Unique argmax labels per image ({split} split), mean ± sample std over runs",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(TABLE_COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_stability_figure(
    path: str | os.PathLike,
    curves: Sequence[RunCurve],
    group_by: str = "architecture",
    split: str = "val",
) -> None:
    """Plot mean unique labels per image against epoch, one line per group.

    Each group's mean is drawn over a band from the minimum to the maximum of its runs,
    with a thin line for each run (seed).
    """
    summary = summarise_stability(curves, group_by)
    groups = dict(group_curves(curves, group_by))
    colours = matplotlib.colormaps["tab10"].colors
    fig, axes = new_figure(figsize=(7.5, 4.5))
    axis = axes[0, 0]
    for index, entry in enumerate(summary):
        colour = colours[index % len(colours)]
        for curve in groups[entry["group"]]:
            axis.plot(curve.epochs, curve.unique_labels, color=colour, lw=0.8, alpha=0.45)
        epochs = [row["epoch"] for row in entry["epochs"]]
        axis.fill_between(
            epochs,
            [row["min"] for row in entry["epochs"]],
            [row["max"] for row in entry["epochs"]],
            color=colour,
            alpha=0.15,
            lw=0,
        )
        n = len(entry["runs"])
        axis.plot(
            epochs,
            [row["mean"] for row in entry["epochs"]],
            color=colour,
            lw=2.2,
            marker="o" if len(epochs) <= 30 else None,
            ms=3.5,
            label=f"{entry['group']} (mean of {n} run{'s' if n != 1 else ''})",
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("mean unique argmax labels per image")
    axis.set_title(
        f"Merging: unique labels per image over training ({split} split)\n"
        "thick: mean over seeds; band: min–max; thin: each seed",
        fontsize=10,
    )
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    if summary:
        axis.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _csv_number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.6g}"


def _epoch_rows(groups: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per group and epoch: group, epoch, n_runs, mean, std, min, max."""
    return [
        [entry["group"], *(row[key] for key in CSV_COLUMNS[1:])]
        for entry in groups
        for row in entry["epochs"]
    ]


def _title(split: str) -> str:
    return f"Merging across seeds: unique argmax labels per image ({split} split)"


def _summary(
    curves: Sequence[RunCurve], group_by: str, split: str, groups: list[dict[str, Any]]
) -> dict[str, Any]:
    """The contents of ``summary.json`` (see the module docstring)."""
    labels = {c.run: label for label, members in group_curves(curves, group_by) for c in members}
    return {
        "kind": "stability",
        "title": _title(split),
        "split": split,
        "runs": [
            {
                "run": c.run,
                "group": labels[c.run],
                "preset": c.preset,
                "seed": c.seed,
                "epochs": len(c.epochs),
                "first": c.first,
                "last": c.last,
            }
            for c in curves
        ],
        "tables": [
            {
                "title": f"Unique labels per image, first and last epoch ({split} split; "
                "mean ± sample std over runs)",
                "columns": list(TABLE_COLUMNS),
                "rows": summary_table(curves, group_by),
            },
            {
                "title": f"Unique labels per image by epoch ({split} split)",
                "columns": list(CSV_COLUMNS),
                "rows": [
                    [*row[:3], *(round(v, 4) if math.isfinite(v) else "" for v in row[3:])]
                    for row in _epoch_rows(groups)
                ],
            },
        ],
        "figures": [
            {
                "title": f"Unique labels per image over training ({split} split), "
                "mean and min–max over seeds",
                "path": "stability.png",
            }
        ],
    }


def write_stability(
    out: str | os.PathLike,
    curves: Sequence[RunCurve],
    group_by: str = "architecture",
    split: str = "val",
) -> dict[str, Any]:
    """Write stability.csv, stability.png, stability.md and summary.json into ``out``.

    Returns
    -------
    dict
        The contents of ``summary.json`` (see the module docstring).

    Raises
    ------
    ConfigError
        No curves, or ``group_by`` is not one of :data:`GROUP_BY`.
    OSError
        When a file cannot be written.
    """
    if not curves:
        raise ConfigError("no runs to summarise")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = summarise_stability(curves, group_by)

    with atomic_file(out / "stability.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in _epoch_rows(groups):
            writer.writerow([*row[:3], *(_csv_number(v) for v in row[3:])])

    save_stability_figure(out / "stability.png", curves, group_by, split)
    with atomic_file(out / "stability.md", "w") as handle:
        handle.write(f"# {_title(split)}\n\n")
        handle.write(stability_markdown(curves, group_by, split))
        handle.write(
            "\nRetained fraction: labels at the last epoch / labels at the first epoch, per "
            "run. std: sample standard deviation over runs (ddof=1; 0 for a single run).\n"
            "\n![stability](stability.png)\n"
        )

    summary = _summary(curves, group_by, split, groups)
    write_json(out / "summary.json", summary)
    return summary


# --------------------------------------------------------------------------------------
# The entry point


def stability(
    runs: Sequence[str | os.PathLike],
    *,
    group_by: str = "architecture",
    split: str | None = "val",
    out: str | os.PathLike | None = None,
) -> StabilityResult:
    """How many distinct argmax labels per image survive training, per group of runs.

    Reads the ``unique_labels`` curve of each run's ``metrics.csv``, groups the runs by
    architecture or preset (and data set), and computes for each group and epoch the
    number of runs, the mean, the sample standard deviation, the minimum and the maximum
    over the runs; per run, the labels at the first and the last epoch and their ratio
    (the retained fraction). Every run folder is read and checked before anything is
    written.

    Parameters
    ----------
    runs : sequence of path
        Training run folders (each with ``config.json`` and ``metrics.csv``).
    group_by : {"architecture", "preset"}
        Group runs by architecture (base, classifier, autoencoder) or by preset.
    split : {"val", "train"} or None
        Whose per-epoch rows to use; None: ``val`` when every run has val rows, else
        ``train``.
    out : path, optional
        Folder for ``stability.csv``, ``stability.png``, ``stability.md`` and
        ``summary.json`` (created; the files in it replaced). None: write nothing.

    Returns
    -------
    StabilityResult
        The split used, the curves, the statistics per group, the Markdown table, the
        contents of ``summary.json`` and the files written.

    Raises
    ------
    RunFolderError
        A folder is not a training run, a file is unreadable or corrupt, or a run has
        no epoch rows yet.
    ConfigError
        No runs, an unknown ``group_by`` or ``split``, or a run without epoch rows for
        the requested split.
    OSError
        When the outputs cannot be written.

    Examples
    --------
    >>> from unsupseg.analysis import stability
    >>> result = stability(["runs/base-s0", "runs/base-s1", "runs/ae-s0"],
    ...                    out="runs/stability")  # doctest: +SKIP
    >>> print(result.markdown)  # doctest: +SKIP
    >>> [group["last"]["mean"] for group in result.groups]  # doctest: +SKIP
    """
    _check_group_by(group_by)
    if split is not None:
        _check_split(split)
    if not runs:
        raise ConfigError("no runs to summarise")
    loaded = [_load_run(run) for run in runs]
    if split is None:
        lacking = [identity.run for identity, points in loaded if not points["val"]]
        split = "train" if lacking else "val"
        if lacking:
            log.info("using the train split: no val rows in %s", ", ".join(lacking))
    curves = [_with_split(identity, points, split) for identity, points in loaded]
    _warn_repeated_seeds(curves, group_by)
    groups = summarise_stability(curves, group_by)
    result = StabilityResult(
        split=split,
        group_by=group_by,
        curves=curves,
        groups=groups,
        markdown=stability_markdown(curves, group_by, split),
        summary=_summary(curves, group_by, split, groups),
    )
    if out is not None:
        result.out = Path(out)
        result.summary = write_stability(result.out, curves, group_by, split)
        result.files = [result.out / name for name in OUTPUT_FILES]
    return result
