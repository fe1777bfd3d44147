"""``unsupseg evaluate``: score a segmentation method on a data set with ground truth.

One row per image is appended to ``OUT/per_image.csv`` as soon as the image is scored
(so an interrupted run resumes where it stopped: ids already in the file are skipped);
the dataset figures are then aggregated from every row of the file, printed as a table
and, with ``--json FILE``, written as a summary.

BSDS500 rows hold the pooled terms of the Kanezaki/TIP mIoU (All / Fine / Coarse), of
Segmentation Covering and of the boundary counts, and the per-image PRI, VI and boundary
F; the dataset score pools the terms (mIoU, covering, boundary ODS) or averages the
per-image values over images (PRI, VI, boundary OIS). MSRC-v2 rows hold the per-image
best-IoU terms and the image's confusion matrix between classes and predicted ids as a
sparse JSON list ``[[class, id, pixels], ...]``; the matrices are summed over the split
for the Hungarian-matched mIoU and pixel accuracy (SPEC §5).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from unsupseg import metrics
from unsupseg.baselines import BASELINES
from unsupseg.io import atomic_file, read_label_png, resize_nearest, write_json

log = logging.getLogger("unsupseg")

#: Data sets ``unsupseg evaluate`` scores, with their default split.
DEFAULT_SPLITS = {"bsds500": "val", "msrc": "all"}
#: Methods computed here (``--method``): the baselines and per-image optimisation.
METHODS = (*BASELINES, "per-image")

BSDS_COLUMNS = [
    "id",
    "n_labels",
    "n_segments",
    "miou_all_sum",
    "miou_all_n",
    "miou_fine_sum",
    "miou_fine_n",
    "miou_coarse_sum",
    "miou_coarse_n",
    "covering_sum",
    "covering_area",
    "pri",
    "vi",
    "boundary_matched_pred",
    "boundary_total_pred",
    "boundary_matched_gt",
    "boundary_total_gt",
    "boundary_f",
    "seconds",
    "error",
]
CLASS_MAP_COLUMNS = [
    "id",
    "n_labels",
    "n_segments",
    "best_iou_sum",
    "best_iou_n",
    "confusion",
    "seconds",
    "error",
]
CSV_NAME = "per_image.csv"
SETTINGS_NAME = "evaluate.json"


class EvaluateError(ValueError):
    """Bad usage of ``unsupseg evaluate`` (the command exits with status 2)."""


# --------------------------------------------------------------------------------------
# Parser


def add_evaluate_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    """Add the ``evaluate`` command to ``commands`` (``number``: the CLI's numeric type)."""
    parser = commands.add_parser(
        "evaluate",
        help="score a method, a checkpoint or saved predictions against ground truth",
        description="Score a segmentation method on BSDS500 (Kanezaki/TIP mIoU All/Fine/"
        "Coarse, covering, PRI, VI, boundary ODS/OIS) or MSRC-v2 (per-image best-IoU mIoU, "
        "Hungarian-matched mIoU and pixel accuracy). Rows go to OUT/per_image.csv as each "
        "image is scored; a rerun with the same OUT skips the images already there.",
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=sorted(DEFAULT_SPLITS),
        help="data set with ground truth to score on",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="split to score (default: val for bsds500, all for msrc, whose folder holds "
        "one half of the database)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data set folder (default: ../shared/data/<bsds500|msrc_v2> or $UNSUPSEG_DATA)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--method", choices=METHODS, help="a baseline or per-image optimisation")
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
        help="processes computing baselines (other methods run in this process)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder for per_image.csv (default: runs/evaluate/<dataset>-<split>-<name>)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--max-side",
        type=number(int, 16),
        default=None,
        help="per-image: downscale photos to this longest side for the optimisation",
    )
    parser.add_argument(
        "--max-iter", type=number(int, 1), default=1000, help="per-image: most iterations"
    )
    parser.add_argument("--seed", type=number(int, 0), default=0, help="per-image/k-means seed")
    parser.add_argument(
        "--refine",
        action="store_true",
        help="checkpoint: apply the superpixel majority vote to the argmax",
    )
    parser.add_argument(
        "--device", default=None, help="checkpoint/per-image device (default: CUDA if present)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_evaluate)


# --------------------------------------------------------------------------------------
# Scoring one image


def _n_segments(prediction: np.ndarray) -> int:
    return int(metrics.connected_components(prediction).max()) + 1


def score_bsds(prediction: np.ndarray, annotators: list[np.ndarray]) -> dict[str, Any]:
    """The per-image row values (without id, time and error) of a BSDS500 image."""
    row: dict[str, Any] = {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": _n_segments(prediction),
    }
    for mode in metrics.MODES:
        total, count = metrics.bsds_miou_terms(prediction, annotators, mode)
        row[f"miou_{mode}_sum"], row[f"miou_{mode}_n"] = total, count
    row["covering_sum"], row["covering_area"] = metrics.segmentation_covering_terms(
        prediction, annotators
    )
    row["pri"] = metrics.probabilistic_rand_index(prediction, annotators)
    row["vi"] = metrics.variation_of_information(prediction, annotators)
    counts = metrics.boundary_prf_terms(prediction, annotators)
    for key, value in counts.items():
        row[f"boundary_{key}"] = value
    row["boundary_f"] = metrics.boundary_f(counts)["f"]
    return row


def score_class_map(
    prediction: np.ndarray, class_map: np.ndarray, n_classes: int, void: int = 255
) -> dict[str, Any]:
    """The per-image row values of an MSRC/VOC image (prediction ids must be >= 0)."""
    total, count = metrics.per_image_best_iou_terms(prediction, class_map, void=void)
    confusion = metrics.hungarian_confusion(prediction, class_map, n_classes, void=void)
    classes, ids = np.nonzero(confusion)
    sparse = [[int(c), int(k), int(confusion[c, k])] for c, k in zip(classes, ids, strict=True)]
    return {
        "n_labels": int(np.unique(prediction).size),
        "n_segments": _n_segments(prediction),
        "best_iou_sum": total,
        "best_iou_n": count,
        "confusion": json.dumps(sparse, separators=(",", ":")),
    }


def _score(dataset: Any, index: int, prediction: np.ndarray) -> dict[str, Any]:
    truth = dataset.ground_truth(index)
    prediction = np.asarray(prediction)
    if prediction.ndim != 2:
        raise ValueError(f"prediction must be a 2-D label map; got shape {prediction.shape}")
    shape = truth[0].shape if isinstance(truth, list) else truth.shape
    if prediction.shape != shape:
        raise ValueError(
            f"prediction has size {prediction.shape[1]}x{prediction.shape[0]}, ground truth "
            f"{shape[1]}x{shape[0]} (width x height)"
        )
    if isinstance(truth, list):
        return score_bsds(prediction.astype(np.int64), truth)
    return score_class_map(prediction.astype(np.int64), truth, dataset.n_classes)


def _baseline_row(dataset: Any, index: int, method: str, seed: int) -> dict[str, Any]:
    """Compute one baseline's prediction and row (run in a worker process)."""
    started = time.perf_counter()
    try:
        kwargs = {"seed": seed} if method == "kmeans" else {}
        prediction = BASELINES[method](dataset.image(index), **kwargs)
        row = _score(dataset, index, prediction)
    except Exception as exc:  # reported per image
        row = {"error": f"{type(exc).__name__}: {exc}"}
    row["id"] = dataset.image_id(index)
    row["seconds"] = time.perf_counter() - started
    return row


def find_prediction(folder: Path, image_id: str) -> Path | None:
    """The saved prediction of ``image_id`` in ``folder``, or None."""
    for candidate in (
        folder / f"{image_id}.npy",
        folder / f"{image_id}.png",
        folder / image_id / "labels.npy",
        folder / image_id / "labels.png",
    ):
        if candidate.is_file():
            return candidate
    return None


def read_prediction(path: Path) -> np.ndarray:
    """Read a label map saved as ``.npy`` or label PNG."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    return read_label_png(path)


def _channel_ids(result: Any) -> np.ndarray:
    """Predicted ids that mean the same across images: the network's output channel.

    ``predict_batch`` numbers each image's labels consecutively, which loses the
    channel; the Hungarian protocol needs it, so each label takes the channel that wins
    most of its pixels in the raw argmax (the label itself without refinement).
    """
    shape = result.labels.shape
    raw = resize_nearest(np.asarray(result.response).argmax(axis=0), shape).astype(np.int64)
    labels = result.labels.astype(np.int64).ravel()
    n_labels, q = int(labels.max()) + 1, int(raw.max()) + 1
    votes = np.bincount(labels * q + raw.ravel(), minlength=n_labels * q).reshape(n_labels, q)
    return votes.argmax(axis=1)[labels].reshape(shape)


# --------------------------------------------------------------------------------------
# CSV


def _read_rows(path: Path, columns: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and list(reader.fieldnames) != columns:
            raise EvaluateError(
                f"{path} has columns {','.join(reader.fieldnames)}, not those of this data "
                "set; choose another --out"
            )
        return list(reader)


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_file(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


# --------------------------------------------------------------------------------------
# Aggregation


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def summarise(rows: list[dict[str, str]], n_classes: int | None) -> dict[str, Any]:
    """Dataset figures from the rows of ``per_image.csv`` (rows with an error are skipped).

    Parameters
    ----------
    rows : list of dict
        CSV rows as read back (string values).
    n_classes : int or None
        None for BSDS500 rows; the number of classes for class-map rows.

    Returns
    -------
    summary : dict
        BSDS500: ``n_images, miou_all, miou_fine, miou_coarse, covering, pri, vi,
        boundary_ods, boundary_ois, mean_segments, mean_labels``; class maps:
        ``n_images, miou_per_image, miou_hungarian, pixel_accuracy, mean_segments,
        mean_labels``.
    """
    good = [row for row in rows if not row.get("error")]

    def column(name: str) -> np.ndarray:
        return np.array([float(row[name]) for row in good], dtype=np.float64)

    def mean(name: str) -> float:
        values = column(name)
        return float(values.mean()) if values.size else math.nan

    summary: dict[str, Any] = {"n_images": len(good)}
    if n_classes is None:
        for mode in metrics.MODES:
            summary[f"miou_{mode}"] = _ratio(
                column(f"miou_{mode}_sum").sum(), column(f"miou_{mode}_n").sum()
            )
        summary["covering"] = _ratio(column("covering_sum").sum(), column("covering_area").sum())
        summary["pri"] = mean("pri")
        summary["vi"] = mean("vi")
        counts = {
            key: int(column(f"boundary_{key}").sum())
            for key in ("matched_pred", "total_pred", "matched_gt", "total_gt")
        }
        summary["boundary_ods"] = metrics.boundary_f(counts)["f"] if good else math.nan
        summary["boundary_ois"] = mean("boundary_f")
    else:
        summary["miou_per_image"] = _ratio(column("best_iou_sum").sum(), column("best_iou_n").sum())
        entries = [entry for row in good for entry in json.loads(row["confusion"])]
        if entries:
            array = np.array(entries, dtype=np.int64).reshape(-1, 3)
            confusion = np.zeros((n_classes, int(array[:, 1].max()) + 1), dtype=np.int64)
            np.add.at(confusion, (array[:, 0], array[:, 1]), array[:, 2])
            scores = metrics.hungarian_scores(confusion)
            summary["miou_hungarian"] = scores["miou"]
            summary["pixel_accuracy"] = scores["pixel_accuracy"]
        else:
            summary["miou_hungarian"] = summary["pixel_accuracy"] = math.nan
    summary["mean_segments"] = mean("n_segments")
    summary["mean_labels"] = mean("n_labels")
    summary["seconds_per_image"] = mean("seconds")
    return summary


def format_table(summary: dict[str, Any], title: str) -> str:
    """A two-column text table of the summary."""
    width = max(len(key) for key in summary)
    lines = [title, "-" * max(len(title), width + 12)]
    for key, value in summary.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text:>10}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The command


def _source_name(args: argparse.Namespace) -> str:
    if args.method:
        return args.method
    if args.checkpoint:
        return f"checkpoint-{args.checkpoint.stem}"
    return f"predictions-{args.predictions.resolve().name}"


def _settings(args: argparse.Namespace, root: Path, split: str) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "dataset": args.dataset,
        "split": split,
        "data_root": str(root.resolve()),
        "method": args.method,
        "checkpoint": str(args.checkpoint.resolve()) if args.checkpoint else None,
        "predictions": str(args.predictions.resolve()) if args.predictions else None,
    }
    if args.method == "per-image":
        settings.update(max_side=args.max_side, max_iter=args.max_iter, seed=args.seed)
    if args.method == "kmeans":
        settings["seed"] = args.seed
    if args.checkpoint:
        settings["refine"] = bool(args.refine)
    return settings


def _open(args: argparse.Namespace) -> tuple[Any, Path, str]:
    from unsupseg.data import open_dataset
    from unsupseg.train import default_data_root

    split = args.split or DEFAULT_SPLITS[args.dataset]
    root = args.data_root if args.data_root is not None else default_data_root(args.dataset)
    return open_dataset(args.dataset, root, split, image_size="native"), Path(root), split


def _predictor(args: argparse.Namespace, class_maps: bool) -> Callable[[Any, int], np.ndarray]:
    """A function (dataset, index) -> prediction for the methods run in this process."""
    if args.predictions is not None:
        folder = args.predictions
        if not folder.is_dir():
            raise EvaluateError(f"--predictions {folder}: no such folder")

        def saved(dataset: Any, index: int) -> np.ndarray:
            image_id = dataset.image_id(index)
            path = find_prediction(folder, image_id)
            if path is None:
                raise FileNotFoundError(
                    f"no prediction for {image_id} in {folder} (looked for {image_id}.npy, "
                    f"{image_id}.png, {image_id}/labels.npy, {image_id}/labels.png)"
                )
            return read_prediction(path)

        return saved
    if args.checkpoint is not None:
        from unsupseg.predict import predict_batch
        from unsupseg.train import load_trained_model

        if not args.checkpoint.is_file():
            raise EvaluateError(f"--checkpoint {args.checkpoint}: no such file")
        model, info = load_trained_model(args.checkpoint, args.device)

        def trained(dataset: Any, index: int) -> np.ndarray:
            (result,) = predict_batch(model, info, [dataset.image(index)], refine=args.refine)
            return _channel_ids(result) if class_maps else result.labels

        return trained
    if args.method == "per-image":
        from unsupseg.segment import segment

        def optimised(dataset: Any, index: int) -> np.ndarray:
            return segment(
                dataset.image(index),
                max_side=args.max_side,
                max_iter=args.max_iter,
                seed=args.seed,
                device=args.device,
            )

        return optimised
    method, seed = args.method, args.seed

    def baseline(dataset: Any, index: int) -> np.ndarray:
        kwargs = {"seed": seed} if method == "kmeans" else {}
        return BASELINES[method](dataset.image(index), **kwargs)

    return baseline


def _rows_in_process(
    dataset: Any, indices: list[int], predict: Callable[[Any, int], np.ndarray]
) -> Any:
    for index in indices:
        started = time.perf_counter()
        try:
            row = _score(dataset, index, predict(dataset, index))
        except Exception as exc:  # reported per image
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row["id"] = dataset.image_id(index)
        row["seconds"] = time.perf_counter() - started
        yield row


def _rows_in_pool(dataset: Any, indices: list[int], method: str, seed: int, workers: int) -> Any:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_baseline_row, dataset, index, method, seed) for index in indices]
        for future in futures:
            yield future.result()


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``unsupseg evaluate``; 0 when every image was scored, 1 when some failed, 2 on
    bad usage (a missing data set, a clash with an earlier run in ``--out``)."""
    from unsupseg.data import DatasetError
    from unsupseg.train import TrainError

    try:
        dataset, root, split = _open(args)
    except (DatasetError, TrainError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    class_maps = args.dataset != "bsds500"
    columns = CLASS_MAP_COLUMNS if class_maps else BSDS_COLUMNS
    out = args.out or Path("runs") / "evaluate" / f"{args.dataset}-{split}-{_source_name(args)}"
    csv_path = out / CSV_NAME
    settings = _settings(args, root, split)
    try:
        settings_path = out / SETTINGS_NAME
        if settings_path.is_file():
            previous = json.loads(settings_path.read_text())
            if previous != settings:
                changed = sorted(k for k in settings if previous.get(k) != settings[k])
                raise EvaluateError(
                    f"{out} holds an evaluation with other settings ({', '.join(changed)}); "
                    "choose another --out or delete it"
                )
        rows = _read_rows(csv_path, columns)
        predict = None if args.method in BASELINES else _predictor(args, class_maps)
    except (EvaluateError, OSError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return 2
    except Exception as exc:  # a checkpoint that does not load
        log.error("cannot load %s: %s", args.checkpoint, exc)
        return 2

    # Resume: keep scored rows (one per id); retry the images that failed before and
    # drop a row cut short by an interrupted write.
    kept: dict[str, dict[str, str]] = {}
    for row in rows:
        complete = all(row.get(key) is not None for key in columns) and None not in row
        if complete and not row.get("error"):
            kept[row["id"]] = row
    if len(kept) != len(rows):
        _write_rows(csv_path, columns, list(kept.values()))
    write_json(out / SETTINGS_NAME, settings)

    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    todo = [i for i in range(n) if dataset.image_id(i) not in kept]
    if kept:
        log.info(
            "%s: %d of the first %d images already scored, %d to go",
            csv_path,
            n - len(todo),
            n,
            len(todo),
        )
    if predict is None and args.workers > 1 and len(todo) > 1:
        stream = _rows_in_pool(dataset, todo, args.method, args.seed, args.workers)
    else:
        predict = predict or _predictor(args, class_maps)
        stream = _rows_in_process(dataset, todo, predict)

    failures: list[tuple[str, str]] = []
    new_file = not csv_path.is_file()
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        if new_file:
            writer.writeheader()
            handle.flush()
        for row in tqdm(
            stream,
            total=len(todo),
            desc=f"evaluate {args.dataset} {split}",
            unit="img",
            disable=args.quiet,
        ):
            writer.writerow({key: _format(row.get(key)) for key in columns})
            handle.flush()
            if row.get("error"):
                failures.append((row["id"], row["error"]))

    wanted = {dataset.image_id(i) for i in range(n)}
    scored = [row for row in _read_rows(csv_path, columns) if row["id"] in wanted]
    summary = summarise(scored, dataset.n_classes if class_maps else None)
    summary["n_failed"] = len(failures)
    title = f"{args.dataset} {split}: {_source_name(args)} ({summary['n_images']} images)"
    print(format_table(summary, title))
    if args.json is not None:
        write_json(
            args.json,
            {
                **{
                    k: None if isinstance(v, float) and math.isnan(v) else v
                    for k, v in summary.items()
                },
                "failed": [{"id": image_id, "error": err} for image_id, err in failures],
                "settings": settings,
                "per_image_csv": str(csv_path.resolve()),
            },
        )
    log.info("Per-image rows: %s", csv_path.resolve())
    if failures:
        log.error("%d image(s) failed (excluded from the figures):", len(failures))
        for image_id, message in failures:
            log.error("  %s: %s", image_id, message)
        return 1
    return 0
