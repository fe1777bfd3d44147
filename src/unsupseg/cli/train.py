"""TRANSITIONAL shim: ``unsupseg train`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.train import add_train_parser

    add_train_parser(commands, number)
