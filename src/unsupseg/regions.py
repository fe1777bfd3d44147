"""Regions of a label map: 4-connected regions, and merging them into exactly K.

The merge tree and ultrametric contour map (UCM) of a hierarchical segmentation live
here, below every method, so that any label map (a per-image optimisation's, a trained
model's) can be cut to K regions the way a hierarchy is.

A :class:`Hierarchy` starts from fine regions (the leaves: a watershed of a boundary
map, or any label map split into its 4-connected regions) and merges, greedily, the
adjacent pair of regions whose common boundary is weakest (the mean boundary strength
along it), until one region is left (Arbelaez et al., TPAMI 2011, section 4.2). Each
merge happens at a height; heights never decrease, so cutting the tree at any threshold
gives a segmentation, and the segmentations of higher thresholds are unions of those of
lower ones (they are nested). The UCM paints every boundary pixel with the height at
which its boundary disappears.

Conventions:

- a pixel is a boundary pixel when its label differs from its right or lower neighbour
  (:func:`unsupseg.metrics.label_boundaries`), so ``ucm > t`` is exactly the boundary
  map of ``cut(t)``;
- ``cut(t)`` merges every pair whose height is ``<= t``: ``cut(0)`` is the leaves
  (unless some boundary has strength 0), ``cut(1)`` one region when heights lie in
  [0, 1].
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage import measure
from skimage.color import rgb2lab

from unsupseg.errors import ConfigError

__all__ = [
    "Hierarchy",
    "connected_leaves",
    "greedy_merge",
    "image_boundary_strength",
    "multichannel_gradient",
    "regions_to_k",
]


def connected_leaves(labels: np.ndarray) -> np.ndarray:
    """Relabel a label map so that every label is one 4-connected region.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W), or (Z, Y, X) for a volume
        Every value, 0 and negatives included, is a label (none is background).

    Returns
    -------
    leaves : ndarray of int64, the shape of ``labels``
        Consecutive ids from 0, one per 4-connected (6-connected in a volume) region of
        equal labels.
    """
    labels = np.asarray(labels)
    # Dense ids from 1 (skimage's background 0 excluded), whatever the labels' range.
    _, inverse = np.unique(labels.ravel(), return_inverse=True)
    dense = inverse.reshape(labels.shape).astype(np.int64) + 1
    return measure.label(dense, background=0, connectivity=1).astype(np.int64) - 1


def _pixel_pairs(leaves: np.ndarray, strength: np.ndarray):
    """The 4-neighbour pixel pairs across leaf boundaries: the flat index of the first
    (upper or left) pixel, the two leaves (smaller first) and the pair's strength."""
    height, width = leaves.shape
    index = np.arange(height * width).reshape(height, width)
    firsts, a_s, b_s, values = [], [], [], []
    for sa, sb in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ):
        la, lb = leaves[sa], leaves[sb]
        differ = la != lb
        firsts.append(index[sa][differ])
        a_s.append(la[differ])
        b_s.append(lb[differ])
        values.append(0.5 * (strength[sa][differ] + strength[sb][differ]))
    first = np.concatenate(firsts)
    a = np.concatenate(a_s)
    b = np.concatenate(b_s)
    low, high = np.minimum(a, b), np.maximum(a, b)
    return first, low, high, np.concatenate(values)


def greedy_merge(
    leaves: np.ndarray,
    strength: np.ndarray,
    colours: np.ndarray | None = None,
    colour_weight: float = 0.0,
    size_ref: float = 0.0,
):
    """Merge adjacent leaves greedily, cheapest first, into one tree.

    The cost of joining regions ``a`` and ``b`` is ``(m + colour_weight * d) * f``:
    ``m`` the mean strength along their common boundary, ``d`` the Euclidean distance
    of their mean ``colours`` and ``f = min(1, sqrt(min(area_a, area_b) / (size_ref *
    H * W)))`` (1 when ``size_ref = 0``). Heights are made non-decreasing.

    With the defaults the cost is the mean boundary strength alone (Arbelaez et al.
    2011). A pixel pair's strength is the mean of its two pixels, a boundary's the mean
    over its pixel pairs.

    Parameters
    ----------
    leaves : ndarray of int64, shape (H, W)
        Consecutive ids from 0, each one connected region.
    strength : ndarray of float, shape (H, W)
        Boundary strength per pixel.
    colours : ndarray of float, shape (H, W, C), optional
        Per-pixel colour (needed when ``colour_weight > 0``).
    colour_weight : float
    size_ref : float
        A fraction of the image area (0: no size term).

    Returns
    -------
    merges : ndarray of int64, shape (M, 2)
        The two nodes joined by each merge; leaves are ``0 .. n - 1`` and merge ``k``
        creates node ``n + k``. ``M = n - 1`` for a connected image.
    heights : ndarray of float64, shape (M,)
        Non-decreasing: a merge's height is its cost, raised to the height of the merge
        before it where that was higher.
    pair_first : ndarray of int64
        The flat index of the upper or left pixel of every boundary pixel pair.
    pair_edge : ndarray of int64
        The leaf-adjacency edge of each pixel pair.
    edge_height : ndarray of float64
        The height at which each leaf-adjacency edge disappears.
    """
    n = int(leaves.max()) + 1
    first, low, high, values = _pixel_pairs(leaves, strength)
    key = low * n + high
    edge_keys, pair_edge = np.unique(key, return_inverse=True)
    sums = np.bincount(pair_edge, weights=values, minlength=edge_keys.size)
    counts = np.bincount(pair_edge, minlength=edge_keys.size).astype(np.float64)
    flat = leaves.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    if colours is None:
        if colour_weight:
            raise ValueError("colour_weight > 0 needs the colours")
        colours = np.zeros((*leaves.shape, 1))
    csum = np.stack(
        [np.bincount(flat, weights=c.ravel(), minlength=n) for c in np.moveaxis(colours, -1, 0)],
        axis=1,
    )
    areas = list(area)
    csums = [row for row in csum]
    size_norm = size_ref * leaves.size

    def cost(a: int, b: int, s: float, c: float) -> float:
        value = s / c
        if colour_weight:
            value += colour_weight * float(
                np.linalg.norm(csums[a] / areas[a] - csums[b] / areas[b])
            )
        if size_norm > 0:
            value *= min(1.0, np.sqrt(min(areas[a], areas[b]) / size_norm))
        return value

    # Regions live in slots, the ids of their leaves: a merge keeps the slot with more
    # neighbours and moves the other's boundaries into it, so each boundary moves
    # O(log n) times (small into large) instead of every merge copying the whole
    # neighbourhood of the merged region. ``node[slot]`` is the region's tree node.
    neighbours: list[dict[int, list]] = [dict() for _ in range(n)]
    heap: list = []
    for e, (k, s, c) in enumerate(
        zip(edge_keys.tolist(), sums.tolist(), counts.tolist(), strict=True)
    ):
        a, b = divmod(k, n)
        record = [s, c, [e]]
        neighbours[a][b] = record
        neighbours[b][a] = record
        heapq.heappush(heap, (cost(a, b, s, c), e, a, b, record))
    # Costs that depend on the regions' areas or colours change for every boundary of a
    # merged region; the mean boundary strength alone changes only where two join.
    region_costs = bool(colour_weight) or size_norm > 0
    node = list(range(n))
    edge_height = np.zeros(edge_keys.size, dtype=np.float64)
    merges, heights = [], []
    next_node, tiebreak, last = n, edge_keys.size, 0.0
    while heap:
        value, _, a, b, record = heapq.heappop(heap)
        if neighbours[a].get(b) is not record:
            continue  # a stale entry: that boundary has moved, joined or gone
        last = max(last, value)
        edge_height[record[2]] = last
        merges.append((node[a], node[b]))
        heights.append(last)
        keep, gone = (a, b) if len(neighbours[a]) >= len(neighbours[b]) else (b, a)
        node[keep] = next_node
        next_node += 1
        areas[keep] = areas[a] + areas[b]
        csums[keep] = csums[a] + csums[b]
        del neighbours[a][b], neighbours[b][a]
        if region_costs:
            # Every boundary of the merged region changes cost: each gets a fresh record
            # (the entries pushed before go stale), in the order of a's neighbours, then
            # b's, and is pushed again.
            joined: dict[int, list] = {}
            for side in (a, b):
                for other, rec in neighbours[side].items():
                    del neighbours[other][side]
                    kept = joined.get(other)
                    joined[other] = (
                        [rec[0], rec[1], list(rec[2])] if kept is None
                        else [kept[0] + rec[0], kept[1] + rec[1], kept[2] + rec[2]]
                    )  # fmt: skip
                neighbours[side] = {}
            neighbours[keep] = joined
            for other, rec in joined.items():
                neighbours[other][keep] = rec
            changed = list(joined)
        else:
            # Only the boundaries of ``gone`` move; a boundary of both joins into one.
            # Either way it is a new record, pushed again; the others keep their entries.
            changed = []
            for other, rec in neighbours[gone].items():
                del neighbours[other][gone]
                kept = neighbours[keep].get(other)
                rec = (
                    [rec[0], rec[1], rec[2]] if kept is None
                    else [kept[0] + rec[0], kept[1] + rec[1], kept[2] + rec[2]]
                )  # fmt: skip
                neighbours[keep][other] = neighbours[other][keep] = rec
                changed.append(other)
            neighbours[gone] = {}
        for other in changed:
            rec = neighbours[keep][other]
            heapq.heappush(heap, (cost(keep, other, rec[0], rec[1]), tiebreak, keep, other, rec))
            tiebreak += 1
    return (
        np.asarray(merges, dtype=np.int64).reshape(-1, 2),
        np.asarray(heights, dtype=np.float64),
        first.astype(np.int64),
        pair_edge.astype(np.int64),
        edge_height,
    )


class Hierarchy:
    """Nested segmentations of one image: leaves, merge tree and UCM.

    Build one with :func:`unsupseg.ucm.hierarchy` (from an image) or
    :meth:`from_boundaries` (from a boundary-strength map).

    Attributes
    ----------
    leaves : ndarray of int64, shape (H, W)
        The finest regions, consecutive ids from 0, each 4-connected.
    merges : ndarray of int64, shape (n_leaves - 1, 2)
        The merge tree: merge ``k`` joins the two nodes in row ``k`` into node
        ``n_leaves + k`` (leaves are nodes ``0 .. n_leaves - 1``), as in
        :func:`scipy.cluster.hierarchy.linkage` without its last two columns.
    heights : ndarray of float64, shape (n_leaves - 1,)
        The non-decreasing height (threshold) of each merge.
    ucm : ndarray of float64, shape (H, W)
        The ultrametric contour map: at a boundary pixel (one whose label differs from
        its right or lower neighbour's in the leaves) the height at which that boundary
        disappears, 0 elsewhere. ``ucm > t`` is the boundary map of ``cut(t)``.
    """

    def __init__(
        self,
        leaves: np.ndarray,
        merges: np.ndarray,
        heights: np.ndarray,
        ucm: np.ndarray,
    ):
        self.leaves = leaves
        self.merges = merges
        self.heights = heights
        self.ucm = ucm

    @classmethod
    def from_boundaries(cls, strength: np.ndarray, leaves: np.ndarray) -> Hierarchy:
        """Merge ``leaves`` greedily by the mean ``strength`` along their boundaries.

        Parameters
        ----------
        strength : ndarray of float, shape (H, W)
            Boundary strength per pixel (any scale; heights are means of it).
        leaves : ndarray of int, shape (H, W)
            Initial regions; relabelled so that each is one 4-connected region.

        Returns
        -------
        Hierarchy

        Examples
        --------
        >>> import numpy as np
        >>> strength = np.zeros((4, 6)); strength[:, 2:4] = [0.2, 0.9]
        >>> leaves = np.repeat([[0, 0, 0, 1, 1, 1]], 4, axis=0)
        >>> h = Hierarchy.from_boundaries(strength, leaves)
        >>> h.n_leaves, h.heights.tolist()
        (2, [0.55])
        >>> int(h.cut_to(1).max()), int(h.cut(0.5).max())
        (0, 1)
        """
        strength = np.asarray(strength, dtype=np.float64)
        if strength.ndim != 2 or strength.shape != np.shape(leaves):
            raise ValueError(
                f"strength {strength.shape} and leaves {np.shape(leaves)} must be one 2-D shape"
            )
        if not np.isfinite(strength).all():
            raise ValueError("the boundary strength has NaN or infinite values")
        leaves = connected_leaves(leaves)
        merges, heights, first, pair_edge, edge_height = greedy_merge(leaves, strength)
        ucm = np.zeros(leaves.size, dtype=np.float64)
        np.maximum.at(ucm, first, edge_height[pair_edge])
        return cls(leaves, merges, heights, ucm.reshape(leaves.shape))

    @property
    def shape(self) -> tuple[int, int]:
        """The image's (H, W)."""
        return self.leaves.shape

    @property
    def n_leaves(self) -> int:
        """The number of finest regions."""
        return int(self.leaves.max()) + 1

    def _labels_after(self, n_merges: int) -> np.ndarray:
        """The label map after the first ``n_merges`` merges (consecutive ids)."""
        n = self.n_leaves
        parent = np.arange(n + n_merges)
        for k in range(n_merges):
            a, b = self.merges[k]
            parent[a] = parent[b] = n + k
        # Follow each leaf up to its root: repeated jumps, halving path lengths.
        root = parent.copy()
        while True:
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
        _, labels = np.unique(root[:n], return_inverse=True)
        return labels.astype(np.int64)[self.leaves]

    def n_regions(self, threshold: float) -> int:
        """The number of regions of ``cut(threshold)``."""
        return self.n_leaves - int(np.searchsorted(self.heights, threshold, side="right"))

    def cut(self, threshold: float) -> np.ndarray:
        """The segmentation at ``threshold``: every boundary with height ``<= threshold``
        removed.

        Parameters
        ----------
        threshold : float

        Returns
        -------
        labels : ndarray of int64, shape (H, W)
            Consecutive ids from 0; every region is 4-connected.
        """
        threshold = float(threshold)
        if not np.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number; got {threshold}")
        return self._labels_after(int(np.searchsorted(self.heights, threshold, side="right")))

    def cut_to(self, n_regions: int) -> np.ndarray:
        """The segmentation with exactly ``n_regions`` 4-connected regions.

        Merges are taken in the tree's order, so where several merges share one height
        the count is still exact, and ``cut_to(k)`` is nested in ``cut_to(k + 1)``.

        Parameters
        ----------
        n_regions : int
            From 1 to :attr:`n_leaves`.

        Returns
        -------
        labels : ndarray of int64, shape (H, W)
        """
        n_regions = int(n_regions)
        if not 1 <= n_regions <= self.n_leaves:
            raise ConfigError(
                f"n_regions must be from 1 to {self.n_leaves} (the finest level's regions); "
                f"got {n_regions}"
            )
        return self._labels_after(self.n_leaves - n_regions)

    def threshold_for(self, n_regions: int) -> float:
        """The height at which the hierarchy reaches ``n_regions`` regions."""
        n_regions = int(n_regions)
        if not 1 <= n_regions <= self.n_leaves:
            raise ConfigError(f"n_regions must be from 1 to {self.n_leaves}; got {n_regions}")
        k = self.n_leaves - n_regions
        return 0.0 if k == 0 else float(self.heights[k - 1])

    def stack(self, thresholds: Sequence[float]) -> np.ndarray:
        """The cuts at increasing ``thresholds``, finest first.

        Parameters
        ----------
        thresholds : sequence of float
            Non-decreasing.

        Returns
        -------
        stack : ndarray of int32, shape (T, H, W)
            ``stack[i] = cut(thresholds[i])``; each level is nested in the next.
        """
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.ndim != 1 or np.any(np.diff(thresholds) < 0):
            raise ConfigError("thresholds must be a non-decreasing 1-D sequence")
        out = np.empty((thresholds.size, *self.shape), dtype=np.int32)
        for i, t in enumerate(thresholds):
            out[i] = self.cut(float(t))
        return out


def multichannel_gradient(channels: np.ndarray, sigma: float) -> np.ndarray:
    """Di Zenzo's gradient magnitude of a (C, H, W) stack at Gaussian scale ``sigma``.

    Parameters
    ----------
    channels : ndarray of float, shape (C, H, W)
    sigma : float
        The derivative-of-Gaussian scale, in pixels.

    Returns
    -------
    magnitude : ndarray of float64, shape (H, W)
        The square root of the largest eigenvalue of ``sum_c grad_c grad_c^T``.
    """
    gxx = gyy = gxy = 0.0
    for channel in channels:
        gx = ndimage.gaussian_filter(channel, sigma, order=(0, 1), mode="reflect")
        gy = ndimage.gaussian_filter(channel, sigma, order=(1, 0), mode="reflect")
        gxx = gxx + gx * gx
        gyy = gyy + gy * gy
        gxy = gxy + gx * gy
    trace = gxx + gyy
    root = np.sqrt((gxx - gyy) ** 2 + 4 * gxy**2)
    return np.sqrt(np.maximum(0.5 * (trace + root), 0.0))


def image_boundary_strength(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """A boundary map of an image: its colour gradient, scaled to [0, 1].

    Parameters
    ----------
    image : ndarray of float, shape (H, W) or (H, W, C)
        Values in [0, 1] (:func:`unsupseg.io.as_float_channels`). Three channels are
        taken as RGB and measured in CIELAB; other channel counts as they are.
    sigma : float
        The derivative-of-Gaussian scale, in pixels.

    Returns
    -------
    strength : ndarray of float64, shape (H, W)
        Di Zenzo's gradient magnitude (:func:`multichannel_gradient`) over its maximum.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C); got shape {image.shape}")
    if image.shape[-1] == 3:
        image = rgb2lab(np.clip(image, 0.0, 1.0)) / 100.0
    magnitude = multichannel_gradient(np.moveaxis(image, -1, 0), sigma)
    peak = float(magnitude.max())
    return magnitude / peak if peak > 0 else magnitude


def regions_to_k(labels: np.ndarray, k: int, image: np.ndarray) -> np.ndarray:
    """Exactly ``k`` 4-connected regions: ``labels`` split into its connected regions,
    then adjacent regions merged, weakest common boundary first, until ``k`` remain.

    The boundary strength is the image's colour gradient
    (:func:`image_boundary_strength`), averaged along each common boundary, and the
    merging is that of a :class:`Hierarchy` (:meth:`Hierarchy.from_boundaries`, cut
    with :meth:`Hierarchy.cut_to`), so the result for ``k`` is nested in that for
    ``k + 1``.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Any label map; a label covering several separate places counts as several
        regions.
    k : int
        From 1 to the number of 4-connected regions of ``labels``.
    image : ndarray of float, shape (H, W) or (H, W, C)
        The image ``labels`` segments, in [0, 1].

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        Ids ``0 .. k - 1``, each one 4-connected region.

    Raises
    ------
    ConfigError
        When ``k`` is below 1 or above the number of connected regions (merging cannot
        add regions).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((6, 9)); image[:, 3:6] = 0.5; image[:, 6:] = 1.0
    >>> labels = np.repeat([[0, 0, 0, 1, 1, 1, 0, 0, 0]], 6, axis=0)  # 0 in two places
    >>> regions_to_k(labels, 3, image)[0].tolist()
    [0, 0, 0, 1, 1, 1, 2, 2, 2]
    >>> len(np.unique(regions_to_k(labels, 2, image)))
    2
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ConfigError(f"K regions are cut from 2-D label maps; got shape {labels.shape}")
    if np.shape(image)[:2] != labels.shape:
        raise ValueError(f"image {np.shape(image)} and labels {labels.shape} differ in size")
    k = int(k)
    leaves = connected_leaves(labels)
    n = int(leaves.max()) + 1
    if not 1 <= k <= n:
        raise ConfigError(
            f"cannot give {k} regions: the segmentation has {n} connected region"
            f"{'s' if n != 1 else ''}, and merging cannot add any (ask for 1 to {n})"
        )
    if k == n:
        return leaves
    return Hierarchy.from_boundaries(image_boundary_strength(image), leaves).cut_to(k)
