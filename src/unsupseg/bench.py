"""Speed benchmarks of the library, against the reference code and the thesis.

- :func:`bench_refine`: the superpixel vote, the reference code's loop against
  unsupseg's single bincount;
- :func:`bench_segment`: seconds per iteration of per-image segmentation, the reference
  step against unsupseg's variants, then the time to the stop rule on a real photo;
- :func:`bench_train`: training throughput of each preset beside the thesis' wall times.

Each returns its figures as a dict of plain values (what ``unsupseg bench ... --json``
writes) with :func:`machine`'s description of the computer. Times are medians over
repeats, measured side by side in one process, so ratios are what to quote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize

from unsupseg.algorithm import Refinement, self_training_loss
from unsupseg.data.cache import default_slic_params
from unsupseg.data.locate import default_data_root
from unsupseg.device import (
    cpu_flags,
    cpu_supports_bf16,
    resolve_device,
    resolve_layout,
    resolve_precision,
)
from unsupseg.errors import ConfigError, DatasetError
from unsupseg.io import as_rgb_float, read_image
from unsupseg.models.kanezaki import KanezakiNet
from unsupseg.models.registry import PRESETS, Preset, build_model, get_preset
from unsupseg.outputs import library_versions
from unsupseg.per_image import METHODS, network_forward, segment
from unsupseg.refine import refine_by_superpixel_vote
from unsupseg.samples import sample_image
from unsupseg.superpixels import slic_superpixels
from unsupseg.thesis import THESIS_TRAIN_IMAGES, thesis_images_per_second

log = logging.getLogger("unsupseg")

__all__ = [
    "BENCH_SHAPE",
    "bench_image",
    "bench_refine",
    "bench_segment",
    "bench_train",
    "cpu_supports_bf16",
    "default_stop_image",
    "machine",
    "pixels_of_superpixels",
    "refine_by_loop_reference",
    "time_step_variant",
]

#: The benchmark image size of the reference code, (height, width): BSDS500's 481x321.
BENCH_SHAPE = (321, 481)
#: /proc/cpuinfo flags that name vector instruction sets (x86 and ARM), for
#: :func:`machine`: they decide which kernels torch runs and whether bfloat16 is native.
_SIMD_FLAG_PREFIXES = ("sse", "ssse3", "avx", "fma", "f16c", "amx", "asimd", "sve", "bf16")


def bench_image(shape: tuple[int, int] = BENCH_SHAPE) -> np.ndarray:
    """A real photo, scikit-image's coffee (600x400: 481x321 has the same aspect),
    resized to ``shape`` (height, width); float32 RGB in [0, 1]."""
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


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``function``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    height, width = (int(side) for side in shape)
    if height < 2 or width < 2:
        raise ConfigError(f"image size must be at least 2x2; got {width}x{height}")
    return height, width


def _check_at_least(minimum: int, **values: int) -> None:
    for name, value in values.items():
        if value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}; got {value}")


# --------------------------------------------------------------------------------------
# The superpixel vote


def bench_refine(
    *,
    shape: tuple[int, int] = BENCH_SHAPE,
    n_segments: int = 10000,
    q: int = 100,
    repeats: int = 5,
) -> dict[str, Any]:
    """Time the superpixel majority vote: the reference loop against the bincount.

    Parameters
    ----------
    shape : (int, int)
        Image size as (height, width); the default is BSDS500's 481x321.
    n_segments : int
        SLIC superpixels requested (compactness 100).
    q : int
        Number of labels; the labels are uniform random.
    repeats : int
        Timed runs of the loop; the vectorised vote runs 20 times more.

    Returns
    -------
    dict
        ``benchmark`` ("refine"), ``image``, ``n_superpixels``, ``q``, ``labels``,
        ``loop_seconds``, ``vectorised_seconds`` (medians), ``ratio`` (loop /
        vectorised), ``identical`` (both give the same target) and :func:`machine`'s
        keys.

    Raises
    ------
    ConfigError
        For a shape under 2x2, ``n_segments`` or ``repeats`` under 1, ``q`` under 2.

    Examples
    --------
    >>> figures = bench_refine(n_segments=2000, repeats=1)  # doctest: +SKIP
    >>> figures["identical"], figures["ratio"] > 1  # doctest: +SKIP
    (True, True)
    """
    shape = _check_shape(shape)
    _check_at_least(1, n_segments=n_segments, repeats=repeats)
    _check_at_least(2, q=q)
    image = bench_image(shape)
    superpixels = slic_superpixels(image, n_segments=n_segments, compactness=100)
    n_superpixels = int(superpixels.max()) + 1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, q, size=shape, dtype=np.int64)
    superpixel_pixels = pixels_of_superpixels(superpixels)

    looped = refine_by_loop_reference(labels.reshape(-1), superpixel_pixels)
    labels_t = torch.from_numpy(labels)
    superpixels_t = torch.from_numpy(superpixels)
    vectorised = refine_by_superpixel_vote(labels_t, superpixels_t, q)
    identical = bool(np.array_equal(looped.reshape(shape), vectorised.numpy()))

    loop_seconds = median_seconds(
        lambda: refine_by_loop_reference(labels.reshape(-1), superpixel_pixels), repeats
    )
    vectorised_seconds = median_seconds(
        lambda: refine_by_superpixel_vote(labels_t, superpixels_t, q), repeats * 20
    )
    return {
        "benchmark": "refine",
        "image": f"{shape[1]}x{shape[0]} (skimage coffee, resized)",
        "n_superpixels": n_superpixels,
        "q": q,
        "labels": "uniform random",
        "loop_seconds": loop_seconds,
        "vectorised_seconds": vectorised_seconds,
        "ratio": loop_seconds / vectorised_seconds,
        "identical": identical,
        **machine(),
    }


# --------------------------------------------------------------------------------------
# Per-image segmentation


def _reference_step_factory(x: torch.Tensor, superpixels: np.ndarray, q: int) -> Callable:
    """One iteration as the reference code does it: permuted view, numpy loop. Kept as
    the reference wrote it, on purpose: it is what unsupseg is compared with."""
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
    precision: str = "fp32",
) -> Callable:
    """One iteration as :func:`unsupseg.per_image.segment` does it: its forward pass
    (:func:`unsupseg.per_image.network_forward`) and the loss of
    :func:`unsupseg.algorithm.self_training_loss`, with optional variants."""
    torch.manual_seed(0)
    model = KanezakiNet(q=q, n_conv=2).to(x.device)
    forward, x = network_forward(model, x, precision=precision, channels_last=channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    refinement = Refinement(q=q)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = self_training_loss(forward(x), superpixels, refinement)
        loss.backward()
        optimizer.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    return step


def _cpu_name() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux) or sysctl (macOS), or None."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                check=True,
                timeout=5,
            )
            return done.stdout.strip() or None
    return None


#: The benchmark step of each (precision, channels-last) as
#: :func:`unsupseg.per_image.segment` runs it.
STEPS = {
    ("fp32", False): "unsupseg",
    ("fp32", True): "channels-last",
    ("bf16", False): "bf16",
    ("bf16", True): "bf16-channels-last",
}


def auto_steps(device: torch.device) -> dict[str, str]:
    """The benchmark step :func:`unsupseg.per_image.segment` runs on ``device`` with
    ``precision="auto"`` and ``layout="auto"``, for each per-image method."""
    steps = {}
    for method in METHODS:
        precision = resolve_precision("auto", device, method)
        steps[method] = STEPS[precision, resolve_layout("auto", device, precision)]
    return steps


def time_step_variant(spec: dict[str, Any]) -> float:
    """Median seconds of one iteration of a variant (run in its own process).

    ``spec`` holds ``shape``, ``q``, ``iterations``, ``device``, ``threads`` and
    ``step`` (``reference``, ``unsupseg``, ``channels-last``, ``bf16`` or
    ``bf16-channels-last``).
    """
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
            channels_last=spec["step"] in ("channels-last", "bf16-channels-last"),
            precision="bf16" if spec["step"].startswith("bf16") else "fp32",
        )
    step()  # warm-up
    return median_seconds(step, spec["iterations"])


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


def default_stop_image() -> Path | None:
    """BSDS500 val ``3096.jpg`` under :func:`unsupseg.data.locate.default_data_root`
    (``$UNSUPSEG_DATA``, then ``../shared/data`` from the working directory), or None
    when no BSDS500 is found there."""
    try:
        return default_data_root("bsds500") / "images" / "val" / "3096.jpg"
    except DatasetError:
        return None


def bench_segment(
    *,
    shape: tuple[int, int] = BENCH_SHAPE,
    iterations: int = 5,
    stop_run: bool = True,
    stop_image: str | os.PathLike | None = None,
    stop_max_iter: int = 1000,
) -> dict[str, Any]:
    """Seconds per iteration of per-image segmentation, then the time to the stop rule.

    Each variant runs in its own interpreter (transparent huge pages are fixed when
    torch starts): the reference step, unsupseg's step without and with huge pages,
    channels-last, one thread, bfloat16 autocast where the CPU has native bfloat16, and
    on CUDA when available; q=100, two convolution blocks, SLIC K=10000.

    Parameters
    ----------
    shape : (int, int)
        Image size as (height, width); the default is BSDS500's 481x321.
    iterations : int
        Timed iterations per variant, after one warm-up.
    stop_run : bool
        Also segment ``stop_image`` with :func:`unsupseg.segment` until the stop rule.
    stop_image : path, optional
        The photo of that run; default :func:`default_stop_image` (BSDS500 val
        3096.jpg). A missing one is skipped, and said so in ``skipped``.
    stop_max_iter : int
        Iteration limit of the stop-rule run.

    Returns
    -------
    dict
        ``benchmark`` ("segment"), ``image``, ``q``, ``n_conv``, ``iterations_timed``,
        ``variants`` (rows of ``variant``, ``device``, ``threads``, ``huge_pages``,
        ``seconds_per_iteration``, ``speedup_vs_reference``, ``auto_for``: the methods
        whose ``segment(precision="auto", layout="auto")`` runs it on this machine, and
        ``auto``: whether kanezaki2018, segment's default, is one; the reference first),
        ``skipped`` (reasons), ``stop_rule`` (``image``, ``iterations``, ``seconds``,
        ``n_labels``, ``seconds_per_iteration``, ``device``) when it ran, and
        :func:`machine`'s keys.

    Raises
    ------
    ConfigError
        For a shape under 2x2, or ``iterations`` or ``stop_max_iter`` under 1.
    RuntimeError
        When a variant's process fails (its stderr's end is in the message).

    Examples
    --------
    >>> figures = bench_segment(shape=(80, 120), iterations=1, stop_run=False)
    ... # doctest: +SKIP
    >>> figures["variants"][0]["variant"]  # doctest: +SKIP
    'reference'
    """
    shape = _check_shape(shape)
    _check_at_least(1, iterations=iterations, stop_max_iter=stop_max_iter)
    q = 100
    threads = torch.get_num_threads()
    common = {"shape": shape, "q": q, "iterations": iterations}
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
        for name, step in (("unsupseg bf16 autocast", "bf16"),
                           ("unsupseg bf16 channels-last", "bf16-channels-last")):  # fmt: skip
            variants.append({"name": name, "step": step, "huge_pages": True,
                             "device": "cpu", "threads": threads})  # fmt: skip
    else:
        skipped.append(
            "bf16 autocast on CPU: no AVX512-BF16/AMX instructions here "
            "(emulated bfloat16 is many times slower)"
        )
    if torch.cuda.is_available():
        for name, step in (("unsupseg", "unsupseg"), ("unsupseg bf16 autocast", "bf16"),
                           ("unsupseg channels-last", "channels-last"),
                           ("unsupseg bf16 channels-last", "bf16-channels-last")):  # fmt: skip
            variants.append({"name": name, "step": step, "huge_pages": True,
                             "device": "cuda", "threads": threads})  # fmt: skip
    else:
        skipped.append("CUDA: not available on this machine")

    # What segment runs here by default: unsupseg.device.resolve_precision, resolve_layout.
    auto_device = resolve_device(None)
    steps = auto_steps(auto_device)
    rows = []
    for variant in variants:
        seconds = _run_variant({**common, **variant})
        default_run = (variant["device"], variant["threads"], variant["huge_pages"]) == (
            auto_device.type, threads, True)  # fmt: skip
        auto_for = [m for m, step in steps.items() if default_run and step == variant["step"]]
        rows.append({
            "variant": variant["name"], "device": variant["device"],
            "threads": variant["threads"], "huge_pages": variant["huge_pages"],
            "seconds_per_iteration": seconds, "auto_for": auto_for,
            "auto": "kanezaki2018" in auto_for,
        })  # fmt: skip
        log.info("%-30s %-4s %d threads: %.3f s/iteration%s", variant["name"],
                 variant["device"], variant["threads"], seconds,
                 f"  <- auto: {', '.join(auto_for)}" if auto_for else "")  # fmt: skip
    reference = rows[0]["seconds_per_iteration"]
    for row in rows:
        row["speedup_vs_reference"] = reference / row["seconds_per_iteration"]

    figures: dict[str, Any] = {
        "benchmark": "segment",
        "image": f"{shape[1]}x{shape[0]} (skimage coffee, resized)",
        "q": q, "n_conv": 2, "iterations_timed": iterations,
        "variants": rows, "skipped": skipped, **machine(),
    }  # fmt: skip
    if stop_run:
        path = Path(stop_image) if stop_image is not None else default_stop_image()
        if path is not None and path.exists():
            result = segment(read_image(path), max_iter=stop_max_iter, return_details=True, seed=0)
            figures["stop_rule"] = {
                "image": str(path),
                "iterations": result.n_iterations,
                "seconds": result.seconds,
                "n_labels": result.n_labels,
                "seconds_per_iteration": statistics.median(result.iteration_seconds),
                "device": result.params["device"],
            }
        elif path is None:
            skipped.append(
                "stop-rule run: no BSDS500 found (under $UNSUPSEG_DATA or ../shared/data)"
            )
        else:
            skipped.append(f"stop-rule run: {path} not found")
    return figures


# --------------------------------------------------------------------------------------
# Training throughput


def _training_batch(preset: Preset, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch of the preset's size: smooth random images with their real SLIC."""
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


def bench_train(*, presets: Sequence[str] | None = None, steps: int = 3) -> dict[str, Any]:
    """Images per second of one training step of each preset, beside the thesis'.

    One step is forward, refinement, losses, backward and optimiser step, at the
    preset's image size and batch size, on synthetic images with real SLIC superpixels;
    on the CPU, and on CUDA (bfloat16 autocast) when available. The thesis' reported
    wall times are converted to images/s (epochs x training images / seconds).

    Parameters
    ----------
    presets : sequence of str, optional
        Preset names (default: every preset).
    steps : int
        Timed steps per preset, after one warm-up.

    Returns
    -------
    dict
        ``benchmark`` ("train"), ``steps_timed``, ``seed_train_images`` (the thesis'
        training images per data set), ``rows`` (``preset``, ``device``,
        ``image_size``, ``batch_size``, ``seconds_per_step``, ``images_per_second``,
        ``seed_images_per_second`` and ``ratio_to_seed``: the thesis' throughput and
        ours over it, None on CUDA or for presets it did not train) and
        :func:`machine`'s keys. The ``seed_*`` keys keep the names ``unsupseg report``
        reads.

    Raises
    ------
    ConfigError
        For an unknown preset or ``steps`` under 1.

    Examples
    --------
    >>> figures = bench_train(presets=["base-cifar10"], steps=1)  # doctest: +SKIP
    >>> figures["rows"][0]["images_per_second"] > 0  # doctest: +SKIP
    True
    """
    # Lightning takes seconds to import and only this benchmark needs it.
    from unsupseg.training.module import SegmentationModule

    _check_at_least(1, steps=steps)
    chosen = [get_preset(name) for name in (presets or list(PRESETS))]
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(resolve_device("cuda"))
    rows = []
    for device in devices:
        for preset in chosen:
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
            seconds = median_seconds(step, steps)
            thesis = thesis_images_per_second(preset.name) if device.type == "cpu" else None
            row = {
                "preset": preset.name,
                "device": device.type,
                "image_size": preset.image_size or preset.crop_size,
                "batch_size": preset.batch_size,
                "seconds_per_step": seconds,
                "images_per_second": preset.batch_size / seconds,
                "seed_images_per_second": thesis,
            }
            row["ratio_to_seed"] = None if thesis is None else row["images_per_second"] / thesis
            rows.append(row)
            log.info(
                "%-22s %-4s %8.1f images/s", preset.name, device.type, row["images_per_second"]
            )
    return {
        "benchmark": "train",
        "steps_timed": steps,
        "seed_train_images": THESIS_TRAIN_IMAGES,
        "rows": rows,
        **machine(),
    }


# --------------------------------------------------------------------------------------
# Hierarchical segmentation


def bench_hierarchy(
    *,
    data_root: str | os.PathLike | None = None,
    n_images: int = 10,
) -> dict[str, Any]:
    """Seconds per photo of :func:`unsupseg.ucm.hierarchy` against Felzenszwalb,
    measured side by side on the same photos in one run.

    Parameters
    ----------
    data_root : path, optional
        BSDS500's folder: its first ``n_images`` val photos (481x321) are timed. Default
        :func:`unsupseg.data.locate.default_data_root`; where BSDS500 is absent, the
        scikit-image sample photos are timed instead (said in ``photos``).
    n_images : int
        Photos timed.

    Returns
    -------
    dict
        ``photos`` (what was timed), ``n_images``, ``rows``: per variant ``name``,
        ``mean_s``, ``median_s``, ``vs_felzenszwalb`` (its mean over Felzenszwalb's at
        scale 300); then :func:`machine`.
    """
    from skimage.segmentation import felzenszwalb

    from unsupseg.data.base import to_uint8_rgb
    from unsupseg.data.locate import default_data_root
    from unsupseg.errors import DatasetError
    from unsupseg.io import as_rgb_float, read_image
    from unsupseg.samples import SAMPLE_NAMES, sample_image
    from unsupseg.ucm import THRESHOLDS, hierarchy

    _check_at_least(1, n_images=n_images)
    photos: list[np.ndarray] = []
    try:
        root = Path(data_root) if data_root is not None else default_data_root("bsds500")
        paths = sorted((root / "images" / "val").glob("*.jpg"))[:n_images]
    except DatasetError:
        paths = []
    if paths:
        photos = [read_image(path) for path in paths]
        source = f"BSDS500 val, first {len(photos)} photos ({root})"
    else:
        photos = [sample_image(name) for name in SAMPLE_NAMES][:n_images]
        source = f"scikit-image sample photos ({len(photos)}; BSDS500 not found)"
    times: dict[str, list[float]] = {
        "felzenszwalb (scale 300)": [],
        "felzenszwalb stack (8 scales)": [],
        "hierarchy": [],
        "hierarchy + hierarchy.npy stack": [],
    }
    for photo in photos:
        rgb8 = to_uint8_rgb(photo)
        rgb = as_rgb_float(photo)
        started = time.perf_counter()
        felzenszwalb(rgb8, scale=300, sigma=0.8, min_size=50, channel_axis=-1)
        times["felzenszwalb (scale 300)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for scale in (100, 200, 300, 500, 700, 1000, 1500, 2000):
            felzenszwalb(rgb8, scale=scale, sigma=0.8, min_size=50, channel_axis=-1)
        times["felzenszwalb stack (8 scales)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        tree = hierarchy(rgb)
        times["hierarchy"].append(time.perf_counter() - started)
        tree.stack(THRESHOLDS)
        times["hierarchy + hierarchy.npy stack"].append(time.perf_counter() - started)
    reference = float(np.mean(times["felzenszwalb (scale 300)"]))
    rows = [
        {
            "name": name,
            "mean_s": float(np.mean(values)),
            "median_s": float(np.median(values)),
            "vs_felzenszwalb": float(np.mean(values)) / reference,
        }
        for name, values in times.items()
    ]
    return {"photos": source, "n_images": len(photos), "rows": rows, **machine()}


# --------------------------------------------------------------------------------------
# The machine


def machine() -> dict[str, Any]:
    """The computer the figures were measured on.

    Returns
    -------
    dict
        ``threads`` (torch's intra-op threads), ``cpu_count``, ``cpu_capability``
        (the vector kernels torch chose: ``DEFAULT``, ``AVX2``, ``AVX512``...),
        ``processor`` (the platform's processor string), ``cpu_name`` (the CPU model,
        None where unknown), ``cpu_instruction_sets`` (its vector instruction-set
        flags, such as ``avx2``, ``avx512f``, ``avx512_bf16``, ``amx_bf16``, ``asimd``;
        empty where unknown), ``cuda_device`` (None without CUDA) and ``versions``.
    """
    return {
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "processor": platform.processor() or platform.machine(),
        "cpu_name": _cpu_name(),
        "cpu_instruction_sets": [
            flag for flag in cpu_flags() if flag.startswith(_SIMD_FLAG_PREFIXES)
        ],
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "versions": library_versions(),
    }


if __name__ == "__main__":
    # A variant of bench_segment, timed in this fresh process: print its seconds.
    print(time_step_variant(json.loads(sys.argv[1])))
