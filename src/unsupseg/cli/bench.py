"""TRANSITIONAL shim: ``unsupseg bench`` until its options move here."""

from __future__ import annotations

import argparse

from unsupseg.cli.common import number


def add_parser(commands: argparse._SubParsersAction) -> None:
    from unsupseg.bench import add_bench_parser

    add_bench_parser(commands, number)
