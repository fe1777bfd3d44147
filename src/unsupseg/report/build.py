"""The report's sections, and :func:`build_report`: inputs in, two files out.

Contents, in order:

1. The title and how the report was made (unsupseg version, date, command line).
2. For each training run: its settings from ``config.json``, the per-epoch table of
   ``metrics.csv`` (train and validation losses with their terms, unique labels,
   learning rate, cumulative seconds) and the figures ``loss_curves.png``,
   ``unique_labels.png``, ``merging.png`` and the latest ``panel_epochNNN.png``.
3. Evaluation: the summaries written by ``unsupseg evaluate --json`` that are given, and
   those found in the runs: ``RUN_DIR/evaluation*.json`` and ``RUN_DIR/eval/*.json`` (a
   found JSON that is not such a summary, like the ``evaluate.json`` settings file, is
   skipped with a note). One table per data set and kind of ground truth (BSDS500;
   MSRC-v2 and other class maps; ...), one row per summary.
4. Stability and post-processing: every table and figure of each analysis folder's
   ``summary.json`` (see :func:`~unsupseg.report.inputs.load_analysis`); other scalar
   entries are listed too.
5. Appendix: the thesis' two tables with our numbers: the trainable parameters of every
   preset, and the training times (the thesis' wall times and images/s, our throughput
   from ``unsupseg bench train --json``, and the measured throughput of the runs).

A missing piece (a run still in progress, a figure not drawn yet, an analysis without
figures) is skipped with a one-line note.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unsupseg.errors import ConfigError
from unsupseg.report.document import (
    MISSING,
    Block,
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    figure_blocks,
    fmt,
    format_duration,
    format_value,
    is_number,
)
from unsupseg.report.inputs import (
    ReportRun,
    is_evaluation_summary,
    load_analysis,
    load_bench,
    load_evaluation,
    load_run,
)
from unsupseg.report.render import write_report
from unsupseg.run_folder import read_json
from unsupseg.thesis import THESIS_TRAIN_IMAGES, THESIS_WALL_TIMES, thesis_images_per_second
from unsupseg.version import __version__

log = logging.getLogger("unsupseg")

__all__ = [
    "ReportResult",
    "build_report",
    "default_out",
    "evaluation_label",
    "parameter_rows",
    "report_blocks",
    "run_throughput",
]

#: The figures of a run shown in the report (the latest sample panel comes last).
RUN_FIGURES = (
    ("loss_curves.png", "Loss per epoch"),
    ("unique_labels.png", "Unique labels per image (the merging measure)"),
    ("merging.png", "Argmax of the sample images across epochs"),
)


# --------------------------------------------------------------------------------------
# A run: settings, metrics, figures


def _settings_table(run: ReportRun) -> Table:
    settings, preset = run.settings, run.config.get("preset") or {}
    epochs = run.epochs()
    planned = settings.get("epochs")
    done = f"{len(epochs)} of {planned}" if planned is not None else str(len(epochs))
    optimizer = settings.get("optimizer")
    if optimizer == "sgd" and settings.get("momentum") is not None:
        optimizer = f"sgd (momentum {settings['momentum']:g})"
    schedule = MISSING
    if settings.get("lr_step_size") is not None and settings.get("lr_gamma") is not None:
        schedule = f"×{settings['lr_gamma']:g} every {settings['lr_step_size']} epochs"
    size = settings.get("image_size") or preset.get("image_size")
    crop = settings.get("crop_size")
    versions = run.config.get("versions") or {}

    def text(value: Any) -> str:
        if value is None or value == "":
            return MISSING
        if is_number(value):
            return f"{value:,}" if isinstance(value, int) else f"{value:g}"
        return str(value)

    rows = [
        ("folder", str(run.path)),
        ("preset", text(settings.get("preset"))),
        ("architecture", text(preset.get("architecture"))),
        ("dataset", text(settings.get("dataset"))),
        ("training images", text(run.config.get("train_images"))),
        ("validation images", text(run.config.get("val_images"))),
        ("epochs done", done),
        ("learning rate", text(settings.get("lr"))),
        ("learning-rate schedule", schedule),
        ("batch size", text(settings.get("batch_size"))),
        ("optimizer", text(optimizer)),
        ("seed", text(settings.get("seed"))),
        ("q (most labels)", text(settings.get("q"))),
        ("image size" if size else "crop size", text(size or crop)),
        ("refinement", text(settings.get("refine"))),
        ("auxiliary loss weight", text(settings.get("aux_weight"))),
        ("device", text(settings.get("device"))),
        ("precision", text(settings.get("precision"))),
        ("processes", text(run.config.get("world_size"))),
        ("trainable parameters", text(run.config.get("parameters"))),
        ("resumed from", text(run.config.get("resumed_from"))),
        (
            "unsupseg / torch",
            f"{versions.get('unsupseg', MISSING)} / {versions.get('torch', MISSING)}",
        ),
    ]
    return Table(["setting", "value"], [list(row) for row in rows], title="Settings")


def _metrics_blocks(run: ReportRun) -> list[Block]:
    if run.metrics is None:
        return [Paragraph("No metrics.csv yet: the run has not finished an epoch.")]
    epochs = run.epochs()
    if not epochs:
        return [Paragraph("metrics.csv holds no completed epoch yet.")]
    has_val = any("val" in e for e in epochs)
    has_aux = any(
        e[split]["loss_aux"] is not None for e in epochs for split in ("train", "val") if split in e
    )
    columns = ["epoch", "step", "train loss", "train loss_seg"]
    columns += ["train loss_aux"] if has_aux else []
    if has_val:
        columns += ["val loss", "val loss_seg"] + (["val loss_aux"] if has_aux else [])
    columns += ["unique labels train"] + (["unique labels val"] if has_val else [])
    columns += ["lr", "seconds"]
    keys = ("loss", "loss_seg", "loss_aux") if has_aux else ("loss", "loss_seg")
    rows = []
    for entry in epochs:
        train, val = entry["train"], entry.get("val")
        row = [str(entry["epoch"]), str(train["step"]), *(fmt(train[key]) for key in keys)]
        if has_val:
            row += [fmt(val[key]) if val else MISSING for key in keys]
        row.append(fmt(train["unique_labels"], ".2f"))
        row += [fmt(val["unique_labels"], ".2f") if val else MISSING] if has_val else []
        row += [fmt(train["lr"], "g"), fmt(entry["seconds"], ".1f")]
        rows.append(row)
    steps = sum(1 for r in run.metrics if r["split"] == "train_step")
    blocks: list[Block] = [Table(columns, rows, title="Metrics per epoch (metrics.csv)")]
    note = (
        "Means over each epoch's images; unique labels: distinct argmax labels per image; "
        "seconds: training time so far (cumulative, across resumes)."
    )
    if steps:
        note += f" The {steps} train_step rows of metrics.csv are not shown."
    blocks.append(Paragraph(note))
    planned = run.settings.get("epochs")
    if planned is not None and len(epochs) < planned:
        blocks.append(
            Paragraph(
                f"{len(epochs)} of {planned} epochs done: the run is in progress or was stopped."
            )
        )
    return blocks


def _run_figures(run: ReportRun) -> list[Block]:
    figures = run.figures
    blocks: list[Block] = []
    for file, caption in RUN_FIGURES:
        blocks += figure_blocks(figures / file, caption, f"{run.name}-{file}")
    panels = []
    if figures.is_dir():
        for path in figures.glob("panel_epoch*.png"):
            match = re.fullmatch(r"panel_epoch(\d+)\.png", path.name)
            if match:
                panels.append((int(match.group(1)), path))
    if panels:
        epoch, path = max(panels)
        blocks += figure_blocks(
            path, f"Sample panel at epoch {epoch} (the latest)", f"{run.name}-{path.name}"
        )
    else:
        blocks.append(Paragraph("No sample panel (panel_epochNNN.png) yet."))
    return blocks


def _run_blocks(run: ReportRun) -> list[Block]:
    return [
        Heading(f"Run {run.name}", 2),
        _settings_table(run),
        *_metrics_blocks(run),
        Heading(f"Figures of {run.name}", 3),
        *_run_figures(run),
    ]


# --------------------------------------------------------------------------------------
# Evaluations

#: Metric columns of the evaluation tables: (summary key, column title, format).
BSDS_METRICS = (
    ("miou_all", "mIoU all", ".4f"),
    ("miou_fine", "mIoU fine", ".4f"),
    ("miou_coarse", "mIoU coarse", ".4f"),
    ("covering", "covering", ".4f"),
    ("pri", "PRI", ".4f"),
    ("vi", "VI", ".4f"),
    ("boundary_ods", "boundary ODS", ".4f"),
    ("boundary_ois", "boundary OIS", ".4f"),
)
CLASS_MAP_METRICS = (
    ("miou_per_image", "mIoU per image", ".4f"),
    ("miou_hungarian", "mIoU Hungarian", ".4f"),
    ("pixel_accuracy", "pixel accuracy", ".4f"),
)
COMMON_METRICS = (
    ("mean_segments", "segments/image", ".1f"),
    ("mean_labels", "labels/image", ".1f"),
    ("seconds_per_image", "s/image", ".3f"),
)
_EVALUATION_BOOKKEEPING = {"n_images", "n_failed", "failed", "settings", "per_image_csv"}
_DATASET_NAMES = {"bsds500": "BSDS500", "msrc": "MSRC-v2", "voc2012": "PASCAL VOC 2012"}


def evaluation_label(summary: dict[str, Any], path: Path) -> str:
    """The row label of an evaluation: its method, checkpoint or predictions folder."""
    settings = summary.get("settings") or {}
    if settings.get("checkpoint"):
        checkpoint = Path(str(settings["checkpoint"]))
        run = checkpoint.parent
        run = run.parent if run.name == "checkpoints" else run
        label = f"{run.name}/{checkpoint.stem}"
        return label + (" + vote" if settings.get("refine") else "")
    if settings.get("method"):
        return str(settings["method"])
    if settings.get("predictions"):
        return f"predictions {Path(str(settings['predictions'])).name}"
    return path.stem


def _evaluation_kind(summary: dict[str, Any]) -> str:
    if "miou_all" in summary:
        return "bsds"
    if "miou_per_image" in summary:
        return "class_map"
    return "other"


def _evaluation_blocks(evaluations: list[tuple[Path, dict[str, Any]]]) -> list[Block]:
    blocks: list[Block] = [Heading("Evaluation", 2)]
    if not evaluations:
        blocks.append(
            Paragraph(
                "No evaluation summaries: pass --evaluation JSON (unsupseg evaluate --json), "
                "or put them in RUN_DIR/evaluation*.json or RUN_DIR/eval/*.json."
            )
        )
        return blocks
    groups: dict[tuple[str, str], list[tuple[Path, dict[str, Any]]]] = {}
    for path, summary in evaluations:
        dataset = str((summary.get("settings") or {}).get("dataset") or "unknown data set")
        groups.setdefault((dataset, _evaluation_kind(summary)), []).append((path, summary))
    listed = {key for key, _, _ in (*BSDS_METRICS, *CLASS_MAP_METRICS, *COMMON_METRICS)}
    for (dataset, kind), members in groups.items():
        known = {"bsds": BSDS_METRICS, "class_map": CLASS_MAP_METRICS}.get(kind, ())
        metrics = [m for m in (*known, *COMMON_METRICS) if any(m[0] in s for _, s in members)]
        extra = sorted(
            {
                key
                for _, summary in members
                for key, value in summary.items()
                if key not in listed | _EVALUATION_BOOKKEEPING
                and (value is None or is_number(value))
            }
        )
        metrics += [(key, key, ".4f") for key in extra]
        labels = [evaluation_label(summary, path) for path, summary in members]
        columns = ["method / checkpoint", "split", "images", "failed"]
        columns += [title for _, title, _ in metrics]
        rows = []
        for label, (path, summary) in zip(labels, members, strict=True):
            if labels.count(label) > 1:
                label = f"{label} ({path.name})"
            settings = summary.get("settings") or {}
            failed = summary.get("n_failed")
            if failed is None and isinstance(summary.get("failed"), list):
                failed = len(summary["failed"])
            row = [label, str(settings.get("split") or MISSING)]
            row += [format_value(summary.get("n_images")), format_value(failed) or MISSING]
            row += [fmt(summary.get(key), spec) for key, _, spec in metrics]
            rows.append(row)
        name = _DATASET_NAMES.get(dataset, dataset)
        title = name if kind != "other" else f"{name} (internal indices)"
        blocks.append(Table(columns, rows, title=title))
        blocks.append(Paragraph("Sources: " + ", ".join(str(path) for path, _ in members) + "."))
    return blocks


# --------------------------------------------------------------------------------------
# Analyses (stability, post-processing)

_TEXT_ENTRIES = ("description", "notes", "note")


def _analysis_blocks(
    section: str, folders: list[tuple[Path, dict[str, Any]]], option: str
) -> list[Block]:
    blocks: list[Block] = [Heading(section, 2)]
    if not folders:
        blocks.append(Paragraph(f"No {section.lower()} analysis given ({option} DIR)."))
        return blocks
    for folder, summary in folders:
        title = str(summary.get("title") or folder.name)
        kind = summary.get("kind")
        blocks.append(Heading(title, 3))
        blocks.append(
            Paragraph(f"From {folder / 'summary.json'}" + (f" ({kind})." if kind else "."))
        )
        for key in _TEXT_ENTRIES:
            if isinstance(summary.get(key), str) and summary[key].strip():
                blocks.append(Paragraph(summary[key]))
        scalars = [
            [key, format_value(value)]
            for key, value in summary.items()
            if key not in ("kind", "title", *_TEXT_ENTRIES)
            and (isinstance(value, str | bool) or is_number(value))
        ]
        if scalars:
            blocks.append(Table(["entry", "value"], scalars, title="Summary"))
        tables = summary.get("tables") or []
        for table in tables:
            rows = [[format_value(cell) for cell in row] for row in table["rows"]]
            columns = [format_value(column) for column in table["columns"]]
            title_text = table.get("title")
            blocks.append(Table(columns, rows, title=str(title_text) if title_text else None))
        if not tables:
            blocks.append(Paragraph("No tables in this summary."))
        figures = summary.get("figures") or []
        root = folder.resolve()
        for figure in figures:
            caption = str(figure.get("title") or figure["path"])
            path = (folder / figure["path"]).resolve()
            if not path.is_relative_to(root):
                blocks.append(
                    Paragraph(f"Not shown: {caption} ({figure['path']} is outside {folder}).")
                )
                continue
            name = f"{kind or section.lower()}-{folder.name}-{Path(figure['path']).name}"
            blocks += figure_blocks(path, caption, name)
        if not figures:
            blocks.append(Paragraph("No figures in this summary."))
    return blocks


# --------------------------------------------------------------------------------------
# Appendix: the thesis' tables with our numbers


def parameter_rows() -> list[dict[str, Any]]:
    """Every preset's trainable parameters, in total and for the FCN and the head.

    The totals are those of :func:`unsupseg.models.registry.preset_parameter_table`
    (the same models, built without initialisation or downloaded weights). The models
    are built here, on the first call, so that importing the report does not load torch.

    Returns
    -------
    list of dict
        ``preset, architecture, dataset, from_thesis, parameters, fcn, head`` (``head``
        is None for the base networks, which have none).
    """
    return [dict(row) for row in _parameter_rows()]


@functools.cache
def _parameter_rows() -> tuple[dict[str, Any], ...]:
    from unsupseg.models.registry import PRESETS, build_model, count_parameters

    rows = []
    for name, preset in PRESETS.items():
        model = build_model(name, init=False, backbone_weights=False)
        fcn = getattr(model, "fcn", None)
        head = getattr(model, "head", None)
        rows.append(
            {
                "preset": name,
                "architecture": preset.architecture,
                "dataset": preset.dataset,
                "from_thesis": preset.from_thesis,
                "parameters": count_parameters(model),
                "fcn": count_parameters(fcn) if fcn is not None else None,
                "head": count_parameters(head) if head is not None else None,
            }
        )
    return tuple(rows)


def _parameter_blocks() -> list[Block]:
    rows = [
        [
            row["preset"],
            row["architecture"],
            row["dataset"],
            f"{row['parameters']:,}",
            f"{row['fcn']:,}" if row["fcn"] is not None else MISSING,
            f"{row['head']:,}" if row["head"] is not None else MISSING,
            "thesis" if row["from_thesis"] else "ours",
        ]
        for row in parameter_rows()
    ]
    columns = ["preset", "architecture", "dataset", "parameters", "FCN", "head", "preset from"]
    return [
        Heading("A. Trainable parameters", 3),
        Table(columns, rows, title="Trainable parameters of every preset (ours, counted)"),
        Paragraph(
            "Counted on the models unsupseg builds (unsupseg models; preset_parameter_table). "
            "The thesis' nine presets equal its appendix in total, FCN and head "
            "(checked by tests/test_models.py). The classifier-voc2012 head is ResNet-50."
        ),
    ]


def run_throughput(run: ReportRun) -> dict[str, Any] | None:
    """Measured training speed of a run, from metrics.csv and config.json.

    Returns
    -------
    dict or None
        ``epochs, seconds, seconds_per_epoch, median_epoch_seconds, train_images,
        images_per_second, approximate`` (True when the training images were derived from
        the steps); None without a completed epoch with a time.
    """
    epochs = [e for e in run.epochs() if e["seconds"] is not None]
    if not epochs or not epochs[-1]["seconds"]:
        return None
    ends = [e["seconds"] for e in epochs]
    durations = [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]
    train_images = run.config.get("train_images")
    approximate = not (is_number(train_images) and train_images > 0)
    if approximate:
        step = epochs[-1]["train"]["step"]
        batch = run.settings.get("batch_size") or 0
        world = run.config.get("world_size") or 1
        train_images = step * batch * world / len(epochs) if step and batch else None
    seconds = ends[-1]
    return {
        "epochs": len(epochs),
        "seconds": seconds,
        "seconds_per_epoch": seconds / len(epochs),
        "median_epoch_seconds": statistics.median(durations),
        "train_images": train_images,
        "images_per_second": train_images * len(epochs) / seconds if train_images else None,
        "approximate": approximate,
    }


def _ratio(ours: float | None, thesis: float | None) -> str:
    ratio = ours / thesis if ours and thesis else None
    return fmt(ratio, ".2f") + ("×" if ratio else "")


def _time_blocks(runs: list[ReportRun], bench: dict[str, Any] | None) -> list[Block]:
    blocks: list[Block] = [Heading("B. Training time", 3)]
    measured: dict[tuple[str, str], float] = {}
    for row in (bench or {}).get("rows", []):
        if is_number(row.get("images_per_second")):
            measured[(str(row["preset"]), str(row.get("device") or "cpu"))] = float(
                row["images_per_second"]
            )
    devices = sorted({device for _, device in measured}, key=lambda d: (d != "cpu", d))
    columns = ["preset", "epochs", "thesis wall time", "thesis images/s"]
    for device in devices:
        columns += [f"ours {device} images/s", f"ours {device} ÷ thesis", f"ours {device} time"]
    rows = []
    presets = list(THESIS_WALL_TIMES) + sorted({p for p, _ in measured} - set(THESIS_WALL_TIMES))
    for preset in presets:
        thesis = thesis_images_per_second(preset)
        if preset in THESIS_WALL_TIMES:
            epochs, seconds = THESIS_WALL_TIMES[preset]
            row = [preset, str(epochs), format_duration(seconds), fmt(thesis, ".1f")]
        else:
            epochs = None
            row = [preset, MISSING, MISSING, MISSING]
        for device in devices:
            ours = measured.get((preset, device))
            total = None
            if ours and epochs:
                images = THESIS_TRAIN_IMAGES[preset.split("-", 1)[1]]
                total = format_duration(epochs * images / ours)
            row += [fmt(ours, ".1f"), _ratio(ours, thesis), total or MISSING]
        rows.append(row)
    blocks.append(Table(columns, rows, title="Training time: the thesis' nine presets"))
    note = (
        "Thesis: its reported wall time for its epochs; its images/s = epochs × "
        "training images (CIFAR-10 50,000, STL-10 5,000, VOC 2012 1,464) / wall time."
    )
    if bench:
        note += (
            " Ours: unsupseg bench train (median of timed steps of forward, superpixel vote, "
            "losses, backward and optimiser step on synthetic images; no data loading or "
            "validation); 'time' is the thesis' schedule at that speed."
        )
        machine = bench.get("processor") or ""
        if bench.get("cuda_device"):
            machine += f", {bench['cuda_device']}"
        if machine:
            note += f" Machine: {machine}."
    else:
        note += (
            " No --bench JSON given (unsupseg bench train --json FILE): our columns are left out."
        )
    blocks.append(Paragraph(note))

    run_rows = []
    approximate = False
    for run in runs:
        speed = run_throughput(run)
        preset = str(run.settings.get("preset") or MISSING)
        device = str(run.settings.get("device") or MISSING)
        if speed is None:
            run_rows.append([run.name, preset, device, "0"] + [MISSING] * 6)
            continue
        approximate |= speed["approximate"]
        thesis = thesis_images_per_second(preset)
        images = speed["train_images"]
        run_rows.append(
            [
                run.name,
                preset,
                device,
                str(speed["epochs"]),
                (f"{images:,.0f}" + (" (approx.)" if speed["approximate"] else ""))
                if images
                else MISSING,
                fmt(speed["seconds_per_epoch"], ".1f"),
                fmt(speed["median_epoch_seconds"], ".1f"),
                fmt(speed["images_per_second"], ".1f"),
                fmt(thesis, ".1f"),
                _ratio(speed["images_per_second"], thesis),
            ]
        )
    if run_rows:
        columns = [
            "run",
            "preset",
            "device",
            "epochs",
            "training images",
            "s/epoch (mean)",
            "s/epoch (median)",
            "images/s",
            "thesis images/s",
            "÷ thesis",
        ]
        blocks.append(Table(columns, run_rows, title="Training time of the runs in this report"))
        note = (
            "From metrics.csv: seconds is the run's cumulative time (training, validation, "
            "figures and the first epoch's superpixel cache); images/s = training images × "
            "epochs / seconds. Training images: config.json's train_images."
        )
        if approximate:
            note += (
                " Where marked approx., config.json has none: optimiser steps × batch size × "
                "processes / epochs (counts a last partial batch as full)."
            )
        blocks.append(Paragraph(note))
    return blocks


# --------------------------------------------------------------------------------------
# The whole report


def report_blocks(
    runs: list[ReportRun],
    evaluations: list[tuple[Path, dict[str, Any]]],
    *,
    stability: list[tuple[Path, dict[str, Any]]] | None = None,
    postprocess: list[tuple[Path, dict[str, Any]]] | None = None,
    bench: dict[str, Any] | None = None,
    title: str,
    command: str | None = None,
    notes: Sequence[str] = (),
) -> list[Block]:
    """The whole report as blocks, from inputs already read (see the module docstring).

    Parameters
    ----------
    runs : list of ReportRun
    evaluations : list of (path, summary)
        Evaluation summaries, in table order.
    stability, postprocess : list of (folder, summary.json), optional
    bench : dict, optional
        ``unsupseg bench train --json``.
    title : str
    command : str, optional
        The command line that made the report, shown under the title.
    notes : sequence of str
        One-line notes for the evaluation section (such as skipped files).
    """
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    blocks: list[Block] = [Heading(title, 1)]
    if command is None:
        blocks.append(Paragraph(f"Generated by unsupseg {__version__} on {now}."))
    else:
        blocks += [Paragraph(f"Generated by unsupseg {__version__} on {now} with:"), Code(command)]
    for run in runs:
        blocks += _run_blocks(run)
    blocks += _evaluation_blocks(evaluations)
    blocks += [Paragraph(note) for note in notes]
    blocks += _analysis_blocks("Stability", stability or [], "--stability")
    blocks += _analysis_blocks("Post-processing", postprocess or [], "--postprocess")
    blocks.append(Heading("Appendix: the thesis' tables with our numbers", 2))
    blocks += _parameter_blocks()
    blocks += _time_blocks(runs, bench)
    return blocks


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    out : Path
        The report folder.
    markdown : Path
        ``out/report.md`` (its figures in ``out/figures/``).
    html : Path
        ``out/report.html``, self-contained.
    n_figures : int
        Figures in the report.
    title : str
    """

    out: Path
    markdown: Path
    html: Path
    n_figures: int
    title: str


def default_out(runs: Sequence[str | os.PathLike]) -> Path:
    """The report folder when none is given: ``RUN_DIR/report`` for one run, else
    ``runs/report`` relative to the current directory."""
    return Path(runs[0]) / "report" if len(runs) == 1 else Path("runs") / "report"


def _check_out(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an ``out`` that would replace anything but an earlier report."""
    resolved = out.resolve()
    for path in inputs:
        target = path.resolve()
        if resolved == target or resolved in target.parents:
            raise ConfigError(
                f"the report folder {out} would replace the input {path}; choose another folder"
            )
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"the report folder {out} exists and is not a folder")
        earlier = (out / "report.md").is_file() or (out / "report.html").is_file()
        if any(out.iterdir()) and not earlier:
            raise ConfigError(
                f"the report folder {out} exists and holds no earlier report; choose another folder"
            )


def _unique_names(runs: list[ReportRun]) -> None:
    used: set[str] = set()
    for run in runs:
        name, number = run.name, 2
        while name in used:
            name, number = f"{run.name}-{number}", number + 1
        used.add(name)
        run.name = name


def _collect_evaluations(
    given: Sequence[Path], runs: list[ReportRun]
) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """The evaluation summaries given and those found in the runs, each once, and a note
    for each found JSON that is not a summary."""
    evaluations: list[tuple[Path, dict[str, Any]]] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for path in given:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            evaluations.append((path, load_evaluation(path)))
    for run in runs:
        for path in run.evaluations:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            data = read_json(path, "the evaluation summary")
            if is_evaluation_summary(data):
                evaluations.append((path, data))
            else:
                notes.append(f"Skipped {path}: not an evaluation summary of unsupseg evaluate.")
    return evaluations, notes


def build_report(
    runs: Sequence[str | os.PathLike],
    *,
    evaluations: Sequence[str | os.PathLike] = (),
    stability: Sequence[str | os.PathLike] = (),
    postprocess: Sequence[str | os.PathLike] = (),
    bench: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    title: str | None = None,
    command: str | None = None,
) -> ReportResult:
    """One Markdown and one self-contained HTML report of training runs and analyses.

    Writes ``out/report.md`` with its figures copied into ``out/figures/`` (one unique
    file name per figure, such as ``base-bsds500-loss_curves.png``) and referenced
    relatively, and ``out/report.html`` with inline CSS, real tables and every figure
    embedded as a ``data:`` URI. ``out`` is written as a whole (built in a temporary
    sibling, then renamed), so a failure never leaves a half-written report; an existing
    ``out`` is replaced only when it holds an earlier report. Every input is read and
    checked before anything is written.

    Parameters
    ----------
    runs : sequence of path
        Training run folders (``config.json``; ``metrics.csv`` and ``figures/`` when the
        run has finished an epoch). Their ``evaluation*.json`` and ``eval/*.json`` are
        included as well.
    evaluations : sequence of path
        Summaries written by ``unsupseg evaluate --json``.
    stability, postprocess : sequence of path
        Analysis folders, each with a ``summary.json`` (``unsupseg stability``,
        ``unsupseg postprocess``).
    bench : path, optional
        The JSON of ``unsupseg bench train --json``, for the training-time appendix.
    out : path, optional
        The report folder. Default: ``RUN_DIR/report`` for one run, ``runs/report``
        (relative to the current directory) for several.
    title : str, optional
        Default: ``"Training report: "`` and the runs' names.
    command : str, optional
        The command line shown under the title (the CLI passes its own).

    Returns
    -------
    ReportResult
        The folder, the two files, the number of figures and the title.

    Raises
    ------
    RunFolderError
        A run folder, an evaluation summary, an analysis folder or the benchmark JSON is
        missing, corrupt or not what its command writes.
    ConfigError
        No runs, or an ``out`` that would replace an input or a folder that holds no
        earlier report.
    OSError
        When the report cannot be written.

    Examples
    --------
    >>> from unsupseg.report import build_report
    >>> result = build_report(["runs/base-bsds500"], evaluations=["runs/eval/kmeans.json"],
    ...                       stability=["runs/stability"])  # doctest: +SKIP
    >>> result.html  # doctest: +SKIP
    PosixPath('runs/base-bsds500/report/report.html')
    """
    if not runs:
        raise ConfigError("no run folders to report on")
    run_paths = [Path(run) for run in runs]
    evaluation_paths = [Path(path) for path in evaluations]
    stability_paths = [Path(path) for path in stability]
    postprocess_paths = [Path(path) for path in postprocess]
    bench_path = Path(bench) if bench is not None else None

    loaded = [load_run(path) for path in run_paths]
    _unique_names(loaded)
    summaries, notes = _collect_evaluations(evaluation_paths, loaded)
    stability_summaries = [(folder, load_analysis(folder)) for folder in stability_paths]
    postprocess_summaries = [(folder, load_analysis(folder)) for folder in postprocess_paths]
    bench_data = load_bench(bench_path) if bench_path is not None else None
    out = Path(out) if out is not None else default_out(run_paths)
    inputs = [*run_paths, *evaluation_paths, *stability_paths, *postprocess_paths]
    _check_out(out, inputs + ([bench_path] if bench_path is not None else []))

    title = title or "Training report: " + ", ".join(run.name for run in loaded)
    blocks = report_blocks(
        loaded,
        summaries,
        stability=stability_summaries,
        postprocess=postprocess_summaries,
        bench=bench_data,
        title=title,
        command=command,
        notes=notes,
    )
    markdown, page = write_report(blocks, out, title)
    n_figures = sum(isinstance(block, Figure) for block in blocks)
    return ReportResult(out=out, markdown=markdown, html=page, n_figures=n_figures, title=title)
