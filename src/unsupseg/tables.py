"""The one plain-text table renderer of the command line and the logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_cell", "render_table"]


def format_cell(value: Any, spec: str = ".4f") -> str:
    """A table cell: floats with ``spec``, None as empty, everything else with ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def render_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    spec: str = ".4f",
) -> str:
    """Columns padded to their widest cell, the first left-aligned and the rest
    right-aligned, a rule under the header, and an optional title line above.

    Parameters
    ----------
    columns : sequence of str
        Header cells.
    rows : sequence of sequences
        One sequence of cells per row, as long as ``columns``; cells are formatted by
        :func:`format_cell` with ``spec``.
    title : str, optional
        A line printed above the table.
    spec : str
        Format of float cells.

    Returns
    -------
    str
        The table, lines joined by newlines (no trailing newline).

    Examples
    --------
    >>> print(render_table(["name", "n"], [["a", 1], ["bb", 2.5]], spec=".1f"))
    name    n
    ---------
    a       1
    bb    2.5
    """
    cells = [[str(c) for c in columns]]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row has {len(row)} cells, the header {len(columns)}")
        cells.append([format_cell(value, spec) for value in row])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    if title:
        lines.insert(0, title)
    return "\n".join(lines)
