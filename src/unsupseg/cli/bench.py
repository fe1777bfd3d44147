"""``unsupseg bench refine|segment|train|hierarchy``: the speed benchmarks of :mod:`unsupseg.bench`.

Each prints a table and, with ``--json FILE``, writes the figures the library returns.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unsupseg.bench import (
    BENCH_SHAPE,
    bench_hierarchy,
    bench_refine,
    bench_segment,
    bench_train,
)
from unsupseg.cli.common import HelpFormatter, number
from unsupseg.io import write_json
from unsupseg.tables import render_table


def image_size(text: str) -> tuple[int, int]:
    """An argparse type: WIDTHxHEIGHT (at least 2x2) as (height, width)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 481x321, got {text!r}"
        ) from None
    if width < 2 or height < 2:
        raise argparse.ArgumentTypeError(f"image size must be at least 2x2, got {text}")
    return height, width


DEFAULT_SIZE = f"{BENCH_SHAPE[1]}x{BENCH_SHAPE[0]}"


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")


def _add_size_and_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        type=image_size,
        default=DEFAULT_SIZE,
        metavar="WxH",
        help="image size (481x321 is BSDS500's)",
    )
    _add_json(parser)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg bench`` and its three benchmarks to the subcommands."""
    parser = commands.add_parser(
        "bench",
        help="speed benchmarks (refinement, per-image segmentation)",
        description="Speed benchmarks. Each prints a table; --json FILE writes its figures.",
    )
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")

    refine = benches.add_parser(
        "refine",
        formatter_class=HelpFormatter,
        help="vectorised superpixel vote against the reference per-superpixel loop",
        description="Time the superpixel majority vote on a 481x321 image: the reference "
        "code's Python loop over superpixels against unsupseg's single bincount.",
    )
    refine.add_argument(
        "--n-segments", type=number(int, 1), default=10000, help="SLIC superpixels requested"
    )
    refine.add_argument("--q", type=number(int, 2), default=100, help="number of labels")
    refine.add_argument(
        "--repeats",
        type=number(int, 1),
        default=5,
        help="timed runs of the loop (the vectorised vote runs 20x more)",
    )
    _add_size_and_json(refine)
    refine.set_defaults(run=run_refine)

    seg = benches.add_parser(
        "segment",
        formatter_class=HelpFormatter,
        help="seconds per iteration of per-image segmentation, and time to the stop rule",
        description="Seconds per optimisation step at 481x321 (q=100, 2 blocks) for the "
        "reference implementation and unsupseg's variants (channels-last, bfloat16 "
        "autocast where supported, thread counts; CUDA when available), then the "
        "seconds unsupseg takes to reach the stop rule on a real photo.",
    )
    seg.add_argument(
        "--iterations",
        type=number(int, 1),
        default=5,
        help="timed iterations per variant (after one warm-up)",
    )
    seg.add_argument(
        "--stop-image",
        type=Path,
        default=argparse.SUPPRESS,  # the help says the default; "None" would not
        help="photo segmented to the stop rule (default: BSDS500 val 3096.jpg under "
        "$UNSUPSEG_DATA, else under ../shared/data relative to the working directory); "
        "skipped when missing",
    )
    seg.add_argument(
        "--stop-max-iter",
        type=number(int, 1),
        default=1000,
        help="iteration limit of the stop-rule run",
    )
    seg.add_argument("--no-stop-run", action="store_true", help="skip the stop-rule run")
    _add_size_and_json(seg)
    seg.set_defaults(run=run_segment)

    train = benches.add_parser(
        "train",
        formatter_class=HelpFormatter,
        help="training throughput (images/s) of each preset against the thesis' wall times",
        description="Images per second of one training step (forward, refinement, losses, "
        "backward, optimiser step) of each preset at its image size and batch size, on "
        "synthetic images with real SLIC superpixels; on the CPU, and on CUDA when "
        "available. The thesis' reported wall times are converted to images/s beside "
        "them (epochs x training images / seconds).",
    )
    train.add_argument(
        "--presets",
        nargs="+",
        default=None,
        metavar="PRESET",
        help="presets to time (default: all of them)",
    )
    train.add_argument(
        "--steps", type=number(int, 1), default=3, help="timed steps per preset (after one warm-up)"
    )
    _add_json(train)
    train.set_defaults(run=run_train)

    hier = benches.add_parser(
        "hierarchy",
        formatter_class=HelpFormatter,
        help="hierarchical segmentation against Felzenszwalb, seconds per photo",
        description="Time unsupseg.ucm (cues, watershed, merging; then the cuts of "
        "hierarchy.npy) and scikit-image's felzenszwalb (one scale, and the 8-scale stack) "
        "on the same BSDS500 val photos, side by side in one run.",
    )
    hier.add_argument("--n-images", type=number(int, 1), default=10, help="photos to time")
    hier.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="BSDS500 folder (default: $UNSUPSEG_DATA/bsds500 or ../shared/data/bsds500; "
        "the scikit-image sample photos where absent)",
    )
    _add_json(hier)
    hier.set_defaults(run=run_hierarchy)


def run_hierarchy(args: argparse.Namespace) -> int:
    """Time the hierarchy and Felzenszwalb on the same photos; print the table."""
    figures = bench_hierarchy(data_root=args.data_root, n_images=args.n_images)
    rows = [
        [row["name"], row["mean_s"], row["median_s"], f"{row['vs_felzenszwalb']:.2f}x"]
        for row in figures["rows"]
    ]
    flags = " ".join(figures["cpu_instruction_sets"]) or "flags unknown"
    title = (
        f"seconds per photo, {figures['photos']}; {figures['cpu_name']} "
        f"({figures['cpu_count']} cores; {flags})"
    )
    table = render_table(["method", "mean s", "median s", "vs felzenszwalb"], rows, title=title)
    _finish(figures, table, args.json)
    return 0


def _finish(figures: dict[str, Any], table: str, json_path: Path | None) -> None:
    print(table)
    if json_path is not None:
        write_json(json_path, figures)


def run_refine(args: argparse.Namespace) -> int:
    """``bench refine``: 0 when the vote and the reference loop agree, else 1."""
    figures = bench_refine(
        shape=args.size, n_segments=args.n_segments, q=args.q, repeats=args.repeats
    )
    rows = [
        ["reference loop", f"{figures['loop_seconds'] * 1000:.2f} ms"],
        ["unsupseg bincount", f"{figures['vectorised_seconds'] * 1000:.3f} ms"],
        ["ratio", f"{figures['ratio']:.0f}x"],
        ["identical output", str(figures["identical"])],
    ]
    title = (
        f"Superpixel vote, {figures['image']}, {figures['n_superpixels']} superpixels, "
        f"q={figures['q']}"
    )
    _finish(figures, render_table(["measure", "value"], rows, title=title), args.json)
    return 0 if figures["identical"] else 1


def run_segment(args: argparse.Namespace) -> int:
    """``bench segment``: the variants' seconds per iteration, then the stop-rule run."""
    figures = bench_segment(
        shape=args.size,
        iterations=args.iterations,
        stop_run=not args.no_stop_run,
        stop_image=getattr(args, "stop_image", None),
        stop_max_iter=args.stop_max_iter,
    )
    rows = [
        [
            f"{row['variant']} ({row['device']}, {row['threads']} thr)",
            f"{row['seconds_per_iteration']:.3f}",
            f"{row['speedup_vs_reference']:.2f}x",
            ", ".join(row.get("auto_for", [])),
        ]
        for row in figures["variants"]
    ]
    title = f"Per-image segmentation, {figures['image']}, q={figures['q']}, 2 conv blocks"
    header = ["variant", "s/iteration", "vs reference", "default for"]
    lines = [render_table(header, rows, title=title)]
    lines.append(
        "default for: the methods whose segment runs this variant here with --precision auto "
        "and --layout auto (bf16 channels-last for kanezaki2018 on CPUs with AMX or "
        "AVX512-BF16; channels-last for fp32 on CPUs with AVX-512)"
    )
    stop = figures.get("stop_rule")
    if stop is not None:
        lines.append(
            f"stop rule on {Path(stop['image']).name} ({stop['device']}): "
            f"{stop['seconds']:.1f} s, {stop['iterations']} it, {stop['n_labels']} labels"
        )
    lines += [f"skipped: {reason}" for reason in figures["skipped"]]
    _finish(figures, "\n".join(lines), args.json)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """``bench train``: images/s per preset and device beside the thesis' (an unknown
    preset raises ConfigError: exit 2)."""
    figures = bench_train(presets=args.presets, steps=args.steps)
    rows = []
    for row in figures["rows"]:
        thesis, ratio = row["seed_images_per_second"], row["ratio_to_seed"]
        rows.append(
            [
                f"{row['preset']} ({row['device']}, {row['image_size']}px, "
                f"batch {row['batch_size']})",
                f"{row['images_per_second']:.1f}",
                "" if thesis is None else f"{thesis:.1f}",
                "" if ratio is None else f"{ratio:.1f}x",
            ]
        )
    title = "Training throughput, one step = forward + vote + losses + backward + step"
    columns = ["preset", "images/s", "thesis images/s", "ours / thesis"]
    _finish(figures, render_table(columns, rows, title=title), args.json)
    return 0
