"""``unsupseg evaluate``: score a method, a checkpoint or saved predictions on a data set."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from unsupseg.checks import check_output_file
from unsupseg.cli.common import number, seed
from unsupseg.device import LAYOUTS, PRECISIONS
from unsupseg.evaluation import DEFAULT_SPLITS, METHODS, evaluate_dataset
from unsupseg.evaluation.hierarchical import HIERARCHICAL_METHODS, evaluate_hierarchy
from unsupseg.io import write_json
from unsupseg.tables import render_table

log = logging.getLogger("unsupseg")

__all__ = ["add_dataset_arguments", "add_parser", "run"]


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--split`` and ``--data-root``, as ``evaluate`` and ``postprocess``
    take them (opened by :func:`unsupseg.evaluation.open_scored_dataset`)."""
    parser.add_argument(
        "--dataset",
        required=True,
        choices=list(DEFAULT_SPLITS),
        help="data set to score on: bsds500 (images/<split>/<id>.jpg, groundTruth/<split>/"
        "<id>.mat); voc2012 (VOCdevkit/VOC2012/ with JPEGImages/<id>.jpg, "
        "SegmentationClass/<id>.png palette PNGs with 255 = void, ImageSets/Segmentation/"
        "<split>.txt; 21 classes with background); msrc (images/<id>.png, labels/<id>.png "
        "palette PNGs, 255 = void); folder (--data-root DIR: DIR/images/ and DIR/labels/"
        "<id>.png of class ids, 255 = void, palette or grayscale, scored like msrc with the "
        "classes of DIR/classes.csv or else every id found in the label files; without "
        "labels/, the images of DIR/images/ or DIR are scored by internal indices)",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="split to score (default: val for bsds500 and voc2012; all for msrc, whose "
        "folder holds one half of the database, or holdout: the every-5th images that "
        "unsupseg train holds out of training; all for folder, which scores DIR itself, "
        "while another name scores DIR/<name>)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data set folder (default: $UNSUPSEG_DATA/<bsds500|voc2012|msrc_v2>, else "
        "../shared/data/<the same> relative to the current directory; required for "
        "--dataset folder)",
    )


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg evaluate`` to the subcommands."""
    parser = commands.add_parser(
        "evaluate",
        help="score a method, a checkpoint or saved predictions on a data set",
        description="Score a segmentation method on BSDS500 (Kanezaki/TIP mIoU All/Fine/"
        "Coarse, covering, PRI, VI, boundary ODS/OIS), PASCAL VOC 2012 or MSRC-v2 "
        "(per-image best-IoU mIoU, Hungarian-matched mIoU and pixel accuracy), or a "
        "folder of images: with labels/ scored like MSRC-v2, without them by internal "
        "indices (silhouette, Calinski-Harabasz, Davies-Bouldin). Rows go to "
        "OUT/per_image.csv as each image is scored; a rerun with the same OUT skips the "
        "images already there.",
    )
    add_dataset_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--method",
        choices=[*METHODS, *HIERARCHICAL_METHODS],
        help="a baseline; a per-image optimisation (per-image or kanezaki2018: Kanezaki "
        "2018; tip2020; "
        "dynaseg-fsf, dynaseg-scf); or a hierarchy scored by the Berkeley "
        "protocol on bsds500 (ODS/OIS of covering, PRI, VI and mIoU; boundary P/R/F with "
        "one-to-one matching and AP): hierarchy (unsupseg's UCM, cut at its fixed grid of "
        "thresholds) or felzenszwalb-stack (scales 100-2000, sigma 0.8, min size 50); "
        "rows go to OUT/levels.csv, one per image and level",
    )
    source.add_argument("--checkpoint", type=Path, help="a trained model (unsupseg train)")
    source.add_argument(
        "--predictions",
        type=Path,
        help="folder of saved label maps: <id>.png, <id>.npy, or <id>/labels.npy as written "
        "by unsupseg segment/predict",
    )
    parser.add_argument(
        "--limit", type=number(int, 1), default=None, help="score only the first N images"
    )
    parser.add_argument(
        "--workers",
        type=number(int, 1),
        default=1,
        help="processes computing baselines and hierarchies (other methods run in this process)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder for per_image.csv (default: runs/evaluate/<dataset>-<split>-<name> "
        "relative to the current directory, with folder-<DIR's name> as the data set of "
        "--dataset folder)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--max-side",
        type=number(int, 16),
        default=None,
        help="per-image: downscale photos to this longest side for the optimisation",
    )
    parser.add_argument(
        "--fine-iter",
        type=number(int, 0),
        default=0,
        help="per-image: after the --max-side optimisation, at most this many iterations "
        "at full size (coarse to fine; default 0: none)",
    )
    parser.add_argument(
        "--max-iter", type=number(int, 1), default=1000, help="per-image: most iterations"
    )
    parser.add_argument("--seed", type=seed, default=0, help="per-image/k-means seed")
    parser.add_argument(
        "--refine",
        action="store_true",
        help="checkpoint: apply the superpixel majority vote to the argmax",
    )
    parser.add_argument(
        "--device", default=None, help="checkpoint/per-image device (default: CUDA if present)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="per-image: the network's arithmetic; auto: bf16 autocast for kanezaki2018 "
        "(per-image) on CPUs with AMX or AVX512-BF16, else fp32",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="per-image: the network's memory layout; auto: channels-last for bf16, and "
        "for fp32 on CPUs with AVX-512; contiguous otherwise",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Score the data set and print the summary; 0 when every image was scored, 1 when
    some failed (listed at the end; bad usage raises, and the CLI exits with 2)."""
    if args.json is not None:
        check_output_file(args.json, "--json file")
    if args.method in HIERARCHICAL_METHODS:
        return _run_hierarchy(args)
    evaluation = evaluate_dataset(
        args.dataset,
        method=args.method,
        checkpoint=args.checkpoint,
        predictions=args.predictions,
        split=args.split,
        data_root=args.data_root,
        limit=args.limit,
        workers=args.workers,
        out=args.out,
        refine=args.refine,
        max_side=args.max_side,
        fine_iter=args.fine_iter,
        max_iter=args.max_iter,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        layout=args.layout,
        progress=not args.quiet,
    )
    rows = list(evaluation.summary.items())
    print(render_table(["metric", "value"], rows, title=evaluation.title))
    return _finish(args, evaluation)


def _finish(args: argparse.Namespace, evaluation) -> int:
    if args.json is not None:
        try:
            write_json(args.json, evaluation.to_json())
        except OSError as exc:
            log.error("cannot write --json %s: %s", args.json, exc.strerror or exc)
            return 1
    log.info("Rows: %s", evaluation.csv_path.resolve())
    if evaluation.failures:
        log.error("%d image(s) failed (excluded from the figures):", len(evaluation.failures))
        for image_id, message in evaluation.failures:
            log.error("  %s: %s", image_id, message)
        return 1
    return 0


def _run_hierarchy(args: argparse.Namespace) -> int:
    """``--method hierarchy`` or ``felzenszwalb-stack``: the Berkeley protocol."""
    evaluation = evaluate_hierarchy(
        args.dataset,
        method=args.method,
        split=args.split,
        data_root=args.data_root,
        limit=args.limit,
        workers=args.workers,
        out=args.out,
        progress=not args.quiet,
    )
    header, rows = evaluation.table()
    print(render_table(header, rows, title=evaluation.title))
    summary = evaluation.summary
    if summary.get("n_images"):
        ods = summary["ods"]
        boundary = summary["boundary"]
        print(
            "ODS levels: "
            + ", ".join(f"{name} {ods[name]['threshold']:g}" for name in ods)
            + f"; boundary {boundary.get('ods_threshold')}, "
            + f"AP {boundary.get('ap', float('nan')):.4f}"
        )
    return _finish(args, evaluation)
