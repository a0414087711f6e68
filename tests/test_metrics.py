import numpy as np
import pytest
from scipy.signal import correlate2d

from vdsr_tf.metrics import loss_over_bicubic, psnr_y, ssim_y, to_uint8_range


def wang_ssim_index(img1, img2):
    """Direct transcription of Wang et al.'s ssim_index.m (2003): filter2 'valid' with
    fspecial('gaussian', 11, 1.5), K = [0.01 0.03], L = 255, mean of the SSIM map."""
    coords = np.arange(11) - 5
    g = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 1.5**2))
    window = g / g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x):
        return correlate2d(x, window, mode="valid")

    mu1, mu2 = filt(img1), filt(img2)
    sigma1 = filt(img1 * img1) - mu1**2
    sigma2 = filt(img2 * img2) - mu2**2
    sigma12 = filt(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1 + sigma2 + c2))
    return ssim_map.mean()


def test_psnr_of_a_uniform_error_of_one_level():
    reference = np.full((20, 20), 100.0)
    # MSE = 1 -> 10 log10(255^2) = 48.1308 dB.
    assert psnr_y(reference, reference + 1, border=2) == pytest.approx(20 * np.log10(255), abs=1e-12)


def test_psnr_shaves_the_border():
    reference = np.zeros((10, 10))
    test = reference.copy()
    test[:3, :] = 255
    assert psnr_y(reference, test, border=3) == float("inf")
    assert psnr_y(reference, test, border=2) < 10


def test_ssim_identical_is_one(rng):
    image = rng.integers(0, 256, (40, 40)).astype(np.float64)
    assert ssim_y(image, image, border=0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("border", [0, 2, 4])
def test_ssim_equals_wang_ssim_index(rng, border):
    reference = rng.integers(0, 256, (64, 48)).astype(np.float64)
    test = np.clip(reference + rng.normal(0, 80, reference.shape), 0, 255).round()
    shaved = (slice(border, -border or None),) * 2
    expected = wang_ssim_index(reference[shaved], test[shaved])
    # tf.image.ssim filters in float32, hence agreement to a few 1e-7, not 1e-12.
    assert ssim_y(reference, test, border=border) == pytest.approx(expected, abs=5e-7)
    assert expected < 0.9  # the case is not trivial


def test_to_uint8_range_rounds_and_clips():
    np.testing.assert_array_equal(to_uint8_range(np.array([-0.1, 0.5 / 255, 0.2, 1.3])), [0, 1, 51, 255])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="metrics"):
        psnr_y(np.zeros((4, 4)), np.zeros((4, 5)), border=0)


def test_loss_over_bicubic_pools_each_scale(rng):
    labels = rng.random((6, 5, 5, 1)).astype(np.float32)
    inputs = labels + rng.normal(0, 0.1, labels.shape).astype(np.float32)
    scales = np.array([2, 2, 3, 3, 4, 4], np.uint8)
    assert loss_over_bicubic(inputs, inputs, labels, scales) == pytest.approx({"all": 1, "x2": 1, "x3": 1, "x4": 1})
    # The x3 output halves its error (a quarter of the squared error); x2 is perfect; x4 is bicubic.
    outputs = inputs.copy()
    outputs[:2] = labels[:2]
    outputs[2:4] = (inputs[2:4] + labels[2:4]) / 2
    ratios = loss_over_bicubic(outputs, inputs, labels, scales)
    assert ratios["x2"] == 0 and ratios["x3"] == pytest.approx(0.25) and ratios["x4"] == pytest.approx(1)
    error = np.sum((inputs.astype(np.float64) - labels) ** 2, axis=(1, 2, 3))
    pooled = (0.25 * error[2:4].sum() + error[4:].sum()) / error.sum()
    assert ratios["all"] == pytest.approx(pooled)


def test_loss_over_bicubic_shape_mismatch():
    patches = np.zeros((2, 5, 5, 1), np.float32)
    with pytest.raises(ValueError, match="one scale a patch"):
        loss_over_bicubic(patches, patches, patches, np.array([2]))
