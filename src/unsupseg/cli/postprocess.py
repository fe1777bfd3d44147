"""TRANSITIONAL shim: ``unsupseg postprocess`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.postprocess import add_postprocess_parser

    add_postprocess_parser(commands, number)
