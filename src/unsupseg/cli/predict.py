"""TRANSITIONAL shim: ``unsupseg predict`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.predict import add_predict_parser

    add_predict_parser(commands, number)
