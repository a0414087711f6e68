"""MATLAB `rgb2ycbcr` / `ycbcr2rgb` (ITU-R BT.601, studio swing).

Y lies in [16, 235] and Cb, Cr in [16, 240] on the 0-255 scale. For uint8 input
MATLAB returns uint8, rounded half away from zero; the evaluation protocol
(Huang et al., paper Table 3) computes Y that way. Float input is taken to lie
in [0, 1] and the result is float in [0, 1], not rounded.
"""

import numpy as np

from vdsr_tf.images import matlab_cast

# Rows give Y, Cb, Cr from R, G, B in [0, 1], on the 0-255 output scale.
RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def _check_rgb(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name}: expected an HxWx3 array, got shape {img.shape}")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float input, got {img.dtype}")
    return img


def rgb2ycbcr(img: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2ycbcr`: HxWx3 RGB (uint8, or float in [0, 1]) to YCbCr of the same dtype."""
    img = _check_rgb(img, "rgb2ycbcr")
    if img.dtype == np.uint8:
        return matlab_cast(img.astype(np.float64) @ (RGB_TO_YCBCR.T / 255) + YCBCR_OFFSET)
    return (img.astype(np.float64) @ RGB_TO_YCBCR.T + YCBCR_OFFSET) / 255


def ycbcr2rgb(img: np.ndarray) -> np.ndarray:
    """MATLAB `ycbcr2rgb`: inverse of `rgb2ycbcr`, same dtype conventions.

    Float output is not clipped (MATLAB does not clip doubles either).
    """
    img = _check_rgb(img, "ycbcr2rgb")
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    rgb = (img.astype(np.float64) * (255 / scale) - YCBCR_OFFSET) @ YCBCR_TO_RGB.T
    if img.dtype == np.uint8:
        return matlab_cast(rgb * 255)
    return rgb


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luminance as the protocol defines it.

    HxWx3 uint8 -> HxW uint8 Y of MATLAB `rgb2ycbcr`; HxW uint8 (grayscale) is
    returned unchanged, since the protocol uses grayscale images as Y directly.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"rgb_to_y: expected uint8 input, got {img.dtype}")
    if img.ndim == 2:
        return img
    return rgb2ycbcr(img)[:, :, 0]
