"""TRANSITIONAL shim: ``unsupseg evaluate`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.evaluate import add_evaluate_parser

    add_evaluate_parser(commands, number)
