import math
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import png
import pytest
from helpers import ROOT, as_in_a_terminal, last_line, run_main
from PIL import Image

from vdsr_tf.color import rgb2ycbcr, ycbcr2rgb
from vdsr_tf.images import matlab_cast, read_picture, write_picture
from vdsr_tf.imresize import imresize
from vdsr_tf.infer import (
    Tally,
    _band_resizer,
    _bands,
    _predict_band,
    check_scale,
    enlarge,
    enlarge_files,
    expand_inputs,
    output_format,
    output_path,
)
from vdsr_tf.model import build_vdsr, conv_layers, make_predictor

DEPTH = 4


@pytest.fixture(scope="module")
def model():
    return build_vdsr(depth=DEPTH, width=8, seed=2)


@pytest.fixture(scope="module")
def predict(model):
    return make_predictor(model)


def smooth_image(shape, seed=0):
    generator = np.random.default_rng(seed)
    noise = generator.random(shape)
    smooth = np.cumsum(np.cumsum(noise, axis=0), axis=1)
    return (255 * smooth / smooth.max()).astype(np.uint8)


def predict_tiled(predict, image, *, tile, margin):
    """`enlarge`'s network pass alone, over `tile` x `tile` blocks of an HxW float32 image."""
    out = np.empty(image.shape, np.float32)
    for top, bottom, context_top, context_bottom in _bands(image.shape[0], tile=tile, margin=margin):
        band = image[context_top:context_bottom]
        out[top:bottom] = _predict_band(predict, band, top - context_top, bottom - top, tile=tile, margin=margin)
    return out


@pytest.mark.parametrize("tile", [16, 23, 64])
def test_tiled_inference_equals_whole_image(predict, tile):
    image = np.random.default_rng(1).random((57, 70)).astype(np.float32)
    whole = predict(image)
    tiled = predict_tiled(predict, image, tile=tile, margin=DEPTH)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_too_little_margin_is_visibly_wrong(predict):
    # The check above can fail: with a margin below the depth, tile seams differ.
    image = np.random.default_rng(1).random((57, 70)).astype(np.float32)
    tiled = predict_tiled(predict, image, tile=16, margin=DEPTH - 2)
    assert np.max(np.abs(tiled - predict(image))) > 1e-3


@pytest.mark.parametrize("scale, expected", [(2, (60, 82)), (2.5, (75, 103)), (1.5, (45, 62)), (3, (90, 123))])
def test_colour_output_size_and_dtype(predict, scale, expected):
    out = enlarge(smooth_image((30, 41, 3)), scale, predict, tile=32, margin=DEPTH)
    assert out.shape == expected + (3,) and out.dtype == np.uint8


def test_gray_stays_gray_and_alpha_is_resized(predict):
    gray = smooth_image((20, 24))
    assert enlarge(gray, 2, predict, tile=64, margin=DEPTH).shape == (40, 48)
    rgba = np.dstack([smooth_image((20, 24, 3)), np.full((20, 24), 200, np.uint8)])
    out = enlarge(rgba, 2, predict, tile=64, margin=DEPTH)
    assert out.shape == (40, 48, 4)
    assert np.all(out[:, :, 3] == 200)  # bicubic keeps a constant alpha constant


def test_colour_follows_the_bicubic_chroma(predict):
    # A zero residual makes VDSR bicubic: the colour result is then MATLAB bicubic on Y, Cb, Cr.
    zero = build_vdsr(depth=3, width=4, seed=0)
    last = conv_layers(zero)[-1]
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    image = smooth_image((16, 16, 3))
    out = enlarge(image, 2, make_predictor(zero), tile=64, margin=3)
    from vdsr_tf.color import rgb2ycbcr, ycbcr2rgb
    from vdsr_tf.imresize import imresize

    expected = ycbcr2rgb(imresize(rgb2ycbcr(image / 255.0), output_shape=(32, 32)))
    expected = np.floor(np.clip(expected, 0, 1) * 255 + 0.5)
    assert np.max(np.abs(out.astype(int) - expected)) <= 1  # float32 network pass


def whole_image_enlarge(pixels, scale, predict, *, tile, margin):
    """The pipeline on whole planes, as `enlarge` ran before it worked in bands."""
    peak = np.iinfo(pixels.dtype).max
    values = pixels.astype(np.float64) / peak
    values = values[:, :, None] if values.ndim == 2 else values
    colour = values.shape[2] >= 3
    planes = np.concatenate([rgb2ycbcr(values[:, :, :3]), values[:, :, 3:]], axis=2) if colour else values
    planes = imresize(planes, output_shape=(math.ceil(values.shape[0] * scale), math.ceil(values.shape[1] * scale)))
    planes[:, :, 0] = predict_tiled(predict, planes[:, :, 0].astype(np.float32), tile=tile, margin=margin)
    if colour:
        planes = np.concatenate([ycbcr2rgb(planes[:, :, :3]), planes[:, :, 3:]], axis=2)
    out = matlab_cast(planes * peak, pixels.dtype)
    return out[:, :, 0] if pixels.ndim == 2 else out


@pytest.mark.parametrize("tile", [16, 23])
@pytest.mark.parametrize(
    "shape, scale",
    [
        ((30, 41, 3), 2.5),  # 75 x 103: the row pass first (scale 2.5 against 2.512)
        ((41, 30, 3), 2.5),  # 103 x 75: the column pass first
        ((23, 17), 3.7),
        ((19, 33, 4), 2),
        ((40, 27, 2), 1.3),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_bands_equal_the_whole_image_pipeline(predict, shape, scale, tile, dtype):
    # Bit for bit: each band resizes and converts exactly the values whole planes would hold.
    pixels = (smooth_image(shape).astype(np.float64) * np.iinfo(dtype).max / 255).astype(dtype)
    expected = whole_image_enlarge(pixels, scale, predict, tile=tile, margin=DEPTH)
    np.testing.assert_array_equal(enlarge(pixels, scale, predict, tile=tile, margin=DEPTH), expected)


@pytest.mark.parametrize(
    "shape, out_shape", [((30, 41, 2), (75, 103)), ((41, 30, 2), (103, 75)), ((9, 9, 1), (72, 72))]
)
def test_band_resize_is_the_whole_resize_bit_for_bit(shape, out_shape):
    # The three shapes take the row pass first, the column pass first, and rows first on a tie.
    values = np.random.default_rng(3).random(shape)
    whole = imresize(values, output_shape=out_shape)
    resize = _band_resizer(shape[:2], out_shape)
    for top, bottom in [(0, 1), (0, 20), (7, 31), (out_shape[0] - 5, out_shape[0])]:
        np.testing.assert_array_equal(resize(lambda first, last: values[first:last], top, bottom), whole[top:bottom])


def test_enlarge_memory_is_bounded_by_the_band():
    # 600 x 800 x 3 out: whole float64 planes would be 11.5 MB each, and the whole-image pipeline holds
    # several at once; bands of 32 rows (+4 of context either side) need a fraction of one.
    pixels = smooth_image((300, 400, 3))
    output_float64 = 600 * 800 * 3 * 8
    tracemalloc.start()
    try:
        enlarge(pixels, 2, lambda y: y, tile=32, margin=4)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole_image_enlarge(pixels, 2, lambda y: y, tile=32, margin=4)
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert whole_peak > 2 * output_float64  # the check can fail: the old way of working would
    assert peak < output_float64 / 2


def test_progress_bar_over_tiles(predict, capsys):
    enlarge(smooth_image((20, 30, 3)), 2, predict, tile=16, margin=DEPTH, progress="big.png")
    err = capsys.readouterr().err
    assert "big.png" in err and "/12 [" in err  # 40 x 60 out in 16 x 16 tiles: 3 x 4
    enlarge(smooth_image((20, 30, 3)), 2, predict, tile=64, margin=DEPTH, progress="small.png")
    assert "small.png" not in capsys.readouterr().err  # one tile: no bar


ORIENTATION, MAKE, MODEL = 0x0112, 0x010F, 0x0110


def test_metadata_survives_enlarging(tmp_path, predict):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif.update({MAKE: "Fujifilm", MODEL: "X-T5", ORIENTATION: 6})
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:00:00"  # the Exif IFD's DateTimeOriginal
    for name in ("photo.jpg", "photo.png"):
        Image.fromarray(smooth_image((10, 14, 3))).save(
            tmp_path / name, exif=exif.tobytes(), icc_profile=profile, dpi=(240, 240)
        )
    paths = [str(tmp_path / "photo.jpg"), str(tmp_path / "photo.png")]
    out = tmp_path / "out"
    assert enlarge_files(paths, out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH).failed == []
    for name in ("photo_x2.jpg", "photo_x2.png"):
        with Image.open(out / name) as image:
            assert image.size == (20, 28)  # turned upright (orientation 6), then enlarged
            carried = image.getexif()
            assert (carried[MAKE], carried[MODEL], carried[ORIENTATION]) == ("Fujifilm", "X-T5", 1)
            assert carried.get_ifd(0x8769)[0x9003] == "2024:05:01 10:00:00"
            assert image.info["icc_profile"] == profile
            np.testing.assert_allclose(image.info["dpi"], (240, 240), atol=0.01)


def test_quality_and_lossless_webp(tmp_path, predict):
    image = Image.fromarray(smooth_image((16, 16, 3)))
    image.save(tmp_path / "a.jpg")
    image.save(tmp_path / "lossless.webp", lossless=True)
    image.save(tmp_path / "lossy.webp", quality=80)
    paths = [str(tmp_path / name) for name in ("a.jpg", "lossless.webp", "lossy.webp")]
    out = tmp_path / "out"
    tally = enlarge_files(paths, out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH, quality=30)
    assert tally.failed == []
    Image.fromarray(smooth_image((32, 32, 3))).save(tmp_path / "q30.jpg", quality=30)
    with Image.open(out / "a_x2.jpg") as written, Image.open(tmp_path / "q30.jpg") as reference:
        assert written.quantization == reference.quantization  # Pillow's tables follow from the quality alone
    assert (out / "lossless_x2.webp").read_bytes()[12:16] == b"VP8L"
    assert (out / "lossy_x2.webp").read_bytes()[12:16] == b"VP8 "


def test_ctrl_c_keeps_the_count_and_leaves_nothing_half_written(tmp_path, predict):
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / name)
    calls = []

    def interrupted_on_the_second_picture(image):
        calls.append(image.shape)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return predict(image)

    tally = Tally()
    paths = [str(tmp_path / name) for name in ("a.png", "b.png", "c.png")]
    with pytest.raises(KeyboardInterrupt):
        enlarge_files(
            paths,
            out_dir=str(tmp_path / "out"),
            scale=2,
            predict=interrupted_on_the_second_picture,
            tile=64,
            margin=DEPTH,
            tally=tally,
        )
    assert tally.written == [str(tmp_path / "out" / "a_x2.png")]
    assert tally.summary() == "1 written, 0 skipped, 0 failed"
    assert os.listdir(tmp_path / "out") == ["a_x2.png"]


def test_sixteen_bit_png_keeps_sixteen_bits(tmp_path, predict):
    pixels = (smooth_image((12, 14, 3)).astype(np.uint16) * 257 + 3).astype(np.uint16)
    path = tmp_path / "deep.png"
    with open(path, "wb") as file:
        png.Writer(14, 12, greyscale=False, bitdepth=16).write(file, pixels.reshape(12, -1))
    picture = read_picture(str(path))
    np.testing.assert_array_equal(picture.pixels, pixels)
    tally = enlarge_files([str(path)], out_dir=str(tmp_path / "out"), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert not tally.failed
    out = read_picture(str(tmp_path / "out" / "deep_x2.png")).pixels
    assert out.dtype == np.uint16 and out.shape == (24, 28, 3)
    assert np.any(out % 257 != 0)  # values between the 8-bit levels survive


def test_sixteen_bit_gray(tmp_path, predict):
    pixels = (smooth_image((12, 14)).astype(np.uint16) * 250).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g.png")
    paths = [str(tmp_path / "g.png")]
    tally = enlarge_files(paths, out_dir=str(tmp_path), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert tally.failed == []
    out = read_picture(str(tmp_path / "g_x2.png")).pixels
    assert out.dtype == np.uint16 and out.shape == (24, 28)


def test_output_follows_input_format(tmp_path, predict):
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "a.jpg")
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "b.webp", lossless=True)
    paths = [str(tmp_path / "a.jpg"), str(tmp_path / "b.webp")]
    tally = enlarge_files(paths, out_dir=str(tmp_path / "o"), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert tally.failed == []
    assert sorted(os.listdir(tmp_path / "o")) == ["a_x2.jpg", "b_x2.webp"]
    tally = enlarge_files(
        paths, out_dir=str(tmp_path / "p"), scale=2, predict=predict, tile=64, margin=DEPTH, requested_format="png"
    )
    assert tally.failed == []
    assert sorted(os.listdir(tmp_path / "p")) == ["a_x2.png", "b_x2.png"]


def test_two_inputs_with_one_output_name_fail_the_second(tmp_path, predict):
    for name in ("IMG_1.jpeg", "IMG_1.jpg"):
        Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / name)
    paths = [str(tmp_path / "IMG_1.jpeg"), str(tmp_path / "IMG_1.jpg")]
    for overwrite in (False, True):
        tally = enlarge_files(
            paths, out_dir=str(tmp_path / "o"), scale=2, predict=predict, tile=64, margin=DEPTH, overwrite=overwrite
        )
        assert [path for path, _ in tally.failed] == [paths[1]]
        assert f"is that of {paths[0]} too" in tally.failed[0][1]
        assert len(tally.written) + len(tally.skipped) == 1
    assert os.listdir(tmp_path / "o") == ["IMG_1_x2.jpg"]


def test_another_name_for_the_output_just_written_fails_the_second(tmp_path, predict):
    """What a case-insensitive file system (macOS, Windows) does with Photo_x2.png and photo_x2.png, made
    here with a link: the second input would replace the first one's output."""
    for folder, name in (("a", "Photo.png"), ("b", "photo.png")):
        (tmp_path / folder).mkdir()
        Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / folder / name)
    out = tmp_path / "o"
    out.mkdir()
    try:
        os.symlink("Photo_x2.png", out / "photo_x2.png")
    except OSError:
        pytest.skip("no symbolic links here")
    paths = [str(tmp_path / "a" / "Photo.png"), str(tmp_path / "b" / "photo.png")]
    tally = enlarge_files(paths, out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH, overwrite=True)
    assert tally.written == [str(out / "Photo_x2.png")]
    assert [path for path, _ in tally.failed] == [paths[1]] and f"is that of {paths[0]} too" in tally.failed[0][1]


def test_a_size_the_format_cannot_store_fails_before_the_work(tmp_path):
    Image.fromarray(smooth_image((4, 8200, 3))).save(tmp_path / "wide.webp", lossless=True)

    def predict(y):
        raise AssertionError("the network ran")

    paths = [str(tmp_path / "wide.webp")]
    tally = enlarge_files(paths, out_dir=str(tmp_path / "o"), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert "wide_x2.webp: 16400x8 is too large for WEBP (at most 16383 px a side)" in tally.failed[0][1]
    with pytest.raises(ValueError, match="65501x1 is too large for JPEG"):
        write_picture(np.zeros((1, 65501), np.uint8), str(tmp_path / "w.jpg"), "JPEG")
    assert not os.path.exists(tmp_path / "o" / "wide_x2.webp") and not os.path.exists(tmp_path / "w.jpg")


def test_transparency_goes_onto_white_in_jpeg_and_keeps_png_for_a_bmp(predict, tmp_path, caplog):
    clear = smooth_image((16, 16, 4))
    clear[:, :, 3] = 0
    Image.fromarray(clear).save(tmp_path / "logo.png")
    with caplog.at_level("WARNING"):
        tally = enlarge_files(
            [str(tmp_path / "logo.png")],
            out_dir=str(tmp_path),
            scale=2,
            predict=predict,
            tile=64,
            margin=DEPTH,
            requested_format="jpeg",
        )
    assert tally.written == [str(tmp_path / "logo_x2.jpg")]
    assert np.all(read_picture(tally.written[0]).pixels >= 250)  # all clear: white
    assert "logo.png: written as JPEG (transparency put onto white: JPEG holds none)" in caplog.text
    # Pillow reads a BMP with alpha from a BITFIELDS header alone; it writes its own without.
    assert output_format("BMP", False, None, alpha=True) == ("PNG", "PNG keeps the transparency")
    assert output_format("BMP", False, None, alpha=False) == ("BMP", None)


def test_running_out_of_memory_fails_the_file_alone(tmp_path):
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "a.png")

    def predict(y):
        raise MemoryError

    tally = enlarge_files(
        [str(tmp_path / "a.png")], out_dir=str(tmp_path), scale=2, predict=predict, tile=64, margin=DEPTH
    )
    assert tally.failed == [(str(tmp_path / "a.png"), f"{tmp_path / 'a.png'}: not enough memory to enlarge it")]


def test_tensorflows_out_of_memory_error_reaches_the_caller_as_memory_error():
    import keras
    import tensorflow as tf

    class OutOfMemory(keras.layers.Layer):
        def compute_output_spec(self, inputs):
            return keras.KerasTensor(inputs.shape, inputs.dtype)

        def call(self, inputs):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    inputs = keras.Input((None, None, 1))
    with pytest.raises(MemoryError):
        make_predictor(keras.Model(inputs, OutOfMemory()(inputs)))(np.zeros((8, 8), np.float32))


def test_a_jpeg_with_an_appended_image_stays_jpeg(tmp_path, predict, caplog):
    # Many phones append a gain or depth map to their JPEGs; Pillow reads such a file as MPO.
    first, second = Image.fromarray(smooth_image((16, 16, 3))), Image.fromarray(smooth_image((8, 8, 3)))
    first.save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=[second])
    assert Image.open(tmp_path / "phone.jpg").format == "MPO"
    paths = [str(tmp_path / "phone.jpg")]
    tally = enlarge_files(paths, out_dir=str(tmp_path / "o"), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert tally.written == [str(tmp_path / "o" / "phone_x2.jpg")]
    assert Image.open(tally.written[0]).format == "JPEG"
    assert "frames" not in caplog.text and "written as" not in caplog.text


def test_bad_file_fails_others_finish_and_nothing_is_overwritten(tmp_path, predict):
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.fromarray(smooth_image((40, 40, 3))).save(tmp_path / "full.png")
    truncated = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    out = tmp_path / "out"
    paths = [str(tmp_path / name) for name in ("bad.png", "cut.png", "good.png")]
    tally = enlarge_files(paths, out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert [os.path.basename(path) for path, _ in tally.failed] == ["bad.png", "cut.png"]
    assert "not a readable image" in tally.failed[0][1] and "not a readable image" in tally.failed[1][1]
    assert sorted(os.listdir(out)) == ["good_x2.png"]
    before = (out / "good_x2.png").read_bytes()
    tally = enlarge_files([paths[2]], out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert (tally.written, tally.skipped, tally.failed) == ([], [paths[2]], [])
    assert (out / "good_x2.png").read_bytes() == before
    tally = enlarge_files([paths[2]], out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH, overwrite=True)
    assert tally.written == [str(out / "good_x2.png")]


@pytest.mark.parametrize("through_a_link", [False, True])
def test_a_rerun_into_the_input_folder_leaves_its_outputs_alone(tmp_path, predict, through_a_link):
    folder = tmp_path / "photos"
    folder.mkdir()
    out = tmp_path / "link" if through_a_link else folder
    if through_a_link:
        out.symlink_to(folder)
    Image.fromarray(smooth_image((16, 16, 3))).save(folder / "a.png")
    for scale, written in ((2, 1), (2, 0), (4, 1)):
        paths = expand_inputs(str(folder))
        tally = enlarge_files(paths, out_dir=str(out), scale=scale, predict=predict, tile=64, margin=DEPTH)
        assert tally.failed == [] and len(tally.written) == written
    assert sorted(os.listdir(folder)) == ["a.png", "a_x2.png", "a_x4.png"]
    assert tally.skipped == [str(folder / "a_x2.png")]


@pytest.mark.parametrize("scale, name", [(2.0, "a_x2.png"), (2.000001, "a_x2.000001.png"), (1.2, "a_x1.2.png")])
def test_output_names_keep_every_decimal_of_the_scale(scale, name):
    assert output_path("in/a.jpg", "out", scale, "PNG") == os.path.join("out", name)


def test_a_sixteen_bit_colour_tiff_says_it_is_read_at_eight_bits(tmp_path, predict, caplog):
    path = tmp_path / "deep.tif"
    path.write_bytes(rgb16_tiff(np.full((4, 5, 3), 40000, np.uint16)))
    tally = enlarge_files([str(path)], out_dir=str(tmp_path / "o"), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert tally.written == [str(tmp_path / "o" / "deep_x2.tif")]
    assert "deep.tif: read at 8 bits" in caplog.text


def rgb16_tiff(pixels: np.ndarray) -> bytes:
    """An uncompressed 16-bit RGB TIFF (Pillow writes none): one strip, BitsPerSample and pixels after the IFD."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    tags = {256: width, 257: height, 258: None, 259: 1, 262: 2, 273: None, 277: 3, 278: height, 279: len(data)}
    bits_at = 8 + 2 + 12 * len(tags) + 4
    tags[258], tags[273] = bits_at, bits_at + 6  # offsets: the three 16s, then the pixels
    out = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    for tag, value in tags.items():
        if tag in (258, 273, 279):  # 258 is three SHORTs stored at an offset; 273 and 279 are LONGs
            out += struct.pack("<HHII", tag, 3 if tag == 258 else 4, 3 if tag == 258 else 1, value)
        else:
            out += struct.pack("<HHIHH", tag, 3, 1, value, 0)
    return out + struct.pack("<IHHH", 0, 16, 16, 16) + data


@pytest.mark.parametrize("scale", [1, 0.5, -2, 8.5, float("nan"), float("inf")])
def test_scale_limits(scale):
    with pytest.raises(ValueError, match=r"--scale must lie in \(1, 8\]"):
        check_scale(scale)


def test_command_line_folder_with_one_bad_file_then_a_rerun(tmp_path, checkpoint_dir):
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(smooth_image((16, 20, 3))).save(folder / "ok.png")
    frames = [Image.fromarray(smooth_image((12, 10, 3), seed)) for seed in (1, 2)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    (folder / "zero.png").write_bytes(b"")
    flags = (f"--input={folder}", "--scale=2.5", f"--output={out}", f"--checkpoint_dir={checkpoint_dir}")
    result = run_main(*flags)
    assert result.returncode == 1
    assert last_line(result).startswith("2 written, 0 skipped, 1 failed: ") and "zero.png" in last_line(result)
    assert "anim.gif: written as PNG (GIF is not an output format)" in result.stderr
    assert "anim.gif: 2 frames; enlarging the first alone" in result.stderr
    assert sorted(os.listdir(out)) == ["anim_x2.5.png", "ok_x2.5.png"]
    # The rerun skips what exists, exits 0 with nothing failed, and removes what a killed run left.
    before = (out / "ok_x2.5.png").read_bytes()
    (folder / "zero.png").unlink()
    (out / ".tmp-99999999999999999999-k1ll3dxx.png").write_bytes(b"half")  # a killed run's, of no live process
    result = run_main(*flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 written, 2 skipped, 0 failed"
    assert "ok.png: skipped" in result.stderr
    assert sorted(os.listdir(out)) == ["anim_x2.5.png", "ok_x2.5.png"]
    assert (out / "ok_x2.5.png").read_bytes() == before
    # --format takes any case, and the extension the command writes.
    result = run_main(*flags, "--format=TIF")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == ["anim_x2.5.png", "anim_x2.5.tif", "ok_x2.5.png", "ok_x2.5.tif"]


def test_command_line_large_photos_get_no_warning_and_larger_ones_a_line(tmp_path, checkpoint_dir):
    """Pillow warns above MAX_IMAGE_PIXELS (89 MP; 1,000 here) and refuses above twice that."""
    Image.fromarray(smooth_image((30, 40, 3))).save(tmp_path / "large.png")
    Image.fromarray(smooth_image((30, 80, 3))).save(tmp_path / "huge.png")
    flags = [
        f"--input={tmp_path}/*.png",
        "--scale=2",
        f"--output={tmp_path / 'out'}",
        f"--checkpoint_dir={checkpoint_dir}",
    ]
    code = "import sys\nfrom PIL import Image\nfrom vdsr_tf.cli import run\nImage.MAX_IMAGE_PIXELS = 1000\nrun()"
    result = subprocess.run([sys.executable, "-c", code, *flags], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert f"{tmp_path}/huge.png: too large to read, more than 0.002 megapixels" in result.stderr
    assert os.listdir(tmp_path / "out") == ["large_x2.png"]
    assert "Warning" not in result.stderr


def test_command_line_run_where_everything_fails_leaves_no_folder(tmp_path, checkpoint_dir):
    (tmp_path / "zero.png").write_bytes(b"")
    out = tmp_path / "new" / "out"
    result = run_main(f"--input={tmp_path / 'zero.png'}", f"--output={out}", f"--checkpoint_dir={checkpoint_dir}")
    assert result.returncode == 1 and last_line(result).startswith("0 written, 0 skipped, 1 failed: ")
    assert not (tmp_path / "new").exists()


def test_command_line_folder_without_images(tmp_path, checkpoint_dir):
    (tmp_path / "notes.txt").write_text("no pictures here")
    result = run_main(f"--input={tmp_path}", f"--checkpoint_dir={checkpoint_dir}", f"--output={tmp_path / 'o'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert last_line(result) == (
        f"error: --input: {tmp_path} holds no image files "
        "(looked for .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp, .gif, ...)"
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_command_line_ctrl_c_sigterm_or_a_closed_terminal(tmp_path, checkpoint_dir, signum):
    # A small picture, then one large enough to be interrupted while it is being enlarged.
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(smooth_image((16, 20, 3))).save(folder / "a.png")
    Image.fromarray(smooth_image((1000, 1000, 3))).save(folder / "b.png")
    flags = [f"--input={folder}", "--scale=4", f"--output={out}", f"--checkpoint_dir={checkpoint_dir}"]
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "main.py"), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        preexec_fn=as_in_a_terminal,
    )
    deadline = time.monotonic() + 240
    while not (out / "a_x4.png").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # past the tally of a_x4.png, which follows its rename; b takes seconds
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: 1 of 2 written; run again for the rest (it skips those)"
    assert os.listdir(out) == ["a_x4.png"]  # no half-written b_x4.png, no temporary file


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--input=/nonexistent/photo.png"], "--input: nothing at /nonexistent/photo.png"),
        (["--input=/nonexistent/*.png"], "--input: no file matches"),
        (["--scale=1"], "--scale must lie in (1, 8]"),
        (["--scale=100"], "--scale must lie in (1, 8]"),
        (["--quality=0"], "--quality must lie in [1, 100], got 0"),
        (["--quality=101"], "--quality must lie in [1, 100], got 101"),
        (["--output=/proc/vdsr-cannot-write-here"], "--output: cannot create"),
        (["--depth=20"], "has depth 3, but --depth=20"),
    ],
)
def test_command_line_errors(tmp_path, checkpoint_dir, flags, message):
    Image.fromarray(smooth_image((16, 20, 3))).save(tmp_path / "p.png")
    result = run_main(
        f"--input={tmp_path / 'p.png'}", f"--checkpoint_dir={checkpoint_dir}", f"--output={tmp_path / 'o'}", *flags
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in last_line(result)
    assert not (tmp_path / "o").exists()


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "vdsr.h5").write_bytes(b"garbage")
    Image.fromarray(smooth_image((16, 20, 3))).save(tmp_path / "p.png")
    result = run_main(
        f"--input={tmp_path / 'p.png'}", f"--checkpoint_dir={tmp_path / 'ck'}", f"--output={tmp_path / 'o'}"
    )
    assert result.returncode != 0 and "vdsr.h5" in last_line(result)
