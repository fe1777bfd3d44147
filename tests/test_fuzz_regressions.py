"""Inputs that once found bugs in the fuzz and property tests (``test_fuzz.py``), kept
as plain tests with explicit bytes and arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from unsupseg import metrics as M
from unsupseg.errors import ImageReadError
from unsupseg.io import image_size, read_image, read_label_png, read_scribble

#: A BMP cut to 122 bytes whose width field reads 0xFF00000C and height 255 (4 billion
#: pixels a row): Pillow raised DecompressionBombError out of read_image.
BMP_HUGE_HEIGHT = bytes.fromhex(
    "424d7a0100000000000036000000280000000c0000ffff000000010018000000000044010000c40e0000"
    "c40e00000000000000000000c06b467b5eb303b2427885b791e2b411aba51c78d11f9bee4b87055a9776"
    "37a4d0c66aabb9628fdf093a94ae3d031421b89332b7b27470693a9df0d717857c5f1a4d6b01"
)

#: A 16-bit grayscale PNG whose IDAT length field reads 0xFFFF00EC: Pillow read 4 GB
#: at once (MemoryError under a memory limit), and file_image_shape decoded the whole
#: image (PngImageFile.getexif loads it) to find the EXIF orientation.
PNG_HUGE_CHUNK = bytes.fromhex(
    "89504e470d0a1a0a0000000d494844520000000c00000009100000000073434ecbffff00ec4944415478"
    "9c01e1001eff01412d113866cce0f2e9fed5606c38a287f0c28fe660a8f79601b6d3e9b56de509144b0a"
    "759c917663e18885ec448d6416b500144c0efeabd7560b92da2678dc2a7348e51dcbdbb4903b0b225a72"
    "02b00dff53e61a11856d490c591624a4f3ba6ac9b53290116c00e6edac07e3f03313c21bf12d0c705d77"
    "a2f11b018293a10c00c393ed5968e970bc7967f45f321c7ff80cc16cdbf1ff9ec50496eca56432a6585e"
    "1272fc97a35fec01e98f13067a3e1cec003af1c92813e46a264827bc06bfd0b60ceca9ee9a2f441d6c00"
    "21e2baa0f866ed6aab11f7c9df0a03c31e86dd161515fb2ec7056d0d99452f"
)

#: A PNG cut inside its IHDR chunk: Pillow raised ValueError("Truncated IHDR chunk") out
#: of file_image_shape, read_label_png and read_scribble.
PNG_TRUNCATED_IHDR = bytes.fromhex(
    "89504e470d0a1a0a00000000494844520000000c000000090800000001000000"
)

#: A 16-bit grayscale TIFF with its bits-per-sample tag mangled: file_image_shape raised
#: ValueError (it caught OSError only).
TIFF_BAD_TAG = bytes.fromhex(
    "49492a0008000000090000010400010000000c00000001010500010000000900000000000001010000"
    "001000000003010300010000000100000006010300010000000100000011010400010000007a00000016"
    "01040001000000090000001701040001000000d80000001c0103000100000001000000000000002d4165"
    "5231b8239821818156b9c240640254e8e39043263ad3b6889f6d0c81158b6027d59d667ec90351473dab"
    "ca60e04c14fe0ed7ab0b56da9278262bdc48731de5dbcb90b40b3b59c4510df191906723ffd1324ef23b"
    "17879f909420e6774cede607acf0e313331bc22df1700c775df1a2011b93820ca193c359ede968bc7065"
    "795ff41c32f87fc10cdb6cfff1c59e7f59bdfe8f9aedf22e04c575bed5f9c15068567f946b8087f13a28"
    "c9e413266a274806bcd0bf0cb6a9ec9aee442f6c1de221a0ba66f86aed11abc9f70adfc303861e16dd15"
    "152efb"
)


def _every_reader_raises(path, match: str | None = None) -> None:
    for reader in (read_image, read_label_png, read_scribble):
        with pytest.raises(ImageReadError, match=match) as info:
            reader(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bmp_with_huge_height(tmp_path):
    path = tmp_path / "huge.bmp"
    path.write_bytes(BMP_HUGE_HEIGHT)
    _every_reader_raises(path)
    with pytest.raises(ImageReadError):
        read_image(path, max_side=64)
    assert image_size(path) == (255, 0xFF00000C)  # the header alone is readable


def test_png_with_a_4gb_chunk_length(tmp_path, monkeypatch):
    path = tmp_path / "chunk.png"
    path.write_bytes(PNG_HUGE_CHUNK)
    _every_reader_raises(path, match="chunk 'IDAT' at byte 33 claims 4294901996 bytes")

    def refuse(self, *args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert image_size(path) == (9, 12)  # header only, no decoding


def test_png_truncated_inside_ihdr(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(PNG_TRUNCATED_IHDR)
    _every_reader_raises(path)
    with pytest.raises(ImageReadError, match="cut.png"):
        image_size(path)


def test_tiff_with_a_mangled_tag(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(TIFF_BAD_TAG)
    with pytest.raises(ImageReadError, match="bad.tif"):
        image_size(path)
    for reader in (read_image, read_label_png, read_scribble):
        try:
            reader(path)
        except ImageReadError:
            pass


def test_float_tiff_is_not_a_label_map(tmp_path):
    """read_label_png cast NaN to int64 (garbage ids and a RuntimeWarning)."""
    values = np.array([[np.nan, 1.0], [2.5, -3.0]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "float.tif")
    with pytest.raises(ImageReadError, match="not a label map: mode F holds float32"):
        read_label_png(tmp_path / "float.tif")


def test_bsds_all_modes_with_the_same_annotator_twice():
    """bsds_miou_all_modes selected annotators by identity: the same array given twice
    counted twice in 'fine' and 'coarse'."""
    gt = np.array([[0, 0, 1, 1]])
    prediction = np.array([[0, 1, 1, 1]])
    together = M.bsds_miou_all_modes(prediction, [gt, gt])
    assert together["fine"] == together["coarse"] == M.bsds_miou_terms(prediction, [gt], "fine")
    assert together["all"][1] == 4


def test_float_labels_beyond_int64_are_refused():
    """Whole-number floats beyond int64 all became one label (astype wraps them)."""
    floats = np.array([[2.0**64, 2.0**65]])
    with pytest.raises(ValueError, match="int64"):
        M.rand_index(floats, np.array([[0, 1]]))
    assert M.rand_index(np.array([[2.0**40, 2.0**41]]), np.array([[0, 1]])) == 1.0
