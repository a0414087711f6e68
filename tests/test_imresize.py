import numpy as np
import pytest

from vdsr_tf.imresize import imresize


def test_upscale_by_two_hand_computed():
    # MATLAB contributions() for out pixel 1 of a x2 upscale: u = 1/2 + 0.5 * (1 - 1/2) = 0.75,
    # taps at 1-based positions -1..2 with distances 1.75, 0.75, -0.25, -1.25:
    # cubic(a=-0.5) gives -0.0234375, 0.2265625, 0.8671875, -0.0703125. Positions -1 and 0
    # mirror to 2 and 1, so out[0] = 1.09375 * x[0] - 0.09375 * x[1].
    column = np.array([[0.0], [1.0], [2.0], [3.0]])
    out = imresize(column, scale=2)
    assert out.shape == (8, 2)
    assert out[0, 0] == pytest.approx(-0.09375, abs=1e-15)
    # The single column mirrors onto itself, so both output columns are equal.
    np.testing.assert_allclose(out[:, 0], out[:, 1], atol=1e-15)


def test_downscale_by_two_antialiased_hand_computed():
    # x1/2: the kernel is stretched to width 8 and scaled by 1/2. Out pixel 1 sits at u = 1.5;
    # taps at 1-based -2..5 weigh 0.5 * cubic(0.5 * d) for d = 3.5 .. -3.5:
    # -0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625,
    # -0.01171875. Mirroring -2, -1, 0 to 3, 2, 1 on the ramp x = j - 1 gives 0.44921875.
    ramp = np.arange(16, dtype=np.float64)[:, None] * np.ones((1, 16))
    out = imresize(ramp, scale=0.5)
    assert out.shape == (8, 8)
    assert out[0, 0] == pytest.approx(0.44921875, abs=1e-15)
    # Where the 8-wide kernel stays inside the image (u = 5.5 .. 11.5), cubic convolution
    # reproduces the ramp exactly: u - 1 = 4.5, 6.5, 8.5, 10.5.
    np.testing.assert_allclose(out[2:6, 0], [4.5, 6.5, 8.5, 10.5], atol=1e-13)


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4, 2.5, 0.7, 1.5])
@pytest.mark.parametrize("shape", [(17, 23), (41, 41, 3), (5, 8)])
def test_constant_image_stays_constant(scale, shape):
    out = imresize(np.full(shape, 0.3), scale=scale)
    np.testing.assert_allclose(out, 0.3, atol=1e-13)


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4, 2.5, 0.7])
def test_output_size_is_ceil_of_scaled_size(scale):
    out = imresize(np.zeros((37, 50)), scale=scale)
    assert out.shape == (int(np.ceil(37 * scale)), int(np.ceil(50 * scale)))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_down_then_up_restores_the_shape_of_a_modcropped_image(scale):
    image = np.random.default_rng(scale).random((12 * scale, 7 * scale))
    low = imresize(image, scale=1 / scale)
    assert low.shape == (12, 7)
    assert imresize(low, output_shape=image.shape).shape == image.shape
    assert imresize(low, scale=scale).shape == image.shape


def test_scale_one_is_identity(rng):
    image = rng.random((9, 11))
    np.testing.assert_allclose(imresize(image, scale=1), image, atol=1e-15)


def test_quadratic_is_reproduced_in_the_interior():
    # Keys' cubic with a = -0.5 is exact for polynomials up to degree 2.
    rows = np.arange(30, dtype=np.float64)
    image = (0.01 * rows**2)[:, None] * np.ones((1, 6))
    out = imresize(image, output_shape=(60, 6))
    u = np.arange(1, 61) / 2 + 0.25 - 1  # 0-based source coordinate of each output row
    interior = slice(6, 54)
    np.testing.assert_allclose(out[interior, 0], 0.01 * u[interior] ** 2, atol=1e-12)


def test_output_shape_with_a_different_scale_per_dimension(rng):
    # Each dimension is resized with its own scale (0.5 for rows, 2 for columns); the two 1-D
    # passes act on different axes, so in floating point the order MATLAB picks does not matter.
    image = rng.random((10, 20))
    out = imresize(image, output_shape=(5, 40))
    rows_then_columns = imresize(imresize(image, output_shape=(5, 20)), output_shape=(5, 40))
    np.testing.assert_allclose(out, rows_then_columns, atol=1e-14)
    assert out.shape == (5, 40)


def test_channels_are_resized_independently(rng):
    image = rng.random((13, 9, 3))
    out = imresize(image, scale=1 / 3)
    for channel in range(3):
        np.testing.assert_allclose(out[:, :, channel], imresize(image[:, :, channel], scale=1 / 3), atol=1e-15)


def test_symmetric_boundary(rng):
    # Mirroring the edge pixel: a tap one beyond the border reads the border pixel itself.
    # An image and its left-right mirror must resize to mirrors of each other.
    image = rng.random((8, 11))
    np.testing.assert_allclose(imresize(image[:, ::-1], scale=3)[:, ::-1], imresize(image, scale=3), atol=1e-14)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"scale": 2, "output_shape": (4, 4)}, {"scale": 0}, {"scale": -1}, {"output_shape": (0, 3)}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="imresize"):
        imresize(np.zeros((4, 4)), **kwargs)


def test_integer_input_is_rejected():
    with pytest.raises(ValueError, match="float"):
        imresize(np.zeros((4, 4), dtype=np.uint8), scale=2)
