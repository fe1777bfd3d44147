"""Merging the noisy segments of a prediction with a clusterer.

A predicted label map is split into its 4-connected regions; each region is described
by its mean CIELAB colour and its centroid (scaled like the position features of
:func:`unsupseg.metrics.internal_indices`), and one of seven scikit-learn clusterers
groups the regions. The merged map gives every pixel its region's cluster.

The clusterers, with the parameter each is swept over:

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
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from skimage.color import rgb2lab
from sklearn import cluster, mixture

from unsupseg import metrics
from unsupseg.errors import ConfigError
from unsupseg.io import as_rgb_float

__all__ = [
    "CLUSTERERS",
    "DEFAULT_GRID",
    "PARAMETER_NAMES",
    "Setting",
    "merge_segments",
    "region_adjacency",
    "region_features",
    "sweep_settings",
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
#: Default sweep: one value of each clusterer's parameter.
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "kmeans": (16,),
    "minibatch-kmeans": (16,),
    "ward": (24,),
    "birch": (16,),
    "gmm": (16,),
    "meanshift": (0.1,),
    "dbscan": (6.0,),
}


@dataclass(frozen=True)
class Setting:
    """One clusterer with one value of its parameter (see :data:`PARAMETER_NAMES`)."""

    method: str
    value: float

    @property
    def name(self) -> str:
        """``<clusterer>-<value>``, e.g. ``ward-24`` or ``meanshift-0.1``."""
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.method}-{value}"


def sweep_settings(
    methods: Sequence[str] = CLUSTERERS, grid: Mapping[str, Sequence[float]] | None = None
) -> list[Setting]:
    """The settings of a sweep, in the order of :data:`CLUSTERERS`.

    Parameters
    ----------
    methods : sequence of str
        Clusterers swept over their :data:`DEFAULT_GRID` values.
    grid : mapping, optional
        Parameter values per clusterer, e.g. ``{"kmeans": [4, 8]}``; they replace the
        default values, and a clusterer named here is swept even when not in
        ``methods``.

    Returns
    -------
    list of Setting

    Raises
    ------
    ConfigError
        For an unknown clusterer, no ``methods``, or a grid entry without values.

    Examples
    --------
    >>> [s.name for s in sweep_settings(["ward", "kmeans"], {"kmeans": [4, 8]})]
    ['kmeans-4', 'kmeans-8', 'ward-24']
    """
    grid = dict(grid or {})
    unknown = [m for m in [*methods, *grid] if m not in CLUSTERERS]
    if unknown or not methods:
        raise ConfigError(
            f"unknown clusterer(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(CLUSTERERS)}"
        )
    values = {m: DEFAULT_GRID[m] for m in methods}
    for name, chosen in grid.items():
        if len(chosen) == 0:
            raise ConfigError(f"the grid lists no value for {name}")
        values[name] = tuple(float(v) for v in chosen)
    return [Setting(m, v) for m in CLUSTERERS if m in values for v in values[m]]


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

    Notes
    -----
    ``skimage.measure.regionprops_table`` gives the same features up to rounding (its
    means sum in another order and scale the centroid after averaging: differences of
    about 1e-14, enough to flip a clusterer's tie), and loops over the regions in
    Python: ten times slower on a fragmented prediction of 3,000 regions. One weighted
    ``bincount`` per feature keeps the merged maps as they were, and fast.
    """
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
        Clusterer and its parameter (see :data:`CLUSTERERS`).
    seed : int
        Seed of the randomised clusterers.
    position_weight : float
        Weight of the region centroids against CIELAB colour.

    Returns
    -------
    merged : ndarray of int64, shape (H, W)
        Cluster ids numbered ``0..k-1`` in order of first appearance (row-major).

    Raises
    ------
    ValueError
        When image and labels differ in size, for an unknown clusterer, or a parameter
        value it cannot take.

    Examples
    --------
    >>> from skimage import data
    >>> from unsupseg.baselines import slic_baseline
    >>> image = data.astronaut()[::4, ::4]
    >>> merged = merge_segments(image, slic_baseline(image), Setting("ward", 8))
    >>> int(merged.max()) + 1
    8
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
