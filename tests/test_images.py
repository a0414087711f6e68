import struct
import zlib

import numpy as np
import png
import pytest
from PIL import Image, ImageOps

from vdsr_tf.images import ImageReadError, read_image, read_picture

ORIENTATION = 0x0112


def pattern(shape):
    """Pixels that differ everywhere, so any flip or turn shows."""
    return (np.arange(np.prod(shape)) % 251).reshape(shape).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "turned.png"
    Image.fromarray(pattern((5, 7, 3))).save(path, exif=exif)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(read_picture(str(path)).pixels, expected)


def write_png16_with_orientation(path, pixels, orientation):
    """A 16-bit RGB PNG (pypng) with an eXIf chunk, which Pillow cannot write at 16 bits."""
    height, width, planes = pixels.shape
    with open(path, "wb") as file:
        png.Writer(width, height, greyscale=False, bitdepth=16).write(file, pixels.reshape(height, -1))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    body = exif.tobytes()
    body = body[6:] if body.startswith(b"Exif\x00\x00") else body
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    data = path.read_bytes()
    header_end = 8 + 8 + 13 + 4  # signature, then the IHDR chunk
    path.write_bytes(data[:header_end] + chunk + data[header_end:])


def test_sixteen_bit_colour_png_gets_its_orientation_and_keeps_sixteen_bits(tmp_path):
    pixels = (pattern((4, 6, 3)).astype(np.uint16) * 257 + 1).astype(np.uint16)
    path = tmp_path / "deep.png"
    write_png16_with_orientation(path, pixels, 6)
    picture = read_picture(str(path))
    assert picture.pixels.dtype == np.uint16
    np.testing.assert_array_equal(picture.pixels, np.rot90(pixels, -1))


def test_read_image_is_eight_bit_without_alpha(tmp_path):
    rgba = pattern((4, 6, 4))
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "rgba.png")), rgba[:, :, :3])
    gray_alpha = pattern((4, 6, 2))
    Image.fromarray(gray_alpha, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "la.png")), gray_alpha[:, :, 0])


def test_read_image_rounds_sixteen_bits_as_matlab_im2uint8(tmp_path):
    pixels = np.array([[0, 128, 129, 385, 65535]], np.uint16)  # 128/257 = 0.498 -> 0, 129/257 -> 1, 385/257 -> 1
    Image.fromarray(pixels).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "g16.png")), [[0, 0, 1, 1, 255]])


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(str(tmp_path / "bad.png"))
    with pytest.raises(ImageReadError, match="missing.png: no such file"):
        read_picture(str(tmp_path / "missing.png"))
