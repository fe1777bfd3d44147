"""Boundary cues of a photo, with no labels and no trained weights.

The boundary strength is a weighted sum of multichannel gradient magnitudes, each
normalised by its own 99th percentile so that the cues are comparable:

- **colour**: the CIELAB channels (each with its own weight), Gaussian-smoothed at
  several scales; at each scale the multichannel gradient of Di Zenzo (the square root
  of the largest eigenvalue of the 2x2 structure tensor summed over channels) is the
  strength of the strongest oriented difference, the oriented half-disc contrast of gPb
  in its L2 form;
- **texture**: each pixel's filter-bank response (Gaussian derivatives at two scales)
  is quantised into textons by k-means on a sample of the image's own pixels; the
  one-hot texton maps are smoothed into local histograms whose multichannel gradient is
  the texture contrast.

The cues may be computed on a downsampled copy of the photo (``scale`` < 1, much faster)
and are then resized back to the photo's shape.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.transform import resize
from sklearn.cluster import MiniBatchKMeans

from unsupseg.regions import multichannel_gradient

__all__ = ["boundary_strength", "multichannel_gradient", "spectral_strength", "texton_map"]


def spectral_strength(
    strength: np.ndarray,
    n_vectors: int = 8,
    radius: int = 3,
    rho: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Globalised boundaries of gPb (sPb) from a local boundary map, on its own grid.

    Pixels within ``radius`` are linked with affinity ``exp(-c / rho)``, ``c`` the
    largest strength on the segment between them (intervening contour); the
    ``n_vectors`` smallest non-trivial generalised eigenvectors of ``(D - W) v =
    lambda D v`` are computed and sPb is the sum of their gradient magnitudes divided
    by ``sqrt(lambda)``, normalised by its 99th percentile and clipped to [0, 1].
    """
    from scipy.sparse import coo_matrix, diags
    from scipy.sparse.linalg import eigsh

    h, w = strength.shape
    index = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for dy in range(0, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > radius * radius:
                continue
            y0, y1 = 0, h - dy
            x0, x1 = max(0, -dx), min(w, w - dx)
            steps = max(abs(dy), abs(dx))
            peak = np.zeros((y1 - y0, x1 - x0))
            for k in range(steps + 1):
                oy = int(round(dy * k / steps))
                ox = int(round(dx * k / steps))
                np.maximum(peak, strength[y0 + oy : y1 + oy, x0 + ox : x1 + ox], out=peak)
            rows.append(index[y0:y1, x0:x1].ravel())
            cols.append(index[y0 + dy : y1 + dy, x0 + dx : x1 + dx].ravel())
            vals.append(np.exp(-peak.ravel() / rho))
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    v = np.concatenate(vals)
    n = h * w
    affinity = coo_matrix((np.r_[v, v], (np.r_[r, c], np.r_[c, r])), shape=(n, n)).tocsr()
    degree = np.asarray(affinity.sum(axis=1)).ravel() + 1e-10
    inv_sqrt = diags(1.0 / np.sqrt(degree))
    normalised = inv_sqrt @ affinity @ inv_sqrt
    rng = np.random.default_rng(seed)
    mu, vectors = eigsh(
        normalised, k=n_vectors + 1, which="LA", v0=rng.standard_normal(n), tol=1e-4
    )
    order = np.argsort(-mu)
    total = np.zeros((h, w))
    for j in order[1:]:
        lam = max(1.0 - mu[j], 1e-6)
        vec = (vectors[:, j] / np.sqrt(degree)).reshape(h, w)
        vec = vec / (np.abs(vec).max() + 1e-12)
        gy, gx = np.gradient(vec)
        total += np.hypot(gx, gy) / np.sqrt(lam)
    return np.clip(total / (np.percentile(total, 99) + 1e-12), 0.0, 1.0)


def texton_map(lab: np.ndarray, n_textons: int = 32, seed: int = 0) -> np.ndarray:
    """Quantise each pixel's local filter responses into ``n_textons`` textons.

    Parameters
    ----------
    lab : ndarray of float, shape (H, W, 3)
        The image in CIELAB.
    n_textons : int
    seed : int

    Returns
    -------
    textons : ndarray of int64, shape (H, W)
    """
    lightness = lab[..., 0] / 100.0
    responses = []
    for sigma in (1.0, 2.0):
        for order in ((0, 1), (1, 0), (0, 2), (2, 0), (1, 1)):
            responses.append(ndimage.gaussian_filter(lightness, sigma, order=order))
    features = np.stack(responses, axis=-1).reshape(-1, len(responses))
    features /= features.std(axis=0, keepdims=True) + 1e-8
    rng = np.random.default_rng(seed)
    sample = features[rng.choice(len(features), size=min(len(features), 20000), replace=False)]
    kmeans = MiniBatchKMeans(
        n_clusters=n_textons, random_state=seed, n_init=1, batch_size=4096, max_iter=50
    ).fit(sample)
    return kmeans.predict(features).reshape(lab.shape[:2]).astype(np.int64)


def boundary_strength(
    image: np.ndarray,
    colour_sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
    texture_sigmas: tuple[float, ...] = (4.0, 8.0),
    texture_weight: float = 1.0,
    n_textons: int = 32,
    seed: int = 0,
    lab_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    scale: float = 1.0,
    spectral_weight: float = 0.0,
    spectral_scale: float = 0.25,
    spectral_vectors: int = 8,
    spectral_radius: int = 3,
    spectral_rho: float = 0.1,
) -> np.ndarray:
    """The boundary strength of an RGB photo, in [0, 1].

    Parameters
    ----------
    image : ndarray of float, shape (H, W, 3)
        RGB in [0, 1].
    colour_sigmas, texture_sigmas : tuple of float
        Gaussian scales of the colour and texture gradients, in pixels of the photo
        (divided by ``scale`` internally is *not* done: they are in pixels of the
        possibly downsampled copy).
    texture_weight : float
        The texture cue's weight against the colour cue's (each averaged over scales).
    n_textons : int
    seed : int
        The texton k-means seed.
    lab_weights : tuple of 3 float
        Weights of the L, a and b channels (each channel divided by 100 first).
    scale : float
        Compute the cues on the photo resized by this factor (``<= 1``).
    spectral_weight : float
        Weight of the globalised cue (:func:`spectral_strength` of the local strength
        resized by ``spectral_scale`` of the photo) in a convex combination with the
        local one; 0 = off.
    spectral_scale, spectral_vectors, spectral_radius, spectral_rho
        The settings of :func:`spectral_strength`.

    Returns
    -------
    strength : ndarray of float64, shape (H, W)
    """
    image = np.asarray(image, dtype=np.float64)
    shape = image.shape[:2]
    if scale != 1.0:
        small = (max(2, round(shape[0] * scale)), max(2, round(shape[1] * scale)))
        image = resize(image, small, order=1, anti_aliasing=True, mode="reflect")
    lab = rgb2lab(np.clip(image, 0.0, 1.0))
    weights = np.asarray(lab_weights, dtype=np.float64) / 100.0
    channels = np.moveaxis(lab, -1, 0) * weights[:, None, None]
    colour = np.mean([multichannel_gradient(channels, s) * s for s in colour_sigmas], axis=0)
    total = colour / (np.percentile(colour, 99) + 1e-8)
    if texture_weight > 0:
        textons = texton_map(lab, n_textons, seed)
        onehot = (textons[None] == np.arange(n_textons)[:, None, None]).astype(np.float64)
        texture = np.mean([multichannel_gradient(onehot, s) * s for s in texture_sigmas], axis=0)
        total = total + texture_weight * texture / (np.percentile(texture, 99) + 1e-8)
        total /= 1.0 + texture_weight
    if spectral_weight > 0:
        grid = (max(4, round(shape[0] * spectral_scale)), max(4, round(shape[1] * spectral_scale)))
        local = resize(np.clip(total, 0, 1), grid, order=1, anti_aliasing=True, mode="reflect")
        spb = spectral_strength(local, spectral_vectors, spectral_radius, spectral_rho, seed)
        spb = resize(spb, total.shape, order=1, mode="reflect", anti_aliasing=False)
        total = (1.0 - spectral_weight) * np.clip(total, 0, 1) + spectral_weight * spb
    if total.shape != shape:
        total = resize(total, shape, order=1, mode="reflect", anti_aliasing=False)
    return np.clip(total, 0.0, 1.0)
