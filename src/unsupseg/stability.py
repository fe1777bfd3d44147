"""``unsupseg stability``: how many labels survive training, per architecture and seed.

The seed thesis's central claim is that the dataset-level networks keep more distinct
labels per image over training than the base network, whose argmax "merges" towards a
few labels. Every ``unsupseg train`` run records that measure: the ``unique_labels``
column of ``metrics.csv`` (mean number of distinct argmax labels per image in an epoch,
on the ``train`` and ``val`` splits). This command reads the curves of several runs,
groups them by architecture (or by preset) and reports, for each group and epoch, the
number of runs that reached the epoch and the mean, standard deviation, minimum and
maximum of the measure over those runs. The standard deviation is the *sample* standard
deviation (``ddof=1``) when a group has at least two runs at that epoch, else 0.

Per run it also reports the labels at the first and the last epoch recorded and the
*retained fraction* last / first (1: no merging; near 0: the labels merged away).

Everything lands in ``--out`` (default ``runs/stability``), each file written
atomically:

- ``stability.csv``: one row per group and epoch; columns group, epoch, n_runs, mean,
  std, min, max.
- ``stability.png``: one line per group (mean against epoch) in a band from the minimum
  to the maximum over its runs, with a thin line for each run (seed).
- ``stability.md``: a Markdown table, one row per group: runs (seeds), epochs, labels at
  the first and the last epoch (mean ± std over runs) and the retained fraction.
- ``summary.json``: ``{"kind": "stability", "title", "split", "runs": [{"run", "group",
  "preset", "seed", "epochs", "first", "last"}], "tables": [{"title", "columns",
  "rows"}], "figures": [{"title", "path"}]}`` with figure paths relative to ``--out``
  (read generically by ``unsupseg report``).

Examples
--------
.. code-block:: console

    $ unsupseg stability runs/base-s0 runs/base-s1 runs/ae-s0 runs/ae-s1
    $ unsupseg stability runs/*-bsds500-s* --split train --group-by preset --out runs/stab
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unsupseg.io import atomic_file, write_json

log = logging.getLogger("unsupseg")

__all__ = [
    "GROUP_BY",
    "SPLITS",
    "RunCurve",
    "StabilityError",
    "add_stability_parser",
    "group_curves",
    "read_run_curve",
    "run_stability",
    "save_stability_figure",
    "stability_markdown",
    "summarise_stability",
    "summary_table",
    "write_stability",
]

#: Splits with per-epoch rows in ``metrics.csv``.
SPLITS = ("val", "train")
#: Ways of grouping runs (``--group-by``).
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
#: Order of the architectures in tables and figures (as in the seed).
_ARCHITECTURES = ("base", "classifier", "autoencoder")
_REQUIRED_COLUMNS = ("epoch", "split", "unique_labels")


class StabilityError(ValueError):
    """Bad usage of ``unsupseg stability`` (the command exits with status 2)."""


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


# --------------------------------------------------------------------------------------
# Reading runs


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise StabilityError(f"{run_dir}: cannot read config.json ({exc})") from None
    except json.JSONDecodeError as exc:
        raise StabilityError(f"{run_dir}: config.json is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise StabilityError(f"{run_dir}: config.json does not hold a JSON object")
    return config


def _run_identity(run_dir: Path, config: dict[str, Any]) -> tuple[str, str, str, int | None]:
    """(preset, architecture, dataset, seed) from a run's config.json."""
    settings, preset = config.get("settings"), config.get("preset")
    if not isinstance(settings, dict) or not isinstance(preset, dict):
        raise StabilityError(
            f"{run_dir}: config.json lacks the 'settings' and 'preset' of unsupseg train"
        )
    name = settings.get("preset") or preset.get("name")
    architecture = preset.get("architecture")
    dataset = settings.get("dataset") or preset.get("dataset")
    for key, value in (("preset", name), ("architecture", architecture), ("dataset", dataset)):
        if not isinstance(value, str) or not value:
            raise StabilityError(f"{run_dir}: config.json names no {key}")
    seed = settings.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise StabilityError(f"{run_dir}: config.json has a seed that is not an integer: {seed!r}")
    return name, architecture, dataset, seed


def _read_epoch_rows(run_dir: Path) -> dict[str, dict[int, float]]:
    """{split: {epoch: unique_labels}} of the per-epoch rows of a run's metrics.csv."""
    path = run_dir / "metrics.csv"
    curves: dict[str, dict[int, float]] = {split: {} for split in SPLITS}
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise StabilityError(
                    f"{path}: not a metrics.csv of unsupseg train (no column {', '.join(missing)})"
                )
            for line, row in enumerate(reader, start=2):
                split = row.get("split")
                if split not in curves:
                    continue  # train_step rows and anything else
                try:
                    epoch = int(row["epoch"])
                    text = row["unique_labels"]
                    value = float(text) if text not in (None, "") else math.nan
                except (TypeError, ValueError):
                    raise StabilityError(
                        f"{path}, line {line}: cannot read epoch {row.get('epoch')!r} / "
                        f"unique_labels {row.get('unique_labels')!r}"
                    ) from None
                if epoch < 1:
                    raise StabilityError(f"{path}, line {line}: epoch {epoch} is not >= 1")
                if not math.isfinite(value) or value < 0:
                    log.warning(
                        "%s, line %d: no unique_labels for %s epoch %d; skipped",
                        path,
                        line,
                        split,
                        epoch,
                    )
                    continue
                curves[split][epoch] = value  # a repeated epoch: the later row wins
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StabilityError(f"{path}: cannot read ({exc})") from None
    return curves


def _check_run_folder(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise StabilityError(f"{run_dir}: no such folder")
    missing = [n for n in ("config.json", "metrics.csv") if not (run_dir / n).is_file()]
    if missing:
        raise StabilityError(
            f"{run_dir}: not a training run folder (no {' or '.join(missing)}; "
            "expected the --out of unsupseg train)"
        )


def _load_run(run_dir: str | os.PathLike) -> tuple[RunCurve, dict[str, dict[int, float]]]:
    """A run's identity (a curve without points) and its per-epoch rows by split."""
    run_dir = Path(run_dir)
    _check_run_folder(run_dir)
    preset, architecture, dataset, seed = _run_identity(run_dir, _read_config(run_dir))
    rows = _read_epoch_rows(run_dir)
    if not any(rows.values()):
        raise StabilityError(f"{run_dir}: metrics.csv has no epoch rows yet")
    return RunCurve(str(run_dir), preset, architecture, dataset, seed), rows


def _with_split(identity: RunCurve, rows: dict[str, dict[int, float]], split: str) -> RunCurve:
    points = rows[split]
    if not points:
        raise StabilityError(
            f"{identity.run}: metrics.csv has no '{split}' epoch rows "
            f"(it has {', '.join(s for s in SPLITS if rows[s])}); try --split "
            f"{'train' if split == 'val' else 'val'}"
        )
    epochs = sorted(points)
    return RunCurve(
        identity.run,
        identity.preset,
        identity.architecture,
        identity.dataset,
        identity.seed,
        epochs,
        [points[e] for e in epochs],
    )


def read_run_curve(run_dir: str | os.PathLike, split: str = "val") -> RunCurve:
    """Read the merging curve of one ``unsupseg train`` run folder.

    Parameters
    ----------
    run_dir : path
        A folder with the ``config.json`` and ``metrics.csv`` of ``unsupseg train``.
    split : {"val", "train"}
        Whose per-epoch rows to read (``train_step`` rows are always ignored).

    Raises
    ------
    StabilityError
        The folder is not a run, a file is unreadable or corrupt, or the run has no
        epoch rows for ``split`` (yet).
    """
    if split not in SPLITS:
        raise StabilityError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    identity, rows = _load_run(run_dir)
    return _with_split(identity, rows, split)


# --------------------------------------------------------------------------------------
# Statistics


def _group_key(curve: RunCurve, group_by: str) -> tuple[Any, ...]:
    """Sort key and identity of a run's group."""
    rank = (
        _ARCHITECTURES.index(curve.architecture)
        if curve.architecture in _ARCHITECTURES
        else len(_ARCHITECTURES)
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

    Groups follow the seed's order of architectures (base, classifier, autoencoder);
    runs within a group keep their given order. A group is labelled by its architecture
    (with the dataset in brackets when the runs span several data sets) or its preset.
    """
    if group_by not in GROUP_BY:
        raise StabilityError(f"group_by must be one of {', '.join(GROUP_BY)}; got {group_by!r}")
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


def summarise_stability(curves: Sequence[RunCurve], group_by: str = "architecture") -> list[dict]:
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
    import matplotlib.pyplot as plt

    from unsupseg.viz import save_figure

    summary = summarise_stability(curves, group_by)
    groups = dict(group_curves(curves, group_by))
    colours = plt.get_cmap("tab10").colors
    fig, axis = plt.subplots(figsize=(7.5, 4.5))
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


def write_stability(
    out: str | os.PathLike,
    curves: Sequence[RunCurve],
    group_by: str = "architecture",
    split: str = "val",
) -> dict:
    """Write stability.csv, stability.png, stability.md and summary.json into ``out``.

    Returns
    -------
    dict
        The contents of ``summary.json`` (see the module docstring).
    """
    if not curves:
        raise StabilityError("no runs to summarise")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise_stability(curves, group_by)

    epoch_rows = [
        [
            entry["group"],
            row["epoch"],
            row["n_runs"],
            row["mean"],
            row["std"],
            row["min"],
            row["max"],
        ]
        for entry in summary
        for row in entry["epochs"]
    ]
    with atomic_file(out / "stability.csv", "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in epoch_rows:
            writer.writerow([*row[:3], *(_csv_number(v) for v in row[3:])])

    title = f"Merging across seeds: unique argmax labels per image ({split} split)"
    save_stability_figure(out / "stability.png", curves, group_by, split)
    markdown = stability_markdown(curves, group_by, split)
    with atomic_file(out / "stability.md", "w") as handle:
        handle.write(f"# {title}\n\n")
        handle.write(markdown)
        handle.write(
            "\nRetained fraction: labels at the last epoch / labels at the first epoch, per "
            "run. std: sample standard deviation over runs (ddof=1; 0 for a single run).\n"
            "\n![stability](stability.png)\n"
        )

    labels = {c.run: label for label, members in group_curves(curves, group_by) for c in members}
    result = {
        "kind": "stability",
        "title": title,
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
                    for row in epoch_rows
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
    write_json(out / "summary.json", result)
    return result


# --------------------------------------------------------------------------------------
# Command


def add_stability_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    """Add the ``stability`` command to ``commands`` (``number``: the CLI's numeric type)."""
    del number  # no numeric options
    parser = commands.add_parser(
        "stability",
        help="unique argmax labels per image over training, per architecture across seeds",
        description="Read the unique_labels curves (metrics.csv) of several unsupseg train "
        "runs, group them by architecture or preset, and write the mean, sample std, min "
        "and max per epoch over the runs (seeds): OUT/stability.csv, stability.png, "
        "stability.md and summary.json.",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        type=Path,
        help="run folders of unsupseg train (with config.json and metrics.csv)",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="whose epoch rows to use (default: val when every run has val rows, else train)",
    )
    parser.add_argument(
        "--group-by",
        choices=GROUP_BY,
        default="architecture",
        help="group runs by architecture (base/classifier/autoencoder; the default) or by preset",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/stability"),
        help="output folder (default: runs/stability)",
    )
    parser.set_defaults(run=run_stability)


def run_stability(args: argparse.Namespace) -> int:
    """Run ``unsupseg stability``; 0 on success, 2 on bad usage (a folder that is not a
    run, an unreadable file, a run without the split's epoch rows), 1 when the outputs
    cannot be written."""
    try:
        loaded = [_load_run(run) for run in args.runs]
        split = args.split
        if split is None:
            lacking = [identity.run for identity, rows in loaded if not rows["val"]]
            split = "train" if lacking else "val"
            if lacking:
                log.info("using the train split: no val rows in %s", ", ".join(lacking))
        curves = [_with_split(identity, rows, split) for identity, rows in loaded]
        _warn_repeated_seeds(curves, args.group_by)
    except StabilityError as exc:
        log.error("%s", exc)
        return 2
    try:
        write_stability(args.out, curves, args.group_by, split)
    except OSError as exc:
        log.error("cannot write the outputs to %s: %s", args.out, exc)
        return 1
    print(stability_markdown(curves, args.group_by, split), end="")
    log.info(
        "Wrote stability.csv, stability.png, stability.md and summary.json to %s",
        Path(args.out).resolve(),
    )
    return 0
