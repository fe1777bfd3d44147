"""The report as a list of blocks, and the formatting of its cells.

A report is built once as blocks (:class:`Heading`, :class:`Paragraph`, :class:`Code`,
:class:`Table`, :class:`Figure`) and rendered twice, as Markdown and as HTML (see
:mod:`unsupseg.report.render`). Blocks hold plain text only; each renderer escapes it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "MISSING",
    "Block",
    "Code",
    "Figure",
    "Heading",
    "Paragraph",
    "Table",
    "figure_blocks",
    "figure_file_names",
    "fmt",
    "format_duration",
    "format_value",
    "is_number",
    "numeric_columns",
]

#: Shown in place of a missing value.
MISSING = "–"


@dataclass
class Heading:
    """A section heading; ``level`` 1 is the title."""

    kind: ClassVar[str] = "heading"
    text: str
    level: int = 2


@dataclass
class Paragraph:
    """Plain text (no markup: it is escaped in both formats)."""

    kind: ClassVar[str] = "paragraph"
    text: str


@dataclass
class Code:
    """A preformatted block, such as a command line."""

    kind: ClassVar[str] = "code"
    text: str


@dataclass
class Table:
    """A table of text cells; numeric columns are right-aligned."""

    kind: ClassVar[str] = "table"
    columns: list[str]
    rows: list[list[str]]
    title: str | None = None

    def padded_rows(self) -> list[list[str]]:
        """The rows, each padded with empty cells or cut to the table's width."""
        width = len(self.columns)
        return [[*row[:width], *[""] * (width - len(row))] for row in self.rows]


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

    kind: ClassVar[str] = "figure"
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
    """Unique file names of the figures (case-insensitively), by index in ``blocks``."""
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


_NUMERIC = re.compile(r"^[-+]?(\d[\d,]*(\.\d+)?|\.\d+)([eE][-+]?\d+)?\s?[%×]?$|^\d+:\d\d:\d\d$")


def numeric_columns(table: Table) -> list[bool]:
    """For each column, whether every non-empty cell is a number (right-aligned)."""
    numeric = []
    for column in range(len(table.columns)):
        cells = [row[column] for row in table.rows if column < len(row)]
        cells = [cell for cell in cells if cell not in ("", MISSING)]
        numeric.append(bool(cells) and all(_NUMERIC.match(cell) for cell in cells))
    return numeric


# --------------------------------------------------------------------------------------
# Formatting numbers


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: Any, spec: str = ".4f") -> str:
    """``value`` formatted with ``spec``; None, NaN and non-numbers as :data:`MISSING`."""
    if not is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return format(value, spec)


def format_duration(seconds: float) -> str:
    """Seconds as ``h:mm:ss`` (hours unbounded): 20393 -> ``5:39:53``."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_value(value: Any) -> str:
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
