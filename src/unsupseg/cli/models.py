"""``unsupseg models``: the presets and their parameter totals."""

from __future__ import annotations

import argparse
import json

from unsupseg.models.registry import PRESETS, preset_parameter_table
from unsupseg.tables import render_table


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg models`` to the subcommands."""
    parser = commands.add_parser(
        "models",
        help="list the model presets with their trainable-parameter totals",
        description="List every preset (architecture-dataset) with its trainable parameters, "
        "q, training image size and training settings. The nine seed presets match the "
        "thesis appendix exactly.",
    )
    parser.add_argument("--json", action="store_true", help="print {preset: parameters} as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the preset table (or JSON)."""
    table = preset_parameter_table()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    rows = []
    for name, preset in PRESETS.items():
        training = (
            f"{preset.epochs} ep, lr {preset.lr:g}, batch {preset.batch_size}, "
            f"{preset.optimizer}{'' if preset.from_thesis else ' (ours)'}"
        )
        size = preset.image_size or f"c{preset.crop_size}"
        rows.append([name, f"{table[name]:,}", preset.q, size, training])
    columns = ["preset", "parameters", "q", "size", "training (the thesis' unless 'ours')"]
    print(render_table(columns, rows))
    return 0
