"""The report's blocks as Markdown and as one self-contained HTML page, written as a whole.

The Markdown is built here (its escaping is per character, simpler in code than in a
template); the HTML comes from the jinja2 template ``templates/report.html.j2`` with
autoescaping on, so every piece of text is HTML-escaped unless the template says
otherwise. Figures are embedded in the page as base64 ``data:`` URIs.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Sequence
from pathlib import Path

import jinja2

from unsupseg.io import atomic_directory
from unsupseg.report.document import (
    Block,
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    figure_file_names,
    numeric_columns,
)

__all__ = ["md_escape", "render_html", "render_markdown", "write_report"]

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|&~])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_BLOCK_START = re.compile(r"^(\s*)([#+=-]|\d+[.)])")


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


def _markdown_table(table: Table) -> str:
    lines = []
    if table.title:
        lines.append(f"**{md_escape(table.title)}**\n")
    numeric = numeric_columns(table)
    lines.append("| " + " | ".join(md_escape(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for row in table.padded_rows():
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(lines)


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
            out.append(_markdown_table(block))
        elif isinstance(block, Figure):
            caption = md_escape(block.caption)
            out.append(f"![{caption}](figures/{figure_names[index]})\n\n*{caption}*")
    return "\n\n".join(out) + "\n"


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("unsupseg.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["base64"] = lambda data: base64.b64encode(data).decode("ascii")
    environment.globals["numeric_columns"] = numeric_columns
    return environment


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The report as one self-contained HTML page (figures as base64 ``data:`` URIs)."""
    return _environment().get_template("report.html.j2").render(blocks=blocks, title=title)


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
