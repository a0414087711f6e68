import os
import struct
import zlib

import numpy as np
import png
import pytest
from PIL import ExifTags, Image, ImageOps

from vdsr_tf import images
from vdsr_tf.images import ImageReadError, Metadata, probe_picture, read_image, read_picture, write_picture

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


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.full((4, 5), 0.5, np.float32), "floating-point pixels"),
        (np.full((4, 5), 99950, np.int32), "pixels outside 0-65535"),
        (np.full((4, 5), -5, np.int32), "pixels outside 0-65535"),
    ],
)
def test_pixels_beyond_sixteen_bits_are_refused_not_wrapped(tmp_path, pixels, message):
    Image.fromarray(pixels).save(tmp_path / "deep.tif")
    with pytest.raises(ImageReadError, match=f"deep.tif: not a readable image \\({message}"):
        read_picture(str(tmp_path / "deep.tif"))


def test_a_32_bit_tiff_within_sixteen_bits_reads_as_sixteen(tmp_path):
    Image.fromarray(np.full((4, 5), 40000, np.int32)).save(tmp_path / "deep.tif")
    pixels = read_picture(str(tmp_path / "deep.tif")).pixels
    assert pixels.dtype == np.uint16 and (pixels == 40000).all()


def test_folders_list_photos_and_heic_but_not_pdf(tmp_path):
    for name in ("a.jpg", "b.HEIC", "c.pdf", "d.h5", "e.png", "f.eps"):
        (tmp_path / name).write_bytes(b"not read")
    assert [os.path.basename(path) for path in images.list_images(str(tmp_path))] == ["a.jpg", "b.HEIC", "e.png"]
    with pytest.raises(ImageReadError, match="b.HEIC: HEIC is not read here; save it as JPEG or PNG first"):
        read_picture(str(tmp_path / "b.HEIC"))
    Image.fromarray(pattern((40, 40, 3))).save(tmp_path / "cut.heic", "PNG")
    (tmp_path / "cut.heic").write_bytes((tmp_path / "cut.heic").read_bytes()[:200])  # a real error stays its own
    with pytest.raises(ImageReadError, match="cut.heic: not a readable image"):
        read_picture(str(tmp_path / "cut.heic"))


def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Fujifilm"
    exif[ExifTags.Base.Model] = "X-T5"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:01 10:00:00"
    return exif


def assert_camera_metadata(image: Image.Image, *, dpi: bool = True):
    exif = image.getexif()
    assert (exif[ExifTags.Base.Make], exif[ExifTags.Base.Model]) == ("Fujifilm", "X-T5")
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:01 10:00:00"
    assert exif[ExifTags.Base.Orientation] == 1  # the pixels are upright already
    assert image.info["icc_profile"] == srgb_profile()
    if dpi:
        np.testing.assert_allclose([float(dpi) for dpi in image.info["dpi"]], (300, 300), atol=0.01)  # PNG: per metre


@pytest.mark.parametrize("file_format", ["JPEG", "PNG", "TIFF"])
def test_metadata_is_read_with_orientation_reset(tmp_path, file_format):
    path = tmp_path / "photo.img"
    Image.fromarray(pattern((4, 6, 3))).save(
        path, format=file_format, exif=camera_exif(6).tobytes(), icc_profile=srgb_profile(), dpi=(300, 300)
    )
    picture = read_picture(str(path))
    assert picture.pixels.shape == (6, 4, 3)  # turned upright
    exif = Image.Exif()
    exif.load(picture.metadata.exif)
    # Pillow turns a TIFF upright itself and drops its orientation tag; others keep the tag, now 1.
    assert exif.get(ExifTags.Base.Orientation, 1) == 1 and exif[ExifTags.Base.Model] == "X-T5"
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:01 10:00:00"
    assert picture.metadata.icc_profile == srgb_profile()
    np.testing.assert_allclose(picture.metadata.dpi, (300, 300), atol=0.01)
    # A TIFF's strip layout is the input file's, not the picture's: not carried.
    assert ExifTags.Base.StripOffsets not in exif


def test_a_profile_of_another_colour_space_is_dropped(tmp_path):
    # Pillow converts CMYK pixels to RGB; a CMYK profile would then misdescribe them.
    cmyk = bytearray(srgb_profile())
    cmyk[16:20] = b"CMYK"
    Image.fromarray(pattern((4, 6, 4)), mode="CMYK").save(tmp_path / "cmyk.jpg", icc_profile=bytes(cmyk))
    picture = read_picture(str(tmp_path / "cmyk.jpg"))
    assert picture.pixels.shape == (4, 6, 3) and picture.metadata.icc_profile is None
    Image.fromarray(pattern((4, 6)), mode="L").save(tmp_path / "gray.png", icc_profile=srgb_profile())
    assert read_picture(str(tmp_path / "gray.png")).metadata.icc_profile is None  # an RGB profile on gray


@pytest.mark.parametrize("file_format", ["JPEG", "PNG", "TIFF", "WEBP"])
def test_write_picture_carries_metadata(tmp_path, file_format):
    exif = camera_exif(1).tobytes()
    metadata = Metadata(exif=exif, icc_profile=srgb_profile(), dpi=(300.0, 300.0))
    path = tmp_path / "out.img"
    write_picture(pattern((8, 6, 3)), str(path), file_format, metadata=metadata)
    with Image.open(path) as image:
        assert_camera_metadata(image, dpi=file_format != "WEBP")  # WebP has no resolution field


def test_sixteen_bit_png_carries_metadata(tmp_path):
    # The pypng path, not Pillow's: its iCCP and eXIf chunks are written by hand.
    pixels = (pattern((8, 6, 3)).astype(np.uint16) * 257).astype(np.uint16)
    metadata = Metadata(exif=camera_exif(1).tobytes(), icc_profile=srgb_profile(), dpi=(300.0, 300.0))
    write_picture(pixels, str(tmp_path / "deep.png"), "PNG", metadata=metadata)
    with Image.open(tmp_path / "deep.png") as image:
        assert_camera_metadata(image)
    np.testing.assert_array_equal(read_picture(str(tmp_path / "deep.png")).pixels, pixels)


def test_jpeg_quality(tmp_path):
    # Pillow derives the quantisation tables from the quality alone, so equal tables mean equal quality.
    Image.fromarray(pattern((16, 16, 3))).save(tmp_path / "reference.jpg", quality=40)
    write_picture(pattern((16, 16, 3)), str(tmp_path / "out.jpg"), "JPEG", quality=40)
    with Image.open(tmp_path / "reference.jpg") as reference, Image.open(tmp_path / "out.jpg") as out:
        assert out.quantization == reference.quantization
    write_picture(pattern((16, 16, 3)), str(tmp_path / "default.jpg"), "JPEG")
    with Image.open(tmp_path / "default.jpg") as default, Image.open(tmp_path / "reference.jpg") as reference:
        assert default.quantization != reference.quantization


def webp_codec(path) -> bytes:
    """The codec chunk of a simple WebP file (RIFF header, then VP8 or VP8L)."""
    return path.read_bytes()[12:16]


@pytest.mark.parametrize(
    "options, lossless",
    [
        ({"lossless": True}, True),
        ({"quality": 90}, False),
        ({"lossless": True, "exif": camera_exif(1).tobytes()}, True),  # the extended layout: VP8X, then the frame
        ({"quality": 90, "exif": camera_exif(1).tobytes()}, False),
    ],
)
def test_lossless_webp_is_recognised(tmp_path, options, lossless):
    Image.fromarray(pattern((6, 8, 4))).save(tmp_path / "p.webp", **options)
    assert read_picture(str(tmp_path / "p.webp")).lossless is lossless


def test_animated_files_count_their_frames(tmp_path):
    frames = [Image.fromarray(pattern((6, 8, 3))), Image.fromarray(255 - pattern((6, 8, 3)))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], lossless=True)
    gif = read_picture(str(tmp_path / "a.gif"))
    assert gif.frames == 2 and gif.pixels.shape == (6, 8, 3)
    webp = read_picture(str(tmp_path / "a.webp"))
    assert webp.frames == 2 and webp.lossless  # its first frame sits in an ANMF chunk
    np.testing.assert_array_equal(webp.pixels[:, :, :3], pattern((6, 8, 3)))


def test_probe_reads_the_header_alone(tmp_path):
    Image.fromarray(pattern((4, 6)).astype(np.uint16) * 200).save(tmp_path / "deep.png")
    Image.fromarray(pattern((4, 6, 3))).save(tmp_path / "flat.gif")
    Image.fromarray(pattern((4, 6, 4))).save(tmp_path / "logo.png")
    Image.fromarray(pattern((4, 6, 3))).convert("P").save(tmp_path / "clear.gif", transparency=0)
    assert probe_picture(str(tmp_path / "deep.png")) == ("PNG", True, False)
    assert probe_picture(str(tmp_path / "flat.gif")) == ("GIF", False, False)
    assert probe_picture(str(tmp_path / "logo.png")) == ("PNG", False, True)
    assert probe_picture(str(tmp_path / "clear.gif")) == ("GIF", False, True)
    with pytest.raises(ImageReadError, match="missing.png: no such file"):
        probe_picture(str(tmp_path / "missing.png"))


def test_interrupted_writes_leave_nothing(tmp_path, monkeypatch):
    # Ctrl-C halfway through either writer: no file under the final name and no temporary one.
    def interrupted_preamble(self, outfile):
        outfile.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(images._PngWriter, "write_preamble", interrupted_preamble)
    with pytest.raises(KeyboardInterrupt):
        write_picture(pattern((4, 6, 3)).astype(np.uint16), str(tmp_path / "deep.png"), "PNG")

    def interrupted_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as file:
            file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        write_picture(pattern((4, 6, 3)), str(tmp_path / "flat.jpg"), "JPEG")
    assert os.listdir(tmp_path) == []


def test_unwritable_file_is_named(tmp_path):
    (tmp_path / "out.bmp").mkdir()  # a folder of that name, not empty
    (tmp_path / "out.bmp" / "keep").write_text("x")
    with pytest.raises(ValueError, match=r"out\.bmp: cannot write it"):
        write_picture(pattern((4, 6, 3)), str(tmp_path / "out.bmp"), "BMP")
    assert os.listdir(tmp_path) == ["out.bmp"] and os.listdir(tmp_path / "out.bmp") == ["keep"]


@pytest.mark.parametrize("color", [[10, 200, 40], [90]])
def test_alpha_in_bmp_or_jpeg_is_put_onto_white(tmp_path, color):
    """As image editors export it; Pillow refuses RGBA as JPEG, drops the alpha in BMP and cannot
    write gray with alpha there."""
    alphas = [255, 0, 128]  # opaque, clear, half: the colour, white, halfway (MATLAB rounding)
    pixels = np.array([[[*color, alpha] for alpha in alphas]], np.uint8)
    expected = np.array([[color, [255] * len(color), [round(v * 128 / 255 + 127 + 1e-9) for v in color]]], np.uint8)
    expected = expected[:, :, 0] if len(color) == 1 else expected
    write_picture(pixels, str(tmp_path / "out.bmp"), "BMP")
    np.testing.assert_array_equal(read_picture(str(tmp_path / "out.bmp")).pixels, expected)
    write_picture(np.repeat(np.repeat(pixels, 8, 0), 8, 1), str(tmp_path / "out.jpg"), "JPEG", quality=100)
    written = read_picture(str(tmp_path / "out.jpg")).pixels[4, 4::8].astype(int)
    assert np.abs(written - expected[0]).max() <= 3
