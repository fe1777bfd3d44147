"""Training runs and their analyses as one Markdown and one self-contained HTML file.

:func:`build_report` reads the inputs (run folders, evaluation summaries, analysis
folders, a training benchmark), builds the report once as a list of blocks and renders
it twice:

- :mod:`unsupseg.report.document`: the blocks (:class:`Heading`, :class:`Paragraph`,
  :class:`Code`, :class:`Table`, :class:`Figure`) and the formatting of cells;
- :mod:`unsupseg.report.inputs`: the readers of what the other commands write;
- :mod:`unsupseg.report.build`: the sections and :func:`build_report`;
- :mod:`unsupseg.report.render`: Markdown, and HTML from the jinja2 template
  ``templates/report.html.j2``.

Importing this package does not load torch: the models are built only to count the
presets' parameters, inside the function that does it.
"""

from __future__ import annotations

from unsupseg.report.build import ReportResult, build_report, report_blocks
from unsupseg.report.document import Block, Code, Figure, Heading, Paragraph, Table
from unsupseg.report.render import render_html, render_markdown, write_report

__all__ = [
    "Block",
    "Code",
    "Figure",
    "Heading",
    "Paragraph",
    "ReportResult",
    "Table",
    "build_report",
    "render_html",
    "render_markdown",
    "report_blocks",
    "write_report",
]
