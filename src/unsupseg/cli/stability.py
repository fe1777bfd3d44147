"""``unsupseg stability``: unique argmax labels per image over training, across seeds."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from unsupseg.analysis.label_stability import GROUP_BY, SPLITS, stability

log = logging.getLogger("unsupseg")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg stability`` to the subcommands."""
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
        help="output folder (default: runs/stability, relative to the current directory)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``unsupseg stability``: 0 when written, 1 when the outputs cannot be written.

    Bad input (a folder that is not a run, an unreadable file, a run without the split's
    epoch rows) raises an :class:`~unsupseg.errors.UnsupsegError`: exit status 2.
    """
    try:
        result = stability(args.runs, group_by=args.group_by, split=args.split, out=args.out)
    except OSError as exc:
        log.error("cannot write the outputs to %s: %s", args.out, exc)
        return 1
    print(result.markdown, end="")
    log.info(
        "Wrote stability.csv, stability.png, stability.md and summary.json to %s",
        Path(args.out).resolve(),
    )
    return 0
