import os

import numpy as np
import pytest
from PIL import Image

from unsupseg.io import (
    ImageReadError,
    as_rgb_float,
    atomic_directory,
    atomic_file,
    find_images,
    read_image,
    read_label_png,
    save_label_png,
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
