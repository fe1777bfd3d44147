"""``unsupseg app``: the local web page (extra ``[app]``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from unsupseg.cli.common import HelpFormatter, number
from unsupseg.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg app`` to the subcommands."""
    parser = commands.add_parser(
        "app",
        help="serve a local web page: load an image, run a method, cut it with a slider",
        description="Serve a web page on this machine: upload an image or pick a sample, "
        "run the hierarchy, a trained checkpoint, kanezaki2018, tip2020 (with scribbles) "
        "or DynaSeg, move the scale slider or ask for K regions, and download the labels "
        "(PNG, TIFF, NPY) and the overlay. Needs Flask: pip install 'unsupseg[app]'.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; the default serves this machine only, any other lets other "
        "machines use the page (and its CPU)",
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="TCP port (0: any free port, printed)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a trained model (unsupseg train's checkpoints/model-best.pt) to offer in the "
        "method menu, named by its run folder; repeat for several",
    )
    parser.add_argument(
        "--max-pixels",
        type=number(int, 4),
        default=2048 * 2048,
        help="largest image (width x height) the page accepts",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--open", action="store_true", help="open the page in the default web browser"
    )
    parser.set_defaults(run=run)


def checkpoint_names(paths: list[Path]) -> dict[str, Path]:
    """Menu names of checkpoints: the run folder's name (``runs/NAME/checkpoints/x.pt``)
    or the file's stem, made unique."""
    names: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"--checkpoint {path}: no such file")
        parent = path.parent
        base = parent.parent.name if parent.name == "checkpoints" else path.stem
        name, n = base or path.stem, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names[name] = path
    return names


def run(args: argparse.Namespace) -> int:
    """Serve the page until Ctrl-C."""
    from unsupseg.app import serve

    serve(
        args.host,
        args.port,
        checkpoints=checkpoint_names(args.checkpoint),
        max_pixels=int(args.max_pixels),
        device=args.device,
        open_browser=args.open,
    )
    return 0
