"""TRANSITIONAL shim: ``unsupseg report`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.report import add_report_parser

    add_report_parser(commands, number)
