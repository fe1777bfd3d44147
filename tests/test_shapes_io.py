"""Reading and writing other image shapes: bands, stacks, volumes, GeoTIFF."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import tifffile
from PIL import Image

from unsupseg.cli import main
from unsupseg.errors import ConfigError, ImageReadError
from unsupseg.io import geo_tags, plan_tiff, read_image, read_tiff

FAST = ["--q", "8", "--max-iter", "3", "--n-segments", "40", "--quiet"]
GEO = [
    (33550, "d", 3, (10.0, 10.0, 0.0), True),  # ModelPixelScale
    (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), True),  # ModelTiepoint
    (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633), True),
    (34737, "s", 0, "WGS 84 / UTM zone 33N|", True),  # GeoAsciiParams
    (42113, "s", 0, "0", True),  # GDAL_NODATA
]


def _noise(shape, dtype=np.uint8, high=255):
    return (np.random.default_rng(0).random(shape) * high).astype(dtype)


def _labels_tif(folder):
    with tifffile.TiffFile(folder / "labels.tif") as tiff:
        return tiff.asarray(), {code: tag.value for code, tag in tiff.pages[0].tags.items()}


def test_a_five_band_tiff_is_read_and_segmented_with_all_bands(tmp_path):
    path = tmp_path / "bands.tif"
    tifffile.imwrite(path, _noise((24, 32, 5), np.uint16, 4000), photometric="minisblack",
                     planarconfig="contig")  # fmt: skip
    (plan,) = plan_tiff(path)
    assert read_tiff(path, plan).shape == (24, 32, 5)
    with pytest.raises(ImageReadError, match="5 channels"):
        read_image(path)  # the 2-D reader never drops bands silently
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 0
    labels, _ = _labels_tif(tmp_path / "out" / "bands")
    assert labels.shape == (24, 32)
    np.testing.assert_array_equal(labels, np.load(tmp_path / "out" / "bands" / "labels.npy"))
    summary = json.loads((tmp_path / "out" / "bands" / "summary.json").read_text())
    assert summary["channels"] == 5 and summary["parameters"]["channels"] == 5


def test_a_planar_band_tiff_keeps_its_bands_channels_last(tmp_path):
    path = tmp_path / "planar.tif"
    data = _noise((6, 20, 30))
    tifffile.imwrite(path, data, metadata={"axes": "CYX"}, photometric="minisblack")
    (plan,) = plan_tiff(path)
    np.testing.assert_array_equal(read_tiff(path, plan), np.moveaxis(data, 0, -1))


def test_an_eight_slice_stack_is_refused_unless_pages_says_how(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, _noise((8, 24, 32)))
    with pytest.raises(ImageReadError, match=r"--pages first\|each\|volume"):
        plan_tiff(path)
    with pytest.raises(ConfigError, match="pages"):
        plan_tiff(path, "all")
    out = tmp_path / "out"
    assert main(["segment", str(path), "--out", str(out / "refused"), *FAST]) == 1
    assert not (out / "refused" / "stack").exists()

    assert main(["segment", str(path), "--pages", "first", "--out", str(out / "first"), *FAST]) == 0
    assert _labels_tif(out / "first" / "stack")[0].shape == (24, 32)

    assert main(["segment", str(path), "--pages", "each", "--out", str(out / "each"), *FAST]) == 0
    pages = sorted(p.name for p in (out / "each").iterdir() if p.is_dir())
    assert pages == [f"stack-page{i:03d}" for i in range(8)]

    assert main(["segment", str(path), "--pages", "volume", "--out", str(out / "vol"), *FAST]) == 0
    labels, _ = _labels_tif(out / "vol" / "stack")
    assert labels.shape == (8, 24, 32)
    with tifffile.TiffFile(out / "vol" / "stack" / "labels.tif") as tiff:
        assert tiff.series[0].axes == "ZYX"  # read back as a volume, not as plain pages
    summary = json.loads((out / "vol" / "stack" / "summary.json").read_text())
    assert summary["depth"] == 8 and summary["rendered_slice"] == 4
    assert summary["parameters"]["volume"] is True
    assert np.asarray(Image.open(out / "vol" / "stack" / "labels.png")).shape == (24, 32)


def test_an_rgb_volume_is_recognised_from_its_axes(tmp_path):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, _noise((5, 20, 28, 3)), metadata={"axes": "ZYXS"}, photometric="rgb")
    (plan,) = plan_tiff(path)
    assert plan.volume and read_tiff(path, plan).shape == (5, 20, 28, 3)
    out = tmp_path / "out"
    assert main(["segment", str(path), "--method", "tip2020", "--out", str(out), *FAST]) == 0
    assert _labels_tif(out / "cells")[0].shape == (5, 20, 28)
    summary = json.loads((out / "cells" / "summary.json").read_text())
    assert summary["parameters"]["channels"] == 3
    # 2-D only options are refused for a volume, as a failure of that input
    assert main(["segment", str(path), "--max-side", "16", "--out", str(tmp_path / "o2"),
                 *FAST]) == 1  # fmt: skip
    assert main(["segment", str(path), "--method", "hierarchy", "--out", str(tmp_path / "o3"),
                 "--quiet"]) == 1  # fmt: skip


@pytest.mark.parametrize("kind", ["rgb", "float64 elevation"])  # Pillow's path, tifffile's
def test_a_geotiff_keeps_its_transform_and_crs(tmp_path, kind):
    path = tmp_path / "field.tif"
    if kind == "rgb":
        tifffile.imwrite(path, _noise((24, 32, 3)), photometric="rgb", extratags=GEO)
    else:
        tifffile.imwrite(path, _noise((24, 32), np.float64, 900.0), extratags=GEO)
    assert {tag[0] for tag in geo_tags(path)} == {tag[0] for tag in GEO}
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 0
    labels, tags = _labels_tif(tmp_path / "out" / "field")
    assert labels.shape == (24, 32)
    for code, _, _, value, _ in GEO:
        assert tags[code] == value if isinstance(value, str) else tuple(tags[code]) == value
    summary = json.loads((tmp_path / "out" / "field" / "summary.json").read_text())
    assert summary["geotiff_tags"] == sorted(tag[0] for tag in GEO)
    # the hierarchy's labels keep them too
    assert main(["segment", str(path), "--method", "hierarchy", "--segments", "3", "--quiet",
                 "--out", str(tmp_path / "hier")]) == 0  # fmt: skip
    assert tuple(_labels_tif(tmp_path / "hier" / "field")[1][33922]) == GEO[1][3]


def test_a_geotiff_read_reduced_does_not_get_the_full_size_transform(tmp_path):
    """Over 2048x2048 with --max-side the file is read reduced: its pixel scale would be
    wrong for the labels, so no GeoTIFF tag is copied, and the summary says so."""
    path = tmp_path / "large.tif"
    tifffile.imwrite(path, _noise((2100, 2050)), photometric="minisblack", extratags=GEO)
    out = tmp_path / "out"
    assert main(["segment", str(path), "--max-side", "40", "--method", "tip2020", "--out",
                 str(out), *FAST]) == 0  # fmt: skip
    labels, tags = _labels_tif(out / "large")
    assert labels.shape == (40, 39) and not set(tags) & {33550, 33922, 34735}
    summary = json.loads((out / "large" / "summary.json").read_text())
    assert summary["geotiff_tags"].startswith("not copied")
    assert (summary["file_height"], summary["file_width"]) == (2100, 2050)


def test_a_geotiff_read_by_rasterio_keeps_transform_and_crs(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, _noise((24, 32, 3)), photometric="rgb", extratags=GEO)
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 0
    labels = tmp_path / "out" / "field" / "labels.tif"
    with rasterio.open(path) as source, rasterio.open(labels) as out:
        assert out.transform == source.transform and out.crs == source.crs


def test_every_output_has_labels_tif_equal_to_labels_png(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(_noise((24, 32, 3))).save(path)
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 0
    folder = tmp_path / "out" / "photo"
    labels, tags = _labels_tif(folder)
    np.testing.assert_array_equal(labels, np.asarray(Image.open(folder / "labels.png")))
    assert 33550 not in tags


def test_a_truncated_tiff_stack_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _noise((4, 64, 64)), metadata={"axes": "ZYX"}, photometric="minisblack")
    path.write_bytes(path.read_bytes()[: 64 * 64 * 2])
    plans = plan_tiff(path)
    if plans is not None:  # tifffile parsed the header: decoding fails with one line
        with pytest.raises(ImageReadError, match="cut.tif"):
            read_tiff(path, plans[0])
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 1


def test_pages_appended_one_by_one_are_pages_of_one_stack(tmp_path):
    """tifffile (append=True) and many tools write a stack as one series per page."""
    path = tmp_path / "appended.tif"
    data = _noise((3, 12, 16))
    for page in data:
        tifffile.imwrite(path, page, append=True)
    with pytest.raises(ImageReadError, match=r"3 pages .*--pages first\|each\|volume"):
        plan_tiff(path)
    with pytest.raises(ImageReadError, match="--pages"):
        read_image(path)  # not its first page alone
    (plan,) = plan_tiff(path, "volume")
    np.testing.assert_array_equal(read_tiff(path, plan), data)
    each = plan_tiff(path, "each")
    assert [p.suffix for p in each] == ["-page000", "-page001", "-page002"]
    for page, plan in zip(data, each, strict=True):
        np.testing.assert_array_equal(read_tiff(path, plan), page)


def test_each_reads_every_page_of_every_series(tmp_path):
    path = tmp_path / "mixed.tif"
    stack = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    tifffile.imwrite(path, stack)
    tifffile.imwrite(path, np.ones((4, 4), np.uint16), append=True)
    with pytest.raises(ImageReadError, match="different shapes"):
        plan_tiff(path, "volume")
    plans = plan_tiff(path, "each")
    assert len(plans) == 6
    arrays = [read_tiff(path, plan) for plan in plans]
    for expected, got in zip(stack, arrays, strict=False):
        np.testing.assert_array_equal(got, expected)
    assert arrays[5].shape == (4, 4)


def test_slices_of_an_imagej_hyperstack_keep_their_channels(tmp_path):
    path = tmp_path / "zc.tif"
    data = _noise((4, 2, 10, 12))
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZCYX"})
    (plan,) = plan_tiff(path)
    assert plan.volume
    np.testing.assert_array_equal(read_tiff(path, plan), np.moveaxis(data, 1, -1))
    for z, plan in enumerate(plan_tiff(path, "each")):
        np.testing.assert_array_equal(read_tiff(path, plan), np.moveaxis(data[z], 0, -1))


def test_a_volume_over_the_voxel_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "vol.tif"
    tifffile.imwrite(path, _noise((6, 10, 10)), metadata={"axes": "ZYX"})
    (plan,) = plan_tiff(path)
    with pytest.raises(ImageReadError, match="6x10x10 = 600 voxels"):
        read_tiff(path, plan, max_pixels=500)
    assert read_tiff(path, plan, max_pixels=None).shape == (6, 10, 10)


@pytest.mark.parametrize(
    ("dtype", "bands"),
    [("int8", 1), ("float64", 1), ("float16", 1), ("int64", 1), ("float64", 3),
     ("int16", 3), ("uint32", 4), ("float32", 3)],
)  # fmt: skip
def test_sample_types_pillow_cannot_decode_are_read_value_for_value(tmp_path, dtype, bands):
    # Pillow reads int8 as unsigned (-100 became 156) and refused the others as
    # "not an image file"; tifffile reads them whole, and segment takes them.
    values = np.linspace(-100, 100, 18 * 22 * bands).reshape(18, 22, bands)
    data = values.astype(dtype) if np.dtype(dtype).kind != "u" else (values + 100).astype(dtype)
    path = tmp_path / f"{dtype}.tif"
    if bands == 1:
        tifffile.imwrite(path, data[..., 0])
    else:
        tifffile.imwrite(path, data, photometric="rgb")
    (plan,) = plan_tiff(path)
    assert plan.tifffile_only and not plan.volume
    image = read_image(path)
    expected = np.repeat(data, 3, axis=2) if bands == 1 else data[..., :3]
    assert image.shape == (18, 22, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image, expected.astype(np.float32))
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 0
    assert _labels_tif(tmp_path / "out" / dtype)[0].shape == (18, 22)


def test_sample_types_pillow_decodes_stay_with_pillow(tmp_path):
    for dtype in ("uint8", "uint16", "int16", "float32"):
        tifffile.imwrite(tmp_path / f"{dtype}.tif", _noise((10, 12), dtype, 200))
        assert plan_tiff(tmp_path / f"{dtype}.tif") is None


def test_complex_samples_and_oversized_float_tiffs_are_clear_errors(tmp_path):
    path = tmp_path / "complex.tif"
    tifffile.imwrite(path, np.ones((10, 12), np.complex64))
    for read in (plan_tiff, read_image):
        with pytest.raises(ImageReadError, match=r"complex64 \(complex\) samples.*magnitude"):
            read(path)
    assert main(["segment", str(path), "--out", str(tmp_path / "out"), *FAST]) == 1
    path = tmp_path / "large.tif"
    tifffile.imwrite(path, np.zeros((30, 40), np.float64))
    with pytest.raises(ImageReadError, match="40x30 pixels of float64 is over the limit"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=1200).shape == (30, 40, 3)


def test_a_tiff_read_with_tifffile_is_oriented_as_pillow_orients_one(tmp_path):
    data = _noise((14, 20, 3))
    for dtype in ("uint8", "float64"):  # Pillow's path, then tifffile's
        tifffile.imwrite(tmp_path / f"{dtype}.tif", data.astype(dtype), photometric="rgb",
                         extratags=[(274, "H", 1, 6, True)])  # fmt: skip
    by_pillow = read_image(tmp_path / "uint8.tif")
    by_tifffile = read_image(tmp_path / "float64.tif")
    assert by_pillow.shape == by_tifffile.shape == (20, 14, 3)
    np.testing.assert_array_equal(by_tifffile, by_pillow.astype(np.float32))


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_an_animated_image_is_refused_unless_pages_says_how(tmp_path, suffix):
    # Pillow opens an animated file at its first frame: it was segmented alone, silently.
    base = _noise((16, 20, 3))
    frames = [np.roll(base, 5 * k, axis=1) for k in range(3)]
    path = tmp_path / f"anim{suffix}"
    rest = [Image.fromarray(frame) for frame in frames[1:]]
    Image.fromarray(frames[0]).save(path, save_all=True, lossless=True, append_images=rest)
    with pytest.raises(ImageReadError, match=r"3 frames.*--pages first\|each\|volume"):
        read_image(path)
    out = tmp_path / "out"
    assert main(["segment", str(path), "--out", str(out / "refused"), *FAST]) == 1
    with Image.open(path) as image:  # what Pillow shows of each frame (a GIF's palette)
        shown = [np.asarray((image.seek(k), image.convert("RGB"))[1]) for k in range(3)]
    (first,) = plan_tiff(path, "first")
    np.testing.assert_array_equal(read_tiff(path, first), shown[0])
    each = plan_tiff(path, "each")
    assert [plan.suffix for plan in each] == ["-page000", "-page001", "-page002"]
    for plan, expected in zip(each, shown, strict=True):
        np.testing.assert_array_equal(read_tiff(path, plan), expected)
    (volume,) = plan_tiff(path, "volume")
    np.testing.assert_array_equal(read_tiff(path, volume), np.stack(shown))
    assert main(["segment", str(path), "--pages", "each", "--out", str(out / "each"), *FAST]) == 0
    assert sorted(p.name for p in (out / "each").iterdir() if p.is_dir()) == [
        "anim-page000", "anim-page001", "anim-page002"]  # fmt: skip
    assert main(["segment", str(path), "--pages", "volume", "--out", str(out / "vol"), *FAST]) == 0
    assert _labels_tif(out / "vol" / "anim")[0].shape == (3, 16, 20)
    with pytest.raises(ImageReadError, match="volumes are not read reduced"):
        read_tiff(path, volume, max_pixels=500)


def test_a_one_frame_gif_is_read_as_an_image(tmp_path):
    Image.fromarray(_noise((12, 14, 3))).save(tmp_path / "still.gif")
    assert plan_tiff(tmp_path / "still.gif") is None
    assert read_image(tmp_path / "still.gif").shape == (12, 14, 3)


def test_a_compression_that_needs_imagecodecs_says_so(tmp_path, monkeypatch):
    path = tmp_path / "lerc.tif"
    tifffile.imwrite(path, np.random.default_rng(0).random((20, 30)))
    with tifffile.TiffFile(path, mode="r+b") as tiff:  # marked LERC, as other tools write it
        tiff.pages[0].tags["Compression"].overwrite(34887)
    # tifffile decodes LERC, LZW, JPEG 2000, ... with imagecodecs: as where it is absent
    monkeypatch.setattr(tifffile.tifffile, "imagecodecs", types.SimpleNamespace())
    with pytest.raises(ImageReadError, match="needs the imagecodecs package.*pip install"):
        read_image(path)


def test_lzw_compressed_bands_are_read(tmp_path):
    pytest.importorskip("imagecodecs")  # a dependency: GDAL and microscopes write LZW
    data = _noise((24, 32, 5), np.uint16, 4000)
    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig",
                     compression="lzw")  # fmt: skip
    (plan,) = plan_tiff(path)
    np.testing.assert_array_equal(read_tiff(path, plan), data)
