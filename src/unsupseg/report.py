"""``unsupseg report``: training runs and their analyses as one Markdown and one HTML file.

The report is built once as a list of blocks (:class:`Heading`, :class:`Paragraph`,
:class:`Code`, :class:`Table`, :class:`Figure`) and rendered twice:

- ``OUT/report.md`` with its figures copied into ``OUT/figures/`` (one unique file name per
  figure, such as ``base-bsds500-loss_curves.png``) and referenced relatively;
- ``OUT/report.html``, self-contained: inline CSS, real ``<table>`` elements, every figure
  embedded as a ``data:`` URI and every piece of text HTML-escaped.

``OUT`` is written as a whole (built in a temporary sibling, then renamed), so a failure
never leaves a half-written report; an existing ``OUT`` is replaced only when it holds an
earlier report. Default ``OUT``: ``RUN_DIR/report`` for one run, ``runs/report`` for several.

Contents, in order:

1. The title and how the report was made (unsupseg version, date, command line).
2. For each run (a folder written by ``unsupseg train``, see :mod:`unsupseg.train`): its
   settings from ``config.json``, the per-epoch table of ``metrics.csv`` (train and
   validation losses with their terms, unique labels, learning rate, cumulative seconds)
   and the figures ``loss_curves.png``, ``unique_labels.png``, ``merging.png`` and the
   latest ``panel_epochNNN.png``.
3. Evaluation: the summaries written by ``unsupseg evaluate --json`` given with
   ``--evaluation``, and those found in the runs: ``RUN_DIR/evaluation*.json`` and
   ``RUN_DIR/eval/*.json`` (a found JSON that is not such a summary, like the
   ``evaluate.json`` settings file, is skipped with a note). One table per data set and
   kind of ground truth (BSDS500; MSRC-v2 and other class maps; ...), one row per summary.
4. Stability and post-processing (``--stability DIR``, ``--postprocess DIR``): every
   table and figure of ``DIR/summary.json``, whose contract is ``{"kind", "title",
   "tables": [{"title", "columns", "rows"}], "figures": [{"title", "path"}]}`` with
   figure paths relative to ``DIR``; other scalar entries are listed too.
5. Appendix: the seed thesis's two tables with our numbers: the trainable parameters of
   every preset, and the training times (the seed's wall times and images/s, our
   throughput from ``unsupseg bench train --json`` given with ``--bench``, and the
   measured throughput of the runs).

A missing piece (a run still in progress, a figure not drawn yet, an analysis without
figures) is skipped with a one-line note. Bad input (a folder that is not a run, corrupt
JSON or CSV, an analysis folder without ``summary.json``) stops the command with exit
status 2 and one line saying why.

Examples
--------
.. code-block:: console

    $ unsupseg report runs/base-bsds500
    $ unsupseg report runs/base-bsds500 runs/autoencoder-bsds500 --out runs/report \\
        --evaluation runs/eval-kmeans.json --stability runs/stability --bench bench-train.json
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import functools
import html
import json
import logging
import math
import re
import shlex
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unsupseg.io import atomic_directory
from unsupseg.train import CSV_COLUMNS

log = logging.getLogger("unsupseg")

__all__ = [
    "Block",
    "Code",
    "Figure",
    "Heading",
    "Paragraph",
    "ReportError",
    "Run",
    "Table",
    "add_report_parser",
    "build_report",
    "evaluation_label",
    "figure_blocks",
    "figure_file_names",
    "fmt",
    "format_cell",
    "format_duration",
    "is_evaluation_summary",
    "load_analysis",
    "load_bench",
    "load_evaluation",
    "load_run",
    "md_escape",
    "parameter_rows",
    "read_metrics",
    "render_html",
    "render_markdown",
    "run_report",
    "run_throughput",
    "write_report",
]

#: The figures of a run shown in the report (the latest sample panel comes last).
RUN_FIGURES = (
    ("loss_curves.png", "Loss per epoch"),
    ("unique_labels.png", "Unique labels per image (the merging measure)"),
    ("merging.png", "Argmax of the sample images across epochs"),
)
#: Columns that metrics.csv must have.
METRICS_COLUMNS = CSV_COLUMNS
#: Shown in place of a missing value.
MISSING = "–"


class ReportError(ValueError):
    """Bad input to ``unsupseg report`` (the command exits with status 2)."""


# --------------------------------------------------------------------------------------
# The document model


@dataclass
class Heading:
    """A section heading; ``level`` 1 is the title."""

    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Plain text (no markup: it is escaped in both formats)."""

    text: str


@dataclass
class Code:
    """A preformatted block, such as a command line."""

    text: str


@dataclass
class Table:
    """A table of text cells; numeric columns are right-aligned."""

    columns: list[str]
    rows: list[list[str]]
    title: str | None = None


@dataclass
class Figure:
    """An image, held in memory so that both formats show the same bytes.

    Attributes
    ----------
    data : bytes
        The PNG, JPEG or GIF file's contents.
    caption : str
    name : str
        Preferred file name in ``OUT/figures/`` (made unique when the report is written).
    mime : str
        ``image/png``, ``image/jpeg`` or ``image/gif``.
    """

    data: bytes
    caption: str
    name: str
    mime: str = "image/png"


Block = Heading | Paragraph | Code | Table | Figure

_IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"GIF87a", "image/gif", ".gif"),
    (b"GIF89a", "image/gif", ".gif"),
)


def figure_blocks(path: Path, caption: str, name: str) -> list[Block]:
    """A :class:`Figure` of the image file ``path``, or a one-line note why there is none."""
    if not path.is_file():
        return [Paragraph(f"Not shown: {caption} ({path} does not exist yet).")]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Paragraph(f"Not shown: {caption} ({path}: {exc.strerror or exc}).")]
    for magic, mime, suffix in _IMAGE_TYPES:
        if data.startswith(magic):
            stem = _safe_name(Path(name).stem) or "figure"
            return [Figure(data=data, caption=caption, name=stem + suffix, mime=mime)]
    return [Paragraph(f"Not shown: {caption} ({path} is not a PNG, JPEG or GIF image).")]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")


def figure_file_names(blocks: Sequence[Block]) -> dict[int, str]:
    """Unique file names of the figures, by index in ``blocks``."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for index, block in enumerate(blocks):
        if not isinstance(block, Figure):
            continue
        stem, suffix = Path(block.name).stem, Path(block.name).suffix
        candidate, number = block.name, 2
        while candidate.lower() in used:
            candidate, number = f"{stem}-{number}{suffix}", number + 1
        used.add(candidate.lower())
        names[index] = candidate
    return names


# --------------------------------------------------------------------------------------
# Rendering

_NUMERIC = re.compile(r"^[-+]?(\d[\d,]*(\.\d+)?|\.\d+)([eE][-+]?\d+)?\s?[%×]?$|^\d+:\d\d:\d\d$")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&~])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_BLOCK_START = re.compile(r"^(\s*)([#+=-]|\d+[.)])")


def _numeric_columns(table: Table) -> list[bool]:
    numeric = []
    for column in range(len(table.columns)):
        cells = [row[column] for row in table.rows if column < len(row)]
        cells = [cell for cell in cells if cell not in ("", MISSING)]
        numeric.append(bool(cells) and all(_NUMERIC.match(cell) for cell in cells))
    return numeric


def _cells(table: Table, row: Sequence[str]) -> list[str]:
    """``row`` padded or cut to the table's width."""
    return [*row[: len(table.columns)], *[""] * (len(table.columns) - len(row))]


def md_escape(text: str, *, block: bool = False) -> str:
    """Escape Markdown syntax so that ``text`` shows literally (newlines become spaces).

    With ``block``, a line start that would begin a heading or a list is escaped too.
    """
    text = " ".join(str(text).split())
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_UNDERSCORE.sub(r"\\_", text)
    if block:
        match = _MD_BLOCK_START.match(text)
        if match:
            end = match.end()
            text = f"{text[: end - 1]}\\{text[end - 1 :]}"
    return text


def render_markdown(blocks: Sequence[Block], figure_names: dict[int, str]) -> str:
    """The report as Markdown; figure ``i`` is referenced as ``figures/<figure_names[i]>``."""
    out: list[str] = []
    for index, block in enumerate(blocks):
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {md_escape(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(md_escape(block.text, block=True))
        elif isinstance(block, Code):
            fence = "```"
            while fence in block.text:
                fence += "`"
            out.append(f"{fence}console\n{block.text}\n{fence}")
        elif isinstance(block, Table):
            lines = []
            if block.title:
                lines.append(f"**{md_escape(block.title)}**\n")
            numeric = _numeric_columns(block)
            lines.append("| " + " | ".join(md_escape(c) for c in block.columns) + " |")
            lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            for row in block.rows:
                lines.append("| " + " | ".join(md_escape(c) for c in _cells(block, row)) + " |")
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            name = figure_names[index]
            caption = md_escape(block.caption)
            out.append(f"![{caption}](figures/{name})\n\n*{caption}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 2em; }
.scroll { overflow-x: auto; margin: .5em 0 1.2em; }
table { border-collapse: collapse; font-size: .88em; }
caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0 1.5em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
pre { background: #f6f6f6; padding: .6em .8em; overflow-x: auto; }
"""


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The report as one self-contained HTML page (figures as base64 ``data:`` URIs)."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 1), 6)
            out.append(f"<h{level}>{esc(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{esc(block.text)}</code></pre>")
        elif isinstance(block, Table):
            numeric = _numeric_columns(block)
            lines = ['<div class="scroll"><table>']
            if block.title:
                lines.append(f"<caption>{esc(block.title)}</caption>")

            def cell(tag: str, text: str, number: bool) -> str:
                attribute = ' class="num"' if number else ""
                return f"<{tag}{attribute}>{esc(text)}</{tag}>"

            header = "".join(cell("th", c, n) for c, n in zip(block.columns, numeric, strict=True))
            lines.append(f"<thead><tr>{header}</tr></thead>")
            lines.append("<tbody>")
            for row in block.rows:
                cells = zip(_cells(block, row), numeric, strict=True)
                lines.append("<tr>" + "".join(cell("td", c, n) for c, n in cells) + "</tr>")
            lines.append("</tbody></table></div>")
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.data).decode("ascii")
            out.append(
                f'<figure><img src="data:{block.mime};base64,{data}" alt="{esc(block.caption)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    out += ["</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_report(blocks: Sequence[Block], out: Path, title: str) -> tuple[Path, Path]:
    """Write ``out/report.md`` (with ``out/figures/``) and ``out/report.html`` as a whole.

    ``out`` is built in a temporary sibling and renamed into place, replacing an earlier
    report; on failure nothing changes.

    Returns
    -------
    markdown, html : Path
        The two files.
    """
    names = figure_file_names(blocks)
    with atomic_directory(out) as tmp:
        if names:
            (tmp / "figures").mkdir()
        for index, name in names.items():
            block = blocks[index]
            assert isinstance(block, Figure)
            (tmp / "figures" / name).write_bytes(block.data)
        (tmp / "report.md").write_text(render_markdown(blocks, names), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(blocks, title), encoding="utf-8")
    return out / "report.md", out / "report.html"


# --------------------------------------------------------------------------------------
# Formatting numbers


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: Any, spec: str = ".4f") -> str:
    """``value`` formatted with ``spec``; None, NaN and non-numbers as :data:`MISSING`."""
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return format(value, spec)


def format_duration(seconds: float) -> str:
    """Seconds as ``h:mm:ss`` (hours unbounded): 20393 -> ``5:39:53``."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_cell(value: Any) -> str:
    """Any JSON value as a table cell (numbers to 4 significant digits or 1 decimal)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


# --------------------------------------------------------------------------------------
# Reading the inputs


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read {what} ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: corrupt JSON ({exc})") from None


@dataclass
class Run:
    """A training run folder, read.

    Attributes
    ----------
    path : Path
    name : str
        Folder name (made unique among the report's runs).
    config : dict
        ``config.json``.
    metrics : list of dict or None
        Rows of ``metrics.csv`` (:func:`read_metrics`), or None when there is none yet.
    """

    path: Path
    name: str
    config: dict[str, Any]
    metrics: list[dict[str, Any]] | None = None
    evaluations: list[Path] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.get("settings") or {}

    def epochs(self) -> list[dict[str, Any]]:
        """One entry per epoch with a ``train`` row: ``epoch, train, val, seconds``."""
        by_epoch: dict[int, dict[str, Any]] = {}
        for row in self.metrics or []:
            entry = by_epoch.setdefault(row["epoch"], {"epoch": row["epoch"], "seconds": None})
            if row["split"] in ("train", "val"):
                entry[row["split"]] = row
            if row["seconds"] is not None:
                entry["seconds"] = max(entry["seconds"] or 0.0, row["seconds"])
        return [by_epoch[e] for e in sorted(by_epoch) if "train" in by_epoch[e]]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.csv``: ints for epoch and step, floats (None when
    empty) for the rest.

    Raises
    ------
    ReportError
        When a column is missing or a value is not a number.
    """
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in METRICS_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ReportError(f"{path}: corrupt CSV, missing column(s) {', '.join(missing)}")
            for raw in reader:
                line = reader.line_num
                if None in raw or any(raw[c] is None for c in METRICS_COLUMNS):
                    raise ReportError(f"{path}: corrupt CSV, line {line} has the wrong length")
                try:
                    row: dict[str, Any] = {
                        "epoch": int(raw["epoch"]),
                        "step": int(raw["step"]),
                        "split": raw["split"],
                    }
                    for key in METRICS_COLUMNS[3:]:
                        value = raw[key].strip()
                        row[key] = float(value) if value else None
                except ValueError as exc:
                    raise ReportError(f"{path}: corrupt CSV, line {line}: {exc}") from None
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{path}: cannot read the CSV ({exc})") from None
    return rows


def load_run(path: Path) -> Run:
    """Read a run folder written by ``unsupseg train``.

    Raises
    ------
    ReportError
        When ``path`` is not a folder with a ``config.json``, or a file is corrupt.
    """
    if not path.is_dir():
        raise ReportError(f"{path}: no such run folder")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ReportError(f"{path}: not a run folder of unsupseg train (no config.json)")
    config = _read_json(config_path, "run configuration")
    if not isinstance(config, dict) or not isinstance(config.get("settings"), dict):
        raise ReportError(f"{config_path}: not a run configuration (no 'settings' object)")
    metrics_path = path / "metrics.csv"
    metrics = read_metrics(metrics_path) if metrics_path.is_file() else None
    evaluations = sorted(path.glob("evaluation*.json")) + sorted(path.glob("eval/*.json"))
    name = path.resolve().name or str(path)
    return Run(path=path, name=name, config=config, metrics=metrics, evaluations=evaluations)


def is_evaluation_summary(data: Any) -> bool:
    """Whether ``data`` looks like the JSON of ``unsupseg evaluate --json``."""
    return isinstance(data, dict) and "n_images" in data and isinstance(data.get("settings"), dict)


def load_evaluation(path: Path) -> dict[str, Any]:
    """An evaluation summary (``unsupseg evaluate --json``).

    Raises
    ------
    ReportError
        When the file is missing, corrupt or not such a summary.
    """
    data = _read_json(path, "evaluation summary")
    if not is_evaluation_summary(data):
        raise ReportError(
            f"{path}: not an evaluation summary of unsupseg evaluate --json "
            "(no 'n_images' and 'settings')"
        )
    return data


def load_analysis(folder: Path) -> dict[str, Any]:
    """``folder/summary.json`` of an analysis command, checked against the contract.

    Raises
    ------
    ReportError
        When the folder or its ``summary.json`` is missing, or the JSON breaks the contract.
    """
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such analysis folder")
    path = folder / "summary.json"
    if not path.is_file():
        raise ReportError(f"{folder}: analysis folder without summary.json")
    data = _read_json(path, "analysis summary")
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not an analysis summary (expected a JSON object)")
    tables = data.get("tables", [])
    figures = data.get("figures", [])
    if not isinstance(tables, list) or not isinstance(figures, list):
        raise ReportError(f"{path}: 'tables' and 'figures' must be lists")
    for number, table in enumerate(tables, 1):
        if (
            not isinstance(table, dict)
            or not isinstance(table.get("columns"), list)
            or not isinstance(table.get("rows"), list)
            or not all(isinstance(row, list) for row in table["rows"])
        ):
            raise ReportError(f"{path}: table {number} needs 'columns' and 'rows' lists")
    for number, figure in enumerate(figures, 1):
        if not isinstance(figure, dict) or not isinstance(figure.get("path"), str):
            raise ReportError(f"{path}: figure {number} needs a 'path'")
    return data


def load_bench(path: Path) -> dict[str, Any]:
    """The JSON of ``unsupseg bench train --json``.

    Raises
    ------
    ReportError
        When the file is missing, corrupt or not such a benchmark.
    """
    data = _read_json(path, "training benchmark")
    rows = data.get("rows") if isinstance(data, dict) else None
    if (
        not isinstance(rows, list)
        or data.get("benchmark", "train") != "train"
        or not all(isinstance(r, dict) and "preset" in r and "images_per_second" in r for r in rows)
    ):
        raise ReportError(
            f"{path}: not a training benchmark of unsupseg bench train --json "
            "(expected 'rows' with 'preset' and 'images_per_second')"
        )
    return data


# --------------------------------------------------------------------------------------
# Building the report


def _settings_table(run: Run) -> Table:
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
        if isinstance(value, int | float) and not isinstance(value, bool):
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


def _metrics_blocks(run: Run) -> list[Block]:
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
    rows = []
    for entry in epochs:
        train, val = entry["train"], entry.get("val")

        def terms(row: dict[str, Any] | None) -> list[str]:
            keys = ("loss", "loss_seg", "loss_aux") if has_aux else ("loss", "loss_seg")
            return [fmt(row[key]) if row else MISSING for key in keys]

        row = [str(entry["epoch"]), str(train["step"]), *terms(train)]
        row += terms(val) if has_val else []
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


def _run_figures(run: Run) -> list[Block]:
    figures = run.path / "figures"
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


def _run_blocks(run: Run) -> list[Block]:
    return [
        Heading(f"Run {run.name}", 2),
        _settings_table(run),
        *_metrics_blocks(run),
        Heading(f"Figures of {run.name}", 3),
        *_run_figures(run),
    ]


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
    for (dataset, kind), members in groups.items():
        known = {"bsds": BSDS_METRICS, "class_map": CLASS_MAP_METRICS}.get(kind, ())
        metrics = [m for m in (*known, *COMMON_METRICS) if any(m[0] in s for _, s in members)]
        listed = {key for key, _, _ in (*BSDS_METRICS, *CLASS_MAP_METRICS, *COMMON_METRICS)}
        extra = sorted(
            {
                key
                for _, summary in members
                for key, value in summary.items()
                if key not in listed | _EVALUATION_BOOKKEEPING
                and (value is None or _is_number(value))
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
            row += [format_cell(summary.get("n_images")), format_cell(failed) or MISSING]
            row += [fmt(summary.get(key), spec) for key, _, spec in metrics]
            rows.append(row)
        name = _DATASET_NAMES.get(dataset, dataset)
        title = name if kind != "other" else f"{name} (internal indices)"
        blocks.append(Table(columns, rows, title=title))
        blocks.append(Paragraph("Sources: " + ", ".join(str(path) for path, _ in members) + "."))
    return blocks


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
        for key in ("description", "notes", "note"):
            if isinstance(summary.get(key), str) and summary[key].strip():
                blocks.append(Paragraph(summary[key]))
        scalars = [
            [key, format_cell(value)]
            for key, value in summary.items()
            if key not in ("kind", "title", "description", "notes", "note")
            and (isinstance(value, str | bool) or _is_number(value))
        ]
        if scalars:
            blocks.append(Table(["entry", "value"], scalars, title="Summary"))
        tables = summary.get("tables") or []
        for table in tables:
            rows = [[format_cell(cell) for cell in row] for row in table["rows"]]
            columns = [format_cell(column) for column in table["columns"]]
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


def parameter_rows() -> list[dict[str, Any]]:
    """Every preset's trainable parameters, in total and for the FCN and the head.

    The totals are those of :func:`unsupseg.models.registry.preset_parameter_table`
    (the same models, built without initialisation or downloaded weights).

    Returns
    -------
    list of dict
        ``preset, architecture, dataset, from_seed, parameters, fcn, head`` (``head`` is
        None for the base networks, which have none).
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
                "from_seed": preset.from_seed,
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
            "seed" if row["from_seed"] else "ours",
        ]
        for row in parameter_rows()
    ]
    columns = ["preset", "architecture", "dataset", "parameters", "FCN", "head", "preset from"]
    return [
        Heading("A. Trainable parameters", 3),
        Table(columns, rows, title="Trainable parameters of every preset (ours, counted)"),
        Paragraph(
            "Counted on the models unsupseg builds (unsupseg models; preset_parameter_table). "
            "The nine seed presets equal the thesis appendix in total, FCN and head "
            "(checked by tests/test_models.py). The classifier-voc2012 head is ResNet-50."
        ),
    ]


def run_throughput(run: Run) -> dict[str, Any] | None:
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
    approximate = not (_is_number(train_images) and train_images > 0)
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


def _time_blocks(runs: list[Run], bench: dict[str, Any] | None) -> list[Block]:
    from unsupseg.bench import SEED_TRAIN_IMAGES, SEED_WALL_TIMES, seed_images_per_second

    blocks: list[Block] = [Heading("B. Training time", 3)]
    measured: dict[tuple[str, str], float] = {}
    for row in (bench or {}).get("rows", []):
        if _is_number(row.get("images_per_second")):
            measured[(str(row["preset"]), str(row.get("device") or "cpu"))] = float(
                row["images_per_second"]
            )
    devices = sorted({device for _, device in measured}, key=lambda d: (d != "cpu", d))
    columns = ["preset", "epochs", "seed wall time", "seed images/s"]
    for device in devices:
        columns += [f"ours {device} images/s", f"ours {device} ÷ seed", f"ours {device} time"]
    rows = []
    presets = list(SEED_WALL_TIMES) + sorted({p for p, _ in measured} - set(SEED_WALL_TIMES))
    for preset in presets:
        if preset in SEED_WALL_TIMES:
            epochs, seconds = SEED_WALL_TIMES[preset]
            seed = seed_images_per_second(preset)
            row = [preset, str(epochs), format_duration(seconds), fmt(seed, ".1f")]
        else:
            epochs, seed = None, None
            row = [preset, MISSING, MISSING, MISSING]
        for device in devices:
            ours = measured.get((preset, device))
            ratio = ours / seed if ours and seed else None
            total = None
            if ours and epochs:
                total = format_duration(epochs * SEED_TRAIN_IMAGES[preset.split("-", 1)[1]] / ours)
            row += [fmt(ours, ".1f"), fmt(ratio, ".2f") + ("×" if ratio else ""), total or MISSING]
        rows.append(row)
    blocks.append(Table(columns, rows, title="Training time: the seed's nine presets"))
    note = (
        "Seed: the thesis's reported wall time for its epochs; its images/s = epochs × "
        "training images (CIFAR-10 50,000, STL-10 5,000, VOC 2012 1,464) / wall time."
    )
    if bench:
        note += (
            " Ours: unsupseg bench train (median of timed steps of forward, superpixel vote, "
            "losses, backward and optimiser step on synthetic images; no data loading or "
            "validation); 'time' is the seed's schedule at that speed."
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
        if speed is None:
            run_rows.append(
                [run.name, preset, str(run.settings.get("device") or MISSING), "0"] + [MISSING] * 6
            )
            continue
        approximate |= speed["approximate"]
        seed = seed_images_per_second(preset)
        ratio = speed["images_per_second"] / seed if seed and speed["images_per_second"] else None
        images = speed["train_images"]
        run_rows.append(
            [
                run.name,
                preset,
                str(run.settings.get("device") or MISSING),
                str(speed["epochs"]),
                (f"{images:,.0f}" + (" (approx.)" if speed["approximate"] else ""))
                if images
                else MISSING,
                fmt(speed["seconds_per_epoch"], ".1f"),
                fmt(speed["median_epoch_seconds"], ".1f"),
                fmt(speed["images_per_second"], ".1f"),
                fmt(seed, ".1f"),
                fmt(ratio, ".2f") + ("×" if ratio else ""),
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
            "seed images/s",
            "÷ seed",
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


def build_report(
    runs: list[Run],
    evaluations: list[tuple[Path, dict[str, Any]]],
    *,
    stability: list[tuple[Path, dict[str, Any]]] | None = None,
    postprocess: list[tuple[Path, dict[str, Any]]] | None = None,
    bench: dict[str, Any] | None = None,
    title: str,
    command: str,
    notes: Sequence[str] = (),
) -> list[Block]:
    """The whole report as blocks (see the module docstring for its contents).

    Parameters
    ----------
    runs : list of Run
    evaluations : list of (path, summary)
        Evaluation summaries, in table order.
    stability, postprocess : list of (folder, summary.json), optional
    bench : dict, optional
        ``unsupseg bench train --json``.
    title, command : str
        The title and the command line that made the report.
    notes : sequence of str
        One-line notes for the evaluation section (such as skipped files).
    """
    from unsupseg import __version__

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    blocks: list[Block] = [
        Heading(title, 1),
        Paragraph(f"Generated by unsupseg {__version__} on {now} with:"),
        Code(command),
    ]
    for run in runs:
        blocks += _run_blocks(run)
    blocks += _evaluation_blocks(evaluations)
    blocks += [Paragraph(note) for note in notes]
    blocks += _analysis_blocks("Stability", stability or [], "--stability")
    blocks += _analysis_blocks("Post-processing", postprocess or [], "--postprocess")
    blocks.append(Heading("Appendix: the seed thesis's tables with our numbers", 2))
    blocks += _parameter_blocks()
    blocks += _time_blocks(runs, bench)
    return blocks


# --------------------------------------------------------------------------------------
# The command


def add_report_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    """Add the ``report`` command to ``commands`` (``number``: the CLI's numeric type)."""
    parser = commands.add_parser(
        "report",
        help="one Markdown and one self-contained HTML report of training runs and analyses",
        description="Turn training runs (folders of unsupseg train) and optional evaluation, "
        "stability, post-processing and benchmark results into OUT/report.md (figures in "
        "OUT/figures/) and OUT/report.html (figures embedded). Evaluation summaries are also "
        "found in RUN_DIR/evaluation*.json and RUN_DIR/eval/*.json.",
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders of unsupseg train"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default: RUN_DIR/report for one run, runs/report for several); "
        "replaced as a whole when it holds an earlier report",
    )
    parser.add_argument("--title", default=None, help="report title (default: from the runs)")
    parser.add_argument(
        "--evaluation",
        nargs="+",
        type=Path,
        default=[],
        metavar="JSON",
        help="summaries written by unsupseg evaluate --json",
    )
    parser.add_argument(
        "--stability",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="stability analysis folders (each with summary.json)",
    )
    parser.add_argument(
        "--postprocess",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="post-processing folders (each with summary.json)",
    )
    parser.add_argument(
        "--bench",
        type=Path,
        default=None,
        metavar="JSON",
        help="training throughput from unsupseg bench train --json, for the appendix",
    )
    parser.set_defaults(run=run_report)


def _command_line(args: argparse.Namespace) -> str:
    parts = ["unsupseg", "report", *map(str, args.runs)]
    if args.out is not None:
        parts += ["--out", str(args.out)]
    if args.title is not None:
        parts += ["--title", args.title]
    for option, values in (
        ("--evaluation", args.evaluation),
        ("--stability", args.stability),
        ("--postprocess", args.postprocess),
    ):
        if values:
            parts += [option, *map(str, values)]
    if args.bench is not None:
        parts += ["--bench", str(args.bench)]
    return shlex.join(parts)


def _check_out(out: Path, inputs: list[Path]) -> None:
    """Refuse an OUT that would replace anything but an earlier report."""
    resolved = out.resolve()
    for path in inputs:
        target = path.resolve()
        if resolved == target or resolved in target.parents:
            raise ReportError(f"--out {out} would replace the input {path}; choose another folder")
    if out.exists():
        if not out.is_dir():
            raise ReportError(f"--out {out} exists and is not a folder")
        earlier = (out / "report.md").is_file() or (out / "report.html").is_file()
        if any(out.iterdir()) and not earlier:
            raise ReportError(
                f"--out {out} exists and holds no earlier report; choose another folder"
            )


def _collect(
    args: argparse.Namespace,
) -> tuple[list[Run], list[tuple[Path, dict[str, Any]]], list[str]]:
    runs = [load_run(path) for path in args.runs]
    used: set[str] = set()
    for run in runs:
        name, number = run.name, 2
        while name in used:
            name, number = f"{run.name}-{number}", number + 1
        used.add(name)
        run.name = name
    evaluations: list[tuple[Path, dict[str, Any]]] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for path in args.evaluation:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            evaluations.append((path, load_evaluation(path)))
    for run in runs:
        for path in run.evaluations:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            data = _read_json(path, "evaluation summary")
            if is_evaluation_summary(data):
                evaluations.append((path, data))
            else:
                notes.append(f"Skipped {path}: not an evaluation summary of unsupseg evaluate.")
    return runs, evaluations, notes


def run_report(args: argparse.Namespace) -> int:
    """Run ``unsupseg report``: 0 when written, 2 on bad input (one line says why), 1 when
    the report cannot be written."""
    try:
        runs, evaluations, notes = _collect(args)
        stability = [(folder, load_analysis(folder)) for folder in args.stability]
        postprocess = [(folder, load_analysis(folder)) for folder in args.postprocess]
        bench = load_bench(args.bench) if args.bench is not None else None
        out = args.out
        if out is None:
            out = runs[0].path / "report" if len(runs) == 1 else Path("runs") / "report"
        inputs = [*args.runs, *args.evaluation, *args.stability, *args.postprocess]
        _check_out(out, inputs + ([args.bench] if args.bench is not None else []))
    except ReportError as exc:
        log.error("%s", exc)
        return 2
    title = args.title or "Training report: " + ", ".join(run.name for run in runs)
    blocks = build_report(
        runs,
        evaluations,
        stability=stability,
        postprocess=postprocess,
        bench=bench,
        title=title,
        command=_command_line(args),
        notes=notes,
    )
    try:
        markdown, page = write_report(blocks, out, title)
    except OSError as exc:
        log.error("cannot write the report to %s: %s", out, exc)
        return 1
    n_figures = sum(isinstance(block, Figure) for block in blocks)
    log.info("Wrote the report (%d figures) to %s", n_figures, out)
    print(markdown)
    print(page)
    return 0
