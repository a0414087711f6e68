import os

import numpy as np
import png
import pytest
from conftest import last_line, run_main
from PIL import Image

from vdsr_tf.model import make_predictor
from vdsr_tf.images import read_picture
from vdsr_tf.infer import check_scale, enlarge, enlarge_files, predict_tiled
from vdsr_tf.model import build_vdsr, conv_layers

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


def test_sixteen_bit_png_keeps_sixteen_bits(tmp_path, predict):
    pixels = (smooth_image((12, 14, 3)).astype(np.uint16) * 257 + 3).astype(np.uint16)
    path = tmp_path / "deep.png"
    with open(path, "wb") as file:
        png.Writer(14, 12, greyscale=False, bitdepth=16).write(file, pixels.reshape(12, -1))
    picture = read_picture(str(path))
    np.testing.assert_array_equal(picture.pixels, pixels)
    failures = enlarge_files(
        [str(path)], out_dir=str(tmp_path / "out"), scale=2, predict=predict, tile=64, margin=DEPTH
    )
    assert not failures
    out = read_picture(str(tmp_path / "out" / "deep_x2.png")).pixels
    assert out.dtype == np.uint16 and out.shape == (24, 28, 3)
    assert np.any(out % 257 != 0)  # values between the 8-bit levels survive


def test_sixteen_bit_gray(tmp_path, predict):
    pixels = (smooth_image((12, 14)).astype(np.uint16) * 250).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g.png")
    assert (
        enlarge_files([str(tmp_path / "g.png")], out_dir=str(tmp_path), scale=2, predict=predict, tile=64, margin=DEPTH)
        == []
    )
    out = read_picture(str(tmp_path / "g_x2.png")).pixels
    assert out.dtype == np.uint16 and out.shape == (24, 28)


def test_output_follows_input_format(tmp_path, predict):
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "a.jpg")
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "b.webp", lossless=True)
    paths = [str(tmp_path / "a.jpg"), str(tmp_path / "b.webp")]
    assert enlarge_files(paths, out_dir=str(tmp_path / "o"), scale=2, predict=predict, tile=64, margin=DEPTH) == []
    assert sorted(os.listdir(tmp_path / "o")) == ["a_x2.jpg", "b_x2.webp"]
    assert (
        enlarge_files(
            paths, out_dir=str(tmp_path / "p"), scale=2, predict=predict, tile=64, margin=DEPTH, requested_format="png"
        )
        == []
    )
    assert sorted(os.listdir(tmp_path / "p")) == ["a_x2.png", "b_x2.png"]


def test_bad_file_is_skipped_others_finish_and_nothing_is_overwritten(tmp_path, predict):
    Image.fromarray(smooth_image((16, 16, 3))).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.fromarray(smooth_image((40, 40, 3))).save(tmp_path / "full.png")
    truncated = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    out = tmp_path / "out"
    paths = [str(tmp_path / name) for name in ("bad.png", "cut.png", "good.png")]
    failures = enlarge_files(paths, out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert [os.path.basename(path) for path, _ in failures] == ["bad.png", "cut.png"]
    assert "not a readable image" in failures[0][1] and "not a readable image" in failures[1][1]
    assert sorted(os.listdir(out)) == ["good_x2.png"]
    before = (out / "good_x2.png").read_bytes()
    failures = enlarge_files([paths[2]], out_dir=str(out), scale=2, predict=predict, tile=64, margin=DEPTH)
    assert "exists (use --overwrite" in failures[0][1]
    assert (out / "good_x2.png").read_bytes() == before


@pytest.mark.parametrize("scale", [1, 0.5, -2, 8.5, float("nan"), float("inf")])
def test_scale_limits(scale):
    with pytest.raises(ValueError, match=r"--scale must lie in \(1, 8\]"):
        check_scale(scale)


def test_command_line_folder_with_one_bad_file(tmp_path, checkpoint_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(smooth_image((16, 20, 3))).save(folder / "ok.png")
    (folder / "zero.png").write_bytes(b"")
    result = run_main(
        f"--input={folder}", "--scale=2.5", f"--output={tmp_path / 'out'}", f"--checkpoint_dir={checkpoint_dir}"
    )
    assert result.returncode == 1
    assert "1 of 2 images enlarged" in result.stderr and "zero.png" in result.stderr
    assert os.listdir(tmp_path / "out") == ["ok_x2.5.png"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--input=/nonexistent/photo.png"], "--input: nothing at /nonexistent/photo.png"),
        (["--input=/nonexistent/*.png"], "--input: no file matches"),
        (["--scale=1"], "--scale must lie in (1, 8]"),
        (["--scale=100"], "--scale must lie in (1, 8]"),
        (["--output=/proc/vdsr-cannot-write-here"], "--output: cannot create"),
        (["--depth=20"], "has depth 3, but --depth=20"),
    ],
)
def test_command_line_errors(tmp_path, checkpoint_dir, flags, message):
    Image.fromarray(smooth_image((16, 20, 3))).save(tmp_path / "p.png")
    result = run_main(
        f"--input={tmp_path / 'p.png'}", f"--checkpoint_dir={checkpoint_dir}", f"--output={tmp_path / 'o'}", *flags
    )
    assert result.returncode != 0
    assert message in last_line(result)


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "vdsr.h5").write_bytes(b"garbage")
    Image.fromarray(smooth_image((16, 20, 3))).save(tmp_path / "p.png")
    result = run_main(
        f"--input={tmp_path / 'p.png'}", f"--checkpoint_dir={tmp_path / 'ck'}", f"--output={tmp_path / 'o'}"
    )
    assert result.returncode != 0 and "vdsr.h5" in last_line(result)
