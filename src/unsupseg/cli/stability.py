"""TRANSITIONAL shim: ``unsupseg stability`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.stability import add_stability_parser

    add_stability_parser(commands, number)
