"""The per-image CSV files of ``evaluate`` and ``postprocess``: read, rewrite, append.

Cells are written so that reading them back gives the same values: floats as
``repr`` (every digit), None as an empty cell. Rows are appended and flushed one image
at a time, so an interrupted run loses at most the row being written, which
:func:`read_rows` and the callers' completeness checks then drop.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unsupseg.errors import ConfigError
from unsupseg.io import atomic_file

__all__ = ["appending_rows", "csv_cell", "parse_cell", "read_rows", "write_rows"]

#: Columns that hold text, whatever it looks like.
TEXT_COLUMNS = frozenset({"id", "setting", "method", "confusion", "note", "error"})


def csv_cell(value: Any) -> Any:
    """A value as written to the CSV: floats with every digit, None as empty."""
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def parse_cell(column: str, text: str | None) -> Any:
    """A CSV cell as a Python value: text columns as they are, numbers as int or float
    (as :func:`csv_cell` wrote them), an empty cell as None."""
    if column in TEXT_COLUMNS:
        return text
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: str | os.PathLike, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a per-image CSV as text (none when the file does not exist).

    Raises
    ------
    ConfigError
        When the file has other columns: it belongs to another kind of run.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and list(reader.fieldnames) != list(columns):
            raise ConfigError(
                f"{path} has columns {','.join(reader.fieldnames)}, not those of this data "
                "set; choose another output folder"
            )
        return list(reader)


def write_rows(
    path: str | os.PathLike, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Replace a per-image CSV by these rows (atomically)."""
    with atomic_file(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def appending_rows(
    path: str | os.PathLike, columns: Sequence[str]
) -> Iterator[Callable[[Sequence[dict[str, Any]]], None]]:
    """Open a per-image CSV for appending (the header first in a new file).

    Yields a function that writes rows (their cells through :func:`csv_cell`) and
    flushes them at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        if new_file:
            writer.writeheader()
            handle.flush()

        def append(rows: Sequence[dict[str, Any]]) -> None:
            writer.writerows({key: csv_cell(row.get(key)) for key in columns} for row in rows)
            handle.flush()

        yield append
