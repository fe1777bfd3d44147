"""``unsupseg report``: one Markdown and one self-contained HTML report of runs."""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from unsupseg.report.build import build_report, default_out

log = logging.getLogger("unsupseg")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg report`` to the subcommands."""
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
        help="report folder (default: RUN_DIR/report for one run, runs/report relative to "
        "the current directory for several); replaced as a whole when it holds an earlier "
        "report",
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
    parser.set_defaults(run=run)


def command_line(args: argparse.Namespace) -> str:
    """The command line of ``args``, as the report shows it."""
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


def run(args: argparse.Namespace) -> int:
    """Run ``unsupseg report``: 0 when written, 1 when the report cannot be written.

    Bad input (a folder that is not a run, corrupt JSON or CSV, an analysis folder
    without ``summary.json``, an ``--out`` that would replace an input) raises an
    :class:`~unsupseg.errors.UnsupsegError`: exit status 2.
    """
    try:
        result = build_report(
            args.runs,
            evaluations=args.evaluation,
            stability=args.stability,
            postprocess=args.postprocess,
            bench=args.bench,
            out=args.out,
            title=args.title,
            command=command_line(args),
        )
    except OSError as exc:
        out = args.out if args.out is not None else default_out(args.runs)
        log.error("cannot write the report to %s: %s", out, exc)
        return 1
    log.info("Wrote the report (%d figures) to %s", result.n_figures, result.out)
    print(result.markdown)
    print(result.html)
    return 0
