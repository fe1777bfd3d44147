"""Benchmarks: ``unsupseg bench refine`` and ``unsupseg bench segment``.

Each prints a table and, with ``--json FILE``, writes its figures. Times are medians
over repeats, measured side by side in one process, so ratios are what to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize

from unsupseg.device import resolve_device
from unsupseg.io import as_rgb_float, read_image, write_json
from unsupseg.models.kanezaki import KanezakiNet
from unsupseg.per_image import segment
from unsupseg.refine import refine_by_superpixel_vote
from unsupseg.samples import sample_image
from unsupseg.superpixels import slic_superpixels

log = logging.getLogger("unsupseg")

#: The benchmark image size of the issue and the reference code: BSDS500's 481x321.
BENCH_SHAPE = (321, 481)
#: Where the real BSDS500 photo for the stop-rule timing is looked for by default.
DEFAULT_STOP_IMAGE = Path("../shared/data/bsds500/images/val/3096.jpg")


def _size(text: str) -> tuple[int, int]:
    """Parse WIDTHxHEIGHT into (height, width)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT such as 481x321, got {text!r}"
        ) from None
    if width < 2 or height < 2:
        raise argparse.ArgumentTypeError(f"image size must be at least 2x2, got {text}")
    return height, width


def add_bench_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    parser = commands.add_parser(
        "bench",
        help="speed benchmarks (refinement, per-image segmentation)",
        description="Speed benchmarks. Each prints a table; --json FILE writes its figures.",
    )
    benches = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")

    refine = benches.add_parser(
        "refine",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    refine.add_argument(
        "--size",
        type=_size,
        default="481x321",
        metavar="WxH",
        help="image size (481x321 is BSDS500's)",
    )
    refine.add_argument("--json", type=Path, default=None, help="write the figures here")
    refine.set_defaults(run=run_refine_bench)

    seg = benches.add_parser(
        "segment",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        default=DEFAULT_STOP_IMAGE,
        help="photo segmented to the stop rule (BSDS500 val 3096.jpg); skipped when missing",
    )
    seg.add_argument(
        "--stop-max-iter",
        type=number(int, 1),
        default=1000,
        help="iteration limit of the stop-rule run",
    )
    seg.add_argument("--no-stop-run", action="store_true", help="skip the stop-rule run")
    seg.add_argument(
        "--size",
        type=_size,
        default="481x321",
        metavar="WxH",
        help="image size (481x321 is BSDS500's)",
    )
    seg.add_argument("--json", type=Path, default=None, help="write the figures here")
    seg.set_defaults(run=run_segment_bench)

    train = benches.add_parser(
        "train",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="training throughput (images/s) of each preset against the seed's wall times",
        description="Images per second of one training step (forward, refinement, losses, "
        "backward, optimiser step) of each preset at its image size and batch size, on "
        "synthetic images with real SLIC superpixels; on the CPU, and on CUDA when "
        "available. The seed's reported wall times (SPEC §3) are converted to images/s "
        "beside them (epochs x training images / seconds).",
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
    train.add_argument("--json", type=Path, default=None, help="write the figures here")
    train.set_defaults(run=run_train_bench)


def bench_image(shape: tuple[int, int] = BENCH_SHAPE) -> np.ndarray:
    """A real photo, scikit-image's coffee (600x400: 481x321 has the same aspect), resized."""
    coffee = as_rgb_float(sample_image("coffee"))
    return resize(coffee, shape, anti_aliasing=True, preserve_range=True).astype(np.float32)


def refine_by_loop_reference(labels: np.ndarray, superpixel_pixels: list[np.ndarray]) -> np.ndarray:
    """The reference code's refinement, kept as it was written, for comparison.

    ``superpixel_pixels`` are the flat pixel indices of each superpixel (the
    reference's ``l_inds``, computed once per image).
    """
    target = labels.copy()
    for indices in superpixel_pixels:
        labels_per_sp = target[indices]
        u_labels_per_sp = np.unique(labels_per_sp)
        hist = np.zeros(len(u_labels_per_sp))
        for j in range(len(hist)):
            hist[j] = len(np.where(labels_per_sp == u_labels_per_sp[j])[0])
        target[indices] = u_labels_per_sp[np.argmax(hist)]
    return target


def pixels_of_superpixels(superpixels: np.ndarray) -> list[np.ndarray]:
    """The reference's ``l_inds``: sorted flat pixel indices of each superpixel id.

    One stable argsort instead of the reference's ``np.where`` per superpixel, which
    scans the whole image once per superpixel (setup only; it is not timed).
    """
    flat = superpixels.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat)
    return [group for group in np.split(order, np.cumsum(counts)[:-1]) if group.size]


def _median_seconds(function: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_refine_bench(args: argparse.Namespace) -> int:
    shape = tuple(args.size)
    image = bench_image(shape)
    superpixels = slic_superpixels(image, n_segments=args.n_segments, compactness=100)
    n_superpixels = int(superpixels.max()) + 1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.q, size=shape, dtype=np.int64)
    superpixel_pixels = pixels_of_superpixels(superpixels)

    looped = refine_by_loop_reference(labels.reshape(-1), superpixel_pixels)
    labels_t = torch.from_numpy(labels)
    superpixels_t = torch.from_numpy(superpixels)
    vectorised = refine_by_superpixel_vote(labels_t, superpixels_t, args.q)
    identical = bool(np.array_equal(looped.reshape(shape), vectorised.numpy()))

    loop_seconds = _median_seconds(
        lambda: refine_by_loop_reference(labels.reshape(-1), superpixel_pixels), args.repeats
    )
    vectorised_seconds = _median_seconds(
        lambda: refine_by_superpixel_vote(labels_t, superpixels_t, args.q), args.repeats * 20
    )
    figures = {
        "benchmark": "refine",
        "image": f"{shape[1]}x{shape[0]} (skimage coffee, resized)",
        "n_superpixels": n_superpixels,
        "q": args.q,
        "labels": "uniform random",
        "loop_seconds": loop_seconds,
        "vectorised_seconds": vectorised_seconds,
        "ratio": loop_seconds / vectorised_seconds,
        "identical": identical,
        **_machine(),
    }
    _print_table(
        f"Superpixel vote, {figures['image']}, {n_superpixels} superpixels, q={args.q}",
        [
            ("reference loop", f"{loop_seconds * 1000:.2f} ms"),
            ("unsupseg bincount", f"{vectorised_seconds * 1000:.3f} ms"),
            ("ratio", f"{figures['ratio']:.0f}x"),
            ("identical output", str(identical)),
        ],
    )
    if args.json:
        write_json(args.json, figures)
    return 0 if identical else 1


def _reference_step_factory(x: torch.Tensor, superpixels: np.ndarray, q: int) -> Callable:
    """One iteration as the reference code does it: permuted view, numpy loop."""
    torch.manual_seed(0)
    model = KanezakiNet(q=q, n_conv=2)  # the reference network's layers
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pixels = pixels_of_superpixels(superpixels)

    def step() -> None:
        optimizer.zero_grad()
        output = model(x)[0]
        output = output.permute(1, 2, 0).contiguous().view(-1, q)
        _, target = torch.max(output, 1)
        im_target = target.numpy()
        len(np.unique(im_target))  # the reference counts labels every iteration
        im_target = refine_by_loop_reference(im_target, pixels)
        loss = F.cross_entropy(output, torch.from_numpy(im_target))
        loss.backward()
        optimizer.step()

    return step


def _unsupseg_step_factory(
    x: torch.Tensor,
    superpixels: torch.Tensor,
    q: int,
    channels_last: bool = False,
    autocast: torch.dtype | None = None,
) -> Callable:
    """One iteration as :func:`unsupseg.per_image` does it, with optional variants."""
    torch.manual_seed(0)
    model = KanezakiNet(q=q, n_conv=2).to(x.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    autocast_context = (
        (lambda: torch.autocast(x.device.type, dtype=autocast))
        if autocast
        else contextlib.nullcontext
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast_context():
            response = model(x)
        response = response.float()
        target = refine_by_superpixel_vote(response.detach().argmax(1), superpixels, q)
        loss = F.cross_entropy(response, target)
        loss.backward()
        optimizer.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    return step


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX512", "AVX512_BF16"):
        return False
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def time_step_variant(spec: dict[str, Any]) -> float:
    """Median seconds of one iteration of a variant (run in its own process)."""
    shape = tuple(spec["shape"])
    image = bench_image(shape)
    superpixels = slic_superpixels(image, n_segments=10000, compactness=100)
    device = torch.device(spec["device"])
    torch.set_num_threads(spec["threads"])
    x = torch.from_numpy(image.transpose(2, 0, 1).copy()).unsqueeze(0).to(device)
    q = spec["q"]
    if spec["step"] == "reference":
        step = _reference_step_factory(x, superpixels, q)
    else:
        spx = torch.from_numpy(superpixels).unsqueeze(0).to(device)
        step = _unsupseg_step_factory(
            x,
            spx,
            q,
            channels_last=spec["step"] == "channels-last",
            autocast=torch.bfloat16 if spec["step"] == "bf16" else None,
        )
    step()  # warm-up
    return _median_seconds(step, spec["iterations"])


def _run_variant(spec: dict[str, Any]) -> float:
    """Time a variant in a fresh interpreter: huge pages are fixed at torch's start."""
    env = dict(os.environ, THP_MEM_ALLOC_ENABLE="1" if spec["huge_pages"] else "0")
    done = subprocess.run(
        [sys.executable, "-m", "unsupseg.bench", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"variant {spec['name']} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def run_segment_bench(args: argparse.Namespace) -> int:
    q = 100
    shape = tuple(args.size)
    threads = torch.get_num_threads()
    common = {"shape": shape, "q": q, "iterations": args.iterations}
    variants = [
        {"name": "reference", "step": "reference", "huge_pages": False},
        {"name": "unsupseg without huge pages", "step": "unsupseg", "huge_pages": False},
        {"name": "unsupseg", "step": "unsupseg", "huge_pages": True},
        {"name": "unsupseg channels-last", "step": "channels-last", "huge_pages": True},
    ]
    variants = [{**v, "device": "cpu", "threads": threads} for v in variants]
    if threads > 1:
        variants.append({"name": "unsupseg", "step": "unsupseg", "huge_pages": True,
                         "device": "cpu", "threads": 1})  # fmt: skip
    skipped = []
    if cpu_supports_bf16():
        variants.append({"name": "unsupseg bf16 autocast", "step": "bf16", "huge_pages": True,
                         "device": "cpu", "threads": threads})  # fmt: skip
    else:
        skipped.append(
            "bf16 autocast on CPU: no AVX512-BF16/AMX instructions here "
            "(emulated bfloat16 is many times slower)"
        )
    if torch.cuda.is_available():
        for name, step in (("unsupseg", "unsupseg"), ("unsupseg bf16 autocast", "bf16"),
                           ("unsupseg channels-last", "channels-last")):  # fmt: skip
            variants.append({"name": name, "step": step, "huge_pages": True,
                             "device": "cuda", "threads": threads})  # fmt: skip
    else:
        skipped.append("CUDA: not available on this machine")

    rows = []
    for variant in variants:
        seconds = _run_variant({**common, **variant})
        rows.append({
            "variant": variant["name"], "device": variant["device"],
            "threads": variant["threads"], "huge_pages": variant["huge_pages"],
            "seconds_per_iteration": seconds,
        })  # fmt: skip
        log.info("%-28s %-4s %d threads: %.3f s/iteration", variant["name"],
                 variant["device"], variant["threads"], seconds)  # fmt: skip
    reference = rows[0]["seconds_per_iteration"]
    for row in rows:
        row["speedup_vs_reference"] = reference / row["seconds_per_iteration"]

    figures: dict[str, Any] = {
        "benchmark": "segment",
        "image": f"{shape[1]}x{shape[0]} (skimage coffee, resized)",
        "q": q, "n_conv": 2, "iterations_timed": args.iterations,
        "variants": rows, "skipped": skipped, **_machine(),
    }  # fmt: skip
    table = [
        (
            f"{r['variant']} ({r['device']}, {r['threads']} thr)",
            f"{r['seconds_per_iteration']:.3f} s/it  {r['speedup_vs_reference']:.2f}x",
        )
        for r in rows
    ]

    if not args.no_stop_run:
        if args.stop_image.exists():
            photo = read_image(args.stop_image)
            result = segment(photo, max_iter=args.stop_max_iter, return_details=True, seed=0)
            figures["stop_rule"] = {
                "image": str(args.stop_image),
                "iterations": result.n_iterations,
                "seconds": result.seconds,
                "n_labels": result.n_labels,
                "seconds_per_iteration": statistics.median(result.iteration_seconds),
                "device": result.params["device"],
            }
            table.append((
                f"stop rule on {args.stop_image.name} ({result.params['device']})",
                f"{result.seconds:.1f} s, {result.n_iterations} it, {result.n_labels} labels",
            ))  # fmt: skip
        else:
            skipped.append(f"stop-rule run: {args.stop_image} not found")
    for reason in skipped:
        table.append(("skipped", reason))
    _print_table(f"Per-image segmentation, {figures['image']}, q={q}, 2 conv blocks", table)
    if args.json:
        write_json(args.json, figures)
    return 0


def _machine() -> dict[str, Any]:
    from unsupseg.outputs import library_versions

    return {
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "processor": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "versions": library_versions(),
    }


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    print(title)
    print("-" * len(title))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


#: The seed's training wall times (SPEC §3) as (epochs, seconds), and the training images
#: of one epoch (CIFAR-10 50,000; STL-10 5,000; VOC 2012 segmentation train 1,464).
SEED_WALL_TIMES: dict[str, tuple[int, float]] = {
    "base-cifar10": (30, 5 * 3600 + 39 * 60 + 53),
    "base-stl10": (30, 7 * 3600 + 15 * 60 + 10),
    "base-voc2012": (30, 8 * 3600 + 37 * 60 + 34),
    "classifier-cifar10": (30, 3 * 3600 + 54 * 60 + 18),
    "classifier-stl10": (30, 6 * 3600),
    "classifier-voc2012": (30, 32 * 3600 + 37 * 60 + 21),
    "autoencoder-cifar10": (100, 7 * 3600 + 26 * 60 + 49),
    "autoencoder-stl10": (50, 9 * 3600),
    "autoencoder-voc2012": (100, 21 * 3600 + 35 * 60 + 56),
}
SEED_TRAIN_IMAGES = {"cifar10": 50000, "stl10": 5000, "voc2012": 1464}


def seed_images_per_second(preset: str) -> float | None:
    """The seed's reported throughput of a preset, or None where it reported none."""
    if preset not in SEED_WALL_TIMES:
        return None
    epochs, seconds = SEED_WALL_TIMES[preset]
    return epochs * SEED_TRAIN_IMAGES[preset.split("-", 1)[1]] / seconds


def _training_batch(preset: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch of the preset's size: smooth random images with their real SLIC."""
    from unsupseg.data.cache import default_slic_params

    side = preset.image_size or preset.crop_size
    rng = np.random.default_rng(0)
    images, superpixels = [], []
    for _ in range(preset.batch_size):
        coarse = rng.random((max(2, side // 8), max(2, side // 8), 3))
        image = resize(coarse, (side, side), order=1).astype(np.float32)
        n_segments, compactness = default_slic_params(side, side)
        images.append(image.transpose(2, 0, 1))
        superpixels.append(slic_superpixels(image, n_segments, compactness))
    n_classes = preset.classifier_outputs or 1
    if preset.multi_label:
        target = torch.from_numpy(rng.integers(0, 2, (preset.batch_size, n_classes))).float()
    else:
        target = torch.from_numpy(rng.integers(0, n_classes, preset.batch_size))
    return {
        "image": torch.from_numpy(np.stack(images)).to(device),
        "superpixels": torch.from_numpy(np.stack(superpixels)).to(device),
        "target": target.to(device),
    }


def run_train_bench(args: argparse.Namespace) -> int:
    from unsupseg.lightning import SegmentationModule
    from unsupseg.models.registry import PRESETS, build_model, get_preset

    try:
        presets = [get_preset(name) for name in (args.presets or list(PRESETS))]
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(resolve_device("cuda"))
    rows = []
    for device in devices:
        for preset in presets:
            torch.manual_seed(0)
            model = build_model(preset, backbone_weights=False).to(device)
            module = SegmentationModule(
                model,
                aux_weight=preset.aux_weight,
                multi_label=preset.multi_label,
                optimizer=preset.optimizer,
                lr=preset.lr,
                momentum=preset.momentum,
                lr_step_size=preset.lr_step_size,
                lr_gamma=preset.lr_gamma,
            ).to(device)
            optimizer = module.configure_optimizers()["optimizer"]
            batch = _training_batch(preset, device)
            autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

            def step(module=module, optimizer=optimizer, batch=batch, autocast=autocast) -> None:
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    terms = module.compute_losses(batch)
                terms["loss"].backward()
                optimizer.step()
                if batch["image"].is_cuda:
                    torch.cuda.synchronize()

            step()
            seconds = _median_seconds(step, args.steps)
            seed = seed_images_per_second(preset.name) if device.type == "cpu" else None
            side = preset.image_size or preset.crop_size
            row = {
                "preset": preset.name,
                "device": device.type,
                "image_size": side,
                "batch_size": preset.batch_size,
                "seconds_per_step": seconds,
                "images_per_second": preset.batch_size / seconds,
                "seed_images_per_second": seed,
            }
            row["ratio_to_seed"] = None if seed is None else row["images_per_second"] / seed
            rows.append(row)
            log.info(
                "%-22s %-4s %8.1f images/s", preset.name, device.type, row["images_per_second"]
            )
    table = []
    for row in rows:
        seed = row["seed_images_per_second"]
        versus = "" if seed is None else f"   seed {seed:7.1f}/s  ({row['ratio_to_seed']:.1f}x)"
        table.append(
            (
                f"{row['preset']} ({row['device']}, {row['image_size']}px, "
                f"batch {row['batch_size']})",
                f"{row['images_per_second']:8.1f} images/s{versus}",
            )
        )
    _print_table("Training throughput, one step = forward + vote + losses + backward + step", table)
    if args.json:
        write_json(
            args.json,
            {
                "benchmark": "train",
                "steps_timed": args.steps,
                "seed_train_images": SEED_TRAIN_IMAGES,
                "rows": rows,
                **_machine(),
            },
        )
    return 0


if __name__ == "__main__":
    # A variant of `bench segment`, timed in this fresh process: print its seconds.
    print(time_step_variant(json.loads(sys.argv[1])))
