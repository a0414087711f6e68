import numpy as np
import pytest

from vdsr_tf.color import rgb2ycbcr, rgb_to_y, ycbcr2rgb
from vdsr_tf.images import matlab_cast


@pytest.mark.parametrize(
    "rgb, ycbcr",
    [
        # MATLAB: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 and so on, rounded.
        ((0, 0, 0), (16, 128, 128)),
        ((255, 255, 255), (235, 128, 128)),
        ((255, 0, 0), (81, 90, 240)),  # 81.481, 90.203, 240
        ((0, 255, 0), (145, 54, 34)),  # 144.553, 53.797, 34.214
        ((0, 0, 255), (41, 240, 110)),  # 40.966, 240, 109.786
    ],
)
def test_rgb2ycbcr_uint8_matches_matlab(rgb, ycbcr):
    out = rgb2ycbcr(np.array(rgb, dtype=np.uint8).reshape(1, 1, 3))
    assert out.dtype == np.uint8
    assert tuple(out[0, 0]) == ycbcr


def test_float_round_trip(rng):
    rgb = rng.random((7, 5, 3))
    np.testing.assert_allclose(ycbcr2rgb(rgb2ycbcr(rgb)), rgb, atol=1e-12)


def test_float_y_range():
    assert rgb2ycbcr(np.zeros((1, 1, 3)))[0, 0, 0] == pytest.approx(16 / 255)
    assert rgb2ycbcr(np.ones((1, 1, 3)))[0, 0, 0] == pytest.approx(235 / 255)


def test_uint8_round_trip_within_quantisation(rng):
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    back = ycbcr2rgb(rgb2ycbcr(rgb)).astype(int)
    # Y, Cb and Cr are each rounded to a level of a 219- or 224-step scale, so the
    # inverse can be off by a few 0-255 levels; MATLAB's round trip behaves the same.
    assert np.max(np.abs(back - rgb)) <= 3


def test_rgb_to_y_keeps_grayscale():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert rgb_to_y(gray) is gray


def test_matlab_cast_rounds_half_away_from_zero_and_saturates():
    np.testing.assert_array_equal(matlab_cast([0.5, 1.5, 2.5, -3, 254.5, 300]), [1, 2, 3, 0, 255, 255])
    np.testing.assert_array_equal(matlab_cast([0.5, 65534.5, 70000], np.uint16), [1, 65535, 65535])


def test_bad_shape():
    with pytest.raises(ValueError, match="rgb2ycbcr"):
        rgb2ycbcr(np.zeros((4, 4)))
