"""Fuzz and property tests (Hypothesis), bounded in time for CI.

- The image readers on mutated bytes of small valid files of every format we read: they
  return a well-formed array or raise :class:`~unsupseg.errors.ImageReadError`, never
  anything else.
- The metrics on random small label maps: ranges, symmetry, perfect scores (also
  under relabelling), no NaN.

Every test is derandomized with no example database, so a run is the same everywhere
(``UNSUPSEG_FUZZ_SCALE=N`` runs N times as many examples); inputs that once found a bug
are kept as plain tests in ``test_fuzz_regressions.py``.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from test_io import png16_bytes

from unsupseg import metrics as M
from unsupseg.errors import ImageReadError
from unsupseg.io import (
    image_size,
    plan_tiff,
    read_image,
    read_label_png,
    read_scribble,
    read_tiff,
)

#: Multiplies every example count (e.g. ``UNSUPSEG_FUZZ_SCALE=50`` for a long local hunt).
SCALE = max(1, int(os.environ.get("UNSUPSEG_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=1000 * SCALE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROPERTY = settings(max_examples=120 * SCALE, deadline=None, derandomize=True, database=None)


# ---------------------------------------------------------------------------
# seed files


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _seed_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (9, 12, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    gray16 = Image.fromarray((rng.integers(0, 65535, (9, 12))).astype(np.uint16))
    values16 = rng.integers(100, 251, (9, 12, 4)).astype(np.uint16)
    return {
        "rgb.png": _save(rgb, "PNG"),
        "gray.png": _save(rgb.convert("L"), "PNG"),
        "palette.png": _save(rgb.convert("P"), "PNG"),
        "rgba.png": _save(rgb.convert("RGBA"), "PNG"),
        "bw.png": _save(rgb.convert("1"), "PNG"),
        "gray16.png": _save(gray16, "PNG"),
        "rgb16.png": png16_bytes(values16[..., :3], 2, [4, 1, 0, 3, 2, 4, 4, 1, 2]),
        "rgba16.png": png16_bytes(values16, 6, 4, interlace=True),
        "la16.png": png16_bytes(values16[..., :2], 4, 3),
        "rotated.jpg": _save(rgb, "JPEG", exif=exif),
        "progressive.jpg": _save(rgb, "JPEG", progressive=True),
        "gray.jpg": _save(rgb.convert("L"), "JPEG"),
        "rgb.tif": _save(rgb, "TIFF"),
        "lzw.tif": _save(rgb, "TIFF", compression="tiff_lzw"),
        "float.tif": _save(Image.fromarray(rng.random((9, 12)).astype(np.float32)), "TIFF"),
        "gray16.tif": _save(gray16, "TIFF"),
        "rgb.bmp": _save(rgb, "BMP"),
        "palette.bmp": _save(rgb.convert("P"), "BMP"),
        "rgb.gif": _save(rgb, "GIF"),
        "anim.gif": _save(rgb, "GIF", save_all=True, append_images=[rgb.rotate(90)]),
    }


SEEDS = _seed_files()
NAMES = sorted(SEEDS)
HUGE = [0, 1, 0xFFFF, 0x10000, 100_000, 0x7FFFFFFF, 0xFFFFFFFF]


def _fix_png_crcs(data: bytearray) -> bytearray:
    """Recompute the CRC of every chunk so that mutations get past Pillow's check."""
    offset = 8
    while offset + 12 <= len(data):
        length = struct.unpack(">I", data[offset : offset + 4])[0]
        end = offset + 8 + length
        if end + 4 > len(data):
            break
        crc = zlib.crc32(bytes(data[offset + 4 : end])) & 0xFFFFFFFF
        data[end : end + 4] = struct.pack(">I", crc)
        offset = end + 4
    return data


@st.composite
def mutated_files(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "field", "header", "delete"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        elif kind in ("field", "header"):
            # a 2- or 4-byte size-like field, anywhere or in the first 64 bytes
            if kind == "header":
                position = draw(st.integers(0, 60))
            width = draw(st.sampled_from([2, 4]))
            value = draw(st.sampled_from(HUGE)) & (0xFFFF if width == 2 else 0xFFFFFFFF)
            order = draw(st.sampled_from(["<", ">"]))
            packed = struct.pack(order + ("H" if width == 2 else "I"), value)
            data[position : position + width] = packed
    if name.endswith(".png") and draw(st.booleans()):
        data = _fix_png_crcs(data)
    return name, bytes(data)


def _check_image(array: np.ndarray) -> None:
    assert isinstance(array, np.ndarray)
    assert array.ndim == 3 and array.shape[2] == 3 and min(array.shape[:2]) >= 1
    assert array.dtype in (np.uint8, np.uint16, np.float32)


@pytest.fixture(scope="module")
def fuzz_dir():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def test_seed_files_read(fuzz_dir):
    for name, data in SEEDS.items():
        (fuzz_dir / name).write_bytes(data)
        if name == "anim.gif":  # frames are read by plan; read_image refuses them
            with pytest.raises(ImageReadError, match="2 frames"):
                read_image(fuzz_dir / name)
            image = read_tiff(fuzz_dir / name, plan_tiff(fuzz_dir / name, "first")[0])
        else:
            image = read_image(fuzz_dir / name)
        _check_image(image)
        assert image.shape[:2] == image_size(fuzz_dir / name)
        assert image.shape[:2] == ((12, 9) if name == "rotated.jpg" else (9, 12))


@pytest.mark.filterwarnings("error")  # a warning raised as an error is an error too
@FUZZ
@given(sample=mutated_files(), reduced=st.booleans())
def test_read_image_on_mutated_files(fuzz_dir, sample, reduced):
    name, data = sample
    path = fuzz_dir / f"mutated-{name}"
    path.write_bytes(data)
    kwargs = {"max_side": 8, "max_pixels": 64} if reduced else {}
    try:
        image = read_image(path, **kwargs)
    except ImageReadError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        _check_image(image)
        if reduced:
            assert image.shape[0] * image.shape[1] <= 64 or max(image.shape[:2]) <= 8
    try:
        size = image_size(path)
    except ImageReadError:
        pass
    else:
        assert len(size) == 2 and min(size) >= 0


@pytest.mark.filterwarnings("error")  # a warning raised as an error is an error too
@FUZZ
@given(sample=mutated_files(), pages=st.sampled_from(["each", "volume"]))
def test_page_and_frame_readers_on_mutated_files(fuzz_dir, sample, pages):
    name, data = sample
    path = fuzz_dir / f"mutated-pages-{name}"
    path.write_bytes(data)
    try:
        plans = plan_tiff(path, pages) or []
        arrays = [read_tiff(path, plan, max_pixels=4096) for plan in plans[:3]]
    except ImageReadError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert all(array.ndim in (2, 3, 4) and array.size > 0 for array in arrays)


@pytest.mark.filterwarnings("error")  # a warning raised as an error is an error too
@FUZZ
@given(sample=mutated_files())
def test_label_and_scribble_readers_on_mutated_files(fuzz_dir, sample):
    name, data = sample
    path = fuzz_dir / f"mutated-labels-{name}"
    path.write_bytes(data)
    for reader in (read_label_png, read_scribble):
        try:
            labels = reader(path)
        except ImageReadError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        else:
            assert isinstance(labels, np.ndarray) and labels.ndim >= 2


# ---------------------------------------------------------------------------
# metrics


def label_maps(max_side: int = 7, max_labels: int = 4):
    shapes = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return shapes.flatmap(
        lambda shape: arrays(np.int64, shape, elements=st.integers(0, max_label(max_labels)))
    )


def max_label(n: int) -> int:
    return n - 1


@st.composite
def label_pairs(draw, max_side: int = 7, max_labels: int = 4):
    a = draw(label_maps(max_side, max_labels))
    b = draw(arrays(np.int64, a.shape, elements=st.integers(0, max_labels - 1)))
    return a, b


@st.composite
def relabelled(draw, labels: np.ndarray) -> np.ndarray:
    """``labels`` with its ids mapped one to one onto other (possibly negative) ids."""
    ids = np.unique(labels)
    new = draw(
        st.lists(st.integers(-1000, 1000), min_size=ids.size, max_size=ids.size, unique=True)
    )
    return np.asarray(new, dtype=np.int64)[np.searchsorted(ids, labels)]


def _finite(*values: float) -> None:
    for value in values:
        assert np.isfinite(value), value


@PROPERTY
@given(pair=label_pairs())
def test_rand_index_and_vi_ranges_and_symmetry(pair):
    a, b = pair
    ri = M.rand_index(a, b)
    _finite(ri)
    assert 0.0 <= ri <= 1.0
    assert ri == pytest.approx(M.rand_index(b, a), abs=1e-12)
    assert M.probabilistic_rand_index(a, [b]) == pytest.approx(ri, abs=1e-12)
    vi = M.variation_of_information(a, [b])
    _finite(vi)
    assert 0.0 <= vi <= np.log2(a.size) + 1e-9
    assert vi == pytest.approx(M.variation_of_information(b, [a]), abs=1e-9)
    pri = M.probabilistic_rand_index(a, [a, b])
    assert pri == pytest.approx((1.0 + ri) / 2, abs=1e-12)


@PROPERTY
@given(data=st.data(), labels=label_maps())
def test_perfect_prediction_under_relabelling(data, labels):
    prediction = data.draw(relabelled(labels))
    assert M.rand_index(prediction, labels) == pytest.approx(1.0, abs=1e-12)
    assert M.variation_of_information(prediction, [labels]) == pytest.approx(0.0, abs=1e-9)
    assert M.segmentation_covering(prediction, [labels, labels]) == pytest.approx(1.0)
    components = M.connected_components(labels)
    total, count = M.bsds_miou_terms(data.draw(relabelled(components)), [components])
    assert total == pytest.approx(count)
    for mode, (s, n) in M.bsds_miou_all_modes(prediction, [components]).items():
        assert s == pytest.approx(n), mode
    counts = M.boundary_prf_terms(prediction, [labels])
    scores = M.boundary_f(counts)
    if counts["total_gt"]:
        assert scores["precision"] == scores["recall"] == scores["f"] == 1.0
    else:
        assert counts["total_pred"] == 0


@PROPERTY
@given(pair=label_pairs(), second=label_maps(7, 3))
def test_region_scores_in_range(pair, second):
    prediction, gt = pair
    annotators = [gt, second] if second.shape == gt.shape else [gt]
    covering = M.segmentation_covering(prediction, annotators)
    _finite(covering)
    assert 0.0 <= covering <= 1.0 + 1e-12
    weighted, area = M.segmentation_covering_terms(prediction, annotators)
    assert area == len(annotators) * prediction.size
    ious, areas = M.best_iou_per_segment(prediction, gt)
    assert np.all((ious > 0) & (ious <= 1.0)) and areas.sum() == gt.size
    for mode in M.MODES:
        total, count = M.bsds_miou_terms(prediction, annotators, mode)
        _finite(total)
        assert count >= 1 and 0.0 <= total / count <= 1.0 + 1e-12
    total, count = M.per_image_best_iou_terms(prediction, gt, void=None)
    assert count == np.unique(gt).size and 0.0 <= total <= count + 1e-12


@PROPERTY
@given(labels=label_maps(8, 3))
def test_connected_components_refine_the_labels(labels):
    components = M.connected_components(labels)
    ids = np.unique(components)
    np.testing.assert_array_equal(ids, np.arange(ids.size))
    # one label per component, and 4-neighbours of the same label share the component
    for k in ids:
        assert np.unique(labels[components == k]).size == 1
    same_h = labels[:, 1:] == labels[:, :-1]
    assert np.all(components[:, 1:][same_h] == components[:, :-1][same_h])
    same_v = labels[1:] == labels[:-1]
    assert np.all(components[1:][same_v] == components[:-1][same_v])


@PROPERTY
@given(pair=label_pairs(8, 3), tolerance=st.sampled_from([0.0, 0.0075, 0.1, 0.3]))
def test_boundary_scores_in_range(pair, tolerance):
    prediction, gt = pair
    counts = M.boundary_prf_terms(prediction, [gt], tolerance)
    assert 0 <= counts["matched_pred"] <= counts["total_pred"]
    assert 0 <= counts["matched_gt"] <= counts["total_gt"]
    scores = M.boundary_f(counts)
    for value in scores.values():
        _finite(value)
        assert 0.0 <= value <= 1.0
    # one annotator: the matching is one to one, so both sides match as many pixels
    assert counts["matched_pred"] == counts["matched_gt"]
    swapped = M.boundary_prf_terms(gt, [prediction], tolerance)
    assert swapped["matched_pred"] == counts["matched_gt"]
    curve = M.boundary_pr_curve_terms([M.label_boundaries(prediction, thin=False)], [gt], tolerance)
    summary = M.boundary_ods_ois_ap([curve, curve])
    for key, value in summary.items():
        if key != "ods_index":
            _finite(value)
            assert 0.0 <= value <= 1.0 + 1e-12, key


@PROPERTY
@given(
    a=arrays(bool, st.tuples(st.integers(1, 9), st.integers(1, 9))),
    seed=st.integers(0, 2**16),
    max_dist=st.sampled_from([0.0, 1.0, 1.5, 3.0]),
)
def test_correspond_pixels_is_a_one_to_one_matching(a, seed, max_dist):
    b = np.random.default_rng(seed).random(a.shape) < 0.3
    match_a, match_b = M.correspond_pixels(a, b, max_dist)
    assert match_a.sum() == match_b.sum()
    assert not (match_a & ~a).any() and not (match_b & ~b).any()
    if max_dist == 0.0:
        np.testing.assert_array_equal(match_a, a & b)
    back_b, back_a = M.correspond_pixels(b, a, max_dist)
    assert back_a.sum() == match_a.sum()


@PROPERTY
@given(
    data=st.data(),
    classes=label_maps(7, 4),
    n_clusters=st.integers(1, 5),
)
def test_hungarian_scores(data, classes, n_clusters):
    prediction = data.draw(arrays(np.int64, classes.shape, elements=st.integers(0, n_clusters - 1)))
    confusion = M.hungarian_confusion(prediction, classes, 4, void=None, n_clusters=n_clusters)
    assert confusion.sum() == classes.size
    scores = M.hungarian_scores(confusion)
    _finite(scores["miou"], scores["pixel_accuracy"])
    assert 0.0 <= scores["miou"] <= 1.0 and 0.0 <= scores["pixel_accuracy"] <= 1.0
    assigned = scores["assignment"][scores["assignment"] >= 0]
    assert np.unique(assigned).size == assigned.size  # one to one
    # a perfect prediction under a permutation of the class ids scores 1
    permutation = np.asarray(data.draw(st.permutations(range(4))))
    perfect = M.hungarian_scores(M.hungarian_confusion(permutation[classes], classes, 4, void=None))
    assert perfect["miou"] == 1.0 and perfect["pixel_accuracy"] == 1.0


@settings(max_examples=25 * SCALE, deadline=None, derandomize=True, database=None)
@given(labels=label_maps(8, 3), seed=st.integers(0, 100))
def test_internal_indices_ranges(labels, seed):
    rgb = np.random.default_rng(seed).random((*labels.shape, 3))
    n_labels = np.unique(labels).size
    if n_labels < 2 or n_labels >= labels.size:
        with pytest.warns(RuntimeWarning):
            scores = M.internal_indices(rgb, labels)
        assert all(np.isnan(v) for v in scores.values())
        return
    scores = M.internal_indices(rgb, labels)
    _finite(*scores.values())
    assert -1.0 <= scores["silhouette"] <= 1.0
    assert scores["calinski_harabasz"] >= 0 and scores["davies_bouldin"] >= 0


@PROPERTY
@given(data=st.data(), prediction=label_maps(6, 4))
def test_bsds_all_modes_equal_each_mode(data, prediction):
    pool = [data.draw(arrays(np.int64, prediction.shape, elements=st.integers(0, 4)))]
    pool.append(data.draw(arrays(np.int64, prediction.shape, elements=st.integers(0, 2))))
    # the same array may come twice (one annotation stored for two annotators)
    picks = data.draw(st.lists(st.sampled_from(range(len(pool))), min_size=1, max_size=4))
    annotators = [pool[i] for i in picks]
    together = M.bsds_miou_all_modes(prediction, annotators)
    for mode in M.MODES:
        total, count = M.bsds_miou_terms(prediction, annotators, mode)
        assert together[mode][1] == count, mode
        assert together[mode][0] == pytest.approx(total), mode


@PROPERTY
@given(
    data=st.data(),
    labels=label_maps(5, 3),
    scale=st.sampled_from([1.0, 1e6, 2.0**40, 2.0**62, 2.0**64, 1e300]),
)
def test_whole_number_float_labels_are_labels(data, labels, scale):
    """Float label maps with whole values: the same partition as their integers, or a
    ValueError where they cannot be integers, never labels silently merged."""
    ids = np.unique(labels)
    floats = (np.arange(ids.size, dtype=np.float64) * scale + scale)[np.searchsorted(ids, labels)]
    try:
        ri = M.rand_index(floats, labels)
        vi = M.variation_of_information(floats, [labels])
    except ValueError as exc:
        assert "int64" in str(exc)
        assert np.abs(floats).max() >= 2.0**63
    else:
        assert ri == pytest.approx(1.0) and vi == pytest.approx(0.0, abs=1e-9)
