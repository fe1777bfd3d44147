"""``unsupseg postprocess``: merge noisy segments with seven clusterers and pick the best."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from unsupseg.cli.common import number, seed
from unsupseg.cli.evaluate import add_dataset_arguments
from unsupseg.errors import ConfigError
from unsupseg.postprocess import CLUSTERERS, DEFAULT_GRID, GT_SCORES, INDICES, postprocess_dataset
from unsupseg.tables import render_table

log = logging.getLogger("unsupseg")

__all__ = ["add_parser", "parse_grid", "run"]


def parse_grid(text: str | None) -> dict[str, tuple[float, ...]]:
    """The values per clusterer of ``--grid`` (``"kmeans=4,8;dbscan=6"``).

    Raises
    ------
    ConfigError
        For a part that is not ``CLUSTERER=V1,V2``, names no clusterer, or holds a value
        that is not a number.
    """
    grid: dict[str, tuple[float, ...]] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip()
        if not sep or name not in CLUSTERERS:
            raise ConfigError(
                f"--grid: expected CLUSTERER=V1,V2 with a clusterer of "
                f"{', '.join(CLUSTERERS)}; got {part!r}"
            )
        try:
            grid[name] = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"--grid: {part!r} has a value that is not a number") from None
        if not grid[name]:
            raise ConfigError(f"--grid: {part!r} lists no value")
    return grid


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg postprocess`` to the subcommands."""
    parser = commands.add_parser(
        "postprocess",
        help="merge noisy segments with seven clusterers and pick the best",
        description="Split each prediction into its 4-connected regions, cluster the "
        "regions (mean CIELAB colour and centroid) with k-means, mini-batch k-means, Ward, "
        "BIRCH, a Gaussian mixture, mean shift and DBSCAN over a small grid, score every "
        "result by silhouette, Calinski-Harabasz and Davies-Bouldin (and by ground truth "
        "where the data set has it), and choose the best setting per image and per data set.",
    )
    add_dataset_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="predict with this trained model")
    source.add_argument(
        "--predictions",
        type=Path,
        help="folder of saved label maps (<id>.png, <id>.npy or <id>/labels.npy)",
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="checkpoint: apply the superpixel majority vote before merging",
    )
    parser.add_argument(
        "--methods",
        default=",".join(CLUSTERERS),
        help=f"comma-separated clusterers (default: all of {', '.join(CLUSTERERS)})",
    )
    parser.add_argument(
        "--grid",
        default=None,
        help="parameter values per clusterer, e.g. 'kmeans=4,8,16;dbscan=8' (default: "
        + "; ".join(f"{m}={','.join(str(v) for v in vs)}" for m, vs in DEFAULT_GRID.items())
        + ")",
    )
    parser.add_argument(
        "--select",
        choices=sorted(INDICES),
        default="silhouette",
        help="internal index that chooses the setting of each image (default silhouette)",
    )
    parser.add_argument(
        "--choose-by",
        choices=sorted([*GT_SCORES, *INDICES]),
        default=None,
        help="score that chooses one setting for the data set (default: covering on "
        "BSDS500, since the mIoU does not penalise fragments; miou_per_image on VOC, "
        "MSRC-v2 and labelled folders; the --select index without ground truth)",
    )
    parser.add_argument(
        "--samples",
        type=number(int, 2),
        default=2000,
        help="pixels sampled for the internal indices (default 2000)",
    )
    parser.add_argument("--seed", type=seed, default=0, help="clusterer seed")
    parser.add_argument(
        "--figure-images", type=number(int, 0), default=4, help="images in comparison.png"
    )
    parser.add_argument(
        "--limit", type=number(int, 1), default=None, help="only the first N images"
    )
    parser.add_argument(
        "--workers", type=number(int, 1), default=1, help="processes merging images"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/postprocess/<dataset>-<split>-<source> relative "
        "to the current directory)",
    )
    parser.add_argument("--device", default=None, help="checkpoint device (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print its table; 0 when every image was processed, 1 when some
    failed (bad usage raises, and the CLI exits with 2)."""
    result = postprocess_dataset(
        args.dataset,
        checkpoint=args.checkpoint,
        predictions=args.predictions,
        split=args.split,
        data_root=args.data_root,
        refine=args.refine,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        grid=parse_grid(args.grid),
        select=args.select,
        choose_by=args.choose_by,
        samples=args.samples,
        seed=args.seed,
        figure_images=args.figure_images,
        limit=args.limit,
        workers=args.workers,
        out=args.out,
        device=args.device,
        progress=not args.quiet,
    )
    summary, table = result.summary, result.table
    print(render_table(table["columns"], table["rows"], title=summary["title"]))
    print(
        f"data-set choice (by {summary['choose_by']}): {result.chosen_dataset}; label maps in "
        f"{result.out / 'chosen-dataset'}"
    )
    print(f"per-image choice (by {args.select}): label maps in {result.out / 'chosen-image'}")
    if result.failures:
        log.error("%d image(s) failed:", len(result.failures))
        for image_id, message in result.failures:
            log.error("  %s: %s", image_id, message)
        return 1
    return 0
