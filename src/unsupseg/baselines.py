"""Classic segmentation baselines scored by the same code as the models.

Each baseline takes one RGB image and returns an ``int64`` (H, W) label map numbered
from 0: one blank segment, SLIC superpixels alone, Felzenszwalb's graph segmentation
(scikit-image) and k-means on CIELAB colour (scikit-learn). :data:`BASELINES` maps the
names used by ``unsupseg evaluate --method`` to the functions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unsupseg.data.base import to_uint8_rgb
from unsupseg.io import as_rgb_float
from unsupseg.superpixels import slic_superpixels

__all__ = [
    "BASELINES",
    "blank",
    "felzenszwalb_baseline",
    "kmeans_baseline",
    "slic_baseline",
]


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Renumber a label map to consecutive ids from 0, as int64."""
    _, inverse = np.unique(labels.ravel(), return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64)


def blank(image: np.ndarray) -> np.ndarray:
    """One segment covering the whole image.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Only its size is used.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        All zeros.
    """
    return np.zeros(np.asarray(image).shape[:2], dtype=np.int64)


def slic_baseline(
    image: np.ndarray, n_segments: int = 100, compactness: float = 10.0
) -> np.ndarray:
    """SLIC superpixels alone, as a segmentation.

    Parameters
    ----------
    image : ndarray
        RGB or grayscale image, any numeric dtype (min-max normalised by
        :func:`unsupseg.io.as_rgb_float`).
    n_segments : int
        Requested number of superpixels.
    compactness : float
        SLIC's compactness m.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        Consecutive superpixel ids from 0.
    """
    rgb = as_rgb_float(np.asarray(image))
    return _consecutive(slic_superpixels(rgb, n_segments=n_segments, compactness=compactness))


def felzenszwalb_baseline(
    image: np.ndarray, scale: float = 300, sigma: float = 0.8, min_size: int = 50
) -> np.ndarray:
    """Felzenszwalb-Huttenlocher graph segmentation (``skimage.segmentation.felzenszwalb``).

    Parameters
    ----------
    image : ndarray
        RGB or grayscale image; converted to 8-bit RGB (other dtypes are min-max scaled).
    scale : float
        Higher means larger segments.
    sigma : float
        Width of the Gaussian smoothing applied first.
    min_size : int
        Smallest segment size, enforced by merging.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        Consecutive segment ids from 0.

    Notes
    -----
    The defaults (300, 0.8, 50) are those of the README's BSDS500 val row, which an
    independent implementation reproduces to every digit given.
    """
    from skimage.segmentation import felzenszwalb

    rgb = to_uint8_rgb(np.asarray(image))
    labels = felzenszwalb(rgb, scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1)
    return _consecutive(labels)


def kmeans_baseline(image: np.ndarray, k: int = 8, seed: int = 0, n_init: int = 1) -> np.ndarray:
    """k-means clustering of the pixels' CIELAB colour (no position).

    Parameters
    ----------
    image : ndarray
        RGB or grayscale image, any numeric dtype.
    k : int
        Number of clusters (fewer when the image has fewer distinct colours).
    seed : int
        Random state of :class:`sklearn.cluster.KMeans`.
    n_init : int
        Number of k-means restarts (fixed, so results do not depend on the
        scikit-learn version's default).

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
        Consecutive cluster ids from 0. Clusters are not split into connected pieces.
    """
    from skimage.color import rgb2lab
    from sklearn.cluster import KMeans

    rgb = to_uint8_rgb(np.asarray(image))
    lab = rgb2lab(rgb).reshape(-1, 3)
    distinct = np.unique(lab, axis=0).shape[0]
    n_clusters = max(1, min(int(k), distinct))
    if n_clusters == 1:
        return blank(rgb)
    model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    labels = model.fit_predict(lab).reshape(rgb.shape[:2])
    return _consecutive(labels)


#: Baseline name (as given to ``unsupseg evaluate --method``) -> function.
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "blank": blank,
    "slic": slic_baseline,
    "felzenszwalb": felzenszwalb_baseline,
    "kmeans": kmeans_baseline,
}
