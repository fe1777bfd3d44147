"""``unsupseg segment``: per-image optimisation of files, folders or the sample photos."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from unsupseg.checks import check_memory, check_output_folder
from unsupseg.cli.common import (
    HelpFormatter,
    ImageJob,
    add_region_arguments,
    collect_jobs,
    failure_message,
    finish_run,
    image_summary,
    is_unwritable,
    number,
    seed,
    skip_remaining,
)
from unsupseg.device import LAYOUTS, PRECISIONS, resolve_device
from unsupseg.errors import ConfigError
from unsupseg.io import (
    PAGES,
    as_float_channels,
    as_rgb_float,
    display_rgb,
    read_scribble,
    sweep_stale_temporaries,
)
from unsupseg.outputs import write_image_outputs
from unsupseg.per_image import (
    METHODS,
    PADDING_CHOICES,
    UPSAMPLING,
    check_options,
    estimate_memory,
    segment,
)
from unsupseg.samples import SAMPLE_NAMES
from unsupseg.ucm import DATASET_THRESHOLD, THRESHOLDS, hierarchy
from unsupseg.ucm.levels import AUTO_CRITERION, LEVELS, select_level

log = logging.getLogger("unsupseg")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``unsupseg segment`` to the subcommands."""
    parser = commands.add_parser(
        "segment",
        help="segment images by per-image optimisation (Kanezaki 2018 / TIP 2020) or a hierarchy",
        description=(
            "Optimise a fresh network on each image (or, with --method hierarchy, build "
            "its hierarchy of nested regions) and write its label map, colour "
            "rendering, boundary overlay, panel figure and a JSON summary into "
            "OUT/<image name>/. With no input, segments the scikit-image sample photos "
            f"({', '.join(SAMPLE_NAMES)})."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="IMAGE_OR_FOLDER",
        help="image files and folders of images (default: the scikit-image sample photos)",
    )
    parser.add_argument("--out", type=Path, default=Path("unsupseg-output"), help="output folder")
    parser.add_argument(
        "--method",
        choices=[*METHODS, "hierarchy"],
        default="kanezaki2018",
        help="kanezaki2018: SLIC superpixel vote; tip2020: continuity loss; dynaseg-fsf, "
        "dynaseg-scf: DynaSeg's continuity weight that follows the label count; hierarchy: "
        "nested regions of an ultrametric contour map (no network; also writes "
        "hierarchy.npy and ucm.png)",
    )
    parser.add_argument(
        "--level",
        type=_level,
        default="dataset",
        help="hierarchy: the cut written as labels: dataset (the threshold chosen on "
        f"BSDS500 val, {DATASET_THRESHOLD:g}), auto (chosen per image without ground "
        "truth, by the criterion '" + AUTO_CRITERION + "') or a threshold in [0, 1]",
    )
    add_region_arguments(parser, hierarchy=True)
    parser.add_argument(
        "--q",
        type=number(int, 2),
        default=100,
        help="output channels of the network: the most labels possible",
    )
    parser.add_argument(
        "--n-conv", type=number(int, 1), default=2, help="number of 3x3 convolution blocks"
    )
    parser.add_argument(
        "--lr", type=number(float, 0, exclusive=True), default=0.1, help="SGD learning rate"
    )
    parser.add_argument("--momentum", type=number(float, 0), default=0.9, help="SGD momentum")
    parser.add_argument(
        "--max-iter", type=number(int, 1), default=1000, help="most optimisation steps per image"
    )
    parser.add_argument(
        "--min-labels",
        type=number(int, 1),
        default=None,
        help="stop when the argmax holds at most this many labels "
        "(default 3; with --scribble, the number of scribble classes)",
    )
    parser.add_argument(
        "--n-segments",
        type=number(int, 1),
        default=10000,
        help="SLIC superpixels K (kanezaki2018)",
    )
    parser.add_argument(
        "--compactness",
        type=number(float, 0, exclusive=True),
        default=100.0,
        help="SLIC compactness m (kanezaki2018)",
    )
    parser.add_argument(
        "--mu", type=number(float, 0), default=1.0, help="weight of the continuity loss (tip2020)"
    )
    parser.add_argument(
        "--scribble",
        type=Path,
        default=None,
        help="tip2020 with one input image: a label PNG of its size, class "
        "ids where scribbled and 255 elsewhere",
    )
    parser.add_argument(
        "--scribble-weight",
        type=number(float, 0),
        default=0.5,
        help="weight of the scribble cross-entropy (tip2020)",
    )
    parser.add_argument(
        "--max-side",
        type=number(int, 2),
        default=None,
        help="downscale images whose longer side exceeds this many pixels for the "
        "optimisation (labels are computed at the original size, see --upsample, except "
        "for files over 2048x2048 pixels: "
        "those are read reduced, never decoded in full, and their outputs have the "
        "reduced size)",
    )
    parser.add_argument(
        "--upsample",
        choices=UPSAMPLING,
        default="response",
        help="how a run downscaled by --max-side comes back to full size: response "
        "(bilinear upsampling of the response map, its argmax and, for kanezaki2018, "
        "the superpixel vote on SLIC at full size: edges follow the image) or nearest "
        "(the working labels enlarged: blocky edges)",
    )
    parser.add_argument(
        "--fine-iter",
        type=number(int, 0),
        default=0,
        help="coarse to fine: after the --max-side optimisation, go on for at most this "
        "many iterations at full size with the same network (and, for kanezaki2018, SLIC "
        "at full size); the labels are then those of full size, --upsample unused "
        "(default 0: none)",
    )
    parser.add_argument(
        "--padding",
        choices=PADDING_CHOICES,
        default="auto",
        help="padding of the network's 3x3 convolutions: zeros (the reference code; border "
        "pixels tend to get a frame label of their own), replicate (edge pixels repeated) "
        "or auto (replicate for tip2020 and dynaseg, zeros for kanezaki2018)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the network: auto picks bf16 autocast (channels-last) for "
        "kanezaki2018 on CPUs with AMX or AVX512-BF16, where it was measured to score as "
        "fp32; fp32 otherwise (tip2020 scored lower in bf16)",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="memory layout of the network's tensors: auto picks channels-last for bf16, "
        "and for fp32 on CPUs with AVX-512, where it is faster; contiguous otherwise "
        "(the layouts differ only in floating-point rounding)",
    )
    parser.add_argument(
        "--pages",
        choices=PAGES,
        default=None,
        help="how to read a plain multi-page TIFF or the frames of an animated GIF, PNG "
        "or WebP: first (its first page), each (every "
        "page as its own image, OUT/<name>-pageNNN) or volume (the pages as Z slices, "
        "segmented in 3-D); default: refuse it. A TIFF whose axes say Z (ZYX, ZYXS, "
        "ZCYX) is a volume without this option",
    )
    parser.add_argument("--seed", type=seed, default=0, help="random seed")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def _level(text: str) -> str | float:
    """``--level``: ``dataset``, ``auto`` or a finite threshold in [0, 1]."""
    if text in LEVELS:
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected dataset, auto or a number in [0, 1]; got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"a threshold must be in [0, 1]; got {text}")
    return value


def _hierarchy_panels(tree, ucm: np.ndarray, labels: np.ndarray, threshold: float) -> list:
    """The panel after the photo: the UCM (dark = strong), then a finer cut, the chosen
    one and a coarser one (thresholds 0.125 below and above it)."""
    panels = [("UCM", np.repeat((255 - ucm // 257).astype(np.uint8)[..., None], 3, -1))]
    finer = tree.cut(max(threshold - 0.125, 0.0))
    coarser = tree.cut(min(threshold + 0.125, 1.0))
    for name, cut in (("finer", finer), ("chosen", labels), ("coarser", coarser)):
        panels.append((f"{name}: {int(cut.max()) + 1} regions", cut))
    return panels


def _each_image(
    args: argparse.Namespace,
    jobs: list[ImageJob],
    failures: list[tuple[str, str]],
    n_inputs: int,
    work: Callable[[ImageJob], str],
) -> int:
    """Run ``work`` on every job (it writes the outputs and returns the line to log);
    a failing image is reported and the others go on. The command's exit code."""
    done = 0
    bar = tqdm(jobs, desc="images", unit="image", disable=args.quiet or len(jobs) < 2)
    for job in bar:
        source = job.source
        bar.set_postfix_str(job.name)
        try:
            line = work(job)
        except (ValueError, RuntimeError, MemoryError, OSError) as exc:  # reported per image
            message = failure_message(source, exc)
            failures.append((source, message))
            log.error("failed: %s", message)
            if is_unwritable(exc):
                skip_remaining(jobs, job, failures, args.out)
                break
            continue
        done += 1
        log.info("%s", line)
    bar.close()
    return finish_run(done, n_inputs, args.out, failures)


def _geotiff_tags(
    job: ImageJob, image: np.ndarray, labels: np.ndarray, summary: dict
) -> list | None:
    """The input's GeoTIFF tags for ``labels.tif``, only when the labels have the file's
    full size: a file over 2048x2048 read reduced with --max-side would give them the
    wrong pixel size. ``summary`` records the tags copied, or why none were."""
    if not job.tiff_tags:
        return None
    if job.file_size(image) or labels.shape != image.shape[:2]:
        summary["geotiff_tags"] = "not copied: the labels are smaller than the input file"
        log.warning("%s: GeoTIFF tags not copied to labels.tif (read reduced)", job.source)
        return None
    summary["geotiff_tags"] = sorted(int(tag[0]) for tag in job.tiff_tags)
    return list(job.tiff_tags)


def _hierarchy_job(args: argparse.Namespace, job: ImageJob) -> str:
    """``--method hierarchy`` on one image: cut its hierarchy, write its stack and UCM."""
    image = job.load()
    if job.volume or image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ConfigError(
            f"--method hierarchy segments 2-D grayscale or RGB images; {job.source} has "
            f"shape {image.shape}{' (a volume)' if job.volume else ''}: use another --method"
        )
    rgb = as_rgb_float(image)
    started = time.perf_counter()
    tree = hierarchy(rgb)
    labels, info = select_level(
        tree,
        rgb,
        level=args.level,
        segments=args.segments,
        dataset_threshold=DATASET_THRESHOLD,
        thresholds=THRESHOLDS,
    )
    seconds = time.perf_counter() - started
    ucm = np.round(tree.ucm * 65535).astype(np.uint16)
    summary = {
        "input": job.source,
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        **job.file_size(image),
        "method": "hierarchy",
        **info,
        "n_leaves": tree.n_leaves,
        "hierarchy_thresholds": list(THRESHOLDS),
        "ucm_png_scale": 65535,
        "seconds": round(seconds, 3),
    }
    folder = write_image_outputs(
        args.out / job.name,
        rgb,
        labels,
        _hierarchy_panels(tree, ucm, labels, info["threshold"]),
        summary,
        extras={"hierarchy.npy": tree.stack(THRESHOLDS), "ucm.png": ucm},
        tiff_tags=_geotiff_tags(job, image, labels, summary),
    )
    return (
        f"{job.source}: {info['n_regions']} regions (threshold {info['threshold']:.3g}, "
        f"{tree.n_leaves} leaves) in {seconds:.1f} s -> {folder}"
    )


def _optimise_job(args: argparse.Namespace, options: dict, job: ImageJob) -> str:
    """Per-image optimisation of one image, its outputs written."""
    image = job.load()
    result = segment(image, volume=job.volume, return_details=True,
                     progress=not args.quiet, **options)  # fmt: skip
    if args.segments is not None or args.connected:
        title = f"{args.segments} regions" if args.segments else "Connected regions"
        panels = [("Argmax output", result.argmax), (title, result.labels)]
    elif args.method == "kanezaki2018":
        panels = [("Argmax output", result.argmax), ("SLIC output", result.labels)]
    else:
        panels = [("Argmax output", result.labels)]
    summary = image_summary(job.source, image, result, digits=3, **job.file_size(image))
    picture = display_rgb(as_float_channels(image, volume=job.volume))
    tags = _geotiff_tags(job, image, result.labels, summary)
    folder = write_image_outputs(
        args.out / job.name, picture, result.labels, panels, summary, tiff_tags=tags
    )
    return (
        f"{job.source}: {result.n_labels} labels after {result.n_iterations} iterations "
        f"in {result.seconds:.1f} s -> {folder}"
    )


def run(args: argparse.Namespace) -> int:
    """Segment every input; 0 when all succeeded, 1 when some failed."""
    if args.scribble is not None and args.method != "tip2020":
        log.error("--scribble needs --method tip2020")
        return 2
    resolve_device(args.device)
    check_output_folder(args.out)
    sweep_stale_temporaries(args.out)
    if args.method != "hierarchy":  # the settings and the weights, before any image
        check_options(
            method=args.method, q=args.q, n_conv=args.n_conv, lr=args.lr,
            momentum=args.momentum, max_iter=args.max_iter, min_labels=args.min_labels,
            n_segments=args.n_segments, compactness=args.compactness, mu=args.mu,
            scribble_weight=args.scribble_weight, max_side=args.max_side, seed=args.seed,
            upsample=args.upsample, padding=args.padding, precision=args.precision,
            fine_iter=args.fine_iter, layout=args.layout,
        )  # fmt: skip
        check_memory(
            estimate_memory(args.q, args.n_conv, 1, 1),
            f"a network with --q {args.q} and --n-conv {args.n_conv}",
            "lower --q",
        )
    jobs, failures = collect_jobs(args.inputs, max_side=args.max_side, pages=args.pages)
    n_inputs = len(jobs) + len(failures)
    if args.scribble is not None and len(jobs) != 1:
        log.error("--scribble needs exactly one input image (got %d)", len(jobs))
        return 2
    if args.method == "hierarchy":
        return _each_image(args, jobs, failures, n_inputs, partial(_hierarchy_job, args))
    scribble = None if args.scribble is None else read_scribble(args.scribble)
    options = dict(
        method=args.method,
        q=args.q,
        n_conv=args.n_conv,
        lr=args.lr,
        momentum=args.momentum,
        max_iter=args.max_iter,
        min_labels=args.min_labels,
        n_segments=args.n_segments,
        compactness=args.compactness,
        mu=args.mu,
        scribble=scribble,
        scribble_weight=args.scribble_weight,
        max_side=args.max_side,
        fine_iter=args.fine_iter,
        upsample=args.upsample,
        padding=args.padding,
        precision=args.precision,
        layout=args.layout,
        segments=args.segments,
        connected=args.connected,
        seed=args.seed,
        device=args.device,
    )
    return _each_image(args, jobs, failures, n_inputs, partial(_optimise_job, args, options))
