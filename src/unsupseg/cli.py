"""Command-line interface: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from unsupseg.device import resolve_device
from unsupseg.io import ImageReadError, as_rgb_float, find_images, read_image
from unsupseg.samples import SAMPLE_NAMES, sample_image
from unsupseg.segment import METHODS, segment

log = logging.getLogger("unsupseg")


class _TqdmHandler(logging.Handler):
    """Log through tqdm so that messages do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def _number(kind: type, minimum: float, exclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` at least (or above) ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if value < minimum or (exclusive and value == minimum):
            bound = f"> {minimum}" if exclusive else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _add_segment_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "segment",
        help="segment images by per-image optimisation (Kanezaki 2018 / TIP 2020)",
        description=(
            "Optimise a fresh network on each image and write its label map, colour "
            "rendering, boundary overlay, panel figure and a JSON summary into "
            "OUT/<image name>/. With no input, segments the scikit-image sample photos "
            f"({', '.join(SAMPLE_NAMES)})."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        choices=METHODS,
        default="kanezaki2018",
        help="kanezaki2018: SLIC superpixel vote; tip2020: continuity loss",
    )
    parser.add_argument(
        "--q",
        type=_number(int, 2),
        default=100,
        help="output channels of the network: the most labels possible",
    )
    parser.add_argument(
        "--n-conv", type=_number(int, 1), default=2, help="number of 3x3 convolution blocks"
    )
    parser.add_argument(
        "--lr", type=_number(float, 0, exclusive=True), default=0.1, help="SGD learning rate"
    )
    parser.add_argument("--momentum", type=_number(float, 0), default=0.9, help="SGD momentum")
    parser.add_argument(
        "--max-iter", type=_number(int, 1), default=1000, help="most optimisation steps per image"
    )
    parser.add_argument(
        "--min-labels",
        type=_number(int, 1),
        default=None,
        help="stop when the argmax holds at most this many labels "
        "(default 3; with --scribble, the number of scribble classes)",
    )
    parser.add_argument(
        "--n-segments",
        type=_number(int, 1),
        default=10000,
        help="SLIC superpixels K (kanezaki2018)",
    )
    parser.add_argument(
        "--compactness",
        type=_number(float, 0, exclusive=True),
        default=100.0,
        help="SLIC compactness m (kanezaki2018)",
    )
    parser.add_argument(
        "--mu", type=_number(float, 0), default=1.0, help="weight of the continuity loss (tip2020)"
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
        type=_number(float, 0),
        default=0.5,
        help="weight of the scribble cross-entropy (tip2020)",
    )
    parser.add_argument(
        "--max-side",
        type=_number(int, 2),
        default=None,
        help="downscale images whose longer side exceeds this many pixels "
        "(results are upsampled back to the original size)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=_run_segment)


def _run_segment(args: argparse.Namespace) -> int:
    if args.scribble is not None and args.method != "tip2020":
        log.error("--scribble needs --method tip2020")
        return 2
    try:
        resolve_device(args.device)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    jobs, failures = collect_jobs(args.inputs)
    n_inputs = len(jobs) + len(failures)
    if args.scribble is not None and len(jobs) != 1:
        log.error("--scribble needs exactly one input image (got %d)", len(jobs))
        return 2
    scribble = None
    if args.scribble is not None:
        try:
            scribble = np.asarray(_read_scribble(args.scribble))
        except ImageReadError as exc:
            log.error("%s", exc)
            return 2
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
        seed=args.seed,
        device=args.device,
    )
    from unsupseg.outputs import write_image_outputs

    done = 0
    used_names: set[str] = set()
    bar = tqdm(jobs, desc="images", unit="image", disable=args.quiet or len(jobs) < 2)
    for source, name, load in bar:
        bar.set_postfix_str(name)
        name = unique_name(name, used_names)
        try:
            image = load()
            result = segment(image, return_details=True, progress=not args.quiet, **options)
            if args.method == "kanezaki2018":
                panels = [("Argmax output", result.argmax), ("SLIC output", result.labels)]
            else:
                panels = [("Argmax output", result.labels)]
            summary = {
                "input": source,
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "working_height": result.working_shape[0],
                "working_width": result.working_shape[1],
                "iterations": result.n_iterations,
                "seconds": round(result.seconds, 3),
                "slic_seconds": round(result.slic_seconds, 3),
                "parameters": result.params,
                "n_labels_per_iteration": result.n_labels_history,
            }
            folder = write_image_outputs(
                args.out / name, as_rgb_float(image), result.labels, panels, summary
            )
        except (ImageReadError, ValueError, RuntimeError, MemoryError) as exc:
            message = str(exc) if str(exc).startswith(source) else f"{source}: {exc}"
            failures.append((source, message))
            log.error("failed: %s", message)
            continue
        done += 1
        log.info(
            "%s: %d labels after %d iterations in %.1f s -> %s",
            source,
            result.n_labels,
            result.n_iterations,
            result.seconds,
            folder,
        )
    return finish_run(done, n_inputs, args.out, failures)


def finish_run(done: int, n_inputs: int, out: Path, failures: list[tuple[str, str]]) -> int:
    """Say where the outputs are and list the failures; the command's exit code."""
    if done:
        log.info(
            "Wrote %d of %d images to %s (one folder per image: panel.png, labels.png, "
            "labels.npy, color.png, overlay.png, summary.json)",
            done,
            n_inputs,
            out.resolve(),
        )
    if failures:
        log.error("%d input(s) failed:", len(failures))
        for _, message in failures:
            log.error("  %s", message)
        return 1
    if not done:
        log.error("nothing to segment")
        return 1
    return 0


def collect_jobs(
    inputs: Sequence[str],
) -> tuple[list[tuple[str, str, Callable[[], np.ndarray]]], list[tuple[str, str]]]:
    """(source, output name, loader) for each image, and (source, message) failures."""
    if not inputs:
        return [
            (f"skimage.data.{name}()", name, lambda name=name: sample_image(name))
            for name in SAMPLE_NAMES
        ], []
    paths, problems = find_images(list(inputs))
    jobs = [(str(path), path.stem, lambda path=path: read_image(path)) for path in paths]
    return jobs, [(str(path), message) for path, message in problems]


def _read_scribble(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.exists():
        raise ImageReadError(f"{path}: no such scribble file")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L") if img.mode not in ("L", "P", "I;16") else img)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read the scribble image ({exc})") from None


def unique_name(name: str, used: set[str]) -> str:
    candidate, index = name, 2
    while candidate in used:
        candidate, index = f"{name}-{index}", index + 1
    used.add(candidate)
    return candidate


def _add_models_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list the model presets with their trainable-parameter totals",
        description="List every preset (architecture-dataset) with its trainable parameters, "
        "q, training image size and training settings. The nine seed presets match the "
        "thesis appendix exactly.",
    )
    parser.add_argument("--json", action="store_true", help="print {preset: parameters} as JSON")
    parser.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    import json

    from unsupseg.models.registry import PRESETS, preset_parameter_table

    table = preset_parameter_table()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    header = f"{'preset':<24} {'parameters':>12} {'q':>4} {'size':>6}  training (seed: SPEC §3)"
    print(header)
    print("-" * len(header))
    for name, preset in PRESETS.items():
        size = preset.image_size or f"c{preset.crop_size}"
        training = (
            f"{preset.epochs} ep, lr {preset.lr:g}, batch {preset.batch_size}, "
            f"{preset.optimizer}{'' if preset.from_seed else ' (ours)'}"
        )
        print(f"{name:<24} {table[name]:>12,} {preset.q:>4} {size!s:>6}  {training}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``unsupseg`` argument parser with every subcommand."""
    from unsupseg import __version__
    from unsupseg.bench import add_bench_parser
    from unsupseg.evaluate import add_evaluate_parser
    from unsupseg.postprocess import add_postprocess_parser
    from unsupseg.predict import add_predict_parser
    from unsupseg.report import add_report_parser
    from unsupseg.stability import add_stability_parser
    from unsupseg.train import add_train_parser

    parser = argparse.ArgumentParser(
        prog="unsupseg",
        description="Unsupervised image segmentation by backpropagation with SLIC refinement.",
    )
    parser.add_argument("--version", action="version", version=f"unsupseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_segment_parser(commands)
    _add_models_parser(commands)
    add_train_parser(commands, _number)
    add_predict_parser(commands, _number)
    add_evaluate_parser(commands, _number)
    add_bench_parser(commands, _number)
    add_report_parser(commands, _number)
    add_postprocess_parser(commands, _number)
    add_stability_parser(commands, _number)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unsupseg`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    started = time.perf_counter()
    try:
        code = args.run(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    log.debug("done in %.1f s", time.perf_counter() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
