"""Post-processing: merge the noisy segments of a prediction with a clusterer (SPEC §6).

A predicted label map is split into its 4-connected regions; each region is described
by its mean CIELAB colour and its centroid (scaled like the position features of
:func:`unsupseg.metrics.internal_indices`), and one of seven scikit-learn clusterers
groups the regions. The merged map gives every pixel its region's cluster. Each result
is scored by the internal indices (silhouette, Calinski-Harabasz, Davies-Bouldin), and
by ground truth when the data set has it; the best setting is chosen per image (by an
internal index) or per data set (by a ground-truth score, else an internal index).

The clusterers, with the parameter each is swept over (``--grid``):

========================  =========================================================
``kmeans``                :class:`~sklearn.cluster.KMeans`, clusters, weighted by area
``minibatch-kmeans``      :class:`~sklearn.cluster.MiniBatchKMeans`, clusters, by area
``ward``                  :class:`~sklearn.cluster.AgglomerativeClustering`, Ward
                          linkage restricted to adjacent regions, so clusters are
                          connected; clusters
``birch``                 :class:`~sklearn.cluster.Birch`, clusters
``gmm``                   :class:`~sklearn.mixture.GaussianMixture` (diagonal), components
``meanshift``             :class:`~sklearn.cluster.MeanShift`, bandwidth = this quantile of
                          the pairwise distances (:func:`~sklearn.cluster.estimate_bandwidth`)
``dbscan``                :class:`~sklearn.cluster.DBSCAN` with ``min_samples=1`` (every
                          region is a core point: single linkage cut at ``eps``), eps
========================  =========================================================

A clusterer asked for more clusters than there are regions leaves the map as it is.

``unsupseg postprocess`` runs the sweep over a data set's predictions (saved label maps
or a checkpoint) and writes ``per_image.csv`` (one row per image and setting, resumable),
``summary.json`` (the dataset table and the choices; the contract read by ``unsupseg
report``), ``comparison.png`` (the seed's comparison figure: a few images, their
prediction and every clusterer's result) and the label maps of the two choices
(``chosen-dataset/`` and ``chosen-image/``, ``<id>.png``) for ``unsupseg evaluate
--predictions``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from tqdm import tqdm

from unsupseg import metrics
from unsupseg.evaluate import (
    COLUMNS,
    EvaluateError,
    _format,
    _n_segments,
    _predictor,
    _read_rows,
    _write_rows,
    add_dataset_arguments,
    open_scored_dataset,
    score_bsds,
    score_class_map,
    scored_classes,
    scoring_kind,
    summarise,
)
from unsupseg.evaluate import INDICES as EVALUATED_INDICES
from unsupseg.io import as_rgb_float, atomic_directory, save_label_png, write_json

log = logging.getLogger("unsupseg")

__all__ = [
    "CLUSTERERS",
    "DEFAULT_GRID",
    "INDICES",
    "Setting",
    "merge_segments",
    "parse_grid",
    "region_adjacency",
    "region_features",
    "run_postprocess",
    "save_comparison_figure",
]

#: The seven clusterers, in the order of the tables and figures.
CLUSTERERS = ("kmeans", "minibatch-kmeans", "ward", "birch", "gmm", "meanshift", "dbscan")
#: What each clusterer's parameter means.
PARAMETER_NAMES = {
    "kmeans": "clusters",
    "minibatch-kmeans": "clusters",
    "ward": "clusters",
    "birch": "clusters",
    "gmm": "components",
    "meanshift": "quantile",
    "dbscan": "eps",
}
#: Default sweep: one value of each clusterer's parameter (``--grid`` sweeps more).
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "kmeans": (16,),
    "minibatch-kmeans": (16,),
    "ward": (24,),
    "birch": (16,),
    "gmm": (16,),
    "meanshift": (0.1,),
    "dbscan": (6.0,),
}
#: Internal indices and whether higher is better.
INDICES = {"silhouette": True, "calinski_harabasz": True, "davies_bouldin": False}
#: Ground-truth scores a data-set choice can use, and whether higher is better.
GT_SCORES = {
    "miou_all": True,
    "covering": True,
    "pri": True,
    "vi": False,
    "miou_per_image": True,
}


@dataclass(frozen=True)
class Setting:
    """One clusterer with one value of its parameter."""

    method: str
    value: float

    @property
    def name(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.method}-{value}"


# --------------------------------------------------------------------------------------
# Regions and their features


def region_features(
    image_rgb_float: np.ndarray,
    regions: np.ndarray,
    position_weight: float = 50.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean CIELAB colour and scaled centroid of each region.

    Parameters
    ----------
    image_rgb_float : ndarray of float, shape (H, W, 3)
        RGB in [0, 1].
    regions : ndarray of int, shape (H, W)
        Region ids ``0..n-1`` (e.g. :func:`unsupseg.metrics.connected_components`).
    position_weight : float
        Centroids ``(y, x)`` are divided by ``max(H, W)`` and multiplied by this, as in
        :func:`unsupseg.metrics.internal_indices`.

    Returns
    -------
    features : ndarray of float64, shape (n, 5)
        ``L, a, b, y, x`` per region.
    areas : ndarray of int64, shape (n,)
        Pixels per region.
    """
    from skimage.color import rgb2lab

    h, w = regions.shape
    ids = regions.ravel()
    n = int(ids.max()) + 1
    areas = np.bincount(ids, minlength=n)
    lab = rgb2lab(np.clip(image_rgb_float, 0.0, 1.0)).reshape(-1, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    scale = position_weight / max(h, w)
    columns = [lab[:, 0], lab[:, 1], lab[:, 2], yy.ravel() * scale, xx.ravel() * scale]
    sums = np.stack([np.bincount(ids, weights=c, minlength=n) for c in columns], axis=1)
    return sums / np.maximum(areas, 1)[:, None], areas.astype(np.int64)


def region_adjacency(regions: np.ndarray) -> sparse.csr_matrix:
    """Symmetric (n, n) 0/1 matrix of 4-adjacent regions (no self loops)."""
    n = int(regions.max()) + 1
    pairs = [
        (regions[:, :-1].ravel(), regions[:, 1:].ravel()),
        (regions[:-1, :].ravel(), regions[1:, :].ravel()),
    ]
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    keep = a != b
    a, b = a[keep], b[keep]
    data = np.ones(2 * a.size, dtype=np.int8)
    matrix = sparse.coo_matrix((data, (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
    matrix.data[:] = 1
    return matrix


def _cluster(
    features: np.ndarray,
    areas: np.ndarray,
    adjacency: sparse.csr_matrix,
    setting: Setting,
    seed: int,
) -> np.ndarray:
    """Cluster ids of the regions (one row of ``features`` each)."""
    from sklearn import cluster, mixture

    n = features.shape[0]
    method, value = setting.method, setting.value
    if method in ("kmeans", "minibatch-kmeans", "ward", "birch", "gmm"):
        k = int(value)
        if k < 1:
            raise ValueError(f"{method}: the number of clusters must be >= 1; got {value}")
        if n <= k:
            return np.arange(n)
        if method == "kmeans":
            model = cluster.KMeans(n_clusters=k, n_init=1, random_state=seed)
            return model.fit_predict(features, sample_weight=areas)
        if method == "minibatch-kmeans":
            model = cluster.MiniBatchKMeans(
                n_clusters=k, n_init=1, random_state=seed, batch_size=1024
            )
            return model.fit_predict(features, sample_weight=areas)
        if method == "ward":
            model = cluster.AgglomerativeClustering(
                n_clusters=k, linkage="ward", connectivity=adjacency
            )
            return model.fit_predict(features)
        if method == "birch":
            return cluster.Birch(n_clusters=k, threshold=1.0).fit_predict(features)
        model = mixture.GaussianMixture(
            n_components=k, covariance_type="diag", random_state=seed, reg_covar=1e-3
        )
        return model.fit_predict(features)
    if method == "meanshift":
        if not 0 < value <= 1:
            raise ValueError(f"meanshift: the quantile must be in (0, 1]; got {value}")
        bandwidth = cluster.estimate_bandwidth(
            features, quantile=value, n_samples=min(n, 500), random_state=seed
        )
        if not bandwidth > 0:  # every region alike
            return np.zeros(n, dtype=np.int64)
        return cluster.MeanShift(bandwidth=bandwidth, bin_seeding=True).fit_predict(features)
    if method == "dbscan":
        if not value > 0:
            raise ValueError(f"dbscan: eps must be > 0; got {value}")
        return cluster.DBSCAN(eps=value, min_samples=1).fit_predict(features)
    raise ValueError(f"unknown clusterer {method!r}; choose from {', '.join(CLUSTERERS)}")


def merge_segments(
    image: np.ndarray,
    labels: np.ndarray,
    setting: Setting,
    seed: int = 0,
    position_weight: float = 50.0,
) -> np.ndarray:
    """Merge the 4-connected regions of ``labels`` with one clusterer.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        The photo (any dtype; min-max normalised like every input).
    labels : ndarray of int, shape (H, W)
        The prediction to clean up.
    setting : Setting
        Clusterer and its parameter (see the module docstring).
    seed : int
        Seed of the randomised clusterers.
    position_weight : float
        Weight of the region centroids against CIELAB colour.

    Returns
    -------
    merged : ndarray of int64, shape (H, W)
        Cluster ids numbered ``0..k-1`` in order of first appearance (row-major).
    """
    labels = np.asarray(labels)
    rgb = as_rgb_float(image)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in (H, W)")
    regions = metrics.connected_components(labels)
    features, areas = region_features(rgb, regions, position_weight)
    adjacency = region_adjacency(regions)
    with warnings.catch_warnings():
        # sklearn's convergence chatter on tiny inputs is not the user's concern
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*[Cc]onverge.*")
        ids = np.asarray(_cluster(features, areas, adjacency, setting, seed), dtype=np.int64)
    merged = ids[regions]
    _, first, inverse = np.unique(merged.ravel(), return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].reshape(labels.shape).astype(np.int64)


def majority_ids(merged: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Give each merged cluster the original id that covers most of it.

    Keeps ids meaningful across images (the network's output channel), which the
    Hungarian protocol needs.
    """
    merged = np.asarray(merged, dtype=np.int64).ravel()
    original = np.asarray(original, dtype=np.int64)
    q = int(original.max()) + 1
    n = int(merged.max()) + 1
    votes = np.bincount(merged * q + original.ravel(), minlength=n * q).reshape(n, q)
    return votes.argmax(axis=1)[merged].reshape(original.shape)


def parse_grid(text: str | None, methods: Sequence[str]) -> list[Setting]:
    """Settings from ``--grid`` (``"kmeans=4,8;dbscan=6"``) and ``--methods``.

    Clusterers not named in ``text`` take :data:`DEFAULT_GRID`.
    """
    grid = {m: DEFAULT_GRID[m] for m in methods}
    if text:
        for part in filter(None, (p.strip() for p in text.split(";"))):
            name, sep, values = part.partition("=")
            name = name.strip()
            if not sep or name not in CLUSTERERS:
                raise ValueError(
                    f"--grid: expected CLUSTERER=V1,V2 with a clusterer of "
                    f"{', '.join(CLUSTERERS)}; got {part!r}"
                )
            try:
                grid[name] = tuple(float(v) for v in values.split(",") if v.strip())
            except ValueError:
                raise ValueError(f"--grid: {part!r} has a value that is not a number") from None
            if not grid[name]:
                raise ValueError(f"--grid: {part!r} lists no value")
    return [Setting(m, v) for m in CLUSTERERS if m in grid for v in grid[m]]


# --------------------------------------------------------------------------------------
# Scoring


def _setting_row(
    image: np.ndarray,
    labels: np.ndarray,
    setting: Setting | None,
    seed: int,
    truth: Any,
    n_classes: int | None,
    n_samples: int,
) -> tuple[dict[str, Any], np.ndarray]:
    started = time.perf_counter()
    if setting is None:
        merged = np.asarray(labels, dtype=np.int64)
    else:
        merged = merge_segments(image, labels, setting, seed)
        if n_classes is not None:
            merged = majority_ids(merged, labels)
    seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one label: NaN indices
        row: dict[str, Any] = dict(
            metrics.internal_indices(as_rgb_float(image), merged, n_samples=n_samples, seed=seed)
        )
    row["n_labels"] = int(np.unique(merged).size)
    row["n_segments"] = _n_segments(merged)
    row["seconds"] = seconds
    if truth is not None:
        if n_classes is None:
            terms = score_bsds(merged, truth)
        else:
            terms = score_class_map(merged, truth, n_classes)
        terms.pop("n_labels"), terms.pop("n_segments")
        row.update(terms)
    return row, merged


def process_image(
    image: np.ndarray,
    labels: np.ndarray,
    settings: Sequence[Setting],
    *,
    seed: int = 0,
    truth: Any = None,
    n_classes: int | None = None,
    n_samples: int = 2000,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Score the prediction itself (setting ``none``) and every merged version.

    Returns
    -------
    rows : list of dict
        ``setting``, ``method``, ``value``, the internal indices, ``n_labels``,
        ``n_segments``, ``seconds`` and, with ``truth``, the ground-truth terms of
        :func:`unsupseg.evaluate.score_bsds` (``n_classes`` None) or
        :func:`unsupseg.evaluate.score_class_map`.
    maps : dict
        The label map of each setting name.
    """
    rows, maps = [], {}
    for setting in [None, *settings]:
        name = "none" if setting is None else setting.name
        try:
            row, merged = _setting_row(image, labels, setting, seed, truth, n_classes, n_samples)
            maps[name] = merged
        except Exception as exc:  # one clusterer failing on one image is a row, not a crash
            row = {"error": f"{type(exc).__name__}: {exc}"}
        row.update(
            setting=name,
            method="none" if setting is None else setting.method,
            value="" if setting is None else setting.value,
        )
        rows.append(row)
    return rows, maps


# --------------------------------------------------------------------------------------
# Choices


def _better(higher: bool) -> Callable[[float, float], bool]:
    return (lambda a, b: a > b) if higher else (lambda a, b: a < b)


def choose_per_image(rows: list[dict[str, Any]], index: str) -> str | None:
    """The setting with the best internal ``index`` among one image's rows (the raw
    prediction included); None when no row has a finite value."""
    better = _better(INDICES[index])
    best, best_value = None, math.nan
    for row in rows:
        value = _float(row.get(index))
        if math.isfinite(value) and (best is None or better(value, best_value)):
            best, best_value = row["setting"], value
    return best


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------------------
# The comparison figure


def save_comparison_figure(
    path: Path,
    examples: list[tuple[str, np.ndarray, dict[str, np.ndarray]]],
    columns: Sequence[str],
) -> None:
    """The seed's comparison figure: one row per image; the photo, the prediction
    (``none``) and each setting in ``columns``, every map drawn in its regions' mean
    colour with the boundaries in white."""
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from unsupseg.viz import save_figure

    names = ["image", "none", *columns]
    fig, axes = plt.subplots(
        len(examples),
        len(names),
        figsize=(1.9 * len(names), 1.6 * len(examples) + 0.4),
        squeeze=False,
    )
    for row, (image_id, image, maps) in enumerate(examples):
        rgb = as_rgb_float(image)
        for col, name in enumerate(names):
            ax = axes[row, col]
            ax.set_xticks([]), ax.set_yticks([])
            if name == "image":
                ax.imshow(rgb)
                ax.set_ylabel(image_id, fontsize=7)
            elif name in maps:
                labels = maps[name]
                ids = labels.ravel()
                n = int(ids.max()) + 1
                count = np.maximum(np.bincount(ids, minlength=n), 1)[:, None]
                means = np.stack(
                    [np.bincount(ids, weights=rgb[..., c].ravel(), minlength=n) for c in range(3)],
                    axis=1,
                )
                shown = (means / count)[labels]
                shown[find_boundaries(labels, mode="inner")] = 1.0
                ax.imshow(shown)
                ax.set_xlabel(f"{np.unique(labels).size} labels", fontsize=6)
            else:
                ax.axis("off")
            if row == 0:
                ax.set_title("prediction" if name == "none" else name, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# The command

CSV_BASE = [
    "id",
    "setting",
    "method",
    "value",
    "n_labels",
    "n_segments",
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "seconds",
]


def _columns(kind: str) -> list[str]:
    extra = COLUMNS[kind] if kind != "internal" else []
    skip = {"id", "n_labels", "n_segments", "seconds", "error", *EVALUATED_INDICES}
    return [*CSV_BASE, *(c for c in extra if c not in skip), "error"]


def add_postprocess_parser(commands: argparse._SubParsersAction, number: Callable) -> None:
    """Add the ``postprocess`` command to ``commands``."""
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
    parser.add_argument("--seed", type=number(int, 0), default=0, help="clusterer seed")
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
        help="output folder (default: runs/postprocess/<dataset>-<split>-<source>)",
    )
    parser.add_argument("--device", default=None, help="checkpoint device (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_postprocess)


def _work(job: tuple) -> tuple[str, list[dict[str, Any]]]:
    """Score one image's settings (run in a worker process); no label maps returned."""
    image_id, image, labels, settings, seed, truth, n_classes, n_samples = job
    if isinstance(labels, str):  # the prediction failed
        return image_id, [{"setting": "none", "method": "none", "value": "", "error": labels}]
    rows, _ = process_image(
        image, labels, settings, seed=seed, truth=truth, n_classes=n_classes, n_samples=n_samples
    )
    return image_id, rows


def _bounded(fn: Callable, items: Any, workers: int) -> Any:
    """``map(fn, items)`` in order, over ``workers`` processes with few items pending."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pending: deque = deque()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def summarise_settings(
    rows: list[dict[str, Any]], kind: str, n_classes: int | None
) -> dict[str, Any]:
    """Dataset figures of one setting's rows (as read back from ``per_image.csv``):
    :func:`unsupseg.evaluate.summarise` of the data set's kind, with the mean internal
    indices (over the images where they are defined) added for ground-truth kinds."""
    summary = summarise(rows, n_classes, kind)
    if kind != "internal":
        internal = summarise(rows, None, "internal")
        summary.update({name: internal[name] for name in EVALUATED_INDICES})
    return summary


def _choose(summaries: dict[str, dict[str, Any]], key: str) -> str:
    higher = GT_SCORES.get(key, INDICES.get(key, True))
    better = _better(higher)
    best = None
    for name, summary in summaries.items():
        value = _float(summary.get(key))
        if math.isfinite(value) and (best is None or better(value, _float(summaries[best][key]))):
            best = name
    return best or "none"


def _table(summaries: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    keys = ["mean_labels", "mean_segments", *INDICES]
    if kind == "bsds":
        keys += ["miou_all", "miou_fine", "miou_coarse", "covering", "pri", "vi", "boundary_ods"]
    elif kind == "class_map":
        keys += ["miou_per_image", "miou_hungarian", "pixel_accuracy"]
    keys.append("seconds_per_image")
    rows = []
    for name, summary in summaries.items():
        cells: list[Any] = [name]
        for key in keys:
            value = summary.get(key)
            if isinstance(value, float):
                cells.append(
                    f"{value:.1f}"
                    if key in ("mean_labels", "mean_segments", "calinski_harabasz")
                    else f"{value:.4f}"
                )
            else:
                cells.append(value)
        rows.append(cells)
    return {"columns": ["setting", *keys], "rows": rows}


def _format_text_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [columns, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run_postprocess(args: argparse.Namespace) -> int:
    """Run ``unsupseg postprocess``: 0 when every image was processed, 1 when some
    failed, 2 on bad usage."""
    from unsupseg.data import DatasetError
    from unsupseg.train import TrainError

    args.method = None
    try:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in CLUSTERERS]
        if unknown or not methods:
            raise ValueError(
                f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from "
                f"{', '.join(CLUSTERERS)}"
            )
        settings = parse_grid(args.grid, methods)
        dataset, root, split = open_scored_dataset(args)
        kind = scoring_kind(dataset)
        predict = _predictor(args, kind == "class_map")
    except (ValueError, DatasetError, TrainError, EvaluateError, OSError) as exc:
        log.error("%s", exc)
        return 2
    n_classes = scored_classes(dataset) if kind == "class_map" else None
    choose_by = args.choose_by or (
        {"bsds": "covering", "class_map": "miou_per_image"}.get(kind, args.select)
    )
    if choose_by in GT_SCORES and (
        kind == "internal" or (choose_by == "miou_per_image") != (kind == "class_map")
    ):
        log.error(
            "--choose-by %s needs ground truth of another kind than %s's", choose_by, args.dataset
        )
        return 2
    source = args.checkpoint or args.predictions
    name = f"checkpoint-{source.stem}" if args.checkpoint else f"predictions-{source.name}"
    out = args.out or Path("runs") / "postprocess" / f"{args.dataset}-{split}-{name}"
    columns = _columns(kind)
    csv_path = out / "per_image.csv"
    config = {
        "dataset": args.dataset,
        "split": split,
        "data_root": str(Path(root).resolve()),
        "source": str(source.resolve()),
        "refine": bool(args.refine),
        "settings": [s.name for s in settings],
        "seed": args.seed,
        "samples": args.samples,
    }
    try:
        config_path = out / "config.json"
        if config_path.is_file() and json.loads(config_path.read_text()) != config:
            raise ValueError(
                f"{out} holds a post-processing run with other settings; choose another "
                "--out or delete it"
            )
        done = _read_csv(csv_path, columns)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 2
    write_json(out / "config.json", config)

    # Pass 1: score every setting of every image not scored yet (resumable).
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    ids = [dataset.image_id(i) for i in range(n)]
    names = ["none", *(s.name for s in settings)]
    # Keep every image scored in full (beyond --limit too); redo the others.
    complete = {
        image_id: rows
        for image_id, rows in done.items()
        if sorted(r["setting"] for r in rows if not r.get("error")) == sorted(names)
    }
    if len(complete) != len(done):
        _write_rows(csv_path, columns, [r for rows in complete.values() for r in rows])
    rows_by_id = {image_id: complete[image_id] for image_id in ids if image_id in complete}
    todo = [i for i in range(n) if ids[i] not in rows_by_id]
    if rows_by_id:
        log.info("%s: %d images already processed, %d to go", csv_path, len(rows_by_id), len(todo))

    def jobs() -> Any:
        for index in todo:
            try:
                labels: Any = np.asarray(predict(dataset, index))
            except Exception as exc:  # reported per image
                labels = f"{type(exc).__name__}: {exc}"
            truth = dataset.ground_truth(index) if kind != "internal" else None
            image = dataset.image(index)
            yield (ids[index], image, labels, settings, args.seed, truth, n_classes, args.samples)

    failures: list[tuple[str, str]] = []
    for image_id, rows in tqdm(
        _bounded(_work, jobs(), args.workers),
        total=len(todo),
        desc=f"postprocess {args.dataset} {split}",
        unit="img",
        disable=args.quiet,
    ):
        cells = [{k: _format(row.get(k)) for k in columns} | {"id": image_id} for row in rows]
        _append_csv(csv_path, columns, cells)
        errors = [row for row in rows if row.get("error")]
        if errors:
            failures.append(
                (image_id, "; ".join(f"{row['setting']}: {row['error']}" for row in errors))
            )
        else:
            rows_by_id[image_id] = cells

    # The data-set table, the choices.
    scored = [image_id for image_id in ids if image_id in rows_by_id]
    by_setting = {
        name: [r for image_id in scored for r in rows_by_id[image_id] if r["setting"] == name]
        for name in names
    }
    summaries = {
        name: summarise_settings(rows, kind, n_classes) for name, rows in by_setting.items()
    }
    per_image = {
        image_id: choose_per_image(rows_by_id[image_id], args.select) for image_id in scored
    }
    picked = [
        r
        for image_id in scored
        for r in rows_by_id[image_id]
        if r["setting"] == per_image[image_id]
    ]
    per_image_name = f"per-image ({args.select})"
    summaries[per_image_name] = summarise_settings(picked, kind, n_classes)
    chosen = _choose({k: v for k, v in summaries.items() if k != per_image_name}, choose_by)

    # Pass 2: the label maps of the two choices and the comparison figure.
    by_name = {s.name: s for s in settings}
    examples = []
    with (
        atomic_directory(out / "chosen-dataset") as dataset_dir,
        atomic_directory(out / "chosen-image") as image_dir,
    ):
        for index in tqdm(
            [i for i in range(n) if ids[i] in per_image],
            desc="write choices",
            unit="img",
            disable=args.quiet,
        ):
            image_id = ids[index]
            image = dataset.image(index)
            labels = np.asarray(predict(dataset, index))
            wanted = {chosen, per_image[image_id] or "none"}
            if len(examples) < args.figure_images:
                wanted |= set(names)
            maps = {}
            for setting_name in wanted:
                if setting_name == "none":
                    maps[setting_name] = labels.astype(np.int64)
                else:
                    merged = merge_segments(image, labels, by_name[setting_name], args.seed)
                    if kind == "class_map":
                        merged = majority_ids(merged, labels)
                    maps[setting_name] = merged
            save_label_png(dataset_dir / f"{image_id}.png", maps[chosen])
            save_label_png(image_dir / f"{image_id}.png", maps[per_image[image_id] or "none"])
            if len(examples) < args.figure_images:
                examples.append((image_id, image, maps))
    figures = []
    if examples:
        first = {}
        for setting in settings:
            first.setdefault(setting.method, setting.name)
        save_comparison_figure(out / "comparison.png", examples, list(first.values()))
        figures.append(
            {"title": "Post-processing: each clusterer's result", "path": "comparison.png"}
        )

    table = _table(summaries, kind)
    summary = {
        "kind": "postprocess",
        "title": f"Post-processing of {name} on {args.dataset} {split} ({len(scored)} images)",
        "dataset": args.dataset,
        "split": split,
        "n_images": len(scored),
        "select": args.select,
        "choose_by": choose_by,
        "chosen_dataset": chosen,
        "per_image_choices": per_image,
        "settings": summaries,
        "tables": [
            {
                "title": f"Mean scores per setting; data-set choice by {choose_by}: {chosen}; "
                f"per-image choice by {args.select}",
                **table,
            }
        ],
        "figures": figures,
        "failed": [{"id": image_id, "error": error} for image_id, error in failures],
    }
    write_json(out / "summary.json", summary)
    print(summary["title"])
    print(_format_text_table(table["columns"], table["rows"]))
    print(f"data-set choice (by {choose_by}): {chosen}; label maps in {out / 'chosen-dataset'}")
    print(f"per-image choice (by {args.select}): label maps in {out / 'chosen-image'}")
    if failures:
        log.error("%d image(s) failed:", len(failures))
        for image_id, message in failures:
            log.error("  %s: %s", image_id, message)
        return 1
    return 0


def _read_csv(path: Path, columns: list[str]) -> dict[str, list[dict[str, str]]]:
    """The rows of ``per_image.csv`` by image id."""
    rows: dict[str, list[dict[str, str]]] = {}
    for row in _read_rows(path, columns):
        rows.setdefault(row["id"], []).append(row)
    return rows


def _append_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Append one image's rows (the header first in a new file), flushed at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)
