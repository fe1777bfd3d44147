import errno
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from unsupseg.data.base import file_image_shape
from unsupseg.errors import ConfigError
from unsupseg.io import (
    _TRANSPOSE,
    ImageReadError,
    _orient_array,
    as_rgb_float,
    atomic_directory,
    atomic_file,
    compact_labels,
    find_images,
    image_size,
    read_image,
    read_label_png,
    read_scribble,
    save_label_png,
    smallest_uint_dtype,
    sweep_stale_temporaries,
    write_json,
)


def test_read_modes(tmp_path, blocks_image):
    rgb = Image.fromarray(blocks_image)
    rgb.save(tmp_path / "rgb.png")
    rgb.convert("L").save(tmp_path / "gray.png")
    rgb.convert("RGBA").save(tmp_path / "rgba.png")
    rgb.convert("P").save(tmp_path / "palette.png")
    rgb.convert("1").save(tmp_path / "bw.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), blocks_image)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), blocks_image)
    for name in ("gray", "palette", "bw"):
        image = read_image(tmp_path / f"{name}.png")
        assert image.shape == (*blocks_image.shape[:2], 3) and image.dtype == np.uint8
    gray = read_image(tmp_path / "gray.png")
    assert (gray[..., 0] == gray[..., 2]).all()


def test_read_16bit_keeps_precision(tmp_path):
    values = (np.arange(20 * 30).reshape(20, 30) * 50 + 1000).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint16 and image.shape == (20, 30, 3)
    np.testing.assert_array_equal(image[..., 1], values)
    rgb = as_rgb_float(image)
    assert rgb.min() == 0.0 and rgb.max() == 1.0


def test_read_errors(tmp_path, blocks_image):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(tmp_path / "notes.txt")
    Image.fromarray(blocks_image).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_as_rgb_float_shapes_and_normalisation():
    gray = np.array([[10, 20], [30, 50]], dtype=np.uint8)
    rgb = as_rgb_float(gray)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.float32
    assert rgb[0, 0, 0] == 0.0 and rgb[1, 1, 2] == 1.0
    np.testing.assert_allclose(rgb[0, 1], 0.25)
    rgba = np.dstack([np.full((2, 2, 3), 7), np.zeros((2, 2))])
    assert (as_rgb_float(rgba) == 0).all()  # constant RGB, alpha ignored
    with pytest.raises(ValueError, match="shape"):
        as_rgb_float(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        as_rgb_float(np.zeros((0, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        as_rgb_float(np.array([[np.nan, 1.0]]))


def test_label_png_roundtrip_uint8_and_uint16(tmp_path):
    small = np.arange(12).reshape(3, 4)
    save_label_png(tmp_path / "small.png", small)
    assert Image.open(tmp_path / "small.png").mode == "L"
    np.testing.assert_array_equal(read_label_png(tmp_path / "small.png"), small)
    large = np.arange(600).reshape(20, 30)
    save_label_png(tmp_path / "large.png", large)
    assert np.asarray(Image.open(tmp_path / "large.png")).max() == 599
    np.testing.assert_array_equal(read_label_png(tmp_path / "large.png"), large)


def test_atomic_directory_all_or_nothing(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # not left private like a temp dir
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_find_images(tmp_path, blocks_image):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "empty").mkdir()
    Image.fromarray(blocks_image).save(tmp_path / "imgs" / "b.png")
    Image.fromarray(blocks_image).save(tmp_path / "imgs" / "a.jpg")
    (tmp_path / "imgs" / "readme.txt").write_text("x")
    paths, problems = find_images([tmp_path / "imgs", tmp_path / "empty", tmp_path / "nope.png"])
    assert [p.name for p in paths] == ["a.jpg", "b.png"]
    messages = [m for _, m in problems]
    assert any("holds no image" in m for m in messages)
    assert any("no such file" in m for m in messages)


def test_atomic_file_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "summary.json"
    with atomic_file(target) as handle:
        handle.write("old")
    with pytest.raises(KeyError), atomic_file(target) as handle:
        handle.write("half")
        raise KeyError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert target.stat().st_mode & 0o044  # readable by others, as a normal file


# ---------------------------------------------------------------------------
# writers of files Pillow cannot write: 16-bit colour PNGs, bare headers


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _filter_rows(rows: np.ndarray, kinds: list[int], bpp: int) -> bytes:
    """PNG-filter rows of bytes (n, stride) with the given filter type per row."""
    out = []
    previous = np.zeros(rows.shape[1], np.int32)
    for row, kind in zip(rows.astype(np.int32), kinds, strict=True):
        a = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), previous[:-bpp]])
        b = previous
        if kind == 0:
            predicted = 0
        elif kind == 1:
            predicted = a
        elif kind == 2:
            predicted = b
        elif kind == 3:
            predicted = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predicted = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        out.append(bytes([kind]) + ((row - predicted) % 256).astype(np.uint8).tobytes())
        previous = row
    return b"".join(out)


ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def png16_bytes(
    array: np.ndarray,
    colour: int = 2,
    filters: int | list[int] = 4,
    interlace: bool = False,
    exif_after_data: bytes | None = None,
) -> bytes:
    """A real 16-bit PNG (colour type 2 RGB, 4 gray + alpha, 6 RGBA, 0 gray) of ``array``.

    ``filters``: one row filter type for every row, or one per row (not interlaced).
    ``exif_after_data``: an ``eXIf`` chunk placed after the image data.
    """
    array = np.asarray(array, dtype=np.uint16)
    height, width = array.shape[:2]
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = array[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        rows = np.ascontiguousarray(sub.astype(">u2")).view(np.uint8).reshape(sub.shape[0], -1)
        kinds = [filters] * sub.shape[0] if isinstance(filters, int) else list(filters)
        raw += _filter_rows(rows, kinds, rows.shape[1] // sub.shape[1])
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, int(interlace))
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
    if exif_after_data is not None:
        chunks += png_chunk(b"eXIf", exif_after_data)
    return b"\x89PNG\r\n\x1a\n" + chunks + png_chunk(b"IEND", b"")


def png_header_only(width: int, height: int, colour: int = 2, depth: int = 8) -> bytes:
    """A tiny PNG whose header claims ``width x height`` (its data is a few bytes)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(tmp_path: Path, width: int, height: int) -> Path:
    """A small JPEG whose frame header is patched to claim ``width x height``."""
    Image.new("RGB", (16, 16), (40, 80, 120)).save(tmp_path / "small.jpg")
    data = bytearray((tmp_path / "small.jpg").read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path = tmp_path / f"claims{width}x{height}.jpg"
    path.write_bytes(bytes(data))
    return path


def exif_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.fixture
def no_decoding(monkeypatch):
    """Make any decoding of pixel data fail: what passes read headers only."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# ---------------------------------------------------------------------------
# read_image: Pillow errors, size limits, reading reduced


def test_decompression_bomb_header_is_an_image_read_error(tmp_path):
    data = png_header_only(100_000, 100_000)
    assert len(data) < 100
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ImageReadError, match="bomb.png: the header says 100000x100000") as info:
        read_image(tmp_path / "bomb.png", max_side=1024)
    assert "\n" not in str(info.value)
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "bomb.png", max_pixels=None)
    # 200 megapixels: Pillow's own check would raise DecompressionBombError at open
    large = jpeg_claiming(tmp_path, 20_000, 10_000)
    with pytest.raises(ImageReadError, match="over the limit of 4194304 \\(2048x2048\\)"):
        read_image(large)
    # a PNG too short for its header is refused before Pillow allocates the image
    (tmp_path / "short.png").write_bytes(png_header_only(12_000, 12_000))
    with pytest.raises(ImageReadError, match="short.png: truncated or corrupt PNG: 68 bytes"):
        read_image(tmp_path / "short.png", max_side=1024)


def test_pillow_warning_raised_as_error_becomes_image_read_error(tmp_path, monkeypatch):
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")

    def warn(self, *args, **kwargs):
        raise UserWarning("Possibly corrupt EXIF data")  # what -W error makes of a warning

    monkeypatch.setattr(ImageFile.ImageFile, "load", warn)
    with pytest.raises(ImageReadError, match="a.png: corrupt or truncated image .*UserWarning"):
        read_image(tmp_path / "a.png")


def test_over_the_limit_is_refused_before_decoding(tmp_path, no_decoding):
    huge = jpeg_claiming(tmp_path, 12000, 12000)
    message = (
        "claims12000x12000.jpg: 12000x12000 pixels is over the limit of 4194304 (2048x2048) "
        "read at full size; pass --max-side 1024 (Python: max_side=1024) to read it reduced"
    )
    with pytest.raises(ImageReadError) as info:
        read_image(huge)
    assert str(info.value).endswith(message)
    assert image_size(huge) == (12000, 12000)
    (tmp_path / "huge.png").write_bytes(png_header_only(12000, 12000))
    assert image_size(tmp_path / "huge.png") == (12000, 12000)
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    with pytest.raises(ImageReadError, match="40x30 pixels is over the limit of 1000 read"):
        read_image(tmp_path / "small.png", max_pixels=1000)


def test_limit_arguments_are_checked(tmp_path):
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    for kwargs in ({"max_side": 0}, {"max_side": 2.5}, {"max_pixels": -1}, {"max_side": True}):
        with pytest.raises(ConfigError):
            read_image(tmp_path / "a.png", **kwargs)


def _smooth_image(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [xx * 255 // (width - 1), yy * 255 // (height - 1), (xx + yy) * 127 // (width + height)],
        axis=2,
    ).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".gif"])
def test_read_reduced_has_max_side_and_the_content(tmp_path, suffix):
    picture = _smooth_image(300, 200)
    Image.fromarray(picture).save(tmp_path / f"a{suffix}")
    full = read_image(tmp_path / f"a{suffix}")
    assert full.shape == (300, 200, 3)
    assert read_image(tmp_path / f"a{suffix}", max_pixels=60_000, max_side=64).shape == full.shape
    small = read_image(tmp_path / f"a{suffix}", max_pixels=1000, max_side=64)
    assert small.shape == (64, round(200 * 64 / 300), 3) and small.dtype == np.uint8
    expected = np.asarray(Image.fromarray(full).resize((43, 64), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - expected).mean() < 4
    # never enlarged
    assert read_image(tmp_path / f"a{suffix}", max_pixels=1000, max_side=500).shape == full.shape


def test_read_reduced_jpeg_decodes_at_a_fraction(tmp_path, monkeypatch):
    Image.fromarray(_smooth_image(400, 640)).save(tmp_path / "a.jpg")
    decoded = []
    load = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    small = read_image(tmp_path / "a.jpg", max_pixels=1000, max_side=80)
    assert small.shape == (50, 80, 3)
    assert set(decoded) == {(80, 50)}  # draft: libjpeg decoded at 1/8 scale


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_full_reduced_and_size(tmp_path, orientation):
    picture = _smooth_image(60, 90)
    picture[:10, :10] = (255, 0, 255)  # mark a corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(picture).save(tmp_path / "a.png", exif=exif)
    Image.fromarray(picture).save(tmp_path / "a.jpg", exif=exif, quality=95)
    for name in ("a.png", "a.jpg"):
        with Image.open(tmp_path / name) as img:
            expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        full = read_image(tmp_path / name)
        np.testing.assert_array_equal(full, expected)
        assert image_size(tmp_path / name) == full.shape[:2]
        small = read_image(tmp_path / name, max_pixels=100, max_side=30)
        assert small.shape == (*(s // 3 for s in full.shape[:2]), 3)
        reference = np.asarray(Image.fromarray(full).resize(small.shape[1::-1], Image.BOX))
        assert np.abs(small.astype(int) - reference).mean() < 8


def test_orient_array_matches_pillow():
    picture = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for orientation, method in _TRANSPOSE.items():
        expected = np.asarray(Image.fromarray(picture).transpose(method))
        np.testing.assert_array_equal(_orient_array(picture, orientation), expected)


def test_image_size_reads_the_header_only(tmp_path, no_decoding):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    assert image_size(tmp_path / "a.png") == (30, 40)
    assert file_image_shape(tmp_path / "a.png") == (30, 40)
    # an eXIf chunk after the pixels (Pillow finds it only by decoding the whole image)
    rgb16 = np.full((3, 5, 3), 7, dtype=np.uint16)
    (tmp_path / "late.png").write_bytes(png16_bytes(rgb16, exif_after_data=exif_orientation(6)))
    assert image_size(tmp_path / "late.png") == (5, 3)
    with pytest.raises(ImageReadError, match="no such file"):
        image_size(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageReadError, match="not an image"):
        image_size(tmp_path / "notes.txt")


def test_late_exif_orientation_is_applied(tmp_path):
    rgb16 = np.arange(3 * 5 * 3, dtype=np.uint16).reshape(3, 5, 3) + 100
    (tmp_path / "late.png").write_bytes(png16_bytes(rgb16, exif_after_data=exif_orientation(6)))
    np.testing.assert_array_equal(read_image(tmp_path / "late.png"), np.rot90(rgb16, k=-1))


# ---------------------------------------------------------------------------
# 16-bit colour


@pytest.mark.parametrize("filters", [0, 1, 2, 3, 4, [4, 1, 0, 3, 2, 4, 4, 3, 1, 2, 0]])
@pytest.mark.parametrize("colour", [2, 6, 4])
def test_read_16bit_colour_png_keeps_every_bit(tmp_path, filters, colour):
    rng = np.random.default_rng(colour)
    channels = {2: 3, 4: 2, 6: 4}[colour]
    values = rng.integers(100, 251, (11, 9, channels)).astype(np.uint16)
    values[0, 0, 0] = 65535
    (tmp_path / "deep.png").write_bytes(png16_bytes(values, colour, filters))
    image = read_image(tmp_path / "deep.png")
    expected = np.repeat(values[..., :1], 3, axis=2) if colour == 4 else values[..., :3]
    assert image.dtype == np.uint16 and image.shape == (11, 9, 3)
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("colour", [2, 6, 4, 0])
def test_read_16bit_interlaced_png(tmp_path, colour):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    values = np.random.default_rng(1).integers(100, 251, (13, 10, channels)).astype(np.uint16)
    array = values[..., 0] if colour == 0 else values
    (tmp_path / "adam7.png").write_bytes(png16_bytes(array, colour, 4, interlace=True))
    expected = np.repeat(values[..., :1], 3, axis=2) if colour in (0, 4) else values[..., :3]
    np.testing.assert_array_equal(read_image(tmp_path / "adam7.png"), expected)


def test_read_16bit_png_reduced(tmp_path):
    yy, xx = np.mgrid[0:120, 0:160]
    values = np.stack([xx * 400, yy * 500, xx * 100 + yy * 100 + 7], axis=2).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(png16_bytes(values, 2, 4))
    small = read_image(tmp_path / "deep.png", max_pixels=1000, max_side=40)
    assert small.dtype == np.uint16 and small.shape == (30, 40, 3)
    expected = values.reshape(30, 4, 40, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - expected).max() < 0.01 * 65535
    gray_alpha = np.stack([values[..., 0], values[..., 1]], axis=2)
    (tmp_path / "la.png").write_bytes(png16_bytes(gray_alpha, 4, 1))
    small = read_image(tmp_path / "la.png", max_pixels=1000, max_side=40)
    assert small.shape == (30, 40, 3) and np.abs(small[..., 2] - expected[..., 0]).max() < 700


def test_read_16bit_rgb_tiff(tmp_path):
    import tifffile

    values = np.random.default_rng(2).integers(100, 251, (7, 5, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", values, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(values, 2, 0), photometric="rgb")
    for name in ("deep.tif", "planar.tif"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint16
        np.testing.assert_array_equal(image, values)
    small = read_image(tmp_path / "deep.tif", max_pixels=10, max_side=3)
    assert small.shape == (3, 2, 3) and small.dtype == np.uint16


def test_read_16bit_tiff_tifffile_cannot_decode_falls_back_with_warning(tmp_path, monkeypatch):
    import tifffile

    values = np.full((4, 6, 3), 0x1234, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", values, photometric="rgb")

    def fail(*args, **kwargs):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile, "TiffFile", fail)
    with pytest.warns(UserWarning, match="read as 8-bit"):
        image = read_image(tmp_path / "deep.tif")
    assert image.dtype == np.uint8 and (image == 0x12).all()


# ---------------------------------------------------------------------------
# label and scribble readers


@pytest.mark.parametrize("reader", [read_label_png, read_scribble])
def test_label_and_scribble_readers_raise_image_read_error(tmp_path, reader):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(labels).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    (tmp_path / "bomb.png").write_bytes(png_header_only(100_000, 100_000, colour=0))
    for name in ("cut.png", "junk.png", "bomb.png", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            reader(tmp_path / name)
    with pytest.raises(ImageReadError, match="folder"):
        reader(tmp_path)
    np.testing.assert_array_equal(reader(tmp_path / "ok.png"), labels)


def test_read_label_png_refuses_colour_images(tmp_path):
    Image.new("RGB", (4, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(ImageReadError, match="not a label map"):
        read_label_png(tmp_path / "rgb.png")


# ---------------------------------------------------------------------------
# compact labels


def test_smallest_uint_dtype_and_compact_labels():
    cases = [
        (0, 0, np.uint8),
        (0, 255, np.uint8),
        (0, 256, np.uint16),
        (0, 65535, np.uint16),
        (0, 65536, np.uint32),
        (0, 2**32 - 1, np.uint32),
        (0, 2**32, np.int64),
        (-1, 3, np.int64),
        (0, 2**64 - 1, np.uint64),
    ]
    for low, high, dtype in cases:
        assert smallest_uint_dtype(high, low) == np.dtype(dtype), (low, high)
    with pytest.raises(ValueError):
        smallest_uint_dtype(-(2**64), -(2**64))
    labels = np.arange(600, dtype=np.int64).reshape(20, 30)
    compact = compact_labels(labels)
    assert compact.dtype == np.uint16
    np.testing.assert_array_equal(compact, labels)
    assert compact_labels(np.zeros((2, 2), np.int64)).dtype == np.uint8
    assert compact_labels(np.array([[-1, 5]])).dtype == np.int64
    assert compact_labels(np.array([[True, False]])).dtype == np.uint8
    assert compact_labels(np.array([[2.0, 3.0]])).dtype == np.uint8
    assert compact_labels(np.zeros((0, 3), np.int64)).dtype == np.uint8
    with pytest.raises(ValueError, match="whole numbers"):
        compact_labels(np.array([[0.5]]))


# ---------------------------------------------------------------------------
# atomic writers: temporaries, full disk, sweeping


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporaries_record_the_owner_pid(tmp_path):
    seen = []
    with atomic_file(tmp_path / "a.json"):
        seen.extend(p.name for p in tmp_path.iterdir())
    with atomic_directory(tmp_path / "out") as tmp:
        seen.append(tmp.name)
    pid = os.getpid()
    assert re.fullmatch(rf"\.a\.json\.{pid}\.[a-z0-9_]{{8}}\.tmp", seen[0])
    assert re.fullmatch(rf"\.out\.{pid}\.[a-z0-9_]{{8}}\.tmp", seen[1])


def test_sweep_stale_temporaries(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale_dir = tmp_path / f".out.{dead}.abcd1234.tmp"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "big.npy").write_bytes(b"x" * 1000)
    stale_file = tmp_path / f".summary.json.{dead}.k9_x2zzq.tmp"
    stale_file.write_text("half")
    live = tmp_path / f".out.{alive}.qwerty12.tmp"
    live.mkdir()
    others = [
        tmp_path / "out",
        tmp_path / f".notes.{dead}.tmp",
        tmp_path / f"x.{dead}.abcd1234.tmp",
    ]
    others[0].mkdir()
    for other in others[1:]:
        other.write_text("keep")
    removed = sweep_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale_dir, stale_file])
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.is_dir() and all(p.exists() for p in others)
    assert sweep_stale_temporaries(tmp_path / "missing") == []


def test_sweep_puts_back_the_previous_folder_of_an_interrupted_replace(tmp_path):
    dead = _dead_pid()
    old = tmp_path / f".out.{dead}.old-0123abcd.tmp"
    old.mkdir()
    (old / "a.txt").write_text("previous")
    new = tmp_path / f".out.{dead}.zz99yy88.tmp"
    new.mkdir()
    sweep_stale_temporaries(tmp_path)
    assert (tmp_path / "out" / "a.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_file_full_disk_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def dump(data, handle, **kwargs):
        handle.write('{"half": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", dump)
    with pytest.raises(OSError) as info:
        write_json(target, {"a": 1})
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_atomic_file_flush_on_close_fails(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")

        def write(self, text):
            return self.handle.write(text)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space"), atomic_file(tmp_path / "a.txt") as handle:
        handle.write("data")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_and_directory_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_file(tmp_path / "a.txt") as handle:
        handle.write("x")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "big.npy").write_bytes(b"x" * 100)
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_full_disk_and_failed_rename_leave_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(OSError), atomic_directory(target) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == target and "old-" not in Path(src).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space"), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("second")
    monkeypatch.undo()
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_file_chmod_failure_leaves_nothing(tmp_path, monkeypatch):
    def chmod(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", chmod)
    with pytest.raises(PermissionError), atomic_file(tmp_path / "a.txt") as handle:
        handle.write("x")
    with pytest.raises(PermissionError), atomic_directory(tmp_path / "out"):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (np.zeros((20, 30, 5), np.uint8), dict(photometric="minisblack", planarconfig="contig"),
         "a TIFF of 5 channels per pixel (axes YXS, shape (20, 30, 5))"),
        (np.zeros((5, 20, 30), np.uint8), {}, "a TIFF of 5 pages"),
        (np.zeros((8, 20, 30), np.uint16), dict(metadata={"axes": "ZYX"}),
         "a TIFF of 8 pages (axes ZYX, shape (8, 20, 30))"),
        (np.zeros((4, 20, 30, 3), np.uint8), dict(photometric="rgb"), "a TIFF of 4 pages"),
    ],
)  # fmt: skip
def test_multi_page_and_multi_band_tiffs_are_refused_not_cut(tmp_path, array, kwargs, message):
    """Before, a stack or a 5-page file gave its first page alone, silently; read_image
    refuses them and names the readers that take them whole (tests/test_shapes_io.py)."""
    import tifffile

    tifffile.imwrite(tmp_path / "x.tif", array, **kwargs)
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "x.tif")
    assert message in str(error.value) and "plan_tiff" in str(error.value)
    # single-page grayscale and RGB TIFFs written by tifffile still read
    tifffile.imwrite(tmp_path / "gray.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((20, 30, 3), np.uint8), photometric="rgb")
    assert read_image(tmp_path / "gray.tif").shape == read_image(tmp_path / "rgb.tif").shape
