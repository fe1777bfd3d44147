"""The ``unsupseg`` command: a thin layer over the Python API.

Each command lives in its own module here, with two functions: ``add_parser(commands)``
declares its options, and ``run(args)`` turns the parsed arguments into one library call
and prints or logs the result. Only this package knows argparse. An
:class:`~unsupseg.errors.UnsupsegError` raised by the library becomes one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence

from unsupseg.cli.common import one_line_errors, setup_logging
from unsupseg.errors import UnsupsegError
from unsupseg.version import __version__

log = logging.getLogger("unsupseg")

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order of ``unsupseg --help``: module names in this package.
COMMANDS = (
    "segment",
    "models",
    "train",
    "predict",
    "evaluate",
    "bench",
    "report",
    "postprocess",
    "stability",
    "app",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``unsupseg`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="unsupseg",
        description="Unsupervised image segmentation by backpropagation with SLIC refinement.",
    )
    parser.add_argument("--version", action="version", version=f"unsupseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"unsupseg.cli.{name}").add_parser(commands)
    one_line_errors(parser)
    return parser


#: The argument of the KeyboardInterrupt that SIGTERM raises.
TERMINATED = "SIGTERM"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(TERMINATED)


def _terminate_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt, as Ctrl-C does, so that temporary files
    and folders are removed on the way out; the previous handler (None when this is not
    the main thread, where no handler can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unsupseg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    started = time.perf_counter()
    previous = _terminate_as_interrupt()
    try:
        code = args.run(args)
    except UnsupsegError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt as exc:
        terminated = exc.args == (TERMINATED,)
        log.error("terminated" if terminated else "interrupted")
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    log.debug("done in %.1f s", time.perf_counter() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
