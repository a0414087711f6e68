"""PSNR and SSIM on Y as in the paper's Table 3 (Huang et al.'s framework).

Both take uint8-valued luminance (the network output rounded and clipped to
[0, 255] first) and shave `border` pixels (the scale) from every side.
"""

import numpy as np
import tensorflow as tf

from vdsr_tf.images import matlab_cast, shave

_PEAK = 255.0


def _prepare(reference: np.ndarray, test: np.ndarray, border: int):
    if reference.shape != test.shape or reference.ndim != 2:
        raise ValueError(f"metrics: expected two HxW arrays of equal shape, got {reference.shape} and {test.shape}")
    return shave(reference, border).astype(np.float64), shave(test, border).astype(np.float64)


def psnr_y(reference: np.ndarray, test: np.ndarray, border: int) -> float:
    """PSNR in dB between two HxW luminance arrays on the 0-255 scale."""
    reference, test = _prepare(reference, test, border)
    mse = np.mean((reference - test) ** 2)
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(_PEAK**2 / mse))


def ssim_y(reference: np.ndarray, test: np.ndarray, border: int) -> float:
    """Wang et al.'s `ssim_index`: 11x11 Gaussian window (sigma 1.5), K = (0.01, 0.03), L = 255.

    `tf.image.ssim` computes exactly this (valid-region mean, no downsampling);
    tests/test_metrics.py checks it against a direct transcription of the MATLAB code.
    """
    reference, test = _prepare(reference, test, border)
    value = tf.image.ssim(
        tf.constant(reference[:, :, None]),
        tf.constant(test[:, :, None]),
        max_val=_PEAK,
        filter_size=11,
        filter_sigma=1.5,
        k1=0.01,
        k2=0.03,
    )
    return float(value)


def to_uint8_range(y: np.ndarray) -> np.ndarray:
    """Network output in [0, 1] to the 0-255 values the protocol scores, as float64.

    MATLAB's `uint8(y * 255)`: rounded half away from zero and clipped.
    """
    return matlab_cast(np.asarray(y, dtype=np.float64) * _PEAK).astype(np.float64)


def loss_over_bicubic(outputs: np.ndarray, inputs: np.ndarray, labels: np.ndarray, scales: np.ndarray) -> dict:
    """The network's squared error over that of its bicubic input, on training patches.

    1 means no better than bicubic. This is how checkpoints and training settings
    are compared here without looking at a test set. Returns {"all": ratio,
    "x2": ratio, ...}, each scale's patches pooled (summed errors, not a mean of
    per-patch ratios, so flat patches with almost no error carry little weight).
    """
    if not outputs.shape == inputs.shape == labels.shape or len(scales) != len(labels):
        raise ValueError(
            f"loss_over_bicubic: expected equal shapes and one scale a patch, got {outputs.shape}, "
            f"{inputs.shape}, {labels.shape} and {len(scales)} scales"
        )
    axes = tuple(range(1, labels.ndim))
    network = np.sum((outputs.astype(np.float64) - labels) ** 2, axis=axes)
    bicubic = np.sum((inputs.astype(np.float64) - labels) ** 2, axis=axes)
    ratios = {"all": float(network.sum() / bicubic.sum())}
    for scale in np.unique(scales):
        ratios[f"x{scale}"] = float(network[scales == scale].sum() / bicubic[scales == scale].sum())
    return ratios
